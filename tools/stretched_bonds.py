"""Geometries with one X-H bond stretched or compressed, as training data outside thermal sampling.

    python tools/stretched_bonds.py -o stretch.xyz [--minimum docs/harmonic_uracil/minimum.xyz]
        [--rmd17 tools/data/rmd17_uracil_train_01_0_140.npz --rmd17-frames 100,110,120,130]

A model trained on thermal frames alone had spurious Harris-Foulkes wells along C-H stretches
beyond 1.2 Angstrom (docs/VALIDATION.md, bond scan), where MD with the consistent forces went.
This writes, at the minimum, every X-H bond at --minimum-distances (default 0.95, 1.22, 1.32
Angstrom), and for each listed rMD17 frame one X-H bond (taking the H atoms in turn) at
--frame-distances (default 1.25, 1.35 Angstrom); X is the atom nearest to the H. Label them with
``ipi-jlcdm dataset stretch.xyz -o DATA.npz --append``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ipi_jlcdm.geometry_io import format_xyz_frame, parse_frame_selection, read_frames, read_rmd17
from ipi_jlcdm.training.sampling import stretched
from ipi_jlcdm.units import BOHR_PER_ANGSTROM


def stretched_to(coords_bohr: np.ndarray, hydrogen: int, distance_angstrom: float) -> np.ndarray:
    """A copy of coords (natm, 3) bohr with ``hydrogen`` moved along its bond to the nearest atom to
    ``distance_angstrom`` from it."""
    distances = np.linalg.norm(coords_bohr - coords_bohr[hydrogen], axis=1)
    distances[hydrogen] = np.inf
    return stretched(coords_bohr, hydrogen, distance_angstrom * BOHR_PER_ANGSTROM / distances.min())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", required=True, help="XYZ file to write (angstrom)")
    p.add_argument("--minimum", default="docs/harmonic_uracil/minimum.xyz")
    p.add_argument("--minimum-distances", default="0.95,1.22,1.32", help="angstrom")
    p.add_argument("--rmd17", default="tools/data/rmd17_uracil_train_01_0_140.npz")
    p.add_argument("--rmd17-frames", default="100,110,120,130")
    p.add_argument("--frame-distances", default="1.25,1.35", help="angstrom")
    args = p.parse_args()
    minimum = read_frames(args.minimum)[0]
    z = minimum.atomic_numbers
    hydrogens = [i for i, zi in enumerate(z) if zi == 1]
    frames = []
    for h in hydrogens:
        for r in (float(x) for x in args.minimum_distances.split(",")):
            frames.append(format_xyz_frame(z, stretched_to(minimum.coords_bohr, h, r), f"minimum, H{h} at {r} A"))
    rmd17 = read_rmd17(args.rmd17)
    for n, k in enumerate(parse_frame_selection(args.rmd17_frames, len(rmd17))):
        h = hydrogens[n % len(hydrogens)]
        for r in (float(x) for x in args.frame_distances.split(",")):
            frames.append(format_xyz_frame(z, stretched_to(rmd17[k].coords_bohr, h, r), f"rMD17 {k}, H{h} at {r} A"))
    with open(args.output, "w") as handle:
        handle.write("".join(frames))
    print(f"wrote {len(frames)} geometries to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
