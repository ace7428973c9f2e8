"""``ipi-jlcdm eval``: energies, forces, dipoles and gaps of every frame of an XYZ file."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

from ipi_jlcdm.electronic.engines import add_engine_arguments, engine_from_arguments
from ipi_jlcdm.geometry_io import format_extxyz_frame, read_frames
from ipi_jlcdm.parallel import world
from ipi_jlcdm.units import ANGSTROM_PER_BOHR, EV_PER_ANGSTROM_PER_HARTREE_PER_BOHR, EV_PER_HARTREE


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="evaluate energy, forces, dipole, gap for each frame of an XYZ file",
                       description="For each frame of IN.xyz (angstrom) write one extended-XYZ frame with per-atom "
                       "forces (eV/angstrom) and frame keys energy (eV), dipole (e*angstrom), gap (eV) and, for "
                       "the jlcdm engine, residual (integral |rho_out - rho_in| / N_e).")
    p.add_argument("input", help="XYZ file, angstrom (multi-frame allowed)")
    p.add_argument("-o", "--output", required=True, help="output extended-XYZ file")
    add_engine_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Every MPI rank computes each frame together (grid split over ranks); rank 0 writes."""
    comm = world()
    if comm.size > 1 and args.engine == "scf":
        raise ValueError("the scf engine runs on one process: launch it without mpiexec")
    frames = read_frames(args.input)
    engine = engine_from_arguments(args)
    if comm.rank != 0:
        for frame in frames:
            engine.compute(frame.atomic_numbers, frame.coords_bohr)
        return 0
    with contextlib.ExitStack() as stack:
        out = None  # opened with the first finished frame: a run that fails before it leaves no file
        for k, frame in enumerate(frames):
            t0 = time.perf_counter()
            res = engine.compute(frame.atomic_numbers, frame.coords_bohr)
            if out is None:
                out = stack.enter_context(open(args.output, "w"))
            keys = {"energy": res.energy * EV_PER_HARTREE, "dipole": res.dipole * ANGSTROM_PER_BOHR,
                    "gap": res.gap * EV_PER_HARTREE}
            if args.engine == "jlcdm":
                keys["residual"] = res.residual
                keys["fallback"] = res.info.get("fallback", 0)
            out.write(format_extxyz_frame(frame.atomic_numbers, frame.coords_bohr,
                                          res.forces * EV_PER_ANGSTROM_PER_HARTREE_PER_BOHR, keys))
            out.flush()
            print(f"[{k + 1}/{len(frames)}] {args.engine}: E = {res.energy:.8f} Ha, gap = {keys['gap']:.3f} eV"
                  + (f", residual = {res.residual:.4f}" if args.engine == "jlcdm" else "")
                  + f", {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    print(f"wrote {len(frames)} frames to {args.output}", file=sys.stderr)
    return 0
