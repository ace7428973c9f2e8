"""Fitting a JLCDM to reference data (docs/METHOD.md section 3).

Target: the deformation density drho = rho_SCF - rho_SAD on Becke-grid points. Per frame,
``points_per_frame`` points are drawn from a mixture of three distributions over the grid
(uniform, proportional to |w| rho_SCF, proportional to |w| |drho|); each sample carries the
importance weight |w_g| / (n p(g)), so the weighted least squares estimates the integral of
(drho_model - drho)^2 over space. Normal equations X^T W X, X^T W y are accumulated frame by frame
(the design matrix is never built whole); columns are scaled to unit diagonal; the ridge strength
is chosen by the same weighted error on validation frames.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.linalg.blas

from ipi_jlcdm.electronic.density import density_on_points, grid_points, sad_density_on_points
from ipi_jlcdm.electronic.positivity import PositiveDensityMap
from ipi_jlcdm.jl.descriptor import JLHyperparameters
from ipi_jlcdm.jl.model import JLCDModel
from ipi_jlcdm.training.dataset import ReferenceData

RIDGE_GRID = tuple(10.0 ** k for k in range(-14, -1))
#: e/bohr^3 added to rho_SAD in the sample weights (rho_SAD + floor)^-p of ``rho_sad_weight_power``,
#: so that the far vacuum (rho_SAD -> 0) keeps a bounded weight.
SAMPLE_WEIGHT_RHO_FLOOR = 1e-6
INACTIVE_FEATURE_SCALE = 1e-14  # relative column norm below which a feature counts as absent (see solve_ridge)


@dataclass
class FrameGrid:
    """A reference frame on its integration grid: coords (ngrid, 3) bohr, weights (ngrid,),
    rho_scf and rho_sad (ngrid,) in e/bohr^3."""

    coords: np.ndarray
    weights: np.ndarray
    rho_scf: np.ndarray
    rho_sad: np.ndarray

    @property
    def drho(self) -> np.ndarray:
        return self.rho_scf - self.rho_sad


def frame_grid(data: ReferenceData, k: int, grid_level: int) -> FrameGrid:
    """Densities of frame ``k`` of ``data`` on its grid at ``grid_level``."""
    level = replace(data.level, grid_level=grid_level)
    mol = level.make_mol(data.atomic_numbers, data.coords_bohr[k])
    coords, weights = grid_points(level.make_grids(mol))
    rho_scf = density_on_points(mol, data.density_matrix[k], coords, gradient=False)
    rho_sad = sad_density_on_points(mol, coords)[0]
    return FrameGrid(coords, weights, rho_scf, rho_sad)


def sample_points(grid: FrameGrid, n_points: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (n_points,) drawn from the three-block mixture and their importance weights
    |w| / (n p) (so that sum_s weight_s f(g_s) estimates integral f dr)."""
    abs_w = np.abs(grid.weights)
    blocks = [np.full(len(abs_w), 1.0), abs_w * np.abs(grid.rho_scf), abs_w * np.abs(grid.drho)]
    p = sum(b / b.sum() for b in blocks) / len(blocks)
    idx = rng.choice(len(p), size=n_points, replace=True, p=p)
    return idx, abs_w[idx] / (n_points * p[idx])


@dataclass
class NormalEquations:
    """Accumulated weighted least-squares sums: gram = X^T W X, rhs = X^T W y, yy = y^T W y.

    X^T W X is accumulated in its upper triangle by BLAS's symmetric rank-k update (half the work of
    a general matrix product); ``gram`` returns the whole matrix."""

    upper: np.ndarray  # (n, n) Fortran order: X^T W X in the upper triangle
    rhs: np.ndarray
    yy: float = 0.0
    n_samples: int = 0

    @classmethod
    def zeros(cls, n: int) -> NormalEquations:
        return cls(np.zeros((n, n), order="F"), np.zeros(n))

    @property
    def gram(self) -> np.ndarray:
        """X^T W X (n, n), symmetric (a new array)."""
        full = np.triu(self.upper)
        full += np.triu(self.upper, 1).T
        return full

    def add(self, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        """Add samples: features x (nsample, n), targets y (nsample,), weights w (nsample,) >= 0."""
        if np.any(w < 0):
            raise ValueError("least-squares weights must be non-negative")
        xs = np.asarray(x * np.sqrt(w)[:, None], order="C")  # xs.T is Fortran-ordered: no copy for BLAS
        self.upper = scipy.linalg.blas.dsyrk(1.0, xs.T, beta=1.0, c=self.upper, trans=0, lower=0, overwrite_c=1)
        self.rhs += (x * w[:, None]).T @ y
        self.yy += float(w @ (y * y))
        self.n_samples += len(y)

    def __iadd__(self, other: NormalEquations) -> NormalEquations:
        """Pool the sums of another set of samples (e.g. of another frame)."""
        self.upper += other.upper
        self.rhs += other.rhs
        self.yy += other.yy
        self.n_samples += other.n_samples
        return self

    def error(self, beta: np.ndarray) -> float:
        """Weighted squared error sum_s w_s (x_s.beta - y_s)^2."""
        gram_beta = scipy.linalg.blas.dsymv(1.0, self.upper, beta, lower=0)
        return float(beta @ gram_beta - 2.0 * beta @ self.rhs + self.yy)


@dataclass
class TrainingReport:
    ridge: float
    validation_rmse_by_ridge: dict = field(default_factory=dict)
    train_frames: list = field(default_factory=list)
    validation_frames: list = field(default_factory=list)


def solve_ridge(train: NormalEquations, validation: NormalEquations | None, ridges=RIDGE_GRID
                ) -> tuple[np.ndarray, float, dict]:
    """Coefficients minimizing the training error + ridge |D beta|^2 (D = column norms), the ridge
    picked by the validation error; returns (beta, ridge, {ridge: validation rms of drho})."""
    scale = np.sqrt(np.maximum(np.diag(train.upper), 0.0))
    # Features that vanish on the training data (e.g. the same-species pair of an element with a
    # single atom) carry no information: their coefficients stay zero instead of fitting noise.
    # They are exactly zero; real features span many decades (water: from 2e-9 of the largest
    # column norm, uracil 1e-9, a short-range block 3e-10), so the floor sits far below them.
    active = scale > INACTIVE_FEATURE_SCALE * scale.max()
    scale_a = scale[active]
    gram_s = train.gram[np.ix_(active, active)] / scale_a[:, None] / scale_a[None, :]
    rhs_s = train.rhs[active] / scale_a
    evals, evecs = np.linalg.eigh(gram_s)
    proj = evecs.T @ rhs_s
    scores, best = {}, None
    for ridge in ridges:
        beta = np.zeros(len(scale))
        beta[active] = (evecs @ (proj / (np.maximum(evals, 0.0) + ridge))) / scale_a
        ref = validation if validation is not None else train
        score = np.sqrt(max(ref.error(beta), 0.0) / max(ref.yy, 1e-300))  # relative L2 error of drho
        scores[ridge] = score
        if best is None or score < best[2]:
            best = (beta, ridge, score)
    return best[0], best[1], scores


def density_error(model_or_none: JLCDModel | None, grid: FrameGrid, atomic_numbers, atom_coords) -> float:
    """integral |rho_in - rho_SCF| / N_e on the full grid, rho_in mapped (``positivity``) and
    renormalized as in the engine; ``None`` gives the error of rho_SAD alone."""
    n_elec = float(grid.weights @ grid.rho_scf)
    rho_in = grid.rho_sad.copy()
    if model_or_none is not None:
        drho = model_or_none.deformation_density(grid.coords, atomic_numbers, atom_coords, gradient=False,
                                                 rho_sad=grid.rho_sad)[0]
        rho_in += PositiveDensityMap.build(grid.rho_sad, drho).deformation
    n_exact = round(n_elec)
    rho_in *= n_exact / float(grid.weights @ rho_in)
    return float(np.abs(grid.weights) @ np.abs(rho_in - grid.rho_scf)) / n_exact


def rho_sad_sample_weights(rho_sad: np.ndarray, power: float) -> np.ndarray:
    """Extra least-squares weights (rho_SAD + SAMPLE_WEIGHT_RHO_FLOOR)^-power (npts,) at sampled points.

    The importance weights alone make the fit minimize the integral of (drho_model - drho)^2; the
    model is judged by the integral of |drho_model - drho|. Where the error has a typical size
    s(r), weighting the squares by 1/s aims the L2 fit at the L1 error (one step of iteratively
    reweighted least squares). Measured with the shipped model on 300 K frames: the mean |error|
    grows like rho_SAD^0.4 between rho_SAD 1e-4 and 1 e/bohr^3 (docs/VALIDATION.md), hence power ~0.4.
    """
    if not power:
        return np.ones(len(rho_sad))
    return (np.maximum(rho_sad, 0.0) + SAMPLE_WEIGHT_RHO_FLOOR) ** -power


def train_model(data: ReferenceData, hyper: JLHyperparameters, train_idx: list[int], validation_idx: list[int],
                points_per_frame: int = 3000, grid_level: int | None = None, seed: int = 0, log=sys.stderr,
                envelope_power: float | None = None, rho_sad_weight_power: float = 0.0
                ) -> tuple[JLCDModel, TrainingReport]:
    """Fit a JLCDM on frames ``train_idx`` of ``data``, choosing the ridge on ``validation_idx``;
    ``envelope_power`` p adds the block rho_SAD^p x features (``model``); ``rho_sad_weight_power``
    multiplies the sample weights by ``rho_sad_sample_weights`` (training and validation alike)."""
    grid_level = data.level.grid_level if grid_level is None else grid_level
    species = sorted(set(int(z) for z in data.atomic_numbers))
    level = replace(data.level, grid_level=grid_level)
    layout = JLCDModel.untrained(hyper, species, level, envelope_power)  # the feature layout to fit
    n_features = layout.n_features
    rng = np.random.default_rng(seed)
    envelope_text = "no envelope" if envelope_power is None else f"envelope rho_SAD^{envelope_power:.4g}"
    print(f"training: {n_features} features ({envelope_text}), {len(train_idx)} training frames, "
          f"{len(validation_idx)} validation frames, {points_per_frame} points per frame, grid level {grid_level}, "
          f"sample weights x (rho_SAD + {SAMPLE_WEIGHT_RHO_FLOOR:g})^-{rho_sad_weight_power:g}",
          file=log, flush=True)
    sums = {"train": NormalEquations.zeros(n_features), "validation": NormalEquations.zeros(n_features)}
    jobs = [("train", k) for k in train_idx] + [("validation", k) for k in validation_idx]
    for count, (role, k) in enumerate(jobs, 1):
        t0 = time.perf_counter()
        grid = frame_grid(data, k, grid_level)
        idx, weights = sample_points(grid, points_per_frame, rng)
        weights = weights * rho_sad_sample_weights(grid.rho_sad[idx], rho_sad_weight_power)
        x = layout.design_matrix(grid.coords[idx], data.atomic_numbers, data.coords_bohr[k], grid.rho_sad[idx])
        sums[role].add(x, grid.drho[idx], weights)
        print(f"  [{count}/{len(jobs)}] {role} frame {k} (source {int(data.source_index[k])}): "
              f"{len(grid.weights)} grid points, {time.perf_counter() - t0:.1f} s", file=log, flush=True)
    validation = sums["validation"] if validation_idx else None
    beta, ridge, scores = solve_ridge(sums["train"], validation)
    print(f"ridge {ridge:.0e}: validation relative L2 error of drho {scores[ridge]:.4f}", file=log, flush=True)
    report = TrainingReport(ridge, {f"{r:.0e}": s for r, s in scores.items()},
                            [int(data.source_index[k]) for k in train_idx],
                            [int(data.source_index[k]) for k in validation_idx])
    model = JLCDModel(hyper, species, beta, level, training={
        "ridge": ridge, "points_per_frame": points_per_frame, "train_source_frames": report.train_frames,
        "validation_source_frames": report.validation_frames, "seed": seed,
        "rho_sad_weight_power": rho_sad_weight_power},
        molecule=[int(z) for z in data.atomic_numbers], envelope_power=envelope_power)
    return model, report
