"""Harmonic frequencies and IR intensities of an engine against PySCF's analytic Hessian.

    ipi-jlcdm harmonic --model MODEL --structure MOL.xyz -o DIR [--engine jlcdm|scf]

1. Minimum: the model's level of theory, BFGS on SCF energies and analytic gradients from the
   structure (saved as DIR/minimum.xyz and reused on a rerun).
2. Reference: PySCF's analytic Hessian there -> normal modes q_k (mass-weighted, amu^1/2 bohr) and
   frequencies; IR intensities from SCF dipole derivatives along each mode (central differences).
3. Engine: forces and dipoles at R0 +- h q_k (the one-shot engine, or with ``--engine scf`` SCF
   itself: the protocol's own error); its Hessian in the reference mode basis K_jk = -q_j . dF/dq_k
   (symmetrized) is diagonalized; each of its modes is matched to the reference mode it overlaps most.
   Intensities from its dipole derivatives.
Intensities: I = 42.2561 |d mu / d Q|^2 km/mol with d mu / d Q in Debye / (angstrom amu^1/2).
Every stage is saved as it completes (DIR/minimum.xyz, reference_hessian.npz, fd_scf.npz,
fd_model_<hash>_<forces>.npz (route anderson: anderson<steps>; engine scf: fd_model_scf_...),
fd_model_<hash>_dipole_<route>.npz): a rerun resumes, a rerun with another model reuses the SCF
parts, and one with another dipole route recomputes only the dipoles.
Output: DIR/harmonic.md (table + summary), DIR/harmonic.csv and DIR/harmonic.png (stick spectra).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from pyscf.data import elements, nist
from pyscf.hessian import thermo

from ipi_jlcdm.electronic.engines import make_engine, route_options
from ipi_jlcdm.electronic.oneshot import ENGINE_REVISION
from ipi_jlcdm.electronic.scf_engine import run_scf
from ipi_jlcdm.geometry_io import format_xyz_frame, read_frames
from ipi_jlcdm.jl.model import JLCDModel
from ipi_jlcdm.training.sampling import NormalModes, harmonic_samples, optimize, xyz_text
from ipi_jlcdm.units import ANGSTROM_PER_BOHR, DEBYE_PER_AU

#: km/mol per (Debye / (angstrom amu^1/2))^2 (the usual double-harmonic IR intensity factor).
KM_PER_MOL_PER_D2_A2_AMU = 42.2561
#: Largest Cartesian displacement of any atom in a finite-difference step (bohr).
DEFAULT_STEP_BOHR = 0.01


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def reference_modes(level, atomic_numbers, coords_bohr):
    """PySCF analytic Hessian at the geometry: (frequencies cm^-1 (nmode,), modes (nmode, natm, 3)
    in bohr per amu^1/2, the converged SCF density matrix)."""
    mol = level.make_mol(atomic_numbers, coords_bohr)
    mf = level.make_rks(mol)
    mf.conv_tol = 1e-11
    mf.kernel()
    hess = mf.Hessian()
    hess.verbose = 0
    analysis = thermo.harmonic_analysis(mol, hess.kernel(), imaginary_freq=False)
    return np.asarray(analysis["freq_wavenumber"]), np.asarray(analysis["norm_mode"]), mf.make_rdm1()


def hessian_to_wavenumbers(force_constants: np.ndarray) -> np.ndarray:
    """cm^-1 from mass-weighted force constants (Ha / (bohr^2 amu)), negative for imaginary modes,
    with PySCF's conversion (pyscf.hessian.thermo)."""
    au2hz = (nist.HARTREE2J / (nist.ATOMIC_MASS * nist.BOHR_SI ** 2)) ** 0.5 / (2 * np.pi)
    return np.sign(force_constants) * np.sqrt(np.abs(force_constants)) * au2hz / nist.LIGHT_SPEED_SI * 1e-2


def intensities_km_per_mol(dipole_derivatives_au: np.ndarray) -> np.ndarray:
    """(nmode, 3) d mu / d q in e bohr / (bohr amu^1/2) = e / amu^1/2 -> km/mol."""
    d_per_a = dipole_derivatives_au * DEBYE_PER_AU / ANGSTROM_PER_BOHR
    return KM_PER_MOL_PER_D2_A2_AMU * np.einsum("kx,kx->k", d_per_a, d_per_a)


def central_difference(values: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """d value / d q_k (nmode, ...) from values (nmode, 2, ...) at R0 + steps[k] q_k and R0 - steps[k] q_k
    (forces (nmode, 2, natm, 3), dipoles (nmode, 2, 3)); steps (nmode,) amu^1/2 bohr."""
    return (values[:, 0] - values[:, 1]) / (2 * steps.reshape(-1, *[1] * (values.ndim - 2)))


def hessian_in_mode_basis(modes: np.ndarray, forces: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """K_jk = -q_j . dF/dq_k (nmode, nmode), Ha / (bohr^2 amu), by central differences of the forces
    (nmode, 2, natm, 3) at R0 +- steps[k] q_k, symmetrized."""
    dforce = central_difference(forces, steps)  # (nmode, natm, 3)
    k_fd = -np.einsum("jax,kax->jk", modes, dforce)
    return 0.5 * (k_fd + k_fd.T)


def close_pair_couplings(k_fd: np.ndarray, freq_ref: np.ndarray, min_wavenumber: float, max_gap: float = 40.0
                         ) -> list[tuple[int, int, float, float]]:
    """For neighbouring reference modes above ``min_wavenumber`` less than ``max_gap`` cm^-1 apart:
    (j, k, coupling, rotation) with the off-diagonal element of K in the reference basis as a
    frequency, K_jk / (omega_j + omega_k) in cm^-1 (zero for the exact Hessian), and the angle t
    (degrees) by which it turns the pair's eigenvectors (the lower one is cos t q_j + sin t q_k in
    the 2x2 block): modes this close mix at couplings of a few cm^-1, which moves intensity
    between them."""
    unit = hessian_to_wavenumbers(np.array([1.0]))[0]  # cm^-1 of a force constant of 1
    pairs = []
    for j in range(len(freq_ref) - 1):
        k = j + 1
        if freq_ref[j] > min_wavenumber and freq_ref[k] - freq_ref[j] < max_gap:
            omega = unit * np.sqrt(np.abs([k_fd[j, j], k_fd[k, k]]))
            coupling = k_fd[j, k] * unit ** 2 / omega.sum()
            # the lower eigenvector of the 2x2 block is (cos t, sin t) in the reference basis
            rotation = 0.5 * np.degrees(np.arctan2(-2 * k_fd[j, k], k_fd[k, k] - k_fd[j, j]))
            pairs.append((j, k, float(coupling), float(rotation)))
    return pairs


def mode_steps(modes: np.ndarray, step_bohr: float = DEFAULT_STEP_BOHR) -> np.ndarray:
    """Finite-difference step per mode (nmode,), amu^1/2 bohr: the largest atomic displacement of
    R0 +- step q_k is ``step_bohr``."""
    return step_bohr / np.abs(modes).reshape(len(modes), -1).max(axis=1)


def intensities_along_matched_modes(vectors: np.ndarray, overlap: np.ndarray, match: np.ndarray,
                                    dipole_derivatives_au: np.ndarray) -> np.ndarray:
    """IR intensities (km/mol, (nmode,), NaN where unmatched) along the eigenvectors of a Hessian in
    the reference mode basis (``modes_from_hessian``'s vectors, overlap, match), per reference mode,
    from dipole derivatives along the reference modes (nmode, 3)."""
    rotated = vectors.T @ dipole_derivatives_au
    out = np.full(len(overlap), np.nan)
    for j, k in enumerate(match):
        if vectors[k, j] ** 2 == overlap[k]:
            out[k] = intensities_km_per_mol(rotated[j:j + 1])[0]
    return out


def coupling_difference_by_atom(modes: np.ndarray, forces: np.ndarray, reference_forces: np.ndarray,
                                steps: np.ndarray, j: int, k: int) -> np.ndarray:
    """Where the model's off-diagonal Hessian element K_jk differs from one built the same way from
    reference (SCF) forces: per-atom terms (natm,) of K_jk(model) - K_jk(reference), Ha / (bohr^2 amu),
    summing to that difference. Forces (nmode, 2, natm, 3) at R0 +- steps[k] q_k, as in
    ``hessian_in_mode_basis`` (symmetrized: half of q_j . dF/dq_k and half of q_k . dF/dq_j)."""
    ddf = central_difference(forces - reference_forces, steps)
    return -0.5 * (np.einsum("ax,ax->a", modes[j], ddf[k]) + np.einsum("ax,ax->a", modes[k], ddf[j]))


def modes_from_forces(modes: np.ndarray, forces: np.ndarray, steps: np.ndarray):
    """Harmonic analysis from forces (nmode, 2, natm, 3) Ha/bohr at R0 +- steps[k] q_k (modes (nmode,
    natm, 3), steps (nmode,) amu^1/2 bohr): ``modes_from_hessian`` of ``hessian_in_mode_basis``."""
    return modes_from_hessian(hessian_in_mode_basis(modes, forces, steps))


def modes_from_hessian(k_fd: np.ndarray):
    """Diagonalize the Hessian in the reference mode basis (nmode, nmode). Returns, per reference mode
    k, the frequency (cm^-1) of the eigenvector that overlaps it most and that overlap (nmode,), plus
    the eigenvectors (nmode, nmode) and, per eigenvector, the reference mode it matches (nmode,)."""
    nmode = len(k_fd)
    force_constants, vectors = np.linalg.eigh(k_fd)
    freq_sorted = hessian_to_wavenumbers(force_constants)
    match = np.argmax(vectors ** 2, axis=0)  # eigenvector -> reference mode of largest weight
    freq, overlap = np.full(nmode, np.nan), np.zeros(nmode)
    for j, k in enumerate(match):
        if vectors[k, j] ** 2 > overlap[k]:
            freq[k], overlap[k] = freq_sorted[j], vectors[k, j] ** 2
    return freq, overlap, vectors, match


def hessian_in_reference_modes(hessian: np.ndarray, modes: np.ndarray) -> np.ndarray:
    """K_jk = q_j . H . q_k (nmode, nmode), Ha / (bohr^2 amu), for the Cartesian Hessian (natm, natm,
    3, 3) and the reference modes (nmode, natm, 3) in bohr per amu^1/2; symmetrized."""
    k = np.einsum("jax,abxy,kby->jk", modes, hessian, modes)
    return 0.5 * (k + k.T)


def variant_table(k_variant: np.ndarray, freq_ref: np.ndarray, dmu_ref: np.ndarray, min_wavenumber: float
                  ) -> tuple[list[str], list[tuple[int, int, float, float]]]:
    """Markdown rows (reference vs variant frequency, overlap, intensity along the reference modes
    and along the variant's modes from the same dipole derivatives) and the close-pair couplings."""
    freq_var, overlap, vectors, match = modes_from_hessian(k_variant)
    int_ref = intensities_km_per_mol(dmu_ref)
    int_var = intensities_along_matched_modes(vectors, overlap, match, dmu_ref)
    rows = ["| mode | reference (cm^-1) | variant (cm^-1) | diff (cm^-1) | overlap | I ref (km/mol) | "
            "I along variant mode (km/mol) | ratio |", "|---|---|---|---|---|---|---|---|"]
    for k in np.flatnonzero(freq_ref > min_wavenumber):
        ratio = int_var[k] / int_ref[k] if int_ref[k] > 1e-3 else np.nan
        rows.append(f"| {k + 1} | {freq_ref[k]:.1f} | {freq_var[k]:.1f} | {freq_var[k] - freq_ref[k]:+.1f} | "
                    f"{overlap[k]:.3f} | {int_ref[k]:.1f} | {int_var[k]:.1f} | {ratio:.2f} |")
    return rows, close_pair_couplings(k_variant, freq_ref, min_wavenumber)


class Progress:
    """Finite-difference results saved after every displacement (resumable), one file per kind: SCF
    dipoles, the model's forces (named after its coefficient hash and force route) and the model's
    dipoles (hash and dipole route), with the engine revision (``ENGINE_REVISION``) from 2 on: files
    without it hold revision 1 and are read only by revision 1. Files of earlier versions held the
    forces and the one-shot (P_out) dipoles together: those dipoles are read as the 'one-shot' route's."""

    def __init__(self, out: Path, model_hash: str, forces: str, dipole: str, nmode: int, natm: int,
                 revision: int = ENGINE_REVISION):
        tag = "" if revision == 1 else f"_r{revision}"
        self.files = {"scf": out / "fd_scf.npz", "forces": out / f"fd_model_{model_hash}_{forces}{tag}.npz",
                      "dipoles": out / f"fd_model_{model_hash}_dipole_{dipole}{tag}.npz"}
        self.data = {"scf": {"dipoles": np.full((nmode, 2, 3), np.nan)},
                     "forces": {"forces": np.full((nmode, 2, natm, 3), np.nan)},
                     "dipoles": {"dipoles": np.full((nmode, 2, 3), np.nan)}}
        legacy = {"dipoles": self.files["forces"]} if dipole == "one-shot" and revision == 1 else {}
        for kind, path in self.files.items():
            path = path if path.is_file() else legacy.get(kind, path)
            if path.is_file():
                with np.load(path) as f:
                    for key, value in self.data[kind].items():
                        if key in f and f[key].shape == value.shape:
                            value[...] = f[key]

    def missing(self, kind: str, k: int, side: int) -> bool:
        key = "forces" if kind == "forces" else "dipoles"
        return bool(np.isnan(self.data[kind][key][k, side]).any())

    def save(self) -> None:
        for kind, path in self.files.items():
            np.savez(path, **self.data[kind])


def run_harmonic(args: argparse.Namespace) -> int:
    """The whole analysis for the options of ``ipi-jlcdm harmonic`` (``cli/harmonic_cmd.py``)."""
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = JLCDModel.load(args.model)
    level = model.level
    atomic_numbers = read_frames(args.structure)[0].atomic_numbers
    minimum_file = out / "minimum.xyz"
    if minimum_file.is_file():
        coords0 = read_frames(minimum_file)[0].coords_bohr
        log(f"minimum read from {minimum_file}")
    else:
        coords0 = optimize(level, atomic_numbers, read_frames(args.structure)[0].coords_bohr, args.gtol)
        comment = f"{level.xc}/{level.basis} minimum, angstrom"
        minimum_file.write_text(format_xyz_frame(atomic_numbers, coords0, comment))

    reference_file = out / "reference_hessian.npz"
    if reference_file.is_file():
        with np.load(reference_file) as f:
            freq_ref, modes, dm0 = f["freq_cm1"], f["modes"], f["dm"]
    else:
        t0 = time.perf_counter()
        freq_ref, modes, dm0 = reference_modes(level, atomic_numbers, coords0)
        np.savez(reference_file, freq_cm1=freq_ref, modes=modes, dm=dm0)
        log(f"analytic Hessian: {time.perf_counter() - t0:.0f} s")
    nmode, natm = len(freq_ref), len(atomic_numbers)
    if args.sample is not None:
        temperature, count = float(args.sample[0]), int(args.sample[1])
        suffix = f"_seed{args.seed}" if args.seed else ""
        path = out / f"samples_{temperature:g}K{suffix}.xyz"
        samples = harmonic_samples(coords0, NormalModes(freq_ref, modes, None), temperature, count,
                                   np.random.default_rng(args.seed))
        path.write_text(xyz_text(atomic_numbers, [(xyz, f"harmonic sample {n} at {temperature:g} K, angstrom")
                                                  for n, xyz in enumerate(samples)]))
        log(f"wrote {count} harmonic samples at {temperature:g} K to {path}")
        return 0
    steps = mode_steps(modes, args.step_bohr)

    dipole_route = args.dipole if args.dipole != "anderson" or args.anderson_steps == 1 else \
        f"anderson{args.anderson_steps}"  # result files of one Anderson step keep their earlier name
    coarse = args.anderson_grid_level is not None and args.anderson_grid_level < model.level.grid_level
    if args.dipole == "anderson" and args.forces != "anderson" and coarse:  # route (c) keeps the step's grid
        dipole_route += f"_grid{args.anderson_grid_level}"
    force_route = args.forces if args.forces != "anderson" else f"anderson{args.anderson_steps}"  # steps matter
    engine_tag = model.metadata()["coefficients_sha256"][:12] if args.engine == "jlcdm" else "scf"
    if args.engine == "scf":
        force_route = dipole_route = "scf"
    progress = Progress(out, engine_tag, force_route, dipole_route, nmode, natm)
    engine = make_engine(args.engine, args.model, fallback_residual=None, **route_options(args))
    # where only the dipoles are missing (another dipole route): the same routes, so that the Anderson
    # steps run on the grid the dipole file is named after (route (c) keeps the step's grid)
    dipole_engine = make_engine(args.engine, args.model, fallback_residual=None, **route_options(args))
    dipole_engine.compute_forces = False
    for k in range(nmode):
        for side, sign in enumerate((1.0, -1.0)):
            coords = coords0 + sign * steps[k] * modes[k]
            if progress.missing("forces", k, side):
                res = engine.compute(atomic_numbers, coords)
                progress.data["forces"]["forces"][k, side] = res.forces
                progress.data["dipoles"]["dipoles"][k, side] = res.dipole
            elif progress.missing("dipoles", k, side):
                progress.data["dipoles"]["dipoles"][k, side] = dipole_engine.compute(atomic_numbers, coords).dipole
            if progress.missing("scf", k, side):
                mol = level.make_mol(atomic_numbers, coords)
                res, _ = run_scf(level, mol, dm0, 1e-10, compute_forces=False)
                progress.data["scf"]["dipoles"][k, side] = res.dipole
            progress.save()
        log(f"mode {k + 1}/{nmode} ({freq_ref[k]:.0f} cm^-1) done")

    d = {"model_forces": progress.data["forces"]["forces"], "model_dipoles": progress.data["dipoles"]["dipoles"],
         "scf_dipoles": progress.data["scf"]["dipoles"]}
    k_model = hessian_in_mode_basis(modes, d["model_forces"], steps)
    freq_model, overlap, vectors, match = modes_from_hessian(k_model)
    dmu_model = central_difference(d["model_dipoles"], steps)
    dmu_scf = central_difference(d["scf_dipoles"], steps)
    # the model's intensity of reference mode k: its dipole derivative along that mode's eigenvector
    int_model = intensities_along_matched_modes(vectors, overlap, match, dmu_model)
    int_ref = intensities_km_per_mol(dmu_scf)
    int_model_on_ref = intensities_km_per_mol(dmu_model)  # along the reference modes: the dipole surface alone

    rows = ["| mode | PBE analytic (cm^-1) | model (cm^-1) | diff (cm^-1) | overlap | I ref (km/mol) | "
            "I model (km/mol) | I ratio | I model on ref. mode (km/mol) |", "|---|---|---|---|---|---|---|---|---|"]
    csv = ["mode,freq_ref_cm1,freq_model_cm1,overlap,intensity_ref_km_per_mol,intensity_model_km_per_mol,"
           "intensity_model_on_reference_mode_km_per_mol"]
    for k in range(nmode):
        ratio = int_model[k] / int_ref[k] if int_ref[k] > 1e-3 else np.nan
        rows.append(f"| {k + 1} | {freq_ref[k]:.1f} | {freq_model[k]:.1f} | {freq_model[k] - freq_ref[k]:+.1f} | "
                    f"{overlap[k]:.2f} | {int_ref[k]:.1f} | {int_model[k]:.1f} | {ratio:.2f} | "
                    f"{int_model_on_ref[k]:.1f} |")
        csv.append(f"{k + 1},{freq_ref[k]:.3f},{freq_model[k]:.3f},{overlap[k]:.4f},{int_ref[k]:.4f},"
                   f"{int_model[k]:.4f},{int_model_on_ref[k]:.4f}")
    high = freq_ref > args.min_wavenumber
    strong = high & (int_ref > 0.05 * int_ref[high].max())
    diff = np.abs(freq_model - freq_ref)[high]
    rel = np.abs(int_model / int_ref - 1)[strong]
    rel_on_ref = np.abs(int_model_on_ref / int_ref - 1)[strong]
    summary = (f"modes above {args.min_wavenumber:.0f} cm^-1: {high.sum()}; |diff| max {np.nanmax(diff):.1f}, "
               f"mean {np.nanmean(diff):.1f} cm^-1; within 15 cm^-1: {(diff <= 15).sum()}/{high.sum()}\n"
               f"intensities of the {strong.sum()} modes above {args.min_wavenumber:.0f} cm^-1 with I > 5 % of "
               f"the strongest: relative error max {np.nanmax(rel):.2f}, mean {np.nanmean(rel):.2f}; "
               f"within 20 %: {(rel <= 0.2).sum()}/{strong.sum()}\n"
               f"the same along the reference modes (the dipole surface alone, without the model's mode shapes): "
               f"relative error max {np.nanmax(rel_on_ref):.2f}, mean {np.nanmean(rel_on_ref):.2f}; "
               f"within 20 %: {(rel_on_ref <= 0.2).sum()}/{strong.sum()}")
    scf_forces_file = out / "fd_scf_forces.npz"  # from tools/fd_scf_hessian.py, if run
    scf_forces = np.load(scf_forces_file)["forces"] if scf_forces_file.is_file() else None
    for j, k, coupling, rotation in close_pair_couplings(k_model, freq_ref, args.min_wavenumber):
        summary += (f"\nclose pair {j + 1}/{k + 1} ({freq_ref[j]:.0f}/{freq_ref[k]:.0f} cm^-1): the model's "
                    f"coupling {coupling:+.2f} cm^-1 turns their eigenvectors by {rotation:+.1f} degrees")
        if scf_forces is not None:
            terms = coupling_difference_by_atom(modes, d["model_forces"], scf_forces, steps, j, k)
            share = terms / np.abs(terms).sum()
            top = np.argsort(-np.abs(share))[:3]
            summary += "; its difference from SCF finite differences by atom: " + ", ".join(
                f"atom {a + 1} ({elements.ELEMENTS[int(atomic_numbers[a])]}) {share[a]:+.2f}" for a in top)
    what = (f"forces {args.forces}, dipole {args.dipole}, Anderson steps {args.anderson_steps}, engine revision "
            f"{ENGINE_REVISION}" if args.engine == "jlcdm" else "engine scf (SCF forces and dipoles)")
    text = (f"command: ipi-jlcdm {' '.join(sys.argv[1:])}\nmodel: {args.model}, {what}; "
            f"step {args.step_bohr} bohr (largest atomic "
            f"displacement)\n\n" + "\n".join(rows) + "\n\n" + summary + "\n")
    (out / "harmonic.md").write_text(text)
    (out / "harmonic.csv").write_text("\n".join(csv) + "\n")
    plot_sticks(out / "harmonic.png", freq_ref, int_ref, freq_model, int_model,
                f"{args.model} ({args.engine}): harmonic analysis against PySCF's analytic Hessian")
    print(text)
    log(f"wrote {out / 'harmonic.md'}, {out / 'harmonic.csv'} and {out / 'harmonic.png'}")
    return 0


def plot_sticks(path: Path, freq_ref: np.ndarray, int_ref: np.ndarray, freq_model: np.ndarray,
                int_model: np.ndarray, title: str) -> None:
    """PNG: PySCF's harmonic stick spectrum upwards, the engine's downwards (km/mol against cm^-1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.vlines(freq_ref, 0, int_ref, color="C3", lw=2, label="PySCF analytic Hessian, SCF dipoles")
    ok = np.isfinite(freq_model)
    ax.vlines(freq_model[ok], 0, -int_model[ok], color="C0", lw=2, label="engine, finite differences")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("wavenumber (cm$^{-1}$)")
    ax.set_ylabel("IR intensity (km/mol)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


