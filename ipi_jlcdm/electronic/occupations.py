"""Orbital occupations of the one-shot step: aufbau, or Fermi-Dirac smearing.

Smearing keeps the density matrix, dipole and forces continuous when the HOMO and LUMO cross
(docs/METHOD.md section 7): the paper's 300 K spectrum failed because aufbau occupations flipped there.
Energies in hartree; occupations per spatial orbital in [0, 2]; entropy in units of k_B.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize

from ipi_jlcdm.units import BOLTZMANN_HARTREE_PER_K


def aufbau(mo_energy: np.ndarray, n_electrons: int) -> np.ndarray:
    occ = np.zeros_like(mo_energy)
    occ[: n_electrons // 2] = 2.0
    return occ


def fermi_dirac(mo_energy: np.ndarray, n_electrons: int, temperature_k: float) -> tuple[np.ndarray, float, float]:
    """Occupations 2 / (1 + exp((e - mu) / kT)) summing to n_electrons, the chemical potential mu
    (Ha) and the electronic entropy S / k_B = -2 sum [f ln f + (1 - f) ln(1 - f)], f = occ / 2."""
    kt = BOLTZMANN_HARTREE_PER_K * temperature_k

    def occupations(mu):
        return 2.0 / (1.0 + np.exp(np.clip((mo_energy - mu) / kt, -700, 700)))

    mu = scipy.optimize.brentq(lambda m: occupations(m).sum() - n_electrons,
                               mo_energy.min() - 50 * kt, mo_energy.max() + 50 * kt, xtol=1e-14)
    occ = occupations(mu)
    f = np.clip(occ / 2.0, 1e-300, 1.0)
    g = np.clip(1.0 - occ / 2.0, 1e-300, 1.0)
    entropy = -2.0 * float(np.sum(f * np.log(f) + g * np.log(g)))
    return occ, float(mu), entropy
