"""``ipi-jlcdm dataset``: PySCF reference calculations for training (resumable)."""

from __future__ import annotations

import argparse

from ipi_jlcdm.electronic.level import LevelOfTheory
from ipi_jlcdm.geometry_io import parse_frame_selection, read_frames
from ipi_jlcdm.training.dataset import build_reference_data


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="compute SCF references (density matrices, energies, forces) for training",
                       description="Run PySCF RKS (PBE/def2-SVP, density fitting) with gradients on a set of "
                       "geometries and store density matrices and labels in an npz file. The file is "
                       "saved after every frame; rerunning the same command resumes.")
    p.add_argument("geometries", help="XYZ file (angstrom, or an i-PI positions{unit} tag), i-PI trajectory, "
                   "or rMD17 .npz")
    p.add_argument("-o", "--output", required=True, help="output npz file")
    p.add_argument("--frames", default=None, help="frame selection: 'START:STOP[:STEP]' or 'i,j,k' (default all)")
    p.add_argument("--append", action="store_true",
                   help="add the frames (e.g. the driver's flagged frames) to an existing OUTPUT with new source "
                   "indices, skipping geometries it already holds")
    p.add_argument("--xc", default="PBE")
    p.add_argument("--basis", default="def2-svp")
    p.add_argument("--auxbasis", default="def2-universal-jfit")
    p.add_argument("--charge", type=int, default=0)
    p.add_argument("--grid-level", type=int, default=3, help="PySCF grids.level of the SCF (default 3)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    frames = read_frames(args.geometries)
    indices = parse_frame_selection(args.frames, len(frames))
    level = LevelOfTheory(xc=args.xc, basis=args.basis, auxbasis=args.auxbasis, charge=args.charge,
                          grid_level=args.grid_level)
    build_reference_data(frames, indices, level, args.output, append=args.append)
    return 0
