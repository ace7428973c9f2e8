"""Consistent forces of the Harris-Foulkes energy (route b of docs/METHOD.md section 5).

E_HF(R) = sum_i f_i e_i[H(rho_in)] - E_H[rho_in] + E_xc[rho_in] - int v_xc[rho_in] rho_in + E_nn, with
rho_in = s (rho_SAD + drho_model), s = N / Q, Q = int (rho_SAD + drho). Its total derivative
(eigenvalues by Hellmann-Feynman; no grid response, as PySCF's gradients) is

  dE/dR = Tr P dh/dR - Tr W dS/dR + dE_nn/dR                                    (core)
        + d_in.db_out/dR|_P - 1/2 d_in.dM/dR.d_in                               (Coulomb, explicit)
        + int v_xc[rho_in] . d rho_out/dR|_P                                   (XC, explicit)
        + Dd.(db_in/dR - dM/dR d_in)                                           (Coulomb, via rho_in)
        + int (f_xc[rho_in] (rho_out - rho_in)) . d rho_in/dR                  (XC, via rho_in)

with M = (P|Q), d_in = M^-1 b_in, b = (Q|rho), Dd = d_out - d_in, f_xc the GGA kernel acting on the
(rho, grad rho) difference. The terms through rho_in vanish when rho_in is self-consistent: they are
the first-order correction that the orbital gradient (route a) misses. d rho_in / dR has three
parts: rho_SAD (atomic basis functions move: AO-derivative quadrature with P_SAD, and the analytic
3-centre derivative for (Q|rho_SAD)), the model (its atom derivatives, ``deformation_density_vjp``)
and the normalization s (a constant shift of the potential). A model with an envelope block
(drho = f_0 + e(rho_SAD) f_1) moves with rho_SAD too: ``EnvelopeResponse.sad_potential`` turns the
potential on drho into one on rho_SAD. (Q|drho) moves with the auxiliary
functions: sum_g w_g drho dV_Q/dR_Q = + sum_g w_g V_Q grad drho (integration by parts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
from pyscf import df, scf
from pyscf.dft import numint
from pyscf.grad import rhf as rhf_grad

from ipi_jlcdm.electronic.density import (
    add_density_responses,
    density_from_phi,
    grid_blocks,
    kept_block,
    map_screened_ao_blocks,
    per_atom,
)
from ipi_jlcdm.electronic.positivity import PositiveDensityMap
from ipi_jlcdm.electronic.sad_radial import radial_tables, sad_atom_gradient
from ipi_jlcdm.electronic.scratch import ScratchArrays
from ipi_jlcdm.threads import chunk_map


@dataclass
class OneShotState:
    """What the consistent gradient needs from a one-shot step (this rank's grid points).

    coords (npts, 3) bohr, weights (npts,), rho_in and rho_sad (4, npts) (rho_in scaled) density and
    gradient, scale s, dm_sad, dm_out (nao, nao), orbitals, the CoulombFit
    and, for a model with an envelope block, its EnvelopeResponse at the points (else None); the
    PositiveDensityMap that made drho (None: the identity) and the model pass's atom derivatives at
    the points (None: the vector-Jacobian product makes them itself, one pass more).
    """

    coords: np.ndarray
    weights: np.ndarray
    rho_in: np.ndarray
    rho_sad: np.ndarray
    scale: float
    dm_sad: np.ndarray
    dm_out: np.ndarray
    mo_energy: np.ndarray
    mo_coeff: np.ndarray
    mo_occ: np.ndarray
    coulomb: object
    envelope: object | None = None
    positivity: PositiveDensityMap | None = None
    model_pairs: object | None = None  # the model pass's atom derivatives (descriptor.PairDerivatives)

    def deformation_to_raw(self, potential: np.ndarray, sl: slice | None = None) -> np.ndarray:
        """A potential on the engine's (drho, grad drho) as one on the model's output."""
        return potential if self.positivity is None else self.positivity.to_raw(potential, sl)

    def deformation_to_sad(self, potential: np.ndarray, sl: slice) -> np.ndarray:
        """The potential on (rho_SAD, grad rho_SAD) that a potential on the engine's (drho, grad drho)
        exerts through rho_SAD: via the positivity map and the envelope e(rho_SAD) of the model."""
        out = np.zeros_like(potential)
        if self.positivity is not None:
            out += self.positivity.sad_extra(potential, sl)
        if self.envelope is not None:
            out += self.envelope.sad_potential(self.deformation_to_raw(potential, sl), sl)
        return out


def core_gradient(mol, mo_energy, mo_coeff, mo_occ, dm: np.ndarray) -> np.ndarray:
    """Tr P dh/dR - Tr W dS/dR + dE_nn/dR (natm, 3) Ha/bohr, as PySCF's rhf.grad_elec forms them."""
    grad = rhf_grad.Gradients(scf.RHF(mol))
    hcore_deriv = grad.hcore_generator(mol)
    s1 = grad.get_ovlp(mol)
    dme0 = grad.make_rdm1e(mo_energy, mo_coeff, mo_occ)
    out = np.zeros((mol.natm, 3))
    for atom, (_, _, p0, p1) in enumerate(mol.aoslice_by_atom()):
        out[atom] = np.einsum("xij,ij->x", hcore_deriv(atom), dm)
        out[atom] -= 2.0 * np.einsum("xij,ij->x", s1[:, p0:p1], dme0[p0:p1])
    return out + grad.grad_nuc(mol)


#: Largest block of 3-centre derivative integrals (d mu nu|P) that the Coulomb force terms hold at
#: once (bytes): the auxiliary shells are taken in blocks of at most this size. Uracil (132 AOs, 436
#: auxiliary functions) needs 182 MiB in all (one block); three uracils (396 AOs, 1,308 auxiliary
#: functions) would need 4.6 GiB in one piece.
INT3C_DERIVATIVE_BLOCK_BYTES = 512 * 2**20  # 512 MiB


def _aux_shell_blocks(ao_loc: np.ndarray, s0: int, s1: int, bytes_per_function: int) -> list[tuple[int, int]]:
    """Consecutive ranges of auxiliary shells in [s0, s1) holding at most INT3C_DERIVATIVE_BLOCK_BYTES
    of integrals each (at least one shell per range)."""
    per_block = max(1, INT3C_DERIVATIVE_BLOCK_BYTES // bytes_per_function)
    blocks, start = [], s0
    while start < s1:
        end = start + 1
        while end < s1 and ao_loc[end + 1] - ao_loc[start] <= per_block:
            end += 1
        blocks.append((start, end))
        start = end
    return blocks


def coulomb_gradient(mol, fit, dm_out: np.ndarray, dm_sad: np.ndarray, fit_change: np.ndarray, scale: float,
                     rank: int = 0, size: int = 1, scratch: ScratchArrays | None = None) -> np.ndarray:
    """The analytic Coulomb terms (natm, 3):
    d_in.db[P_out]/dR + s Dd.db[P_SAD]/dR - d_in.dM/dR (d_in/2 + Dd) + s sum_{Q in A} Dd_Q (rhs_gradient)_Q.

    With ``size`` > 1 this rank's share: the 3-centre terms over its contiguous range of auxiliary
    shells (about naux / size functions), the 2-centre and grid terms on rank 0; the shares add up."""
    auxmol, d_in, delta = fit.auxmol, fit.fit, fit_change
    nao, naux = mol.nao, auxmol.nao
    ao_loc = auxmol.ao_loc_nr()
    s0, s1 = np.searchsorted(ao_loc, [naux * rank / size, naux * (rank + 1) / size])
    s0, s1 = int(s0), int(min(s1, auxmol.nbas))
    per_aux = np.zeros((3, naux))
    per_ao = np.zeros((3, nao))
    dms = np.array([dm_out, dm_sad])
    for b0, b1 in _aux_shell_blocks(ao_loc, s0, s1, 3 * nao * nao * 8):
        p0, p1 = int(ao_loc[b0]), int(ao_loc[b1])
        shells = (0, mol.nbas, 0, mol.nbas, b0, b1)
        buffer = None if scratch is None else scratch.take("int3c2e_ip1", 3 * nao * nao * (p1 - p0))
        ip1 = df.incore.aux_e2(mol, auxmol, "int3c2e_ip1", aosym="s1", comp=3, shls_slice=shells,
                               out=buffer)  # (d mu nu|P)
        # both fits against the auxiliary index in one matrix product per component, in the layout libcint
        # writes (x, P, j, i contiguous), then each with its density matrix
        native = ip1.transpose(0, 3, 2, 1).reshape(3, p1 - p0, nao * nao)  # a view, no copy
        by_fit = (np.stack([d_in[p0:p1], scale * delta[p0:p1]]) @ native).reshape(3, 2, nao, nao)  # [x, fit, j, i]
        per_ao += np.einsum("xdji,dij->xi", by_fit, dms)
        # (mu nu|d P) = -(d mu nu|P) - (mu d nu|P) (the integral does not change when all three centres
        # move together), so for a symmetric P: sum P (mu nu|d P) = -2 sum P (d mu nu|P), from the same
        # integrals (libcint's int3c2e_ip2 cost as much again)
        contracted = -2.0 * (native @ dms.reshape(2, nao * nao).T)  # (3, P, 2)
        per_aux[:, p0:p1] = contracted[..., 0] * d_in[p0:p1] + contracted[..., 1] * scale * delta[p0:p1]
        del ip1, native
    if rank == 0:
        metric_ip1 = auxmol.intor("int2c2e_ip1")  # (3, naux, naux): (d P|Q)
        y = 0.5 * d_in + delta
        per_aux -= np.einsum("xPQ,Q->xP", metric_ip1, y) * d_in + np.einsum("xPQ,Q->xP", metric_ip1, d_in) * y
    # d/dR_A of a function centred on A is minus its derivative in r: all three terms change sign
    per_aux = -per_aux
    if rank == 0:
        per_aux += scale * (delta[:, None] * fit.rhs_gradient).T
    out = -2.0 * np.array([per_ao[:, p0:p1].sum(axis=1) for _, _, p0, p1 in mol.aoslice_by_atom()])
    aux_slices = auxmol.aoslice_by_atom()
    for atom in range(mol.natm):
        a0, a1 = aux_slices[atom, 2:]
        out[atom] += per_aux[:, a0:a1].sum(axis=1)
    return out


def harris_foulkes_gradient(mol, xc: str, state: OneShotState, source, comm, lap=None,
                            scratch: ScratchArrays | None = None) -> tuple[np.ndarray, np.ndarray]:
    """dE_HF/dR (natm, 3) Ha/bohr, reduced over ranks, and rho_out with its gradient at this rank's
    points (4, npts). ``lap(name)``, if given, marks the end of each part (a stage timer); ``scratch``
    holds the 3-centre derivative integrals (reused memory; default new arrays)."""
    lap = lap or (lambda name: None)
    fit = state.coulomb
    s, coords, weights, rho_in = state.scale, state.coords, state.weights, state.rho_in
    b_out = fit.projection(state.dm_out)
    delta = scipy.linalg.cho_solve(fit.metric_factor, b_out) - fit.fit  # Dd = d_out - d_in

    ni = numint.NumInt()
    npts = len(weights)
    v_delta = np.zeros(npts)  # sum_Q Dd_Q V_Q(r_g), where drho != 0
    v_delta[fit.active] = fit.potentials.potential(coords[fit.active], delta)
    z, atom_coords = mol.atom_charges(), mol.atom_coords()
    u_xc = np.empty((4, npts))  # f_xc[rho_in] (rho_out - rho_in)
    rho_out = np.empty((4, npts))

    on_sad = np.empty((4, npts))  # s u_xc (+ the envelope and positivity terms) against d rho_SAD / dR
    on_count = np.empty((4, npts))  # w (+ those terms) against d rho_SAD / dR (the normalization)

    def block(sl, ao, kept):
        """This block's part (3, n_kept) of v_xc[rho_in] against d rho_out / dR, on its kept AOs
        (``map_screened_ao_blocks``); fills rho_out, u_xc, on_sad and on_count at the block's points."""
        ao_t = ao.transpose(0, 2, 1)  # (10, n_kept, blk): eval_ao's own layout, points contiguous
        dm_out = kept_block(state.dm_out, kept)
        phi_out = dm_out @ ao_t[0]  # P phi^T (n_kept, blk)
        out_block = density_from_phi(ao_t, phi_out)
        rho_out[:, sl] = out_block
        _, vxc, fxc = ni.eval_xc_eff(xc, rho_in[:, sl], deriv=2, xctype="GGA")[:3]
        u_xc[:, sl] = np.einsum("ijg,jg->ig", fxc, out_block - rho_in[:, sl])
        w = weights[sl]
        sad_part = s * u_xc[:, sl] * w
        count = np.zeros((4, len(w)))
        count[0] = w
        # the grid part of the potential on drho, through rho_SAD (positivity map, envelope)
        on_drho = sad_part.copy()
        on_drho[0] += s * v_delta[sl] * w
        on_sad[:, sl] = sad_part + state.deformation_to_sad(on_drho, sl)
        on_count[:, sl] = count + state.deformation_to_sad(count, sl)
        part = np.zeros((1, 3, len(kept)))
        add_density_responses(part, ao, [dm_out], (vxc * w)[None], [phi_out])
        return kept, part[0]

    per_ao_out = np.zeros((3, mol.nao))
    for kept, part in map_screened_ao_blocks(block, mol, coords, 2):
        per_ao_out[:, kept] += part

    # the normalization: dE/ds = K / s, ds/dR = -(s / Q) dQ/dR -> a constant -K/Q on the value channel
    k_sums = comm.allreduce_sum(np.array([np.einsum("xg,xg,g->", u_xc, rho_in, weights)]))
    k_total = float(delta @ fit.rhs) + float(k_sums[0])
    shift = -k_total * s / mol.nelectron  # -K / Q with Q = N / s

    potential = s * u_xc * weights
    potential[0] += (s * v_delta + shift) * weights
    on_sad += shift * on_count
    tables = radial_tables(mol, state.dm_sad)
    gradient = per_atom(mol, per_ao_out) + sum(chunk_map(
        lambda sl: sad_atom_gradient(tables, atom_coords, coords[sl], on_sad[:, sl]), grid_blocks(npts)),
        np.zeros((mol.natm, 3)))
    lap("forces: grid terms")
    gradient += source.deformation_density_vjp(coords, z, atom_coords, state.deformation_to_raw(potential),
                                               rho_sad=state.rho_sad, pairs=state.model_pairs,
                                               comm=comm)
    lap("vjp")
    if comm.rank == 0:
        gradient += core_gradient(mol, state.mo_energy, state.mo_coeff, state.mo_occ, state.dm_out)
        lap("forces: core terms")
    gradient += coulomb_gradient(mol, fit, state.dm_out, state.dm_sad, delta, s, comm.rank, comm.size, scratch)
    lap("forces: Coulomb terms")
    return comm.allreduce_sum(gradient), rho_out


def remove_net_force(forces: np.ndarray) -> np.ndarray:
    """Forces (natm, 3) minus their mean: the energy is invariant to translations, so a net force is
    quadrature error. Without grid response (the Becke grid moves with the atoms) the model's terms
    leave one of ~6e-4 Ha/bohr on water (finite differences of E_HF on a frozen grid show the same
    net force, and agree with these forces to 1e-4 Ha/bohr)."""
    return forces - forces.mean(axis=0)
