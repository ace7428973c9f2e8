"""CPU that i-PI itself uses while a slow driver computes, for several socket latencies.

    python tools/bench_ipi_latency.py [--latencies 1e-3 1e-2] [--step-s 2] [--seconds 40]

Each latency runs the packaged inputs/uracil/nvt.xml (its <latency> replaced) against i-PI's own
Python driver with a PES that sleeps --step-s seconds per step (a stand-in for our driver, which
takes 10-40 s per uracil step), all side by side; the script reads each i-PI process's CPU time
(/proc, Linux) over --seconds and prints it as a fraction of one core. On 2 cores shared with two MD
campaigns, what i-PI burns polling its socket is taken from the drivers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ipi_jlcdm.md.demo import packaged_inputs
from ipi_jlcdm.md.ipi_run import configure_input, ipi_executable
from ipi_jlcdm.md.ipi_socket import DEFAULT_UNIX_PREFIX

SLEEPING_PES = '''__DRIVER_NAME__ = "sleeping"
__DRIVER_CLASS__ = "Sleeping"
import time
from ipi.pes.dummy import Dummy_driver


class Sleeping(Dummy_driver):
    def compute_structure(self, cell, pos):
        time.sleep({step_s})
        return super().compute_structure(cell, pos)
'''


def cpu_seconds(pid: int) -> float:
    """User + system CPU time (s) of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--latencies", type=float, nargs="+", default=[1e-3, 1e-2], help="i-PI <latency> values (s)")
    p.add_argument("--step-s", type=float, default=2.0, help="seconds the stand-in driver takes per step")
    p.add_argument("--seconds", type=float, default=40.0, help="measuring window (s)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_latency_"))
    pes = work / "sleeping.py"
    pes.write_text(SLEEPING_PES.format(step_s=args.step_s))
    driver_exe = Path(ipi_executable()).with_name("i-pi-py_driver")
    servers, drivers = [], []
    try:
        for k, latency in enumerate(args.latencies):
            folder = work / f"latency_{k}"
            folder.mkdir()
            (folder / "uracil.xyz").write_text((packaged_inputs() / "uracil.xyz").read_text())
            address = f"bench_latency_{os.getpid()}_{k}"
            steps = int(3 * args.seconds / args.step_s) + 10  # outlasts the window
            configure_input(packaged_inputs() / "nvt.xml", folder / "run.xml", steps, address,
                            {"latency": f"{latency:g}"})
            servers.append(subprocess.Popen([ipi_executable(), "run.xml"], cwd=folder, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.STDOUT))
            time.sleep(3.0)  # the socket exists
            drivers.append(subprocess.Popen([str(driver_exe), "-u", "-a", address, "-m", "custom", "-P", str(pes)],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        time.sleep(2 * args.step_s)  # past the start-up
        before = [cpu_seconds(s.pid) for s in servers]
        time.sleep(args.seconds)
        after = [cpu_seconds(s.pid) for s in servers]
    finally:
        for proc in drivers + servers:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
        for k in range(len(args.latencies)):  # the socket files of the killed servers
            Path(f"{DEFAULT_UNIX_PREFIX}bench_latency_{os.getpid()}_{k}").unlink(missing_ok=True)
    print(f"i-PI's own CPU while a driver takes {args.step_s:g} s per step ({args.seconds:g} s window):")
    for latency, t0, t1 in zip(args.latencies, before, after, strict=True):
        print(f"  latency {latency:g} s: {100 * (t1 - t0) / args.seconds:.1f} % of one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
