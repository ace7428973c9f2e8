"""Closed-form Coulomb potentials of the auxiliary basis against libcint and the Boys function
against scipy's confluent hypergeometric function."""

import numpy as np
import pytest
from pyscf import df, gto
from scipy.special import hyp1f1

from ipi_jlcdm.electronic.aux_potential import (
    BOYS_FAR,
    AuxiliaryPotentials,
    _boys_near,
    boys_reference,
    boys_table,
    potentials_reference,
)


def boys_scipy(m: int, x: np.ndarray) -> np.ndarray:
    """F_m(x) = 1F1(m + 1/2; m + 3/2; -x) / (2m + 1)."""
    return hyp1f1(m + 0.5, m + 1.5, -np.asarray(x)) / (2 * m + 1)


def test_boys_functions_equal_the_hypergeometric_form():
    x = np.concatenate([[0.0, 1e-12, 1e-6], np.linspace(1e-3, 80.0, 2001)])
    reference = np.array([boys_scipy(m, x) for m in range(7)])
    np.testing.assert_allclose(boys_reference(6, x), reference, rtol=1e-13)
    table = boys_table(6)
    near = x < BOYS_FAR
    tabulated = np.array([[_boys_near(v, m, table) for v in x[near]] for m in range(7)])
    np.testing.assert_allclose(tabulated, reference[:, near], rtol=1e-13)


@pytest.mark.parametrize("auxbasis", ["def2-universal-jfit", "weigend"])
def test_auxiliary_potentials_equal_libcint(auxbasis):
    mol = gto.M(atom="O 0 0 0.1; H 0 0.75 -0.45; H 0 -0.8 -0.5; C 1.6 0.2 0.3; N -1.5 -0.4 0.6",
                basis="def2-svp", spin=1, verbose=0)
    auxmol = df.addons.make_auxmol(mol, auxbasis)
    rng = np.random.default_rng(5)
    # near the nuclei (inside the tightest primitives), in the bonding region, and far away
    points = np.concatenate([mol.atom_coords() + rng.normal(scale=1e-3, size=(mol.natm, 3)),
                             mol.atom_coords(), rng.normal(scale=2.0, size=(400, 3)),
                             rng.normal(scale=20.0, size=(50, 3))])
    want = potentials_reference(auxmol, points)  # (naux, npts)
    potentials = AuxiliaryPotentials(auxmol)
    got = potentials.potential(points, np.eye(auxmol.nao))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-13 * np.abs(want).max())
    channels = rng.normal(size=(4, len(points)))
    np.testing.assert_allclose(potentials.rhs(points, channels), channels @ want.T, rtol=1e-12,
                               atol=1e-12 * np.abs(channels @ want.T).max())
    y = rng.normal(size=auxmol.nao)
    np.testing.assert_allclose(potentials.potential(points, y), y @ want, rtol=1e-12,
                               atol=1e-12 * np.abs(y @ want).max())
