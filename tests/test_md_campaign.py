"""``ipi-jlcdm campaign`` (ipi_jlcdm.md.campaign): the i-PI inputs it writes (parsed by i-PI's own
input classes) and the files it reads back (i-PI's properties and extras formats)."""

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from ipi.inputs.simulation import InputSimulation
from ipi.utils.io.inputs import io_xml

from ipi_jlcdm.md import campaign
from ipi_jlcdm.md.demo import packaged_inputs
from ipi_jlcdm.md.ipi_run import configure_input
from ipi_jlcdm.md.md_properties import conservation, read_properties


def parsed_by_ipi(xml: Path) -> InputSimulation:
    simulation = InputSimulation()
    simulation.parse(io_xml.xml_parse_file(open(xml)).fields[0][1])
    return simulation


def test_stage_inputs_continue_from_a_checkpoint_at_the_requested_temperature(tmp_path):
    xml = tmp_path / "nvt.xml"
    configure_input(packaged_inputs() / "nvt.xml", xml, 100, "addr", {"seed": "1001"})
    campaign.write_stage_input(xml, tmp_path / "start.chk", 150.0)
    root = ET.parse(xml).getroot()
    initialize = root.find("system/initialize")
    assert initialize.find("file").get("mode") == "chk" and initialize.find("file").text.strip() == "start.chk"
    assert initialize.find("velocities") is None  # momenta come from the checkpoint
    assert float(root.find("system/ensemble/temperature").text) == 150.0
    rel = [t for t in root.iter("trajectory") if t.get("filename") == "rel"]
    assert rel and rel[0].get("extra_type") == "gap,residual,dipole_change,fallback"
    assert parsed_by_ipi(xml).total_steps.fetch() == 100

    first = tmp_path / "first.xml"
    configure_input(packaged_inputs() / "nvt.xml", first, 10, "addr")
    campaign.write_stage_input(first, tmp_path / "start.xyz", 100.0)
    initialize = ET.parse(first).getroot().find("system/initialize")
    assert initialize.find("file").get("mode") == "xyz" and float(initialize.find("velocities").text) == 100.0
    parsed_by_ipi(first)


def test_reliability_and_progress_files_are_read_back(tmp_path):
    extras = tmp_path / "nve.rel_0"
    lines = []
    for step, row in [(0, [0.13, 0.01, 0.0, 0]), (1, [0.12, 0.02, 0.05, 0]), (1, [0.12, 0.03, 0.06, 1])]:
        lines.append(f" #EXTRAS(gap,residual,dipole_change,fallback)# Step:  {step:10d} ")
        lines.append("  " + "  ".join(f"{v:.8e}" for v in row))
    extras.write_text("\n".join(lines) + "\n")
    rows = campaign.read_reliability(extras)  # a step written twice (a continued run): the last one counts
    np.testing.assert_allclose(rows, [[0.13, 0.01, 0.0, 0], [0.12, 0.03, 0.06, 1]])
    properties = tmp_path / "nve.out"
    properties.write_text("# column 1 --> step\n 0.0 0.0\n 1.0 5e-4\n 2.0 1e-3\n")
    assert campaign.steps_done(properties) == 2
    assert campaign.steps_done(tmp_path / "missing.out") == -1


def test_conservation_counts_each_step_once_and_fits_the_drift(tmp_path):
    """A continued run writes steps 3-4 again; the conserved energy drifts by exactly 2 meV/ps
    plus an oscillation of 0.5 meV amplitude, so change, peak to peak and slope are known."""
    steps = np.arange(2001)
    time_ps = steps * 0.5e-3
    conserved_ev = -11266.0 + 2e-3 * time_ps + 0.5e-3 * np.sin(2 * np.pi * time_ps / 0.05)
    constant = np.ones(len(steps))  # temperature, kinetic and potential energy: unused here
    rows = np.column_stack([steps, time_ps, conserved_ev, 300 * constant, 0.4 * constant, -11266.4 * constant])
    stale = rows[3:5].copy()
    stale[:, 2] += 1.0  # the first run's copies of steps 3-4 (superseded)
    table = np.vstack([rows[:3], stale, rows[3:]])  # first run to step 4, continued from the step-2 checkpoint
    properties = tmp_path / "nve.out"
    np.savetxt(properties, table, header="column 1 --> step")
    props = read_properties(properties)
    np.testing.assert_array_equal(props[:, 0], steps)
    c = conservation(props)
    assert abs(c["change_meV"] - 2.0) < 1e-6  # 1 ps x 2 meV/ps; sin(2 pi 20) = 0
    # extremes at t = 0.9625 ps (2 t + 0.5 = 2.425) and t = 0.0375 ps (-0.425): 2.85 meV
    assert abs(c["peak_to_peak_meV"] - 2.85) < 1e-3
    # least squares of 0.5 sin(2 pi t / T) on [0, 1] ps over whole periods: slope -0.5 * 12 T / (2 pi)
    assert abs(c["slope_meV_per_ps"] - (2.0 - 0.5 * 12 * 0.05 / (2 * np.pi))) < 1e-3


def test_the_time_to_go_counts_to_each_stages_own_length(tmp_path):
    """Segments of one campaign may differ in length (segment 0 2000 NVE steps, the branches 1000):
    the report reads each from the total_steps of the stage's i-PI input, else the command line's."""
    xml = tmp_path / "nve.xml"
    xml.write_text("<simulation><total_steps> 1000 </total_steps></simulation>")
    assert campaign.stage_length(xml, 2000) == 1000
    xml.write_text("<simulation><step> 5 </step></simulation>")
    assert campaign.stage_length(xml, 2000) == 2000
    assert campaign.stage_length(tmp_path / "missing.xml", 2000) == 2000


def test_a_continued_stage_uses_this_campaigns_socket(tmp_path):
    """A checkpoint names the socket of the run that wrote it; a killed run leaves that socket file
    behind, so the continued stage must listen (and the driver connect) on the new address."""
    checkpoint = tmp_path / "nvt.chk"  # i-PI checkpoints are complete inputs: an input stands in for one
    configure_input(packaged_inputs() / "nvt.xml", checkpoint, 10, "campaign_old")
    campaign.resume_input(checkpoint, tmp_path / "nvt_resume.xml", "campaign_new")
    resumed = parsed_by_ipi(tmp_path / "nvt_resume.xml")
    assert [ff.address.fetch() for name, ff in resumed.extra if name == "ffsocket"] == ["campaign_new"]
    assert resumed.total_steps.fetch() == 10
    # a longer stage extends the run; i-PI leaves total_steps out of a checkpoint at its default 1000
    root = ET.parse(checkpoint).getroot()
    root.remove(root.find("total_steps"))
    ET.ElementTree(root).write(checkpoint)
    campaign.resume_input(checkpoint, tmp_path / "nvt_resume.xml", "campaign_new", total_steps=400)
    assert parsed_by_ipi(tmp_path / "nvt_resume.xml").total_steps.fetch() == 400


def test_a_branched_segment_starts_at_the_checkpoint_geometry(tmp_path):
    """The start file of a branched segment, read back by i-PI's own XYZ reader, holds the
    checkpoint's positions (bohr) to the precision the file keeps."""
    from ipi.engine.beads import Beads
    from ipi.inputs.beads import InputBeads
    from ipi.utils.io import read_file

    beads = Beads(3, 1)
    beads.q = np.array([[0.1234567891, -1.2, 0.3, 1.9, 0.05, -0.7, -0.4, 1.6, 0.9]])
    beads.names = np.array(["O", "H", "H"])
    beads.m = np.array([29156.9, 1837.2, 1837.2])
    stored = InputBeads()
    stored.store(beads)
    checkpoint = tmp_path / "nvt.chk"
    checkpoint.write_text(f"<simulation><system>{stored.write('beads')}</system></simulation>")
    start = tmp_path / "start.xyz"
    campaign.write_branch_start(checkpoint, start)
    with open(start) as f:
        frame = read_file("xyz", f)  # i-PI converts to bohr from the units named in the comment line
    np.testing.assert_allclose(frame["atoms"].q, beads.q[0], atol=1e-9)
    assert list(frame["atoms"].names) == ["O", "H", "H"]


def test_a_plain_xyz_structure_starts_ipi_in_angstrom(tmp_path):
    """--structure with an XYZ whose comment names no unit (angstrom for our readers, bohr for i-PI's):
    the start file tells i-PI the unit, so i-PI reads the same geometry (in bohr)."""
    from ipi.utils.io import read_file

    from ipi_jlcdm.geometry_io import read_xyz
    from ipi_jlcdm.units import BOHR_PER_ANGSTROM

    plain = tmp_path / "sample.xyz"
    plain.write_text("3\nharmonic sample 0 at 100 K, angstrom\nO 0.0 0.0 0.1173\nH 0.0 0.7572 -0.4692\n"
                     "H 0.0 -0.7572 -0.4692\n3\nsecond frame\nO 0 0 0\nH 0 0 1\nH 0 1 0\n")
    start = tmp_path / "start.xyz"
    campaign.write_xyz_start(plain, start)
    with open(start) as f:
        frame = read_file("xyz", f)
    expected = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]]) * BOHR_PER_ANGSTROM
    np.testing.assert_allclose(frame["atoms"].q, expected.ravel(), atol=1e-9)
    np.testing.assert_allclose(read_xyz(start)[0].coords_bohr, expected, atol=1e-9)


def test_two_processes_cannot_run_the_same_segment(tmp_path):
    import subprocess
    import sys

    import pytest

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / "campaign.pid").write_text(f"{other.pid}\n")
        with pytest.raises(SystemExit, match="being run by process"):
            campaign.claim_segment(tmp_path)
    finally:
        other.kill()
        other.wait()
    campaign.claim_segment(tmp_path)  # the holder is gone: a stale claim is taken over
    assert int((tmp_path / "campaign.pid").read_text()) == campaign.os.getpid()


def test_a_run_from_another_campaigns_checkpoint_rethermalizes_only_when_asked(tmp_path, monkeypatch):
    """--from-checkpoint: NVE at once from the copied checkpoint by default (the AIMD reference from
    the same state); with --first-nvt-steps N, N NVT steps on this model's surface first, and the NVE
    from their end. The stages themselves are i-PI runs; here only their order and starts are checked."""
    from argparse import Namespace

    stages = []
    monkeypatch.setattr(campaign, "run_stage", lambda seg, stage, steps, template, start, *rest, **kw:
                        stages.append((stage, steps, start.relative_to(seg).as_posix())))
    origin = tmp_path / "other_nvt.chk"
    origin.write_text("<simulation/>")
    for first_nvt, expected in ((0, [("nve", 2000, "start.chk")]),
                                (20, [("nvt", 20, "start.chk"), ("nve", 2000, "nvt.chk")])):
        seg = tmp_path / f"run{first_nvt}" / "seg0"
        seg.mkdir(parents=True)
        stages.clear()
        args = Namespace(from_checkpoint=str(origin), first_nvt_steps=first_nvt, nve_steps=2000, nvt_steps=100,
                         branch=True, temperature=300.0, structure=None)
        campaign.run_segment(args, seg.parent, seg, 0, tmp_path, "addr", ["driver"], True)
        assert stages == expected
        assert (seg / "start.chk").read_text() == "<simulation/>"


def write_nve_segment(seg: Path, n_steps: int, wavenumber_cm1: float) -> None:
    """An NVE segment's properties, reliability and dipole files as i-PI writes them, with a dipole
    oscillating at one known frequency (0.5 fs steps)."""
    seg.mkdir(parents=True)
    steps = np.arange(n_steps)
    time_ps = steps * campaign.TIMESTEP_FS * 1e-3
    ones = np.ones(n_steps)
    np.savetxt(seg / "nve.out", np.column_stack([steps, time_ps, -11266.0 * ones, 300 * ones, 0.4 * ones,
                                                 -11266.4 * ones]), header="column 1 --> step")
    phase = 2 * np.pi * wavenumber_cm1 * 2.99792458e10 * time_ps * 1e-12
    rel, dip = [], []
    for step, angle in zip(steps, phase, strict=True):
        rel += [f" #EXTRAS(gap,residual,dipole_change,fallback)# Step: {step:10d} ", "  0.13 0.004 0.001 0"]
        dip += [f" #EXTRAS(dipole)# Step: {step:10d} ", f"  {0.7 + 0.01 * np.cos(angle):.10e} -1.5 0.1"]
    (seg / "nve.rel_0").write_text("\n".join(rel) + "\n")
    (seg / "nve.dip_0").write_text("\n".join(dip) + "\n")


def test_the_report_leaves_segments_shorter_than_the_maximum_lag_out_of_the_spectrum(tmp_path):
    """Two segments: 700 steps with a dipole at 1700 cm^-1 and 41 steps (shorter than the 250 fs
    maximum lag). The report names the short one as left out and the spectrum of the long one peaks
    at the dipole's frequency (resolution ~130 cm^-1 at a 250 fs lag)."""
    from argparse import Namespace

    write_nve_segment(tmp_path / "seg0", 700, 1700.0)
    write_nve_segment(tmp_path / "seg1", 41, 1700.0)
    (tmp_path / "seg1" / "nve0.driver.log").write_text(  # start-up, two steps, and a killed run's traceback
        "connected\nstep 1 (bead 0): E = -414.0 Ha, gap = 0.1400 Ha, residual = 0.0045, 61.0 s\n"
        "step 2 (bead 0): E = -414.1 Ha, gap = 0.1400 Ha, residual = 0.0045, 36.0 s\nKeyboardInterrupt\n")
    (tmp_path / "seg1" / "nve1.driver.log").write_text(
        "step 1 (bead 0): E = -414.2 Ha, gap = 0.1400 Ha, residual = 0.0500 (SCF fallback), 38.0 s\n")
    campaign.report(Namespace(run_dir=str(tmp_path), temperature=300.0, max_lag_fs=250.0, compare=None,
                              first_steps=None, nve_steps=1000))
    text = (tmp_path / "report.txt").read_text()
    assert "NVE total: 741 frames, 739 steps = 0.369 ps" in text  # frames 0..N of a segment span N steps
    # median of 61, 36, 38 s; 41 frames are the start and 40 steps: 960 to go (no nve.xml here) at 38 s: 10.1 h
    assert "38.0 s per step (median, driver logs), 960 steps to its 1000: 10.1 h at that pace" in text
    assert "seg0: 700 NVE frames (0.349 ps)" in text and "per step" not in text.split("seg0:")[1].split("\n")[0]
    assert "left out of the IR spectrum (fewer than 502 NVE frames, the 250 fs maximum lag): seg1" in text
    spectrum = np.loadtxt(tmp_path / "ir_300K.csv", delimiter=",", comments="#")
    above = spectrum[spectrum[:, 0] > 200]
    assert abs(above[np.argmax(above[:, 1]), 0] - 1700.0) < 30.0


def test_inet_inputs_and_an_external_driver_over_tcp(tmp_path):
    """With a port, the generated input (and a resumed checkpoint) is an inet socket that i-PI parses;
    i-PI run with no local driver finishes its steps with a driver started separately over TCP
    (as on another node)."""
    import socket
    import subprocess
    import threading

    from ipi_jlcdm.md.ipi_run import driver_command, run_ipi_with_driver

    from .ipi_helpers import WATER_MODEL, WATER_XYZ

    with socket.socket() as probe:  # a free port on this machine
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    xml = tmp_path / "input.xml"
    configure_input(packaged_inputs() / "nvt.xml", xml, 2, "127.0.0.1", {"file": "water.xyz"}, port=port)
    forcefield = parsed_by_ipi(xml).extra[0][1]  # the ffsocket as i-PI reads it
    assert forcefield.mode.fetch() == "inet" and forcefield.port.fetch() == port
    assert forcefield.address.fetch() == "127.0.0.1"
    resumed = tmp_path / "resumed.xml"
    campaign.resume_input(xml, resumed, "127.0.0.1", 3, port=port)
    assert parsed_by_ipi(resumed).extra[0][1].port.fetch() == port

    (tmp_path / "water.xyz").write_text(WATER_XYZ)
    errors = []
    ipi_run = threading.Thread(target=lambda: errors.append(
        run_ipi_with_driver(tmp_path, "input.xml", "127.0.0.1", None, timeout_s=240, tag="nvt")))
    ipi_run.start()
    driver = subprocess.run(driver_command("127.0.0.1", "jlcdm", str(WATER_MODEL), ["--grid-level", "1"], port=port),
                            cwd=tmp_path, capture_output=True, text=True, timeout=240)
    ipi_run.join(240)
    assert driver.returncode == 0, driver.stdout[-2000:] + driver.stderr[-2000:]
    assert errors == [None] and campaign.steps_done(tmp_path / "nvt.out") == 2
