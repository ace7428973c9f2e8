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


def solid_harmonics(u: np.ndarray, l_max: int) -> tuple[np.ndarray, np.ndarray]:
    """S_lm(u) and its gradient dS_lm/du for vectors u (k, 3).

    Returns values (k, (l_max+1)^2) and gradients (k, (l_max+1)^2, 3).
    """
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


def l_of_index(l_max: int) -> np.ndarray:
    """The l of every (l, m) index, shape ((l_max+1)^2,)."""
    return np.concatenate([np.full(2 * l + 1, l) for l in range(l_max + 1)])
