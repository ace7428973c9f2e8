"""Jacobi polynomials and the JL radial functions (docs/METHOD.md section 4).

Distances in bohr. All functions are vectorized over points; no loops over points.
"""

from __future__ import annotations

import numpy as np


def jacobi_polynomials(n_max: int, alpha: float, beta: float, x: np.ndarray) -> np.ndarray:
    """P_n^(alpha,beta)(x) for n = 0..n_max, standard normalization, by the three-term recurrence.

    alpha, beta are real (> -1). Returns shape (n_max + 1, *x.shape).
    """
    x = np.asarray(x, dtype=float)
    out = np.empty((n_max + 1, *x.shape))
    out[0] = 1.0
    if n_max >= 1:
        out[1] = (alpha + 1.0) + 0.5 * (alpha + beta + 2.0) * (x - 1.0)
    a, b = alpha, beta
    for n in range(1, n_max):
        s = 2 * n + a + b
        c0 = 2 * (n + 1) * (n + a + b + 1) * s
        c1 = (s + 1) * (s + 2) * s
        c2 = (s + 1) * (a * a - b * b)
        c3 = 2 * (n + a) * (n + b) * (s + 2)
        out[n + 1] = ((c1 * x + c2) * out[n] - c3 * out[n - 1]) / c0
    return out


def jacobi_with_derivative(n_max: int, alpha: float, beta: float, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P_n(x), dP_n/dx) for n = 0..n_max, using dP_n^(a,b)/dx = (n+a+b+1)/2 P_{n-1}^(a+1,b+1)."""
    p = jacobi_polynomials(n_max, alpha, beta, x)
    dp = np.zeros_like(p)
    if n_max >= 1:
        q = jacobi_polynomials(n_max - 1, alpha + 1.0, beta + 1.0, x)
        n = np.arange(1, n_max + 1, dtype=float).reshape((-1,) + (1,) * np.ndim(x))
        dp[1:] = 0.5 * (n + alpha + beta + 1.0) * q
    return p, dp


def _cosine_map(r: np.ndarray, r_min: float, r_cut: float) -> tuple[np.ndarray, np.ndarray]:
    """x(r) = cos(pi (r - r_min)/(r_cut - r_min)) and dx/dr."""
    k = np.pi / (r_cut - r_min)
    theta = k * (r - r_min)
    return np.cos(theta), -k * np.sin(theta)


def radial_one_body(r: np.ndarray, n_max: int, alpha: float, beta: float, r_min: float, r_cut: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """J1_n(r) = P_n(x(r; r_min)) - P_n(-1) for n = 1..n_max, zero beyond r_cut, and dJ1_n/dr.

    r: (k,) bohr. Returns two arrays (k, n_max).
    """
    x, dxdr = _cosine_map(r, r_min, r_cut)
    p, dp = jacobi_with_derivative(n_max, alpha, beta, x)
    p_minus = jacobi_polynomials(n_max, alpha, beta, np.array(-1.0))
    inside = (r <= r_cut)
    values = ((p[1:] - p_minus[1:, None]) * inside).T
    derivs = (dp[1:] * dxdr * inside).T
    return values, derivs


def radial_two_body(r: np.ndarray, n_max: int, alpha: float, beta: float, r_cut: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Double-shifted J2_n(r) = [P_n(x) - P_n(-1)] - (1+x)/2 [P_n(1) - P_n(-1)], x = x(r; 0),
    for n = 2..n_max (zero at r = 0 and r >= r_cut), and dJ2_n/dr.

    r: (k,) bohr. Returns two arrays (k, n_max - 1).
    """
    x, dxdr = _cosine_map(r, 0.0, r_cut)
    p, dp = jacobi_with_derivative(n_max, alpha, beta, x)
    ends = jacobi_polynomials(n_max, alpha, beta, np.array([-1.0, 1.0]))
    p_m1, p_p1 = ends[2:, 0, None], ends[2:, 1, None]
    inside = (r <= r_cut)
    values = ((p[2:] - p_m1) - 0.5 * (1.0 + x) * (p_p1 - p_m1)) * inside
    derivs = (dp[2:] - 0.5 * (p_p1 - p_m1)) * dxdr * inside
    return values.T, derivs.T
