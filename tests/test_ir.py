"""IR spectra: analytic signals with known lines, the QCF prefactors, i-PI's i-pi-getacf, error
bars, and bad inputs."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ipi_jlcdm.analysis.ir import (
    FS_PER_AU_TIME,
    DipoleSeries,
    IRInputError,
    compute_ir_spectrum,
    derivative_spectrum,
    quantum_correction,
    read_csv,
    read_dipole_file,
)
from ipi_jlcdm.cli.main import main

CM1_PER_AU = 219474.63  # angular frequency: 1 a.u. = 219474.63 cm^-1
DT_FS = 0.5
LINES = [(1000.0, 1.0), (1700.0, 0.5), (3400.0, 0.3)]  # cm^-1, dipole amplitude (e*bohr)
DAMPING_FS = 1500.0


def synthetic_dipoles(n, lines=LINES, seed=0, noise=1e-4, damping_fs=DAMPING_FS):
    """Sum of damped cosines with random phases along fixed directions, plus white noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) * DT_FS / FS_PER_AU_TIME
    mu = np.zeros((n, 3))
    for k, (nu, amp) in enumerate(lines):
        direction = np.eye(3)[k % 3]
        envelope = np.exp(-t / (damping_fs / FS_PER_AU_TIME))
        mu += np.outer(amp * envelope * np.cos(nu / CM1_PER_AU * t + rng.uniform(0, 2 * np.pi)), direction)
    return mu + noise * rng.normal(size=mu.shape)


def write_ipi_extras(path, dipoles, first_step=0, stride=1):
    with open(path, "w") as f:
        for k, mu in enumerate(dipoles):
            f.write(f" #EXTRAS(dipole)# Step: {first_step + k * stride:11d} \n")
            f.write("  " + "  ".join(f"{v: .8e}" for v in mu) + "\n")


def test_peaks_and_relative_intensities_of_known_lines():
    spectrum = compute_ir_spectrum([DipoleSeries("s", synthetic_dipoles(8000, damping_fs=1e9), None)], DT_FS,
                                   max_lag_fs=1000.0, qcf="none")
    peaks = spectrum.peaks()
    assert len(peaks) == 3
    resolution = 1e15 / (spectrum.max_lag_fs * 2.99792458e10)  # cm^-1
    expected = np.array([(amp * nu) ** 2 for nu, amp in LINES])  # |d mu/dt|^2 ~ (amplitude omega)^2
    expected /= expected.max()
    for (pos, height), (nu, _), ref in zip(peaks, LINES, expected, strict=True):
        assert abs(pos - nu) < 0.1 * resolution
        assert abs(height - ref) < 0.03


def test_quantum_correction_prefactors():
    """Ratios of the QCFs at 1000 cm^-1 and 300 K from kT = 208.5 cm^-1, computed independently."""
    omega = np.array([1000.0 / CM1_PER_AU])
    x = 1000.0 / (0.69503476 * 300.0)  # hbar omega / kT with k_B = 0.695 cm^-1/K
    harmonic = quantum_correction(omega, "harmonic", 300.0)[0]
    assert np.isclose(quantum_correction(omega, "standard", 300.0)[0] / harmonic, 2 * np.tanh(x / 2) / x, rtol=1e-6)
    assert np.isclose(quantum_correction(omega, "schofield", 300.0)[0] / harmonic, 2 * np.sinh(x / 2) / x, rtol=1e-6)
    assert np.isclose(harmonic, 1.0 / (3.166811563e-6 * 300.0))  # beta in 1/hartree
    assert quantum_correction(omega, "none", 300.0)[0] == 1.0
    # harmonic = beta omega^2 C_mumu: the derivative spectrum is omega^2 times the dipole spectrum
    dt = DT_FS / FS_PER_AU_TIME
    mu = synthetic_dipoles(4000, lines=[(1200.0, 1.0)], damping_fs=1e9, noise=0.0)
    w, deriv = derivative_spectrum(mu, dt, 1500, "hann", 4)
    peak = np.argmax(deriv)
    integral = np.trapezoid(deriv[peak - 40: peak + 40], w[peak - 40: peak + 40])
    # Parseval: integral of C~(omega) d omega / pi = <|mu_dot|^2> = (amplitude omega)^2 / 2 for a cosine
    assert np.isclose(integral / np.pi, 0.5 * (1200.0 / CM1_PER_AU) ** 2, rtol=0.05)


def test_agrees_with_ipi_getacf(tmp_path):
    mlag = 1000
    mu = synthetic_dipoles(8 * mlag, seed=2, damping_fs=1e9)
    xyz = tmp_path / "dip.xyz"
    with open(xyz, "w") as f:  # one pseudo-atom whose position is the dipole (atomic units)
        for row in mu:
            f.write("1\n# positions{atomic_unit}\nX " + " ".join(f"{v:.10e}" for v in row) + "\n")
    getacf = Path(sys.executable).with_name("i-pi-getacf")
    subprocess.run([str(getacf), "-ifile", str(xyz), "-mlag", str(mlag), "-ftwin", "cosine-hanning",
                    "-dt", f"{DT_FS} femtosecond", "-oprefix", str(tmp_path / "ipi"), "-der", "-ftpad", "3000"],
                   check=True, capture_output=True)
    omega, facf = np.loadtxt(tmp_path / "ipi_facf.data", usecols=(0, 1), unpack=True)
    dt = DT_FS / FS_PER_AU_TIME
    # i-PI differentiates with np.gradient (central differences): divide out sin(omega dt)/(omega dt)
    half = omega.size // 2
    omega, facf = omega[1:half], facf[1:half] * ((omega[1:half] * dt) / np.sin(omega[1:half] * dt)) ** 2
    theirs = facf / facf[omega * CM1_PER_AU < 4000].max()
    ours = compute_ir_spectrum([DipoleSeries("s", mu, None)], DT_FS, max_lag_fs=mlag * DT_FS, qcf="none")
    ours_on_theirs = np.interp(omega * CM1_PER_AU, ours.wavenumber_cm1, ours.intensity)
    for nu, _ in LINES:
        near = np.abs(omega * CM1_PER_AU - nu) < 40
        assert abs(omega[near][np.argmax(theirs[near])] * CM1_PER_AU - nu) < 10
        assert abs(theirs[near].max() - ours_on_theirs[near].max()) < 0.1


def stochastic_dipoles(n, seed):
    """A noisy damped oscillator (Langevin-driven): its spectrum estimate fluctuates between runs."""
    rng = np.random.default_rng(seed)
    dt = DT_FS / FS_PER_AU_TIME
    omega0, gamma = 1500.0 / CM1_PER_AU, 1.0 / (300.0 / FS_PER_AU_TIME)
    x = np.zeros((n, 3))
    v = rng.normal(size=3)
    pos = np.zeros(3)
    for k in range(n):
        v += dt * (-omega0**2 * pos - gamma * v) + np.sqrt(2 * gamma * dt) * omega0 * rng.normal(size=3)
        pos += dt * v
        x[k] = pos
    return x


def test_langevin_line_has_width_gamma():
    """A Langevin oscillator's velocity spectrum gamma w^2/((w0^2 - w^2)^2 + gamma^2 w^2) has FWHM gamma
    exactly: here gamma = 1/(300 fs), i.e. 17.7 cm^-1."""
    files = [DipoleSeries(f"f{s}", stochastic_dipoles(40000, s), None) for s in range(4)]
    spectrum = compute_ir_spectrum(files, DT_FS, max_lag_fs=3000.0, window="hann", qcf="none", blocks=2)
    x, y = spectrum.wavenumber_cm1, spectrum.intensity
    above = x[y >= 0.5]
    expected = CM1_PER_AU / (300.0 / FS_PER_AU_TIME)
    assert abs((above.max() - above.min()) - expected) < 0.2 * expected
    assert abs(x[np.argmax(y)] - 1500.0) < 3.0


def test_error_bars_shrink_with_more_files():
    files = [DipoleSeries(f"f{s}", stochastic_dipoles(4000, s), None) for s in range(32)]
    few = compute_ir_spectrum(files[:8], DT_FS, max_lag_fs=500.0, blocks=2)
    many = compute_ir_spectrum(files, DT_FS, max_lag_fs=500.0, blocks=2)
    assert few.n_blocks == 16 and many.n_blocks == 64
    band = (many.wavenumber_cm1 > 1200) & (many.wavenumber_cm1 < 1800)
    ratio = few.error[band].mean() / many.error[band].mean()
    assert 1.5 < ratio < 2.7  # standard error ~ 1/sqrt(blocks): sqrt(64/16) = 2
    assert abs(many.peaks()[0][0] - 1500.0) < 30


def test_cli_writes_outputs_and_reads_ipi_files(tmp_path, capsys):
    mu = synthetic_dipoles(3000)
    write_ipi_extras(tmp_path / "a.dip_0", mu[:1500])
    write_ipi_extras(tmp_path / "b.dip_0", mu[1500:], first_step=0)
    ref = tmp_path / "ref.dat"
    np.savetxt(ref, [[1000.0, 1.0], [1700.0, 0.6]])
    assert main(["ir", str(tmp_path / "a.dip_0"), str(tmp_path / "b.dip_0"), "--timestep-fs", "0.5",
                 "--max-lag-fs", "300", "--blocks", "2", "--reference", str(ref), "-o", str(tmp_path / "out")]) == 0
    table = np.loadtxt(tmp_path / "out.csv", delimiter=",")
    assert table.shape[1] == 3 and np.all(table[:, 2] >= 0)
    peaks = np.loadtxt(tmp_path / "out_peaks.csv", delimiter=",", ndmin=2)
    assert np.min(np.abs(peaks[:, 0] - 1700.0)) < 20
    assert (tmp_path / "out.png").stat().st_size > 10000
    assert "peaks" in capsys.readouterr().err


def test_restart_duplicates_are_merged_and_gaps_refused(tmp_path):
    mu = synthetic_dipoles(10)
    path = tmp_path / "d"
    write_ipi_extras(path, mu[:6])
    with open(path, "a") as f:  # a restart from step 4 rewrites steps 4 and 5 and continues
        for k in range(4, 10):
            f.write(f" #EXTRAS(dipole)# Step: {k:11d} \n  {mu[k, 0]} {mu[k, 1]} {mu[k, 2]}\n")
    series = read_dipole_file(path)
    assert list(series.steps) == list(range(10)) and series.notes
    gap = tmp_path / "gap"
    with open(gap, "w") as f:  # step 5 is missing
        for k in [0, 1, 2, 3, 4, 6, 7, 8]:
            f.write(f" #EXTRAS(dipole)# Step: {k:11d} \n  {mu[k, 0]} {mu[k, 1]} {mu[k, 2]}\n")
    with pytest.raises(IRInputError, match="missing between steps 4 and 6"):
        compute_ir_spectrum([read_dipole_file(gap)], DT_FS)


@pytest.mark.parametrize("case, message", [
    ("missing", "not found"), ("ragged", "ragged"), ("text", "non-numeric"), ("short", "too short"),
    ("strides", "different frame spacings"),
])
def test_bad_inputs_give_clear_errors(tmp_path, capsys, case, message):
    a, b = tmp_path / "a", tmp_path / "b"
    extra = []
    if case == "ragged":
        a.write_text("0.1 0.2 0.3\n0.1 0.2\n")
    elif case == "text":
        a.write_text("0.1 0.2 0.3\n0.1 abc 0.3\n")
    elif case == "short":
        write_ipi_extras(a, synthetic_dipoles(100))
        extra = ["--max-lag-fs", "500"]
    elif case == "strides":
        write_ipi_extras(a, synthetic_dipoles(100), stride=1)
        write_ipi_extras(b, synthetic_dipoles(100), stride=2)
        extra = [str(b)]
    args = ["ir", str(a), *extra, "--timestep-fs", "0.5", "-o", str(tmp_path / "out")]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_spectra_are_read_back_and_compared_in_one_plot(tmp_path):
    """A spectrum written by 'ipi-jlcdm ir' reads back unchanged (to the 6 written decimals) with its
    line where the signal has it; --compare draws it next to a new one (two temperatures, say)."""
    write_ipi_extras(tmp_path / "cold.dip_0", synthetic_dipoles(3000, lines=[(1000.0, 1.0)]))
    write_ipi_extras(tmp_path / "hot.dip_0", synthetic_dipoles(3000, lines=[(1700.0, 1.0)], seed=1))
    options = ["--timestep-fs", "0.5", "--max-lag-fs", "300"]
    assert main(["ir", str(tmp_path / "cold.dip_0"), *options, "-o", str(tmp_path / "cold")]) == 0
    wavenumber, intensity, error = read_csv(tmp_path / "cold.csv")
    written = np.loadtxt(tmp_path / "cold.csv", delimiter=",")
    np.testing.assert_array_equal(np.column_stack([wavenumber, intensity, error]), written)
    assert abs(wavenumber[np.argmax(intensity)] - 1000.0) < 30
    assert main(["ir", str(tmp_path / "hot.dip_0"), *options, "--compare", str(tmp_path / "cold.csv"),
                 "--label", "hot", "-o", str(tmp_path / "hot")]) == 0
    assert (tmp_path / "hot.png").stat().st_size > (tmp_path / "cold.png").stat().st_size  # one more curve
    with pytest.raises(IRInputError, match="3 columns"):
        np.savetxt(tmp_path / "bad.csv", [[1.0, 2.0]], delimiter=",")
        read_csv(tmp_path / "bad.csv")
