"""The i-PI socket driver end to end against a real i-PI server started by the test (water, the
small test model in tests/data, so each step takes about a second)."""

from pathlib import Path

import numpy as np
import pytest

from ipi_jlcdm.analysis.ir import read_dipole_file
from ipi_jlcdm.cli.main import main
from ipi_jlcdm.geometry_io import read_xyz
from ipi_jlcdm.units import BOHR_PER_ANGSTROM

from .ipi_helpers import (
    REPO,
    WATER_MODEL,
    count_frames,
    run_to_completion,
    start_driver,
    start_ipi,
    stop,
    wait_for,
    water_run_dir,
)
from .test_training import parse_extxyz


def test_nvt_steps_and_dipoles_match_eval(tmp_path):
    workdir, address = water_run_dir(tmp_path, steps=4)
    run_to_completion(workdir, address, "--structure", "water.xyz")
    dip = read_dipole_file(workdir / "nvt.dip_0")
    positions = read_xyz(workdir / "nvt.pos_0.xyz")
    assert list(dip.steps) == [0, 1, 2, 3, 4] and len(positions) == 5
    assert "i-PI sent EXIT" in (workdir / "driver.log").read_text()
    assert main(["eval", "--model", str(WATER_MODEL), str(workdir / "nvt.pos_0.xyz"),
                 "-o", str(workdir / "eval.extxyz")]) == 0
    evaluated = parse_extxyz(workdir / "eval.extxyz")
    for k, (keys, _) in enumerate(evaluated):
        # eval writes e*angstrom; i-PI's extras are e*bohr; positions were stored with 6 digits
        np.testing.assert_allclose(keys["dipole"] * BOHR_PER_ANGSTROM, dip.dipoles[k], atol=2e-4)


def test_killed_driver_is_replaced_without_missing_frames(tmp_path):
    workdir, address = water_run_dir(tmp_path, steps=8)
    ipi = start_ipi(workdir)
    first = start_driver(workdir, address, "--structure", "water.xyz", name="first")
    second = None
    try:
        wait_for(lambda: count_frames(workdir / "nvt.dip_0") >= 3, 120, "three frames")
        stop(first)  # SIGKILL mid-run
        second = start_driver(workdir, address, "--structure", "water.xyz", name="second")
        assert ipi.wait(180) == 0
        assert second.wait(30) == 0
    finally:
        stop(ipi, first, second)
    text = (workdir / "nvt.dip_0").read_text()
    steps = [int(line.split("Step:")[1]) for line in text.splitlines() if "#EXTRAS" in line]
    assert steps == list(range(9))  # every step exactly once
    assert len(read_xyz(workdir / "nvt.pos_0.xyz")) == 9


def test_restart_continues_outputs_without_gap(tmp_path):
    workdir, address = water_run_dir(tmp_path, steps=10)
    ipi = start_ipi(workdir)
    driver = start_driver(workdir, address, "--structure", "water.xyz")
    try:
        wait_for(lambda: count_frames(workdir / "nvt.dip_0") >= 4, 120, "four frames")
        ipi.send_signal(2)  # SIGINT: i-PI stops softly and writes RESTART
        assert ipi.wait(60) is not None
        assert driver.wait(60) in (0, 3)  # EXIT or end of file: the driver does not hang
        assert (workdir / "RESTART").exists()
        interrupted_at = count_frames(workdir / "nvt.dip_0")
        assert interrupted_at < 11
        ipi = start_ipi(workdir, "RESTART")
        driver = start_driver(workdir, address, "--structure", "water.xyz", name="driver2")
        assert ipi.wait(180) == 0
        assert driver.wait(30) == 0
    finally:
        stop(ipi, driver)
    series = read_dipole_file(workdir / "nvt.dip_0")  # repeated steps after a restart keep the newest
    assert list(series.steps) == list(range(11))
    out = np.loadtxt(workdir / "nvt.out", ndmin=2)
    assert sorted(set(out[:, 0].astype(int))) == list(range(11))


def test_wrong_species_is_refused_before_connecting(tmp_path, capsys):
    code = main(["driver", "--model", str(WATER_MODEL), "--unix", "never", "--connect-timeout-s", "1",
                 "--structure", str(REPO / "inputs" / "uracil" / "uracil.xyz")])
    assert code == 2
    assert "Z=[6, 7]" in capsys.readouterr().err


def test_demo_refuses_mpi_ranks_for_the_scf_engine_before_starting(tmp_path, capsys):
    code = main(["demo", "--engine", "scf", "--mpi-ranks", "2", "--output-dir", str(tmp_path / "out")])
    assert code == 2
    assert "--mpi-ranks 2" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing started, nothing written


def test_unreachable_socket_gives_up(tmp_path, capsys):
    code = main(["driver", "--model", str(WATER_MODEL), "--unix", "nobody_listens_here", "--connect-timeout-s", "1",
                 "--structure", str(REPO / "tests" / "data" / "water.xyz")])
    assert code == 1
    assert "could not connect to i-PI on unix socket /tmp/ipi_nobody_listens_here" in capsys.readouterr().err


def test_atom_count_mismatch_stops_the_driver(tmp_path):
    workdir, address = water_run_dir(tmp_path, steps=3)
    (workdir / "peroxide.xyz").write_text("4\n\nO 0 0 0\nO 1.45 0 0\nH -0.3 0.9 0\nH 1.75 0.9 0.3\n")
    ipi = start_ipi(workdir)
    driver = start_driver(workdir, address, "--structure", "peroxide.xyz")
    try:
        assert driver.wait(120) == 1
    finally:
        stop(ipi, driver)
    assert "atom count mismatch: i-PI sent 3 atoms but the driver's molecule has 4" in (
        workdir / "driver.log").read_text()


def test_killed_ipi_ends_the_driver(tmp_path):
    workdir, address = water_run_dir(tmp_path, steps=1000)
    ipi = start_ipi(workdir)
    driver = start_driver(workdir, address, "--structure", "water.xyz")
    try:
        wait_for(lambda: count_frames(workdir / "nvt.dip_0") >= 2, 120, "two frames")
        stop(ipi)
        assert driver.wait(60) == 3
    finally:
        stop(ipi, driver)
    assert "i-PI exited or was killed" in (workdir / "driver.log").read_text()


@pytest.mark.parametrize("engine", ["scf"])
def test_scf_engine_through_the_driver(tmp_path, engine):
    workdir, address = water_run_dir(tmp_path, steps=2)
    run_to_completion(workdir, address, "--structure", "water.xyz", "--grid-level", "2",
                      engine=engine, model=None)
    dip = read_dipole_file(workdir / "nvt.dip_0")
    assert list(dip.steps) == [0, 1, 2]
    # water's dipole along its C2 axis: ~0.8 e*bohr (2 D) at PBE/def2-SVP
    assert 0.6 < np.linalg.norm(dip.dipoles[0]) < 0.9


def test_pes_plugin_in_ipi_py_driver_and_ffdirect(tmp_path):
    """The same model through i-PI's own Python driver (-m custom) and through <ffdirect> gives the
    same dipoles as our socket driver (first test) at the same positions."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    import ipi_jlcdm.md.ipi_pes as pes

    structure = REPO / "tests" / "data" / "water.xyz"
    results = {}
    for route in ("py_driver", "ffdirect"):
        (tmp_path / route).mkdir()
        workdir, address = water_run_dir(tmp_path / route, steps=2)
        if route == "ffdirect":
            xml = (workdir / "input.xml").read_text()
            xml = re.sub(r"<ffsocket.*?</ffsocket>", f"""<ffdirect name='jlcdm' pbc='false'><pes> custom </pes>
                <pes_path> {pes.__file__} </pes_path>
                <parameters> {{model: {WATER_MODEL}, structure: {structure}}} </parameters></ffdirect>""",
                         xml, flags=re.S)
            (workdir / "input.xml").write_text(xml)
            assert start_ipi(workdir).wait(180) == 0
        else:
            ipi = start_ipi(workdir)
            py_driver = Path(sys.executable).with_name("i-pi-py_driver")
            try:  # i-PI's own driver does not retry: wait for the socket
                wait_for(lambda path=Path(f"/tmp/ipi_{address}"): path.exists(), 60, "the i-PI socket")
                subprocess.run([str(py_driver), "-m", "custom", "-P", pes.__file__, "-u", "-a", address, "-o",
                                f"model={WATER_MODEL},structure={structure}"], check=True, timeout=180,
                               capture_output=True)
                assert ipi.wait(60) == 0
            finally:
                stop(ipi)
        results[route] = read_dipole_file(workdir / "nvt.dip_0")
    for series in results.values():
        assert list(series.steps) == [0, 1, 2]
    np.testing.assert_allclose(results["py_driver"].dipoles, results["ffdirect"].dipoles, atol=1e-7)


@pytest.mark.parametrize("name", ["nvt.xml", "scf_nvt.xml", "pimd.xml"])
def test_shipped_inputs_start_in_ipi(tmp_path, name):
    """i-PI accepts every shipped input (it parses it and opens the socket)."""
    import shutil
    from pathlib import Path

    from ipi_jlcdm.md.ipi_run import configure_input

    shutil.copy(REPO / "inputs" / "uracil" / "uracil.xyz", tmp_path)
    address = f"shipped_{tmp_path.name[-12:]}"
    configure_input(REPO / "inputs" / "uracil" / name, tmp_path / name, address=address)
    ipi = start_ipi(tmp_path, name)
    try:
        wait_for(lambda: Path(f"/tmp/ipi_{address}").exists() or ipi.poll() is not None, 60, "the socket")
        assert ipi.poll() is None, (tmp_path / "ipi.log").read_text()[-2000:]
    finally:
        stop(ipi)
        Path(f"/tmp/ipi_{address}").unlink(missing_ok=True)


def test_nvt_then_nve_from_checkpoint(tmp_path):
    """The protocol of the shipped inputs (and of the demo): NVE continues from the NVT checkpoint."""
    from ipi_jlcdm.md.ipi_run import configure_input, driver_command, run_ipi_with_driver

    workdir, address = water_run_dir(tmp_path, steps=3)
    configure_input(REPO / "inputs" / "uracil" / "nve.xml", workdir / "nve.xml", 4, address)
    cmd = driver_command(address, "jlcdm", str(WATER_MODEL), ["--structure", "water.xyz"])
    run_ipi_with_driver(workdir, "input.xml", address, cmd, 300, tag="nvt")
    run_ipi_with_driver(workdir, "nve.xml", address, cmd, 300, tag="nve")
    nvt_last = read_xyz(workdir / "nvt.pos_0.xyz")[-1].coords_bohr
    nve = read_xyz(workdir / "nve.pos_0.xyz")
    assert len(nve) == 5 and list(read_dipole_file(workdir / "nve.dip_0").steps) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(nve[0].coords_bohr, nvt_last, atol=1e-4)  # continues where NVT stopped
    conserved = np.loadtxt(workdir / "nve.out", ndmin=2)[:, 2]  # eV
    assert np.ptp(conserved) < 0.05  # NVE: the conserved quantity stays (4 steps of 0.5 fs)


def _running(pid: str) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_a_terminated_run_stops_ipi_and_its_driver(tmp_path):
    """SIGTERM to the process running i-PI + driver (``kill`` of a campaign, a batch time limit)
    stops both children, i-PI with its checkpoint written: nothing is left running unattended."""
    import signal
    import subprocess
    import sys

    workdir, address = water_run_dir(tmp_path, steps=1000)
    script = (f"from ipi_jlcdm.md.ipi_run import driver_command, run_ipi_with_driver\n"
              f"cmd = driver_command({address!r}, 'jlcdm', {str(WATER_MODEL)!r}, ['--structure', 'water.xyz'])\n"
              f"run_ipi_with_driver({str(workdir)!r}, 'input.xml', {address!r}, cmd, 600, tag='run')\n")
    runner = subprocess.Popen([sys.executable, "-c", script])
    try:
        wait_for(lambda: (workdir / "nvt.out").is_file() and sum(
            1 for line in (workdir / "nvt.out").read_text().splitlines() if line.strip() and line[0] != "#") >= 2,
            120, "the first MD steps")
        children = Path(f"/proc/{runner.pid}/task/{runner.pid}/children").read_text().split()
        assert len(children) == 2  # i-PI and the driver
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(60) != 0
        for pid in children:
            wait_for(lambda pid=pid: not _running(pid), 30, f"child {pid} to stop")
        assert (workdir / "RESTART").is_file() or (workdir / "nvt.chk").is_file()
    finally:
        if runner.poll() is None:
            runner.kill()
        Path(f"/tmp/ipi_{address}").unlink(missing_ok=True)
