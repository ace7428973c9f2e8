"""Are an engine's forces the derivative of the energy it returns, as an NVE run sees it?

    python tools/fd_consistency.py GEOMETRY [--frame K] [--model uracil] [--forces harris-foulkes]
                                   [--anderson-steps 3] [--step-bohr 2e-3] [--directions 2] [--seed 7]
                                   [--no-scf]

At one geometry (XYZ in angstrom, i-PI trajectory or rMD17 npz; frame K), for random unit
directions d (3N components, no net translation) the directional derivative -dE/ds of the engine
energy by central differences (E at R +- h d) is compared with F.d, the engine's forces projected
on d, in Ha/bohr. Three cases: the one-shot engine with the Becke grid moving with the atoms (as in
MD), the same on a grid frozen at R (where the analytic gradient is exact up to quadrature), and
the SCF engine on the moving grid (its gradient also omits the grid response): the NVE
conservation of the two engines can only be as good as these numbers allow.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ipi_jlcdm.electronic.anderson import DEFAULT_ANDERSON_STEPS
from ipi_jlcdm.electronic.level import FrozenGridLevel
from ipi_jlcdm.electronic.oneshot import FORCE_ROUTES, OneShotEngine
from ipi_jlcdm.electronic.scf_engine import SCFEngine
from ipi_jlcdm.geometry_io import read_frames
from ipi_jlcdm.jl.model import JLCDModel


def random_direction(rng: np.random.Generator, natm: int) -> np.ndarray:
    """A unit vector (natm, 3) with zero sum over atoms (no rigid translation)."""
    d = rng.normal(size=(natm, 3))
    d -= d.mean(axis=0)
    return d / np.linalg.norm(d)


def directional_check(force_engine, energy_engine, z: np.ndarray, xyz: np.ndarray, d: np.ndarray,
                      step: float) -> tuple[float, float]:
    """(-dE/ds by central differences, F.d), both Ha/bohr."""
    forces = force_engine.compute(z, xyz).forces
    e_plus = energy_engine.compute(z, xyz + step * d).energy
    e_minus = energy_engine.compute(z, xyz - step * d).energy
    return -(e_plus - e_minus) / (2 * step), float(np.sum(forces * d))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("geometry")
    p.add_argument("--frame", type=int, default=0)
    p.add_argument("--model", default="uracil", help="packaged model name or .npz (default uracil)")
    p.add_argument("--forces", default="harris-foulkes", choices=FORCE_ROUTES)
    p.add_argument("--anderson-steps", type=int, default=DEFAULT_ANDERSON_STEPS,
                   help=f"Anderson steps of the engine (route anderson: its forces and energy; default "
                   f"{DEFAULT_ANDERSON_STEPS})")
    p.add_argument("--step-bohr", type=float, default=2e-3, help="finite-difference step h (default 2e-3 bohr)")
    p.add_argument("--directions", type=int, default=2)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-scf", action="store_true", help="skip the SCF engine")
    args = p.parse_args()

    frame = read_frames(args.geometry)[args.frame]
    z, xyz = frame.atomic_numbers, frame.coords_bohr
    model = JLCDModel.load(args.model)
    rng = np.random.default_rng(args.seed)
    print(f"{args.geometry} frame {args.frame}: {len(z)} atoms, h = {args.step_bohr:g} bohr; Ha/bohr")
    frozen = FrozenGridLevel(model.level, model.level.make_grids(model.level.make_mol(z, xyz)))
    cases = [("one-shot, moving grid", model.level), ("one-shot, frozen grid", frozen)]
    engines = [(name, OneShotEngine(model, level, forces=args.forces, anderson_steps=args.anderson_steps),
                OneShotEngine(model, level, forces=args.forces, anderson_steps=args.anderson_steps,
                              compute_forces=False)) for name, level in cases]
    if not args.no_scf:
        engines.append(("SCF, moving grid", SCFEngine(model.level), SCFEngine(model.level)))
    for trial in range(args.directions):
        d = random_direction(rng, len(z))
        for name, force_engine, energy_engine in engines:
            t0 = time.time()
            fd, projected = directional_check(force_engine, energy_engine, z, xyz, d, args.step_bohr)
            print(f"direction {trial}  {name:22s} -dE/ds {fd:+.6e}  F.d {projected:+.6e}  "
                  f"difference {projected - fd:+.2e}  ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
