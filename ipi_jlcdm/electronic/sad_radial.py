"""The atomic superposition rho_SAD from tabulated radial densities, and its atom derivatives.

PySCF's atomic guess (``init_guess_by_atom``) is block diagonal in the atoms' basis functions and
spherically averaged, so rho_SAD(r) = sum_A rho_Z(|r - R_A|) with one radial density per element
(measured: the blocks' densities vary by 1e-15 over a sphere). Each rho_Z is tabulated once, from
its block of the SAD density matrix and the AO values with their first and second derivatives, on
nodes r_k = R (exp(s t_k) - 1) / (exp(s) - 1) (t_k uniform, dense near the nucleus where the core
Gaussians are narrow) with rho, rho' and rho'' at each node, and interpolated by quintic Hermite
polynomials (error O(h^6)). What the grid passes then need costs a few flops per (point, atom)
pair instead of AO values: rho_SAD and grad rho_SAD on the grid, and for the forces
sum_g u_g . d(rho_SAD, grad rho_SAD)(r_g)/dR_A = -sum_g [u_0 rho' u_hat + H u_grad],
H = rho'' u_hat u_hat^T + (rho'/r)(1 - u_hat u_hat^T). Lengths in bohr, densities in e/bohr^3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit
from pyscf import gto
from pyscf.dft import numint

#: Radius (bohr) beyond which an atomic density is taken as zero (def2-SVP's most diffuse functions
#: leave below 1e-20 e/bohr^3 there).
R_MAX_BOHR = 30.0
#: Nodes of the radial tables and the stretch s of their map: measured against the AO evaluation on
#: uracil's level-3 grid, largest errors 1e-15 of rho_SAD's largest value and 8e-12 of its gradient's
#: (tests/test_grid_kernels.py checks 1e-10).
N_NODES = 4000
STRETCH = 12.0

_TABLES: dict[tuple, RadialTables] = {}


@dataclass
class RadialTables:
    """rho_Z, rho_Z' and rho_Z'' (nelem, 3, N_NODES) at the nodes ``radii`` (N_NODES,) bohr, for the
    elements in the order of ``element_of_atom`` (natm,) indices."""

    radii: np.ndarray
    values: np.ndarray
    element_of_atom: np.ndarray


def radial_tables(mol: gto.Mole, dm_sad: np.ndarray) -> RadialTables:
    """The tables of ``mol``'s elements from its SAD density matrix (cached per basis and elements)."""
    symbols = [mol.atom_symbol(i) for i in range(mol.natm)]
    elements = sorted(set(symbols))
    key = (str(mol.basis), mol.cart, tuple(elements))
    if key not in _TABLES:
        t = np.linspace(0.0, 1.0, N_NODES)
        radii = R_MAX_BOHR * np.expm1(STRETCH * t) / np.expm1(STRETCH)
        slices = mol.aoslice_by_atom()
        values = np.empty((len(elements), 3, N_NODES))
        for e, symbol in enumerate(elements):
            atom = symbols.index(symbol)
            p0, p1 = slices[atom, 2:]
            values[e] = _radial_density(mol, atom, dm_sad[p0:p1, p0:p1], radii)
        _TABLES[key] = RadialTables(radii, values, np.zeros(0, dtype=np.int64))
    cached = _TABLES[key]
    return RadialTables(cached.radii, cached.values, np.array([elements.index(s) for s in symbols], dtype=np.int64))


def _radial_density(mol: gto.Mole, atom: int, block: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """(rho, rho', rho'') (3, nodes) of one atom's block of the SAD density matrix, along a
    direction (the block is spherical): rho = phi P phi, d_i rho = 2 d_i phi P phi,
    d_i d_j rho = 2 (d_i d_j phi P phi + d_i phi P d_j phi)."""
    symbol = mol.atom_symbol(atom)
    single = gto.M(atom=[(symbol, (0.0, 0.0, 0.0))], basis={symbol: mol._basis[symbol]},
                   spin=int(mol.atom_charge(atom)) % 2, verbose=0, cart=mol.cart, unit="Bohr")
    direction = np.array([0.48, 0.6, 0.64])  # unit length
    ao = numint.eval_ao(single, radii[:, None] * direction, deriv=2)  # (10, nodes, nao)
    phi_p = ao[0] @ block
    rho = np.einsum("gi,gi->g", ao[0], phi_p)
    grad = 2.0 * np.einsum("xgi,gi->xg", ao[1:4], phi_p)
    hess = np.empty((3, 3, len(radii)))
    index = ((4, 5, 6), (5, 7, 8), (6, 8, 9))
    for i in range(3):
        for j in range(3):
            hess[i, j] = 2.0 * (np.einsum("gi,gi->g", ao[index[i][j]], phi_p)
                                + np.einsum("gi,gj,ij->g", ao[1 + i], ao[1 + j], block))
    first = direction @ grad
    second = np.einsum("i,ijg,j->g", direction, hess, direction)
    return np.array([rho, first, second])


def sad_on_points(tables: RadialTables, atom_coords: np.ndarray, points: np.ndarray) -> np.ndarray:
    """rho_SAD and its gradient (4, npts) at points (npts, 3) bohr."""
    return _sad_on_points(np.ascontiguousarray(points, dtype=float), np.asarray(atom_coords, dtype=float),
                          tables.element_of_atom, tables.values, R_MAX_BOHR, STRETCH)


def sad_atom_gradient(tables: RadialTables, atom_coords: np.ndarray, points: np.ndarray,
                      potential: np.ndarray) -> np.ndarray:
    """sum_g u_g . d(rho_SAD, grad rho_SAD)(r_g) / d R_A (natm, 3) for u = ``potential`` (4, npts)."""
    return _sad_atom_gradient(np.ascontiguousarray(points, dtype=float), np.asarray(atom_coords, dtype=float),
                              tables.element_of_atom, tables.values, R_MAX_BOHR, STRETCH,
                              np.ascontiguousarray(potential, dtype=float))


@njit(cache=True, nogil=True, fastmath=True)
def _interpolate(table, r, r_max, stretch):
    """(rho, rho', rho'') at r from one element's table (3, nodes): quintic Hermite on the node interval."""
    nodes = table.shape[1]
    if r >= r_max:
        return 0.0, 0.0, 0.0
    t = np.log1p(r * np.expm1(stretch) / r_max) / stretch * (nodes - 1)
    k = min(int(t), nodes - 2)
    r0 = r_max * np.expm1(stretch * k / (nodes - 1)) / np.expm1(stretch)
    r1 = r_max * np.expm1(stretch * (k + 1) / (nodes - 1)) / np.expm1(stretch)
    h = r1 - r0
    x = (r - r0) / h
    f0, d0, s0 = table[0, k], table[1, k] * h, table[2, k] * h * h
    f1, d1, s1 = table[0, k + 1], table[1, k + 1] * h, table[2, k + 1] * h * h
    # quintic Hermite in the local variable x in [0, 1]: p(x) = sum c_n x^n
    c0, c1, c2 = f0, d0, 0.5 * s0
    c3 = 10.0 * (f1 - f0) - 6.0 * d0 - 4.0 * d1 - 1.5 * s0 + 0.5 * s1
    c4 = -15.0 * (f1 - f0) + 8.0 * d0 + 7.0 * d1 + 1.5 * s0 - s1
    c5 = 6.0 * (f1 - f0) - 3.0 * (d0 + d1) - 0.5 * s0 + 0.5 * s1
    value = c0 + x * (c1 + x * (c2 + x * (c3 + x * (c4 + x * c5))))
    first = c1 + x * (2.0 * c2 + x * (3.0 * c3 + x * (4.0 * c4 + x * 5.0 * c5)))
    second = 2.0 * c2 + x * (6.0 * c3 + x * (12.0 * c4 + x * 20.0 * c5))
    return value, first / h, second / (h * h)


@njit(cache=True, inline="always")
def _separation(points, g, atom_coords, a):
    """r_g - R_a as (dx, dy, dz) and its length (bohr)."""
    dx = points[g, 0] - atom_coords[a, 0]
    dy = points[g, 1] - atom_coords[a, 1]
    dz = points[g, 2] - atom_coords[a, 2]
    return dx, dy, dz, np.sqrt(dx * dx + dy * dy + dz * dz)


@njit(cache=True, nogil=True, fastmath=True)
def _sad_on_points(points, atom_coords, element, tables, r_max, stretch):
    out = np.zeros((4, points.shape[0]))
    for g in range(points.shape[0]):
        for a in range(atom_coords.shape[0]):
            dx, dy, dz, r = _separation(points, g, atom_coords, a)
            if r >= r_max:
                continue
            value, first, _ = _interpolate(tables[element[a]], r, r_max, stretch)
            out[0, g] += value
            if r > 1e-12:
                scale = first / r
                out[1, g] += scale * dx
                out[2, g] += scale * dy
                out[3, g] += scale * dz
    return out


@njit(cache=True, nogil=True, fastmath=True)
def _sad_atom_gradient(points, atom_coords, element, tables, r_max, stretch, potential):
    natm = atom_coords.shape[0]
    out = np.zeros((natm, 3))
    for g in range(points.shape[0]):
        u0, ux, uy, uz = potential[0, g], potential[1, g], potential[2, g], potential[3, g]
        if u0 == 0.0 and ux == 0.0 and uy == 0.0 and uz == 0.0:
            continue
        for a in range(natm):
            dx, dy, dz, r = _separation(points, g, atom_coords, a)
            if r >= r_max:
                continue
            _, first, second = _interpolate(tables[element[a]], r, r_max, stretch)
            if r > 1e-12:
                hx, hy, hz = dx / r, dy / r, dz / r
                along = hx * ux + hy * uy + hz * uz
                tangent = first / r
                # -[u0 rho' u_hat + rho'' (u.u_hat) u_hat + (rho'/r)(u - (u.u_hat) u_hat)]
                radial = u0 * first + (second - tangent) * along
                out[a, 0] -= radial * hx + tangent * ux
                out[a, 1] -= radial * hy + tangent * uy
                out[a, 2] -= radial * hz + tangent * uz
            else:  # at the nucleus: H = rho''(0) 1, no direction
                out[a, 0] -= second * ux
                out[a, 1] -= second * uy
                out[a, 2] -= second * uz
    return out
