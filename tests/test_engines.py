"""SCF engine against rMD17 (independent code) and the one-shot pipeline fed the exact SCF density."""

import numpy as np

from ipi_jlcdm.electronic.density import ExactDeformation
from ipi_jlcdm.electronic.level import LevelOfTheory
from ipi_jlcdm.electronic.oneshot import OneShotEngine
from ipi_jlcdm.electronic.scf_engine import SCFEngine, extrapolated_guess
from ipi_jlcdm.units import BOHR_PER_ANGSTROM, KCAL_PER_MOL_PER_HARTREE

from .conftest import WATER, water_frames


def test_scf_engine_reproduces_rmd17_frame(rmd17, uracil_scf):
    _, result, _ = uracil_scf
    forces_kcal = result.forces * KCAL_PER_MOL_PER_HARTREE * BOHR_PER_ANGSTROM
    mae = np.abs(forces_kcal - rmd17["forces"][0]).mean()
    assert mae <= 0.05, f"force MAE vs rMD17 {mae:.4f} kcal/mol/A"
    # ORCA and PySCF energies differ by a small constant (basis/grid details): well under 0.5 kcal/mol
    assert abs(result.energy * KCAL_PER_MOL_PER_HARTREE - rmd17["energies"][0]) < 0.5


def test_oneshot_fed_exact_density_reproduces_scf(uracil_scf):
    frame, scf, mf = uracil_scf
    engine = OneShotEngine(ExactDeformation(mf.mol, mf.make_rdm1()), LevelOfTheory(grid_level=3), forces="orbital")
    one = engine.compute(frame.atomic_numbers, frame.coords_bohr)
    assert abs(one.energy - scf.energy) < 1e-5
    assert np.abs(one.forces - scf.forces).max() < 1e-4
    assert np.abs(one.dipole - scf.dipole).max() < 1e-3  # after the Anderson step (the default)
    assert np.abs(np.array(one.info["dipole_one_shot"]) - scf.dipole).max() < 1e-3
    assert np.abs(np.array(one.info["dipole_rho_in"]) - scf.dipole).max() < 1e-3
    assert abs(one.gap - scf.gap) < 1e-4
    assert one.residual < 1e-4
    assert abs(one.info["density_scale"] - 1.0) < 1e-5


def test_scf_engine_reuses_previous_density_matrix():
    level = LevelOfTheory(grid_level=1)
    first, second = water_frames(2, seed=1, amplitude=0.01)
    warm = SCFEngine(level, conv_tol=1e-9)
    warm.compute(np.array([8, 1, 1]), first)
    warm_result = warm.compute(np.array([8, 1, 1]), second)
    cold_result = SCFEngine(level, conv_tol=1e-9).compute(np.array([8, 1, 1]), second)
    assert warm_result.info["scf_cycles"] < cold_result.info["scf_cycles"]
    assert abs(warm_result.energy - cold_result.energy) < 1e-8


def test_extrapolated_guess_is_exact_for_quadratic_paths_and_refuses_back_and_forth():
    """Density matrices quadratic in time are predicted exactly (order 2); a +h/-h pattern of
    finite differences, which no polynomial in the step index follows, gets the previous one."""
    rng = np.random.default_rng(0)
    x0, x1, x2 = rng.normal(size=(3, 3, 3))
    p0, p1, p2 = rng.normal(size=(3, 5, 5))
    path = [(x0 + t * x1 + t * t * x2, p0 + t * p1 + t * t * p2) for t in (0.0, 0.1, 0.2, 0.3)]
    guess, order = extrapolated_guess(path[:3], path[3][0])
    assert order == 2 and np.allclose(guess, path[3][1])
    guess, order = extrapolated_guess(path[:2], path[2][0])  # two steps: linear, off by the curvature
    assert order == 1 and np.allclose(guess, 2 * path[1][1] - path[0][1])
    h = np.zeros((3, 3))
    h[0, 0] = 0.01
    back_and_forth = [(x0 + h, p0), (x0 - h, p1), (x0 + 2 * h, p2)]
    guess, order = extrapolated_guess(back_and_forth, x0 - 2 * h)
    assert order == 0 and guess is p2
    assert extrapolated_guess([], x0) == (None, -1)


def test_scf_engine_extrapolation_saves_cycles_along_a_smooth_path():
    """Along a smooth water vibration (0.02 bohr steps) the extrapolated guess converges in fewer
    SCF cycles than the previous density matrix, to the same energy as a cold start."""
    level = LevelOfTheory(grid_level=1)
    z = np.array([8, 1, 1])
    direction = np.random.default_rng(3).normal(size=WATER.shape)
    direction *= 0.3 / np.abs(direction).max()
    path = [WATER + np.sin(0.07 * k) * direction for k in range(6)]
    engine = SCFEngine(level, conv_tol=1e-10)
    results = [engine.compute(z, xyz) for xyz in path]
    assert [r.info["guess_order"] for r in results] == [-1, 0, 1, 2, 2, 2]
    plain_cycles = []
    for previous, xyz in zip(path[2:-1], path[3:], strict=True):
        plain = SCFEngine(level, conv_tol=1e-10)
        plain.compute(z, previous)
        plain_cycles.append(plain.compute(z, xyz).info["scf_cycles"])
    assert sum(r.info["scf_cycles"] for r in results[3:]) < sum(plain_cycles)
    cold = SCFEngine(level, conv_tol=1e-10).compute(z, path[-1])
    assert abs(results[-1].energy - cold.energy) < 1e-9
    assert np.abs(results[-1].forces - cold.forces).max() < 1e-5


def test_tailored_xc_gradient_equals_pyscf():
    """The one-shot forces' XC term (contracted with P first) equals PySCF's get_vxc route."""
    from ipi_jlcdm.electronic.density import grid_points
    from ipi_jlcdm.electronic.oneshot import _grid_slice, _pyscf_xc_gradient, _xc_gradient

    level = LevelOfTheory(grid_level=2)
    mol = level.make_mol(np.array([8, 1, 1]), water_frames(1, seed=2)[0])
    mf = level.make_rks(mol)
    mf.kernel()
    grids = level.make_grids(mol)
    coords, weights = grid_points(grids)
    ours, density = _xc_gradient(mol, "PBE", coords, weights, mf.make_rdm1())
    assert abs(weights @ density[0] - 10.0) < 1e-3  # the density it returns integrates to N_e
    theirs = _pyscf_xc_gradient(mol, "PBE", _grid_slice(grids, mol, coords, weights), mf.make_rdm1())
    assert np.abs(theirs).max() > 0.1
    np.testing.assert_allclose(ours, theirs, atol=1e-11)


def test_small_rho_pruning_moves_no_result():
    """The default step integrates over the points with |rho_SAD w| >= 1e-7 / n_grid (PySCF's
    small_rho_cutoff): fewer points, and energy, forces and dipole those of the whole grid."""
    from ipi_jlcdm.jl.model import JLCDModel

    model = JLCDModel.load("water")
    xyz = water_frames(1, seed=3)[0]
    whole = OneShotEngine(model, model.level, small_rho_cutoff=0.0).compute(np.array([8, 1, 1]), xyz)
    pruned = OneShotEngine(model, model.level).compute(np.array([8, 1, 1]), xyz)
    assert pruned.info["n_grid"] < 0.95 * whole.info["n_grid"]
    assert abs(pruned.energy - whole.energy) < 1e-8
    assert np.abs(pruned.forces - whole.forces).max() < 1e-7
    assert np.abs(pruned.dipole - whole.dipole).max() < 1e-8


def test_screened_ao_blocks_give_pyscfs_xc_matrix_and_gradient():
    """Two waters 20 bohr apart: most grid blocks keep the AOs of one molecule only (their AO values
    and density-matrix blocks compacted, ``map_screened_ao_blocks``); V_xc, E_xc and the XC gradient
    equal PySCF's dense ones."""
    from pyscf.dft import numint

    from ipi_jlcdm.electronic.density import grid_points, map_screened_ao_blocks, sad_density_matrix
    from ipi_jlcdm.electronic.oneshot import _grid_slice, _pyscf_xc_gradient, _xc_gradient, _xc_terms
    from ipi_jlcdm.parallel import world

    level = LevelOfTheory(grid_level=1)
    xyz = np.concatenate([WATER, WATER + np.array([20.0, 0.0, 0.0])])
    mol = level.make_mol(np.array([8, 1, 1, 8, 1, 1]), xyz)
    grids = level.make_grids(mol)
    coords, weights = grid_points(grids)
    dm = sad_density_matrix(mol)
    kept_counts = map_screened_ao_blocks(lambda sl, ao, kept: (len(kept), ao.shape[2]), mol, coords, 1)
    assert sum(n < mol.nao for n, _ in kept_counts) > len(kept_counts) / 2
    assert all(n == width for n, width in kept_counts)
    rho = numint.NumInt().eval_rho(mol, numint.eval_ao(mol, coords, deriv=1), dm, xctype="GGA")
    ours = _xc_terms(mol, "PBE", coords, weights, rho, world())[0]
    _, e_xc, v_xc = numint.NumInt().nr_rks(mol, _grid_slice(grids, mol, coords, weights), "PBE", dm)
    np.testing.assert_allclose(ours.v_matrix, v_xc, atol=1e-10)
    assert abs(ours.e_xc - e_xc) < 1e-10
    gradient, _ = _xc_gradient(mol, "PBE", coords, weights, dm)
    np.testing.assert_allclose(gradient, _pyscf_xc_gradient(mol, "PBE", _grid_slice(grids, mol, coords, weights), dm),
                               atol=1e-11)
