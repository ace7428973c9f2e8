"""tools/harmonic.py: the coupling of near-degenerate modes, against a Hessian built with a known
mixing angle."""

import importlib.util
from pathlib import Path

import numpy as np

SPEC = importlib.util.spec_from_file_location("harmonic", Path(__file__).parents[1] / "tools" / "harmonic.py")
harmonic = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(harmonic)


def test_close_pair_coupling_recovers_the_mixing_angle():
    """Two modes at 1354/1371 cm^-1 whose eigenvectors are turned by 12 degrees in the reference
    basis (and a third, distant mode): the coupling must give back that angle, and the off-diagonal
    element as a frequency, which for a 2x2 rotation is (l1 - l2) sin(2 theta) / 2 / (w1 + w2)."""
    unit = harmonic.hessian_to_wavenumbers(np.array([1.0]))[0]
    freq = np.array([1354.0, 1371.0, 1800.0])
    lam = (freq / unit) ** 2
    theta = np.radians(12.0)
    rot = np.eye(3)
    rot[:2, :2] = [[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]
    k = rot @ np.diag(lam) @ rot.T
    pairs = harmonic.close_pair_couplings(k, freq, min_wavenumber=1000.0)
    assert [(j, m) for j, m, _, _ in pairs] == [(0, 1)]  # 1371/1800 are 429 cm^-1 apart
    _, _, coupling, rotation = pairs[0]
    assert abs(rotation - 12.0) < 1e-9
    omega = unit * np.sqrt(np.diag(k)[:2])
    expected = (lam[0] - lam[1]) * np.sin(2 * theta) / 2 * unit ** 2 / omega.sum()
    assert abs(coupling - expected) < 1e-9 and 3.0 < -coupling < 4.0  # the size the shipped model shows
