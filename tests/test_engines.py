"""SCF engine against rMD17 (independent code) and the one-shot pipeline fed the exact SCF density."""

import numpy as np

from ipi_jlcdm.density import ExactDeformation
from ipi_jlcdm.level import LevelOfTheory
from ipi_jlcdm.oneshot import OneShotEngine
from ipi_jlcdm.scf_engine import SCFEngine
from ipi_jlcdm.units import BOHR_PER_ANGSTROM, KCAL_PER_MOL_PER_HARTREE

from .conftest import water_frames


def test_scf_engine_reproduces_rmd17_frame(rmd17, uracil_scf):
    _, result, _ = uracil_scf
    forces_kcal = result.forces * KCAL_PER_MOL_PER_HARTREE * BOHR_PER_ANGSTROM
    mae = np.abs(forces_kcal - rmd17["forces"][0]).mean()
    assert mae <= 0.05, f"force MAE vs rMD17 {mae:.4f} kcal/mol/A"
    # ORCA and PySCF energies differ by a small constant (basis/grid details): well under 0.5 kcal/mol
    assert abs(result.energy * KCAL_PER_MOL_PER_HARTREE - rmd17["energies"][0]) < 0.5


def test_oneshot_fed_exact_density_reproduces_scf(uracil_scf):
    frame, scf, mf = uracil_scf
    engine = OneShotEngine(ExactDeformation(mf.mol, mf.make_rdm1()), LevelOfTheory(grid_level=3))
    one = engine.compute(frame.atomic_numbers, frame.coords_bohr)
    assert abs(one.energy - scf.energy) < 1e-5
    assert np.abs(one.forces - scf.forces).max() < 1e-4
    assert np.abs(one.dipole - scf.dipole).max() < 1e-3  # after the Anderson step (the default)
    assert np.abs(np.array(one.info["dipole_one_shot"]) - scf.dipole).max() < 1e-3
    assert np.abs(np.array(one.info["dipole_rho_in"]) - scf.dipole).max() < 1e-3
    assert abs(one.gap - scf.gap) < 1e-4
    assert one.residual < 1e-4
    assert abs(one.info["density_scale"] - 1.0) < 1e-5


def test_scf_engine_reuses_previous_density_matrix():
    level = LevelOfTheory(grid_level=1)
    first, second = water_frames(2, seed=1, amplitude=0.01)
    warm = SCFEngine(level, conv_tol=1e-9)
    warm.compute(np.array([8, 1, 1]), first)
    warm_result = warm.compute(np.array([8, 1, 1]), second)
    cold_result = SCFEngine(level, conv_tol=1e-9).compute(np.array([8, 1, 1]), second)
    assert warm_result.info["scf_cycles"] < cold_result.info["scf_cycles"]
    assert abs(warm_result.energy - cold_result.energy) < 1e-8


def test_tailored_xc_gradient_equals_pyscf():
    """The one-shot forces' XC term (contracted with P first) equals PySCF's get_vxc route."""
    from ipi_jlcdm.density import grid_points
    from ipi_jlcdm.oneshot import _grid_slice, _pyscf_xc_gradient, _xc_gradient

    level = LevelOfTheory(grid_level=2)
    mol = level.make_mol(np.array([8, 1, 1]), water_frames(1, seed=2)[0])
    mf = level.make_rks(mol)
    mf.kernel()
    grids = level.make_grids(mol)
    coords, weights = grid_points(grids)
    ours, density = _xc_gradient(mol, "PBE", coords, weights, mf.make_rdm1())
    assert abs(weights @ density[0] - 10.0) < 1e-3  # the density it returns integrates to N_e
    theirs = _pyscf_xc_gradient(mol, "PBE", _grid_slice(grids, mol, coords, weights), mf.make_rdm1())
    assert np.abs(theirs).max() > 0.1
    np.testing.assert_allclose(ours, theirs, atol=1e-11)
