"""The demo's machinery on water (a few real i-PI steps) and the spectrum analysis it relies on,
checked on synthetic series with known frequencies."""

import numpy as np
from scipy.spatial.transform import Rotation

from ipi_jlcdm.analysis.ir import DipoleSeries, compute_ir_spectrum, molecular_frame_dipoles
from ipi_jlcdm.cli.main import main
from ipi_jlcdm.md.demo import MOLECULES, band_table
from ipi_jlcdm.units import CM1_PER_HARTREE, FS_PER_AU_TIME


def test_water_demo_runs_ipi_and_writes_the_spectrum_and_band_table(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--output-dir", str(out), "--nvt-steps", "2", "--nve-steps", "8", "--grid-level", "1"]) == 0
    log = capsys.readouterr().err
    for name in ("nvt.out", "nve.out", "nve.pos_0.xyz", "nve.dip_0", "nve.chk", "water_ir.csv", "water_ir_peaks.csv",
                 "water_ir.png"):
        assert (out / name).is_file(), name
    assert "NVE conserved quantity" in log and "antisymmetric O-H stretch" in log and "3756" in log
    assert np.loadtxt(out / "nve.out", ndmin=2).shape[0] == 9  # steps 0..8


def test_molecular_frame_removes_the_rotational_splitting_of_a_band():
    """A rigid bent molecule spinning at 40 cm^-1 about an axis whose body-frame dipole oscillates at
    1600 cm^-1 along x: in the lab frame the band splits into 1600 -+ 40 (P and R branches); rotated
    into the molecular frame it is one line at 1600."""
    dt_fs, n = 0.5, 8000
    t = np.arange(n) * dt_fs / FS_PER_AU_TIME  # atomic units of time
    omega_vib, omega_rot = 1600.0 / CM1_PER_HARTREE, 40.0 / CM1_PER_HARTREE
    body = np.array([[0.0, 0.0, 0.22], [0.0, 1.43, -0.89], [0.0, -1.43, -0.89]])  # bohr, centred near the COM
    masses = np.array([16.0, 1.0, 1.0])
    body -= masses @ body / masses.sum()
    rotations = Rotation.from_rotvec(np.outer(omega_rot * t, [0.0, 0.0, 1.0]))  # about z, perpendicular to x
    positions = np.array([r.apply(body) for r in rotations])
    dipole_body = np.outer(np.ones(n), [0.0, 0.0, 0.7]) + np.outer(0.05 * np.cos(omega_vib * t), [1.0, 0.0, 0.0])
    dipole_lab = np.array([r.apply(d) for r, d in zip(rotations, dipole_body, strict=True)])

    def peaks(dipoles):
        spectrum = compute_ir_spectrum([DipoleSeries("synthetic", dipoles, None)], dt_fs, qcf="none")
        return [p for p, height in spectrum.peaks(min_relative=0.2) if 1000 < p < 2200]

    lab = peaks(dipole_lab)
    assert len(lab) == 2 and abs(lab[0] - 1560) < 5 and abs(lab[1] - 1640) < 5
    body_frame = peaks(molecular_frame_dipoles(dipole_lab, positions, masses))
    assert len(body_frame) == 1 and abs(body_frame[0] - 1600) < 3


def test_band_table_gives_each_peak_to_one_band_and_names_the_offsets():
    bands = MOLECULES["water"].bands
    harmonic = np.array([1608.2, 3689.3, 3788.8])
    rows = band_table([(1590.0, 0.6), (3650.0, 0.1), (3745.0, 1.0), (2400.0, 0.05)], harmonic, bands)
    assert [r["md_cm1"] for r in rows] == [1590.0, 3650.0, 3745.0]
    assert abs(rows[2]["md_minus_experiment"] - (3745.0 - 3756.0)) < 1e-9
    one_peak = band_table([(3772.0, 1.0)], harmonic, bands)
    assert one_peak[1]["md_cm1"] is None and one_peak[2]["md_cm1"] == 3772.0  # the closer band gets it
