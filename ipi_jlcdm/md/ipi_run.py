"""Running i-PI and our driver together as child processes (used by ``demo`` and the tests).

Both processes are cleaned up on success, failure and Ctrl-C, and the unix socket file removed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from ipi_jlcdm.md.ipi_socket import DEFAULT_UNIX_PREFIX


class RunFailed(RuntimeError):
    """i-PI or the driver ended badly."""


def ipi_executable() -> str:
    """The i-pi launcher next to this Python, else on PATH."""
    candidate = Path(sys.executable).with_name("i-pi")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("i-pi")
    if not found:
        raise FileNotFoundError("i-pi not found: install it with 'pip install ipi'")
    return found


def set_socket(root: ET.Element, address: str, port: int | None = None) -> None:
    """Point every ``<ffsocket>`` of an i-PI input at a unix socket ``address`` or, with ``port``, at
    an inet socket on host ``address`` (drivers may then run on other machines)."""
    for node in root.iter("ffsocket"):
        node.set("mode", "unix" if port is None else "inet")
        node.find("address").text = f" {address} "
        port_node = node.find("port")
        if port is None:
            if port_node is not None:
                node.remove(port_node)
            continue
        if port_node is None:
            port_node = ET.SubElement(node, "port")
        port_node.text = f" {int(port)} "


def configure_input(template: Path, output: Path, total_steps: int | None = None, address: str | None = None,
                    replacements: dict[str, str] | None = None, port: int | None = None) -> Path:
    """Copy an i-PI XML input, optionally setting total_steps, the socket (``set_socket``: a unix
    ``address``, or host ``address`` and inet ``port``), and text of other tags."""
    tree = ET.parse(template)
    root = tree.getroot()
    if total_steps is not None:
        root.find("total_steps").text = f" {int(total_steps)} "
    if address is not None:
        set_socket(root, address, port)
    for tag, text in (replacements or {}).items():
        for node in root.iter(tag):
            node.text = f" {text} "
    tree.write(output)
    return output


def mpiexec_path() -> str:
    """The ``mpiexec`` next to this interpreter (the mpich wheel's, which needs no system MPI)."""
    return str(Path(sys.executable).with_name("mpiexec"))


def driver_command(address: str, engine: str, model: str | None, extra: list[str] | None = None,
                   mpi_ranks: int = 1, port: int | None = None) -> list[str]:
    """The ``ipi-jlcdm driver`` command line for a UNIX socket ``address`` (or, with ``port``, the
    inet socket on host ``address``); under ``mpiexec -n mpi_ranks`` when ``mpi_ranks > 1`` (the grid
    work split over ranks; the jlcdm engine only)."""
    where = ["--unix", address] if port is None else ["--host", address, "--port", str(port)]
    cmd = [sys.executable, "-m", "ipi_jlcdm.cli.main", "driver", *where, "--engine", engine]
    if model:
        cmd += ["--model", model]
    cmd += extra or []
    return [mpiexec_path(), "-n", str(mpi_ranks), *cmd] if mpi_ranks > 1 else cmd


def _stop(proc: subprocess.Popen | None, grace_s: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)  # i-PI saves a checkpoint on SIGINT
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def run_ipi_with_driver(workdir: Path, xml: str, address: str, driver_cmd: list[str] | None,
                        timeout_s: float = 24 * 3600.0,
                        log=sys.stderr, tag: str = "", driver_env: dict[str, str] | None = None,
                        progress: Callable[[], None] | None = None) -> None:
    """Run ``i-pi xml`` in ``workdir`` with one driver (``driver_env``: variables set for it on top of
    this process's environment); return when i-PI finishes. ``driver_cmd`` None: start no driver (drivers
    connect from elsewhere, e.g. over an inet socket). ``progress()``, if given, is called every 0.2 s
    while they run (e.g. to report the steps done). Raises RunFailed
    (after stopping both) if either fails or ``timeout_s`` passes. On KeyboardInterrupt or SIGTERM
    (e.g. ``kill`` of a campaign, a batch system's time limit) both are stopped too, i-PI with SIGINT
    so that it writes its checkpoint: nothing keeps running unattended."""
    workdir = Path(workdir)
    socket_path = Path(DEFAULT_UNIX_PREFIX + address)
    ipi = driver = None
    tag = tag or Path(xml).stem
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_handler = signal.signal(signal.SIGTERM, _exit_on_sigterm) if in_main_thread else None
    try:
        with open(workdir / f"{tag}.ipi.log", "w") as ipi_log, open(workdir / f"{tag}.driver.log", "w") as drv_log:
            ipi = subprocess.Popen([ipi_executable(), xml], cwd=workdir, stdout=ipi_log, stderr=subprocess.STDOUT)
            if driver_cmd is not None:
                driver = subprocess.Popen(driver_cmd, cwd=workdir, stdout=drv_log, stderr=subprocess.STDOUT,
                                          env={**os.environ, **(driver_env or {}), "PYTHONUNBUFFERED": "1"})
            deadline = time.monotonic() + timeout_s
            while True:
                if ipi.poll() is not None:
                    if ipi.returncode != 0:
                        raise RunFailed(f"i-PI exited with status {ipi.returncode}: see {workdir / (tag + '.ipi.log')}")
                    if driver is None:
                        return
                    driver.wait(60)
                    if driver.returncode != 0:
                        raise RunFailed(f"driver exited with status {driver.returncode}: "
                                        f"see {workdir / (tag + '.driver.log')}")
                    return
                if driver is not None and driver.poll() is not None and driver.returncode != 0:
                    raise RunFailed(f"driver exited with status {driver.returncode}: "
                                    f"see {workdir / (tag + '.driver.log')}")
                if time.monotonic() > deadline:
                    raise RunFailed(f"{tag} did not finish within {timeout_s:.0f} s")
                if progress is not None:
                    progress()
                time.sleep(0.2)
    finally:
        _stop(driver)
        _stop(ipi)
        if socket_path.exists():
            socket_path.unlink()
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_handler)
