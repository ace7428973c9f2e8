"""Occupations: Fermi-Dirac smearing keeps the dipole continuous where aufbau occupations flip.

The case: BN stretched to 2.60-2.70 A with the atomic-superposition density (a model with zero
coefficients). Its sigma orbital drops below the pi pair near 2.63 A, so aufbau occupations flip
and the one-shot dipole jumps by about 2 e*bohr between geometries 0.01 A apart."""

import numpy as np

from ipi_jlcdm.electronic.level import LevelOfTheory
from ipi_jlcdm.electronic.occupations import fermi_dirac
from ipi_jlcdm.electronic.oneshot import OneShotEngine
from ipi_jlcdm.jl.descriptor import JLDescriptor, JLHyperparameters
from ipi_jlcdm.jl.model import JLCDModel
from ipi_jlcdm.units import BOHR_PER_ANGSTROM


def test_fermi_dirac_counts_electrons_and_limits_to_aufbau():
    eps = np.array([-1.0, -0.5, -0.30, -0.299, 0.2])
    occ, mu, entropy = fermi_dirac(eps, 6, 3000.0)
    assert abs(occ.sum() - 6) < 1e-10 and -0.30 < mu < -0.299 and entropy > 0
    cold, _, cold_entropy = fermi_dirac(eps, 6, 1.0)
    np.testing.assert_allclose(cold, [2, 2, 2, 0, 0], atol=1e-12)
    assert cold_entropy < 1e-10


def bn_dipoles(distances_angstrom, temperature_k, dipole="one-shot", anderson_steps=1):
    hyper = JLHyperparameters(n1=2, n2=3, l_max=1)
    level = LevelOfTheory(grid_level=1)
    superposition = JLCDModel(hyper, [5, 7], np.zeros(JLDescriptor(hyper, [5, 7]).n_features), level)
    engine = OneShotEngine(superposition, level, compute_forces=False, electronic_temperature_k=temperature_k,
                           dipole=dipole, anderson_steps=anderson_steps)
    return np.array([engine.compute(np.array([5, 7]), np.array([[0, 0, 0], [0, 0, d * BOHR_PER_ANGSTROM]])).dipole[2]
                     for d in distances_angstrom])


def test_smearing_keeps_the_dipole_continuous_across_an_occupation_flip():
    distances = np.arange(2.58, 2.70, 0.01)
    jumps_aufbau = np.abs(np.diff(bn_dipoles(distances, 0.0)))
    jumps_smeared = np.abs(np.diff(bn_dipoles(distances, 3000.0)))
    assert jumps_aufbau.max() > 1.0  # the flip: > 1 e*bohr between geometries 0.01 A apart
    assert jumps_smeared.max() < 0.25 * jumps_aufbau.max()
    assert jumps_smeared.max() < 3 * np.median(jumps_smeared)  # no step, just the smooth trend


def test_smearing_also_keeps_the_anderson_dipole_continuous():
    """The Anderson steps diagonalize again with the same occupation rule: measured jumps with one
    step 0.85 e*bohr at the flip with aufbau, <= 0.004 everywhere with smearing at 3000 K; with three
    steps (the default) 0.10 e*bohr with aufbau (the steps move towards the SCF solution) and smooth
    with smearing."""
    distances = np.arange(2.58, 2.70, 0.01)
    jumps_aufbau = np.abs(np.diff(bn_dipoles(distances, 0.0, "anderson")))
    jumps_smeared = np.abs(np.diff(bn_dipoles(distances, 3000.0, "anderson")))
    assert jumps_aufbau.max() > 0.5
    assert jumps_smeared.max() < 3 * np.median(jumps_smeared) and jumps_smeared.max() < 0.02
    jumps_aufbau_3 = np.abs(np.diff(bn_dipoles(distances, 0.0, "anderson", anderson_steps=3)))
    jumps_smeared_3 = np.abs(np.diff(bn_dipoles(distances, 3000.0, "anderson", anderson_steps=3)))
    print("three steps: largest jump aufbau", jumps_aufbau_3.max(), "smeared", jumps_smeared_3.max())
    assert jumps_aufbau_3.max() > 5 * np.median(jumps_aufbau_3)  # still a visible flip
    assert jumps_smeared_3.max() < 3 * np.median(jumps_smeared_3) and jumps_smeared_3.max() < 0.02
