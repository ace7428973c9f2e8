"""The ASE calculator against ``ipi-jlcdm eval`` (whose extended XYZ ASE reads back), and ASE's
velocity Verlet driven by it."""

import numpy as np
import pytest

ase = pytest.importorskip("ase")
from ase import units  # noqa: E402
from ase.io import read  # noqa: E402
from ase.md.verlet import VelocityVerlet  # noqa: E402

from ipi_jlcdm.ase import JLCDMCalculator  # noqa: E402
from ipi_jlcdm.cli.main import main  # noqa: E402

WATER = "3\nwater\nO 0.0 0.0 0.135\nH 0.0 0.77 -0.47\nH 0.0 -0.75 -0.49\n"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ase")
    (tmp / "water.xyz").write_text(WATER + WATER.replace("0.77", "0.80"))
    assert main(["eval", "--model", "water", "--grid-level", "1", str(tmp / "water.xyz"),
                 "-o", str(tmp / "out.extxyz")]) == 0
    return tmp


def test_calculator_equals_eval_and_eval_reads_back_in_ase(evaluated):
    frames = read(evaluated / "out.extxyz", index=":")  # eval's output is ASE-readable extended XYZ
    assert len(frames) == 2
    calc = JLCDMCalculator(model="water", grid_level=1)
    for frame in frames:
        stored = {**frame.info, **frame.calc.results}  # ASE moves energy, forces, dipole to a calculator
        atoms = frame.copy()
        atoms.calc = calc
        np.testing.assert_allclose(atoms.get_potential_energy(), stored["energy"], atol=1e-8)  # eV
        np.testing.assert_allclose(atoms.get_forces(), stored["forces"], atol=1e-7)  # eV/Å
        np.testing.assert_allclose(atoms.get_dipole_moment(), stored["dipole"], atol=1e-8)  # e·Å
        assert abs(calc.results["gap"] - stored["gap"]) < 1e-8 and calc.results["residual"] < 0.02


def test_ase_velocity_verlet_with_the_calculator_conserves_energy(evaluated):
    atoms = read(evaluated / "water.xyz")
    atoms.calc = JLCDMCalculator(model="water", grid_level=1, dipole="one-shot")
    thermal = np.sqrt(atoms.get_masses()[:, None] * units.kB * 300)  # momentum spread at 300 K
    atoms.set_momenta(np.random.default_rng(0).normal(size=(3, 3)) * thermal)
    energies = []
    dynamics = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    dynamics.attach(lambda: energies.append(atoms.get_total_energy()), interval=1)
    dynamics.run(6)
    assert len(energies) == 7 and np.ptp(energies) < 2e-3  # eV, over 3 fs (kinetic energy ~0.1 eV moves)


def test_calculator_refuses_periodic_cells(evaluated):
    atoms = read(evaluated / "water.xyz")
    atoms.pbc = True
    atoms.cell = [10, 10, 10]
    atoms.calc = JLCDMCalculator(model="water", grid_level=1)
    with pytest.raises(ValueError, match="vacuum"):
        atoms.get_potential_energy()
