"""``ipi-jlcdm harmonic``: harmonic frequencies and IR intensities of an engine against PySCF's Hessian."""

from __future__ import annotations

import argparse
from pathlib import Path

from ipi_jlcdm.analysis.harmonic import DEFAULT_STEP_BOHR, run_harmonic
from ipi_jlcdm.electronic.engines import ENGINES, add_route_arguments
from ipi_jlcdm.jl.model import PACKAGED_MODELS
from ipi_jlcdm.md.demo import packaged_inputs


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="harmonic frequencies and IR intensities of a model against PySCF's Hessian",
                       description="Optimizes the structure at the model's level of theory, computes PySCF's "
                       "analytic Hessian and SCF dipole derivatives there, and the engine's forces and dipoles at "
                       "+-h along every normal mode; writes DIR/harmonic.md (per mode: frequencies, overlaps, "
                       "intensities; summary), DIR/harmonic.csv and DIR/harmonic.png (stick spectra). Resumable: "
                       "every displacement is saved as it completes. --engine scf runs the same finite differences "
                       "with SCF forces (the protocol's own error against the analytic Hessian).")
    p.add_argument("--model", default="uracil", help="model .npz or packaged name (default uracil)")
    p.add_argument("--structure", default=None,
                   help="starting geometry, XYZ in angstrom (default: the packaged model's inputs/<name>/<name>.xyz)")
    p.add_argument("-o", "--output-dir", default="harmonic_out", help="output and resume directory")
    p.add_argument("--engine", choices=ENGINES, default="jlcdm", help="jlcdm (the model, default) or scf")
    p.add_argument("--step-bohr", type=float, default=DEFAULT_STEP_BOHR,
                   help=f"largest atomic displacement of a finite-difference step (default {DEFAULT_STEP_BOHR})")
    add_route_arguments(p)
    p.add_argument("--gtol", type=float, default=2e-5, help="optimization: largest |gradient|, Ha/bohr")
    p.add_argument("--sample", nargs=2, metavar=("TEMPERATURE_K", "N"), default=None,
                   help="instead of the comparison: write N geometries drawn from the classical harmonic Boltzmann "
                   "distribution at TEMPERATURE_K around the minimum (DIR/samples_<T>K.xyz)")
    p.add_argument("--seed", type=int, default=0, help="random seed of --sample (default 0)")
    p.add_argument("--min-wavenumber", type=float, default=1000.0,
                   help="summary over modes above this frequency (cm^-1; default 1000)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.structure is None:
        if args.model not in PACKAGED_MODELS:
            raise ValueError("give --structure (an XYZ file of the molecule) for a model file")
        args.structure = str(packaged_inputs(args.model) / f"{args.model}.xyz")
    if not Path(args.structure).is_file():
        raise FileNotFoundError(f"structure file not found: {args.structure}")
    return run_harmonic(args)
