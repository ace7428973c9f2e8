"""Where a model's density error sits: integral |rho_in - rho_SCF| / N_e split by distance to the
nearest nucleus (and its element) and by the local atomic density rho_SAD.

    python tools/density_error_map.py DATA.npz [--model uracil] [--frames 0:6]

DATA.npz from ``ipi-jlcdm dataset``. rho_in is made as the engine makes it (positivity map,
normalized to N_e) on the full grid of each frame. Prints two tables (percent of N_e, averaged over
the frames): by shell of distance to the nearest nucleus (angstrom) with the share of each element,
and by decade of rho_SAD (e/bohr^3) with the mean and rms error there and the mean |error| divided
by rho_SAD, which says how the error scales with the atomic density (the basis of
``ipi-jlcdm train --rho-sad-weight-power``).
"""

from __future__ import annotations

import argparse

import numpy as np

from ipi_jlcdm.electronic.positivity import PositiveDensityMap
from ipi_jlcdm.geometry_io import parse_frame_selection
from ipi_jlcdm.jl.model import JLCDModel, resolve_model_path
from ipi_jlcdm.training.dataset import ReferenceData
from ipi_jlcdm.training.fit import frame_grid
from ipi_jlcdm.units import BOHR_PER_ANGSTROM

SHELL_EDGES_ANGSTROM = np.array([0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 2.5, np.inf])
RHO_EDGES = 10.0 ** np.arange(-8.0, 4.01)  # e/bohr^3; the first bin also holds everything below


def frame_errors(model: JLCDModel, data: ReferenceData, k: int):
    """Per grid point of frame k: |w| |rho_in - rho_SCF| / N_e * 100 (npts,), the signed error (npts,),
    |w|, rho_SAD, the distance to the nearest nucleus (bohr) and that nucleus's index."""
    grid = frame_grid(data, k, data.level.grid_level)
    z, atoms = data.atomic_numbers, data.coords_bohr[k]
    drho = model.deformation_density(grid.coords, z, atoms, gradient=False, rho_sad=grid.rho_sad)[0]
    rho_in = grid.rho_sad + PositiveDensityMap.build(grid.rho_sad, drho).deformation
    n_elec = round(float(grid.weights @ grid.rho_scf))
    rho_in *= n_elec / float(grid.weights @ rho_in)
    error = rho_in - grid.rho_scf
    abs_w = np.abs(grid.weights)
    distances = np.linalg.norm(grid.coords[:, None, :] - atoms[None], axis=2)
    return (100.0 * abs_w * np.abs(error) / n_elec, error, abs_w, grid.rho_sad, distances.min(axis=1),
            distances.argmin(axis=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data")
    p.add_argument("--model", default="uracil", help="model file or packaged name (default uracil)")
    p.add_argument("--frames", default=None, help="frames of DATA (default all)")
    args = p.parse_args()
    data = ReferenceData.load(args.data)
    model = JLCDModel.load(resolve_model_path(args.model))
    frames = parse_frame_selection(args.frames, len(data))
    z = data.atomic_numbers
    elements = sorted(set(int(a) for a in z))
    n_shell, n_rho = len(SHELL_EDGES_ANGSTROM) - 1, len(RHO_EDGES) - 1
    by_shell = np.zeros((len(elements), n_shell))
    l1, l2, volume = np.zeros(n_rho), np.zeros(n_rho), np.zeros(n_rho)
    for k in frames:
        share, error, abs_w, rho_sad, nearest_bohr, nearest_atom = frame_errors(model, data, k)
        print(f"frame {k}: density error {share.sum():.3f} %", flush=True)
        shell = np.digitize(nearest_bohr / BOHR_PER_ANGSTROM, SHELL_EDGES_ANGSTROM) - 1
        for e, element in enumerate(elements):
            mine = z[nearest_atom] == element
            by_shell[e] += np.bincount(shell[mine], weights=share[mine], minlength=n_shell)[:n_shell]
        decade = np.clip(np.digitize(rho_sad, RHO_EDGES) - 1, 0, n_rho - 1)
        l1 += np.bincount(decade, abs_w * np.abs(error), n_rho)
        l2 += np.bincount(decade, abs_w * error ** 2, n_rho)
        volume += np.bincount(decade, abs_w, n_rho)
    by_shell /= len(frames)
    print(f"\nmean over {len(frames)} frames: {by_shell.sum():.3f} %\n")
    print("nearest nucleus (A)   error %   " + "  ".join(f"Z={e:<3d}" for e in elements))
    for i in range(n_shell):
        print(f"{SHELL_EDGES_ANGSTROM[i]:4.1f}-{SHELL_EDGES_ANGSTROM[i + 1]:<4.1f}            "
              f"{by_shell[:, i].sum():7.3f}   " + "  ".join(f"{v:5.3f}" for v in by_shell[:, i]))
    n_elec = float(np.sum(z))
    print("\nrho_SAD (e/bohr^3)    error %   mean |err|   rms err     mean |err| / rho_SAD")
    for i in np.nonzero(volume)[0]:
        middle = np.sqrt(RHO_EDGES[i] * RHO_EDGES[i + 1])
        print(f"{RHO_EDGES[i]:.0e}-{RHO_EDGES[i + 1]:.0e}   {100 * l1[i] / n_elec / len(frames):7.3f}   "
              f"{l1[i] / volume[i]:.3e}   {np.sqrt(l2[i] / volume[i]):.3e}   {l1[i] / volume[i] / middle:.3e}")


if __name__ == "__main__":
    main()
