"""Anderson steps (ipi_jlcdm/electronic/anderson.py): dipoles, route (c) forces and energies against full SCF."""

from dataclasses import replace

import numpy as np
import scipy.linalg

from ipi_jlcdm.electronic.anderson import anderson_theta
from ipi_jlcdm.electronic.oneshot import OneShotEngine
from ipi_jlcdm.electronic.scf_engine import SCFEngine
from ipi_jlcdm.jl.model import JLCDModel
from ipi_jlcdm.units import DEBYE_PER_AU

from .conftest import water_frames
from .ipi_helpers import WATER_MODEL

Z = np.array([8, 1, 1])


def test_anderson_step_removes_a_mode_with_one_eigenvalue():
    """For residuals of a linear map with a single eigenvalue lambda (r_1 = lambda r_0) Anderson's
    theta is 1 / (1 - lambda), whatever the metric; equal residuals give 0, and theta stays in [0, 1]."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    factor = scipy.linalg.cho_factor(a @ a.T + 6 * np.eye(6))
    r0 = rng.normal(size=6)
    for lam in (-2.0, -0.5, -0.1):
        assert abs(anderson_theta(r0, lam * r0, factor) - 1 / (1 - lam)) < 1e-12
    assert anderson_theta(np.zeros(6), np.zeros(6), factor) == 0.0
    assert anderson_theta(r0, r0, factor) == 0.0
    assert anderson_theta(r0, 0.3 * r0, factor) == 1.0  # 1 / (1 - 0.3) would extrapolate beyond P_2: clipped


def test_anderson_dipole_is_closer_to_scf_than_the_one_shot_dipole():
    """Distorted water frames (not in the test model's training set): full SCF dipoles are the truth.
    Measured: one-shot (P_out) errors 0.04-0.18 D, Anderson 0.002-0.037 D."""
    model = JLCDModel.load(WATER_MODEL)
    one_shot = OneShotEngine(model, model.level, compute_forces=False)
    scf = SCFEngine(model.level)
    for xyz in water_frames(3, seed=5, amplitude=0.15) + water_frames(3, seed=6, amplitude=0.15):
        result, reference = one_shot.compute(Z, xyz), scf.compute(Z, xyz)
        error_one_shot = np.linalg.norm(np.array(result.info["dipole_one_shot"]) - reference.dipole) * DEBYE_PER_AU
        error_anderson = np.linalg.norm(result.dipole - reference.dipole) * DEBYE_PER_AU
        assert 0.0 < result.info["anderson_theta"] < 1.0
        assert error_anderson < 0.05 and error_anderson < 0.4 * error_one_shot, (error_anderson, error_one_shot)


def test_one_shot_dipole_route_is_p_out():
    model = JLCDModel.load(WATER_MODEL)
    xyz = water_frames(1, seed=5)[0]
    plain = OneShotEngine(model, model.level, compute_forces=False, dipole="one-shot").compute(Z, xyz)
    anderson = OneShotEngine(model, model.level, compute_forces=False).compute(Z, xyz)
    np.testing.assert_allclose(plain.dipole, anderson.info["dipole_one_shot"], atol=1e-12)
    assert plain.energy == anderson.energy and plain.info["anderson_theta"] == 0.0


def test_anderson_route_approaches_scf_forces_and_energy_with_the_steps():
    """Route (c) (``forces='anderson'``): PySCF's gradient on the orbitals of the Anderson mixture's
    Fock matrix, and the Harris-Foulkes energy of the mixture. Full SCF forces and energies are the
    truth; distorted water frames the test model never saw. The errors fall with the steps, from
    route (a)'s (the same force formula on the one-shot orbitals, the one-shot energy).
    Measured on the two frames: largest force component error (Ha/bohr) route (a) 1.0e-3 / 2.2e-3,
    route (c) after 1, 3, 6 steps 7.7e-4 / 4.0e-4, 3.1e-6 / 1.2e-5, 6.7e-8 / 1.4e-8; energy error
    (Ha) one-shot 2.1e-4 / 9.1e-4, route (c) 1.0e-5 / 2.4e-6, 1.9e-10 / 2.1e-9, 4e-13 / 1e-13."""
    model = JLCDModel.load(WATER_MODEL)
    scf = SCFEngine(model.level)
    orbital = OneShotEngine(model, model.level, forces="orbital")
    routes = {steps: OneShotEngine(model, model.level, forces="anderson", anderson_steps=steps) for steps in (1, 3, 6)}
    for xyz in water_frames(2, seed=7, amplitude=0.15):
        reference = scf.compute(Z, xyz)
        one_shot = orbital.compute(Z, xyz)
        error = {"orbital": np.abs(one_shot.forces - reference.forces).max()}
        energy_error = {"one-shot": abs(one_shot.energy - reference.energy)}
        for steps, engine in routes.items():
            result = engine.compute(Z, xyz)
            error[steps] = np.abs(result.forces - reference.forces).max()
            energy_error[steps] = abs(result.energy - reference.energy)
            assert result.info["energy_one_shot"] == one_shot.energy
            no_forces = OneShotEngine(model, model.level, forces="anderson", anderson_steps=steps, compute_forces=False)
            assert no_forces.compute(Z, xyz).energy == result.energy  # the route's energy, forces or not
        assert error[6] < 1e-4 < error["orbital"], error
        assert error[6] < error[3] < error[1] < error["orbital"], error
        assert energy_error[6] < 1e-8 and energy_error[3] < energy_error[1] < energy_error["one-shot"], energy_error


def test_anderson_forces_are_exact_for_the_scf_density(uracil_scf):
    """Fed the exact SCF density the mixture is P_SCF itself: route (c) gives the SCF forces and energy."""
    from ipi_jlcdm.electronic.density import ExactDeformation
    from ipi_jlcdm.electronic.level import LevelOfTheory

    frame, scf, mf = uracil_scf
    engine = OneShotEngine(ExactDeformation(mf.mol, mf.make_rdm1()), LevelOfTheory(grid_level=3), forces="anderson",
                           anderson_steps=1)
    result = engine.compute(frame.atomic_numbers, frame.coords_bohr)
    assert np.abs(result.forces - scf.forces).max() < 1e-4
    assert abs(result.energy - scf.energy) < 1e-6


def test_anderson_steps_on_a_coarser_grid_keep_the_dipole_and_leave_energy_and_forces():
    """``anderson_grid_level``: the Anderson steps' V_xc on a coarser grid. Full SCF dipoles on the
    step's grid are the truth. Energy and forces are the one-shot step's, untouched; the dipole moves
    less than its error against SCF (measured on these frames: 2e-5 / 5e-5 D at level 1, errors
    1.2e-4 / 3.7e-4 D at either level)."""
    model = JLCDModel.load(WATER_MODEL)
    level = replace(model.level, grid_level=3)
    fine = OneShotEngine(model, level, anderson_grid_level=None)
    coarse = OneShotEngine(model, level, anderson_grid_level=1)
    scf = SCFEngine(level)
    for xyz in water_frames(2, seed=7, amplitude=0.15):
        a, b, reference = fine.compute(Z, xyz), coarse.compute(Z, xyz), scf.compute(Z, xyz)
        assert a.energy == b.energy and np.array_equal(a.forces, b.forces)
        shift = np.linalg.norm(a.dipole - b.dipole) * DEBYE_PER_AU
        error = np.linalg.norm(b.dipole - reference.dipole) * DEBYE_PER_AU
        assert 0.0 < shift < 5e-4 and error < 0.005, (shift, error)
