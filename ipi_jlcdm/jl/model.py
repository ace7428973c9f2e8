"""The JLCDM model file: hyperparameters, species, coefficients, level of theory.

The model of the deformation density is linear in its coefficients:

    drho(r) = f_0(r) + e(r) f_1(r),   e(r) = (max(rho_SAD(r), 0) + SAD_FLOOR)^p

f_0, f_1: JL expansions on the same features (``descriptor``) with their own coefficients; the
envelope block (e f_1, present when ``envelope_power`` p is set) follows the atomic densities, so
the model can be sharp near the nuclei and small in the vacuum (measured on uracil: density error
1.33 % -> 0.86 % at 32 training frames, docs/VALIDATION.md). Models without it have only f_0.

Format: one ``.npz`` (no pickle) with ``coefficients`` (n_blocks * n_features,) float64 and ``metadata``, a
JSON string holding the format version, hyperparameters (angstrom in key names), species, level of
theory, training summary and the SHA-256 of the coefficients (detects corruption). Human-readable
provenance goes next to it in ``<name>.provenance.json``.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ipi_jlcdm.electronic.level import LevelOfTheory
from ipi_jlcdm.jl import jl_kernels
from ipi_jlcdm.jl.descriptor import ContractedCoefficients, JLDescriptor, JLHyperparameters, PairDerivatives
from ipi_jlcdm.parallel import SerialComm, equal_cost_slices

FORMAT = "ipi_jlcdm-model"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1: no envelope block
PACKAGED_MODELS = ("uracil", "water")


#: Added to rho_SAD (e/bohr^3) inside the envelope so that its derivatives stay finite where
#: rho_SAD vanishes (changes e by at most SAD_FLOOR^p, 1e-4 for p = 1/3).
SAD_FLOOR = 1e-12

#: Step of the central differences in ``deformation_density_vjp`` (bohr). Measured on uracil (20k grid
#: points, random potential; VJP of size 1.4) against h = 3e-5: 5e-5 at h = 1e-4 (the value channel
#: is the mean of the two passes), 5e-8 at 1e-5, 3e-7 at 1e-6 (roundoff): the plateau is at 1e-5.
VJP_STEP_BOHR = 1e-5

#: Step of the one-sided differences when the model pass's own atom derivatives are at hand (the
#: engine: ``deformation_density_with_response`` keeps them): one displaced pass instead of two.
#: Measured on uracil (151k grid points, the potential of a route (b) step; VJP components up to
#: 0.024 Ha/bohr) against the central differences above: 1.2e-7 Ha/bohr at 1e-5, 1.5e-8 at 1e-6,
#: 9e-8 at 1e-7 (roundoff), 1.5e-6 at 1e-8.
VJP_FORWARD_STEP_BOHR = 1e-6


#: Screen of the displaced pass of ``deformation_density_vjp``: a point is left out when its
#: gradient-channel potential |u| times the scale of its atom derivatives' change (the sum over its
#: pairs of |d drho / d R_atom| / max(r, VJP_SCREEN_MIN_DISTANCE_BOHR), from the model pass) is below
#: VJP_SCREEN of the largest such product over the grid. The largest change of any force component
#: against the unscreened VJP, on route (b) steps: uracil (129.5k points, two frames) 1.2e-7 and
#: 4.3e-7 Ha/bohr with 74.6 / 73.6 % of the points kept; water 4.6e-9 (77.8 %); ethanol at 500 K
#: 3.7e-7 (74.4 %); malonaldehyde at 300 K 2.8e-7 (77.3 %). The potential alone (|u| above 1e-9 of
#: its largest) kept 85-92 % of the points for 1.4e-7 to 3.2e-6 Ha/bohr on the same steps.
VJP_SCREEN = 1e-4
VJP_SCREEN_MIN_DISTANCE_BOHR = 0.05

#: Cost of a displaced point in units of one of its (point, atom) pairs, for sharing the displaced
#: pass out over MPI ranks: on uracil's grid the contraction takes ~7.7 us per point and the pair
#: terms and outputs ~1.1 us per pair (one thread).
VJP_POINT_COST_IN_PAIRS = 7.0


def _share_displaced_points(moved: np.ndarray, weights: np.ndarray, pair_counts: np.ndarray, comm
                            ) -> tuple[np.ndarray, np.ndarray]:
    """This rank's share of the displaced points of all ranks: positions (n, 3) bohr and weights
    (nch, n) of its own kept points in, those of an equal-cost slice of everyone's out (the cost of a
    point: its pair count plus VJP_POINT_COST_IN_PAIRS)."""
    everyone = comm.allgather(np.column_stack([moved, weights.T, pair_counts]))
    mine = everyone[equal_cost_slices(VJP_POINT_COST_IN_PAIRS + everyone[:, -1], comm.size)[comm.rank]]
    return np.ascontiguousarray(mine[:, :3]), np.ascontiguousarray(mine[:, 3:-1].T)


def envelope(rho_sad: np.ndarray, power: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """e = (max(rho_SAD, 0) + SAD_FLOOR)^p and its first two derivatives with respect to rho_SAD
    (all shaped like ``rho_sad``, e/bohr^3 in)."""
    base = np.maximum(rho_sad, 0.0) + SAD_FLOOR
    value = base ** power
    first = power * value / base
    return value, first, (power - 1.0) * first / base


@dataclass
class EnvelopeResponse:
    """The envelope block at a set of points: f_1 (npts,), grad f_1 (npts, 3), phi' and phi'' of
    e = phi(rho_SAD) (npts,), grad rho_SAD (3, npts)."""

    f1: np.ndarray
    grad_f1: np.ndarray
    de: np.ndarray
    d2e: np.ndarray
    grad_sad: np.ndarray

    def sad_potential(self, potential: np.ndarray, sl: slice = slice(None)) -> np.ndarray:
        """w (4, blk) such that sum_g w_g . d(rho_SAD, grad rho_SAD)(r_g)/dR is the part of
        sum_g u_g . d(drho, grad drho)(r_g)/dR that moves through e(rho_SAD), for u = ``potential``
        (4, blk) on the points ``sl``.

        d(e f_1) = f_1 phi' d rho_SAD and d grad(e f_1) = (grad f_1 phi' + f_1 phi'' grad rho_SAD) d rho_SAD
        + f_1 phi' d grad rho_SAD (the parts at fixed f_1)."""
        f1, de, d2e = self.f1[sl], self.de[sl], self.d2e[sl]
        out = np.empty_like(potential)
        out[0] = (de * (potential[0] * f1 + np.einsum("xg,gx->g", potential[1:4], self.grad_f1[sl]))
                  + d2e * f1 * np.einsum("xg,xg->g", potential[1:4], self.grad_sad[:, sl]))
        out[1:4] = (de * f1) * potential[1:4]
        return out


class ModelFileError(ValueError):
    """A model file is missing, corrupted or inconsistent."""


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype="<f8").tobytes()).hexdigest()


@dataclass
class JLCDModel:
    """A trained linear JL model of the deformation density rho_SCF - rho_SAD (electrons/bohr^3)."""

    hyper: JLHyperparameters
    species: list[int]
    coefficients: np.ndarray
    level: LevelOfTheory
    training: dict = field(default_factory=dict)
    molecule: list[int] | None = None  # atomic numbers, in order, of the molecule it was trained on
    envelope_power: float | None = None  # p of the envelope block; None: no envelope block
    #: mean E_HF - E_SCF (hartree) on the model's validation frames: the one-shot engine subtracts it
    #: (a constant, so forces are unchanged) so that its energies line up with SCF ones, e.g. on
    #: fallback steps; 0 for models trained without the engine check
    energy_offset_hartree: float = 0.0

    def __post_init__(self):
        self.species = sorted(int(z) for z in self.species)
        self.descriptor = JLDescriptor(self.hyper, self.species)
        self.coefficients = np.asarray(self.coefficients, dtype=float)
        if self.molecule is not None:
            self.molecule = [int(z) for z in self.molecule]
        if self.envelope_power is not None:
            self.envelope_power = float(self.envelope_power)
            if self.envelope_power <= 0:
                raise ModelFileError(f"envelope power must be > 0, got {self.envelope_power}")
        if self.coefficients.shape != (self.n_blocks * self.descriptor.n_features,):
            raise ModelFileError(f"model has {self.coefficients.size} coefficients, its hyperparameters "
                                 f"need {self.n_blocks} x {self.descriptor.n_features}")
        self._contracted: list[ContractedCoefficients] | None = None

    @classmethod
    def untrained(cls, hyper: JLHyperparameters, species: list[int], level: LevelOfTheory,
                  envelope_power: float | None = None, molecule: list[int] | None = None) -> JLCDModel:
        """A model with zero coefficients (drho = 0): the feature layout before training, or a
        stand-in for timings."""
        n_blocks = 1 if envelope_power is None else 2
        zeros = np.zeros(n_blocks * JLDescriptor(hyper, species).n_features)
        return cls(hyper, species, zeros, level, molecule=molecule, envelope_power=envelope_power)

    @property
    def n_blocks(self) -> int:
        """1 (f_0 only) or 2 (f_0 and the envelope block)."""
        return 1 if self.envelope_power is None else 2

    @property
    def n_features(self) -> int:
        return self.n_blocks * self.descriptor.n_features

    @property
    def contracted(self) -> list[ContractedCoefficients]:
        """Contracted coefficients of f_0 (and f_1)."""
        if self._contracted is None:
            n = self.descriptor.n_features
            self._contracted = [self.descriptor.contract(self.coefficients[k * n:(k + 1) * n])
                                for k in range(self.n_blocks)]
        return self._contracted

    def design_matrix(self, points: np.ndarray, atomic_numbers: np.ndarray, atom_coords: np.ndarray,
                      rho_sad: np.ndarray | None = None) -> np.ndarray:
        """Features (npts, n_features) such that drho = features @ coefficients; ``rho_sad``
        (npts,) e/bohr^3 at the points is needed for the envelope block."""
        x = self.descriptor.features(points, atomic_numbers, atom_coords)
        if self.envelope_power is None:
            return x
        e = envelope(self._sad_value(rho_sad, len(points)), self.envelope_power)[0]
        return np.concatenate([x, x * e[:, None]], axis=1)

    def deformation_density(self, points: np.ndarray, atomic_numbers: np.ndarray, atom_coords: np.ndarray,
                            gradient: bool = True, rho_sad: np.ndarray | None = None
                            ) -> tuple[np.ndarray, np.ndarray | None]:
        """delta rho (npts,) in e/bohr^3 and its gradient (npts, 3) at points (npts, 3) bohr.

        ``rho_sad``: the atomic superposition at the points, (npts,) or with its gradient (4, npts)
        (needed by models with an envelope block; the gradient when ``gradient``)."""
        drho, grad, _, _ = self._predict(points, atomic_numbers, atom_coords, gradient, rho_sad, False)
        return drho, grad

    def deformation_density_with_response(self, points: np.ndarray, atomic_numbers: np.ndarray,
                                          atom_coords: np.ndarray, rho_sad: np.ndarray
                                          ) -> tuple[np.ndarray, np.ndarray, EnvelopeResponse | None,
                                                     PairDerivatives]:
        """``deformation_density`` with its gradient, for envelope models the EnvelopeResponse (f_1
        and grad f_1 alone) from the same pass (rho_sad (4, npts)), and the pass's atom derivatives
        (PairDerivatives, for ``deformation_density_vjp`` at the same points and geometry): the
        consistent forces need all three; one extra derivative pass shares the pair terms and
        contractions."""
        return self._predict(points, atomic_numbers, atom_coords, True, rho_sad, True)

    def _predict(self, points, atomic_numbers, atom_coords, gradient: bool, rho_sad, response: bool):
        """(delta rho, its gradient or None, EnvelopeResponse or None, PairDerivatives or None); the
        last two with ``response``."""
        if self.envelope_power is None:
            out = self.descriptor.predict_mixed(points, atomic_numbers, atom_coords, self.contracted,
                                                None, gradient or response, keep_pairs=response)
            return out[0][0], (out[1] if gradient or response else None), None, (out[2] if response else None)
        sad = self._sad_value(rho_sad, len(points), need_gradient=gradient or response)
        e, de, d2e = envelope(sad, self.envelope_power)
        mixing = np.stack([np.ones_like(e), e])
        if response:  # also grad f_1 alone: mixing (0, 1)
            mixing = np.stack([mixing, np.stack([np.zeros_like(e), np.ones_like(e)])])
        out = self.descriptor.predict_mixed(points, atomic_numbers, atom_coords, self.contracted,
                                            mixing, gradient or response, keep_pairs=response)
        values, grad = out[0], out[1]
        drho = values[0] + e * values[1]
        env, pairs = None, None
        if response:
            grad, grad_f1 = grad
            env = EnvelopeResponse(values[1], grad_f1, de, d2e, np.asarray(rho_sad)[1:4])
            pairs = out[2]
        if not (gradient or response):
            return drho, None, None, None
        return drho, grad + (values[1] * de)[:, None] * np.asarray(rho_sad)[1:4].T, env, pairs  # + f_1 grad e

    @staticmethod
    def _sad_value(rho_sad: np.ndarray | None, npts: int, need_gradient: bool = False) -> np.ndarray:
        """rho_SAD values (npts,) from (npts,) or (4, npts); ValueError if missing or misshapen."""
        if rho_sad is None:
            raise ValueError("this model has an envelope block: pass rho_sad (the SAD density at the points)")
        rho_sad = np.asarray(rho_sad, dtype=float)
        if need_gradient and rho_sad.shape != (4, npts):
            raise ValueError(f"rho_sad must be (4, {npts}) (value and gradient), got {rho_sad.shape}")
        if rho_sad.shape == (npts,):
            return rho_sad
        if rho_sad.shape == (4, npts):
            return rho_sad[0]
        raise ValueError(f"rho_sad must be ({npts},) or (4, {npts}), got {rho_sad.shape}")

    def deformation_density_vjp(self, points: np.ndarray, atomic_numbers: np.ndarray, atom_coords: np.ndarray,
                                potential: np.ndarray, rho_sad: np.ndarray | None = None,
                                pairs: PairDerivatives | None = None, comm=None,
                                screen: float | None = None) -> np.ndarray:
        """sum_g u_g . d(delta rho, grad delta rho)(r_g) / d R_A at fixed rho_SAD: (natm, 3), for u =
        ``potential`` (4, npts) (weights included; u[1:4] multiplies the gradient channels). With an
        envelope block rho_sad (4, npts) is needed; the motion of rho_SAD is the EnvelopeResponse of
        ``deformation_density_with_response``.

        The value channel is analytic (``atom_derivatives``). The gradient channels need
        d(grad delta rho)/dR = grad_r (d delta rho / dR): a directional derivative of the analytic
        atom derivatives along u[1:4] at each point, by central differences over VJP_STEP_BOHR. The
        value channel rides on the same two passes, as the mean of the two displaced evaluations
        (error h^2/2 of the second derivative; 5e-8 of the VJP at VJP_STEP_BOHR, measured): two passes
        over the points, not three. With ``pairs``, the atom derivatives of the model pass at these
        points (``deformation_density_with_response``), the value channel and the undisplaced end of
        one-sided differences (VJP_FORWARD_STEP_BOHR) come from them: one pass, over the points where
        the gradient-channel potential times the scale of the atom derivatives' change is above
        ``screen`` of the largest (default VJP_SCREEN; 0: every point). ``comm``: the MPI communicator
        (``parallel``) when each rank holds part of the points: the largest product is taken over all
        ranks, so that every partition of the grid screens the same points, and the kept points of all
        ranks are shared out again by their cost (the screen keeps different fractions of each rank's
        points); the ranks' results add up to the VJP. Default: these points alone.
        """
        # weights of f_0 (and f_1) on the value channel and along the direction of u[1:4]
        norm = np.linalg.norm(potential[1:4], axis=0)
        value_weights, gradient_weights = [potential[0]], [norm]
        if self.envelope_power is not None:
            # f_1 enters as e f_1 and grad(e f_1) = e grad f_1 + f_1 grad e: its potential is
            # (u_0 e + u . grad e, e u), along the same direction as u
            rho_sad = None if rho_sad is None else np.asarray(rho_sad)
            e, de, _ = envelope(self._sad_value(rho_sad, len(points), need_gradient=True), self.envelope_power)
            value_weights.append(e * potential[0] + de * np.einsum("xg,xg->g", potential[1:4], rho_sad[1:4]))
            gradient_weights.append(e * norm)
        value_weights, gradient_weights = np.array(value_weights), np.array(gradient_weights)
        direction = np.zeros((len(points), 3))
        active = norm > 0
        direction[active] = potential[1:4, active].T / norm[active, None]
        if pairs is not None:
            # both ends of the differences only where the gradient channels carry weight (VJP_SCREEN)
            score = norm * jl_kernels.point_derivative_scale(
                pairs.point, pairs.atom, np.ascontiguousarray(pairs.g[0]), np.ascontiguousarray(points, dtype=float),
                np.ascontiguousarray(atom_coords, dtype=float), len(points), VJP_SCREEN_MIN_DISTANCE_BOHR)
            comm = SerialComm() if comm is None else comm
            overall = comm.allreduce_max(float(score.max()) if score.size else 0.0)
            screen = VJP_SCREEN if screen is None else screen
            kept = score > screen * max(overall, 1e-300) if screen > 0 else norm > 0
            gradient_weights[:, ~kept] = 0.0
            step = VJP_FORWARD_STEP_BOHR
            at_points = value_weights - gradient_weights / step  # per channel f_k
            if self.envelope_power is not None:  # the pass's mixings are (1, e) and (0, 1)
                at_points = np.array([at_points[0], at_points[1] - e * at_points[0]])
            out = pairs.contract(at_points, len(atom_coords))
            moved, weights = points[kept] + step * direction[kept], gradient_weights[:, kept] / step
            if comm.size > 1:
                pair_counts = np.bincount(pairs.point, minlength=len(points))[kept]
                moved, weights = _share_displaced_points(moved, weights, pair_counts, comm)
            return out + self.descriptor.atom_derivatives(moved, atomic_numbers, atom_coords, self.contracted,
                                                          point_weights=weights)
        out = np.zeros((len(atom_coords), 3))
        for sign in (1.0, -1.0):
            out += self.descriptor.atom_derivatives(
                points + sign * VJP_STEP_BOHR * direction, atomic_numbers, atom_coords, self.contracted,
                point_weights=0.5 * value_weights + sign * gradient_weights / (2 * VJP_STEP_BOHR))
        return out

    def check_compatible(self, atomic_numbers: np.ndarray, level: LevelOfTheory | None = None) -> None:
        """ValueError if the molecule has elements the model lacks or the level of theory differs."""
        self.descriptor.species_indices(atomic_numbers)
        if level is not None and self.level.mismatch(level):
            differences = "; ".join(self.level.mismatch(level))
            raise ValueError(f"the model was trained at another level of theory: {differences}")

    # ------------------------------------------------------------------ I/O
    def metadata(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "hyperparameters": self.hyper.to_dict(),
                "species": self.species, "level_of_theory": self.level.to_dict(),
                "molecule_atomic_numbers": self.molecule, "n_features": int(self.n_features),
                "envelope_power": self.envelope_power, "energy_offset_hartree": float(self.energy_offset_hartree),
                "coefficients_sha256": _sha256(self.coefficients),
                "training": self.training}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        with open(path, "wb") as handle:
            np.savez(handle, coefficients=self.coefficients, metadata=np.array(json.dumps(self.metadata())))
        return path

    @classmethod
    def load(cls, path: str | Path) -> JLCDModel:
        """Load and validate a model file; ``path`` may be a packaged model name such as 'uracil'."""
        path = resolve_model_path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if "coefficients" not in data.files or "metadata" not in data.files:
                    raise ModelFileError(f"{path}: not an ipi_jlcdm model (needs 'coefficients' and 'metadata')")
                coefficients = np.array(data["coefficients"], dtype=float)
                meta = json.loads(str(data["metadata"]))
        except (zipfile.BadZipFile, OSError, EOFError, json.JSONDecodeError) as err:
            raise ModelFileError(f"{path}: corrupted or unreadable model file ({err})") from err
        except ValueError as err:
            if isinstance(err, ModelFileError):
                raise
            raise ModelFileError(f"{path}: corrupted or unreadable model file ({err})") from err
        if meta.get("format") != FORMAT or meta.get("format_version") not in READABLE_VERSIONS:
            raise ModelFileError(f"{path}: unsupported model format {meta.get('format')!r} "
                                 f"version {meta.get('format_version')!r}")
        if meta.get("coefficients_sha256") != _sha256(coefficients):
            raise ModelFileError(f"{path}: coefficients do not match their checksum (file corrupted)")
        if not np.all(np.isfinite(coefficients)):
            raise ModelFileError(f"{path}: coefficients contain NaN or infinity")
        try:
            return cls(JLHyperparameters.from_dict(meta["hyperparameters"]), meta["species"], coefficients,
                       LevelOfTheory.from_dict(meta["level_of_theory"]), meta.get("training", {}),
                       meta.get("molecule_atomic_numbers"), meta.get("envelope_power"),
                       float(meta.get("energy_offset_hartree", 0.0)))
        except (KeyError, TypeError) as err:
            raise ModelFileError(f"{path}: incomplete metadata ({err})") from err


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A packaged model name ('uracil') or a path to an .npz file."""
    text = str(name_or_path)
    if text in PACKAGED_MODELS:
        return Path(str(resources.files("ipi_jlcdm") / "models" / f"{text}.npz"))
    path = Path(text)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path} (packaged models: {', '.join(PACKAGED_MODELS)})")
    return path
