"""Anderson steps from the one-shot step (``--dipole anderson`` and ``--forces anderson``).

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

More steps (``--anderson-steps``, default DEFAULT_ANDERSON_STEPS): each builds the Fock matrix of the
Pulay mixture of all outputs so far (coefficients summing to 1 that minimize the mixed residual in the
same metric) and adds its output to the history; the dipole is that of the final mixture.

The route ``--forces anderson`` (``oneshot``) builds the final mixture's own Fock matrix once more
(``anderson_steps(..., orbitals=True)``) and serves the Harris-Foulkes energy of the mixture as input
density and PySCF's analytic gradient on that Fock matrix's orbitals: both approach the SCF ones as
the steps converge (exact for an SCF density), but the forces are not the energy's exact derivative.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg

#: Dipole routes of the one-shot engine: P_out's (the paper's) and Anderson steps (this module).
DIPOLE_ROUTES = ("anderson", "one-shot")

#: Fock builds after the one-shot step for the 'anderson' dipole. Measured (shipped uracil model,
#: mean dipole error against SCF for 1/2/3 steps): 300 K samples 0.037/0.012/0.007 D, 100 K
#: 0.037/0.011/0.005 D, rMD17 500 K frames 36-43 0.080/0.033/0.009 D; ~1 s per extra step.
DEFAULT_ANDERSON_STEPS = 3

#: PySCF grid level of the Anderson steps' V_xc builds (at most the step's own). Measured on rMD17
#: uracil frames (shipped model, 3 steps): the dipole moves by ~1e-4 D between levels 1 and 3 against
#: an error of ~0.01 D against SCF, and the steps cost a third of their level-3 time (51k instead of
#: 151k points); level 0 (11k points) doubles the dipole error. docs/PERFORMANCE.md.
DEFAULT_ANDERSON_GRID_LEVEL = 1


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


def pulay_coefficients(residuals: list[np.ndarray], metric_factor) -> np.ndarray:
    """c (n,) with sum c = 1 minimizing |sum_i c_i r_i| in the Coulomb metric (residuals as (Q|r))."""
    fitted = [scipy.linalg.cho_solve(metric_factor, r) for r in residuals]
    n = len(residuals)
    b = np.ones((n + 1, n + 1))
    b[n, n] = 0.0
    b[:n, :n] = [[float(ri @ fj) for fj in fitted] for ri in residuals]
    scale = max(np.abs(b[:n, :n]).max(), 1e-300)
    b[:n, :n] /= scale
    rhs = np.zeros(n + 1)
    rhs[n] = 1.0
    return scipy.linalg.lstsq(b, rhs)[0][:n]


@dataclass
class MixtureFock:
    """The Fock matrix of the final Anderson mixture rho_mix, diagonalized: eigenpairs (nmo,),
    (nao, nmo) and occupations (nmo,), and the Harris-Foulkes terms of rho_mix as input density,
    E_H[rho_mix] and E_xc[rho_mix] and integral v_xc rho_mix (Ha), so that
    E_HF[rho_mix] = sum_i f_i e_i - e_hartree + e_xc - v_rho + E_nn (minus k T S when smeared)."""

    mo_energy: np.ndarray
    mo_coeff: np.ndarray
    mo_occ: np.ndarray
    e_hartree: float
    e_xc: float
    v_rho: float


@dataclass
class AndersonMixture:
    """The result of ``anderson_steps``: dm (nao, nao) the final Pulay mixture of the output density
    matrices, theta the weight of the last output in it, and with ``orbitals`` its own Fock matrix
    diagonalized (MixtureFock), else None."""

    dm: np.ndarray
    theta: float
    fock: MixtureFock | None = None


def anderson_steps(mol, xc_terms: Callable, fit, hcore: np.ndarray, overlap: np.ndarray, dm_out: np.ndarray,
                   rho_out: np.ndarray, occupations: Callable, comm, steps: int = 1,
                   orbitals: bool = False) -> AndersonMixture:
    """``steps`` Anderson steps from the one-shot step: the final mixture of output density matrices.

    ``xc_terms(rho[, dm, c])`` -> (object with ``v_matrix``, extra) for the (4, npts) density rho on
    this rank's points (None: zero), or for rho + c rho[dm] with extra = rho[dm] (4, npts) from the
    same AO pass;
    ``fit``: the CoulombFit of rho_in (int3c, metric factor, rhs = (Q|rho_in)); ``rho_out`` (4, npts)
    the density of ``dm_out`` and its gradient at this rank's points, or None: then it comes from the
    AO pass of the first V_xc build; ``occupations(mo_energy)`` ->
    mo_occ as in the one-shot step. Every rank returns the same numbers (rank 0 diagonalizes, the
    result is broadcast). Steps beyond the first mix all outputs so far with Pulay's coefficients in
    the Coulomb metric and build the Fock matrix of that mixture (one more J, V_xc, AO pass and
    diagonalization each). With ``orbitals`` the Fock matrix of the final mixture is built and
    diagonalized once more (the orbitals of the ``--forces anderson`` route).
    """
    inputs, outputs = [fit.rhs], [fit.projection(dm_out)]
    dms, rhos = [dm_out], [rho_out]
    coefficients = np.array([1.0])

    def diagonalize_mixture(step: int):
        """Fock matrix of the current mixture (its J from (Q|mixture), its V_xc on the grid; the
        newest output's density joins ``rhos`` from the same AO pass): rhs (Q|mixture), its XC
        terms and the eigenpairs. Reads ``coefficients``, ``outputs``, ``rhos`` and ``dms`` as the
        loop below has last set them (a closure, not a snapshot)."""
        if step == 0:
            rhs_in = outputs[0]
            if rhos[0] is None:  # rho[P_out] from the same AO pass as V_xc[rho[P_out]]
                xc, rhos[0] = xc_terms(None, dm_out, 1.0)
            else:
                xc = xc_terms(rhos[0])[0]
        else:
            rhs_in = sum(c * f for c, f in zip(coefficients, outputs, strict=True))
            older = sum(c * r for c, r in zip(coefficients[:-1], rhos, strict=True))
            xc, rho_newest = xc_terms(older, dms[-1], float(coefficients[-1]))
            rhos.append(rho_newest)
        j_in = fit.coulomb_matrix(scipy.linalg.cho_solve(fit.metric_factor, rhs_in))
        fock = hcore + j_in + xc.v_matrix
        mo_energy, mo_coeff = comm.bcast(scipy.linalg.eigh(fock, overlap) if comm.rank == 0 else None)
        return rhs_in, xc, mo_energy, mo_coeff

    for step in range(steps):
        rhs_in, _, mo_energy, mo_coeff = diagonalize_mixture(step)
        dm_next = (mo_coeff * occupations(mo_energy)) @ mo_coeff.T
        inputs.append(rhs_in)
        outputs.append(fit.projection(dm_next))
        dms.append(dm_next)
        residuals = [f - x for f, x in zip(outputs, inputs, strict=True)]
        if step == 0:  # two residuals: theta clipped to the interpolation between the two outputs
            theta = anderson_theta(residuals[0], residuals[1], fit.metric_factor)
            coefficients = np.array([1.0 - theta, theta])
        else:
            coefficients = pulay_coefficients(residuals, fit.metric_factor)
    dm = sum(c * d for c, d in zip(coefficients, dms, strict=True))
    mixture_fock = None
    if orbitals:
        rhs_in, xc, mo_energy, mo_coeff = diagonalize_mixture(steps)
        e_hartree = 0.5 * float(rhs_in @ scipy.linalg.cho_solve(fit.metric_factor, rhs_in))
        mixture_fock = MixtureFock(mo_energy, mo_coeff, occupations(mo_energy), e_hartree, xc.e_xc, xc.v_rho)
    return AndersonMixture(dm, float(coefficients[-1]), mixture_fock)
