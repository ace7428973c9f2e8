"""Infrared spectra from dipole time series (docs/METHOD.md section 8).

alpha(omega) n(omega) from the autocorrelation of the dipole time derivative:
    C(t) = <mu_dot(0) . mu_dot(t)>,  C~(omega) = integral C(t) cos(omega t) dt  (= omega^2 C~_mumu)
    harmonic QCF:  alpha n  ~  beta C~(omega)                          (= beta omega^2 C~_mumu, default)
    standard QCF:  alpha n  ~  (2 / omega) tanh(beta hbar omega / 2) C~(omega)
    Schofield:     alpha n  ~  (2 / omega) sinh(beta hbar omega / 2) C~(omega)
    none:          C~(omega) itself (the classical dipole-derivative spectrum, no beta)
mu_dot by forward differences; its transfer function |2 sin(omega dt/2)/dt|^2 is divided out, so
the spectrum equals that of the exact derivative. The autocorrelation is the unbiased estimate
(FFT with zero padding, no wrap-around), windowed over [0, max lag], cosine-transformed with
extra zero padding. Spectra of blocks of every file are averaged; the error is the standard error
over blocks. Atomic units inside; wavenumbers in cm^-1 (1 a.u. of angular frequency =
219474.63 cm^-1) at the edge. Intensities are relative (maximum of the mean spectrum = 1).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.signal
from pyscf.data import elements

from ipi_jlcdm.geometry_io import read_frames
from ipi_jlcdm.units import BOLTZMANN_HARTREE_PER_K, CM1_PER_HARTREE, FS_PER_AU_TIME

QCF_CHOICES = ("harmonic", "standard", "schofield", "none")
WINDOW_CHOICES = ("hann", "blackman", "gaussian", "none")
_EXTRAS_HEADER = re.compile(r"#\s*EXTRAS.*?Step:\s*(\d+)")
_STEP_IN_COMMENT = re.compile(r"Step:\s*(\d+)")


class IRInputError(ValueError):
    """A dipole file or option that cannot give a spectrum."""


@dataclass
class DipoleSeries:
    """Dipoles (nframes, 3) in e*bohr; steps (nframes,) from i-PI headers or None for plain files."""

    path: str
    dipoles: np.ndarray
    steps: np.ndarray | None
    notes: list = field(default_factory=list)


def read_dipole_file(path: str | Path) -> DipoleSeries:
    """Read an i-PI dipole extras file (``#EXTRAS(dipole)# Step: N`` headers) or plain columns
    (the last three numbers of each line). Duplicated steps (a restart) keep the last value."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dipole file not found: {path}")
    lines = path.read_text().splitlines()
    steps, values = [], []
    has_headers = any(_EXTRAS_HEADER.search(line) for line in lines[:10])
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        if has_headers:
            match = _EXTRAS_HEADER.search(text)
            if match:
                steps.append(int(match.group(1)))
                continue
        elif text.startswith("#"):
            continue
        try:
            row = [float(v) for v in text.split()]
        except ValueError as err:
            raise IRInputError(f"{path}:{number}: non-numeric line {text[:60]!r}") from err
        if has_headers:
            if len(row) != 3:
                raise IRInputError(f"{path}:{number}: expected the 3 dipole components, got {len(row)} numbers")
        elif values and len(row) != len(values[0]):
            raise IRInputError(f"{path}:{number}: ragged line ({len(row)} columns, earlier lines {len(values[0])})")
        elif len(row) < 3:
            raise IRInputError(f"{path}:{number}: need at least 3 columns (mu_x mu_y mu_z)")
        values.append(row)
    if not values:
        raise IRInputError(f"{path}: no dipoles found")
    dipoles = np.array([row[-3:] for row in values])
    if not has_headers:
        return DipoleSeries(str(path), dipoles, None)
    if len(steps) != len(dipoles):
        raise IRInputError(f"{path}: {len(steps)} step headers but {len(dipoles)} dipole lines")
    order, keep = last_of_repeated_steps(steps)
    notes = []
    if len(order) != len(steps):
        notes.append(f"{len(steps) - len(order)} repeated steps (restart): kept the last values")
    return DipoleSeries(str(path), dipoles[keep], order, notes)


def molecular_frame_dipoles(dipoles: np.ndarray, positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Dipoles (nframes, 3) rotated into the frame of the molecule's first geometry: per frame the
    rotation R that best maps the centred positions (nframes, natm, 3) onto the first frame's
    (mass-weighted Kabsch), applied to the dipole. This removes the molecule's overall rotation from
    the dipole, so gas-phase vibrational bands appear at their band origins without the rotational
    (P/R-branch) broadening of the lab-frame dipole; the dipole's magnitude is unchanged."""
    masses = np.asarray(masses, dtype=float)
    centred = positions - np.einsum("a,nax->nx", masses, positions)[:, None, :] / masses.sum()
    reference = centred[0]
    out = np.empty_like(dipoles)
    for n, frame in enumerate(centred):
        u, _, vt = np.linalg.svd((frame * masses[:, None]).T @ reference)
        d = np.sign(np.linalg.det(vt.T @ u.T))
        rotation = vt.T @ np.diag([1.0, 1.0, d]) @ u.T  # rotation @ frame_i ~ reference_i
        out[n] = rotation @ dipoles[n]
    return out


def in_molecular_frame(series: DipoleSeries, positions_path: str | Path) -> DipoleSeries:
    """``series`` with its dipoles in the molecular frame (``molecular_frame_dipoles``), the positions
    read from an i-PI positions trajectory with the same frames (its last values of repeated steps)."""
    frames = read_frames(positions_path)
    matches = [_STEP_IN_COMMENT.search(f.comment) for f in frames]
    positions = np.array([f.coords_bohr for f in frames])
    if all(matches):
        steps = [int(m.group(1)) for m in matches]
        _, keep = last_of_repeated_steps(steps)
        positions = positions[keep]
    if len(positions) != len(series.dipoles):
        raise IRInputError(f"{positions_path}: {len(positions)} frames, but {series.path} has "
                           f"{len(series.dipoles)} dipoles")
    masses = np.array([elements.MASSES[int(z)] for z in frames[0].atomic_numbers])
    rotated = molecular_frame_dipoles(series.dipoles, positions, masses)
    return DipoleSeries(series.path, rotated, series.steps, [*series.notes, "dipoles in the molecular frame"])


def last_of_repeated_steps(steps: list[int]) -> tuple[np.ndarray, list[int]]:
    """Sorted unique steps and, for each, the index of its last occurrence (a continued i-PI run
    writes the steps after its checkpoint again: the newest values count)."""
    last_index = {s: k for k, s in enumerate(steps)}
    order = sorted(last_index)
    return np.array(order, dtype=int), [last_index[s] for s in order]


def read_extras_table(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Steps (n,) and rows (n, ncol) of an i-PI extras file written with a list of numeric
    ``extra_type`` keys (one header and one line of numbers per step), last values of repeated steps."""
    steps, rows = [], []
    for line in Path(path).read_text().splitlines():
        match = _EXTRAS_HEADER.search(line)
        if match:
            steps.append(int(match.group(1)))
        elif line.strip():
            rows.append([float(v) for v in line.split()])
    if len(steps) != len(rows):
        raise IRInputError(f"{path}: {len(steps)} step headers but {len(rows)} data lines")
    order, keep = last_of_repeated_steps(steps)
    return order, np.array(rows, dtype=float).reshape(len(rows), -1)[keep]


def step_stride(series: DipoleSeries) -> int | None:
    """MD steps between frames from the headers (error on gaps), None for plain files."""
    if series.steps is None or len(series.steps) < 2:
        return None
    diffs = np.diff(series.steps)
    stride = int(diffs.min())
    gaps = np.nonzero(diffs != stride)[0]
    if len(gaps):
        k = gaps[0]
        raise IRInputError(f"{series.path}: frames missing between steps {series.steps[k]} and {series.steps[k + 1]}")
    return stride


def one_sided_window(kind: str, n_lags: int) -> np.ndarray:
    """Window w_k for lags k = 0..n_lags-1 (w_0 = 1, decaying to ~0 at the maximum lag)."""
    if kind == "hann":
        return np.hanning(2 * n_lags + 1)[n_lags:-1]
    if kind == "blackman":
        return np.blackman(2 * n_lags + 1)[n_lags:-1]
    if kind == "gaussian":
        return np.exp(-0.5 * (np.arange(n_lags) / (n_lags / 3.0)) ** 2)
    if kind == "none":
        return np.ones(n_lags)
    raise IRInputError(f"unknown window {kind!r}; choose from {WINDOW_CHOICES}")


#: The cosine transform has at least this many points (zero padding), so short series still
#: give a smooth curve; their resolution is set by the maximum lag, not by this.
MIN_TRANSFORM_POINTS = 8192


def derivative_spectrum(dipoles: np.ndarray, dt: float, max_lag: int, window: str, zero_pad: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Angular frequencies (rad per a.u. time) and C~(omega) of the dipole derivative of one block.

    dipoles: (n, 3) e*bohr at spacing dt (a.u.); max_lag in frames (< n - 1); the transform has
    max(2 max_lag zero_pad, MIN_TRANSFORM_POINTS) points.
    """
    mu_dot = np.diff(dipoles, axis=0) / dt
    n = len(mu_dot)
    if max_lag >= n:
        raise IRInputError(f"block of {n + 1} frames is too short for a maximum lag of {max_lag} frames")
    nfft = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(mu_dot, n=nfft, axis=0)
    acf = np.fft.irfft((f * f.conj()).real.sum(axis=1), n=nfft)[: max_lag + 1] / (n - np.arange(max_lag + 1))
    acf = acf * one_sided_window(window, max_lag + 1)
    m = max(2 * max_lag * max(1, zero_pad), MIN_TRANSFORM_POINTS)
    even = np.zeros(m)
    even[: max_lag + 1] = acf
    even[m - max_lag:] = acf[1:][::-1]
    spectrum = np.fft.rfft(even).real * dt
    omega = 2 * np.pi * np.arange(len(spectrum)) / (m * dt)
    half = 0.5 * omega * dt
    transfer = np.ones_like(omega)
    transfer[1:] = (half[1:] / np.sin(half[1:])) ** 2  # forward difference -> exact derivative
    return omega, spectrum * transfer


def quantum_correction(omega: np.ndarray, qcf: str, temperature_k: float) -> np.ndarray:
    """Factor that turns C~ of the dipole derivative into alpha(omega) n(omega) (up to a constant)."""
    beta = 1.0 / (BOLTZMANN_HARTREE_PER_K * temperature_k)
    x = beta * omega
    safe = np.where(omega > 0, omega, 1.0)
    if qcf == "harmonic":
        return np.full_like(omega, beta)
    if qcf == "standard":
        return np.where(omega > 0, 2.0 * np.tanh(0.5 * x) / safe, beta)
    if qcf == "schofield":
        return np.where(omega > 0, 2.0 * np.sinh(np.minimum(0.5 * x, 700.0)) / safe, beta)
    if qcf == "none":
        return np.ones_like(omega)
    raise IRInputError(f"unknown quantum correction {qcf!r}; choose from {QCF_CHOICES}")


@dataclass
class IRSpectrum:
    """wavenumber_cm1 (nw,), intensity and error (nw,) relative to the maximum of the mean."""

    wavenumber_cm1: np.ndarray
    intensity: np.ndarray
    error: np.ndarray
    n_blocks: int
    timestep_fs: float
    max_lag_fs: float
    notes: list = field(default_factory=list)

    def peaks(self, min_relative: float = 0.03, min_cm1: float = 200.0) -> list[tuple[float, float]]:
        """(position cm^-1, relative intensity) of the peaks, parabolic interpolation on the grid."""
        y, x = self.intensity, self.wavenumber_cm1
        idx, _ = scipy.signal.find_peaks(y, prominence=min_relative * y.max())
        out = []
        for i in idx:
            if x[i] < min_cm1 or i == 0 or i == len(y) - 1:
                continue
            a, b, c = y[i - 1], y[i], y[i + 1]
            shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
            out.append((float(x[i] + shift * (x[1] - x[0])), float(b - 0.25 * (a - c) * shift)))
        return out


def compute_ir_spectrum(series: list[DipoleSeries], timestep_fs: float, stride: int | None = None,
                        skip_ps: float = 0.0, max_lag_fs: float | None = None, window: str = "hann",
                        zero_pad: int = 4, qcf: str = "harmonic", temperature_k: float = 300.0, blocks: int = 1,
                        max_wavenumber_cm1: float = 4000.0) -> IRSpectrum:
    """Average spectrum over files and blocks (see module docstring)."""
    if timestep_fs <= 0:
        raise IRInputError("--timestep-fs must be positive")
    if blocks < 1:
        raise IRInputError("--blocks must be at least 1")
    strides = {s.path: step_stride(s) for s in series}
    known = {v for v in strides.values() if v is not None}
    if len(known) > 1:
        raise IRInputError(f"files have different frame spacings (MD steps between frames): {strides}")
    if stride is None:
        stride = known.pop() if known else 1
    elif known and known != {stride}:
        raise IRInputError(f"--stride {stride} disagrees with the step headers of the files ({known.pop()})")
    dt_fs = timestep_fs * stride
    dt = dt_fs / FS_PER_AU_TIME
    skip = int(round(skip_ps * 1000.0 / dt_fs))
    notes = [note for s in series for note in s.notes]
    block_data = []
    for s in series:
        data = s.dipoles[skip:]
        length = len(data) // blocks
        if length < 3:
            raise IRInputError(f"{s.path}: {len(data)} frames after skipping {skip}: too short for {blocks} blocks")
        block_data += [data[b * length:(b + 1) * length] for b in range(blocks)]
    shortest = min(len(b) for b in block_data)
    if max_lag_fs is None:
        max_lag = shortest - 2
    else:
        max_lag = int(round(max_lag_fs / dt_fs))
        if max_lag > shortest - 2:
            raise IRInputError(f"blocks of {shortest} frames ({shortest * dt_fs:.1f} fs) are too short for a "
                               f"maximum correlation time of {max_lag_fs} fs: use fewer --blocks or a shorter "
                               "--max-lag-fs")
    if max_lag < 1:
        raise IRInputError("series too short for any correlation time")
    spectra = []
    for b in block_data:
        omega, spec = derivative_spectrum(b, dt, max_lag, window, zero_pad)
        spectra.append(spec * quantum_correction(omega, qcf, temperature_k))
    spectra = np.array(spectra)
    wavenumber = omega * CM1_PER_HARTREE
    keep = wavenumber <= max_wavenumber_cm1
    mean = spectra.mean(axis=0)
    if len(spectra) > 1:
        error = spectra.std(axis=0, ddof=1) / np.sqrt(len(spectra))
    else:
        error = np.zeros_like(mean)
        notes.append("one block only: no error estimate (use several files or --blocks)")
    scale = mean[keep].max()
    return IRSpectrum(wavenumber[keep], mean[keep] / scale, error[keep] / scale, len(spectra), dt_fs,
                      max_lag * dt_fs, notes)


def write_csv(spectrum: IRSpectrum, path: str | Path, header_extra: str = "") -> None:
    header = ("IR spectrum alpha(omega) n(omega), relative units (max = 1)" + header_extra +
              "\nwavenumber_cm-1,intensity,stderr")
    np.savetxt(path, np.column_stack([spectrum.wavenumber_cm1, spectrum.intensity, spectrum.error]),
               delimiter=",", header=header, fmt="%.6f")


def read_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """wavenumber (cm^-1), intensity and standard error (nw,) of a spectrum written by ``write_csv``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"spectrum file not found: {path}")
    try:
        table = np.loadtxt(path, delimiter=",", ndmin=2)
    except ValueError as err:
        raise IRInputError(f"{path}: not a spectrum written by 'ipi-jlcdm ir' ({err})") from err
    if table.shape[1] != 3:
        raise IRInputError(f"{path}: expected 3 columns (cm^-1, intensity, stderr), got {table.shape[1]}")
    return table[:, 0], table[:, 1], table[:, 2]


def write_peaks(peaks: list[tuple[float, float]], path: str | Path) -> None:
    np.savetxt(path, np.array(peaks).reshape(-1, 2), delimiter=",", fmt="%.3f",
               header="peak positions and relative intensities\nwavenumber_cm-1,relative_intensity")


def plot_spectrum(spectrum: IRSpectrum, path: str | Path, title: str = "",
                  reference: tuple[np.ndarray, np.ndarray] | None = None,
                  others: list[tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray]]] | None = None,
                  label: str = "", reference_label: str = "reference",
                  markers: list[tuple[str, float]] | None = None,
                  annotations: list[tuple[str, float]] | None = None) -> None:
    """PNG: spectrum with a shaded standard-error band, optional reference sticks, optional other
    spectra to compare with, [(label, (wavenumber, intensity, stderr))] (as ``read_csv`` returns them),
    each scaled to maximum 1, optional vertical dashed ``markers`` [(label, cm^-1)] (e.g. experimental
    fundamentals) and band ``annotations`` [(text, cm^-1)] written at the spectrum there."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.8))
    x, y, e = spectrum.wavenumber_cm1, spectrum.intensity, spectrum.error
    ax.plot(x, y, color="C0", lw=1.2, label=label or f"MD ({spectrum.n_blocks} block(s))")
    if np.any(e > 0):
        ax.fill_between(x, y - e, y + e, color="C0", alpha=0.3, lw=0, label="standard error")
    for k, (other_label, (ox, oy, oe)) in enumerate(others or [], 1):
        scale = 1.0 / oy.max() if oy.max() > 0 else 1.0
        ax.plot(ox, oy * scale, color=f"C{k + 1}", lw=1.2, label=other_label)
        if np.any(oe > 0):
            ax.fill_between(ox, (oy - oe) * scale, (oy + oe) * scale, color=f"C{k + 1}", alpha=0.2, lw=0)
    if reference is not None:
        freq, inten = reference
        inten = inten / inten.max()
        ax.vlines(freq, 0, inten, color="C3", lw=2.0, label=reference_label)
    for k, (marker_label, value) in enumerate(markers or []):
        ax.axvline(value, color="0.35", ls="--", lw=0.9, label="experiment (gas phase)" if k == 0 else None)
        ax.text(value, 0.98, marker_label, rotation=90, va="top", ha="right", fontsize=7, color="0.35",
                transform=ax.get_xaxis_transform())
    for _band, value in annotations or []:
        height = float(np.interp(value, x, y))
        ax.annotate(f"{value:.0f}", (value, height), xytext=(0, 4), textcoords="offset points", ha="center",
                    fontsize=8, color="C0")
    ax.set_xlabel("wavenumber (cm$^{-1}$)")
    ax.set_ylabel(r"$\alpha(\omega)\,n(\omega)$ (relative, max = 1)")
    ax.set_xlim(0, max(float(x.max()), 1.0))
    ax.set_ylim(0, 1.15 if markers or annotations else None)
    ax.set_title(title or f"IR spectrum (dt {spectrum.timestep_fs:g} fs, max lag {spectrum.max_lag_fs:.0f} fs)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def read_reference(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Reference sticks: two columns, frequency (cm^-1) and intensity (any unit)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference file not found: {path}")
    try:
        data = np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=2)
    except ValueError as err:
        raise IRInputError(f"{path}: expected two numeric columns (cm^-1, intensity): {err}") from err
    if data.shape[1] < 2:
        raise IRInputError(f"{path}: expected two columns (cm^-1, intensity)")
    return data[:, 0], data[:, 1]


def log_summary(spectrum: IRSpectrum, peaks, log=sys.stderr) -> None:
    resolution_cm1 = 1e15 / (spectrum.max_lag_fs * 2.99792458e10)
    print(f"IR spectrum: {spectrum.n_blocks} block(s), frame spacing {spectrum.timestep_fs:g} fs, maximum lag "
          f"{spectrum.max_lag_fs:.1f} fs (resolution ~{resolution_cm1:.0f} cm^-1)", file=log)
    for note in spectrum.notes:
        print(f"note: {note}", file=log)
    print("peaks (cm^-1, relative intensity):", file=log)
    for pos, height in peaks:
        print(f"  {pos:8.1f}  {height:6.3f}", file=log)
    if not peaks:
        print(f"  none resolved at ~{resolution_cm1:.0f} cm^-1 resolution: bands need a longer run (a 1 ps maximum "
              "lag gives ~33 cm^-1)", file=log)
