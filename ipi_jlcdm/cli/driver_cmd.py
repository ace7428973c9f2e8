"""``ipi-jlcdm driver``: serve energies, forces and dipoles to an i-PI server over a socket."""

from __future__ import annotations

import argparse
import os
import sys

from ipi_jlcdm.electronic.engines import add_engine_arguments, engine_from_arguments, molecule_atomic_numbers
from ipi_jlcdm.jl.model import JLCDModel
from ipi_jlcdm.md.driver import EXIT_ERROR, DriverLoop, FlaggedFrameLog
from ipi_jlcdm.md.ipi_socket import DEFAULT_UNIX_PREFIX, IPISocket
from ipi_jlcdm.parallel import world

#: Where the driver saves the geometries of flagged (SCF fallback) steps by default.
DEFAULT_FLAGGED_XYZ = "jlcdm_flagged.xyz"

#: For tests of the MPI error path: this rank raises at its first step.
FAULT_RANK_VARIABLE = "IPI_JLCDM_FAULT_RANK"


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="i-PI socket driver (energy Ha, forces Ha/bohr, dipole e*bohr in extras)",
                       description="Connect to a running i-PI (retrying until it is up) and compute each structure "
                       "it sends. Extras JSON every step: dipole (e*bohr), gap (Ha), residual, dipole_change (e*bohr), "
                       "fallback, scf, step_time_s. Exit status: 0 on i-PI's EXIT, 3 if i-PI disappears, "
                       "1 on an error.")
    add_engine_arguments(p)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--unix", metavar="NAME", help="unix socket name, as in i-PI's <ffsocket mode='unix'><address>")
    where.add_argument("--host", help="i-PI host for an inet socket (with --port)")
    p.add_argument("--port", type=int, default=None, help="inet socket port")
    p.add_argument("--prefix", default=DEFAULT_UNIX_PREFIX,
                   help=f"unix socket path prefix (default {DEFAULT_UNIX_PREFIX}, i-PI's default)")
    p.add_argument("--structure", default=None,
                   help="XYZ file giving the atoms in i-PI's order (default: the model's training molecule)")
    p.add_argument("--flagged-xyz", default=DEFAULT_FLAGGED_XYZ,
                   help="append the geometry of every SCF-fallback step to this XYZ file (created at the first one; "
                   f"default {DEFAULT_FLAGGED_XYZ}; '' to disable); add them to a training set with "
                   "'ipi-jlcdm dataset FILE -o DATA.npz --append'")
    p.add_argument("--connect-timeout-s", type=float, default=600.0, help="give up connecting after this (s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serial: one process talks to i-PI and computes. MPI: rank 0 talks to i-PI and broadcasts
    each structure (or a stop flag on EXIT, end of file or error); all ranks compute together."""
    comm = world()
    if args.host is not None and args.port is None:
        raise ValueError("--host needs --port")
    if comm.size > 1 and args.engine == "scf":
        raise ValueError("the scf engine runs on one process: launch it without mpiexec")
    atomic_numbers = molecule_atomic_numbers(args.structure, args.model)
    engine = engine_from_arguments(args)
    source = getattr(engine, "source", None)
    if isinstance(source, JLCDModel):
        source.check_compatible(atomic_numbers)
    if comm.rank != 0:
        return _worker(comm, engine, atomic_numbers)
    threshold = getattr(engine, "fallback_residual", None)
    if threshold is not None:
        print(f"SCF fallback above residual {threshold:.4g}", file=sys.stderr, flush=True)
    if comm.size > 1:
        print(f"MPI: {comm.size} ranks, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
              file=sys.stderr, flush=True)
    try:
        sock = IPISocket.connect(unix=args.unix, prefix=args.prefix, host=args.host, port=args.port,
                                 timeout_s=args.connect_timeout_s)
    except ConnectionError as err:
        print(f"ipi-jlcdm driver: error: {err}", file=sys.stderr)
        comm.bcast(("stop", EXIT_ERROR))
        return EXIT_ERROR

    def compute(positions, bead):
        comm.bcast(("compute", positions, bead))
        try:
            _maybe_fail(comm.rank)
            return engine.compute(atomic_numbers, positions, key=bead)
        except Exception as err:
            if comm.size == 1:
                raise  # the driver loop reports it and lets i-PI re-queue the step
            print(f"ipi-jlcdm driver: rank 0: fatal: {type(err).__name__}: {err}; aborting all ranks",
                  file=sys.stderr, flush=True)
            sock.drain_and_close()
            comm.abort(EXIT_ERROR)

    flagged = FlaggedFrameLog(args.flagged_xyz, atomic_numbers) if args.flagged_xyz else None
    code = DriverLoop(sock, compute, len(atomic_numbers), args.engine, flagged=flagged).run()
    comm.bcast(("stop", code))
    return code


def _maybe_fail(rank: int) -> None:
    if os.environ.get(FAULT_RANK_VARIABLE) == str(rank):
        raise RuntimeError(f"fault injected on rank {rank} ({FAULT_RANK_VARIABLE})")


def _worker(comm, engine, atomic_numbers) -> int:
    """Ranks > 0: compute what rank 0 broadcasts until it broadcasts a stop flag."""
    while True:
        message = comm.bcast(None)
        if message[0] == "stop":
            return int(message[1])
        try:
            _maybe_fail(comm.rank)
            engine.compute(atomic_numbers, message[1], key=message[2])
        except Exception as err:
            print(f"ipi-jlcdm driver: rank {comm.rank}: fatal: {type(err).__name__}: {err}; aborting all ranks",
                  file=sys.stderr, flush=True)
            comm.abort(EXIT_ERROR)
