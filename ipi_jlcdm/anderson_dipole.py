"""The dipole after one Anderson step in the Coulomb metric (``--dipole anderson``).

The one-shot map rho_in -> rho_out = rho[P_out] over-responds along the polarization (charge
sloshing) modes: measured on 300 K uracil frames with the shipped model, plain iteration
rho_in -> P_out -> P_2 -> P_3 takes the dipole error 0.19 -> 0.51 -> 1.52 -> 4.54 D (the residual
grows ~2x per step: the Jacobian of the map has eigenvalues near -2 there). So P_out's dipole
carries the error of rho_in, amplified. One more Fock build from P_out gives a second residual;
Anderson's (Pulay's) extrapolation with the two residuals

    r_0 = rho_out - rho_in,  r_1 = rho_2 - rho_out,  rho_2 = rho[P_2],  P_2 from H[P_out]
    theta = argmin_theta |(1 - theta) r_0 + theta r_1|_C,   |r|_C^2 = (Q|r) (P|Q)^-1 (Q|r)

removes a mode with a single eigenvalue lambda exactly (theta = 1 / (1 - lambda)), and the dipole,
linear in the density, is that of (1 - theta) P_out + theta P_2. The Coulomb metric weights the
long-range charge displacements that make the dipole (the grid L2 norm, dominated by the cores,
did not help: measured in docs/VALIDATION.md). Exact by construction: for the SCF density r_0 =
r_1 = 0 and theta = 0. Cost: one J and V_xc build (3-centre contraction, one AO pass for V_xc) and
one diagonalization; energy and forces are unchanged (they are those of the one-shot step).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.linalg

#: Dipole routes of the one-shot engine: P_out's (the paper's) and one Anderson step (this module).
DIPOLE_ROUTES = ("anderson", "one-shot")


def dipole_of(mol, dm: np.ndarray) -> np.ndarray:
    """Dipole moment (3,) e*bohr of the nuclei and a density matrix (origin 0; neutral molecules)."""
    with mol.with_common_orig((0.0, 0.0, 0.0)):
        r_ints = mol.intor_symmetric("int1e_r")
    return mol.atom_charges() @ mol.atom_coords() - np.einsum("xij,ji->x", r_ints, dm)


def anderson_theta(residual_0: np.ndarray, residual_1: np.ndarray, metric_factor) -> float:
    """theta minimizing |(1 - theta) r_0 + theta r_1| in the Coulomb metric; residuals are
    auxiliary right-hand sides (Q|r) (naux,), ``metric_factor`` the Cholesky factor of (P|Q).
    0 when the residuals coincide (nothing to extrapolate, e.g. a self-consistent rho_in); clipped
    to [0, 1] (the interpolation between the two outputs)."""
    change = residual_0 - residual_1
    fitted = scipy.linalg.cho_solve(metric_factor, change)
    denominator = float(change @ fitted)
    if denominator <= 1e-14 * max(float(residual_0 @ scipy.linalg.cho_solve(metric_factor, residual_0)), 1e-300):
        return 0.0
    return float(np.clip(fitted @ residual_0 / denominator, 0.0, 1.0))


def anderson_dipole(mol, xc_terms: Callable, fit, hcore: np.ndarray, overlap: np.ndarray, dm_out: np.ndarray,
                    rho_out: np.ndarray, occupations: Callable, comm) -> tuple[np.ndarray, float]:
    """Dipole (3,) e*bohr after one Anderson step from the one-shot step, and theta.

    ``xc_terms(rho)`` -> object with ``v_matrix`` for a (4, npts) density on this rank's points;
    ``fit``: the CoulombFit of rho_in (int3c, metric factor, rhs = (Q|rho_in)); ``rho_out`` (4, npts)
    the density of ``dm_out`` and its gradient at this rank's points; ``occupations(mo_energy)`` ->
    mo_occ as in the one-shot step. Every rank returns the same numbers (rank 0 diagonalizes, the result is broadcast).
    """
    rhs_out = np.einsum("ijP,ij->P", fit.int3c, dm_out)
    j_out = np.einsum("ijP,P->ij", fit.int3c, scipy.linalg.cho_solve(fit.metric_factor, rhs_out))
    fock = hcore + j_out + xc_terms(rho_out).v_matrix
    mo_energy, mo_coeff = comm.bcast(scipy.linalg.eigh(fock, overlap) if comm.rank == 0 else None)
    dm_2 = (mo_coeff * occupations(mo_energy)) @ mo_coeff.T
    rhs_2 = np.einsum("ijP,ij->P", fit.int3c, dm_2)
    theta = anderson_theta(rhs_out - fit.rhs, rhs_2 - rhs_out, fit.metric_factor)
    return dipole_of(mol, (1.0 - theta) * dm_out + theta * dm_2), theta

