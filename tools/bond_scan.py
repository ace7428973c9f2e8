"""Stretch one bond and compare the one-shot energy and forces (both routes) with SCF.

    python tools/bond_scan.py [--model uracil] [--structure inputs/uracil/uracil.xyz] --atom 8
                              [--distances-angstrom 1.0,1.05,1.1,1.15,1.2,1.25,1.3]

Moves atom ``--atom`` (0-based) along the line to its nearest neighbour, all other atoms fixed,
and prints per distance: E_HF - E_SCF (meV), the force on the moved atom along the bond (eV/Å;
negative pulls it back) from SCF, route (a) (orbital gradient) and route (b) (consistent
Harris-Foulkes), and the one-shot residual. A probe of where a model's energy surface can be
trusted (docs/VALIDATION.md: the C-H scan of the shipped model).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ipi_jlcdm.electronic.oneshot import OneShotEngine
from ipi_jlcdm.electronic.scf_engine import SCFEngine
from ipi_jlcdm.geometry_io import read_frames
from ipi_jlcdm.jl.model import JLCDModel
from ipi_jlcdm.units import BOHR_PER_ANGSTROM, EV_PER_ANGSTROM_PER_HARTREE_PER_BOHR, EV_PER_HARTREE


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="uracil")
    parser.add_argument("--structure", default="inputs/uracil/uracil.xyz")
    parser.add_argument("--atom", type=int, required=True, help="index (0-based) of the atom to move")
    parser.add_argument("--distances-angstrom", default="1.0,1.05,1.1,1.15,1.2,1.25,1.3")
    args = parser.parse_args()
    model = JLCDModel.load(args.model)
    frame = read_frames(args.structure)[0]
    z, x0 = frame.atomic_numbers, frame.coords_bohr
    moved = args.atom
    distance = np.linalg.norm(x0 - x0[moved], axis=1)
    distance[moved] = np.inf
    partner = int(np.argmin(distance))
    axis = (x0[moved] - x0[partner]) / distance[partner]
    engines = {route: OneShotEngine(model, model.level, forces=name)
               for route, name in (("a", "orbital"), ("b", "harris-foulkes"))}
    scf = SCFEngine(model.level)
    print(f"atom {moved} (Z={z[moved]}) bonded to atom {partner} (Z={z[partner]}), "
          f"r0 = {distance[partner] / BOHR_PER_ANGSTROM:.3f} angstrom")
    print("| r (Å) | E_HF - E_SCF (meV) | F SCF (eV/Å) | F route (a) | F route (b) | residual |")
    print("|---|---|---|---|---|---|")
    for r in (float(v) for v in args.distances_angstrom.split(",")):
        x = x0.copy()
        x[moved] = x0[partner] + axis * r * BOHR_PER_ANGSTROM
        reference = scf.compute(z, x)
        a, b = engines["a"].compute(z, x), engines["b"].compute(z, x)
        along = [float(res.forces[moved] @ axis) * EV_PER_ANGSTROM_PER_HARTREE_PER_BOHR for res in (reference, a, b)]
        print(f"| {r:.3f} | {(b.energy - reference.energy) * EV_PER_HARTREE * 1000:+.1f} | {along[0]:+.3f} | "
              f"{along[1]:+.3f} | {along[2]:+.3f} | {100 * b.residual:.2f} % |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
