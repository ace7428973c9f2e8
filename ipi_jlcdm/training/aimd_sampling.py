"""Training geometries from a short SCF-engine AIMD run: i-PI NVT (SVR thermostat) started at the
minimum, driven by ``ipi-jlcdm driver --engine scf``, every ``stride``-th frame kept.

Harmonic samples cover the normal-mode coordinates; an anharmonic trajectory adds what they miss
(torsions, coupled large-amplitude motion) at the price of one SCF + gradient per step. The run
lives in its own folder (``OUTPUT.aimd/``) and continues from i-PI's checkpoint when rerun, so an
interrupted ``sample`` loses at most one step.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ipi_jlcdm.geometry_io import IPI_XYZ_COMMENT, format_xyz_frame, read_frames
from ipi_jlcdm.md.campaign import run_stage, steps_done
from ipi_jlcdm.md.demo import packaged_inputs
from ipi_jlcdm.md.ipi_run import driver_command

#: i-PI input of the run: the shipped SCF NVT template (0.5 fs steps, SVR thermostat, tau 25 fs);
#: its output prefix names the files (scf_nvt.out, scf_nvt.pos_0.xyz, scf_nvt.chk).
TEMPLATE = "scf_nvt.xml"
STAGE = "scf_nvt"

#: Steps left out at the start (the thermostat heats the molecule from the minimum with thermal
#: velocities; 40 steps = 20 fs, close to the thermostat's 25 fs time constant).
EQUILIBRATION_STEPS = 40


def aimd_geometries(atomic_numbers: np.ndarray, minimum_bohr: np.ndarray, workdir: Path, steps: int,
                    temperature_k: float, stride: int, seed: int, grid_level: int) -> list[np.ndarray]:
    """Run (or continue) ``steps`` steps of SCF-engine NVT at ``temperature_k`` from ``minimum_bohr``
    (natm, 3) in ``workdir``; return the geometries (natm, 3) bohr of every ``stride``-th step after
    EQUILIBRATION_STEPS."""
    workdir.mkdir(parents=True, exist_ok=True)
    start = workdir / "start.xyz"
    if not start.is_file():
        start.write_text(format_xyz_frame(atomic_numbers, minimum_bohr, f"{IPI_XYZ_COMMENT} (the optimized minimum)"))
    if steps_done(workdir / f"{STAGE}.out") < steps:
        address = f"jlcdm_sample_{os.getpid()}"
        driver = driver_command(address, "scf", None, ["--grid-level", str(grid_level), "--structure", str(start)])
        run_stage(workdir, STAGE, steps, packaged_inputs("uracil") / TEMPLATE, start, temperature_k, seed, address,
                  driver, one_shot_dipole=False)
    trajectory = workdir / f"{STAGE}.pos_0.xyz"
    frames = read_frames(trajectory)
    if len(frames) < steps:
        raise RuntimeError(f"{trajectory}: {len(frames)} frames after a run of {steps} steps")
    return [frame.coords_bohr for frame in frames[EQUILIBRATION_STEPS + stride::stride]]
