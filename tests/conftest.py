"""Shared fixtures: rMD17 reference data and one SCF of uracil reused by several tests."""

from pathlib import Path

import numpy as np
import pytest

from ipi_jlcdm.electronic.level import LevelOfTheory
from ipi_jlcdm.electronic.scf_engine import SCFEngine
from ipi_jlcdm.geometry_io import read_rmd17

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


def central_difference_gradient(function, xyz: np.ndarray, step: float) -> np.ndarray:
    """d function / d xyz (natm, 3) by central differences of a scalar function of coordinates (bohr)."""
    gradient = np.zeros_like(xyz)
    for atom in range(len(xyz)):
        for x in range(3):
            shift = np.zeros_like(xyz)
            shift[atom, x] = step
            gradient[atom, x] = (function(xyz + shift) - function(xyz - shift)) / (2 * step)
    return gradient


def assert_forces_are_energy_derivative(energy_engine, forces: np.ndarray, atomic_numbers, xyz: np.ndarray,
                                        step: float, tolerance: float, seed: int = 7, n_directions: int = 2) -> None:
    """Directional derivatives of ``energy_engine``'s energy (central differences over ``step`` bohr)
    along random unit displacements without net translation (so a removed net force drops out)
    equal -forces . direction to ``tolerance`` (Ha/bohr)."""
    rng = np.random.default_rng(seed)
    for _ in range(n_directions):
        direction = rng.normal(size=xyz.shape)
        direction -= direction.mean(axis=0)
        direction /= np.linalg.norm(direction)
        fd = (energy_engine.compute(atomic_numbers, xyz + step * direction).energy
              - energy_engine.compute(atomic_numbers, xyz - step * direction).energy) / (2 * step)
        print("directional derivative: finite differences", fd, "forces", -np.sum(forces * direction))
        assert abs(fd + np.sum(forces * direction)) < tolerance
