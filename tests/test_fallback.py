"""Residual-triggered SCF fallback: a deliberately poor density (the atomic superposition alone)
is detected by its residual and the step is recomputed by SCF, giving SCF forces."""

import argparse

import numpy as np
import pytest

from ipi_jlcdm.cli.main import main
from ipi_jlcdm.electronic.engines import make_engine, model_fallback_residual, parse_fallback_residual
from ipi_jlcdm.electronic.level import LevelOfTheory
from ipi_jlcdm.electronic.oneshot import OneShotEngine
from ipi_jlcdm.electronic.scf_engine import SCFEngine
from ipi_jlcdm.geometry_io import format_xyz_frame, read_frames
from ipi_jlcdm.jl.model import JLCDModel
from ipi_jlcdm.md.driver import FlaggedFrameLog
from ipi_jlcdm.training.dataset import ReferenceData

from .conftest import water_frames
from .ipi_helpers import WATER_MODEL


def test_poor_density_falls_back_to_scf():
    trained = JLCDModel.load(WATER_MODEL)
    poor = JLCDModel.untrained(trained.hyper, trained.species, trained.level)
    xyz = water_frames(1, seed=8)[0]
    z = np.array([8, 1, 1])
    plain = OneShotEngine(poor, trained.level).compute(z, xyz)
    assert plain.residual > 0.1 and plain.info["fallback"] == 0
    guarded = OneShotEngine(poor, trained.level, fallback_residual=0.05).compute(z, xyz)
    assert guarded.info["fallback"] == 1
    scf = SCFEngine(LevelOfTheory(grid_level=trained.level.grid_level), conv_tol=1e-10).compute(z, xyz)
    np.testing.assert_allclose(guarded.forces, scf.forces, atol=1e-5)
    assert abs(guarded.energy - scf.energy) < 1e-7
    np.testing.assert_allclose(guarded.dipole, scf.dipole, atol=1e-4)
    # a trained model stays below the threshold: no fallback, one-shot result
    good = OneShotEngine(trained, trained.level, fallback_residual=0.05).compute(z, xyz)
    assert good.info["fallback"] == 0 and good.residual < 0.05


def test_auto_threshold_is_three_times_the_model_held_out_residual():
    """'auto' (the default) takes 3x the mean residual that ``train`` recorded on the held-out frames,
    at least 0.01, and 0.05 for a model without that record; a frame of the model's own domain stays
    below it, the atomic superposition is far above it."""
    trained = JLCDModel.load(WATER_MODEL)
    typical = trained.training["test_summary"]["mean_abs_residual_percent"] / 100
    assert model_fallback_residual(trained) == pytest.approx(max(0.01, 3 * typical))
    uracil = JLCDModel.load("uracil")
    assert model_fallback_residual(uracil) == pytest.approx(
        3 * uracil.training["test_summary"]["mean_abs_residual_percent"] / 100)
    assert 0.015 < model_fallback_residual(uracil) < 0.02
    poor = JLCDModel.untrained(trained.hyper, trained.species, trained.level)
    assert model_fallback_residual(poor) == 0.05
    engine = make_engine("jlcdm", str(WATER_MODEL))
    assert engine.fallback_residual == model_fallback_residual(trained)
    assert make_engine("jlcdm", str(WATER_MODEL), fallback_residual=-1).fallback_residual is None
    z = np.array([8, 1, 1])
    for xyz in water_frames(2, seed=5):
        result = engine.compute(z, xyz)
        assert result.info["fallback"] == 0 and result.residual < engine.fallback_residual / 2
    assert OneShotEngine(poor, trained.level).compute(z, xyz).residual > 3 * engine.fallback_residual
    assert parse_fallback_residual("auto") == "auto" and parse_fallback_residual("-1") == -1.0
    with pytest.raises(argparse.ArgumentTypeError, match="'auto' or a number"):
        parse_fallback_residual("0.05%")


def test_flagged_frames_are_saved_and_appended_to_a_training_set(tmp_path):
    """A fallback step's geometry is written by the driver's FlaggedFrameLog; `dataset --append` adds
    it to an existing reference set (SCF labels equal to a direct SCF) and skips it on a rerun."""
    trained = JLCDModel.load(WATER_MODEL)
    poor = JLCDModel.untrained(trained.hyper, trained.species, trained.level)
    z = np.array([8, 1, 1])
    frames = water_frames(3, seed=21)
    good, flagged = OneShotEngine(trained, trained.level, fallback_residual=0.05), FlaggedFrameLog(
        tmp_path / "flagged.xyz", z)
    flagged.record(frames[0], good.compute(z, frames[0]), step=1, bead=0)
    assert not (tmp_path / "flagged.xyz").exists()  # nothing flagged, no file
    guarded = OneShotEngine(poor, trained.level, fallback_residual=0.05)
    for step, xyz in enumerate(frames[1:], 2):
        flagged.record(xyz, guarded.compute(z, xyz), step=step, bead=0)
    saved = read_frames(tmp_path / "flagged.xyz")
    assert flagged.count == 2 and len(saved) == 2
    np.testing.assert_allclose(saved[1].coords_bohr, frames[2], atol=1e-9)

    base = tmp_path / "base.xyz"
    base.write_text(format_xyz_frame(z, frames[0]))
    data_file = str(tmp_path / "data.npz")
    assert main(["dataset", str(base), "-o", data_file, "--grid-level", "2"]) == 0
    for _ in range(2):  # the second run finds both frames present and adds nothing
        assert main(["dataset", str(tmp_path / "flagged.xyz"), "-o", data_file, "--grid-level", "2", "--append"]) == 0
        data = ReferenceData.load(data_file)
        assert len(data) == 3 and list(data.source_index) == [0, 1, 2]
    scf = SCFEngine(LevelOfTheory(grid_level=2), conv_tol=1e-10).compute(z, frames[2])
    np.testing.assert_allclose(data.forces_hartree_per_bohr[2], scf.forces, atol=1e-6)
