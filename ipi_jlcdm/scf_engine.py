"""SCF reference engine: plain PySCF Kohn-Sham SCF plus analytic gradient (AIMD reference).

Called step after step it starts each SCF from the previous density matrix, like PySCF's
``as_scanner``. The one-shot engine has the same ``compute`` interface.
"""

from __future__ import annotations

import numpy as np

from .level import LevelOfTheory
from .results import EngineResult


class SCFEngine:
    """Full SCF at ``level``. ``conv_tol`` in hartree; ``compute`` takes atomic numbers and bohr."""

    name = "scf"

    def __init__(self, level: LevelOfTheory | None = None, conv_tol: float = 1e-10, max_cycle: int = 100):
        self.level = level or LevelOfTheory()
        self.conv_tol = conv_tol
        self.max_cycle = max_cycle
        self._dm_previous: dict[int, np.ndarray] = {}
        self.last_mf = None

    def compute(self, atomic_numbers: np.ndarray, coords_bohr: np.ndarray, key: int = 0) -> EngineResult:
        """SCF energy, forces, dipole and gap; ``key`` selects the warm start (e.g. the bead index)."""
        mol = self.level.make_mol(atomic_numbers, coords_bohr)
        dm0 = self._dm_previous.get(key)
        if dm0 is not None and dm0.shape != (mol.nao, mol.nao):
            dm0 = None
        result, mf = run_scf(self.level, mol, dm0, self.conv_tol, self.max_cycle)
        self._dm_previous[key] = mf.make_rdm1()
        self.last_mf = mf
        return result


def run_scf(level: LevelOfTheory, mol, dm0: np.ndarray | None, conv_tol: float, max_cycle: int = 100,
            grids=None, compute_forces: bool = True):
    """SCF + analytic gradient of ``mol`` from the guess ``dm0``: (EngineResult, converged PySCF object).

    Shared by the SCF engine and the one-shot engine's fallback. RuntimeError if not converged.
    """
    mf = level.make_rks(mol, grids)
    mf.conv_tol = conv_tol
    mf.max_cycle = max_cycle
    energy = mf.kernel(dm0=dm0)
    if not mf.converged:
        raise RuntimeError(f"SCF did not converge in {max_cycle} cycles")
    forces = np.zeros((mol.natm, 3))
    if compute_forces:
        grad = mf.nuc_grad_method()
        grad.verbose = 0
        forces = -np.asarray(grad.kernel())
    nocc = mol.nelectron // 2
    result = EngineResult(
        energy=float(energy), forces=forces,
        dipole=np.asarray(mf.dip_moment(mol, mf.make_rdm1(), unit="AU", verbose=0)),
        gap=float(mf.mo_energy[nocc] - mf.mo_energy[nocc - 1]),
        info={"scf_cycles": float(getattr(mf, "cycles", -1))},
    )
    result.check_finite()
    return result, mf
