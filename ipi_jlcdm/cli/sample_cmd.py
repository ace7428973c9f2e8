"""``ipi-jlcdm sample``: training geometries for a new molecule (minimum, normal modes, thermal samples)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ipi_jlcdm.electronic.level import LevelOfTheory
from ipi_jlcdm.files import write_text_atomically
from ipi_jlcdm.geometry_io import format_xyz_frame, read_frames
from ipi_jlcdm.training.aimd_sampling import EQUILIBRATION_STEPS, aimd_geometries
from ipi_jlcdm.training.sampling import (
    DEFAULT_GTOL,
    DEFAULT_STRETCH_RATIOS,
    NormalModes,
    curvilinear_samples,
    harmonic_samples,
    log,
    normal_modes,
    optimize,
    stretched_bond_samples,
    xyz_text,
)

#: Thermal samples per temperature. Measured on ethanol (9 atoms; straight-line samples, 4 held-out
#: frames per temperature): 16 per temperature gave density errors 0.389 % (300 K) and 0.603 % (500 K),
#: 32 gave 0.367 % and 0.559 %, for 7 more minutes of SCF references.
DEFAULT_COUNT = 32


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="training geometries for a molecule: optimize, normal modes, thermal samples",
                       description=
                       "Optimize the structure at the model's level of theory (PySCF, BFGS on SCF gradients), "
                       "compute PySCF's analytic Hessian there, and draw geometries from the classical harmonic "
                       "Boltzmann distribution of the normal modes at each --temperatures-k (each mode carries "
                       "kT/2 of potential energy on average; the displacements applied in internal coordinates, "
                       "so that torsions rotate instead of stretching bonds), plus X-H bonds stretched to fixed "
                       "ratios of their length, and with --aimd-steps frames of a short SCF-engine AIMD run. The "
                       "minimum and the modes are saved next to OUTPUT (OUTPUT.minimum.xyz, OUTPUT.modes.npz) "
                       "and reused by a rerun. Next step: 'ipi-jlcdm dataset OUTPUT -o DATA.npz'.")
    p.add_argument("structure", help="XYZ file of the molecule (angstrom; the first frame is used)")
    p.add_argument("-o", "--output", required=True, help="XYZ file of the sampled geometries (angstrom)")
    p.add_argument("--temperatures-k", type=float, nargs="+", default=[100.0, 300.0, 500.0],
                   help="temperatures of the thermal samples, kelvin (default 100 300 500)")
    p.add_argument("--count", type=int, default=DEFAULT_COUNT,
                   help=f"thermal samples per temperature (default {DEFAULT_COUNT})")
    p.add_argument("--displacements", choices=("curvilinear", "rectilinear"), default="curvilinear",
                   help="apply the normal-mode displacements in internal coordinates (bonds, angles, dihedrals; "
                   "default) or as straight Cartesian lines (which stretch bonds along torsions)")
    p.add_argument("--stretch-ratios", type=float, nargs="*", default=list(DEFAULT_STRETCH_RATIOS),
                   help="X-H bond lengths as ratios of the equilibrium length (default "
                   f"{' '.join(f'{r:g}' for r in DEFAULT_STRETCH_RATIOS)}; none: skip)")
    p.add_argument("--stretched-thermal-frames", type=int, default=4,
                   help="thermal frames that also get one stretched X-H bond (default 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--charge", type=int, default=0, help="total charge (default 0)")
    p.add_argument("--grid-level", type=int, default=3, help="PySCF grids.level (default 3)")
    p.add_argument("--aimd-steps", type=int, default=0,
                   help="also run this many steps of SCF-engine AIMD (i-PI NVT, 0.5 fs, from the minimum, in "
                   "OUTPUT.aimd/, continued when rerun) and add every --aimd-stride-th frame after the first "
                   f"{EQUILIBRATION_STEPS} steps: anharmonic geometries (torsions) that harmonic samples miss, at "
                   "one SCF + gradient per step (default 0: none)")
    p.add_argument("--aimd-temperature-k", type=float, default=None,
                   help="thermostat temperature of the AIMD run, kelvin (default: the highest --temperatures-k)")
    p.add_argument("--aimd-stride", type=int, default=10, help="keep every N-th AIMD step (default 10: 5 fs)")
    p.add_argument("--gtol", type=float, default=DEFAULT_GTOL,
                   help=f"optimization: largest |gradient|, Ha/bohr (default {DEFAULT_GTOL:g})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise ValueError(f"--count must be >= 1, got {args.count}")
    if any(t <= 0 for t in args.temperatures_k):
        raise ValueError(f"--temperatures-k must be positive, got {args.temperatures_k}")
    if args.aimd_steps < 0 or args.aimd_stride < 1:
        raise ValueError(f"--aimd-steps must be >= 0 and --aimd-stride >= 1, got {args.aimd_steps}, {args.aimd_stride}")
    if args.aimd_steps and args.charge != 0:
        raise ValueError("--aimd-steps: the SCF driver runs neutral molecules only")
    frame = read_frames(args.structure)[0]
    z = frame.atomic_numbers
    level = LevelOfTheory(charge=args.charge, grid_level=args.grid_level)
    level.make_mol(z, frame.coords_bohr)  # refuses open-shell molecules and elements without basis functions
    output = Path(args.output)
    minimum_path = output.with_name(output.name + ".minimum.xyz")
    modes_path = output.with_name(output.name + ".modes.npz")
    if minimum_path.is_file():
        minimum = read_frames(minimum_path)[0].coords_bohr
        log(f"minimum read from {minimum_path}")
    else:
        log(f"optimizing {args.structure} ({len(z)} atoms) at {level.xc}/{level.basis}")
        minimum = optimize(level, z, frame.coords_bohr, gtol=args.gtol)
        write_text_atomically(minimum_path, format_xyz_frame(z, minimum, "minimum, angstrom"))
    if modes_path.is_file():
        modes = NormalModes.load(modes_path)
        log(f"normal modes read from {modes_path}")
    else:
        log("analytic Hessian")
        modes = normal_modes(level, z, minimum)
        modes.save(modes_path)
    log("harmonic frequencies (cm^-1): " + " ".join(f"{f:.0f}" for f in modes.frequencies_cm1))
    rng = np.random.default_rng(args.seed)
    thermal = []
    for temperature in args.temperatures_k:
        samples = harmonic_samples(minimum, modes, temperature, args.count, rng)
        if args.displacements == "curvilinear":
            samples, kept = curvilinear_samples(z, minimum, samples)
            if kept:
                log(f"{kept} of {len(samples)} samples at {temperature:g} K keep their rectilinear displacement "
                    "(internal-coordinate back-transformation did not converge)")
        thermal.extend((coords, f"harmonic sample {n} at {temperature:g} K") for n, coords in enumerate(samples))
    stretched = []
    if args.stretch_ratios:
        stretched = stretched_bond_samples(z, minimum, np.array([coords for coords, _ in thermal]),
                                           tuple(args.stretch_ratios), args.stretched_thermal_frames)
    if args.aimd_steps:
        temperature = args.aimd_temperature_k or max(args.temperatures_k)
        workdir = output.with_name(output.name + ".aimd")
        log(f"SCF AIMD: {args.aimd_steps} steps at {temperature:g} K in {workdir} (progress: {workdir}/scf_nvt.out)")
        geometries = aimd_geometries(z, minimum, workdir, args.aimd_steps, temperature, args.aimd_stride,
                                     args.seed, args.grid_level)
        thermal.extend((coords, f"SCF AIMD frame {n} at {temperature:g} K") for n, coords in enumerate(geometries))
    rng.shuffle(thermal)  # training, validation and held-out frames then span every temperature
    # the stretched frames first: 'train' holds out the last frames, which should be thermal
    frames = stretched + thermal
    write_text_atomically(output, xyz_text(z, frames))
    log(f"wrote {len(frames)} geometries to {output} ({len(thermal)} thermal (harmonic and AIMD), {len(stretched)} "
        f"stretched X-H); next: ipi-jlcdm dataset {output} -o DATA.npz")
    return 0
