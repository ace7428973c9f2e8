"""i-PI driver loop: answers i-PI's STATUS/INIT/POSDATA/GETFORCE/EXIT with an engine's results.

docs/METHOD.md section 6: compute on POSDATA, send FORCEREADY and the whole payload at once on GETFORCE,
extras as JSON with the same keys every step (dipole in e*bohr), never NaN; exit 0 on EXIT and
non-zero on EOF; on an exception drain the socket, close it and exit non-zero so i-PI re-queues
the step. The bead (replica) index i-PI sends in INIT keys the engine's warm state.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ipi_jlcdm.electronic.results import EngineResult
from ipi_jlcdm.geometry_io import format_xyz_frame
from ipi_jlcdm.md.ipi_socket import IPIConnectionClosed, IPISocket, header

EXIT_OK, EXIT_ERROR, EXIT_EOF = 0, 1, 3

#: compute(positions_bohr (natm, 3), bead) -> EngineResult
ComputeFunction = Callable[[np.ndarray, int], EngineResult]


class DriverError(RuntimeError):
    """A problem with the run (atom count, batching, non-finite results) that stops the driver."""


def extras_json(result: EngineResult, step_time_s: float, engine_name: str, dipole_change: float = 0.0) -> str:
    """The extras string: identical keys every step, plain floats, dipole in e*bohr.

    dipole_change: |mu - mu(previous step of this bead)| in e*bohr (0 at the first step), a
    reliability signal together with the gap and the residual.
    """
    return json.dumps({
        "dipole": [float(v) for v in result.dipole],
        "dipole_one_shot": [float(v) for v in result.info.get("dipole_one_shot", result.dipole)],
        "gap": float(result.gap),
        "residual": float(result.residual),
        "dipole_change": float(dipole_change),
        "fallback": int(result.info.get("fallback", 0)),
        "scf": 1 if engine_name == "scf" else 0,
        "step_time_s": float(step_time_s),
    })


def force_payload(result: EngineResult, n_atoms: int, extras: str) -> bytes:
    """FORCEREADY message: header, energy (Ha), atom count, forces (Ha/bohr), virial (zero, no
    cell), extras length and extras, in one buffer."""
    forces = np.ascontiguousarray(result.forces, dtype="<f8").reshape(n_atoms * 3)
    body = extras.encode()
    return b"".join([header("FORCEREADY"), np.float64(result.energy).astype("<f8").tobytes(),
                     np.int32(n_atoms).astype("<i4").tobytes(), forces.tobytes(), np.zeros(9, "<f8").tobytes(),
                     np.int32(len(body)).astype("<i4").tobytes(), body])


class FlaggedFrameLog:
    """Appends the geometry of every step computed by SCF fallback to an XYZ file (angstrom; the comment
    gives step, bead and residual): candidates for retraining, added to a training set by
    ``ipi-jlcdm dataset FILE -o DATA.npz --append``. The file is created at the first flagged step."""

    def __init__(self, path: str | Path, atomic_numbers: np.ndarray):
        self.path, self.atomic_numbers, self.count = Path(path), np.asarray(atomic_numbers), 0

    def record(self, positions_bohr: np.ndarray, result, step: int, bead: int) -> None:
        if not result.info.get("fallback"):
            return
        comment = f"flagged step={step} bead={bead} residual={result.residual:.5f} (SCF fallback) angstrom"
        with open(self.path, "a") as f:
            f.write(format_xyz_frame(self.atomic_numbers, positions_bohr, comment))
        self.count += 1


class DriverLoop:
    """Serves one i-PI connection until EXIT or end of file."""

    def __init__(self, sock: IPISocket, compute: ComputeFunction, n_atoms: int, engine_name: str, log=sys.stderr,
                 flagged: FlaggedFrameLog | None = None):
        self.flagged = flagged
        self.sock = sock
        self.compute = compute
        self.n_atoms = n_atoms
        self.engine_name = engine_name
        self.log = log
        self.bead = 0
        self.initialized = False
        self.pending: bytes | None = None
        self.steps = 0
        self.fallbacks = 0
        self.previous_dipole: dict[int, np.ndarray] = {}
        self.worst = {"max_residual": 0.0, "min_gap_hartree": np.inf, "max_dipole_change_ebohr": 0.0}

    def run(self) -> int:
        """Serve until EXIT (returns 0), EOF (3) or an error (1, after draining the socket)."""
        try:
            while True:
                message = self.sock.recv_header()
                if message == "STATUS":
                    self.sock.send(header("NEEDINIT" if not self.initialized
                                          else "HAVEDATA" if self.pending is not None else "READY"))
                elif message == "INIT":
                    self._init()
                elif message == "POSDATA":
                    self._posdata()
                elif message == "GETFORCE":
                    if self.pending is None:
                        raise DriverError("i-PI asked for forces before sending positions")
                    self.sock.send(self.pending)
                    self.pending = None
                elif message == "EXIT":
                    print(f"i-PI sent EXIT after {self.steps} steps: done. {self.summary()}", file=self.log,
                          flush=True)
                    self.sock.close()
                    return EXIT_OK
                else:
                    raise DriverError(f"unexpected message from i-PI: {message!r}")
        except (IPIConnectionClosed, BrokenPipeError, ConnectionResetError) as err:
            print(f"error: {err} (after {self.steps} steps); i-PI exited or was killed. {self.summary()}",
                  file=self.log, flush=True)
            self.sock.close()
            return EXIT_EOF
        except Exception as err:  # report, then let i-PI re-queue this step
            print(f"error: {type(err).__name__}: {err}", file=self.log, flush=True)
            self.sock.drain_and_close()
            return EXIT_ERROR

    def summary(self) -> str:
        """One line: SCF fallbacks and the worst reliability signals of the run."""
        w = self.worst
        saved = f" (geometries in {self.flagged.path})" if self.flagged is not None and self.flagged.count else ""
        return (f"Reliability: {self.fallbacks} SCF fallbacks{saved}, max residual {w['max_residual']:.4f}, "
                f"min gap {w['min_gap_hartree']:.4f} Ha, max dipole change {w['max_dipole_change_ebohr']:.4f} e*bohr")

    def _init(self) -> None:
        self.bead = int(self.sock.recv_array("<i4", 1)[0])
        length = int(self.sock.recv_array("<i4", 1)[0])
        text = self.sock.recv_array("S1", length).tobytes().decode(errors="replace")
        for token in text.split(","):
            key, sep, value = token.partition(":")
            if sep and key.strip() == "batch_size" and value.strip() not in ("", "1"):
                raise DriverError(f"i-PI asks for batches of {value.strip()} structures; this driver computes "
                                  "one at a time: remove batch_size from the <ffsocket> input")
        self.initialized = True
        print(f"i-PI INIT: bead {self.bead}", file=self.log, flush=True)

    def _posdata(self) -> None:
        self.sock.recv_array("<f8", 9)  # cell (unused: pbc is off for molecules)
        self.sock.recv_array("<f8", 9)  # inverse cell
        n_atoms = int(self.sock.recv_array("<i4", 1)[0])
        positions = self.sock.recv_array("<f8", 3 * n_atoms).reshape(n_atoms, 3)
        if n_atoms != self.n_atoms:
            raise DriverError(f"atom count mismatch: i-PI sent {n_atoms} atoms but the driver's molecule has "
                              f"{self.n_atoms} (check the structure given to the driver and i-PI's <initialize>)")
        t0 = time.perf_counter()
        result = self.compute(positions, self.bead)
        result.check_finite()
        elapsed = time.perf_counter() - t0
        previous = self.previous_dipole.get(self.bead)
        change = 0.0 if previous is None else float(np.linalg.norm(result.dipole - previous))
        self.previous_dipole[self.bead] = np.array(result.dipole)
        self.pending = force_payload(result, n_atoms, extras_json(result, elapsed, self.engine_name, change))
        self.steps += 1
        self.fallbacks += int(result.info.get("fallback", 0))
        if self.flagged is not None:
            self.flagged.record(positions, result, self.steps, self.bead)
        w = self.worst
        w["max_residual"] = max(w["max_residual"], result.residual)
        w["min_gap_hartree"] = min(w["min_gap_hartree"], result.gap)
        w["max_dipole_change_ebohr"] = max(w["max_dipole_change_ebohr"], change)
        print(f"step {self.steps} (bead {self.bead}): E = {result.energy:.8f} Ha, gap = {result.gap:.4f} Ha, "
              f"residual = {result.residual:.4f}{' (SCF fallback)' if result.info.get('fallback') else ''}, "
              f"{elapsed:.1f} s", file=self.log, flush=True)
