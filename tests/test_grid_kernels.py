"""Compiled grid kernels and threaded grid passes against their plain numpy formulas."""

import numpy as np
from pyscf import gto
from pyscf.dft import gen_grid, numint

from ipi_jlcdm.density import add_density_response_reference, add_density_responses, density_on_points
from ipi_jlcdm.threads import chunk_map


def water():
    return gto.M(atom="O 0 0 0.1; H 0 0.75 -0.45; H 0 -0.8 -0.5", basis="def2-svp", verbose=0)


def test_density_responses_of_several_sets_equal_the_numpy_formula():
    mol = water()
    rng = np.random.default_rng(3)
    points = rng.uniform(-3.0, 3.0, (300, 3))
    ao = numint.eval_ao(mol, points, deriv=2, non0tab=gen_grid.make_mask(mol, points))
    dms = [(lambda a: a + a.T)(rng.normal(size=(mol.nao, mol.nao))) for _ in range(3)]
    wv = rng.normal(size=(3, 4, len(points)))
    got = np.zeros((3, 3, mol.nao))
    add_density_responses(got, ao, dms, wv, [None, dms[1] @ ao[0].T, None])
    for s in range(3):
        want = np.zeros((3, mol.nao))
        add_density_response_reference(want, ao, dms[s], wv[s])
        np.testing.assert_allclose(got[s], want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_threaded_density_equals_one_thread_and_keeps_order():
    mol = water()
    points = np.random.default_rng(4).uniform(-3.0, 3.0, (5000, 3))
    dm = np.eye(mol.nao)
    threaded = density_on_points(mol, dm, points)
    ao = numint.eval_ao(mol, points, deriv=1)
    serial = numint.eval_rho(mol, ao, dm, None, "GGA", hermi=1)
    np.testing.assert_allclose(threaded, serial, rtol=1e-12, atol=1e-14)
    assert chunk_map(lambda k: k * k, range(50), workers=2) == [k * k for k in range(50)]
