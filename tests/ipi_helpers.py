"""Helpers for tests that run a real i-PI server and our driver as separate processes."""

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from ipi_jlcdm.md.ipi_run import configure_input, driver_command, ipi_executable

REPO = Path(__file__).resolve().parents[1]
WATER_MODEL = REPO / "tests" / "data" / "water_test_model.npz"
WATER_XYZ = """3
# CELL(abcABC): 20.0 20.0 20.0 90.0 90.0 90.0 positions{angstrom} cell{angstrom}
O 0.0 0.0 0.1173
H 0.0 0.7572 -0.4692
H 0.0 -0.7572 -0.4692
"""


def water_run_dir(tmp_path: Path, steps: int, template: str = "nvt.xml") -> tuple[Path, str]:
    """A directory with water.xyz and an i-PI input (from the shipped uracil one) using a fresh socket."""
    (tmp_path / "water.xyz").write_text(WATER_XYZ)
    address = f"t{uuid.uuid4().hex[:10]}"
    configure_input(REPO / "inputs" / "uracil" / template, tmp_path / "input.xml", steps, address,
                    {"file": "water.xyz"})
    return tmp_path, address


def start_ipi(workdir: Path, xml: str = "input.xml") -> subprocess.Popen:
    log = open(workdir / "ipi.log", "a")
    return subprocess.Popen([ipi_executable(), xml], cwd=workdir, stdout=log, stderr=subprocess.STDOUT)


def start_driver(workdir: Path, address: str, *extra: str, model: Path | None = WATER_MODEL, name="driver",
                 engine: str = "jlcdm", mpi_ranks: int = 1, env: dict | None = None):
    """Our driver as a process (``driver_command``: under ``mpiexec -n mpi_ranks`` if > 1), output in NAME.log."""
    log = open(workdir / f"{name}.log", "a")
    cmd = driver_command(address, engine, str(model) if model is not None else None, list(extra), mpi_ranks=mpi_ranks)
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **({"OMP_NUM_THREADS": "1"} if mpi_ranks > 1 else {}),
                   **(env or {})}
    return subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=environment)


def run_to_completion(workdir: Path, address: str, *driver_args: str, timeout_s: float = 180.0, **driver_options):
    """Run i-PI and one driver until both exit; both must exit 0."""
    ipi = start_ipi(workdir)
    driver = start_driver(workdir, address, *driver_args, **driver_options)
    try:
        assert ipi.wait(timeout_s) == 0, (workdir / "ipi.log").read_text()[-2000:]
        assert driver.wait(60) == 0
    finally:
        stop(ipi, driver)


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)


def count_frames(path: Path) -> int:
    return path.read_text().count("#EXTRAS") if path.exists() else 0


def stop(*procs) -> None:
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
