"""Time one MD step of the one-shot and SCF engines side by side, against the floor of a BO step.

    python tools/bench_step.py [--model uracil] [--xyz inputs/uracil/uracil.xyz] [--steps 2]
                               [--forces harris-foulkes|orbital|anderson] [--dipole anderson|one-shot]
                               [--anderson-steps 3] [--anderson-grid-level 1] [--grid-level N]
                               [--replicas N] [--cold-frames 2]

Everything is timed in one run, on this machine, with the thread count the environment sets
(``OMP_NUM_THREADS``); compare the ratios, not the seconds, between machines.

- MD steps: the XYZ's first frame displaced along a fixed random direction by 0.005 bohr per step;
  the SCF engine warm-starts from the previous step's density matrix (as AIMD does; the
  extrapolated guess of real MD steps is measured by tools/bench_scf_guess.py).
- The floor of any Born-Oppenheimer step at this level of theory: building the grid, the DF
  3-centre integrals, one Fock build (J + V_xc) and one analytic gradient, PySCF's own, timed on
  the last SCF geometry.
- Single points: ``--cold-frames`` unrelated geometries (frames of tools/data/uracil_md_frames.xyz
  for uracil, else displaced copies), one-shot against SCF + gradient from PySCF's default guess
  (a new SCF engine per frame: no history). The one-shot engine of the MD steps computes them: it
  carries nothing from one geometry to the next but the memory its integrals are written into, as
  when ``ipi-jlcdm eval`` or ``validate`` run through many frames.
- ``--replicas N``: N copies of the molecule 7 angstrom apart (cost against size; the model only
  needs the right species).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ipi_jlcdm.electronic.engines import add_route_arguments, route_options
from ipi_jlcdm.electronic.oneshot import OneShotEngine
from ipi_jlcdm.electronic.scf_engine import SCFEngine
from ipi_jlcdm.geometry_io import Frame, read_frames
from ipi_jlcdm.jl.model import JLCDModel
from ipi_jlcdm.threads import worker_count
from ipi_jlcdm.units import BOHR_PER_ANGSTROM

#: Distance between the copies of ``--replicas`` (angstrom).
REPLICA_SHIFT_ANGSTROM = 7.0
UNRELATED_FRAMES = Path(__file__).parent / "data" / "uracil_md_frames.xyz"


def machine() -> str:
    """CPU model, cores and the thread count in force."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {worker_count()} threads "
            f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})")


def replicate(frame: Frame, copies: int) -> Frame:
    if copies <= 1:
        return frame
    shift = REPLICA_SHIFT_ANGSTROM * BOHR_PER_ANGSTROM / np.sqrt(3.0)
    return Frame(np.tile(frame.atomic_numbers, copies),
                 np.concatenate([frame.coords_bohr + k * shift for k in range(copies)]))


def timed(function, *args):
    t0 = time.perf_counter()
    out = function(*args)
    return time.perf_counter() - t0, out


def floor_parts(level, mol, dm) -> dict[str, float]:
    """PySCF's own parts of one BO step at ``mol``: grid, 3-centre integrals, one Fock build from
    ``dm``, one analytic gradient (seconds)."""
    mf = level.make_rks(mol)
    t_grid, _ = timed(mf.grids.build)
    t_int3c, _ = timed(mf.with_df.build)  # the Cholesky-factored 3-centre integrals that J uses
    t_fock, _ = timed(lambda: mf.get_fock(dm=dm))
    mf.kernel(dm0=dm)  # converged orbitals for the gradient (from the converged dm: 1-2 cycles)
    grad = mf.nuc_grad_method()
    grad.verbose = 0
    t_grad, _ = timed(grad.kernel)
    return {"grid": t_grid, "3-centre integrals": t_int3c, "one Fock build": t_fock, "one gradient": t_grad}


def cold_geometries(frame: Frame, args) -> list[np.ndarray]:
    """Unrelated geometries for the single-point comparison (no history)."""
    if args.cold_frames <= 0:
        return []
    if args.replicas == 1 and UNRELATED_FRAMES.is_file():
        frames = read_frames(UNRELATED_FRAMES)
        if len(frames) >= args.cold_frames and np.array_equal(frames[0].atomic_numbers, frame.atomic_numbers):
            return [f.coords_bohr for f in frames[::max(1, len(frames) // args.cold_frames)][:args.cold_frames]]
    rng = np.random.default_rng(1)
    return [frame.coords_bohr + 0.1 * rng.normal(size=frame.coords_bohr.shape) for _ in range(args.cold_frames)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="uracil")
    parser.add_argument("--xyz", default="inputs/uracil/uracil.xyz")
    parser.add_argument("--steps", type=int, default=2, help="timed MD steps per engine (default 2)")
    parser.add_argument("--grid-level", type=int, default=None)
    add_route_arguments(parser)
    parser.add_argument("--replicas", type=int, default=1, help="copies of the molecule (timing of larger systems)")
    parser.add_argument("--cold-frames", type=int, default=2, help="unrelated single points (default 2; 0: skip)")
    args = parser.parse_args()
    model = JLCDModel.load(args.model)
    level = model.level if args.grid_level is None else replace(model.level, grid_level=args.grid_level)
    frame = replicate(read_frames(args.xyz)[0], args.replicas)
    direction = np.random.default_rng(0).normal(size=frame.coords_bohr.shape)
    direction /= np.linalg.norm(direction)
    geometries = [frame.coords_bohr + 0.005 * k * direction for k in range(args.steps + 1)]
    z = frame.atomic_numbers

    one_shot = OneShotEngine(model, level, **route_options(args))
    one_shot.compute(z, geometries[0])  # warm-up (compiled kernels, SAD cache, imports)
    times, stages = [], {}
    for xyz in geometries[1:]:
        t, result = timed(one_shot.compute, z, xyz)
        times.append(t)
        for key, value in one_shot.timings.items():
            stages[key] = stages.get(key, 0.0) + value / args.steps
    t_oneshot = float(np.mean(times))
    n_grid, nao = int(result.info["n_grid"]), one_shot.last["mol"].nao

    scf = SCFEngine(level, conv_tol=1e-9, max_guess_order=0)
    scf.compute(z, geometries[0])  # cold start, not timed
    times, cycles = [], []
    for xyz in geometries[1:]:
        t, res = timed(scf.compute, z, xyz)
        times.append(t)
        cycles.append(res.info["scf_cycles"])
    t_scf = float(np.mean(times))
    floor = floor_parts(level, scf.last_mf.mol, scf.last_mf.make_rdm1())
    t_floor = sum(floor.values())

    cold_oneshot, cold_scf = [], []
    for xyz in cold_geometries(frame, args):
        cold_oneshot.append(timed(one_shot.compute, z, xyz)[0])
        cold_scf.append(timed(SCFEngine(level, conv_tol=1e-9).compute, z, xyz)[0])

    print(f"machine: {machine()}")
    print(f"molecule: {len(z)} atoms ({args.replicas} copies), {nao} AOs, {n_grid} grid points (level "
          f"{level.grid_level}); one-shot: forces {args.forces}, dipole {args.dipole}, {args.anderson_steps} "
          f"Anderson steps at grid level {min(args.anderson_grid_level, level.grid_level)}")
    print("\none-shot stages (s per step)")
    for key, value in stages.items():
        print(f"  {key:<28s} {value:8.2f}")
    print(f"  {'total':<28s} {t_oneshot:8.2f}")
    print("\nfloor of a BO step (PySCF, s)")
    for key, value in floor.items():
        print(f"  {key:<28s} {value:8.2f}")
    print(f"  {'floor':<28s} {t_floor:8.2f}")
    print(f"\nwarm SCF + gradient step       {t_scf:8.2f} s ({np.mean(cycles):.0f} SCF cycles)")
    if cold_oneshot:
        print(f"cold single point: one-shot {np.mean(cold_oneshot):.2f} s, SCF + gradient {np.mean(cold_scf):.2f} s "
              f"({len(cold_oneshot)} unrelated frames)")
    model_pass = stages.get("model", float("nan"))
    vjp = stages.get("vjp", float("nan"))
    print("\nratio                                           measured   goal")
    print(f"  one-shot step / floor                          {t_oneshot / t_floor:8.2f}   <= 1.0")
    print(f"  warm SCF step / one-shot step                  {t_scf / t_oneshot:8.2f}   >= 2")
    if cold_oneshot:
        cold = np.mean(cold_scf) / np.mean(cold_oneshot)
        print(f"  cold SCF + gradient / one-shot single point    {cold:8.2f}   >= 5")
    print(f"  model density + gradient pass / floor          {model_pass / t_floor:8.2f}   <= 0.10")
    print(f"  vector-Jacobian product through the model / floor {vjp / t_floor:5.2f}   <= 0.20")


if __name__ == "__main__":
    main()
