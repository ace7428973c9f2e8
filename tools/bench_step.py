"""Time one MD step of each engine on the same geometries, side by side, and print the ratios.

    python tools/bench_step.py [--model uracil] [--xyz inputs/uracil/uracil.xyz] [--steps 3] [--grid-level N]
                               [--forces orbital|harris-foulkes|anderson] [--anderson-steps 3] [--replicas N]

``--replicas N`` times a larger system: N copies of the molecule, each shifted by 7 angstrom along
a diagonal (a timing test of cost against size; the model only needs the right species).

Geometries: the XYZ's first frame displaced along a fixed random direction by 0.005 bohr per step
(like consecutive MD steps), so the SCF engine warm-starts from the previous density matrix as
in AIMD (from the previous one only; tools/bench_scf_guess.py measures the extrapolated guess on
real MD steps). Reports: one-shot stages, SCF + gradient per step, one Fock build and one gradient
(the floor of the one-shot route), and the ratios.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from ipi_jlcdm.anderson import DEFAULT_ANDERSON_STEPS
from ipi_jlcdm.geometry_io import Frame, read_frames
from ipi_jlcdm.model import JLCDModel
from ipi_jlcdm.oneshot import DEFAULT_FORCE_ROUTE, FORCE_ROUTES, OneShotEngine
from ipi_jlcdm.scf_engine import SCFEngine
from ipi_jlcdm.units import BOHR_PER_ANGSTROM

#: Distance between the copies of ``--replicas`` (angstrom).
REPLICA_SHIFT_ANGSTROM = 7.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="uracil")
    parser.add_argument("--xyz", default="inputs/uracil/uracil.xyz")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--grid-level", type=int, default=None)
    parser.add_argument("--forces", choices=FORCE_ROUTES, default=DEFAULT_FORCE_ROUTE, help="one-shot force route")
    parser.add_argument("--anderson-steps", type=int, default=DEFAULT_ANDERSON_STEPS,
                        help=f"Anderson steps of the dipole and route anderson (default {DEFAULT_ANDERSON_STEPS})")
    parser.add_argument("--replicas", type=int, default=1, help="copies of the molecule (timing of larger systems)")
    args = parser.parse_args()
    model = JLCDModel.load(args.model)
    level = model.level if args.grid_level is None else replace(model.level, grid_level=args.grid_level)
    frame = read_frames(args.xyz)[0]
    if args.replicas > 1:
        shift = REPLICA_SHIFT_ANGSTROM * BOHR_PER_ANGSTROM / np.sqrt(3.0)
        frame = Frame(np.tile(frame.atomic_numbers, args.replicas),
                      np.concatenate([frame.coords_bohr + k * shift for k in range(args.replicas)]))
    direction = np.random.default_rng(0).normal(size=frame.coords_bohr.shape)
    direction /= np.linalg.norm(direction)
    geometries = [frame.coords_bohr + 0.005 * k * direction for k in range(args.steps + 1)]
    z = frame.atomic_numbers

    one_shot = OneShotEngine(model, level, forces=args.forces, anderson_steps=args.anderson_steps)
    one_shot.compute(z, geometries[0])  # warm-up (SAD cache, imports)
    times, stages = [], {}
    for xyz in geometries[1:]:
        t0 = time.perf_counter()
        n_grid = int(one_shot.compute(z, xyz).info["n_grid"])
        times.append(time.perf_counter() - t0)
        for key, value in one_shot.timings.items():
            stages[key] = stages.get(key, 0.0) + value / args.steps
    t_oneshot = float(np.mean(times))

    # previous density matrix only: on this straight-line path a polynomial extrapolation of the
    # density matrices would be nearly exact and flatter the SCF; its gain on real MD steps is
    # measured by tools/bench_scf_guess.py
    scf = SCFEngine(level, conv_tol=1e-9, max_guess_order=0)
    scf.compute(z, geometries[0])  # cold start, not timed
    times, cycles = [], []
    for xyz in geometries[1:]:
        t0 = time.perf_counter()
        res = scf.compute(z, xyz)
        times.append(time.perf_counter() - t0)
        cycles.append(res.info["scf_cycles"])
    t_scf = float(np.mean(times))

    mf = scf.last_mf
    dm = mf.make_rdm1()
    t0 = time.perf_counter()
    mf.get_fock(dm=dm)
    t_fock = time.perf_counter() - t0
    grad = mf.nuc_grad_method()
    grad.verbose = 0
    t0 = time.perf_counter()
    grad.kernel()
    t_grad = time.perf_counter() - t0

    print(f"molecule: {len(z)} atoms ({args.replicas} copies), forces {args.forces}, "
          f"{args.anderson_steps} Anderson steps, grid level {level.grid_level}, {one_shot.last['mol'].nao} AOs, "
          f"{n_grid} grid points")
    print("one-shot stages (s/step): " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    print(f"one-shot step           {t_oneshot:8.2f} s")
    print(f"SCF + gradient step     {t_scf:8.2f} s   ({np.mean(cycles):.0f} SCF cycles, warm start)")
    print(f"one Fock build          {t_fock:8.2f} s")
    print(f"one gradient            {t_grad:8.2f} s")
    print(f"ratio SCF step / one-shot step          {t_scf / t_oneshot:6.2f}   (goal >= 4)")
    print(f"ratio one-shot / (Fock + gradient)      {t_oneshot / (t_fock + t_grad):6.2f}   (goal <= 1.3)")


if __name__ == "__main__":
    main()
