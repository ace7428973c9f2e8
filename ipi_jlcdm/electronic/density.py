"""Densities on the integration grid: atomic superposition (SAD), densities from density
matrices, and deformation-density sources for the one-shot engine.

A *deformation-density source* is any object with
``deformation_density(points, atomic_numbers, atom_coords, gradient=True, rho_sad=None) -> (drho, grad_drho)``
(shapes (npts,) and (npts, 3), e/bohr^3 and e/bohr^4; rho_sad (4, npts) is the SAD density and its
gradient at the points, which models with an envelope block use): the JLCDM model, or the exact
rho[P_SCF] - rho_SAD used to check the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np
from pyscf import gto
from pyscf.dft import gen_grid, numint
from pyscf.scf import hf

from ipi_jlcdm.electronic.sad_radial import radial_tables, sad_on_points
from ipi_jlcdm.jl import jl_kernels
from ipi_jlcdm.threads import chunk_map

T = TypeVar("T")

#: Points per block when evaluating AOs on the grid (a multiple of PySCF's BLKSIZE). Small enough that a
#: block's AO values stay in cache between the passes over them: on uracil (132 AOs) the AO second
#: derivatives took 0.55 s over the grid in blocks of 896 points, 1.4 s in blocks of 7168.
GRID_BLOCK = 16 * numint.BLKSIZE

_SAD_CACHE: dict[tuple, np.ndarray] = {}


def sad_density_matrix(mol: gto.Mole) -> np.ndarray:
    """Superposition of atomic densities (PySCF ``init_guess_by_atom``), (nao, nao).

    It is block diagonal in atom-centred AOs, so it does not depend on the geometry: cached per
    (elements in order, basis, charge).
    """
    key = (tuple(mol.atom_symbol(i) for i in range(mol.natm)), str(mol.basis), mol.charge, mol.cart)
    if key not in _SAD_CACHE:
        _SAD_CACHE[key] = np.asarray(hf.init_guess_by_atom(mol))
    return _SAD_CACHE[key]


def grid_points(grids) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (ngrid, 3) bohr and weights (ngrid,) of a built PySCF grid, without the
    zero-weight padding PySCF adds for alignment. Weights can be negative (Becke partition)."""
    keep = grids.weights != 0.0
    return np.asarray(grids.coords[keep]), np.asarray(grids.weights[keep])


#: Default of the one-shot engine's ``small_rho_cutoff`` (electrons): the criterion of PySCF's
#: ``RKS.small_rho_cutoff`` (``Grids.prune_by_density_``), applied to rho_SAD.
SMALL_RHO_CUTOFF = 1e-7


def significant_points(rho: np.ndarray, weights: np.ndarray, n_grid: int, cutoff: float = SMALL_RHO_CUTOFF
                       ) -> np.ndarray:
    """Mask (npts,) of the points with |rho w| >= cutoff / n_grid: PySCF's ``prune_by_density_`` for a
    grid of n_grid points in all (of which these, rho (npts,) e/bohr^3 and weights (npts,), may be one
    MPI rank's share). The points left out carry less than ``cutoff`` electrons together."""
    return np.abs(rho * weights) >= cutoff / n_grid


def grid_blocks(npts: int, block: int = GRID_BLOCK) -> list[slice]:
    """Consecutive slices of at most ``block`` points covering npts points."""
    return [slice(start, min(start + block, npts)) for start in range(0, npts, block)]


def density_from_phi(ao_t: np.ndarray, dm_phi: np.ndarray) -> np.ndarray:
    """rho and grad rho (4, blk) of a symmetric density matrix P from AO values ao_t (>= 4, nao, blk)
    (points contiguous) and P phi^T (nao, blk): rho = phi P phi, grad rho = 2 grad(phi) P phi."""
    rho = np.einsum("xig,ig->xg", ao_t[:4], dm_phi)
    rho[1:4] *= 2.0
    return rho


def sad_density_on_points(mol: gto.Mole, coords: np.ndarray) -> np.ndarray:
    """rho_SAD and its gradient (4, npts) at points (npts, 3) bohr, from the radial tables of the
    atoms' SAD densities (``sad_radial``; equal to the density of ``sad_density_matrix`` to ~1e-12)."""
    tables = radial_tables(mol, sad_density_matrix(mol))
    atom_coords = mol.atom_coords()
    out = np.empty((4, len(coords)))

    def block(sl: slice) -> None:
        out[:, sl] = sad_on_points(tables, atom_coords, coords[sl])

    chunk_map(block, grid_blocks(len(coords)))
    return out


def map_ao_blocks(function: Callable[[slice, np.ndarray, np.ndarray], T], mol: gto.Mole, coords: np.ndarray,
                  deriv: int, block: int = GRID_BLOCK) -> list[T]:
    """[function(slice, AO values, shell mask) for each block of points], the blocks spread over
    threads (``threads.chunk_map``); AO values have shape (blk, nao) for deriv=0, (4, blk, nao)
    for deriv=1 and (10, blk, nao) for deriv=2 (PySCF's order). ``function`` may write its own
    slice of shared output arrays and returns the block's partial sums."""

    def run(sl: slice) -> T:
        mask = gen_grid.make_mask(mol, coords[sl])
        return function(sl, numint.eval_ao(mol, coords[sl], deriv=deriv, non0tab=mask), mask)

    return chunk_map(run, grid_blocks(len(coords), block))


#: Largest fraction of the AOs that ``map_screened_ao_blocks`` copies out of a block's AO values: above
#: it the copy (10 components at deriv=2) costs more than the smaller products save (uracil, every
#: block compacted: the force grid terms took 1.18 s instead of 0.92 s).
COMPACT_FRACTION = 0.5


def map_screened_ao_blocks(function: Callable[[slice, np.ndarray, np.ndarray], T], mol: gto.Mole, coords: np.ndarray,
                           deriv: int, block: int = GRID_BLOCK) -> list[T]:
    """``map_ao_blocks`` (deriv >= 1) with each block's AO values restricted to the AOs that it keeps: those of
    the shells that PySCF's screening mask keeps at any of the block's points (``eval_ao`` sets the
    others to exactly zero there). function(slice, AO values (comp, blk, n_kept) (points contiguous in
    memory, as ``eval_ao`` lays them out), kept AO indices (n_kept,)); the block's nao x nao products
    then run over the kept AOs alone, with the density matrices' kept rows and columns. The fraction
    of those products left: 0.70 over uracil's grid, 0.14 over three uracils 7 angstrom apart. A block
    that keeps more than COMPACT_FRACTION of the AOs gets them all (kept = all indices, no copy)."""
    ao_shell = np.repeat(np.arange(mol.nbas), np.diff(mol.ao_loc_nr()))

    def run(sl: slice) -> T:
        mask = gen_grid.make_mask(mol, coords[sl])
        kept = np.flatnonzero(mask.any(axis=0)[ao_shell])
        ao = numint.eval_ao(mol, coords[sl], deriv=deriv, non0tab=mask)
        if len(kept) > COMPACT_FRACTION * mol.nao:  # the copy would cost more than the products save
            return function(sl, ao, np.arange(mol.nao))
        return function(sl, np.ascontiguousarray(ao.transpose(0, 2, 1)[:, kept]).transpose(0, 2, 1), kept)

    return chunk_map(run, grid_blocks(len(coords), block))


def kept_block(matrix: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The rows and columns ``kept`` (n_kept,) of an (nao, nao) matrix for a block of
    ``map_screened_ao_blocks``: the matrix itself (no copy) when the block keeps every AO."""
    return matrix if len(kept) == matrix.shape[0] else matrix[np.ix_(kept, kept)]


def density_on_points(mol: gto.Mole, dm: np.ndarray, coords: np.ndarray, gradient: bool = True) -> np.ndarray:
    """rho (and grad rho) of a symmetric density matrix (nao, nao) at points (npts, 3) bohr:
    (4, npts) if gradient else (npts,), e/bohr^3 (and e/bohr^4)."""
    out = np.empty((4, len(coords))) if gradient else np.empty(len(coords))

    def block(sl, ao, mask):
        # hermi=1: grad rho = 2 grad(phi) P phi, one matrix product per block instead of two
        out[..., sl] = numint.eval_rho(mol, ao, dm, mask, "GGA" if gradient else "LDA", hermi=1)

    map_ao_blocks(block, mol, coords, 1 if gradient else 0)
    return out


class ExactDeformation:
    """The exact deformation density rho[dm] - rho_SAD of a given density matrix (a pipeline check:
    the one-shot engine fed this reproduces the SCF that produced ``dm``)."""

    def __init__(self, mol: gto.Mole, dm: np.ndarray):
        self.mol = mol
        self.ddm = np.asarray(dm) - sad_density_matrix(mol)

    def deformation_density(self, points, atomic_numbers, atom_coords, gradient=True, rho_sad=None):
        if not np.allclose(atom_coords, self.mol.atom_coords()):
            raise ValueError("ExactDeformation is only valid at the geometry of its density matrix")
        rho = density_on_points(self.mol, self.ddm, points, gradient)
        if gradient:
            return rho[0], rho[1:4].T
        return rho, None


#: Index of d2 phi / dx_a dx_b in PySCF's deriv=2 AO array (xx, xy, xz, yy, yz, zz at 4..9).
SECOND_DERIVATIVE = ((4, 5, 6), (5, 7, 8), (6, 8, 9))


def add_density_response(per_ao: np.ndarray, ao: np.ndarray, dm: np.ndarray, wv: np.ndarray) -> None:
    """Accumulate the AO-resolved derivative of sum_g wv_g . (rho, grad rho)[dm](r_g) under moving
    basis functions: per_ao (3, nao) += sum_g [d_x phi_mu (T dm)_mu + sum_j wv_j d_x d_j phi_mu (phi dm)_mu]
    with T = wv_0 phi + sum_j wv_j d_j phi. The derivative for atom A is -2 sum_{mu in A} per_ao.
    ao: (10, blk, nao) (deriv=2); wv: (4, blk) potential times weights. One set of
    ``add_density_responses``."""
    out = np.zeros((1, 3, per_ao.shape[1]))
    add_density_responses(out, ao, [dm], np.asarray(wv)[None])
    per_ao += out[0]


def add_density_responses(per_ao: np.ndarray, ao: np.ndarray, dms: list[np.ndarray], wv: np.ndarray,
                          dm_phi: list[np.ndarray | None] | None = None) -> None:
    """``add_density_response`` for several sets at once, per_ao (nset, 3, nao), symmetric density
    matrices ``dms`` (nset of (nao, nao)), potentials wv (nset, 4, blk) and optionally dm phi^T
    (nao, blk) per set (None: computed here). The scaled AOs and the sums over points are compiled
    kernels (``jl_kernels``) that read the AO values once for all sets, in the points-contiguous
    layout PySCF's ``eval_ao`` returns; the products with the density matrices are BLAS."""
    wv = np.ascontiguousarray(wv, dtype=float)
    ao_t = ao.transpose(0, 2, 1)  # (10, nao, blk), points contiguous: how eval_ao lays them out
    scaled = jl_kernels.scaled_ao(ao_t, wv)  # (nset, nao, blk)
    t_dm, phi = np.empty_like(scaled), np.empty_like(scaled)
    for s, dm in enumerate(dms):
        np.matmul(dm, scaled[s], out=t_dm[s])
        given = None if dm_phi is None else dm_phi[s]
        phi[s] = dm @ ao_t[0] if given is None else given
    jl_kernels.add_response_sums(per_ao, ao_t, wv, t_dm, phi)


def add_density_response_reference(per_ao: np.ndarray, ao: np.ndarray, dm: np.ndarray, wv: np.ndarray) -> None:
    """``add_density_response`` in plain numpy (the reference the tests compare the kernels with)."""
    phi_dm = ao[0] @ dm
    t_dm = (wv[0][:, None] * ao[0] + np.einsum("jg,jgi->gi", wv[1:4], ao[1:4])) @ dm
    for x in range(3):
        second = sum(wv[1 + j][:, None] * ao[SECOND_DERIVATIVE[x][j]] for j in range(3))
        per_ao[x] += np.einsum("gi,gi->i", ao[1 + x], t_dm) + np.einsum("gi,gi->i", second, phi_dm)


def per_atom(mol, per_ao: np.ndarray) -> np.ndarray:
    """(natm, 3) = -2 sum over each atom's AOs of per_ao (3, nao)."""
    out = np.zeros((mol.natm, 3))
    for atom, (_, _, p0, p1) in enumerate(mol.aoslice_by_atom()):
        out[atom] = -2.0 * per_ao[:, p0:p1].sum(axis=1)
    return out
