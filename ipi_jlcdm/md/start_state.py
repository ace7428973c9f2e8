"""An i-PI checkpoint to start MD from one frame of an NVE trajectory: positions of frame K and
velocities from its neighbours, then one velocity-Verlet step with the SCF engine.

    python tools/start_from_trajectory.py tools/data/uracil_nve_12_steps.xyz --frame 5 \
        --timestep-fs 0.5 -o start_300K      # -> start_300K/start.chk (i-PI checkpoint at step 1)
    ipi-jlcdm campaign RUN --from-checkpoint start_300K/start.chk ...

Why: an equilibrated 300 K state costs hundreds of NVT steps (an hour or more on 2 cores); the
shipped 12 consecutive steps of our SCF NVE already hold one. For velocity Verlet the central
difference v_K = (x_(K+1) - x_(K-1)) / (2 dt) is the velocity of step K exactly (the integrator is
time-reversible: one step back from (x_K, -v_K) gives x_(K-1)), so the only error is the file's
print precision (1e-5 angstrom -> 1e-5 angstrom/fs, ~1e-4 of a thermal velocity). The SCF step
then writes a real i-PI checkpoint (positions, momenta, step counter) that every engine can
continue; with the engine that made the trajectory it reproduces frame K+1 (checked on the output
and printed).
"""

from __future__ import annotations

import argparse
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ipi_jlcdm.geometry_io import IPI_XYZ_COMMENT, Frame, format_xyz_frame, read_xyz
from ipi_jlcdm.md.demo import packaged_inputs
from ipi_jlcdm.md.ipi_run import configure_input, driver_command, run_ipi_with_driver
from ipi_jlcdm.units import (
    ANGSTROM_PER_BOHR,
    BOLTZMANN_HARTREE_PER_K,
    ELECTRON_MASSES_PER_DALTON,
    FS_PER_AU_TIME,
)


def central_velocities(frames: list[Frame], k: int, timestep_fs: float) -> np.ndarray:
    """Velocities (natm, 3) in bohr per atomic time unit at frame ``k`` of consecutive
    velocity-Verlet steps ``timestep_fs`` apart (exact for that integrator up to the file's precision)."""
    if not 1 <= k <= len(frames) - 2:
        raise ValueError(f"frame {k} needs a frame before and after it (the file has {len(frames)})")
    dt_au = timestep_fs / FS_PER_AU_TIME
    return (frames[k + 1].coords_bohr - frames[k - 1].coords_bohr) / (2.0 * dt_au)


def kinetic_temperature(atomic_numbers: np.ndarray, velocities: np.ndarray) -> float:
    """Kinetic temperature (K) over 3N degrees of freedom, as i-PI's temperature of a free molecule."""
    from pyscf.data import elements

    masses = np.array([elements.MASSES[int(z)] for z in atomic_numbers]) * ELECTRON_MASSES_PER_DALTON
    kinetic = 0.5 * float(np.sum(masses[:, None] * velocities**2))
    return 2.0 * kinetic / (3 * len(atomic_numbers)) / BOLTZMANN_HARTREE_PER_K


def write_start_input(template: Path, xml: Path, xyz: Path, velocities: np.ndarray, address: str) -> None:
    """An NVE input (template: the packaged nve.xml) of one step from ``xyz`` with these velocities
    (bohr per atomic time unit), writing start.* files and the checkpoint start.chk."""
    configure_input(template, xml, 1, address)
    tree = ET.parse(xml)
    root = tree.getroot()
    root.find("output").set("prefix", "start")
    initialize = root.find("system/initialize")
    file_node = initialize.find("file")
    file_node.attrib.clear()
    file_node.set("mode", "xyz")
    file_node.text = f" {xyz.name} "
    node = ET.SubElement(initialize, "velocities", mode="manual", units="atomic_unit")
    node.text = " [ " + ", ".join(f"{v:.12e}" for v in velocities.ravel()) + " ] "
    tree.write(xml)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trajectory", help="XYZ file of consecutive velocity-Verlet steps (i-PI positions, angstrom)")
    p.add_argument("--frame", type=int, required=True, help="0-based frame to start from (needs both neighbours)")
    p.add_argument("--timestep-fs", type=float, required=True, help="time step of the trajectory (fs)")
    p.add_argument("-o", "--output", default="start", help="output folder (default ./start)")
    p.add_argument("--grid-level", type=int, default=None, help="SCF engine grid (default: the engine's)")
    args = p.parse_args()

    frames = read_xyz(args.trajectory)
    velocities = central_velocities(frames, args.frame, args.timestep_fs)
    z = frames[args.frame].atomic_numbers
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    xyz = out / "start.xyz"
    comment = f"{IPI_XYZ_COMMENT} (frame {args.frame} of {args.trajectory})"
    xyz.write_text(format_xyz_frame(z, frames[args.frame].coords_bohr, comment))
    print(f"frame {args.frame}: kinetic temperature {kinetic_temperature(z, velocities):.1f} K (3N degrees of freedom)")

    address = f"start_{os.getpid()}"
    write_start_input(packaged_inputs() / "nve.xml", out / "start.xml", xyz, velocities, address)
    extra = ["--structure", str(xyz.resolve())] + (["--grid-level", str(args.grid_level)] if args.grid_level else [])
    run_ipi_with_driver(out, "start.xml", address, driver_command(address, "scf", None, extra), tag="start")
    stepped = read_xyz(out / "start.pos_0.xyz")[-1].coords_bohr  # frame + 1 exists: central_velocities needs it
    deviation = np.abs(stepped - frames[args.frame + 1].coords_bohr).max() * ANGSTROM_PER_BOHR
    print(f"one SCF step from frame {args.frame} reaches frame {args.frame + 1} to {deviation:.1e} angstrom "
          "(print precision of the file: 1e-5; larger means another engine or time step)")
    print(f"checkpoint: {out / 'start.chk'} (continue with ipi-jlcdm campaign --from-checkpoint)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
