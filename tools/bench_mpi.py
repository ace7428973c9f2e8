"""Parallel efficiency of the MPI-distributed one-shot step.

    python tools/bench_mpi.py [--ranks 1 2] [--steps 3] [--model uracil] [--xyz inputs/uracil/uracil.xyz]
                              [--forces orbital|harris-foulkes|anderson]

For each rank count N it runs ``mpiexec -n N`` (``--threads`` per rank, default 1) on the same
geometries and reports, from rank 0, the grid part (SAD density, model, Coulomb right-hand side, XC,
the grid terms of the forces, the model's vector-Jacobian product, the Anderson steps: the parts
split over ranks) and the whole step, the speed-up and parallel efficiency T1 / (N T_N), and an
Amdahl projection T(N) = S + P/N with P = 2 (T1 - T2) and S = T1 - P fitted from 1 and 2 ranks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from ipi_jlcdm.electronic.oneshot import DEFAULT_FORCE_ROUTE, FORCE_ROUTES
from ipi_jlcdm.md.ipi_run import mpiexec_path

GRID_STAGES = ("rho_sad", "model", "coulomb", "xc", "forces: grid terms", "vjp", "anderson")


def worker(args) -> None:
    import numpy as np

    from ipi_jlcdm.electronic.oneshot import OneShotEngine
    from ipi_jlcdm.geometry_io import read_frames
    from ipi_jlcdm.jl.model import JLCDModel
    from ipi_jlcdm.parallel import world

    model = JLCDModel.load(args.model)
    frame = read_frames(args.xyz)[0]
    engine = OneShotEngine(model, model.level, forces=args.forces)
    engine.compute(frame.atomic_numbers, frame.coords_bohr)  # warm-up
    step, grid = [], []
    for k in range(args.steps):
        t0 = time.perf_counter()
        engine.compute(frame.atomic_numbers, frame.coords_bohr + 0.002 * k)
        step.append(time.perf_counter() - t0)
        grid.append(sum(engine.timings[s] for s in GRID_STAGES))
    if world().rank == 0:
        print(json.dumps({"step": float(np.mean(step)), "grid": float(np.mean(grid)),
                          "stages": engine.timings}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--model", default="uracil")
    parser.add_argument("--xyz", default="inputs/uracil/uracil.xyz")
    parser.add_argument("--forces", choices=FORCE_ROUTES, default=DEFAULT_FORCE_ROUTE,
                        help=f"one-shot force route (default {DEFAULT_FORCE_ROUTE})")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each rank (default 1)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    mpiexec = mpiexec_path()
    results = {}
    for n in args.ranks:
        cmd = [mpiexec, "-n", str(n), sys.executable, __file__, "--worker", "--steps", str(args.steps),
               "--model", args.model, "--xyz", args.xyz, "--forces", args.forces]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        results[n] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{n} rank(s) x {args.threads} thread(s): step {results[n]['step']:.2f} s, "
              f"grid part {results[n]['grid']:.2f} s; stages "
              + ", ".join(f"{k} {v:.2f}" for k, v in results[n]["stages"].items()), flush=True)
    t1 = results[min(results)]
    for n, res in sorted(results.items()):
        print(f"N={n}: speed-up step {t1['step'] / res['step']:.2f} (efficiency {t1['step'] / (n * res['step']):.0%}),"
              f" grid part {t1['grid'] / res['grid']:.2f} (efficiency {t1['grid'] / (n * res['grid']):.0%})")
    if 1 in results and 2 in results:
        parallel = 2 * (results[1]["step"] - results[2]["step"])
        serial = results[1]["step"] - parallel
        print(f"Amdahl fit: S = {serial:.2f} s serial, P = {parallel:.2f} s parallel per step")
        for n in (4, 8, 16, 32):
            t = serial + parallel / n
            print(f"  projected N={n:2d}: {t:.2f} s/step, efficiency {results[1]['step'] / (n * t):.0%}")


if __name__ == "__main__":
    main()
