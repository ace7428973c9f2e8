"""Compiled (numba) kernels of the JL model's prediction pass over (point, atom) pairs.

The formulas are those of the ``descriptor`` module docstring (the JL features and their contraction); the
numpy implementation there stays as the reference that the tests compare these kernels against.
One pass over a chunk of points has three parts:

1. ``pair_terms``: for every (point, atom) pair within r_cut, the radial functions J1, dJ1/dr, J2,
   dJ2/dr (Jacobi recurrences, with the derivative of the recurrence itself), the real solid
   harmonics S_lm of the unit vector, and the species sums A^Z_{nlm}(g) = sum_{i in Z} J2_n S_lm.
   Nothing (point, atom)-dense is formed: the pairs are a CSR list (``offsets`` per point).
2. The contraction B_l = A_l C_l with the coefficients, one BLAS matrix product per l (in
   ``descriptor``; it is the pass's floating-point bulk and BLAS does it best).
3. ``pair_outputs``: per point the model values sum_lm A.B + the one-body and i = j terms, and per
   pair the part of the spatial gradient carried by that atom's functions (the atom derivatives are
   its negative), for each mixing of the channels; the harmonics' gradients are recomputed per pair
   by their recurrence instead of stored.

Lengths in bohr. The kernels release the GIL: ``descriptor`` runs one chunk per thread
(``threads.chunk_map``), each with single-threaded BLAS, so that numba's and BLAS's thread pools
never compete for the cores (measured on 2 cores: a parallel kernel next to a threaded BLAS ran
1.7-3x slower than the same kernel on one thread). Compiled once per machine and cached on disk
(numba's ``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit


def jacobi_recurrence(n_max: int, a: float, b: float) -> np.ndarray:
    """Coefficients (max(n_max, 1), 3) of P_(n+1) = (A_n x + B_n) P_n - C_n P_(n-1), n = 0..n_max-1,
    for P_n^(a,b) in the standard normalization (row 0: P_1 = A_0 x + B_0, C_0 = 0)."""
    out = np.zeros((max(n_max, 1), 3))
    out[0] = 0.5 * (a + b + 2.0), (a + 1.0) - 0.5 * (a + b + 2.0), 0.0
    for n in range(1, n_max):
        s = 2.0 * n + a + b
        c0 = 2.0 * (n + 1) * (n + a + b + 1.0) * s
        out[n] = ((s + 1.0) * (s + 2.0) * s / c0, (s + 1.0) * (a * a - b * b) / c0,
                  2.0 * (n + a) * (n + b) * (s + 2.0) / c0)
    return out


@njit(cache=True, inline="always", fastmath=True)
def _jacobi(x: float, n_max: int, rec: np.ndarray, p: np.ndarray, dp: np.ndarray) -> None:
    """P_n(x) and dP_n/dx for n = 0..n_max into p, dp from the recurrence coefficients ``rec``
    (``jacobi_recurrence``) and the recurrence's own derivative."""
    p[0] = 1.0
    dp[0] = 0.0
    if n_max >= 1:
        p[1] = rec[0, 0] * x + rec[0, 1]
        dp[1] = rec[0, 0]
    for n in range(1, n_max):
        lin = rec[n, 0] * x + rec[n, 1]
        p[n + 1] = lin * p[n] - rec[n, 2] * p[n - 1]
        dp[n + 1] = lin * dp[n] + rec[n, 0] * p[n] - rec[n, 2] * dp[n - 1]


def harmonic_recurrence(l_max: int) -> np.ndarray:
    """Constants (max(l_max, 1), 2 l_max + 1, 3) of the solid-harmonic recurrence from l to l + 1 in
    ``_harmonics``: per (l, m + l) the sectoral factor f_l (stored at every m), sqrt((l+m)(l-m)) and
    1 / sqrt((l+m+1)(l-m+1)); precomputed so that the kernels take no square roots per pair."""
    out = np.zeros((max(l_max, 1), 2 * l_max + 1, 3))
    for l in range(l_max):
        out[l, :, 0] = np.sqrt((2.0 if l == 0 else 1.0) * (2 * l + 1) / (2 * l + 2))
        for m in range(-l, l + 1):
            out[l, m + l, 1] = np.sqrt(float((l + m) * (l - m)))
            out[l, m + l, 2] = 1.0 / np.sqrt(float((l + m + 1) * (l - m + 1)))
    return out


@njit(cache=True, inline="always", fastmath=True)
def _harmonics(x: float, y: float, z: float, l_max: int, rec: np.ndarray, val: np.ndarray, grad: np.ndarray,
               with_grad: bool) -> None:
    """Racah-normalized real solid harmonics S_lm(u) at u = (x, y, z), index l*l + l + m, and with
    ``with_grad`` their gradients dS/du (nlm, 3): the recurrence of ``harmonics.solid_harmonics``,
    its constants ``rec`` from ``harmonic_recurrence``."""
    r2 = x * x + y * y + z * z
    val[0] = 1.0
    if with_grad:
        grad[0, 0] = 0.0
        grad[0, 1] = 0.0
        grad[0, 2] = 0.0
    for l in range(l_max):
        f = rec[l, 0, 0]
        keep = 0.0 if l == 0 else 1.0
        top, bottom = l * l + 2 * l, l * l
        hi, lo = (l + 1) * (l + 1) + 2 * l + 2, (l + 1) * (l + 1)
        st, sb = val[top], val[bottom]
        val[hi] = f * (x * st - keep * y * sb)
        val[lo] = f * (y * st + keep * x * sb)
        if with_grad:
            for k in range(3):
                grad[hi, k] = f * (x * grad[top, k] - keep * y * grad[bottom, k])
                grad[lo, k] = f * (y * grad[top, k] + keep * x * grad[bottom, k])
            grad[hi, 0] += f * st
            grad[hi, 1] -= f * keep * sb
            grad[lo, 1] += f * st
            grad[lo, 0] += f * keep * sb
        a = 2.0 * l + 1.0
        for m in range(-l, l + 1):
            bb = rec[l, m + l, 1]
            inv_c = rec[l, m + l, 2]
            src = l * l + l + m
            dst = (l + 1) * (l + 1) + (l + 1) + m
            new = a * z * val[src]
            if with_grad:
                g0 = a * z * grad[src, 0]
                g1 = a * z * grad[src, 1]
                g2 = a * z * grad[src, 2] + a * val[src]
            if bb > 0:
                low = (l - 1) * (l - 1) + (l - 1) + m
                new -= bb * r2 * val[low]
                if with_grad:
                    g0 -= bb * (r2 * grad[low, 0] + 2.0 * val[low] * x)
                    g1 -= bb * (r2 * grad[low, 1] + 2.0 * val[low] * y)
                    g2 -= bb * (r2 * grad[low, 2] + 2.0 * val[low] * z)
            val[dst] = new * inv_c
            if with_grad:
                grad[dst, 0] = g0 * inv_c
                grad[dst, 1] = g1 * inv_c
                grad[dst, 2] = g2 * inv_c


@njit(cache=True, nogil=True, fastmath=True)
def pair_terms(points, atom_coords, offsets, pair_atom, species, n_species, r_cut, n1, rec1, r_min,
               p1_minus, n2, rec2, p2_minus, p2_plus, l_max, hrec):
    """Pair data of one chunk of points.

    points (c, 3), atom_coords (natm, 3) bohr; offsets (c + 1,) and pair_atom (npair,): the CSR list
    of the atoms within r_cut of each point; species (natm,) indices into the model's species.
    rec1, rec2: ``jacobi_recurrence`` of the one- and two-body polynomials; p1_minus (n1 + 1,): P_n(-1)
    of the one-body ones; p2_minus, p2_plus (n2 + 1,): P_n(-1), P_n(1) of the two-body ones; hrec:
    ``harmonic_recurrence(l_max)``.
    Returns r (npair,), unit (npair, 3), j1, dj1 (npair, n1), j2, dj2 (npair, n2 - 1), s (npair, nlm)
    and amp (nlm, c, n_species * (n2 - 1)) = A^Z_{n,lm}(g) stored as [lm, g, Z * (n2 - 1) + n].
    """
    c = points.shape[0]
    npair = pair_atom.shape[0]
    nr2 = n2 - 1
    nlm = (l_max + 1) * (l_max + 1)
    r = np.empty(npair)
    unit = np.empty((npair, 3))
    j1 = np.empty((npair, n1))
    dj1 = np.empty((npair, n1))
    j2 = np.empty((npair, nr2))
    dj2 = np.empty((npair, nr2))
    s = np.empty((npair, nlm))
    amp = np.zeros((nlm, c, n_species * nr2))
    k1 = np.pi / (r_cut - r_min)
    k2 = np.pi / r_cut
    for g in range(c):
        p1 = np.empty(n1 + 1)
        dp1 = np.empty(n1 + 1)
        p2 = np.empty(n2 + 1)
        dp2 = np.empty(n2 + 1)
        sval = np.empty(nlm)
        sgrad = np.empty((1, 3))
        for q in range(offsets[g], offsets[g + 1]):
            atom = pair_atom[q]
            dx = points[g, 0] - atom_coords[atom, 0]
            dy = points[g, 1] - atom_coords[atom, 1]
            dz = points[g, 2] - atom_coords[atom, 2]
            dist = np.sqrt(dx * dx + dy * dy + dz * dz)
            inv = 1.0 / max(dist, 1e-12)
            ux, uy, uz = dx * inv, dy * inv, dz * inv
            r[q] = dist
            unit[q, 0] = ux
            unit[q, 1] = uy
            unit[q, 2] = uz
            inside = 1.0 if dist <= r_cut else 0.0
            theta = k1 * (dist - r_min)
            x = np.cos(theta)
            dxdr = -k1 * np.sin(theta)
            _jacobi(x, n1, rec1, p1, dp1)
            for n in range(n1):
                j1[q, n] = (p1[n + 1] - p1_minus[n + 1]) * inside
                dj1[q, n] = dp1[n + 1] * dxdr * inside
            theta = k2 * dist
            x = np.cos(theta)
            dxdr = -k2 * np.sin(theta)
            _jacobi(x, n2, rec2, p2, dp2)
            for n in range(nr2):
                ends = p2_plus[n + 2] - p2_minus[n + 2]
                j2[q, n] = ((p2[n + 2] - p2_minus[n + 2]) - 0.5 * (1.0 + x) * ends) * inside
                dj2[q, n] = (dp2[n + 2] - 0.5 * ends) * dxdr * inside
            _harmonics(ux, uy, uz, l_max, hrec, sval, sgrad, False)
            base = species[atom] * nr2
            for lm in range(nlm):
                s[q, lm] = sval[lm]
                for n in range(nr2):
                    amp[lm, g, base + n] += j2[q, n] * sval[lm]
    return r, unit, j1, dj1, j2, dj2, s, amp


@njit(cache=True, nogil=True, fastmath=True)
def pair_outputs(offsets, pair_atom, species, unit, r, j1, dj1, j2, dj2, s, amp, contracted, one_body, self_term,
                 mixings, l_max, hrec, want_values, want_gradient, want_pairs):
    """Values, spatial gradients and per-pair atom-derivative parts of one chunk (after the contraction).

    contracted (nlm, c, nch, K): B = A C_l per channel; one_body (nch, nsp, n1); self_term
    (nch, nsp, nr2, nr2); mixings (nmix, nch, c); hrec: ``harmonic_recurrence(l_max)``. Returns
    values (nch, c) of the channels f_k,
    gradients (nmix, c, 3) of sum_k m_k f_k at fixed m, and g_pair (nmix, npair, 3): per pair the
    part of that gradient carried by the pair's atom (d/d R_atom = -g_pair); the arrays not asked
    for come back empty.
    """
    c = offsets.shape[0] - 1
    npair = pair_atom.shape[0]
    nch = contracted.shape[2]
    kdim = contracted.shape[3]
    nr2 = j2.shape[1]
    n1 = j1.shape[1]
    nlm = s.shape[1]
    nmix = mixings.shape[0]
    values = np.zeros((nch, c))
    gradients = np.zeros((nmix if want_gradient else 0, c, 3))
    g_pair = np.zeros((nmix if want_pairs else 0, npair if want_pairs else 0, 3))
    derivatives = want_gradient or want_pairs
    jb = np.empty((nch, nlm))
    djb = np.empty((nch, nlm))
    proj = np.empty((nch, nr2))
    sval = np.empty(nlm)
    sgrad = np.empty((nlm, 3))
    scalars = np.empty((nch, 6))  # per channel: radial, one-body, angular x y z, l-weighted
    for g in range(c):
        if want_values:
            for k in range(nch):
                total = 0.0
                for lm in range(nlm):
                    for kk in range(kdim):
                        total += amp[lm, g, kk] * contracted[lm, g, k, kk]
                values[k, g] = total
        for q in range(offsets[g], offsets[g + 1]):
            sp = species[pair_atom[q]]
            base = sp * nr2
            for k in range(nch):
                v = 0.0
                for n in range(n1):
                    v += j1[q, n] * one_body[k, sp, n]
                for n in range(nr2):
                    acc = 0.0
                    for n_left in range(nr2):
                        acc += j2[q, n_left] * self_term[k, sp, n_left, n]
                    proj[k, n] = acc
                    v -= acc * j2[q, n]
                values[k, g] += v
            if not derivatives:
                continue
            for k in range(nch):
                for lm in range(nlm):
                    a = 0.0
                    b = 0.0
                    for n in range(nr2):
                        bv = contracted[lm, g, k, base + n]
                        a += j2[q, n] * bv
                        b += dj2[q, n] * bv
                    jb[k, lm] = a
                    djb[k, lm] = b
            ux, uy, uz = unit[q, 0], unit[q, 1], unit[q, 2]
            _harmonics(ux, uy, uz, l_max, hrec, sval, sgrad, True)
            inv_r = 1.0 / max(r[q], 1e-12)
            for k in range(nch):
                rk = 0.0
                ax = 0.0
                ay = 0.0
                az = 0.0
                lk = 0.0
                for l in range(l_max + 1):
                    for lm in range(l * l, (l + 1) * (l + 1)):
                        rk += djb[k, lm] * sval[lm]
                        ax += jb[k, lm] * sgrad[lm, 0]
                        ay += jb[k, lm] * sgrad[lm, 1]
                        az += jb[k, lm] * sgrad[lm, 2]
                        lk += l * jb[k, lm] * sval[lm]
                for n in range(nr2):
                    rk -= dj2[q, n] * proj[k, n]
                ok = 0.0
                for n in range(n1):
                    ok += dj1[q, n] * one_body[k, sp, n]
                scalars[k, 0] = rk
                scalars[k, 1] = ok
                scalars[k, 2] = ax
                scalars[k, 3] = ay
                scalars[k, 4] = az
                scalars[k, 5] = lk
            for mm in range(nmix):
                radial = 0.0
                one = 0.0
                gx = 0.0
                gy = 0.0
                gz = 0.0
                lsum = 0.0
                for k in range(nch):
                    w = mixings[mm, k, g]
                    radial += w * scalars[k, 0]
                    one += w * scalars[k, 1]
                    gx += w * scalars[k, 2]
                    gy += w * scalars[k, 3]
                    gz += w * scalars[k, 4]
                    lsum += w * scalars[k, 5]
                along = 2.0 * radial + one
                ox = along * ux + 2.0 * (gx - ux * lsum) * inv_r
                oy = along * uy + 2.0 * (gy - uy * lsum) * inv_r
                oz = along * uz + 2.0 * (gz - uz * lsum) * inv_r
                if want_gradient:
                    gradients[mm, g, 0] += ox
                    gradients[mm, g, 1] += oy
                    gradients[mm, g, 2] += oz
                if want_pairs:
                    g_pair[mm, q, 0] = ox
                    g_pair[mm, q, 1] = oy
                    g_pair[mm, q, 2] = oz
    return values, gradients, g_pair


@njit(cache=True, nogil=True, fastmath=True)
def scaled_ao(ao_t, wv):
    """X[s] = wv[s, 0] phi + sum_j wv[s, j] d_j phi: (nset, nao, blk) for AO values ao_t (>= 4, nao, blk)
    (PySCF's eval_ao output transposed: points contiguous) and potentials wv (nset, 4, blk)."""
    nset, nao, blk = wv.shape[0], ao_t.shape[1], ao_t.shape[2]
    out = np.empty((nset, nao, blk))
    for i in range(nao):
        for g in range(blk):
            a0, a1, a2, a3 = ao_t[0, i, g], ao_t[1, i, g], ao_t[2, i, g], ao_t[3, i, g]
            for s in range(nset):
                out[s, i, g] = wv[s, 0, g] * a0 + wv[s, 1, g] * a1 + wv[s, 2, g] * a2 + wv[s, 3, g] * a3
    return out


@njit(cache=True, nogil=True, fastmath=True)
def add_response_sums(per_ao, ao_t, wv, t_dm, phi_dm):
    """per_ao[s, x, i] += sum_g d_x phi_ig T[s]_ig + sum_g (sum_j wv[s, 1+j, g] d_x d_j phi_ig) (dm phi)[s]_ig
    for AO values ao_t (10, nao, blk) (PySCF's deriv=2 order, xx, xy, xz, yy, yz, zz at 4..9, points
    contiguous), wv (nset, 4, blk), t_dm and phi_dm (nset, nao, blk): one pass over the AO values."""
    nset, nao, blk = wv.shape[0], ao_t.shape[1], ao_t.shape[2]
    acc = np.zeros((nset, 3))
    for i in range(nao):
        acc[:] = 0.0
        for g in range(blk):
            dx, dy, dz = ao_t[1, i, g], ao_t[2, i, g], ao_t[3, i, g]
            xx, xy, xz, yy, yz, zz = ao_t[4, i, g], ao_t[5, i, g], ao_t[6, i, g], ao_t[7, i, g], ao_t[8, i, g], \
                ao_t[9, i, g]
            for s in range(nset):
                t = t_dm[s, i, g]
                p = phi_dm[s, i, g]
                w1, w2, w3 = wv[s, 1, g], wv[s, 2, g], wv[s, 3, g]
                acc[s, 0] += dx * t + (w1 * xx + w2 * xy + w3 * xz) * p
                acc[s, 1] += dy * t + (w1 * xy + w2 * yy + w3 * yz) * p
                acc[s, 2] += dz * t + (w1 * xz + w2 * yz + w3 * zz) * p
        for s in range(nset):
            for x in range(3):
                per_ao[s, x, i] += acc[s, x]
