"""Reading and writing geometries: XYZ (angstrom or i-PI unit tags), rMD17 npz, extended XYZ.

All readers return ``Frame`` objects in bohr.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pyscf.data import elements

from .units import ANGSTROM_PER_BOHR, BOHR_PER_ANGSTROM

_IPI_POSITION_UNITS = re.compile(r"positions\{(\w+)\}")
_LENGTH_TO_BOHR = {"angstrom": BOHR_PER_ANGSTROM, "atomic_unit": 1.0, "bohr": 1.0, "nanometer": 10 * BOHR_PER_ANGSTROM}


@dataclass
class Frame:
    """One geometry: atomic numbers (natm,) and coordinates (natm, 3) in bohr."""

    atomic_numbers: np.ndarray
    coords_bohr: np.ndarray
    comment: str = ""


def symbol_to_z(symbol: str) -> int:
    """Atomic number of an element symbol ('C', 'cl', 'H1' -> 1)."""
    clean = re.sub(r"[^A-Za-z]", "", symbol)
    try:
        return int(elements.charge(clean))
    except Exception as err:  # pyscf raises KeyError or similar
        raise ValueError(f"unknown element symbol {symbol!r}") from err


def read_xyz(path: str | Path) -> list[Frame]:
    """All frames of a (multi-frame) XYZ file. Angstrom unless the comment line carries an i-PI
    tag such as ``positions{atomic_unit}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"geometry file not found: {path}")
    lines = path.read_text().splitlines()
    frames, i = [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        try:
            natm = int(lines[i].split()[0])
        except ValueError as err:
            raise ValueError(f"{path}:{i + 1}: expected an atom count, got {lines[i]!r}") from err
        if i + 2 + natm > len(lines):
            raise ValueError(f"{path}:{i + 1}: frame announces {natm} atoms but the file ends early")
        comment = lines[i + 1]
        match = _IPI_POSITION_UNITS.search(comment)
        unit = match.group(1) if match else "angstrom"
        if unit not in _LENGTH_TO_BOHR:
            raise ValueError(f"{path}:{i + 2}: unsupported position unit {unit!r}")
        zs, xyz = [], []
        for k, line in enumerate(lines[i + 2 : i + 2 + natm]):
            parts = line.split()
            try:
                zs.append(symbol_to_z(parts[0]))
                xyz.append([float(v) for v in parts[1:4]])
            except (ValueError, IndexError) as err:
                raise ValueError(f"{path}:{i + 3 + k}: bad atom line {line!r}") from err
        frames.append(Frame(np.array(zs), np.array(xyz) * _LENGTH_TO_BOHR[unit], comment))
        i += 2 + natm
    if not frames:
        raise ValueError(f"{path}: no frames found")
    return frames


def read_rmd17(path: str | Path) -> list[Frame]:
    """Frames of an rMD17 npz file (keys ``nuclear_charges``, ``coords`` in angstrom)."""
    with np.load(path) as data:
        zs = np.asarray(data["nuclear_charges"], dtype=int)
        coords = np.asarray(data["coords"], dtype=float) * BOHR_PER_ANGSTROM
    return [Frame(zs, c, f"rmd17 frame {k}") for k, c in enumerate(coords)]


def read_frames(path: str | Path) -> list[Frame]:
    """Frames from an XYZ file, an i-PI xyz trajectory or an rMD17 npz (by extension)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"geometry file not found: {path}")
    if path.suffix == ".npz":
        return read_rmd17(path)
    return read_xyz(path)


def parse_frame_selection(spec: str | None, n_total: int) -> list[int]:
    """Indices from a selection like '0:24', '0:100:4', '3,7,9', '0:32,44:60' or None (all)."""
    if spec is None or spec == "":
        return list(range(n_total))
    indices = []
    for part in spec.split(","):
        if ":" in part:
            bounds = [int(p) if p else None for p in part.split(":")]
            indices += list(range(n_total))[slice(*bounds)]
        else:
            indices.append(int(part))
    return indices


def format_extxyz_frame(atomic_numbers: np.ndarray, coords_bohr: np.ndarray, forces_ev_per_angstrom: np.ndarray,
                        frame_keys: dict[str, object]) -> str:
    """One extended-XYZ frame: positions in angstrom, per-atom forces in eV/angstrom.

    ``frame_keys`` values: floats, or sequences of floats written in quotes.
    """
    keys = []
    for key, value in frame_keys.items():
        if isinstance(value, list | tuple | np.ndarray):
            keys.append(f'{key}="' + " ".join(f"{float(v):.10g}" for v in value) + '"')
        else:
            keys.append(f"{key}={float(value):.12g}")
    header = "Properties=species:S:1:pos:R:3:forces:R:3 " + " ".join(keys)
    lines = [str(len(atomic_numbers)), header]
    for z, xyz, f in zip(atomic_numbers, np.asarray(coords_bohr) * ANGSTROM_PER_BOHR, forces_ev_per_angstrom,
                         strict=True):
        lines.append(f"{elements.ELEMENTS[int(z)]:2s} " + " ".join(f"{v:16.10f}" for v in (*xyz, *f)))
    return "\n".join(lines) + "\n"


#: Comment line of an XYZ file that starts an i-PI run of a molecule: positions in angstrom and a box
#: that i-PI ignores without periodic boundaries (pbc='false' in the shipped inputs).
IPI_XYZ_COMMENT = "# CELL(abcABC): 20.0 20.0 20.0 90.0 90.0 90.0 Step: 0 Bead: 0 positions{angstrom} cell{angstrom}"


def format_xyz_frame(atomic_numbers: np.ndarray, coords_bohr: np.ndarray, comment: str = "") -> str:
    """One plain XYZ frame with positions in angstrom (``read_xyz`` reads it back)."""
    lines = [str(len(atomic_numbers)), comment.replace("\n", " ")]
    for z, xyz in zip(atomic_numbers, np.asarray(coords_bohr) * ANGSTROM_PER_BOHR, strict=True):
        lines.append(f"{elements.ELEMENTS[int(z)]:2s} " + " ".join(f"{v:16.10f}" for v in xyz))
    return "\n".join(lines) + "\n"
