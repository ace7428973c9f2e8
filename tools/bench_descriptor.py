"""What a richer radial basis costs in the model pass: the shipped descriptor against variants.

    python tools/bench_descriptor.py [--n2 12 14] [--stride 5] [--repeats 4]

Times ``JLDescriptor.predict_mixed`` (two channels, as the envelope model f_0 + e f_1, with the
spatial gradient: the model pass of one MD step) on every STRIDE-th point of uracil's level-3 grid
at a 300 K geometry, for each n2 (the other hyperparameters as the shipped model), alternating
the variants REPEATS times so that load from other processes hits them alike. Prints the best time
of each and its ratio to the first.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ipi_jlcdm.geometry_io import read_frames
from ipi_jlcdm.jl.descriptor import JLDescriptor
from ipi_jlcdm.jl.model import JLCDModel

GEOMETRY = Path(__file__).parent / "data" / "uracil_md_frames.xyz"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n2", type=int, nargs="+", default=[12, 14], help="2-body radial functions (first: baseline)")
    p.add_argument("--stride", type=int, default=5, help="every STRIDE-th grid point (default 5: ~30k points)")
    p.add_argument("--repeats", type=int, default=4)
    args = p.parse_args()

    model = JLCDModel.load("uracil")
    frame = read_frames(GEOMETRY)[20]
    z, xyz = frame.atomic_numbers, frame.coords_bohr
    grids = model.level.make_grids(model.level.make_mol(z, xyz))
    grids.build()
    points = grids.coords[:: args.stride]
    rng = np.random.default_rng(0)
    variants = []
    for n2 in args.n2:
        descriptor = JLDescriptor(replace(model.hyper, n2=n2), model.species)
        coefficients = [descriptor.contract(rng.normal(size=descriptor.n_features)) for _ in range(2)]
        variants.append((n2, descriptor, coefficients))
    best = {n2: np.inf for n2 in args.n2}
    mixing = np.ones((2, len(points)))
    for _ in range(args.repeats):
        for n2, descriptor, coefficients in variants:
            t0 = time.perf_counter()
            descriptor.predict_mixed(points, z, xyz, coefficients, mixing, gradient=True)
            best[n2] = min(best[n2], time.perf_counter() - t0)
    base = best[args.n2[0]]
    print(f"{len(points)} points, best of {args.repeats}, two channels + gradient:")
    for n2, descriptor, _ in variants:
        print(f"  n2 {n2:2d}: {descriptor.n_features:5d} features per block, {best[n2]:.2f} s, "
              f"ratio to n2 {args.n2[0]}: {best[n2] / base:.2f}")


if __name__ == "__main__":
    main()
