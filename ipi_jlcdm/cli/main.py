"""``ipi-jlcdm``: the command-line entry point; dispatches to one module per subcommand."""

from __future__ import annotations

import argparse
import sys

from ipi_jlcdm.cli import (
    campaign_cmd,
    dataset_cmd,
    demo_cmd,
    driver_cmd,
    eval_cmd,
    harmonic_cmd,
    ir_cmd,
    sample_cmd,
    train_cmd,
    validate_cmd,
)

#: Subcommands in the order a user meets them.
COMMANDS = {"demo": demo_cmd, "driver": driver_cmd, "eval": eval_cmd, "ir": ir_cmd, "sample": sample_cmd,
            "dataset": dataset_cmd, "train": train_cmd, "validate": validate_cmd,
            "harmonic": harmonic_cmd, "campaign": campaign_cmd}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ipi-jlcdm",
        description="Jacobi-Legendre charge-density model (JLCDM) + one-shot PySCF Kohn-Sham: "
        "energies, forces, dipoles for i-PI molecular dynamics and IR spectra.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.add_parser(sub, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError) as err:
        print(f"ipi-jlcdm {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
