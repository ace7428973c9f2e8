"""Accuracy of a model against SCF reference data, as a markdown table.

    python tools/validate.py MODEL DATA.npz [--frames 36:40] [--density-only] [--forces harris-foulkes] [-o table.md]

DATA.npz comes from ``ipi-jlcdm dataset`` (SCF density matrices and labels at the model's level of
theory). Per frame: density error integral |rho_in - rho_SCF| / N_e (and that of the atomic
superposition alone), and the one-shot Harris-Foulkes energy, force MAE and max, dipole and gap
errors and the self-consistency residual.
"""

from __future__ import annotations

import argparse
import sys

from ipi_jlcdm.electronic.anderson import DEFAULT_ANDERSON_STEPS
from ipi_jlcdm.electronic.oneshot import DEFAULT_FORCE_ROUTE, FORCE_ROUTES
from ipi_jlcdm.geometry_io import parse_frame_selection
from ipi_jlcdm.jl.model import JLCDModel
from ipi_jlcdm.training.dataset import ReferenceData
from ipi_jlcdm.training.validation import format_table, summarize, validate_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("--frames", default=None, help="frames of DATA ('START:STOP' or 'i,j'), default all")
    parser.add_argument("--density-only", action="store_true", help="skip the one-shot engine")
    parser.add_argument("--anderson-steps", type=int, default=DEFAULT_ANDERSON_STEPS,
                        help=f"Fock builds of the served 'anderson' dipole (default {DEFAULT_ANDERSON_STEPS})")
    parser.add_argument("--forces", choices=FORCE_ROUTES, default=DEFAULT_FORCE_ROUTE,
                        help="one-shot force route: harris-foulkes (default; consistent derivative of the one-shot "
                        "energy), orbital (PySCF gradient on the one-shot orbitals) or anderson (after the Anderson "
                        "steps)")
    parser.add_argument("-o", "--output", default=None, help="also write the table to this file")
    args = parser.parse_args()
    model, data = JLCDModel.load(args.model), ReferenceData.load(args.data)
    if data.level.mismatch(model.level):
        raise SystemExit(f"data and model levels of theory differ: {data.level.mismatch(model.level)}")
    frames = parse_frame_selection(args.frames, len(data))
    rows = validate_model(model, data, frames, engine=not args.density_only, forces=args.forces,
                          anderson_steps=args.anderson_steps)
    table = format_table(rows) + "\n\nmeans: " + ", ".join(f"{k} {v:.4g}" for k, v in summarize(rows).items())
    print(table)
    if args.output:
        with open(args.output, "w") as f:
            f.write(f"command: {' '.join(sys.argv)}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
