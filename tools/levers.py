"""Density-error experiments for model choices: learning curves and representation levers.

    python tools/levers.py DATA.npz --config base --train 0:32 --val 32:36 --test 36:44 [--points 3000]
                           [--curve 4,8,16,32]

DATA.npz from ``ipi-jlcdm dataset``. Fits a linear model on the training frames exactly as
``ipi-jlcdm train`` does (three-block importance sampling, weighted normal equations, column
scaling; here Cholesky solves at four ridges, picked on --val) and prints one JSON line per
training-set size with the density error integral |rho_in - rho_SCF| / N_e (percent) of every
test frame on its full grid. Configurations (CONFIGS) are lists of descriptor blocks whose
features are concatenated; a block with ``env`` p multiplies its features by rho_SAD^p (an
envelope that keeps the model linear). 'base' and 'env13' are the two forms a model file holds
(``ipi-jlcdm train --envelope-power 0`` and the default 1/3); the others are experiments.
"""
import argparse
import json
import sys
import time

import numpy as np

from ipi_jlcdm.geometry_io import parse_frame_selection
from ipi_jlcdm.jl.descriptor import JLDescriptor, JLHyperparameters
from ipi_jlcdm.training.dataset import ReferenceData
from ipi_jlcdm.training.fit import (
    INACTIVE_FEATURE_SCALE,
    NormalEquations,
    frame_grid,
    rho_sad_sample_weights,
    sample_points,
)
from ipi_jlcdm.units import BOHR_PER_ANGSTROM as A

CONFIGS = {
    "base": [dict(n1=25, n2=12, l_max=5, r_cut=3.5, alpha=7, beta=0, r_min=-0.8, env=None)],
    "n2_14": [dict(n1=25, n2=14, l_max=5, r_cut=3.5, alpha=7, beta=0, r_min=-0.8, env=None)],
    "env13": [dict(n1=25, n2=12, l_max=5, r_cut=3.5, alpha=7, beta=0, r_min=-0.8, env=None),
              dict(n1=25, n2=12, l_max=5, r_cut=3.5, alpha=7, beta=0, r_min=-0.8, env=1 / 3)],
    "short": [dict(n1=25, n2=12, l_max=5, r_cut=3.5, alpha=7, beta=0, r_min=-0.8, env=None),
              dict(n1=12, n2=8, l_max=5, r_cut=1.6, alpha=0, beta=0, r_min=-0.4, env=None)],
    "short_env": [dict(n1=25, n2=12, l_max=5, r_cut=3.5, alpha=7, beta=0, r_min=-0.8, env=None),
                  dict(n1=12, n2=8, l_max=5, r_cut=1.6, alpha=0, beta=0, r_min=-0.4, env=1 / 3)],
    "env13_short": [dict(n1=25, n2=12, l_max=5, r_cut=3.5, alpha=7, beta=0, r_min=-0.8, env=None),
                    dict(n1=25, n2=12, l_max=5, r_cut=3.5, alpha=7, beta=0, r_min=-0.8, env=1 / 3),
                    dict(n1=12, n2=8, l_max=5, r_cut=1.6, alpha=0, beta=0, r_min=-0.4, env=None)],
    "env13_n2_14": [dict(n1=25, n2=14, l_max=5, r_cut=3.5, alpha=7, beta=0, r_min=-0.8, env=None),
                    dict(n1=25, n2=14, l_max=5, r_cut=3.5, alpha=7, beta=0, r_min=-0.8, env=1 / 3)],
    "env_only": [dict(n1=25, n2=12, l_max=5, r_cut=3.5, alpha=7, beta=0, r_min=-0.8, env=1 / 3)],
}


def make_blocks(cfg, species):
    blocks = []
    for b in cfg:
        h = JLHyperparameters(r_cut=b["r_cut"] * A, n1=b["n1"], n2=b["n2"], l_max=b["l_max"], alpha=b["alpha"],
                              beta=b["beta"], r_min=b["r_min"] * A)
        blocks.append((JLDescriptor(h, species), b["env"]))
    return blocks


def feats(blocks, pts, z, xyz, rho_sad):
    cols = []
    for d, env in blocks:
        x = d.features(pts, z, xyz)
        if env is not None:
            x *= np.maximum(rho_sad, 0)[:, None] ** env
        cols.append(x)
    return np.concatenate(cols, axis=1)


def solve_chol(trn, val, ridges=(1e-11, 1e-9, 1e-7, 1e-5)):
    import scipy.linalg
    scale = np.sqrt(np.maximum(np.diag(trn.gram), 0.0))
    act = scale > INACTIVE_FEATURE_SCALE * scale.max()
    sa = scale[act]
    gs = trn.gram[np.ix_(act, act)] / sa[:, None] / sa[None, :]
    rs = trn.rhs[act] / sa
    best = None
    for r in ridges:
        b = np.zeros(len(scale))
        b[act] = scipy.linalg.cho_solve(scipy.linalg.cho_factor(gs + r * np.eye(len(sa))), rs) / sa
        e = val.error(b) / val.yy
        print(f"   ridge {r:.0e}: val rel err {np.sqrt(max(e, 0)):.4f}", flush=True)
        if best is None or e < best[2]:
            best = (b, r, e)
    return best[0], best[1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("--train", default="0:32")
    p.add_argument("--val", default="32:36")
    p.add_argument("--test", default="36:40")
    p.add_argument("--config", default="base")
    p.add_argument("--points", type=int, default=3000)
    p.add_argument("--curve", default=None, help="comma list of training-frame counts for a learning curve")
    p.add_argument("--weight-power", type=float, default=0.0,
                   help="multiply the sample weights by (rho_SAD + 1e-6)^(-p): an L2 fit aimed at the L1 error "
                        "(|error| grows like rho_SAD^0.4 on uracil)")
    args = p.parse_args()
    data = ReferenceData.load(args.data)
    z = data.atomic_numbers
    species = sorted(set(int(a) for a in z))
    blocks = make_blocks(CONFIGS[args.config], species)
    nfeat = sum(d.n_features for d, _ in blocks)
    lvl = data.level.grid_level
    rng = np.random.default_rng(0)
    tr, va, te = (parse_frame_selection(s, len(data)) for s in (args.train, args.val, args.test))
    t0 = time.time()

    def add_frame(sums: NormalEquations, k: int) -> None:
        g = frame_grid(data, k, lvl)
        idx, w = sample_points(g, args.points, rng)
        w = w * rho_sad_sample_weights(g.rho_sad[idx], args.weight_power)
        sums.add(feats(blocks, g.coords[idx], z, data.coords_bohr[k], g.rho_sad[idx]), g.drho[idx], w)

    # memory: two (n_features)^2 matrices; training frames are added in order and the model is
    # solved whenever the count reaches a point of the learning curve
    val = NormalEquations.zeros(nfeat)
    for k in va:
        add_frame(val, k)
    grids = {k: frame_grid(data, k, lvl) for k in te}
    counts = sorted({int(c) for c in args.curve.split(",")}) if args.curve else [len(tr)]
    trn = NormalEquations.zeros(nfeat)
    for n_done, k in enumerate(tr, 1):
        add_frame(trn, k)
        if n_done not in counts:
            continue
        beta, ridge = solve_chol(trn, val)
        errs = []
        offsets = np.cumsum([0] + [d.n_features for d, _ in blocks])
        for k_test in te:
            g = grids[k_test]
            pred = np.zeros(len(g.weights))
            for (d, env), off in zip(blocks, offsets, strict=False):
                cb = d.contract(beta[off:off + d.n_features])
                r = d.predict(g.coords, z, data.coords_bohr[k_test], cb, gradient=False)[0]
                pred += r if env is None else r * np.maximum(g.rho_sad, 0) ** env
            n_elec = round(float(g.weights @ g.rho_scf))
            rho_in = g.rho_sad + pred
            rho_in *= n_elec / float(g.weights @ rho_in)
            errs.append(100 * float(np.abs(g.weights) @ np.abs(rho_in - g.rho_scf)) / n_elec)
        row = dict(config=args.config, weight_power=args.weight_power,
                   n_features=nfeat, train_frames=n_done, points=args.points, ridge=ridge,
                   test_err_percent=[round(e, 3) for e in errs], mean=round(float(np.mean(errs)), 3),
                   elapsed_s=round(time.time() - t0))
        print(json.dumps(row), flush=True)
    print(f"total {time.time() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
