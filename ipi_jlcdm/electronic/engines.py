"""Building an engine ('jlcdm' one-shot or 'scf' reference) from command-line style options."""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from ipi_jlcdm.electronic.anderson import DEFAULT_ANDERSON_GRID_LEVEL, DEFAULT_ANDERSON_STEPS, DIPOLE_ROUTES
from ipi_jlcdm.electronic.density import SMALL_RHO_CUTOFF
from ipi_jlcdm.electronic.level import LevelOfTheory
from ipi_jlcdm.electronic.oneshot import DEFAULT_FORCE_ROUTE, FORCE_ROUTES, OneShotEngine
from ipi_jlcdm.electronic.scf_engine import SCFEngine
from ipi_jlcdm.geometry_io import read_frames
from ipi_jlcdm.jl.model import JLCDModel

ENGINES = ("jlcdm", "scf")


#: The default residual above which a one-shot step falls back to SCF ('auto') is this many times the
#: model's mean residual on its held-out frames (recorded by ``train``), never below
#: MIN_FALLBACK_RESIDUAL. Within a model's domain a frame's residual stays within ~2.3x that mean (uracil
#: 500 K held out: 0.74-1.07 % against 0.61 %; malonaldehyde 500 K: up to 0.98 % against 0.43 %); a
#: malonaldehyde geometry with its proton shared by both oxygens, which harmonic training samples never
#: reach, had 1.94 % and forces 6 eV/Å off (docs/VALIDATION.md). The atomic superposition alone: 19-25 %.
FALLBACK_RESIDUAL_FACTOR = 3.0
MIN_FALLBACK_RESIDUAL = 0.01
#: The threshold of a model that records no held-out residual (e.g. trained with --skip-engine-check).
DEFAULT_FALLBACK_RESIDUAL = 0.05
AUTO_FALLBACK = "auto"


def model_fallback_residual(model: JLCDModel) -> float:
    """The 'auto' fallback threshold of ``model`` (a fraction, like the residual itself)."""
    typical_percent = (model.training.get("test_summary") or {}).get("mean_abs_residual_percent")
    if typical_percent is None:
        return DEFAULT_FALLBACK_RESIDUAL
    return max(MIN_FALLBACK_RESIDUAL, FALLBACK_RESIDUAL_FACTOR * float(typical_percent) / 100.0)


def parse_fallback_residual(text: str) -> float | str:
    """``--fallback-residual``: 'auto' or a number (negative: never fall back)."""
    if text == AUTO_FALLBACK:
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number, got {text!r}") from None


def make_engine(engine: str, model: str | None, grid_level: int | None = None,
                fallback_residual: float | str | None = AUTO_FALLBACK, electronic_temperature_k: float = 0.0,
                forces: str = DEFAULT_FORCE_ROUTE, dipole: str = "anderson",
                anderson_steps: int = DEFAULT_ANDERSON_STEPS,
                anderson_grid_level: int | None = DEFAULT_ANDERSON_GRID_LEVEL,
                small_rho_cutoff: float = SMALL_RHO_CUTOFF):
    """An engine with a ``compute(atomic_numbers, coords_bohr, key)`` method.

    jlcdm needs ``model`` (packaged name or .npz path) and runs at its level of theory; scf runs at
    the model's level if one is given, else at the default PBE/def2-SVP. ``grid_level`` overrides
    the grid (default: the model's training grid, or 3). ``fallback_residual``: a threshold, None
    or a negative number (never fall back) or 'auto' (``model_fallback_residual``).
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose from {ENGINES}")
    loaded = JLCDModel.load(model) if model else None
    level = loaded.level if loaded is not None else LevelOfTheory()
    if grid_level is not None:
        level = replace(level, grid_level=grid_level)
    if engine == "scf":
        return SCFEngine(level)
    if loaded is None:
        raise ValueError("the jlcdm engine needs --model (a .npz file or a packaged name such as 'uracil')")
    if fallback_residual == AUTO_FALLBACK:
        fallback_residual = model_fallback_residual(loaded)
    elif fallback_residual is not None and fallback_residual < 0:
        fallback_residual = None
    return OneShotEngine(loaded, level, fallback_residual=fallback_residual,
                         electronic_temperature_k=electronic_temperature_k, forces=forces, dipole=dipole,
                         anderson_steps=anderson_steps, anderson_grid_level=anderson_grid_level,
                         small_rho_cutoff=small_rho_cutoff)



def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """The options that choose and configure an engine, shared by ``driver`` and ``eval``."""
    p.add_argument("--model", default=None, help="model .npz or packaged name (e.g. 'uracil'); required for jlcdm")
    p.add_argument("--engine", choices=ENGINES, default="jlcdm", help="jlcdm (one-shot, default) or scf (reference)")
    p.add_argument("--grid-level", type=int, default=None, help="PySCF grids.level (default: the model's)")
    p.add_argument("--fallback-residual", type=parse_fallback_residual, default=AUTO_FALLBACK,
                   help="jlcdm: recompute a step by SCF (from the one-shot density matrix) when the residual "
                   "integral |rho_out - rho_in| / N_e exceeds this; flagged 'fallback'. Default 'auto': "
                   f"{FALLBACK_RESIDUAL_FACTOR:g}x the model's mean residual on its held-out frames, at least "
                   f"{MIN_FALLBACK_RESIDUAL:g} ({DEFAULT_FALLBACK_RESIDUAL:g} for a model without them; uracil "
                   "0.018, water 0.01); a negative value disables it")
    p.add_argument("--electronic-temperature-k", type=float, default=0.0,
                   help="jlcdm: Fermi-Dirac occupations at this electronic temperature (K; energy = Mermin free "
                   "energy); keeps dipoles and forces continuous where HOMO and LUMO cross. 0 (default): aufbau")
    add_route_arguments(p)


def add_route_arguments(p: argparse.ArgumentParser) -> None:
    """The one-shot engine's force and dipole routes (--forces, --dipole, --anderson-steps,
    --anderson-grid-level): shared by ``driver``, ``eval``, ``validate``, ``harmonic`` and the benchmarks;
    ``route_options`` turns them into engine keyword arguments."""
    p.add_argument("--forces", choices=FORCE_ROUTES, default=DEFAULT_FORCE_ROUTE,
                   help="jlcdm force route: 'harris-foulkes' (default; the exact derivative of the one-shot "
                   "energy: energy-conserving MD; uracil 9/27 meV/Å force MAE at 300/500 K), 'orbital' (PySCF's "
                   "analytic gradient on the one-shot orbitals: 0.6x the step time, 96 meV/Å at 500 K, not "
                   "energy-conserving) or 'anderson' (the Harris-Foulkes energy of the Anderson mixture after "
                   "--anderson-steps steps and PySCF's gradient on its orbitals: closest to SCF; with 3 steps not "
                   "energy-conserving (single points, harmonic analysis), with 6 as conserving as 'harris-foulkes' "
                   "at ~0.7 of its step time); see docs/VALIDATION.md")
    p.add_argument("--dipole", choices=DIPOLE_ROUTES, default="anderson",
                   help="jlcdm dipole: 'anderson' (default; Anderson steps in the Coulomb metric from the "
                   "one-shot step, one Fock build each; energy and forces unchanged) or 'one-shot' (from the "
                   "one-shot density matrix P_out, the paper's; always in the extras as dipole_one_shot)")
    p.add_argument("--anderson-steps", type=int, default=DEFAULT_ANDERSON_STEPS,
                   help=f"jlcdm: Fock builds of the 'anderson' dipole and forces (default {DEFAULT_ANDERSON_STEPS}: "
                   "uracil dipole errors 0.037/0.012/0.007 D at 300 K for 1/2/3 steps)")
    p.add_argument("--anderson-grid-level", type=int, default=DEFAULT_ANDERSON_GRID_LEVEL,
                   help="jlcdm: PySCF grid level of the 'anderson' dipole's Fock builds, at most the step's own "
                   f"(default {DEFAULT_ANDERSON_GRID_LEVEL}: uracil dipoles within 1e-4 D of the level-3 ones at a "
                   "third of the cost); energy and forces always use --grid-level")
    p.add_argument("--small-rho-cutoff", type=float, default=SMALL_RHO_CUTOFF,
                   help="jlcdm: integrate only over the grid points with |rho_SAD w| >= this / (grid points), "
                   f"PySCF's small_rho_cutoff criterion (electrons; default {SMALL_RHO_CUTOFF:g}: uracil loses "
                   "14 %% of its points, the energy moves by 2e-10 Ha; 0: all points)")


def route_options(args: argparse.Namespace) -> dict:
    """``add_route_arguments`` options as keyword arguments of OneShotEngine and ``make_engine``."""
    return {"forces": args.forces, "dipole": args.dipole, "anderson_steps": args.anderson_steps,
            "anderson_grid_level": args.anderson_grid_level, "small_rho_cutoff": args.small_rho_cutoff}


def engine_from_arguments(args: argparse.Namespace):
    """The engine that ``add_engine_arguments`` options describe."""
    return make_engine(args.engine, args.model, args.grid_level, args.fallback_residual,
                       args.electronic_temperature_k, **route_options(args))


def molecule_atomic_numbers(structure: str | None, model: str | None) -> np.ndarray:
    """Atomic numbers in i-PI's atom order: from --structure, else from the model's training molecule."""
    if structure:
        return read_frames(structure)[0].atomic_numbers
    if model:
        molecule = JLCDModel.load(model).molecule
        if molecule:
            return np.array(molecule)
    raise ValueError("give --structure (an XYZ file with the atoms in i-PI's order)")
