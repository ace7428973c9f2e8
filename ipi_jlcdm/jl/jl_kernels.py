"""Compiled (numba) kernels of the JL model's prediction pass over (point, atom) pairs.

The formulas are those of the ``descriptor`` module docstring (the JL features and their contraction); the
numpy implementation there stays as the reference that the tests compare these kernels against.
One pass over a chunk of points has three parts:

1. ``pair_terms``: for every (point, atom) pair within r_cut (``pair_list``), the radial functions
   J1, dJ1/dr, J2, dJ2/dr (Jacobi recurrences, with the derivative of the recurrence itself), the
   real solid harmonics S_lm of the unit vector (the recurrences run over all the chunk's pairs at
   once, pairs innermost), and the species sums A^Z_{nlm}(g) = sum_{i in Z} J2_n S_lm. Nothing
   (point, atom)-dense is formed: the pairs are a CSR list (``offsets`` per point).
2. The contraction B_l = A_l C_l with the coefficients, one BLAS matrix product per l (in
   ``descriptor``; it is the pass's floating-point bulk and BLAS does it best).
3. ``pair_outputs``: per point the model values sum_lm A.B + the one-body and i = j terms, and per
   pair the part of the spatial gradient carried by that atom's functions (the atom derivatives are
   its negative), for each mixing of the channels; the harmonics' gradients are recomputed per pair
   by their recurrence instead of stored (faster than forming them for all pairs at once: 1117
   against 1322 ns per pair, measured on uracil's grid).

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


@njit(cache=True, inline="always")
def _step_up(l: int, m: int, rec: np.ndarray):
    """The harmonic recurrence's step from l to l + 1 at order m (|m| <= l): its constants
    sqrt((l+m)(l-m)) and 1 / sqrt((l+m+1)(l-m+1)) (``harmonic_recurrence``) and the indices of
    S_(l,m), S_(l+1,m) and S_(l-1,m) (the last only used when the first constant is > 0)."""
    low = (l - 1) * (l - 1) + (l - 1) + m if l > 0 else 0
    return rec[l, m + l, 1], rec[l, m + l, 2], l * l + l + m, (l + 1) * (l + 1) + (l + 1) + m, low


@njit(cache=True, inline="always", fastmath=True)
def _harmonics(x: float, y: float, z: float, l_max: int, rec: np.ndarray, val: np.ndarray, grad: np.ndarray,
               with_grad: bool) -> None:
    """Racah-normalized real solid harmonics S_lm(u) at u = (x, y, z), index l*l + l + m, and with
    ``with_grad`` their gradients dS/du (3, nlm): the recurrence of ``harmonics.solid_harmonics``,
    its constants ``rec`` from ``harmonic_recurrence``."""
    r2 = x * x + y * y + z * z
    val[0] = 1.0
    if with_grad:
        grad[0, 0] = 0.0
        grad[1, 0] = 0.0
        grad[2, 0] = 0.0
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
                grad[k, hi] = f * (x * grad[k, top] - keep * y * grad[k, bottom])
                grad[k, lo] = f * (y * grad[k, top] + keep * x * grad[k, bottom])
            grad[0, hi] += f * st
            grad[1, hi] -= f * keep * sb
            grad[1, lo] += f * st
            grad[0, lo] += f * keep * sb
        a = 2.0 * l + 1.0
        for m in range(-l, l + 1):
            bb, inv_c, src, dst, low = _step_up(l, m, rec)
            new = a * z * val[src]
            if with_grad:
                g0 = a * z * grad[0, src]
                g1 = a * z * grad[1, src]
                g2 = a * z * grad[2, src] + a * val[src]
            if bb > 0:
                new -= bb * r2 * val[low]
                if with_grad:
                    g0 -= bb * (r2 * grad[0, low] + 2.0 * val[low] * x)
                    g1 -= bb * (r2 * grad[1, low] + 2.0 * val[low] * y)
                    g2 -= bb * (r2 * grad[2, low] + 2.0 * val[low] * z)
            val[dst] = new * inv_c
            if with_grad:
                grad[0, dst] = g0 * inv_c
                grad[1, dst] = g1 * inv_c
                grad[2, dst] = g2 * inv_c


@njit(cache=True, nogil=True)
def pair_list(points, atom_coords, r_cut):
    """The atoms within r_cut (bohr) of each point, as a CSR list: offsets (c + 1,), the point (npair,)
    and the atom (npair,) of every pair (int64), atoms in increasing order per point (the order of
    np.nonzero on the (point, atom) distance matrix)."""
    c, natm = points.shape[0], atom_coords.shape[0]
    cut2 = r_cut * r_cut
    offsets = np.zeros(c + 1, dtype=np.int64)
    for g in range(c):
        count = 0
        for a in range(natm):
            dx = points[g, 0] - atom_coords[a, 0]
            dy = points[g, 1] - atom_coords[a, 1]
            dz = points[g, 2] - atom_coords[a, 2]
            if dx * dx + dy * dy + dz * dz < cut2:
                count += 1
        offsets[g + 1] = offsets[g] + count
    atoms = np.empty(offsets[c], dtype=np.int64)
    owners = np.empty(offsets[c], dtype=np.int64)
    for g in range(c):
        q = offsets[g]
        for a in range(natm):
            dx = points[g, 0] - atom_coords[a, 0]
            dy = points[g, 1] - atom_coords[a, 1]
            dz = points[g, 2] - atom_coords[a, 2]
            if dx * dx + dy * dy + dz * dz < cut2:
                atoms[q] = a
                owners[q] = g
                q += 1
    return offsets, owners, atoms


@njit(cache=True, nogil=True)
def species_patterns(offsets, pair_atom, species):
    """Per point (c,) the set of species with an atom within r_cut, as a bit mask (bit s: species
    s), from the CSR pair list (``pair_list``); 0 for a point with no atom within r_cut."""
    c = offsets.shape[0] - 1
    out = np.zeros(c, dtype=np.int64)
    for g in range(c):
        mask = 0
        for q in range(offsets[g], offsets[g + 1]):
            mask |= 1 << species[pair_atom[q]]
        out[g] = mask
    return out


@njit(cache=True, nogil=True)
def gather_pairs(offsets, pair_atom, points):
    """The CSR pair list (``pair_list``) of the points ``points`` (indices, in that order): their
    offsets (c + 1,), pair points (npair,) counted within the selection, and atoms (npair,)."""
    c = points.shape[0]
    out_offsets = np.zeros(c + 1, dtype=np.int64)
    for i in range(c):
        g = points[i]
        out_offsets[i + 1] = out_offsets[i] + offsets[g + 1] - offsets[g]
    owners = np.empty(out_offsets[c], dtype=np.int64)
    atoms = np.empty(out_offsets[c], dtype=np.int64)
    for i in range(c):
        g = points[i]
        q = out_offsets[i]
        for src in range(offsets[g], offsets[g + 1]):
            owners[q] = i
            atoms[q] = pair_atom[src]
            q += 1
    return out_offsets, owners, atoms


@njit(cache=True)
def padded_rows(c: int) -> int:
    """Rows of the per-(l, m) blocks of A and B = A C for a chunk of c points: odd, so that the c
    points' rows of consecutive (l, m) fall in different cache sets. With c K 8 bytes between them
    (a multiple of 4 KiB for c = 256) the 36 rows that one point reads all mapped to one L1 set, and
    the kernels ran at the speed of L2 (measured: the per-point sum over A.B took 7 ns per
    multiply-add)."""
    return c + 1 if c % 2 == 0 else c


@njit(cache=True, nogil=True, fastmath=True)
def _harmonics_of_pairs(ux, uy, uz, l_max, rec, val):
    """``_harmonics`` (values only) of many vectors u = (ux, uy, uz) at once, val (nlm, npair): the
    same recurrence with the pairs innermost, so that every step is one vectorized loop."""
    npair = ux.shape[0]
    r2 = np.empty(npair)
    for q in range(npair):
        r2[q] = ux[q] * ux[q] + uy[q] * uy[q] + uz[q] * uz[q]
        val[0, q] = 1.0
    for l in range(l_max):
        f = rec[l, 0, 0]
        keep = 0.0 if l == 0 else 1.0
        top, bottom = l * l + 2 * l, l * l
        hi, lo = (l + 1) * (l + 1) + 2 * l + 2, (l + 1) * (l + 1)
        for q in range(npair):
            st, sb = val[top, q], val[bottom, q]
            val[hi, q] = f * (ux[q] * st - keep * uy[q] * sb)
            val[lo, q] = f * (uy[q] * st + keep * ux[q] * sb)
        a = 2.0 * l + 1.0
        for m in range(-l, l + 1):
            bb, inv_c, src, dst, low = _step_up(l, m, rec)
            if bb > 0:
                for q in range(npair):
                    val[dst, q] = (a * uz[q] * val[src, q] - bb * r2[q] * val[low, q]) * inv_c
            else:
                for q in range(npair):
                    val[dst, q] = a * uz[q] * val[src, q] * inv_c


@njit(cache=True, inline="always", fastmath=True)
def _radial_of_pairs(x, dxdr, inside, n_max, first, rec, p_minus, p_plus, out, dout):
    """Radial functions of many pairs at once from the Jacobi recurrence (``jacobi_recurrence``) and
    its own derivative, the pairs innermost:
    out[n, q] = (P_(n+first)(x_q) - P_(n+first)(-1) [- (1 + x_q)/2 (P(1) - P(-1))]) * inside_q and
    dout = d out / dr (dx/dr = dxdr), n = 0..n_max - first; with ``p_plus`` None the bracketed term
    (the two-body functions' end correction) is left out. Uses P_0..P_n_max."""
    npair = x.shape[0]
    p_prev = np.ones(npair)
    dp_prev = np.zeros(npair)
    p_cur = np.empty(npair)
    dp_cur = np.empty(npair)
    for q in range(npair):
        p_cur[q] = rec[0, 0] * x[q] + rec[0, 1]
        dp_cur[q] = rec[0, 0]
    for n in range(1, n_max + 1):  # p_cur holds P_n
        if n >= first:
            row = n - first
            if p_plus is None:
                for q in range(npair):
                    out[row, q] = (p_cur[q] - p_minus[n]) * inside[q]
                    dout[row, q] = dp_cur[q] * dxdr[q] * inside[q]
            else:
                ends = p_plus[n] - p_minus[n]
                for q in range(npair):
                    out[row, q] = ((p_cur[q] - p_minus[n]) - 0.5 * (1.0 + x[q]) * ends) * inside[q]
                    dout[row, q] = (dp_cur[q] - 0.5 * ends) * dxdr[q] * inside[q]
        if n == n_max:
            break
        c0, c1, c2 = rec[n, 0], rec[n, 1], rec[n, 2]
        for q in range(npair):
            lin = c0 * x[q] + c1
            p_next = lin * p_cur[q] - c2 * p_prev[q]
            dp_next = lin * dp_cur[q] + c0 * p_cur[q] - c2 * dp_prev[q]
            p_prev[q] = p_cur[q]
            dp_prev[q] = dp_cur[q]
            p_cur[q] = p_next
            dp_cur[q] = dp_next


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
    and amp (nlm, padded_rows(c), n_species * (n2 - 1)) = A^Z_{n,lm}(g) stored as
    [lm, g, Z * (n2 - 1) + n], zero in the padding rows g >= c.

    The recurrences run over all pairs of the chunk at once (pairs innermost: vectorized); then each
    point's species sums are accumulated in a small local array, lm innermost, and stored once.
    """
    c = points.shape[0]
    npair = pair_atom.shape[0]
    nr2 = n2 - 1
    nlm = (l_max + 1) * (l_max + 1)
    kdim = n_species * nr2
    r = np.empty(npair)
    unit = np.empty((npair, 3))
    ux = np.empty(npair)
    uy = np.empty(npair)
    uz = np.empty(npair)
    inside = np.empty(npair)
    x1 = np.empty(npair)
    dx1 = np.empty(npair)
    x2 = np.empty(npair)
    dx2 = np.empty(npair)
    k1 = np.pi / (r_cut - r_min)
    k2 = np.pi / r_cut
    for g in range(c):
        for q in range(offsets[g], offsets[g + 1]):
            atom = pair_atom[q]
            dx = points[g, 0] - atom_coords[atom, 0]
            dy = points[g, 1] - atom_coords[atom, 1]
            dz = points[g, 2] - atom_coords[atom, 2]
            dist = np.sqrt(dx * dx + dy * dy + dz * dz)
            inv = 1.0 / max(dist, 1e-12)
            r[q] = dist
            ux[q] = dx * inv
            uy[q] = dy * inv
            uz[q] = dz * inv
            inside[q] = 1.0 if dist <= r_cut else 0.0
    for q in range(npair):
        unit[q, 0] = ux[q]
        unit[q, 1] = uy[q]
        unit[q, 2] = uz[q]
        theta = k1 * (r[q] - r_min)
        x1[q] = np.cos(theta)
        dx1[q] = -k1 * np.sin(theta)
        theta = k2 * r[q]
        x2[q] = np.cos(theta)
        dx2[q] = -k2 * np.sin(theta)
    by_order = np.empty((max(n1, nr2), npair))
    d_by_order = np.empty((max(n1, nr2), npair))
    _radial_of_pairs(x1, dx1, inside, n1, 1, rec1, p1_minus, None, by_order, d_by_order)
    j1 = np.ascontiguousarray(by_order[:n1].T)
    dj1 = np.ascontiguousarray(d_by_order[:n1].T)
    _radial_of_pairs(x2, dx2, inside, n2, 2, rec2, p2_minus, p2_plus, by_order, d_by_order)
    j2 = np.ascontiguousarray(by_order[:nr2].T)
    dj2 = np.ascontiguousarray(d_by_order[:nr2].T)
    by_lm = np.empty((nlm, npair))
    _harmonics_of_pairs(ux, uy, uz, l_max, hrec, by_lm)
    s = np.ascontiguousarray(by_lm.T)
    amp = np.zeros((nlm, padded_rows(c), kdim))
    local = np.empty((kdim, nlm))
    for g in range(c):
        local[:, :] = 0.0
        for q in range(offsets[g], offsets[g + 1]):
            base = species[pair_atom[q]] * nr2
            for n in range(nr2):
                rn = j2[q, n]
                for lm in range(nlm):
                    local[base + n, lm] += rn * s[q, lm]
        for lm in range(nlm):
            for kk in range(kdim):
                amp[lm, g, kk] = local[kk, lm]
    return r, unit, j1, dj1, j2, dj2, s, amp


@njit(cache=True, nogil=True, fastmath=True)
def pair_outputs(offsets, pair_atom, species, unit, r, j1, dj1, j2, dj2, s, amp, contracted, one_body, self_term,
                 mixings, l_max, hrec, want_values, want_gradient, want_pairs):
    """Values, spatial gradients and per-pair atom-derivative parts of one chunk (after the contraction).

    amp (nlm, rows, K) and contracted (nlm, rows, nch, K), rows >= c (``padded_rows``): A and
    B = A C_l per channel; one_body (nch, nsp, n1); self_term (nch, nsp, nr2, nr2); mixings
    (nmix, nch, c); hrec: ``harmonic_recurrence(l_max)``. Returns values (nch, c) of the channels
    f_k, gradients (nmix, c, 3) of sum_k m_k f_k at fixed m, and g_pair (nmix, npair, 3): per pair
    the part of that gradient carried by the pair's atom (d/d R_atom = -g_pair); the arrays not
    asked for come back empty.

    Per pair, JB_m = sum_n J2_n B_{m,n} of the pair's species; a point's value sum_lm A.B is the
    sum over its pairs of JB.S (A is a sum over pairs), so A itself is not read again. Each point's
    B is first copied with lm innermost, so that the per-pair sums over n add whole rows of nlm
    numbers (vectorized) instead of reducing 13 numbers per lm: on uracil's grid (one thread) the
    forward pass's outputs took 0.84 s instead of 1.00 s, the VJP's displaced outputs 0.64 instead
    of 0.71 s. The derivatives are linear in B: without values and with fewer mixings than channels
    (the weighted atom derivatives of ``deformation_density_vjp``), each point's B is mixed in that
    copy and the per-pair sums run once per mixing instead of once per channel.
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
    premix = derivatives and not want_values and nmix < nch
    rows = nmix if premix else nch  # the B's whose per-pair sums are formed: mixed ones or channels
    b_t = np.empty((rows, kdim, nlm))  # this point's B (mixed or per channel), lm innermost
    jb = np.empty((rows, nlm))
    djb = np.empty((rows, nlm))
    proj = np.empty(nr2)
    sval = np.empty(nlm)
    sgrad = np.empty((3, nlm))
    l_of = np.empty(nlm)
    for l in range(l_max + 1):
        for lm in range(l * l, (l + 1) * (l + 1)):
            l_of[lm] = l
    # per channel: the self-term and one-body parts of the radial derivative
    channel_radial = np.empty(nch)
    channel_one = np.empty(nch)
    # per row: radial, angular x y z and l-weighted sums over lm
    row_sums = np.empty((rows, 5))
    for g in range(c):
        if premix:
            for mm in range(nmix):
                w = mixings[mm, 0, g]
                for kk in range(kdim):
                    for lm in range(nlm):
                        b_t[mm, kk, lm] = w * contracted[lm, g, 0, kk]
                for k in range(1, nch):
                    w = mixings[mm, k, g]
                    for kk in range(kdim):
                        for lm in range(nlm):
                            b_t[mm, kk, lm] += w * contracted[lm, g, k, kk]
        else:
            for k in range(nch):
                for kk in range(kdim):
                    for lm in range(nlm):
                        b_t[k, kk, lm] = contracted[lm, g, k, kk]
        for q in range(offsets[g], offsets[g + 1]):
            sp = species[pair_atom[q]]
            base = sp * nr2
            for k in range(nch):
                # proj = J2 Csum_s, accumulated by rows of Csum_s (vectorized; no per-n reductions)
                for n in range(nr2):
                    proj[n] = 0.0
                for n_left in range(nr2):
                    j_left = j2[q, n_left]
                    for n in range(nr2):
                        proj[n] += j_left * self_term[k, sp, n_left, n]
                if want_values:
                    v = 0.0
                    for n in range(n1):
                        v += j1[q, n] * one_body[k, sp, n]
                    for n in range(nr2):
                        v -= proj[n] * j2[q, n]
                    values[k, g] += v
                if derivatives:
                    rk = 0.0
                    for n in range(nr2):
                        rk -= dj2[q, n] * proj[n]
                    ok = 0.0
                    for n in range(n1):
                        ok += dj1[q, n] * one_body[k, sp, n]
                    channel_radial[k] = rk
                    channel_one[k] = ok
            for row in range(rows):  # JB, dJB (nlm,): sums over n of rows of b_t, lm innermost (vectorized)
                for lm in range(nlm):
                    jb[row, lm] = 0.0
                    djb[row, lm] = 0.0
                for n in range(nr2):
                    jn = j2[q, n]
                    djn = dj2[q, n]
                    for lm in range(nlm):
                        bv = b_t[row, base + n, lm]
                        jb[row, lm] += jn * bv
                        djb[row, lm] += djn * bv
            if want_values:
                for k in range(nch):
                    v = 0.0
                    for lm in range(nlm):
                        v += jb[k, lm] * s[q, lm]
                    values[k, g] += v
            if not derivatives:
                continue
            ux, uy, uz = unit[q, 0], unit[q, 1], unit[q, 2]
            _harmonics(ux, uy, uz, l_max, hrec, sval, sgrad, True)
            inv_r = 1.0 / max(r[q], 1e-12)
            for row in range(rows):
                rk = 0.0
                ax = 0.0
                ay = 0.0
                az = 0.0
                lk = 0.0
                for lm in range(nlm):
                    a = jb[row, lm]
                    rk += djb[row, lm] * sval[lm]
                    ax += a * sgrad[0, lm]
                    ay += a * sgrad[1, lm]
                    az += a * sgrad[2, lm]
                    lk += l_of[lm] * a * sval[lm]
                row_sums[row, 0] = rk
                row_sums[row, 1] = ax
                row_sums[row, 2] = ay
                row_sums[row, 3] = az
                row_sums[row, 4] = lk
            for mm in range(nmix):
                radial = 0.0
                one = 0.0
                for k in range(nch):
                    radial += mixings[mm, k, g] * channel_radial[k]
                    one += mixings[mm, k, g] * channel_one[k]
                if premix:
                    radial += row_sums[mm, 0]
                    gx, gy, gz, lsum = row_sums[mm, 1], row_sums[mm, 2], row_sums[mm, 3], row_sums[mm, 4]
                else:
                    gx = 0.0
                    gy = 0.0
                    gz = 0.0
                    lsum = 0.0
                    for k in range(nch):
                        w = mixings[mm, k, g]
                        radial += w * row_sums[k, 0]
                        gx += w * row_sums[k, 1]
                        gy += w * row_sums[k, 2]
                        gz += w * row_sums[k, 3]
                        lsum += w * row_sums[k, 4]
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


@njit(cache=True, nogil=True)
def weighted_pair_sum(weights, pair_point, pair_atom, g, natm):
    """sum over pairs and mixings of weights[mix, point] g[mix, pair] per atom: (natm, 3), for
    weights (nmix, npts), pair_point, pair_atom (npair,) and g (nmix, npair, 3)."""
    out = np.zeros((natm, 3))
    for mm in range(g.shape[0]):
        for q in range(pair_point.shape[0]):
            w = weights[mm, pair_point[q]]
            a = pair_atom[q]
            out[a, 0] += w * g[mm, q, 0]
            out[a, 1] += w * g[mm, q, 1]
            out[a, 2] += w * g[mm, q, 2]
    return out


@njit(cache=True, nogil=True)
def point_derivative_scale(pair_point, pair_atom, g, points, atom_coords, npts, min_distance):
    """Per point, sum over its pairs of |g| / max(r, min_distance) (npts,), for one mixing's
    per-pair atom-derivative parts g (npair, 3) and the pairs' distances r (bohr): the scale of how
    fast the point's atom derivatives change as the point moves (``model.deformation_density_vjp``)."""
    out = np.zeros(npts)
    for q in range(pair_point.shape[0]):
        p = pair_point[q]
        a = pair_atom[q]
        dx = points[p, 0] - atom_coords[a, 0]
        dy = points[p, 1] - atom_coords[a, 1]
        dz = points[p, 2] - atom_coords[a, 2]
        r = max(np.sqrt(dx * dx + dy * dy + dz * dz), min_distance)
        out[p] += np.sqrt(g[q, 0] * g[q, 0] + g[q, 1] * g[q, 1] + g[q, 2] * g[q, 2]) / r
    return out


@njit(cache=True, nogil=True, fastmath=True)
def scaled_ao(ao_t, wv):
    """X[s] = wv[s, 0] phi + sum_j wv[s, j] d_j phi: (nset, nao, blk) for AO values ao_t (>= 4, nao, blk)
    (PySCF's eval_ao output transposed: points contiguous) and potentials wv (nset, 4, blk)."""
    nset, nao, blk = wv.shape[0], ao_t.shape[1], ao_t.shape[2]
    out = np.empty((nset, nao, blk))
    for s in range(nset):  # the points innermost: one vectorized loop per (set, AO)
        for i in range(nao):
            for g in range(blk):
                out[s, i, g] = (wv[s, 0, g] * ao_t[0, i, g] + wv[s, 1, g] * ao_t[1, i, g]
                                + wv[s, 2, g] * ao_t[2, i, g] + wv[s, 3, g] * ao_t[3, i, g])
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
