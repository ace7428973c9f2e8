"""Compiled grid kernels and threaded grid passes against their plain numpy formulas."""

import numpy as np
from pyscf import gto
from pyscf.dft import gen_grid, numint

from ipi_jlcdm.electronic.density import add_density_response_reference, add_density_responses, density_on_points
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


def test_serial_blas_holds_blas_to_one_thread_and_parallel_blas_restores_it():
    from threadpoolctl import threadpool_info

    from ipi_jlcdm import threads
    from ipi_jlcdm.threads import parallel_blas, serial_blas, worker_count

    threads.worker_count.cache_clear()  # as in a fresh process: serial_blas before any grid pass

    def blas_threads():
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    before = blas_threads()
    with serial_blas():
        assert worker_count() == max(before)  # the grid passes keep their threads
        assert blas_threads() == {1}
        with parallel_blas():
            assert max(blas_threads()) == worker_count()  # (a BLAS built single-threaded stays at 1)
        assert blas_threads() == {1}
    assert blas_threads() == before


def test_tabulated_sad_density_and_its_atom_derivatives_equal_the_ao_formulas():
    """rho_SAD from the radial tables against rho[P_SAD] from AO values, and the atom derivatives of
    sum_g u . (rho_SAD, grad rho_SAD) against the AO response of ``add_density_response_reference``."""
    from ipi_jlcdm.electronic.density import per_atom, sad_density_matrix, sad_density_on_points
    from ipi_jlcdm.electronic.sad_radial import radial_tables, sad_atom_gradient

    mol = gto.M(atom="O 0 0 0.1; C 0 1.4 0.3; N 1.2 -0.6 0; H 0 0.75 -0.95; H 0 -0.8 -0.5; H 3.5 0 0",
                basis="def2-svp", verbose=0, unit="Bohr")
    rng = np.random.default_rng(5)
    points = np.vstack([rng.uniform(-4.0, 5.0, (400, 3)), mol.atom_coords()[:1] + 1e-3])
    dm = sad_density_matrix(mol)
    tabulated = sad_density_on_points(mol, points)
    ao = numint.eval_ao(mol, points, deriv=2)
    exact = numint.eval_rho(mol, ao[:4], dm, None, "GGA", hermi=1)
    np.testing.assert_allclose(tabulated, exact, rtol=0, atol=1e-10 * np.abs(exact).max())
    potential = rng.normal(size=(4, len(points)))
    want = np.zeros((3, mol.nao))
    add_density_response_reference(want, ao, dm, potential)
    got = sad_atom_gradient(radial_tables(mol, dm), mol.atom_coords(), points, potential)
    # the point 1e-3 bohr from O dominates (second derivatives ~1e5 of the core density, where the
    # AO sum itself cancels to ~1e-7 relative); away from it the two agree to 1e-10
    np.testing.assert_allclose(got, per_atom(mol, want), rtol=0, atol=1e-6 * np.abs(per_atom(mol, want)).max())
    far = slice(0, 400)
    want_far = np.zeros((3, mol.nao))
    add_density_response_reference(want_far, ao[:, far], dm, potential[:, far])
    np.testing.assert_allclose(sad_atom_gradient(radial_tables(mol, dm), mol.atom_coords(), points[far],
                                                 potential[:, far]), per_atom(mol, want_far), rtol=0,
                               atol=1e-10 * np.abs(per_atom(mol, want_far)).max())


def test_becke_grids_equal_pyscfs_sorted_grid():
    """The engine's grid (sorted into boxes by one integer key) has PySCF's points, weights and order."""
    from ipi_jlcdm.electronic.density import grid_points
    from ipi_jlcdm.electronic.level import becke_grids, box_order

    mol = gto.M(atom="O 0 0 0.1; H 0 0.75 -0.45; H 0 -0.8 -0.5; C 2.5 0.3 0.2; H 3.4 -0.4 0.9", basis="def2-svp",
                verbose=0, spin=1)
    reference = gen_grid.Grids(mol)
    reference.level = 2
    reference.build()
    ours = becke_grids(mol, 2)
    for got, want in zip(grid_points(ours), grid_points(reference), strict=True):
        np.testing.assert_array_equal(got, want)
    unsorted = gen_grid.Grids(mol)
    unsorted.level = 2
    unsorted.build(sort_grids=False)
    np.testing.assert_array_equal(box_order(mol, unsorted.coords), gen_grid.arg_group_grids(mol, unsorted.coords))
