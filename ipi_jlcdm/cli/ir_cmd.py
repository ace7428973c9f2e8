"""``ipi-jlcdm ir``: IR spectrum (CSV, peak table, PNG) from i-PI dipole trajectories."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ipi_jlcdm.analysis.ir import (
    QCF_CHOICES,
    WINDOW_CHOICES,
    compute_ir_spectrum,
    in_molecular_frame,
    log_summary,
    plot_spectrum,
    read_csv,
    read_dipole_file,
    read_reference,
    write_csv,
    write_peaks,
)


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="IR spectrum from dipole time series (i-PI extras files or columns)",
                       description="alpha(omega) n(omega) from the autocorrelation of the dipole time derivative, "
                       "averaged over files and blocks. Writes PREFIX.csv (cm^-1, intensity, standard error), "
                       "PREFIX_peaks.csv and PREFIX.png.")
    p.add_argument("files", nargs="+", help="i-PI dipole extras files (e*bohr) or plain 3-column files")
    p.add_argument("--molecular-frame", nargs="+", default=None, metavar="POSITIONS",
                   help="i-PI positions trajectories, one per dipole file (same frames): rotate each dipole into "
                   "the molecule's frame first, which removes the rotational (P/R-branch) broadening of a gas-phase "
                   "molecule's bands")
    p.add_argument("--timestep-fs", type=float, required=True, help="MD time step (fs)")
    p.add_argument("--stride", type=int, default=None,
                   help="MD steps between stored frames (default: from i-PI step headers, else 1)")
    p.add_argument("--skip-ps", type=float, default=0.0, help="equilibration to drop from each file (ps)")
    p.add_argument("--max-lag-fs", type=float, default=None,
                   help="maximum correlation time (fs; default: the whole block)")
    p.add_argument("--window", choices=WINDOW_CHOICES, default="hann", help="window on the correlation function")
    p.add_argument("--zero-pad", type=int, default=4, help="zero padding factor of the cosine transform (default 4)")
    p.add_argument("--qcf", choices=QCF_CHOICES, default="harmonic", help="quantum correction factor")
    p.add_argument("--temperature", type=float, default=300.0, help="temperature for the QCF (K)")
    p.add_argument("--blocks", type=int, default=1, help="blocks per file for the standard error (default 1)")
    p.add_argument("--max-wavenumber", type=float, default=4000.0, help="upper end of the output (cm^-1)")
    p.add_argument("--reference", default=None, help="reference sticks: two columns, cm^-1 and intensity")
    p.add_argument("--compare", nargs="+", default=None, metavar="CSV",
                   help="spectra written earlier by 'ipi-jlcdm ir' (PREFIX.csv) to draw in the same plot, "
                   "e.g. another temperature; labelled by file name")
    p.add_argument("--label", default="", help="legend label of this spectrum in the plot")
    p.add_argument("-o", "--output", required=True, help="output prefix")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.molecular_frame and len(args.molecular_frame) != len(args.files):
        raise ValueError(f"--molecular-frame: {len(args.molecular_frame)} positions files for {len(args.files)} "
                         "dipole files")
    series = []
    for k, path in enumerate(args.files, 1):
        series.append(read_dipole_file(path))
        if args.molecular_frame:
            series[-1] = in_molecular_frame(series[-1], args.molecular_frame[k - 1])
        print(f"[{k}/{len(args.files)}] read {len(series[-1].dipoles)} dipoles from {path}", file=sys.stderr)
    spectrum = compute_ir_spectrum(series, args.timestep_fs, args.stride, args.skip_ps, args.max_lag_fs, args.window,
                                   args.zero_pad, args.qcf, args.temperature, args.blocks, args.max_wavenumber)
    peaks = spectrum.peaks()
    reference = read_reference(args.reference) if args.reference else None
    others = [(Path(path).stem, read_csv(path)) for path in args.compare or []]
    write_csv(spectrum, f"{args.output}.csv", f"; qcf {args.qcf} at {args.temperature} K, window {args.window}")
    write_peaks(peaks, f"{args.output}_peaks.csv")
    plot_spectrum(spectrum, f"{args.output}.png", reference=reference, others=others, label=args.label)
    log_summary(spectrum, peaks)
    print(f"wrote {args.output}.csv, {args.output}_peaks.csv, {args.output}.png", file=sys.stderr)
    return 0
