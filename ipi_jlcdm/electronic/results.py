"""What an engine returns for one geometry (atomic units)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class EngineResult:
    """Energy, forces and electronic observables of one geometry.

    energy: hartree; forces: (natm, 3) hartree/bohr; dipole: (3,) e*bohr (origin-independent
    for neutral molecules); gap: hartree (LUMO - HOMO); residual: integral |rho_out - rho_in| / N_e
    (dimensionless, 0 for SCF); info: engine-specific extra numbers (plain floats).
    """

    energy: float
    forces: np.ndarray
    dipole: np.ndarray
    gap: float
    residual: float = 0.0
    info: dict = field(default_factory=dict)

    def check_finite(self) -> None:
        """Raise FloatingPointError if any number is NaN or infinite (never send those to i-PI)."""
        values = [self.energy, self.gap, self.residual, *np.ravel(self.forces), *np.ravel(self.dipole)]
        if not np.all(np.isfinite(values)):
            raise FloatingPointError("engine produced a non-finite energy, force, dipole or gap")
