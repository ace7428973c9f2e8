"""``ipi-jlcdm train``: fit a JLCDM to reference data from ``ipi-jlcdm dataset``."""

from __future__ import annotations

import argparse
import json
import sys

from ipi_jlcdm.geometry_io import parse_frame_selection
from ipi_jlcdm.jl.descriptor import JLHyperparameters
from ipi_jlcdm.training.dataset import ReferenceData
from ipi_jlcdm.training.fit import train_model
from ipi_jlcdm.training.validation import calibrate_energy_offset, format_table, summarize, validate_model
from ipi_jlcdm.units import BOHR_PER_ANGSTROM


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="fit a JLCDM (deformation density) to reference data",
                       description="Fit the linear JL model of rho_SCF - rho_SAD by importance-weighted least "
                       "squares on sampled grid points. The last --test-frames frames of DATA are held out for "
                       "the reported errors, the --validation-frames before them choose the ridge; the rest train. "
                       "Writes MODEL.npz and MODEL.provenance.json.")
    p.add_argument("data", help="reference data npz from 'ipi-jlcdm dataset'")
    p.add_argument("-o", "--output", required=True, help="model file to write (.npz)")
    p.add_argument("--r-cut-angstrom", type=float, default=3.5, help="cutoff radius (default 3.5 angstrom)")
    p.add_argument("--r-min-angstrom", type=float, default=-0.8, help="1-body r_min (default -0.8 angstrom)")
    p.add_argument("--n1", type=int, default=25, help="1-body radial functions n = 1..n1 (default 25)")
    p.add_argument("--n2", type=int, default=14,
                   help="2-body radial functions n = 2..n2 (default 14, the shipped model's)")
    p.add_argument("--l-max", type=int, default=5, help="largest Legendre order (default 5)")
    p.add_argument("--alpha", type=float, default=7.0, help="Jacobi alpha (default 7)")
    p.add_argument("--beta", type=float, default=0.0, help="Jacobi beta (default 0)")
    p.add_argument("--envelope-power", type=float, default=1 / 3,
                   help="p of the envelope block rho_SAD^p x features, which follows the atomic densities "
                   "(default 1/3; 0: no envelope block, half the features)")
    p.add_argument("--rho-sad-weight-power", type=float, default=0.6,
                   help="multiply the least-squares weight of each sampled point by (rho_SAD + 1e-6 e/bohr^3)^-P: "
                   "aims the fit at the integrated absolute density error (default 0.6, the shipped model's; "
                   "0: the plain importance-weighted L2 fit)")
    p.add_argument("--points-per-frame", type=int, default=3000, help="sampled grid points per frame (default 3000)")
    p.add_argument("--validation-frames", type=int, default=4, help="frames that choose the ridge (default 4)")
    p.add_argument("--test-frames", type=int, default=4, help="held-out frames for reported errors (default 4)")
    p.add_argument("--frames-train", default=None, help="explicit training frames of DATA, e.g. '0:32,44:140' "
                   "(with --frames-validation and --frames-test; default: the frames before the held-out ones)")
    p.add_argument("--frames-validation", default=None, help="explicit frames that choose the ridge, e.g. '32:36'")
    p.add_argument("--frames-test", default=None, help="explicit held-out test frames, e.g. '36:44'")
    p.add_argument("--max-train-frames", type=int, default=None, help="use at most this many training frames")
    p.add_argument("--grid-level", type=int, default=None, help="grid level (default: the data's)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the point sampling")
    p.add_argument("--skip-engine-check", action="store_true",
                   help="report only density errors on test frames (skip one-shot vs SCF and the energy-offset "
                   "calibration on the validation frames)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    data = ReferenceData.load(args.data)
    n = len(data)
    n_hold = args.validation_frames + args.test_frames
    if n_hold >= n:
        raise ValueError(f"{args.data} has {n} frames: not enough for {n_hold} held-out frames plus training")
    train_idx = list(range(n - n_hold))[: args.max_train_frames]
    validation_idx = list(range(n - n_hold, n - args.test_frames))
    test_idx = list(range(n - args.test_frames, n))
    explicit = (args.frames_train, args.frames_validation, args.frames_test)
    if any(explicit):
        if not all(explicit):
            raise ValueError("give all three of --frames-train, --frames-validation and --frames-test")
        train_idx, validation_idx, test_idx = (parse_frame_selection(s, n) for s in explicit)
        train_idx = train_idx[: args.max_train_frames]
        if set(train_idx) & (set(validation_idx) | set(test_idx)) or set(validation_idx) & set(test_idx):
            raise ValueError("training, validation and test frames must not overlap")
    hyper = JLHyperparameters(r_cut=args.r_cut_angstrom * BOHR_PER_ANGSTROM,
                              r_min=args.r_min_angstrom * BOHR_PER_ANGSTROM, n1=args.n1, n2=args.n2,
                              l_max=args.l_max, alpha=args.alpha, beta=args.beta)
    model, report = train_model(data, hyper, train_idx, validation_idx, args.points_per_frame, args.grid_level,
                                args.seed, envelope_power=args.envelope_power or None,
                                rho_sad_weight_power=args.rho_sad_weight_power)
    if not args.skip_engine_check:
        model.energy_offset_hartree = calibrate_energy_offset(model, data, validation_idx)
        model.training["energy_offset_frames"] = [int(data.source_index[k]) for k in validation_idx]
    print(f"validating on {len(test_idx)} held-out frames", file=sys.stderr, flush=True)
    rows = validate_model(model, data, test_idx, engine=not args.skip_engine_check)
    summary = summarize(rows)
    model.training["test_source_frames"] = [int(data.source_index[k]) for k in test_idx]
    model.training["test_summary"] = summary
    path = model.save(args.output)
    provenance = {
        "model": path.name, "data": str(args.data), "level_of_theory": model.level.to_dict(),
        "hyperparameters": model.hyper.to_dict(), "n_features": model.n_features,
        "envelope_power": model.envelope_power, "energy_offset_hartree": model.energy_offset_hartree,
        "training": model.training, "validation_error_by_ridge": report.validation_rmse_by_ridge,
        "test_frames": rows, "test_summary": summary,
        "command": "ipi-jlcdm " + " ".join(sys.argv[1:]) if sys.argv else "",
    }
    prov_path = path.with_name(path.stem + ".provenance.json")
    prov_path.write_text(json.dumps(provenance, indent=2) + "\n")
    print(format_table(rows), file=sys.stderr)
    print(f"wrote {path} and {prov_path}", file=sys.stderr)
    return 0
