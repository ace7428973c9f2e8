"""SCF engine along consecutive MD steps: previous-density-matrix guess against its extrapolation.

    python tools/bench_scf_guess.py [--xyz tools/data/uracil_nve_12_steps.xyz] [--model uracil]
                                    [--conv-tol 1e-10]

Runs the SCF engine (the level of theory of ``--model``) over the consecutive frames of ``--xyz``
(an i-PI positions file of an MD run: one frame per step) twice in one process: with
``max_guess_order=0`` (each SCF starts from the previous step's density matrix, PySCF's
``as_scanner`` behaviour) and with the default quadratic extrapolation (``extrapolated_guess``).
Each timed step is an SCF and its analytic gradient, as in AIMD. The first three steps warm
both up and are not timed. Prints per-step SCF cycles and seconds, the energy difference between
the two (both converged to ``--conv-tol``) and the time ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ipi_jlcdm.electronic.scf_engine import MAX_GUESS_ORDER, SCFEngine
from ipi_jlcdm.geometry_io import read_frames
from ipi_jlcdm.jl.model import JLCDModel

#: Steps that fill the extrapolation history (not timed).
WARM_UP_STEPS = MAX_GUESS_ORDER + 1


def run(engine: SCFEngine, frames) -> tuple[list[float], list[float], list[float], list[float]]:
    """Per timed step: SCF cycles, seconds, energy (Ha) and guess order."""
    cycles, seconds, energies, orders = [], [], [], []
    for k, frame in enumerate(frames):
        t0 = time.perf_counter()
        result = engine.compute(frame.atomic_numbers, frame.coords_bohr)
        if k >= WARM_UP_STEPS:
            seconds.append(time.perf_counter() - t0)
            cycles.append(result.info["scf_cycles"])
            energies.append(result.energy)
            orders.append(result.info["guess_order"])
    return cycles, seconds, energies, orders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--xyz", default="tools/data/uracil_nve_12_steps.xyz",
                        help="consecutive MD frames (XYZ in angstrom, e.g. an i-PI positions file)")
    parser.add_argument("--model", default="uracil", help="model whose level of theory is used")
    parser.add_argument("--conv-tol", type=float, default=1e-10, help="SCF energy tolerance (Ha)")
    args = parser.parse_args()
    level = JLCDModel.load(args.model).level
    frames = read_frames(args.xyz)
    if len(frames) <= WARM_UP_STEPS:
        parser.error(f"{args.xyz} has {len(frames)} frames; need more than {WARM_UP_STEPS}")
    print(f"{len(frames)} frames from {args.xyz}, {len(frames) - WARM_UP_STEPS} timed; conv_tol {args.conv_tol:g} Ha")
    rows = {}
    for label, order in (("previous density matrix", 0), ("extrapolated", MAX_GUESS_ORDER)):
        engine = SCFEngine(level, conv_tol=args.conv_tol, max_guess_order=order)
        rows[label] = run(engine, frames)
        cycles, seconds, _, orders = rows[label]
        print(f"{label:24s} cycles {[int(c) for c in cycles]}  guess orders {sorted(set(int(o) for o in orders))}  "
              f"{np.mean(seconds):.2f} s per step")
    (c0, t0, e0, _), (c1, t1, e1, _) = rows.values()
    print(f"mean cycles {np.mean(c0):.2f} -> {np.mean(c1):.2f}; largest energy difference "
          f"{np.abs(np.subtract(e0, e1)).max():.1e} Ha")
    print(f"time ratio previous / extrapolated: {np.sum(t0) / np.sum(t1):.2f}")


if __name__ == "__main__":
    main()
