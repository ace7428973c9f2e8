"""The JLCDM model file: hyperparameters, species, coefficients, level of theory.

Format: one ``.npz`` (no pickle) with ``coefficients`` (n_features,) float64 and ``metadata``, a
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

from .descriptor import ContractedCoefficients, JLDescriptor, JLHyperparameters
from .level import LevelOfTheory

FORMAT = "ipi_jlcdm-model"
FORMAT_VERSION = 1
PACKAGED_MODELS = ("uracil",)


#: Step of the central differences in ``deformation_density_vjp`` (bohr).
VJP_STEP_BOHR = 1e-4


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

    def __post_init__(self):
        self.species = sorted(int(z) for z in self.species)
        self.descriptor = JLDescriptor(self.hyper, self.species)
        self.coefficients = np.asarray(self.coefficients, dtype=float)
        if self.molecule is not None:
            self.molecule = [int(z) for z in self.molecule]
        if self.coefficients.shape != (self.descriptor.n_features,):
            raise ModelFileError(f"model has {self.coefficients.size} coefficients, its hyperparameters "
                                 f"need {self.descriptor.n_features}")
        self._contracted: ContractedCoefficients | None = None

    @property
    def contracted(self) -> ContractedCoefficients:
        if self._contracted is None:
            self._contracted = self.descriptor.contract(self.coefficients)
        return self._contracted

    def deformation_density(self, points: np.ndarray, atomic_numbers: np.ndarray, atom_coords: np.ndarray,
                            gradient: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """delta rho (npts,) in e/bohr^3 and its gradient (npts, 3) at points (npts, 3) bohr."""
        return self.descriptor.predict(points, atomic_numbers, atom_coords, self.contracted, gradient)

    def deformation_density_vjp(self, points: np.ndarray, atomic_numbers: np.ndarray, atom_coords: np.ndarray,
                                potential: np.ndarray) -> np.ndarray:
        """sum_g u_g . d(delta rho, grad delta rho)(r_g) / d R_A: (natm, 3), for u = ``potential``
        (4, npts) (weights included; u[1:4] multiplies the gradient channels).

        The value channel is analytic (``atom_derivatives``). The gradient channels need
        d(grad delta rho)/dR = grad_r (d delta rho / dR): a directional derivative of the analytic
        atom derivatives along u[1:4] at each point, by central differences over
        VJP_STEP_BOHR (error O(step^2), ~1e-8 relative).
        """
        desc, coefs = self.descriptor, self.contracted
        out = desc.atom_derivatives(points, atomic_numbers, atom_coords, coefs, point_weights=potential[0])
        norm = np.linalg.norm(potential[1:4], axis=0)
        active = norm > 0
        if not active.any():
            return out
        step = VJP_STEP_BOHR * potential[1:4, active].T / norm[active, None]
        weights = norm[active] / (2 * VJP_STEP_BOHR)
        for sign in (1.0, -1.0):
            out += sign * desc.atom_derivatives(points[active] + sign * step, atomic_numbers, atom_coords, coefs,
                                                point_weights=weights)
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
                "molecule_atomic_numbers": self.molecule, "n_features": int(self.descriptor.n_features),
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
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise ModelFileError(f"{path}: unsupported model format {meta.get('format')!r} "
                                 f"version {meta.get('format_version')!r}")
        if meta.get("coefficients_sha256") != _sha256(coefficients):
            raise ModelFileError(f"{path}: coefficients do not match their checksum (file corrupted)")
        if not np.all(np.isfinite(coefficients)):
            raise ModelFileError(f"{path}: coefficients contain NaN or infinity")
        try:
            return cls(JLHyperparameters.from_dict(meta["hyperparameters"]), meta["species"], coefficients,
                       LevelOfTheory.from_dict(meta["level_of_theory"]), meta.get("training", {}),
                       meta.get("molecule_atomic_numbers"))
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
