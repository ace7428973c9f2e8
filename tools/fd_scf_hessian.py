"""The noise floor of ipi-jlcdm harmonic: frequencies from central differences of SCF forces.

    python tools/fd_scf_hessian.py [--harmonic-dir docs/harmonic_uracil] [-o fd_scf_forces.npz]

Takes the minimum, the analytic Hessian's normal modes and the SCF density matrix stored by
ipi-jlcdm harmonic, displaces along each mode by the same steps as harmonic.py (largest atomic
displacement 0.01 bohr), computes SCF forces (PySCF DF-RKS gradient, no grid response, warm-started
from the minimum's density matrix) and builds the finite-difference Hessian exactly as harmonic.py
does for a model. Its frequencies against the analytic ones measure what the protocol itself
(steps, grid, SCF convergence) contributes to a model's differences. Resumable: the forces are
saved after every displacement (``-o``). 60 SCF + gradient runs for uracil.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ipi_jlcdm.analysis.harmonic import mode_steps, modes_from_forces
from ipi_jlcdm.electronic.scf_engine import run_scf  # noqa: E402
from ipi_jlcdm.geometry_io import read_frames  # noqa: E402
from ipi_jlcdm.jl.model import JLCDModel, resolve_model_path  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--harmonic-dir", default=str(Path(__file__).resolve().parents[1] / "docs" / "harmonic_uracil"),
                        help="directory with minimum.xyz and reference_hessian.npz (from ipi-jlcdm harmonic)")
    parser.add_argument("--model", default="uracil", help="model whose level of theory to use (default uracil)")
    parser.add_argument("-o", "--output", default="fd_scf_forces.npz", help="forces file (resumable)")
    args = parser.parse_args()
    directory = Path(args.harmonic_dir)
    level = JLCDModel.load(resolve_model_path(args.model)).level
    frame = read_frames(directory / "minimum.xyz")[0]
    with np.load(directory / "reference_hessian.npz") as ref:
        freq, modes, dm0 = ref["freq_cm1"], ref["modes"], ref["dm"]
    nmode = len(freq)
    steps = mode_steps(modes)
    out = Path(args.output)
    forces = np.full((nmode, 2, len(frame.atomic_numbers), 3), np.nan)
    if out.is_file():
        with np.load(out) as saved:
            forces[...] = saved["forces"]
    for k in range(nmode):
        for side, sign in enumerate((1.0, -1.0)):
            if np.isnan(forces[k, side]).any():
                mol = level.make_mol(frame.atomic_numbers, frame.coords_bohr + sign * steps[k] * modes[k])
                forces[k, side] = run_scf(level, mol, dm0, 1e-10, compute_forces=True)[0].forces
                np.savez(out, forces=forces)
        print(f"[{time.strftime('%H:%M:%S')}] mode {k + 1}/{nmode} done", flush=True)

    freq_fd, overlap, _, _ = modes_from_forces(modes, forces, steps)
    print("| mode | analytic (cm^-1) | SCF finite differences (cm^-1) | diff | overlap |\n|---|---|---|---|---|")
    for k in range(nmode):
        print(f"| {k + 1} | {freq[k]:.1f} | {freq_fd[k]:.1f} | {freq_fd[k] - freq[k]:+.1f} | {overlap[k]:.2f} |")
    diff = np.abs(freq_fd - freq)[freq > 1000]
    print(f"modes above 1000 cm^-1: |diff| max {np.nanmax(diff):.1f}, mean {np.nanmean(diff):.1f} cm^-1; "
          f"within 15 cm^-1: {(diff <= 15).sum()}/{diff.size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
