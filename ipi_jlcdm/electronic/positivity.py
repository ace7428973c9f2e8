"""Keep the model's input density positive: rho_in = rho_SAD h(x), x = (rho_SAD + drho) / rho_SAD.

Why. A linear model can predict drho <= -rho_SAD where rho_SAD is small (measured on uracil: ~7000 of
151k grid points with rho_SAD + drho < 0.1 rho_SAD, down to x = -550, carrying 0.02 e of density
error). Where rho_in passes close to zero the Harris-Foulkes energy is not smooth: its derivative
carries the XC kernel f_xc[rho_in] (rho_out - rho_in), and f_xc ~ rho_in^(-2/3) diverges while
rho_out stays finite. One grid point with rho_in = 9e-11 e/bohr^3 (rho_SAD 4.5e-5, 4.4 bohr from an O)
put 0.015 Ha/bohr on that atom's force at one harmonic displacement of uracil (ipi-jlcdm harmonic),
enough to move two modes by +250-300 cm^-1.

The map. h(x) = x for x >= X_IDENTITY; below it h decreases smoothly (C^2) towards X_FLOOR:
h = X_FLOOR + d phi((x - X_IDENTITY) / d), d = X_IDENTITY - X_FLOOR, phi(t) = 1 / (1 - t + t^2),
so rho_in >= X_FLOOR rho_SAD everywhere and the kernel term stays bounded, ~ X_FLOOR^(-2/3) rho_SAD^(1/3).
SCF densities never reach the map: rho_SCF / rho_SAD >= 0.10 (300 K sample) and 0.11 (rMD17 500 K
frame) wherever rho_SAD > 1e-8 e/bohr^3 (measured), above X_IDENTITY = 0.08.

The engine uses the mapped deformation drho_eff = rho_SAD (h(x) - 1) wherever it used drho, and the
consistent forces map a potential u = (u_0, u_grad) on (drho_eff, grad drho_eff) back onto the
model's raw drho (``to_raw``) and onto rho_SAD (``sad_extra``), pointwise (chain rule of
rho = S h(1 + D/S), grad rho = h' grad D + (h - (x-1) h') grad S).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: x = rho_in / rho_SAD below which the map acts (identity above).
X_IDENTITY = 0.08
#: the limit of rho_in / rho_SAD for drho -> -infinity.
X_FLOOR = 0.04
_T_MIN = -1e50  # keeps t^3 finite where rho_SAD underflows


def floor_function(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """h(x), h'(x), h''(x) (arrays like x): identity above X_IDENTITY, C^2, h > X_FLOOR below."""
    width = X_IDENTITY - X_FLOOR
    t = np.maximum((np.asarray(x, dtype=float) - X_IDENTITY) / width, _T_MIN)
    below = t < 0
    tb = t[below]
    p = 1.0 - tb + tb * tb
    h, dh, d2h = np.array(x, dtype=float), np.ones_like(t), np.zeros_like(t)
    h[below] = X_FLOOR + width / p
    dh[below] = (1.0 - 2.0 * tb) / (p * p)
    d2h[below] = 6.0 * tb * (tb - 1.0) / (p * p * p) / width
    return h, dh, d2h


@dataclass
class PositiveDensityMap:
    """The map at the grid points where it acts (``active`` indices into the points): the effective
    deformation density and, for the forces, the chain-rule factors there.

    deformation (npts,), deformation_gradient (npts, 3): drho_eff and its gradient (e/bohr^3, e/bohr^4).
    """

    deformation: np.ndarray
    deformation_gradient: np.ndarray | None
    active: np.ndarray
    dh: np.ndarray  # h'(x) (nact,)
    sad_factor: np.ndarray  # d rho / d S - 1 = h - (x - 1) h' - 1 (nact,)
    x_minus_1: np.ndarray  # x - 1 = D / S (nact,)
    q: np.ndarray | None  # (h'' / S) (grad D - (x - 1) grad S) (nact, 3)

    @classmethod
    def build(cls, rho_sad: np.ndarray, drho: np.ndarray, grad_drho: np.ndarray | None = None
              ) -> PositiveDensityMap:
        """rho_sad (npts,) or (4, npts) (its gradient needed with ``grad_drho``), the model's drho
        (npts,) and its gradient (npts, 3)."""
        rho_sad = np.asarray(rho_sad, dtype=float)
        sad = rho_sad[0] if rho_sad.ndim == 2 else rho_sad
        sad_safe = np.maximum(sad, 1e-300)
        active = np.nonzero(drho < (X_IDENTITY - 1.0) * sad_safe)[0]
        s, d = sad_safe[active], drho[active]
        x_minus_1 = d / s
        h, dh, d2h = floor_function(1.0 + x_minus_1)
        deformation = np.array(drho, dtype=float)
        deformation[active] = s * (h - 1.0)
        sad_factor = h - x_minus_1 * dh - 1.0
        gradient, q = None, None
        if grad_drho is not None:
            grad_sad = rho_sad[1:4, active].T
            gradient = np.array(grad_drho, dtype=float)
            gradient[active] = dh[:, None] * grad_drho[active] + sad_factor[:, None] * grad_sad
            q = (d2h / s)[:, None] * (grad_drho[active] - x_minus_1[:, None] * grad_sad)
        return cls(deformation, gradient, active, dh, sad_factor, x_minus_1, q)

    def _local(self, sl: slice | None) -> tuple[np.ndarray, np.ndarray]:
        """(positions of the active points within ``sl``, their indices into the map's arrays)."""
        if sl is None:
            return self.active, np.arange(len(self.active))
        stop = sl.stop
        lo, hi = np.searchsorted(self.active, [sl.start or 0, stop])
        return self.active[lo:hi] - (sl.start or 0), np.arange(lo, hi)

    def to_raw(self, potential: np.ndarray, sl: slice | None = None) -> np.ndarray:
        """A potential (4, n) on (drho_eff, grad drho_eff) at the points ``sl`` (all by default) as
        the potential on the model's (drho, grad drho)."""
        out = np.array(potential, dtype=float)
        where, k = self._local(sl)
        u0, ug = potential[0, where], potential[1:4, where]
        out[0, where] = self.dh[k] * u0 + np.einsum("xg,gx->g", ug, self.q[k])
        out[1:4, where] = self.dh[k] * ug
        return out

    def sad_extra(self, potential: np.ndarray, sl: slice | None = None) -> np.ndarray:
        """The potential (4, n) on (rho_SAD, grad rho_SAD) that a potential on (drho_eff, grad
        drho_eff) exerts through the map's dependence on rho_SAD (zero where the map is identity)."""
        out = np.zeros_like(potential, dtype=float)
        where, k = self._local(sl)
        u0, ug = potential[0, where], potential[1:4, where]
        out[0, where] = self.sad_factor[k] * u0 - self.x_minus_1[k] * np.einsum("xg,gx->g", ug, self.q[k])
        out[1:4, where] = self.sad_factor[k] * ug
        return out
