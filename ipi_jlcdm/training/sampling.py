"""Training geometries for a new molecule: minimum, normal modes, thermal and stretched-bond samples.

The recipe's first step (``ipi-jlcdm sample``):

1. The minimum at the model's level of theory: BFGS on PySCF SCF energies and analytic gradients
   (``optimize``), from the user's structure.
2. PySCF's analytic Hessian there: harmonic frequencies (cm^-1) and mass-weighted normal modes
   (``normal_modes``).
3. Thermal geometries: normal coordinates drawn from the classical harmonic Boltzmann distribution,
   q_k ~ N(0, kT / omega_k^2) (``harmonic_samples``): each mode then carries kT/2 of potential
   energy on average, as in classical MD at temperature T (i-PI's nuclei are classical). Several
   temperatures cover the bonding region the MD explores and beyond it. The displacements are
   applied in internal coordinates (``curvilinear_samples``), so that torsions rotate instead of
   stretching bonds (``internal_coordinates``).
4. Stretched X-H bonds (``stretched_bond_samples``): each H moved along its bond to the nearest atom
   to fixed ratios of the equilibrium length, at the minimum and on some thermal frames. Thermal
   samples alone leave the model blind where MD occasionally goes (long X-H bonds), and a linear
   model can then produce a spurious well there.

Units: bohr and hartree inside, angstrom in the written XYZ files.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.optimize
from pyscf.data import nist
from pyscf.hessian import thermo

from ipi_jlcdm.electronic.level import LevelOfTheory
from ipi_jlcdm.electronic.scf_engine import SCFEngine
from ipi_jlcdm.files import save_npz_atomically
from ipi_jlcdm.geometry_io import format_xyz_frame
from ipi_jlcdm.training.internal_coordinates import InternalCoordinates, curvilinear_displacement

#: Ratios of the equilibrium X-H length for the stretched-bond samples (at the minimum; the thermal
#: frames get the two longest). 0.95 and 1.05 give the harmonic curvature along each X-H bond data
#: of its own: without them ethanol's O-H stretch came out 15.9 cm^-1 above PySCF's Hessian, with
#: them 9.7 cm^-1 (docs/VALIDATION.md).
DEFAULT_STRETCH_RATIOS = (0.9, 0.95, 1.05, 1.15, 1.25)


def log(message: str) -> None:
    """Progress on stderr, time-stamped."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


#: Default convergence of ``optimize``: the largest gradient component, Ha/bohr (~5 meV/Å, a tenth of
#: geomeTRIC's default). Tighter, BFGS on grid-quadrature gradients creeps along flat torsions: ethanol
#: took 40 iterations from 6e-5 to 4e-5 Ha/bohr, 1e-8 Ha each.
DEFAULT_GTOL = 1e-4


class OptimizationError(ValueError):
    """The geometry optimization did not converge."""


def optimize(level: LevelOfTheory, atomic_numbers: np.ndarray, coords_bohr: np.ndarray, gtol: float = DEFAULT_GTOL,
             max_iterations: int = 200, progress: Callable[[str], None] = log) -> np.ndarray:
    """The SCF minimum (natm, 3) bohr nearest to ``coords_bohr``: BFGS on energies and analytic
    gradients until the largest gradient component is below ``gtol`` Ha/bohr; OptimizationError if
    it does not get there in ``max_iterations``."""
    engine = SCFEngine(level)
    shape = coords_bohr.shape
    largest = [np.inf]

    def energy_and_gradient(x):
        result = engine.compute(atomic_numbers, x.reshape(shape))
        largest[0] = float(np.abs(result.forces).max())
        progress(f"optimize: E = {result.energy:.10f} Ha, max |F| = {largest[0]:.2e} Ha/bohr")
        return result.energy, -result.forces.ravel()

    out = scipy.optimize.minimize(energy_and_gradient, np.asarray(coords_bohr, float).ravel(), jac=True,
                                  method="BFGS", options={"gtol": gtol, "maxiter": max_iterations})
    if largest[0] > 10 * gtol or not np.all(np.isfinite(out.x)):
        raise OptimizationError(f"geometry optimization did not converge in {out.nit} iterations "
                                f"(largest force {largest[0]:.2e} Ha/bohr, wanted {gtol:.0e}): {out.message}")
    return out.x.reshape(shape)


@dataclass
class NormalModes:
    """Harmonic analysis at a minimum: frequencies (nmode,) cm^-1, mass-weighted modes (nmode, natm, 3)
    in bohr per amu^1/2 (PySCF's ``norm_mode``), the Cartesian Hessian (natm, natm, 3, 3) Ha/bohr^2."""

    frequencies_cm1: np.ndarray
    modes: np.ndarray
    hessian: np.ndarray

    def save(self, path: str | Path) -> None:
        save_npz_atomically(path, frequencies_cm1=self.frequencies_cm1, modes=self.modes, hessian=self.hessian)

    @classmethod
    def load(cls, path: str | Path) -> NormalModes:
        with np.load(path) as data:
            return cls(data["frequencies_cm1"], data["modes"], data["hessian"])


def normal_modes(level: LevelOfTheory, atomic_numbers: np.ndarray, coords_bohr: np.ndarray) -> NormalModes:
    """PySCF's analytic RKS Hessian and its harmonic analysis (translations and rotations projected
    out; a negative frequency is an imaginary mode)."""
    mol = level.make_mol(atomic_numbers, coords_bohr)
    mf = level.make_rks(mol)
    mf.conv_tol = 1e-11
    mf.kernel()
    if not mf.converged:
        raise OptimizationError("the SCF at the minimum did not converge")
    hess = mf.Hessian()
    hess.verbose = 0
    hessian = np.asarray(hess.kernel())
    analysis = thermo.harmonic_analysis(mol, hessian, imaginary_freq=False)
    return NormalModes(np.asarray(analysis["freq_wavenumber"]), np.asarray(analysis["norm_mode"]), hessian)


def angular_frequencies_au(frequencies_cm1: np.ndarray) -> np.ndarray:
    """omega in sqrt(Ha / (bohr^2 amu)) (the unit of PySCF's mass-weighted modes) from cm^-1."""
    au2hz = (nist.HARTREE2J / (nist.ATOMIC_MASS * nist.BOHR_SI ** 2)) ** 0.5 / (2 * np.pi)
    return np.asarray(frequencies_cm1) * 1e2 * nist.LIGHT_SPEED_SI / au2hz


def harmonic_samples(coords_bohr: np.ndarray, modes: NormalModes, temperature_k: float, count: int,
                     rng: np.random.Generator) -> np.ndarray:
    """``count`` geometries (count, natm, 3) bohr with normal coordinates q_k ~ N(0, kT / omega_k^2)
    (classical harmonic Boltzmann distribution at ``temperature_k``; q in amu^1/2 bohr)."""
    freq = modes.frequencies_cm1
    if np.any(freq <= 0):
        raise ValueError(f"the structure is not a minimum: {int(np.sum(freq <= 0))} imaginary or zero "
                         "frequencies (optimize first)")
    kt = nist.BOLTZMANN * temperature_k / nist.HARTREE2J
    q = rng.normal(size=(count, len(freq))) * np.sqrt(kt) / angular_frequencies_au(freq)
    return coords_bohr[None] + np.einsum("nk,kax->nax", q, modes.modes)


def curvilinear_samples(atomic_numbers: np.ndarray, coords_bohr: np.ndarray, samples_bohr: np.ndarray
                        ) -> tuple[np.ndarray, int]:
    """Each sample (count, natm, 3) bohr of ``harmonic_samples`` with its displacement from the minimum
    ``coords_bohr`` applied in internal coordinates (``internal_coordinates.curvilinear_displacement``);
    returns the geometries and how many kept their rectilinear displacement (back-transformation not
    converged)."""
    internals = InternalCoordinates.for_molecule(atomic_numbers, coords_bohr)
    out, kept = [], 0
    for sample in samples_bohr:
        moved = curvilinear_displacement(coords_bohr, sample - coords_bohr, internals)
        kept += moved is None
        out.append(sample if moved is None else moved)
    return np.array(out).reshape(np.shape(samples_bohr)), kept


def harmonic_energy(displacement_bohr: np.ndarray, hessian: np.ndarray) -> np.ndarray:
    """1/2 dx.H.dx (Ha) for displacements (..., natm, 3) bohr from the minimum and the Cartesian
    Hessian (natm, natm, 3, 3)."""
    return 0.5 * np.einsum("...ax,abxy,...by->...", displacement_bohr, hessian, displacement_bohr)


def stretched(coords_bohr: np.ndarray, hydrogen: int, ratio: float, reference_bohr: np.ndarray | None = None
              ) -> np.ndarray:
    """A copy of coords (natm, 3) bohr with atom ``hydrogen`` moved along its bond to the nearest atom
    to ``ratio`` times that bond's length in ``reference_bohr`` (default: in coords itself)."""
    reference = coords_bohr if reference_bohr is None else reference_bohr
    distances = np.linalg.norm(reference - reference[hydrogen], axis=1)
    distances[hydrogen] = np.inf
    partner = int(np.argmin(distances))
    bond = coords_bohr[hydrogen] - coords_bohr[partner]
    out = coords_bohr.copy()
    out[hydrogen] = coords_bohr[partner] + ratio * distances[partner] * bond / np.linalg.norm(bond)
    return out


def stretched_bond_samples(atomic_numbers: np.ndarray, minimum_bohr: np.ndarray, thermal_bohr: np.ndarray,
                           ratios: tuple[float, ...] = DEFAULT_STRETCH_RATIOS, thermal_frames: int = 4
                           ) -> list[tuple[np.ndarray, str]]:
    """(geometry, label) pairs: every X-H bond of the minimum at each ratio of its length, and on
    ``thermal_frames`` thermal frames one X-H bond each (the H atoms in turn) at the two longest ratios."""
    hydrogens = [i for i, z in enumerate(atomic_numbers) if z == 1]
    out = []
    for h in hydrogens:
        for ratio in ratios:
            out.append((stretched(minimum_bohr, h, ratio), f"minimum, H{h} bond x {ratio:g}"))
    if hydrogens:
        picks = np.linspace(0, len(thermal_bohr) - 1, min(thermal_frames, len(thermal_bohr))).astype(int)
        for n, k in enumerate(picks):
            h = hydrogens[n % len(hydrogens)]
            for ratio in sorted(ratios)[-2:]:
                out.append((stretched(thermal_bohr[k], h, ratio, minimum_bohr),
                            f"thermal frame {k}, H{h} bond x {ratio:g}"))
    return out


def xyz_text(atomic_numbers: np.ndarray, frames: list[tuple[np.ndarray, str]]) -> str:
    """XYZ text (angstrom) of (geometry bohr, comment) pairs."""
    return "".join(format_xyz_frame(atomic_numbers, coords, comment) for coords, comment in frames)
