"""The README's main job: i-PI NVT then NVE driven by a shipped model, ending in an IR spectrum.

- ``water`` (default): gas-phase water with the shipped water model, long enough that the bend and
  both O-H stretches are resolved. The dipoles are rotated into the molecule's frame before the
  spectrum (``ir.molecular_frame_dipoles``): a single molecule rotates freely, and its lab-frame
  bands carry P/R-branch rotational broadening wider than the 100 cm^-1 between the two stretches.
  The plot marks PySCF's harmonic frequencies and intensities at the same level of theory and the
  gas-phase experimental fundamentals; the summary names each band and its offsets from both. It
  runs on PySCF's grid level 1 (10k points instead of 34k at the model's level 3: 0.28 s per step
  instead of 0.63 s on 2 cores), where the one-shot forces stay within 2.8 meV/Å and the dipoles
  within 0.0001 D of the level-3 SCF references (inputs/water/README.md) and NVE conserves the
  energy to a few meV per ps.
- ``uracil``: the paper's molecule, a short live run (its spectrum shows the workflow, not bands),
  plotted next to the shipped 300 K spectrum of the project's own 2 ps runs.

Progress (stage, steps done, seconds per step, time left) goes to the log while i-PI runs.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ipi_jlcdm.analysis.ir import (
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
from ipi_jlcdm.electronic.oneshot import DEFAULT_FORCE_ROUTE
from ipi_jlcdm.md.ipi_run import configure_input, driver_command, run_ipi_with_driver
from ipi_jlcdm.md.md_properties import conservation, read_properties

TIMESTEP_FS = 0.5  # as in the shipped nvt.xml and nve.xml


@dataclass(frozen=True)
class DemoMolecule:
    """What the demo runs for one molecule: the shipped model and inputs (``inputs/<name>``), the
    default NVT and NVE lengths, and what the spectrum is compared with."""

    name: str
    nvt_steps: int
    nve_steps: int
    molecular_frame: bool = False
    #: (band label, gas-phase experimental fundamental in cm^-1), in the order of the harmonic file's rows
    bands: tuple[tuple[str, float], ...] = ()
    experiment_source: str = ""
    harmonic_file: str | None = None  # sticks: cm^-1, km/mol (PySCF's Hessian at the same level)
    shipped_spectrum: str | None = None  # an earlier, long run's spectrum (ir CSV) to plot alongside
    shipped_label: str = ""
    grid_level: int | None = None  # PySCF grids.level of the run (None: the model's)


MOLECULES = {
    "water": DemoMolecule(
        "water", nvt_steps=100, nve_steps=1400, molecular_frame=True, grid_level=1,
        bands=(("H-O-H bend", 1595.0), ("symmetric O-H stretch", 3657.0), ("antisymmetric O-H stretch", 3756.0)),
        experiment_source="gas-phase fundamentals, T. Shimanouchi, NIST Chemistry WebBook",
        harmonic_file="harmonic_pbe.txt"),
    "uracil": DemoMolecule(
        "uracil", nvt_steps=3, nve_steps=12, shipped_spectrum="ir_300K_2ps.csv",
        shipped_label="shipped: 300 K, 2 ps NVE in 3 segments (docs/campaigns: ipi-jlcdm campaign "
        "uracil_300K_v5 --report)"),
}

#: How far (cm^-1) from a band's harmonic frequency a spectrum peak may lie to be called that band.
BAND_SEARCH_CM1 = 120.0


def packaged_inputs(name: str = "uracil") -> Path:
    return Path(str(resources.files("ipi_jlcdm") / "inputs" / name))


class StepProgress:
    """Reports an i-PI stage's progress from its properties file: steps done of total, seconds per
    step, time left; at most every ``every_s`` seconds."""

    def __init__(self, properties: Path, stage: str, total_steps: int, log, every_s: float = 15.0):
        self.properties, self.stage, self.total, self.log, self.every_s = properties, stage, total_steps, log, every_s
        self.start = self.last = time.monotonic()

    def steps_done(self) -> int:
        try:
            with open(self.properties, "rb") as handle:
                lines = [line for line in handle.read().splitlines() if line.strip() and not line.startswith(b"#")]
        except OSError:
            return 0
        return int(float(lines[-1].split()[0])) if lines else 0

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self.last < self.every_s:
            return
        self.last = now
        done = self.steps_done()
        if done <= 0:
            print(f"demo: {self.stage}: waiting for the first step ({now - self.start:.0f} s)", file=self.log,
                  flush=True)
            return
        per_step = (now - self.start) / done
        print(f"demo: {self.stage}: step {done}/{self.total}, {per_step:.2f} s per step, "
              f"~{per_step * (self.total - done) / 60:.1f} min left", file=self.log, flush=True)


def band_table(peaks: list[tuple[float, float]], harmonic_cm1: np.ndarray,
               bands: tuple[tuple[str, float], ...]) -> list[dict]:
    """One row per band: the spectrum peak assigned to it (each peak to at most one band, the closest
    pairs first, within BAND_SEARCH_CM1 of the band's harmonic frequency; else None) and its offsets
    from the harmonic and experimental values (cm^-1)."""
    harmonic = [float(h) for h in harmonic_cm1[:len(bands)]]
    pairs = sorted((abs(p[0] - h), b, k) for b, h in enumerate(harmonic) for k, p in enumerate(peaks)
                   if abs(p[0] - h) <= BAND_SEARCH_CM1)
    assigned: dict[int, float] = {}
    used: set[int] = set()
    for _, b, k in pairs:
        if b not in assigned and k not in used:
            assigned[b] = peaks[k][0]
            used.add(k)
    rows = []
    for b, ((label, experiment), h) in enumerate(zip(bands, harmonic, strict=False)):
        position = assigned.get(b)
        rows.append({"band": label, "md_cm1": position, "harmonic_cm1": h, "experiment_cm1": experiment,
                     "md_minus_harmonic": None if position is None else position - h,
                     "md_minus_experiment": None if position is None else position - experiment})
    return rows


def format_band_table(rows: list[dict]) -> str:
    lines = ["band                         MD (cm^-1)   harmonic (MD - harm.)   experiment (MD - exp.)"]
    for r in rows:
        if r["md_cm1"] is None:
            lines.append(f"{r['band']:28s} not resolved  {r['harmonic_cm1']:8.0f}                  "
                         f"{r['experiment_cm1']:8.0f}")
        else:
            lines.append(f"{r['band']:28s} {r['md_cm1']:8.0f}     {r['harmonic_cm1']:8.0f} "
                         f"({r['md_minus_harmonic']:+5.0f})        {r['experiment_cm1']:8.0f} "
                         f"({r['md_minus_experiment']:+5.0f})")
    return "\n".join(lines)


def run_demo(output_dir: Path, molecule: str = "water", nvt_steps: int | None = None, nve_steps: int | None = None,
             engine: str = "jlcdm", model: str | None = None, grid_level: int | None = None, log=None,
             timeout_s: float = 24 * 3600.0, forces: str = DEFAULT_FORCE_ROUTE, mpi_ranks: int = 1,
             progress_every_s: float = 15.0) -> dict[str, Path]:
    """Run NVT then NVE (from the NVT checkpoint) and the IR spectrum; returns the output files.
    ``mpi_ranks`` > 1: the driver under ``mpiexec -n mpi_ranks`` with one thread per rank (jlcdm only)."""
    if molecule not in MOLECULES:
        raise ValueError(f"unknown demo molecule {molecule!r}; choose from {', '.join(MOLECULES)}")
    if mpi_ranks > 1 and engine != "jlcdm":
        raise ValueError(f"--mpi-ranks: the {engine} engine runs on one process")
    setup = MOLECULES[molecule]
    nvt_steps = setup.nvt_steps if nvt_steps is None else nvt_steps
    nve_steps = setup.nve_steps if nve_steps is None else nve_steps
    model = model or molecule
    log = log or sys.stderr
    grid_level = setup.grid_level if grid_level is None else grid_level
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    inputs = packaged_inputs(molecule)
    shutil.copy(inputs / f"{molecule}.xyz", output_dir / f"{molecule}.xyz")
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
    grid = f", grid level {grid_level}" if grid_level is not None else ""
    print(f"demo: {molecule}, engine {engine} (forces {forces}{ranks}{grid}), model {model}, outputs in "
          f"{output_dir}/", file=log, flush=True)
    for stage, steps, start in (("nvt", nvt_steps, "300 K (SVR thermostat)"), ("nve", nve_steps, "from nvt.chk")):
        print(f"demo: {stage.upper()} {start}, {steps} steps of {TIMESTEP_FS} fs (i-PI + ipi-jlcdm driver) ...",
              file=log, flush=True)
        progress = StepProgress(output_dir / f"{stage}.out", stage.upper(), steps, log, progress_every_s)
        run_ipi_with_driver(output_dir, f"{stage}.xml", address, cmd, timeout_s, tag=stage, driver_env=driver_env,
                            progress=progress)
        print(f"demo: {stage.upper()} done ({time.perf_counter() - t0:.0f} s in all)", file=log, flush=True)
    props = read_properties(output_dir / "nve.out")
    energy = conservation(props)
    summary = [f"NVE conserved quantity: change {energy['change_meV']:+.2f} meV over {len(props) - 1} steps "
               f"({(len(props) - 1) * TIMESTEP_FS / 1000:.2f} ps), peak to peak {energy['peak_to_peak_meV']:.2f} meV, "
               f"drift {energy['slope_meV_per_ps']:+.1f} meV/ps (potential energy range "
               f"{energy['potential_range_meV']:.0f} meV)"]
    series = read_dipole_file(output_dir / "nve.dip_0")
    if setup.molecular_frame:
        series = in_molecular_frame(series, output_dir / "nve.pos_0.xyz")
    spectrum = compute_ir_spectrum([series], TIMESTEP_FS)
    prefix = output_dir / f"{molecule}_ir"
    peaks = spectrum.peaks()
    write_csv(spectrum, f"{prefix}.csv", "; qcf harmonic at 300 K, window hann"
              + ("; dipoles in the molecular frame" if setup.molecular_frame else ""))
    write_peaks(peaks, f"{prefix}_peaks.csv")
    reference = read_reference(inputs / setup.harmonic_file) if setup.harmonic_file else None
    others = [(setup.shipped_label, read_csv(inputs / setup.shipped_spectrum))] if setup.shipped_spectrum else None
    rows = band_table(peaks, reference[0], setup.bands) if reference is not None and setup.bands else []
    duration_fs = (len(series.dipoles) - 1) * TIMESTEP_FS
    length = f"{duration_fs / 1000:.2f} ps" if duration_fs >= 1000 else f"{duration_fs:.0f} fs"
    title = (f"{molecule}, {engine} engine, 300 K: {length} NVE"
             + (" (demo length: far too short for line shapes)" if duration_fs < 200 else ""))
    plot_spectrum(spectrum, f"{prefix}.png", title=title, reference=reference, others=others,
                  label=f"this run ({engine})", reference_label="harmonic, PySCF PBE/def2-SVP (km/mol, scaled)",
                  markers=[(f"{label} {value:.0f}", value) for label, value in setup.bands],
                  annotations=[(r["band"], r["md_cm1"]) for r in rows if r["md_cm1"] is not None])
    log_summary(spectrum, peaks, log)
    if rows:
        summary.append(format_band_table(rows))
        summary.append(f"(experiment: {setup.experiment_source}; harmonic: PySCF's analytic Hessian at the model's "
                       "level of theory; MD band positions carry the anharmonicity of 300 K classical motion and the "
                       "~+20 cm^-1 shift of 0.5 fs velocity Verlet at 3700 cm^-1)")
    outputs = {"nvt properties": output_dir / "nvt.out", "nve properties": output_dir / "nve.out",
               "trajectory": output_dir / "nve.pos_0.xyz", "dipoles (e*bohr)": output_dir / "nve.dip_0",
               "checkpoint": output_dir / "nve.chk", "IR spectrum (csv)": Path(f"{prefix}.csv"),
               "IR peaks (csv)": Path(f"{prefix}_peaks.csv"), "IR plot (png)": Path(f"{prefix}.png")}
    print(f"demo: finished in {time.perf_counter() - t0:.0f} s.", file=log)
    for line in summary:
        print(line, file=log)
    print("Outputs:", file=log)
    for label, path in outputs.items():
        print(f"  {label:20s} {path}", file=log)
    return outputs
