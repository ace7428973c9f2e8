"""Shared fixtures: rMD17 reference data and one SCF of uracil reused by several tests."""

from pathlib import Path

import numpy as np
import pytest

from ipi_jlcdm.geometry_io import read_rmd17
from ipi_jlcdm.level import LevelOfTheory
from ipi_jlcdm.scf_engine import SCFEngine

REPO = Path(__file__).resolve().parents[1]
RMD17 = REPO / "tests" / "data" / "rmd17_uracil_frames.npz"


@pytest.fixture(scope="session")
def rmd17():
    """A few uracil frames of rMD17 (PBE/def2-SVP, ORCA), copied from shared/data (CC0)."""
    with np.load(RMD17) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def uracil_scf(rmd17):
    """SCF engine result and converged PySCF object for rMD17 uracil frame 0, grid level 3."""
    frame = read_rmd17(RMD17)[0]
    engine = SCFEngine(LevelOfTheory(grid_level=3))
    result = engine.compute(frame.atomic_numbers, frame.coords_bohr)
    return frame, result, engine.last_mf


WATER = np.array([[0.0, 0.0, 0.2217], [0.0, 1.4309, -0.8867], [0.0, -1.4309, -0.8867]])  # bohr


def water_frames(n: int, seed: int = 0, amplitude: float = 0.08):
    """n randomly distorted water geometries (bohr)."""
    rng = np.random.default_rng(seed)
    return [WATER + rng.normal(scale=amplitude, size=WATER.shape) for _ in range(n)]
