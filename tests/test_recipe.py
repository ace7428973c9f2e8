"""The any-molecule recipe end to end on water with small settings: sample -> dataset -> train ->
validate, checked against independent truth (the harmonic equipartition of the samples, PySCF's
Hessian frequencies, the SCF densities of held-out frames)."""

import numpy as np
import pytest

from ipi_jlcdm.cli.main import main
from ipi_jlcdm.geometry_io import read_frames
from ipi_jlcdm.training.sampling import NormalModes, harmonic_energy, harmonic_samples
from ipi_jlcdm.units import BOHR_PER_ANGSTROM

WATER_XYZ = "3\nwater\nO 0.0 0.0 0.1173\nH 0.0 0.7572 -0.4692\nH 0.0 -0.7572 -0.4692\n"


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("recipe")
    (tmp / "water.xyz").write_text(WATER_XYZ)
    assert main(["sample", str(tmp / "water.xyz"), "-o", str(tmp / "geoms.xyz"), "--count", "5",
                 "--temperatures-k", "200", "500", "--grid-level", "2", "--stretched-thermal-frames", "1"]) == 0
    assert main(["dataset", str(tmp / "geoms.xyz"), "-o", str(tmp / "data.npz"), "--grid-level", "2"]) == 0
    assert main(["train", str(tmp / "data.npz"), "-o", str(tmp / "model.npz"), "--n1", "8", "--n2", "6",
                 "--l-max", "2", "--points-per-frame", "1500", "--validation-frames", "2", "--test-frames", "2",
                 "--skip-engine-check"]) == 0
    return tmp


def test_sample_writes_thermal_and_stretched_geometries_around_the_minimum(recipe):
    frames = read_frames(recipe / "geoms.xyz")
    assert len(frames) == 2 * 5 + 2 * 5 + 1 * 2  # thermal, stretched at the minimum, stretched thermal frames
    minimum = read_frames(recipe / "geoms.xyz.minimum.xyz")[0].coords_bohr
    with np.load(recipe / "geoms.xyz.modes.npz") as data:
        frequencies = data["frequencies_cm1"]
    # PBE/def2-SVP water: bend ~1600, stretches ~3700 cm^-1 (PySCF's Hessian, 3N - 6 = 3 modes)
    assert frequencies.shape == (3,) and 1500 < frequencies[0] < 1700 and 3550 < frequencies[1] < frequencies[2] < 3900
    bond = np.linalg.norm(minimum[1] - minimum[0]) / BOHR_PER_ANGSTROM
    assert 0.95 < bond < 0.99


def test_harmonic_samples_have_the_right_temperature(recipe):
    minimum = read_frames(recipe / "geoms.xyz.minimum.xyz")[0].coords_bohr
    with np.load(recipe / "geoms.xyz.modes.npz") as data:
        modes = NormalModes(data["frequencies_cm1"], data["modes"], data["hessian"])
    temperature, count = 300.0, 4000
    samples = harmonic_samples(minimum, modes, temperature, count, np.random.default_rng(1))
    energy = harmonic_energy(samples - minimum, modes.hessian)  # from the Cartesian Hessian, not the modes
    kt = 3.166811563e-6 * temperature  # hartree
    expected = 3 * kt / 2  # (3N - 6) kT / 2
    assert abs(energy.mean() - expected) < 4 * energy.std() / np.sqrt(count)


def test_recipe_model_beats_the_atomic_superposition_on_held_out_frames(recipe, capsys):
    status = main(["validate", str(recipe / "model.npz"), str(recipe / "data.npz"), "--frames=-2:",
                   "--density-only", "--goals-k", "500"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| density error")]
    assert rows and status in (0, 1)
    measured = float(rows[0].split("|")[2])
    sad = float([line for line in out.splitlines() if line.startswith("| atomic superposition")][0].split("|")[2])
    assert measured < sad / 3  # the model removes most of the superposition's error


def test_sample_refuses_open_shell_molecules_and_bad_counts(tmp_path, capsys):
    (tmp_path / "oh.xyz").write_text("2\nhydroxyl\nO 0 0 0\nH 0 0 0.97\n")
    assert main(["sample", str(tmp_path / "oh.xyz"), "-o", str(tmp_path / "out.xyz")]) == 2
    assert "closed-shell" in capsys.readouterr().err
    (tmp_path / "w.xyz").write_text(WATER_XYZ)
    assert main(["sample", str(tmp_path / "w.xyz"), "-o", str(tmp_path / "out.xyz"), "--count", "0"]) == 2
    assert not (tmp_path / "out.xyz").exists()
    (tmp_path / "uh2.xyz").write_text("3\nno def2-SVP\nU 0 0 0\nH 0 0 2.0\nH 0 2.0 0\n")
    assert main(["sample", str(tmp_path / "uh2.xyz"), "-o", str(tmp_path / "out.xyz")]) == 2
    assert "Basis set not found for U" in capsys.readouterr().err
    assert not (tmp_path / "out.xyz").exists()


def test_active_learning_loop_flagged_frames_back_into_data_and_retrain(recipe):
    """The loop of the README: steps the engine flags (here every step: residual threshold 0) are
    written by the driver's FlaggedFrameLog, appended to the data with `dataset --append`, and the
    model is retrained on the larger set."""
    from ipi_jlcdm.electronic.oneshot import OneShotEngine
    from ipi_jlcdm.jl.model import JLCDModel
    from ipi_jlcdm.md.driver import FlaggedFrameLog
    from ipi_jlcdm.training.dataset import ReferenceData

    model = JLCDModel.load(recipe / "model.npz")
    engine = OneShotEngine(model, model.level, fallback_residual=0.0, compute_forces=False, dipole="one-shot")
    minimum = read_frames(recipe / "geoms.xyz.minimum.xyz")[0]
    log = FlaggedFrameLog(recipe / "flagged.xyz", minimum.atomic_numbers)
    rng = np.random.default_rng(7)
    for step in range(2):
        xyz = minimum.coords_bohr + rng.normal(scale=0.05, size=minimum.coords_bohr.shape)
        result = engine.compute(minimum.atomic_numbers, xyz)
        assert result.info["fallback"] == 1
        log.record(xyz, result, step=step, bead=0)
    before = len(ReferenceData.load(recipe / "data.npz"))
    assert main(["dataset", str(recipe / "flagged.xyz"), "-o", str(recipe / "data.npz"), "--grid-level", "2",
                 "--append"]) == 0
    assert len(ReferenceData.load(recipe / "data.npz")) == before + 2
    assert main(["train", str(recipe / "data.npz"), "-o", str(recipe / "model2.npz"), "--n1", "8", "--n2", "6",
                 "--l-max", "2", "--points-per-frame", "1500", "--validation-frames", "2", "--test-frames", "2",
                 "--skip-engine-check"]) == 0
    retrained = JLCDModel.load(recipe / "model2.npz")
    assert len(retrained.training["train_source_frames"]) == len(model.training["train_source_frames"]) + 2


def test_too_few_frames_and_a_failed_optimization_are_clear_errors(recipe, tmp_path, capsys):
    import pytest

    from ipi_jlcdm.electronic.level import LevelOfTheory
    from ipi_jlcdm.training.sampling import OptimizationError, optimize

    assert main(["train", str(recipe / "data.npz"), "-o", str(tmp_path / "m.npz"), "--validation-frames", "20",
                 "--test-frames", "20"]) == 2
    assert "not enough for 40 held-out frames" in capsys.readouterr().err and not (tmp_path / "m.npz").exists()
    stretched = np.array([[0.0, 0.0, 0.0], [0.0, 2.2, 1.0], [0.0, -2.0, 1.3]])  # bohr, far from the minimum
    with pytest.raises(OptimizationError, match="did not converge in"):
        optimize(LevelOfTheory(grid_level=1), np.array([8, 1, 1]), stretched, max_iterations=2,
                 progress=lambda message: None)


def test_sample_adds_scf_aimd_frames_from_a_real_ipi_run(recipe, tmp_path):
    """``--aimd-steps``: i-PI NVT with the SCF driver. Truth: PySCF's SCF energy of a kept frame equals
    the potential i-PI logged at that step; a rerun finds the run finished and starts nothing."""
    import shutil

    from ipi_jlcdm.electronic.level import LevelOfTheory
    from ipi_jlcdm.electronic.scf_engine import SCFEngine
    from ipi_jlcdm.md.campaign import steps_done
    from ipi_jlcdm.md.md_properties import read_properties
    from ipi_jlcdm.training.aimd_sampling import EQUILIBRATION_STEPS
    from ipi_jlcdm.units import EV_PER_HARTREE

    for suffix in (".minimum.xyz", ".modes.npz"):  # reuse the recipe's minimum and modes
        shutil.copy(recipe / f"geoms.xyz{suffix}", tmp_path / f"aimd.xyz{suffix}")
    (tmp_path / "water.xyz").write_text(WATER_XYZ)
    command = ["sample", str(tmp_path / "water.xyz"), "-o", str(tmp_path / "aimd.xyz"), "--count", "1",
               "--temperatures-k", "300", "--stretch-ratios", "--grid-level", "1", "--aimd-steps", "60",
               "--aimd-stride", "10", "--aimd-temperature-k", "500"]
    assert main(command) == 0
    frames = read_frames(tmp_path / "aimd.xyz")
    kept = (60 - EQUILIBRATION_STEPS) // 10
    assert len(frames) == 1 + kept
    run = tmp_path / "aimd.xyz.aimd"
    assert steps_done(run / "scf_nvt.out") == 60
    trajectory = read_frames(run / "scf_nvt.pos_0.xyz")
    step = EQUILIBRATION_STEPS + 10
    aimd_frame = next(f for f in frames if np.allclose(f.coords_bohr, trajectory[step].coords_bohr, atol=1e-6))
    potential_ev = read_properties(run / "scf_nvt.out")[step, 5]
    energy = SCFEngine(LevelOfTheory(grid_level=1)).compute(aimd_frame.atomic_numbers, aimd_frame.coords_bohr).energy
    # i-PI writes positions to 6 significant digits (1e-5 angstrom here): 2e-4 eV measured; neighbouring
    # steps differ by ~1e-2 eV
    assert abs(energy * EV_PER_HARTREE - potential_ev) < 1e-3
    logs = sorted(run.glob("*.ipi.log"))
    assert main(command) == 0  # continues: the run is complete, nothing is started
    assert sorted(run.glob("*.ipi.log")) == logs and len(read_frames(tmp_path / "aimd.xyz")) == 1 + kept
