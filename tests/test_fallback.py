"""Residual-triggered SCF fallback: a deliberately poor density (the atomic superposition alone)
is detected by its residual and the step is recomputed by SCF, giving SCF forces."""

import numpy as np

from ipi_jlcdm.level import LevelOfTheory
from ipi_jlcdm.model import JLCDModel
from ipi_jlcdm.oneshot import OneShotEngine
from ipi_jlcdm.scf_engine import SCFEngine

from .conftest import water_frames
from .ipi_helpers import WATER_MODEL


def test_poor_density_falls_back_to_scf():
    trained = JLCDModel.load(WATER_MODEL)
    poor = JLCDModel(trained.hyper, trained.species, 0.0 * trained.coefficients, trained.level)
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
