"""Real solid harmonics in Racah normalization, with gradients.

S_lm(u) are homogeneous polynomials of degree l with sum_m S_lm(u) S_lm(v) = |u|^l |v|^l P_l(cos theta)
(the addition theorem without the 4 pi/(2l+1) factor). Index of (l, m) is l*l + l + m.
Recurrences: Helgaker, Jorgensen, Olsen, Molecular Electronic-Structure Theory, eqs. 6.4.70-72.
"""

from __future__ import annotations

import numpy as np


def n_lm(l_max: int) -> int:
    """Number of (l, m) pairs for l = 0..l_max."""
    return (l_max + 1) ** 2


def solid_harmonics(u: np.ndarray, l_max: int, gradient: bool = True):
    """S_lm(u) and its gradient dS_lm/du for vectors u (k, 3).

    Returns values (k, (l_max+1)^2) and gradients (k, (l_max+1)^2, 3), or only the values if
    ``gradient`` is False (see ``gradient_operator`` for a cheap exact gradient).
    """
    if not gradient:
        return _solid_harmonic_values(np.asarray(u, dtype=float), l_max)
    u = np.asarray(u, dtype=float)
    k = u.shape[0]
    x, y, z = u[:, 0], u[:, 1], u[:, 2]
    r2 = x * x + y * y + z * z
    eye = np.eye(3)
    val = np.zeros((k, n_lm(l_max)))
    grad = np.zeros((k, n_lm(l_max), 3))

    def idx(l: int, m: int) -> int:
        return l * l + l + m

    val[:, 0] = 1.0
    for l in range(l_max):
        # top and bottom m = +-(l+1)
        f = np.sqrt((2.0 if l == 0 else 1.0) * (2 * l + 1) / (2 * l + 2))
        s_ll, g_ll = val[:, idx(l, l)], grad[:, idx(l, l)]
        s_lml, g_lml = val[:, idx(l, -l)], grad[:, idx(l, -l)]
        keep = 0.0 if l == 0 else 1.0
        val[:, idx(l + 1, l + 1)] = f * (x * s_ll - keep * y * s_lml)
        grad[:, idx(l + 1, l + 1)] = f * (x[:, None] * g_ll + s_ll[:, None] * eye[0]
                                          - keep * (y[:, None] * g_lml + s_lml[:, None] * eye[1]))
        val[:, idx(l + 1, -l - 1)] = f * (y * s_ll + keep * x * s_lml)
        grad[:, idx(l + 1, -l - 1)] = f * (y[:, None] * g_ll + s_ll[:, None] * eye[1]
                                           + keep * (x[:, None] * g_lml + s_lml[:, None] * eye[0]))
        # the rest: m = -l..l
        for m in range(-l, l + 1):
            a = 2 * l + 1
            b = np.sqrt((l + m) * (l - m))
            c = np.sqrt((l + m + 1) * (l - m + 1))
            s_lm, g_lm = val[:, idx(l, m)], grad[:, idx(l, m)]
            new_val = a * z * s_lm
            new_grad = a * (z[:, None] * g_lm + s_lm[:, None] * eye[2])
            if b > 0:
                s_l1, g_l1 = val[:, idx(l - 1, m)], grad[:, idx(l - 1, m)]
                new_val = new_val - b * r2 * s_l1
                new_grad = new_grad - b * (r2[:, None] * g_l1 + 2.0 * s_l1[:, None] * u)
            val[:, idx(l + 1, m)] = new_val / c
            grad[:, idx(l + 1, m)] = new_grad / c
    return val, grad


def _solid_harmonic_values(u: np.ndarray, l_max: int) -> np.ndarray:
    """The value part of the recurrence in ``solid_harmonics``, (k, nlm)."""
    x, y, z = u[:, 0], u[:, 1], u[:, 2]
    r2 = x * x + y * y + z * z
    val = np.empty((u.shape[0], n_lm(l_max)))
    val[:, 0] = 1.0
    for l in range(l_max):
        f = np.sqrt((2.0 if l == 0 else 1.0) * (2 * l + 1) / (2 * l + 2))
        top, bottom = val[:, l * l + 2 * l], val[:, l * l]
        if l == 0:
            val[:, (l + 1) ** 2 + 2 * l + 2] = f * x * top
            val[:, (l + 1) ** 2] = f * y * top
        else:
            val[:, (l + 1) ** 2 + 2 * l + 2] = f * (x * top - y * bottom)
            val[:, (l + 1) ** 2] = f * (y * top + x * bottom)
        for m in range(-l, l + 1):
            new = (2 * l + 1) * z * val[:, l * l + l + m]
            b = np.sqrt((l + m) * (l - m))
            if b > 0:
                new -= b * r2 * val[:, (l - 1) ** 2 + (l - 1) + m]
            val[:, (l + 1) ** 2 + (l + 1) + m] = new / np.sqrt((l + m + 1) * (l - m + 1))
    return val


def l_of_index(l_max: int) -> np.ndarray:
    """The l of every (l, m) index, shape ((l_max+1)^2,)."""
    return np.concatenate([np.full(2 * l + 1, l) for l in range(l_max + 1)])


def gradient_operator(l_max: int) -> np.ndarray:
    """D (3, nlm, nlm) with dS_lm/du_x (u) = sum_k D[x, lm, k] S_k(u) for every u.

    The derivative of a harmonic polynomial of degree l is a harmonic polynomial of degree l - 1,
    hence a combination of the S_{l-1, m'}: D is exact (fitted once at random points, residual at
    rounding level), and the hot path needs only S, not its gradient recurrence.
    """
    rng = np.random.default_rng(12345)
    u = rng.normal(size=(4 * n_lm(l_max) + 50, 3))
    val, grad = solid_harmonics(u, l_max)
    op = np.zeros((3, n_lm(l_max), n_lm(l_max)))
    for l in range(1, l_max + 1):
        rows, cols = slice(l * l, (l + 1) ** 2), slice((l - 1) ** 2, l * l)
        for x in range(3):
            sol, *_ = np.linalg.lstsq(val[:, cols], grad[:, rows, x], rcond=None)
            op[x, rows, cols] = sol.T
    residual = np.abs(np.einsum("xlk,pk->plx", op, val) - grad).max() / max(np.abs(grad).max(), 1.0)
    if residual > 1e-10:
        raise ArithmeticError(f"solid-harmonic gradient operator is not exact (residual {residual:.1e})")
    return op
