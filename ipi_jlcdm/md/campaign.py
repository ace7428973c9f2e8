"""A resumable multi-segment i-PI campaign for IR spectra: NVT equilibration, then NVE segments, each
re-thermalized by a short NVT from the end of the previous one (inputs/uracil/README.md protocol).

    ipi-jlcdm campaign RUN_DIR --temperature 300 [--model uracil] [--segments 4]
                                [--nve-steps 1000] [--first-nvt-steps 400] [--nvt-steps 100]
    ipi-jlcdm campaign RUN_DIR --temperature 300 --branch --segment 1 3  # branched segments 1, 3
    ipi-jlcdm campaign SCF_DIR --engine scf --from-checkpoint RUN_DIR/seg0/nvt.chk --segments 1 \
                                --nve-steps 400   # the AIMD reference NVE from the same state
    ipi-jlcdm campaign NEW_DIR --model NEW.npz --from-checkpoint RUN_DIR/seg0/nvt.chk \
                                --first-nvt-steps 20 --branch --segment 0   # a new model, re-thermalized
    ipi-jlcdm campaign RUN_DIR ... --mpi-ranks 2   # the driver under mpiexec -n 2
    ipi-jlcdm campaign RUN_DIR --report      # summary + IR spectrum of the finished segments
    ipi-jlcdm campaign RUN_300K --report --compare RUN_100K   # and the 100 K spectrum in its plot
    ipi-jlcdm campaign RUN_DIR --report --first-steps 141   # energy statistics over equal windows

Chained (default): segment K starts from the end of segment K-1, so the segments run one after
another. Branched (``--branch``): segment K >= 1 starts from the end of segment 0's NVT stage with
velocities drawn afresh from Maxwell-Boltzmann (seed 1000 + K), then its own NVT stage and NVE; the
segments are independent, so ``--segment K`` runs one of them and several processes can run
different segments side by side (one core each) once segment 0's NVT stage exists.

Every i-PI run writes a checkpoint each step, so killing the campaign loses at most one step:
rerunning the same command continues from the last checkpoint (i-PI appends to the trajectories).
Layout: RUN_DIR/segK/{nvt,nve}.{out,pos_0.xyz,dip_0,dip_one_shot_0,rel_0,chk}. The report gives, over
all NVE steps, the largest per-step dipole change (D), the number of SCF fallbacks, the residual and
gap ranges; per segment the conserved-energy drift and the median step time (with the hours still
to go to --nve-steps); and the IR spectrum (``ipi-jlcdm ir`` on all nve.dip_0, the served dipole;
and on nve.dip_one_shot_0, P_out's, for comparison).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ipi_jlcdm.analysis.ir import read_extras_table
from ipi_jlcdm.electronic.oneshot import DEFAULT_FORCE_ROUTE
from ipi_jlcdm.geometry_io import IPI_XYZ_COMMENT, format_xyz_frame, read_xyz, symbol_to_z
from ipi_jlcdm.md.demo import TIMESTEP_FS, packaged_inputs
from ipi_jlcdm.md.ipi_run import configure_input, driver_command, run_ipi_with_driver, set_socket
from ipi_jlcdm.md.md_properties import conservation, read_properties
from ipi_jlcdm.units import DEBYE_PER_AU

#: The driver's per-step reliability extras, one line per step: gap (Ha), residual, |d mu| (e bohr), fallback.
RELIABILITY_KEYS = ("gap", "residual", "dipole_change", "fallback")
#: A step line of the driver's log ("step 15 (bead 0): E = ... Ha, ..., 36.6 s"): its wall time (s).
DRIVER_STEP_TIME = re.compile(r"^step \d+ \(bead \d+\): .*, ([0-9.]+) s$", re.MULTILINE)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def steps_done(properties: Path) -> int:
    """Number of the last step written to an i-PI properties file (-1 if none)."""
    if not properties.is_file():
        return -1
    rows = [line.split() for line in properties.read_text().splitlines() if line.strip() and line[0] != "#"]
    return int(float(rows[-1][0])) if rows else -1


def write_stage_input(xml: Path, start: Path, temperature: float, one_shot_dipole: bool = True) -> None:
    """Point an i-PI input at its starting state (an XYZ file, or a checkpoint whose positions and
    momenta it continues), set the temperature, and add the reliability trajectory (and that of
    P_out's dipole, an extra of the one-shot engine only)."""
    tree = ET.parse(xml)
    root = tree.getroot()
    initialize = root.find("system/initialize")
    file_node = initialize.find("file")
    file_node.text = f" {start.name} "
    if start.suffix == ".chk":
        file_node.attrib.clear()
        file_node.set("mode", "chk")
        for velocities in initialize.findall("velocities"):
            initialize.remove(velocities)
    for node in list(root.iter("temperature")) + list(initialize.iter("velocities")):
        node.text = f" {temperature:g} "
    ET.SubElement(root.find("output"), "trajectory", filename="rel", stride="1",
                  extra_type=",".join(RELIABILITY_KEYS)).text = " extras "
    if one_shot_dipole:
        ET.SubElement(root.find("output"), "trajectory", filename="dip_one_shot", stride="1",
                      extra_type="dipole_one_shot").text = " extras "
    tree.write(xml)


def stage_length(xml: Path, default: int) -> int:
    """NVE steps a stage was started for (``total_steps`` of its i-PI input), else ``default``."""
    if xml.is_file():
        node = ET.parse(xml).getroot().find("total_steps")
        if node is not None and node.text:
            return int(node.text)
    return default


def resume_input(checkpoint: Path, xml: Path, address: str, total_steps: int | None = None,
                 port: int | None = None) -> None:
    """Write the i-PI input that continues from ``checkpoint`` (a complete i-PI input at its last
    step) on this campaign's socket: the checkpoint names the socket of the run that wrote it,
    whose file may be stale (a killed run) and which this campaign's driver does not use.
    ``total_steps``: the stage's length now (a longer --nve-steps extends a finished stage)."""
    tree = ET.parse(checkpoint)
    set_socket(tree.getroot(), address, port)
    if total_steps is not None:  # i-PI leaves it out of checkpoints when it is its default (1000)
        node = tree.getroot().find("total_steps")
        if node is None:
            node = ET.SubElement(tree.getroot(), "total_steps")
        node.text = f" {total_steps} "
    tree.write(xml)


def checkpoint_geometry(checkpoint: Path) -> tuple[list[str], np.ndarray]:
    """Atom names and positions (natoms, 3) in bohr of bead 0 in an i-PI checkpoint."""
    beads = ET.parse(checkpoint).getroot().find("system/beads")
    natoms = int(beads.get("natoms"))
    def tokens(tag: str) -> list[str]:  # i-PI writes arrays as "[ a, b, ... ]"
        return beads.find(tag).text.replace("[", " ").replace("]", " ").replace(",", " ").split()

    q = np.array(tokens("q"), float)
    names = tokens("names")
    return names, q[:3 * natoms].reshape(natoms, 3)


def write_branch_start(checkpoint: Path, xyz: Path) -> None:
    """An XYZ file (angstrom, i-PI's comment line) with the positions of ``checkpoint``: a branched
    segment starts there with fresh thermal velocities."""
    names, coords = checkpoint_geometry(checkpoint)
    atomic_numbers = np.array([symbol_to_z(name) for name in names])
    comment = f"{IPI_XYZ_COMMENT} (from {checkpoint.parent.name}/{checkpoint.name})"
    xyz.write_text(format_xyz_frame(atomic_numbers, coords, comment))


def write_xyz_start(structure: Path, xyz: Path) -> None:
    """The first frame of ``structure`` (any XYZ that ``read_xyz`` reads: angstrom, or the units of
    an i-PI comment tag) as an i-PI start file: i-PI reads positions in bohr unless the comment line
    names their unit, so a plain XYZ copied as it is would start from a molecule shrunk 1.9 times."""
    frame = read_xyz(structure)[0]
    comment = f"{IPI_XYZ_COMMENT} (frame 0 of {structure.name})"
    xyz.write_text(format_xyz_frame(frame.atomic_numbers, frame.coords_bohr, comment))


def run_stage(seg: Path, stage: str, steps: int, template: Path, start: Path, temperature: float, seed: int,
              address: str, driver: list[str] | None, one_shot_dipole: bool = True, port: int | None = None) -> None:
    """Run (or continue) one i-PI stage of ``steps`` steps in ``seg`` (``driver`` None: drivers connect
    from elsewhere to the inet socket ``address``:``port``)."""
    if steps_done(seg / f"{stage}.out") >= steps:
        return
    checkpoint = seg / f"{stage}.chk"
    attempt = len(list(seg.glob(f"{stage}*.ipi.log")))
    if checkpoint.is_file():  # continue: the checkpoint is a complete i-PI input at the last step
        xml = seg / f"{stage}_resume.xml"
        resume_input(checkpoint, xml, address, steps, port)
        log(f"{seg.name}/{stage}: continuing from step {steps_done(seg / f'{stage}.out')}")
    else:
        xml = seg / f"{stage}.xml"
        configure_input(template, xml, steps, address, {"seed": str(seed)}, port)
        write_stage_input(xml, start, temperature, one_shot_dipole)
        log(f"{seg.name}/{stage}: {steps} steps at {temperature:g} K")
    run_ipi_with_driver(seg, xml.name, address, driver, tag=f"{stage}{attempt}")


def claim_segment(seg: Path) -> None:
    """Mark ``seg`` as worked on by this process; refuse if another live process holds it (two i-PI
    runs appending to the same files would corrupt the segment)."""
    lock = seg / "campaign.pid"
    if lock.is_file():
        pid = int(lock.read_text().split()[0])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            pass  # a killed campaign's stale claim
        else:
            if pid != os.getpid():
                raise SystemExit(f"{seg} is being run by process {pid} (remove {lock} if that is wrong)")
    lock.write_text(f"{os.getpid()}\n")


def run_campaign(args) -> None:
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    inputs = packaged_inputs()
    address = f"campaign_{os.getpid()}" if args.port is None else (args.host or socket.gethostname())
    extra = (["--forces", args.forces, "--dipole", args.dipole]
             + (["--anderson-steps", str(args.anderson_steps)] if args.anderson_steps else [])
             + (["--grid-level", str(args.grid_level)] if args.grid_level else []))
    model = str(Path(args.model).resolve()) if Path(args.model).is_file() else args.model  # drivers run in segK/
    if args.engine == "scf":  # the atoms (i-PI's order) come from the starting structure, not a model
        structure = Path(args.structure or inputs / "uracil.xyz").resolve()
        extra = ["--structure", str(structure)] + (["--grid-level", str(args.grid_level)] if args.grid_level else [])
        model = None
    driver = driver_command(address, args.engine, model, extra, mpi_ranks=args.mpi_ranks, port=args.port)
    if args.external_drivers:
        log("i-PI waits for drivers on " + (f"{address}:{args.port}" if args.port else f"unix socket {address}")
            + "; start them with: " + " ".join(driver[driver.index("-m") + 1:]).replace("ipi_jlcdm.cli.main",
                                                                                     "ipi-jlcdm"))
        driver = None
    one_shot = args.engine == "jlcdm"
    segments = args.segment if args.segment is not None else range(args.segments)
    for k in segments:
        seg = run_dir / f"seg{k}"
        seg.mkdir(exist_ok=True)
        claim_segment(seg)
        run_segment(args, run_dir, seg, k, inputs, address, driver, one_shot)
        log(f"{seg.name}: done")
        (seg / "campaign.pid").unlink()


def run_segment(args, run_dir: Path, seg: Path, k: int, inputs: Path, address: str, driver: list[str] | None,
                one_shot: bool) -> None:
    """Run (or continue) segment ``k``: its NVT stage from its start, then NVE (on the inet socket
    ``address``:``args.port`` when a port is given)."""
    port = getattr(args, "port", None)
    if k == 0 and args.from_checkpoint:  # from another run's state (same positions, momenta)
        start = seg / "start.chk"
        if not start.exists():
            shutil.copy(args.from_checkpoint, start)
        if args.first_nvt_steps == 0:  # NVE at once: the same initial state for another engine
            run_stage(seg, "nve", args.nve_steps, inputs / "nve.xml", start, args.temperature, 2000, address,
                      driver, one_shot, port)
            return
        nvt_steps = args.first_nvt_steps  # a short re-thermalization on this model's surface first
    elif k == 0:
        start = seg / "start.xyz"
        if not start.exists():
            write_xyz_start(Path(args.structure) if args.structure else inputs / "uracil.xyz", start)
        nvt_steps = args.first_nvt_steps
    elif args.branch:
        start = seg / "start.xyz"
        if not start.exists():
            origin = run_dir / "seg0" / "nvt.chk"
            if steps_done(run_dir / "seg0" / "nvt.out") < args.first_nvt_steps:
                raise SystemExit(f"--branch: segment {k} starts from the end of seg0's NVT stage, which "
                                 f"has not finished ({origin}); run segment 0 first")
            write_branch_start(origin, start)
        nvt_steps = args.nvt_steps
    else:
        start = seg / "start.chk"
        if not start.exists():
            shutil.copy(run_dir / f"seg{k - 1}" / "nve.chk", start)
        nvt_steps = args.nvt_steps
    run_stage(seg, "nvt", nvt_steps, inputs / "nvt.xml", start, args.temperature, 1000 + k, address, driver,
              one_shot, port)
    run_stage(seg, "nve", args.nve_steps, inputs / "nve.xml", seg / "nvt.chk", args.temperature, 2000 + k,
              address, driver, one_shot, port)


def median_step_time(seg: Path, stage: str) -> float | None:
    """Median wall time per step (s) in the driver logs of a stage (each run of it: nve0, nve1, ...),
    None without any; the median is insensitive to each run's slow first step (start-up) and to
    steps that spanned a pause."""
    times = [float(t) for log in sorted(seg.glob(f"{stage}*.driver.log"))
             for t in DRIVER_STEP_TIME.findall(log.read_text(errors="replace"))]
    return float(np.median(times)) if times else None


def read_reliability(path: Path) -> np.ndarray:
    """(nsteps, 4) rows of RELIABILITY_KEYS from an i-PI extras file (last values of repeated steps)."""
    return read_extras_table(path)[1].reshape(-1, len(RELIABILITY_KEYS))


def report(args) -> None:
    run_dir = Path(args.run_dir)
    segments = sorted(p for p in run_dir.glob("seg*") if (p / "nve.out").is_file())
    lines, dip_files, left_out = [], [], []
    min_ir_frames = int(np.ceil(args.max_lag_fs / TIMESTEP_FS)) + 2  # a block must outlast the maximum lag
    all_changes, fallbacks, residuals, gaps, n_frames, n_steps = [], 0, [], [], 0, 0
    for seg in segments:
        rel = read_reliability(seg / "nve.rel_0") if (seg / "nve.rel_0").is_file() else np.zeros((0, 4))
        props = read_properties(seg / "nve.out")
        if args.first_steps is not None:  # equal windows of runs from the same state
            props = props[:args.first_steps]
        all_changes.extend(rel[1:, 2] * DEBYE_PER_AU)  # the first step's change is from the NVT's last step
        fallbacks += int(rel[:, 3].sum())
        residuals += list(rel[:, 1])
        gaps += list(rel[:, 0])
        n_frames += len(props)
        n_steps += len(props) - 1  # a segment's frames 0..N span N steps
        if len(props) >= min_ir_frames:
            dip_files.append(str(seg / "nve.dip_0"))
        else:
            left_out.append(seg.name)
        c = conservation(props)
        line = (f"{seg.name}: {len(props)} NVE frames ({(len(props) - 1) * TIMESTEP_FS / 1000:.3f} ps), "
                f"mean T {props[:, 3].mean():.0f} K, conserved energy: change {c['change_meV']:+.1f} meV, "
                f"peak to peak {c['peak_to_peak_meV']:.1f} meV (potential energy range "
                f"{c['potential_range_meV']:.0f} meV), fitted drift {c['slope_meV_per_ps']:+.1f} meV/ps")
        step_s = median_step_time(seg, "nve")
        if step_s is not None:
            line += f"; {step_s:.1f} s per step (median, driver logs)"
            length = stage_length(seg / "nve.xml", args.nve_steps)
            to_go = length - (len(props) - 1) if args.first_steps is None else 0  # props count the start
            if to_go > 0:
                line += f", {to_go} steps to its {length}: {to_go * step_s / 3600:.1f} h at that pace"
        lines.append(line)
    summary = [f"NVE total: {n_frames} frames, {n_steps} steps = {n_steps * TIMESTEP_FS / 1000:.3f} ps "
               f"in {len(segments)} segments"]
    if all_changes:
        summary.append(f"largest per-step dipole change: {max(all_changes):.4f} D "
                       f"(99th percentile {np.percentile(all_changes, 99):.4f} D)")
    summary.append(f"SCF fallbacks: {fallbacks}")
    if residuals:
        summary.append(f"residual |rho_out - rho_in|/N_e: {100 * min(residuals):.2f}-{100 * max(residuals):.2f} %; "
                       f"gap {min(gaps) * 27.211386:.2f}-{max(gaps) * 27.211386:.2f} eV")
    if left_out:
        summary.append(f"left out of the IR spectrum (fewer than {min_ir_frames} NVE frames, the "
                       f"{args.max_lag_fs:g} fs maximum lag): {', '.join(left_out)}")
    text = "\n".join(lines + summary)
    print(text)
    (run_dir / "report.txt").write_text(text + "\n")
    if dip_files:
        from ipi_jlcdm.cli.main import main as cli

        ir_options = ["--timestep-fs", str(TIMESTEP_FS), "--temperature", f"{args.temperature:g}",
                      "--max-lag-fs", str(args.max_lag_fs)]
        compare = [str(csv) for other in args.compare or [] for csv in sorted(Path(other).glob("ir_*K.csv"))]
        cli(["ir", *dip_files, *ir_options, "--label", f"{args.temperature:g} K", "-o",
             str(run_dir / f"ir_{args.temperature:g}K")] + (["--compare", *compare] if compare else []))
        one_shot = [f.replace("nve.dip_0", "nve.dip_one_shot_0") for f in dip_files]
        if all(Path(f).is_file() for f in one_shot):
            cli(["ir", *one_shot, *ir_options, "-o", str(run_dir / f"ir_{args.temperature:g}K_one_shot")])


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``ipi-jlcdm campaign``."""
    p.add_argument("run_dir", help="campaign folder (created; rerunning the command resumes it)")
    p.add_argument("--temperature", type=float, default=300.0, help="kelvin (default 300)")
    p.add_argument("--model", default="uracil")
    p.add_argument("--engine", choices=("jlcdm", "scf"), default="jlcdm",
                   help="driver engine: the one-shot JLCDM (default) or full SCF (the AIMD reference)")
    p.add_argument("--from-checkpoint", default=None, metavar="CHK",
                   help="segment 0 starts from this i-PI checkpoint (e.g. another campaign's seg0/nvt.chk): "
                        "NVE at once (the same initial state for another engine), or first --first-nvt-steps "
                        "of NVT if given (a state equilibrated with another model, re-thermalized)")
    p.add_argument("--forces", default=DEFAULT_FORCE_ROUTE,
                   help=f"force route of the driver (default {DEFAULT_FORCE_ROUTE})")
    p.add_argument("--dipole", default="anderson", help="dipole route of the driver (default anderson)")
    p.add_argument("--mpi-ranks", type=int, default=1,
                   help="run the driver under mpiexec -n N, one thread per rank (jlcdm engine; default 1)")
    p.add_argument("--anderson-steps", type=int, default=None,
                   help="Fock builds of the driver's 'anderson' dipole (default: the driver's default)")
    p.add_argument("--grid-level", type=int, default=None)
    p.add_argument("--port", type=int, default=None,
                   help="i-PI listens on an inet socket at this port (default: a unix socket): drivers may run on "
                   "other nodes")
    p.add_argument("--host", default=None, help="with --port: the host name drivers connect to (default this host)")
    p.add_argument("--external-drivers", action="store_true",
                   help="start no driver: i-PI waits for drivers started elsewhere (the command is printed)")
    p.add_argument("--structure", default=None, help="starting XYZ (default the packaged uracil.xyz)")
    p.add_argument("--segments", type=int, default=4)
    p.add_argument("--first-nvt-steps", type=int, default=None,
                   help="NVT steps before the first segment (default 400 = 200 fs; 0 with --from-checkpoint)")
    p.add_argument("--nvt-steps", type=int, default=100, help="NVT steps between segments (50 fs)")
    p.add_argument("--nve-steps", type=int, default=1000, help="NVE steps per segment (0.5 ps)")
    p.add_argument("--branch", action="store_true",
                   help="segments >= 1 start from seg0's NVT end with fresh velocities (independent, parallel)")
    p.add_argument("--segment", type=int, nargs="+", default=None, metavar="K",
                   help="run only these segments, in this order (with --branch, K >= 1 needs seg0's NVT "
                        "stage finished)")
    p.add_argument("--max-lag-fs", type=float, default=250.0, help="IR: maximum correlation lag (fs)")
    p.add_argument("--report", action="store_true", help="only summarize finished segments and compute the IR")
    p.add_argument("--first-steps", type=int, default=None, metavar="N",
                   help="report: conserved-energy statistics over the first N NVE steps of each segment only "
                        "(compare runs from the same state over the same window); the IR uses every step")
    p.add_argument("--compare", nargs="+", default=None, metavar="RUN_DIR",
                   help="report: draw the IR spectra of these (reported) campaigns in the same plot, e.g. 100 K")


def run(args: argparse.Namespace) -> int:
    """Run (or with --report only summarize) the campaign of ``add_arguments``' options."""
    if args.first_nvt_steps is None:
        args.first_nvt_steps = 0 if args.from_checkpoint else 400
    if args.segment is not None and any(k > 0 for k in args.segment) and not args.branch:
        raise ValueError("--segment K > 0 needs --branch (chained segments must run in order)")
    if args.mpi_ranks > 1:
        if args.engine == "scf":
            raise ValueError("--mpi-ranks: the scf engine runs on one process")
        os.environ["OMP_NUM_THREADS"] = "1"  # one thread per rank (the driver inherits this environment)
    if args.report:
        report(args)
    else:
        run_campaign(args)
        if args.segment is None:
            report(args)
    return 0

