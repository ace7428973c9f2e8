"""The harmonic analysis (``ipi-jlcdm harmonic``): the coupling of near-degenerate modes against a
Hessian built with a known mixing angle, and the SCF engine's finite differences against PySCF's
analytic Hessian."""

import numpy as np

from ipi_jlcdm.analysis import harmonic
from ipi_jlcdm.cli.main import main


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


def test_hessian_in_reference_modes_is_diagonal_in_its_own_modes():
    """A Cartesian Hessian expressed in the normal modes PySCF derives from it (water, HF/STO-3G) is
    diag(omega^2): the frequencies come back to 1e-6 cm^-1 and nothing couples; the same modes under
    a Hessian with one mode's force constant raised by 1 % move that mode alone, by 0.5 %."""
    from pyscf import gto, scf
    from pyscf.hessian import thermo

    mol = gto.M(atom="O 0 0 0.12; H 0 0.76 -0.47; H 0 -0.76 -0.47", basis="sto-3g", verbose=0)
    mf = scf.RHF(mol).run(conv_tol=1e-11)
    hessian = mf.Hessian().kernel()
    analysis = thermo.harmonic_analysis(mol, hessian, imaginary_freq=False)
    freq, modes = np.asarray(analysis["freq_wavenumber"]), np.asarray(analysis["norm_mode"])
    k = harmonic.hessian_in_reference_modes(hessian, modes)
    assert np.allclose(harmonic.hessian_to_wavenumbers(np.diag(k)), freq, atol=1e-6)
    assert np.abs(k - np.diag(np.diag(k))).max() < 1e-9 * np.abs(k).max()
    k_variant = k.copy()
    k_variant[2, 2] *= 1.01
    rows, pairs = harmonic.variant_table(k_variant, freq, np.eye(3), 1000.0)
    cells = [[float(c) for c in row.strip("|").split("|")] for row in rows[2:]]
    assert [c[0] for c in cells] == [1, 2, 3] and pairs == []  # all three above 1000 cm^-1, none within 40
    assert np.allclose([c[3] for c in cells], [0.0, 0.0, round(freq[2] * (1.01 ** 0.5 - 1), 1)], atol=0.051)
    assert all(c[4] == 1.0 and c[7] == 1.0 for c in cells)  # unmixed: overlap 1, intensities unchanged


def test_coupling_difference_by_atom_finds_the_perturbed_atom():
    """Reference forces linear in the displacement (a random symmetric Hessian) and model forces that
    differ only on atom 2: the per-atom terms vanish elsewhere and sum to K_jk(model) - K_jk(ref)."""
    rng = np.random.default_rng(3)
    natm, nmode = 4, 5
    modes = rng.normal(size=(nmode, natm, 3))
    steps = np.full(nmode, 0.01)
    h = rng.normal(size=(3 * natm, 3 * natm))
    h = h + h.T
    displacements = np.stack([steps[:, None, None] * modes, -steps[:, None, None] * modes], axis=1)
    reference = -np.einsum("ij,ksj->ksi", h, displacements.reshape(nmode, 2, -1)).reshape(nmode, 2, natm, 3)
    model = reference.copy()
    model[:, :, 2] += rng.normal(size=(nmode, 1, 3)) * displacements[:, :, 2]  # displacement-odd change
    terms = harmonic.coupling_difference_by_atom(modes, model, reference, steps, 1, 3)
    k_model, k_ref = (harmonic.hessian_in_mode_basis(modes, f, steps) for f in (model, reference))
    k_diff = k_model - k_ref
    assert np.allclose(np.delete(terms, 2), 0.0) and abs(terms[2]) > 1e-6
    assert np.isclose(terms.sum(), k_diff[1, 3])


def test_scf_finite_differences_reproduce_pyscf_hessian_frequencies_and_intensities(tmp_path, capsys):
    (tmp_path / "water.xyz").write_text("3\nwater\nO 0.0 0.0 0.13\nH 0.0 0.76 -0.47\nH 0.0 -0.76 -0.47\n")
    out = tmp_path / "harm"
    assert main(["harmonic", "--engine", "scf", "--model", "water", "--structure", str(tmp_path / "water.xyz"),
                 "-o", str(out)]) == 0
    table = np.loadtxt(out / "harmonic.csv", delimiter=",", skiprows=1)
    freq_ref, freq_fd, intensity_ref, intensity_fd = table[:, 1], table[:, 2], table[:, 4], table[:, 5]
    assert len(freq_ref) == 3 and 1500 < freq_ref[0] < 1700  # bend, two stretches
    np.testing.assert_allclose(freq_fd, freq_ref, atol=2.0)  # cm^-1: the protocol's own error
    np.testing.assert_allclose(intensity_fd, intensity_ref, rtol=0.02, atol=0.05)  # km/mol
    assert (out / "harmonic.png").is_file() and (out / "harmonic.md").is_file()
