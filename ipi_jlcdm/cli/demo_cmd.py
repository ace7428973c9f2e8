"""``ipi-jlcdm demo``: i-PI MD of a molecule with its shipped model, ending in an IR spectrum."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ipi_jlcdm.electronic.engines import ENGINES
from ipi_jlcdm.electronic.oneshot import DEFAULT_FORCE_ROUTE, FORCE_ROUTES
from ipi_jlcdm.md.demo import MOLECULES, run_demo
from ipi_jlcdm.md.ipi_run import RunFailed


def add_parser(sub, name: str) -> None:
    water, uracil = MOLECULES["water"], MOLECULES["uracil"]
    p = sub.add_parser(name, help="NVT + NVE i-PI run with a shipped model, then the IR spectrum (water: ~10 min)",
                       description="Starts i-PI and the ipi-jlcdm driver on the shipped inputs of --molecule: NVT at "
                       "300 K, then NVE from the NVT checkpoint (0.5 fs steps), then the IR spectrum of the NVE "
                       f"dipoles. water (default): {water.nvt_steps} + {water.nve_steps} steps, the bend and both O-H "
                       "stretches, against PySCF's harmonic frequencies and the experimental fundamentals. uracil: "
                       f"{uracil.nvt_steps} + {uracil.nve_steps} steps (the workflow, not bands) next to the shipped "
                       "2 ps spectrum. Production protocols: inputs/<molecule>/README.md.")
    p.add_argument("--molecule", choices=sorted(MOLECULES), default="water", help="demo molecule (default water)")
    p.add_argument("--output-dir", default="demo_output", help="directory for all outputs (default demo_output)")
    p.add_argument("--nvt-steps", type=int, default=None, help="NVT steps (default: the molecule's, above)")
    p.add_argument("--nve-steps", type=int, default=None, help="NVE steps (default: the molecule's, above)")
    p.add_argument("--engine", choices=ENGINES, default="jlcdm", help="jlcdm (default) or scf (plain AIMD)")
    p.add_argument("--model", default=None, help="model (default: the shipped model of --molecule)")
    p.add_argument("--grid-level", type=int, default=None, help="PySCF grids.level (default: the model's)")
    p.add_argument("--forces", choices=FORCE_ROUTES, default=DEFAULT_FORCE_ROUTE,
                   help="jlcdm force route (default harris-foulkes: energy-conserving; orbital: 0.6x the step "
                   "time, not energy-conserving; "
                   "anderson: closest to SCF, energy-conserving with --anderson-steps 6, not with 3)")
    p.add_argument("--mpi-ranks", type=int, default=1,
                   help="run the jlcdm driver under mpiexec -n N, one thread per rank (default 1: one process "
                   "with OMP_NUM_THREADS threads)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.mpi_ranks < 1 or (args.mpi_ranks > 1 and args.engine != "jlcdm"):
        print(f"ipi-jlcdm demo: error: --mpi-ranks {args.mpi_ranks}: needs N >= 1, and N = 1 for the "
              f"{args.engine} engine", file=sys.stderr)
        return 2
    try:
        run_demo(Path(args.output_dir), args.molecule, args.nvt_steps, args.nve_steps, args.engine, args.model,
                 args.grid_level, forces=args.forces, mpi_ranks=args.mpi_ranks)
    except RunFailed as err:
        print(f"ipi-jlcdm demo: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ipi-jlcdm demo: interrupted; i-PI and the driver were stopped", file=sys.stderr)
        return 130
    return 0
