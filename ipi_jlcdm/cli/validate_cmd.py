"""``ipi-jlcdm validate``: a model against SCF reference data, with the recipe's goals."""

from __future__ import annotations

import argparse
import sys

from ipi_jlcdm.electronic.engines import add_route_arguments, route_options
from ipi_jlcdm.files import write_text_atomically
from ipi_jlcdm.geometry_io import parse_frame_selection
from ipi_jlcdm.jl.model import JLCDModel
from ipi_jlcdm.training.dataset import ReferenceData
from ipi_jlcdm.training.validation import GOALS, format_goal_table, format_table, summarize, validate_model


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="errors of a model against SCF references, with goals and PASS/FAIL",
                       description="Per held-out frame of DATA (from 'ipi-jlcdm dataset' at the model's level of "
                       "theory): the density error integral |rho_in - rho_SCF| / N_e (and that of the atomic "
                       "superposition alone) and the one-shot energy, force, dipole and gap errors and the "
                       "self-consistency residual; then the means against the goals for frames sampled at "
                       "--goals-k (300 or 500 K), PASS or FAIL per row. Exit status 0 when every goal passes, "
                       "1 when one fails.")
    p.add_argument("model", help="model .npz or packaged name (e.g. uracil, water)")
    p.add_argument("data", help="reference data npz from 'ipi-jlcdm dataset' (frames the model was not trained on)")
    p.add_argument("--frames", default=None, help="frames of DATA: 'START:STOP[:STEP]' or 'i,j,k' (default all)")
    p.add_argument("--goals-k", type=int, choices=sorted(GOALS), default=300,
                   help="temperature whose goals apply (default 300)")
    p.add_argument("--density-only", action="store_true", help="density errors only (no one-shot engine)")
    add_route_arguments(p)
    p.add_argument("-o", "--output", default=None, help="also write the tables (markdown) to this file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model, data = JLCDModel.load(args.model), ReferenceData.load(args.data)
    mismatch = data.level.mismatch(model.level)
    if mismatch:
        raise ValueError(f"{args.data} and the model differ in level of theory: {'; '.join(mismatch)}")
    model.check_compatible(data.atomic_numbers)
    frames = parse_frame_selection(args.frames, len(data))
    rows = validate_model(model, data, frames, engine=not args.density_only, **route_options(args))
    summary = summarize(rows)
    goals, passed = format_goal_table(summary, args.goals_k)
    text = f"{format_table(rows)}\n\n{goals}\n"
    print(text)
    if args.output:
        write_text_atomically(args.output, f"command: ipi-jlcdm {' '.join(sys.argv[1:])}\n\n{text}")
    return 0 if passed else 1
