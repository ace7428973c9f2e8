"""How firmly the reference itself fixes the harmonic modes and IR intensities: PySCF's analytic
Hessian at the same minimum with a different numerical setting, in the reference mode basis.

    python tools/reference_sensitivity.py [-o harmonic_uracil] [--grid-level 4] [--no-density-fit]

Reads OUT/minimum.xyz, OUT/reference_hessian.npz and OUT/fd_scf.npz written by ipi-jlcdm harmonic
(the reference: grid level 3, density-fitted Coulomb). Computes the analytic Hessian H (Ha/bohr^2)
of the variant at the same geometry, forms K_jk = q_j . H . q_k in the reference modes q_k (the
same basis as the model's Hessian in harmonic.py) and reports, per mode above --min-wavenumber, the
variant's frequency and overlap, the close-pair couplings (K_jk / (omega_j + omega_k), cm^-1) and
the intensities the reference dipole derivatives give along the variant's modes. A variant that
turns a near-degenerate pair by as much as the model does shows that the pair's individual
intensities are not fixed by the reference to that precision either (their sum is).
Output: printed and OUT/sensitivity_<variant>.md; the variant's Hessian is saved as
OUT/hessian_<variant>.npz and reused on a rerun.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ipi_jlcdm.analysis import harmonic
from ipi_jlcdm.analysis.harmonic import hessian_in_reference_modes, variant_table
from ipi_jlcdm.electronic.level import LevelOfTheory
from ipi_jlcdm.geometry_io import read_frames


def analytic_hessian(level: LevelOfTheory, atomic_numbers: np.ndarray, coords_bohr: np.ndarray,
                     dm0: np.ndarray, density_fit: bool) -> np.ndarray:
    """Cartesian Hessian (natm, natm, 3, 3), Ha/bohr^2, of the converged RKS at ``level``."""
    mol = level.make_mol(atomic_numbers, coords_bohr)
    mf = level.make_rks(mol)
    if not density_fit:
        mf = mf.undo_df()  # the same RKS (functional, grid) with exact 4-centre Coulomb
    mf.conv_tol = 1e-11
    mf.kernel(dm0=dm0)
    if not mf.converged:
        raise RuntimeError("the variant's SCF did not converge")
    hess = mf.Hessian()
    hess.verbose = 0
    return np.asarray(hess.kernel())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("-o", "--output-dir", default="docs/harmonic_uracil",
                        help="ipi-jlcdm harmonic's output directory (default docs/harmonic_uracil)")
    parser.add_argument("--grid-level", type=int, default=3, help="PySCF grids.level of the variant (default 3)")
    parser.add_argument("--no-density-fit", action="store_true",
                        help="exact Coulomb in the variant instead of def2-universal-jfit density fitting")
    parser.add_argument("--min-wavenumber", type=float, default=1000.0)
    args = parser.parse_args()
    out = Path(args.output_dir)
    name = f"grid{args.grid_level}" + ("_nodf" if args.no_density_fit else "")
    if args.grid_level == 3 and not args.no_density_fit:
        parser.error("that is the reference itself: change --grid-level or give --no-density-fit")

    missing = [name for name in ("minimum.xyz", "reference_hessian.npz", "fd_scf.npz") if not (out / name).is_file()]
    if missing:
        parser.error(f"{out} lacks {', '.join(missing)}: run ipi-jlcdm harmonic -o {out} first")
    frame = read_frames(out / "minimum.xyz")[0]
    with np.load(out / "reference_hessian.npz") as f:
        freq_ref, modes, dm0 = f["freq_cm1"], f["modes"], f["dm"]
    with np.load(out / "fd_scf.npz") as f:
        scf_dipoles = f["dipoles"]
    steps = harmonic.mode_steps(modes)
    dmu_ref = harmonic.central_difference(scf_dipoles, steps)

    hessian_file = out / f"hessian_{name}.npz"
    if hessian_file.is_file():
        with np.load(hessian_file) as f:
            hessian = f["hessian"]
    else:
        level = replace(LevelOfTheory(), grid_level=args.grid_level)
        t0 = time.perf_counter()
        hessian = analytic_hessian(level, frame.atomic_numbers, frame.coords_bohr, dm0, not args.no_density_fit)
        np.savez(hessian_file, hessian=hessian)
        harmonic.log(f"analytic Hessian of the variant {name}: {time.perf_counter() - t0:.0f} s")

    k_variant = hessian_in_reference_modes(hessian, modes)
    rows, pairs = variant_table(k_variant, freq_ref, dmu_ref, args.min_wavenumber)
    lines = [f"command: {' '.join(sys.argv)}",
             f"variant: grid level {args.grid_level}, {'exact' if args.no_density_fit else 'density-fitted'} "
             f"Coulomb; reference: grid level 3, density-fitted (ipi-jlcdm harmonic)", "", *rows, ""]
    for j, k, coupling, rotation in pairs:
        lines.append(f"close pair {j + 1}/{k + 1} ({freq_ref[j]:.0f}/{freq_ref[k]:.0f} cm^-1): the variant's "
                     f"coupling {coupling:+.2f} cm^-1 turns their eigenvectors by {rotation:+.1f} degrees")
    text = "\n".join(lines) + "\n"
    (out / f"sensitivity_{name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
