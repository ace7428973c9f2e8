"""Reading and writing geometries: XYZ (angstrom or i-PI unit tags), rMD17 npz, extended XYZ.

All readers return ``Frame`` objects in bohr.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pyscf.data import elements

from ipi_jlcdm.units import ANGSTROM_PER_BOHR, BOHR_PER_ANGSTROM

_IPI_POSITION_UNITS = re.compile(r"positions\{(\w+)\}")

#: Atoms closer than this (angstrom) are refused as input: no molecule has them, and the basis
#: functions of two atoms at one place make the overlap matrix singular.
MIN_DISTANCE_ANGSTROM = 0.3
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
        z = int(elements.charge(clean))
    except Exception as err:  # pyscf raises KeyError or similar
        raise ValueError(f"unknown element symbol {symbol!r}") from err
    if z <= 0:  # PySCF's ghost and dummy atoms ('X', 'Xx', 'Ghost')
        raise ValueError(f"unknown element symbol {symbol!r}")
    return z


def check_geometry(coords_bohr: np.ndarray, where: str, atom_lines: list[int] | None = None) -> None:
    """ValueError naming ``where`` (file and frame) if coordinates (natm, 3) bohr are not finite or
    two atoms are closer than MIN_DISTANCE_ANGSTROM; ``atom_lines`` (natm,) the file's line numbers."""
    def atom(k: int) -> str:
        return f"atom {k + 1}" + (f" (line {atom_lines[k]})" if atom_lines is not None else "")

    bad = np.nonzero(~np.all(np.isfinite(coords_bohr), axis=1))[0]
    if bad.size:
        raise ValueError(f"{where}: {atom(int(bad[0]))} has a non-finite coordinate")
    if len(coords_bohr) > 1:
        diff = coords_bohr[:, None, :] - coords_bohr[None, :, :]
        dist = np.sqrt(np.einsum("ijx,ijx->ij", diff, diff)) * ANGSTROM_PER_BOHR
        dist[np.diag_indices(len(dist))] = np.inf
        i, j = np.unravel_index(int(np.argmin(dist)), dist.shape)
        if dist[i, j] < MIN_DISTANCE_ANGSTROM:
            i, j = min(i, j), max(i, j)
            raise ValueError(f"{where}: {atom(i)} and {atom(j)} are {dist[i, j]:.3f} angstrom apart "
                             f"(closer than {MIN_DISTANCE_ANGSTROM} angstrom)")


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
            hint = " (more atom lines than the previous frame announced?)" if frames else ""
            raise ValueError(f"{path}:{i + 1}: expected an atom count, got {lines[i]!r}{hint}") from err
        if natm < 1:
            raise ValueError(f"{path}:{i + 1}: frame announces {natm} atoms")
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
            where = f"{path}:{i + 3 + k} (frame {len(frames)})"
            if len(parts) < 4:
                raise ValueError(f"{where}: expected 'symbol x y z', got {len(parts)} column(s): {line!r}")
            try:
                zs.append(symbol_to_z(parts[0]))
                xyz.append([float(v) for v in parts[1:4]])
            except ValueError as err:
                raise ValueError(f"{where}: bad atom line {line!r} ({err})") from err
        coords = np.array(xyz, dtype=float).reshape(natm, 3) * _LENGTH_TO_BOHR[unit]
        check_geometry(coords, f"{path} (frame {len(frames)})", [i + 3 + k for k in range(natm)])
        frames.append(Frame(np.array(zs, dtype=int), coords, comment))
        i += 2 + natm
    if not frames:
        raise ValueError(f"{path}: no frames found")
    return frames


def read_rmd17(path: str | Path) -> list[Frame]:
    """Frames of an rMD17 npz file (keys ``nuclear_charges``, ``coords`` in angstrom)."""
    with np.load(path) as data:
        zs = np.asarray(data["nuclear_charges"], dtype=int)
        coords = np.asarray(data["coords"], dtype=float) * BOHR_PER_ANGSTROM
    for k, c in enumerate(coords):
        check_geometry(c, f"{path} (frame {k})")
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
