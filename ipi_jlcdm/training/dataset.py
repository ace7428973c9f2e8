"""Reference data for training: PySCF SCF on a set of geometries, saved as one npz.

The file stores what training needs (density matrices, not grids) plus the SCF labels:
``atomic_numbers`` (natm,), ``coords_bohr`` (nframe, natm, 3), ``energy_hartree`` (nframe,),
``forces_hartree_per_bohr`` (nframe, natm, 3), ``dipole_ebohr`` (nframe, 3), ``gap_hartree``
(nframe,), ``density_matrix`` (nframe, nao, nao), ``source_index`` (nframe,), and the JSON
string ``level`` (level of theory). It is rewritten after every frame, so an interrupted run
keeps what it finished and resumes from there.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ipi_jlcdm.electronic.level import LevelOfTheory
from ipi_jlcdm.electronic.scf_engine import SCFEngine
from ipi_jlcdm.geometry_io import Frame


@dataclass
class ReferenceData:
    """Reference SCF data of one molecule (see module docstring for shapes and units)."""

    atomic_numbers: np.ndarray
    coords_bohr: np.ndarray
    energy_hartree: np.ndarray
    forces_hartree_per_bohr: np.ndarray
    dipole_ebohr: np.ndarray
    gap_hartree: np.ndarray
    density_matrix: np.ndarray
    source_index: np.ndarray
    level: LevelOfTheory

    def __len__(self) -> int:
        return len(self.energy_hartree)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, atomic_numbers=self.atomic_numbers, coords_bohr=self.coords_bohr,
                 energy_hartree=self.energy_hartree, forces_hartree_per_bohr=self.forces_hartree_per_bohr,
                 dipole_ebohr=self.dipole_ebohr, gap_hartree=self.gap_hartree,
                 density_matrix=self.density_matrix, source_index=self.source_index,
                 level=json.dumps(self.level.to_dict()))
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> ReferenceData:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"reference data file not found: {path}")
        with np.load(path, allow_pickle=False) as d:
            return cls(atomic_numbers=d["atomic_numbers"], coords_bohr=d["coords_bohr"],
                       energy_hartree=d["energy_hartree"], forces_hartree_per_bohr=d["forces_hartree_per_bohr"],
                       dipole_ebohr=d["dipole_ebohr"], gap_hartree=d["gap_hartree"],
                       density_matrix=d["density_matrix"], source_index=d["source_index"],
                       level=LevelOfTheory.from_dict(json.loads(str(d["level"]))))

    def subset(self, indices: list[int] | np.ndarray) -> ReferenceData:
        idx = np.asarray(indices, dtype=int)
        return ReferenceData(self.atomic_numbers, self.coords_bohr[idx], self.energy_hartree[idx],
                             self.forces_hartree_per_bohr[idx], self.dipole_ebohr[idx], self.gap_hartree[idx],
                             self.density_matrix[idx], self.source_index[idx], self.level)


def build_reference_data(frames: list[Frame], indices: list[int], level: LevelOfTheory, output: str | Path,
                         log=sys.stderr, append: bool = False) -> ReferenceData:
    """Run SCF + gradient on ``frames[i]`` for i in ``indices``, saving to ``output`` after each
    frame. Frames already in ``output`` (same source index) are kept and skipped.

    ``append``: the frames come from another geometry file (e.g. the driver's flagged frames) and
    are added to ``output`` with new source indices; frames whose geometry ``output`` already holds
    are skipped (so rerunning resumes)."""
    output = Path(output)
    done: dict[int, int] = {}
    data = None
    if output.exists():
        data = ReferenceData.load(output)
        if data.level.mismatch(level):
            raise ValueError(f"{output} was built at another level of theory: {data.level.mismatch(level)}")
        done = {int(s): k for k, s in enumerate(data.source_index)}
        print(f"resuming {output}: {len(done)} frames already done", file=log)
    engine = SCFEngine(level)
    rows = {name: [] for name in ("coords", "energy", "forces", "dipole", "gap", "dm", "source")}
    if data is not None:
        rows.update(coords=list(data.coords_bohr), energy=list(data.energy_hartree),
                    forces=list(data.forces_hartree_per_bohr), dipole=list(data.dipole_ebohr),
                    gap=list(data.gap_hartree), dm=list(data.density_matrix), source=list(data.source_index))
    atomic_numbers = frames[indices[0]].atomic_numbers
    if append and data is not None:
        if not np.array_equal(data.atomic_numbers, atomic_numbers):
            raise ValueError(f"{output} holds another molecule (Z={data.atomic_numbers.tolist()}) than the frames "
                             f"to append (Z={atomic_numbers.tolist()})")
        known = data.coords_bohr.reshape(len(data), -1)
        new = [i for i in indices
               if not np.any(np.all(np.isclose(known, frames[i].coords_bohr.ravel(), atol=1e-6), axis=1))]
        offset = int(data.source_index.max()) + 1
        frames = {offset + n: frames[i] for n, i in enumerate(new)}
        indices, done = list(frames), {}
        print(f"appending {len(indices)} new frames to {output} as source frames {offset}..", file=log)
    for i in indices:  # resuming is only safe on the same geometries
        if i in done and not np.allclose(data.coords_bohr[done[i]], frames[i].coords_bohr, atol=1e-8):
            raise ValueError(f"{output} holds a different geometry for frame {i}: it was built from another "
                             "geometry file; choose a new output file")
    todo = [i for i in indices if i not in done]
    for count, i in enumerate(todo, 1):
        frame = frames[i]
        if not np.array_equal(frame.atomic_numbers, atomic_numbers):
            raise ValueError(f"frame {i} has different atoms than frame {indices[0]}")
        t0 = time.perf_counter()
        res = engine.compute(frame.atomic_numbers, frame.coords_bohr)
        rows["coords"].append(frame.coords_bohr)
        rows["energy"].append(res.energy)
        rows["forces"].append(res.forces)
        rows["dipole"].append(res.dipole)
        rows["gap"].append(res.gap)
        rows["dm"].append(engine.last_mf.make_rdm1())
        rows["source"].append(i)
        data = ReferenceData(atomic_numbers, np.array(rows["coords"]), np.array(rows["energy"]),
                             np.array(rows["forces"]), np.array(rows["dipole"]), np.array(rows["gap"]),
                             np.array(rows["dm"]), np.array(rows["source"]), level)
        data.save(output)
        print(f"[{count}/{len(todo)}] frame {i}: E = {res.energy:.8f} Ha, "
              f"{time.perf_counter() - t0:.1f} s -> {output}", file=log, flush=True)
    if data is None:
        raise ValueError("no frames selected")
    return data
