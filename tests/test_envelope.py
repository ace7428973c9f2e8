"""The envelope block drho = f_0 + e(rho_SAD) f_1, e = rho_SAD^p: its spatial gradient and its
derivatives with respect to the atom positions (through f_1 and through rho_SAD) against central
finite differences, with rho_SAD from PySCF at every displaced geometry; the model file round trip."""

import json
from dataclasses import replace

import numpy as np
import pytest

from ipi_jlcdm.electronic.density import (
    add_density_response,
    density_on_points,
    map_ao_blocks,
    per_atom,
    sad_density_matrix,
)
from ipi_jlcdm.electronic.oneshot import OneShotEngine
from ipi_jlcdm.jl.model import JLCDModel, envelope

from .conftest import assert_forces_are_energy_derivative, central_difference_gradient, water_frames
from .ipi_helpers import WATER_MODEL

Z = np.array([8, 1, 1])


def envelope_water_model(power: float = 1 / 3) -> JLCDModel:
    """The water test model's coefficients as f_0 and a rescaled, sign-mixed copy as f_1."""
    plain = JLCDModel.load(WATER_MODEL)
    signs = np.random.default_rng(4).choice([-1.0, 1.0], size=plain.coefficients.size)
    f1 = 0.5 * signs * plain.coefficients
    return JLCDModel(plain.hyper, plain.species, np.concatenate([plain.coefficients, f1]), plain.level,
                     envelope_power=power)


def sad_on_points(model, xyz, points):
    mol = model.level.make_mol(Z, xyz)
    return mol, density_on_points(mol, sad_density_matrix(mol), points, gradient=True)


def sample_points(xyz, n=300, seed=0):
    rng = np.random.default_rng(seed)
    return xyz[rng.integers(0, 3, n)] + rng.normal(scale=1.2, size=(n, 3))


def test_envelope_derivatives_of_rho():
    _, first, second = envelope(np.array([0.01, 1.0, 30.0]), 1 / 3)
    for rho, d1, d2 in zip([0.01, 1.0, 30.0], first, second, strict=True):
        h = 1e-6 * rho
        value = [envelope(np.array([rho + k * h]), 1 / 3)[0][0] for k in (-1, 0, 1)]
        assert d1 == pytest.approx((value[2] - value[0]) / (2 * h), rel=1e-6)
        assert d2 == pytest.approx((value[2] - 2 * value[1] + value[0]) / h**2, rel=1e-3)


def test_envelope_model_is_linear_in_its_features_and_its_gradient_is_the_spatial_derivative():
    model = envelope_water_model()
    xyz = water_frames(1, seed=3)[0]
    points = sample_points(xyz)
    _, sad = sad_on_points(model, xyz, points)
    drho, grad = model.deformation_density(points, Z, xyz, True, rho_sad=sad)
    np.testing.assert_allclose(model.design_matrix(points, Z, xyz, sad[0]) @ model.coefficients, drho,
                               atol=1e-10 * np.abs(drho).max())
    step = 1e-4
    for x in range(3):
        shift = np.zeros(3)
        shift[x] = step
        values = [model.deformation_density(points + sign * shift, Z, xyz, False,
                                            rho_sad=sad_on_points(model, xyz, points + sign * shift)[1][0])[0]
                  for sign in (1, -1)]
        np.testing.assert_allclose(grad[:, x], (values[0] - values[1]) / (2 * step), rtol=1e-5,
                                   atol=1e-6 * np.abs(grad).max())
    with pytest.raises(ValueError, match="rho_sad"):
        model.deformation_density(points, Z, xyz, True)


def test_envelope_vector_jacobian_product_including_the_motion_of_rho_sad():
    model = envelope_water_model()
    xyz = water_frames(1, seed=3)[0]
    points = sample_points(xyz, seed=1)
    potential = np.random.default_rng(2).normal(size=(4, len(points)))

    def contracted(coords):
        _, sad = sad_on_points(model, coords, points)
        rho, grad = model.deformation_density(points, Z, coords, True, rho_sad=sad)
        return potential[0] @ rho + np.einsum("xg,gx->", potential[1:4], grad)

    mol, sad = sad_on_points(model, xyz, points)
    analytic = model.deformation_density_vjp(points, Z, xyz, potential, rho_sad=sad)
    rho, grad, response, pairs = model.deformation_density_with_response(points, Z, xyz, sad)
    plain_rho, plain_grad = model.deformation_density(points, Z, xyz, True, rho_sad=sad)
    np.testing.assert_array_equal(rho, plain_rho)
    np.testing.assert_allclose(grad, plain_grad, rtol=1e-12, atol=1e-14)
    def block(sl, ao, _mask):
        part = np.zeros((3, mol.nao))
        add_density_response(part, ao, sad_density_matrix(mol), response.sad_potential(potential[:, sl], sl))
        return part

    per_ao = sum(map_ao_blocks(block, mol, points, 2))
    analytic += per_atom(mol, per_ao)
    one_pass = (model.deformation_density_vjp(points, Z, xyz, potential, rho_sad=sad, pairs=pairs, screen=0.0)
                + per_atom(mol, per_ao))
    fd = central_difference_gradient(contracted, xyz, 1e-4)
    np.testing.assert_allclose(analytic, fd, rtol=1e-5, atol=1e-5 * np.abs(fd).max())
    np.testing.assert_allclose(one_pass, fd, rtol=5e-5, atol=5e-5 * np.abs(fd).max())  # one-sided, O(h)


def test_consistent_forces_with_an_envelope_model_are_the_energy_derivative():
    """Directional derivatives of E_HF along random displacements without net translation (so
    the removed net force drops out) against route (b), on a level-4 frozen grid. Measured max
    |error| of all force components by full finite differences (Ha/bohr), grid level 2 / 4: this
    model 8.2e-4 / 4.5e-5, the plain model with 1.02x its coefficients 1.5e-4 / 2.1e-4: a
    quadrature inconsistency of that size, not specific to the envelope, not located yet."""
    from ipi_jlcdm.electronic.level import FrozenGridLevel

    plain = JLCDModel.load(WATER_MODEL)
    model = JLCDModel(plain.hyper, plain.species, np.concatenate([plain.coefficients, 0.02 * plain.coefficients]),
                      replace(plain.level, grid_level=4), envelope_power=1 / 3)
    xyz = water_frames(1, seed=3)[0]
    level = FrozenGridLevel(model.level, model.level.make_grids(model.level.make_mol(Z, xyz)))
    forces = OneShotEngine(model, level, forces="harris-foulkes").compute(Z, xyz).forces
    energy = OneShotEngine(model, level, compute_forces=False)
    assert_forces_are_energy_derivative(energy, forces, Z, xyz, step=1e-3, tolerance=1e-4)


def test_envelope_model_file_round_trip_and_version_1_files(tmp_path):
    model = envelope_water_model()
    loaded = JLCDModel.load(model.save(tmp_path / "env.npz"))
    assert loaded.envelope_power == pytest.approx(1 / 3) and loaded.n_blocks == 2
    np.testing.assert_array_equal(loaded.coefficients, model.coefficients)
    with np.load(WATER_MODEL) as data:  # a version-1 file (no envelope) still loads
        assert json.loads(str(data["metadata"]))["format_version"] == 1
    assert JLCDModel.load(WATER_MODEL).envelope_power is None
