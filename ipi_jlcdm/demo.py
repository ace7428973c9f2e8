"""The README's main job: a short i-PI NVT + NVE run of uracil driven by the shipped model,
ending in an IR spectrum. Shows the whole workflow in minutes; the production protocol is in
inputs/uracil/README.md."""

from __future__ import annotations

import os
import shutil
import sys
import time
from importlib import resources
from pathlib import Path

from .ipi_run import configure_input, driver_command, run_ipi_with_driver
from .ir import compute_ir_spectrum, log_summary, plot_spectrum, read_dipole_file, write_csv, write_peaks
from .md_properties import conservation, read_properties
from .oneshot import DEFAULT_FORCE_ROUTE

TIMESTEP_FS = 0.5  # as in inputs/uracil/nve.xml


def packaged_inputs(name: str = "uracil") -> Path:
    return Path(str(resources.files("ipi_jlcdm") / "inputs" / name))


def run_demo(output_dir: Path, nvt_steps: int, nve_steps: int, engine: str = "jlcdm", model: str = "uracil",
             grid_level: int | None = None, log=sys.stderr, timeout_s: float = 24 * 3600.0,
             forces: str = DEFAULT_FORCE_ROUTE, mpi_ranks: int = 1) -> dict[str, Path]:
    """Run NVT then NVE (from the NVT checkpoint) and the IR spectrum; returns the output files.
    ``mpi_ranks`` > 1: the driver under ``mpiexec -n mpi_ranks`` with one thread per rank (jlcdm only)."""
    if mpi_ranks > 1 and engine != "jlcdm":
        raise ValueError(f"--mpi-ranks: the {engine} engine runs on one process")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    inputs = packaged_inputs()
    shutil.copy(inputs / "uracil.xyz", output_dir / "uracil.xyz")
    address = f"jlcdm_demo_{os.getpid()}"
    configure_input(inputs / "nvt.xml", output_dir / "nvt.xml", nvt_steps, address)
    configure_input(inputs / "nve.xml", output_dir / "nve.xml", nve_steps, address)
    extra = ["--grid-level", str(grid_level)] if grid_level is not None else []
    if engine == "jlcdm":
        extra += ["--forces", forces]
    cmd = driver_command(address, engine, model, extra, mpi_ranks=mpi_ranks)
    driver_env = {"OMP_NUM_THREADS": "1"} if mpi_ranks > 1 else None  # one thread per rank
    t0 = time.perf_counter()
    ranks = f", {mpi_ranks} MPI ranks" if mpi_ranks > 1 else ""
    print(f"demo: uracil, engine {engine} (forces {forces}{ranks}), model {model}, outputs in {output_dir}/",
          file=log, flush=True)
    print(f"demo: NVT 300 K, {nvt_steps} steps of {TIMESTEP_FS} fs (i-PI + ipi-jlcdm driver) ...", file=log, flush=True)
    run_ipi_with_driver(output_dir, "nvt.xml", address, cmd, timeout_s, tag="nvt", driver_env=driver_env)
    print(f"demo: NVT done ({time.perf_counter() - t0:.0f} s); NVE {nve_steps} steps from nvt.chk ...",
          file=log, flush=True)
    run_ipi_with_driver(output_dir, "nve.xml", address, cmd, timeout_s, tag="nve", driver_env=driver_env)
    print(f"demo: NVE done ({time.perf_counter() - t0:.0f} s); IR spectrum from nve.dip_0", file=log, flush=True)
    props = read_properties(output_dir / "nve.out")
    energy = conservation(props)
    print(f"demo: NVE conserved quantity changed by {energy['change_meV']:+.2f} meV over {len(props) - 1} steps "
          f"(peak to peak {energy['peak_to_peak_meV']:.2f} meV; potential energy range "
          f"{energy['potential_range_meV']:.0f} meV)", file=log, flush=True)
    series = read_dipole_file(output_dir / "nve.dip_0")
    spectrum = compute_ir_spectrum([series], TIMESTEP_FS)
    prefix = output_dir / "uracil_ir"
    peaks = spectrum.peaks()
    write_csv(spectrum, f"{prefix}.csv", "; qcf harmonic at 300 K, window hann")
    write_peaks(peaks, f"{prefix}_peaks.csv")
    plot_spectrum(spectrum, f"{prefix}.png", title=f"uracil, {engine}: {len(series.dipoles)} NVE frames "
                  f"({spectrum.max_lag_fs:.0f} fs, demo length: far too short for real line shapes)")
    log_summary(spectrum, peaks, log)
    outputs = {"nvt properties": output_dir / "nvt.out", "nve properties": output_dir / "nve.out",
               "trajectory": output_dir / "nve.pos_0.xyz", "dipoles (e*bohr)": output_dir / "nve.dip_0",
               "checkpoint": output_dir / "nve.chk", "IR spectrum (csv)": Path(f"{prefix}.csv"),
               "IR peaks (csv)": Path(f"{prefix}_peaks.csv"), "IR plot (png)": Path(f"{prefix}.png")}
    print(f"demo: finished in {time.perf_counter() - t0:.0f} s. Outputs:", file=log)
    for label, path in outputs.items():
        print(f"  {label:20s} {path}", file=log)
    return outputs
