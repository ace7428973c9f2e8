"""Coulomb potentials of the auxiliary (density-fitting) Gaussians at grid points, compiled.

The Coulomb fit of the model density needs (Q|drho) = sum_g w_g drho(r_g) V_Q(r_g), with
V_Q(r) = int chi_Q(r') / |r - r'| dr', and the consistent forces need the potential
sum_Q y_Q V_Q(r_g) of a set of fit coefficients y at the same points. For a solid-harmonic Gaussian
shell chi_Qm(r) = sum_p c_p exp(-a_p |r - A|^2) S_lm(r - A) (S_lm a polynomial of degree l,
PySCF's normalized contraction coefficients c_p and its cartesian-to-spherical transform) the
potential is closed-form:

    V_Qm(r) = S_lm(r - A) sum_p c_p (2 pi / a_p) F_l(a_p |r - A|^2),

F_l the Boys function. Beyond x = a_p |r - A|^2 >= BOYS_FAR the primitive is a point multipole,
F_l(x) = Gamma(l + 1/2) / (2 x^(l + 1/2)) (relative error < 2e-14), which needs no transcendental
function; below it F_l comes from a table (Taylor expansion in x around the nearest node, BOYS_STEP
apart, BOYS_TERMS terms). The result equals libcint's ``int2c2e`` between the auxiliary basis and
point charges (``potentials_reference``) to ~1e-14 of the largest value, at a fraction of its
cost, and no (naux, npts) array is formed: the sums are accumulated in the kernels. Lengths in
bohr, potentials in hartree per unit charge (atomic units).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pyscf import gto

from ipi_jlcdm.electronic.density import grid_blocks
from ipi_jlcdm.threads import chunk_map

#: x = a r^2 from which a primitive's potential is that of a point multipole.
BOYS_FAR = 45.0
#: Spacing of the Boys-function table and the number of Taylor terms (error (STEP/2)^TERMS / TERMS!).
BOYS_STEP = 0.05
BOYS_TERMS = 7


def cartesian_exponents(l: int) -> list[tuple[int, int, int]]:
    """(lx, ly, lz) of the cartesian monomials of degree l in libcint's order (xx, xy, xz, yy, yz, zz)."""
    return [(lx, ly, l - lx - ly) for lx in range(l, -1, -1) for ly in range(l - lx, -1, -1)]


def boys_reference(m_max: int, x: np.ndarray) -> np.ndarray:
    """Boys functions F_0..F_m_max at x >= 0, (m_max + 1, len(x)): the convergent series of the
    highest order, F_m(x) = exp(-x) sum_k (2x)^k / ((2m+1)(2m+3)...(2m+2k+1)), then the stable
    downward recursion F_(m-1) = (2x F_m + exp(-x)) / (2m - 1)."""
    x = np.asarray(x, dtype=float)
    top = m_max + 40  # the recursion from a higher order damps the series' rounding
    term = np.full_like(x, 1.0 / (2 * top + 1))
    total = term.copy()
    denominator = 2.0 * top + 1.0
    for _ in range(2000):
        denominator += 2.0
        term = term * 2.0 * x / denominator
        total += term
        if np.all(term <= 1e-18 * total):
            break
    ex = np.exp(-x)
    f = ex * total
    out = np.empty((m_max + 1, len(x)))
    for m in range(top, 0, -1):
        f = (2.0 * x * f + ex) / (2.0 * m - 1.0)
        if m - 1 <= m_max:
            out[m - 1] = f
    return out


def boys_table(l_max: int) -> np.ndarray:
    """F_m(x_i) (nodes, l_max + BOYS_TERMS) at x_i = i BOYS_STEP up to BOYS_FAR (+ one node)."""
    nodes = np.arange(int(round(BOYS_FAR / BOYS_STEP)) + 2) * BOYS_STEP
    return np.ascontiguousarray(boys_reference(l_max + BOYS_TERMS, nodes).T)


@njit(cache=True, inline="always", fastmath=True)
def _boys_near(x: float, l: int, table: np.ndarray) -> float:
    """F_l(x) for 0 <= x < BOYS_FAR from the table: sum_k F_(l+k)(x_i) (x_i - x)^k / k!."""
    i = int(x * (1.0 / BOYS_STEP) + 0.5)
    d = i * BOYS_STEP - x
    total = table[i, l + BOYS_TERMS - 1]
    for k in range(BOYS_TERMS - 1, 0, -1):
        total = table[i, l + k - 1] + total * d / k
    return total


@njit(cache=True, inline="always", fastmath=True)
def _atom_potentials(dx, dy, dz, s0, s1, shell_l, shell_ao, prim_start, prim_exp, prim_coef, prim_far, cart, c2s_row,
                     c2s_col, c2s_val, c2s_start, l_max, table, mono, sph, values):
    """V (into values, at the shells' auxiliary function indices) of the atom's shells s0..s1 at the
    displacement (dx, dy, dz) from the atom."""
    r2 = dx * dx + dy * dy + dz * dz
    # cartesian monomials of every degree up to l_max, then the solid harmonics (sparse transform)
    for c in range(cart.shape[0]):
        v = 1.0
        for _ in range(cart[c, 0]):
            v *= dx
        for _ in range(cart[c, 1]):
            v *= dy
        for _ in range(cart[c, 2]):
            v *= dz
        mono[c] = v
    sph[:] = 0.0
    for k in range(c2s_start[l_max + 1]):
        sph[c2s_row[k]] += c2s_val[k] * mono[c2s_col[k]]
    inv_r2 = 1.0 / max(r2, 1e-300)
    for s in range(s0, s1):
        l = shell_l[s]
        near = 0.0
        far = 0.0
        for p in range(prim_start[s], prim_start[s + 1]):
            x = prim_exp[p] * r2
            if x >= BOYS_FAR:
                far += prim_far[p]
            else:
                near += prim_coef[p] * _boys_near(x, l, table)
        if far != 0.0:  # far / r^(2l + 1)
            scale = math.sqrt(inv_r2)
            for _ in range(l):
                scale *= inv_r2
            near += far * scale
        offset = shell_ao[s]
        for m in range(2 * l + 1):
            values[offset + m] = near * sph[l * l + m]


@njit(cache=True, inline="always", fastmath=True)
def _point_potentials(px, py, pz, atom_coords, atom_shells, shell_l, shell_ao, prim_start, prim_exp, prim_coef,
                      prim_far, cart, c2s_row, c2s_col, c2s_val, c2s_start, l_max, table, mono, sph, values):
    """V_Q at the point (px, py, pz) for every auxiliary function Q, into values (naux,)."""
    for atom in range(atom_coords.shape[0]):
        s0, s1 = atom_shells[atom], atom_shells[atom + 1]
        if s1 > s0:
            _atom_potentials(px - atom_coords[atom, 0], py - atom_coords[atom, 1], pz - atom_coords[atom, 2], s0, s1,
                             shell_l, shell_ao, prim_start, prim_exp, prim_coef, prim_far, cart, c2s_row, c2s_col,
                             c2s_val, c2s_start, l_max, table, mono, sph, values)


@njit(cache=True, nogil=True, fastmath=True)
def _rhs_kernel(points, channels, atom_coords, atom_shells, shell_l, shell_ao, prim_start, prim_exp, prim_coef,
                prim_far, cart, c2s_row, c2s_col, c2s_val, c2s_start, l_max, table, naux):
    """out (nch, naux) = sum_g channels[:, g] V_Q(points[g])."""
    out = np.zeros((channels.shape[0], naux))
    mono, sph, values = np.empty(cart.shape[0]), np.empty((l_max + 1) ** 2), np.empty(naux)
    for g in range(points.shape[0]):
        _point_potentials(points[g, 0], points[g, 1], points[g, 2], atom_coords, atom_shells, shell_l, shell_ao,
                          prim_start, prim_exp, prim_coef, prim_far, cart, c2s_row, c2s_col, c2s_val, c2s_start, l_max,
                          table, mono, sph, values)
        for ch in range(channels.shape[0]):
            c = channels[ch, g]
            for q in range(naux):
                out[ch, q] += c * values[q]
    return out


@njit(cache=True, nogil=True, fastmath=True)
def _potential_kernel(points, coefficients, atom_coords, atom_shells, shell_l, shell_ao, prim_start, prim_exp,
                      prim_coef, prim_far, cart, c2s_row, c2s_col, c2s_val, c2s_start, l_max, table, naux):
    """out (nset, npts) = sum_Q coefficients[:, Q] V_Q(points[g])."""
    out = np.zeros((coefficients.shape[0], points.shape[0]))
    mono, sph, values = np.empty(cart.shape[0]), np.empty((l_max + 1) ** 2), np.empty(naux)
    for g in range(points.shape[0]):
        _point_potentials(points[g, 0], points[g, 1], points[g, 2], atom_coords, atom_shells, shell_l, shell_ao,
                          prim_start, prim_exp, prim_coef, prim_far, cart, c2s_row, c2s_col, c2s_val, c2s_start, l_max,
                          table, mono, sph, values)
        for k in range(coefficients.shape[0]):
            acc = 0.0
            for q in range(naux):
                acc += coefficients[k, q] * values[q]
            out[k, g] = acc
    return out


class AuxiliaryPotentials:
    """The Coulomb potentials of an auxiliary basis (a PySCF Mole of spherical Gaussians) at points.

    ``rhs(points, channels)``: sum_g channels[:, g] V_Q(r_g), (nch, naux); ``potential(points, y)``:
    sum_Q y_Q V_Q(r_g), (npts,) for y (naux,) or (nset, npts) for y (nset, naux). Both run blocks of
    points on threads (``threads.chunk_map``)."""

    def __init__(self, auxmol: gto.Mole):
        if auxmol.cart:
            raise ValueError("AuxiliaryPotentials needs a spherical auxiliary basis (auxmol.cart is True)")
        shell_atom = np.array([auxmol.bas_atom(s) for s in range(auxmol.nbas)], dtype=np.int64)
        if np.any(np.diff(shell_atom) < 0):
            raise ValueError("AuxiliaryPotentials needs the auxiliary shells grouped by atom (PySCF's order)")
        self.naux = int(auxmol.nao)
        self.atom_coords = np.ascontiguousarray(auxmol.atom_coords())
        self.atom_shells = np.searchsorted(shell_atom, np.arange(auxmol.natm + 1)).astype(np.int64)
        self.shell_l = np.array([auxmol.bas_angular(s) for s in range(auxmol.nbas)], dtype=np.int64)
        self.shell_ao = np.asarray(auxmol.ao_loc_nr(), dtype=np.int64)
        exps, coefs, far, starts = [], [], [], [0]
        for s in range(auxmol.nbas):
            if auxmol.bas_nctr(s) != 1:
                raise ValueError("AuxiliaryPotentials needs one contraction per auxiliary shell")
            a, c, l = auxmol.bas_exp(s), auxmol._libcint_ctr_coeff(s)[:, 0], int(self.shell_l[s])
            exps.extend(a)
            coefs.extend(c * 2.0 * np.pi / a)
            far.extend(c * np.pi * math.gamma(l + 0.5) * a ** -(l + 1.5))  # c (2 pi / a) Gamma(l+1/2) / (2 a^(l+1/2))
            starts.append(len(exps))
        self.prim_exp, self.prim_coef, self.prim_far = np.array(exps), np.array(coefs), np.array(far)
        self.prim_start = np.array(starts, dtype=np.int64)
        self.l_max = int(self.shell_l.max(initial=0))
        self.cart = np.array([e for l in range(self.l_max + 1) for e in cartesian_exponents(l)], dtype=np.int64)
        rows, cols, vals, starts = [], [], [], [0]
        cart_start = 0
        for l in range(self.l_max + 1):
            transform = gto.cart2sph(l).T  # (2l + 1, ncart)
            m_idx, c_idx = np.nonzero(np.abs(transform) > 1e-15)
            rows.extend(l * l + m_idx)
            cols.extend(cart_start + c_idx)
            vals.extend(transform[m_idx, c_idx])
            cart_start += transform.shape[1]
            starts.append(len(vals))
        self.c2s_row, self.c2s_col = np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)
        self.c2s_val, self.c2s_start = np.array(vals), np.array(starts, dtype=np.int64)
        self.table = boys_table(self.l_max)

    def _tables(self) -> tuple:
        return (self.atom_coords, self.atom_shells, self.shell_l, self.shell_ao, self.prim_start, self.prim_exp,
                self.prim_coef, self.prim_far, self.cart, self.c2s_row, self.c2s_col, self.c2s_val, self.c2s_start,
                self.l_max, self.table)

    def rhs(self, points: np.ndarray, channels: np.ndarray) -> np.ndarray:
        """sum_g channels[k, g] V_Q(points[g]): (nch, naux) for channels (nch, npts), points (npts, 3) bohr."""
        points = np.ascontiguousarray(points, dtype=float)
        channels = np.ascontiguousarray(channels, dtype=float)
        tables = self._tables()
        parts = chunk_map(lambda sl: _rhs_kernel(points[sl], channels[:, sl], *tables, self.naux),
                          grid_blocks(len(points)))
        return sum(parts, np.zeros((len(channels), self.naux)))

    def potential(self, points: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
        """sum_Q y_Q V_Q(points[g]): (npts,) for y (naux,), (nset, npts) for y (nset, naux)."""
        points = np.ascontiguousarray(points, dtype=float)
        y = np.asarray(coefficients, dtype=float)
        single = y.ndim == 1
        y = np.ascontiguousarray(np.atleast_2d(y))
        out = np.empty((len(y), len(points)))
        tables = self._tables()

        def block(sl: slice) -> None:
            out[:, sl] = _potential_kernel(points[sl], y, *tables, self.naux)

        chunk_map(block, grid_blocks(len(points)))
        return out[0] if single else out


def potentials_reference(auxmol: gto.Mole, points: np.ndarray) -> np.ndarray:
    """V_Q at the points (naux, npts) from libcint (``int2c2e`` against unit point charges)."""
    return gto.intor_cross("int2c2e", auxmol, gto.fakemol_for_charges(np.asarray(points, dtype=float)))
