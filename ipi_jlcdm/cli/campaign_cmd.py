"""``ipi-jlcdm campaign``: resumable NVT/NVE segments and their report and IR spectrum."""

from __future__ import annotations

import argparse

from ipi_jlcdm.md import campaign


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="resumable multi-segment NVT/NVE i-PI campaign, its report and IR spectrum",
                       description=campaign.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    campaign.add_arguments(p)
    p.set_defaults(func=campaign.run)
