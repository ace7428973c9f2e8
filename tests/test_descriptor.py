"""JL descriptor against a brute-force evaluation of the formulas of docs/METHOD.md section 4 (scipy's Jacobi and
Legendre polynomials, explicit atom pairs), plus invariances, smoothness and derivatives."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from scipy.special import eval_jacobi, eval_legendre

from ipi_jlcdm.jl.descriptor import JLDescriptor, JLHyperparameters

HYPER = JLHyperparameters(r_cut=4.0, n1=5, n2=6, l_max=4, alpha=2.5, beta=0.7, r_min=-1.4, alpha2=3.3, beta2=-0.4)
SPECIES = [1, 6, 8]


def cluster(seed: int, n_atoms: int = 6, n_points: int = 40):
    rng = np.random.default_rng(seed)
    atoms = rng.uniform(-2.0, 2.0, (n_atoms, 3))
    z = rng.choice(SPECIES, n_atoms)
    z[:3] = SPECIES  # every species present
    points = rng.uniform(-3.5, 3.5, (n_points, 3))
    return z, atoms, points


def brute_force_features(hyper, points, z, atoms):
    """docs/METHOD.md section 4 written out literally, one point and one atom pair at a time."""
    h = hyper

    def x_of(r, r_min):
        return np.cos(np.pi * (r - r_min) / (h.r_cut - r_min))

    def j1(n, r):
        if r > h.r_cut:
            return 0.0
        return eval_jacobi(n, h.alpha, h.beta, x_of(r, h.r_min)) - eval_jacobi(n, h.alpha, h.beta, -1.0)

    def j2(n, r):
        if r > h.r_cut:
            return 0.0
        a, b, x = h.a2, h.b2, x_of(r, 0.0)
        pm, pp = eval_jacobi(n, a, b, -1.0), eval_jacobi(n, a, b, 1.0)
        return (eval_jacobi(n, a, b, x) - pm) - 0.5 * (1 + x) * (pp - pm)

    rows = []
    for g in points:
        feats = {}
        vecs = g - atoms
        dist = np.linalg.norm(vecs, axis=1)
        for zz in SPECIES:
            for n in range(1, h.n1 + 1):
                feats[("1b", zz, n)] = sum(j1(n, dist[i]) for i in range(len(z)) if z[i] == zz)
        for a_idx, za in enumerate(SPECIES):
            for zb in SPECIES[a_idx:]:
                for l in range(h.l_max + 1):
                    for n in range(2, h.n2 + 1):
                        for m in range(2, h.n2 + 1):
                            if za == zb and m < n:
                                continue
                            total = 0.0
                            for i in range(len(z)):
                                for j in range(len(z)):
                                    if i == j or z[i] != za or z[j] != zb:
                                        continue
                                    cos = vecs[i] @ vecs[j] / (dist[i] * dist[j])
                                    total += j2(n, dist[i]) * j2(m, dist[j]) * eval_legendre(l, cos)
                            feats[("2b", za, zb, l, n, m)] = total
        rows.append(feats)
    return rows


def test_features_equal_brute_force():
    z, atoms, points = cluster(0, n_points=12)
    desc = JLDescriptor(HYPER, SPECIES)
    ours = desc.features(points, z, atoms)
    labels = desc.feature_labels()
    reference = brute_force_features(HYPER, points, z, atoms)
    assert len(labels) == len(reference[0]) == desc.n_features
    expected = np.array([[row[label] for label in labels] for row in reference])
    assert np.abs(expected).max() > 1.0  # not trivially zero
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())


def test_invariance_rotation_translation_permutation():
    z, atoms, points = cluster(1)
    desc = JLDescriptor(HYPER, SPECIES)
    base = desc.features(points, z, atoms)
    rot = Rotation.random(random_state=3).as_matrix()
    shift = np.array([0.7, -1.3, 2.2])
    moved = desc.features(points @ rot.T + shift, z, atoms @ rot.T + shift)
    np.testing.assert_allclose(moved, base, atol=1e-9 * np.abs(base).max())
    perm = np.arange(len(z))
    same = np.nonzero(z == z[0])[0]
    if len(same) < 2:  # make two atoms share a species so the permutation is not trivial
        z = z.copy()
        z[3] = z[0]
        same = np.array([0, 3])
        base = desc.features(points, z, atoms)
    perm[same[0]], perm[same[1]] = same[1], same[0]
    np.testing.assert_allclose(desc.features(points, z[perm], atoms[perm]), base, atol=1e-9 * np.abs(base).max())


def test_smooth_at_cutoff():
    """An atom crossing r_cut changes features and their gradient continuously (O(eps^2))."""
    desc = JLDescriptor(HYPER, SPECIES)
    z = np.array([1, 6, 8])
    atoms = np.array([[0.0, 0.0, 0.0], [0.0, 1.2, 0.3], [-0.9, 0.0, 0.5]])
    coefs = desc.contract(np.random.default_rng(0).normal(size=desc.n_features))
    values = []
    for eps in (1e-3, -1e-3, 1e-4, -1e-4):
        far = atoms.copy()
        far[0] = [HYPER.r_cut + eps, 0.0, 0.0]  # atom 0 at distance r_cut + eps from the origin
        point = np.zeros((1, 3))
        values.append((desc.features(point, z, far)[0], *desc.predict(point, z, far, coefs)))
    scale = np.abs(values[0][0]).max()
    for (f_in, r_in, g_in), (f_out, r_out, g_out), eps in [(values[1], values[0], 1e-3), (values[3], values[2], 1e-4)]:
        assert np.abs(f_in - f_out).max() < 50 * eps**2 * scale
        assert abs(r_in[0] - r_out[0]) < 50 * eps**2 * max(1.0, abs(r_in[0]))
        assert np.abs(g_in - g_out).max() < 50 * eps * max(1.0, np.abs(g_in).max())


def test_contracted_prediction_equals_features_times_coefficients():
    z, atoms, points = cluster(2)
    desc = JLDescriptor(HYPER, SPECIES)
    coef = np.random.default_rng(5).normal(size=desc.n_features)
    rho, _ = desc.predict(points, z, atoms, desc.contract(coef))
    expected = desc.features(points, z, atoms) @ coef
    np.testing.assert_allclose(rho, expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())


def test_chunking_does_not_change_results():
    z, atoms, points = cluster(3, n_points=100)
    coef = np.random.default_rng(6).normal(size=JLDescriptor(HYPER, SPECIES).n_features)
    small, big = JLDescriptor(HYPER, SPECIES, chunk_size=7), JLDescriptor(HYPER, SPECIES, chunk_size=4096)
    for a, b in zip(small.predict(points, z, atoms, small.contract(coef)),
                    big.predict(points, z, atoms, big.contract(coef)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(b).max())


@pytest.mark.parametrize("seed", [4, 5])
def test_analytic_derivatives_match_finite_differences(seed):
    z, atoms, points = cluster(seed, n_points=25)
    desc = JLDescriptor(HYPER, SPECIES)
    coefs = desc.contract(np.random.default_rng(seed).normal(size=desc.n_features))
    _, grad = desc.predict(points, z, atoms, coefs)
    d_atoms = desc.atom_derivatives(points, z, atoms, coefs)
    h = 1e-5
    fd_point = np.zeros_like(grad)
    for a in range(3):
        step = np.zeros(3)
        step[a] = h
        fd_point[:, a] = (desc.predict(points + step, z, atoms, coefs, False)[0]
                          - desc.predict(points - step, z, atoms, coefs, False)[0]) / (2 * h)
    fd_atoms = np.zeros_like(d_atoms)
    for i in range(len(z)):
        for a in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus[i, a] += h
            minus[i, a] -= h
            fd_atoms[:, i, a] = (desc.predict(points, z, plus, coefs, False)[0]
                                 - desc.predict(points, z, minus, coefs, False)[0]) / (2 * h)
    scale = np.abs(grad).max()
    assert np.abs(fd_point - grad).max() < 1e-6 * scale
    assert np.abs(fd_atoms - d_atoms).max() < 1e-6 * scale
    weights = np.random.default_rng(9).normal(size=len(points))
    np.testing.assert_allclose(desc.atom_derivatives(points, z, atoms, coefs, weights),
                               np.einsum("g,gia->ia", weights, d_atoms), atol=1e-10 * scale * len(points))


def test_unknown_species_is_a_clear_error():
    desc = JLDescriptor(HYPER, SPECIES)
    with pytest.raises(ValueError, match="Z=\\[7\\]"):
        desc.features(np.zeros((1, 3)), np.array([1, 7]), np.array([[0.0, 0, 0], [1.0, 0, 0]]))


def test_points_far_from_every_atom_give_zero():
    z, atoms, points = cluster(7, n_points=30)
    desc = JLDescriptor(HYPER, SPECIES, chunk_size=8)
    coefs = desc.contract(np.random.default_rng(1).normal(size=desc.n_features))
    far = np.vstack([points, 100.0 + points])  # whole chunks with no atom within r_cut
    rho, grad = desc.predict(far, z, atoms, coefs)
    assert rho.dtype == float and np.all(rho[30:] == 0.0) and np.all(grad[30:] == 0.0)
    np.testing.assert_array_equal(rho[:30], desc.predict(points, z, atoms, coefs)[0])


def test_compiled_kernels_equal_the_numpy_reference():
    """The numba kernels (default) against the numpy implementation of the same formulas: values,
    gradients of several mixings, kept pair derivatives and weighted atom derivatives, with two
    channels, a point 1e-3 bohr from an atom and a chunk with no atom within r_cut."""
    z, atoms, points = cluster(11, n_points=60)
    points = np.vstack([points, atoms[:1] + 1e-3, 100.0 + points[:9]])
    fast, reference = JLDescriptor(HYPER, SPECIES, chunk_size=16), JLDescriptor(HYPER, SPECIES, compiled=False)
    rng = np.random.default_rng(12)
    channels = [fast.contract(rng.normal(size=fast.n_features)) for _ in range(2)]
    mixing = rng.normal(size=(3, 2, len(points)))
    got = fast.predict_mixed(points, z, atoms, channels, mixing, True, keep_pairs=True)
    want = reference.predict_mixed(points, z, atoms, channels, mixing, True, keep_pairs=True)
    # the kept pairs as a set: the compiled pass groups points by the species near them
    got_order, want_order = (np.lexsort((pairs.atom, pairs.point)) for pairs in (got[2], want[2]))
    for a, b in [(got[0], want[0]), (got[1], want[1]), (got[2].g[:, got_order], want[2].g[:, want_order])]:
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.abs(b).max())
    np.testing.assert_array_equal(got[2].point[got_order], want[2].point[want_order])
    np.testing.assert_array_equal(got[2].atom[got_order], want[2].atom[want_order])
    weights = rng.normal(size=(2, len(points)))
    np.testing.assert_allclose(fast.atom_derivatives(points, z, atoms, channels, weights),
                               reference.atom_derivatives(points, z, atoms, channels, weights), rtol=1e-11)
    np.testing.assert_allclose(fast.atom_derivatives(points, z, atoms, channels[0]),
                               reference.atom_derivatives(points, z, atoms, channels[0]), rtol=0,
                               atol=1e-12 * np.abs(got[1]).max())
