"""MPI in one place: a communicator wrapper (serial when not launched by mpiexec) and the
work-balanced partition of the integration grid.

The physics calls only ``rank``, ``size``, ``allreduce_sum``, ``allreduce_max``, ``allgather``,
``bcast`` and ``abort``, so serial and parallel runs share every line of physics. mpi4py is imported
only when the process was started by an MPI launcher (so plain runs never initialize MPI).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

#: Seconds a rank waits between its last message and MPI_Abort (see ``MPIComm.abort``).
ABORT_GRACE_S = 1.0

_LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS",
                       "HYDRA_CONTROL_FD")


class SerialComm:
    """The communicator of a run without MPI."""

    rank, size = 0, 1

    def allreduce_sum(self, array):
        return array

    def allreduce_max(self, value: float) -> float:
        return float(value)

    def allgather(self, array: np.ndarray) -> np.ndarray:
        return np.asarray(array, dtype=float)

    def bcast(self, obj, root: int = 0):
        return obj

    def abort(self, code: int = 1) -> None:
        sys.exit(code)


class MPIComm:
    """mpi4py's COMM_WORLD behind the same small interface."""

    def __init__(self):
        from mpi4py import MPI

        self._mpi = MPI
        self.comm = MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    def allreduce_sum(self, array):
        """Elementwise sum over ranks of a float or an ndarray (same result on every rank)."""
        if np.isscalar(array):
            return self.comm.allreduce(float(array), op=self._mpi.SUM)
        send = np.ascontiguousarray(array, dtype=float)
        out = np.empty_like(send)
        self.comm.Allreduce(send, out, op=self._mpi.SUM)
        return out

    def allreduce_max(self, value: float) -> float:
        """The largest of a float over ranks (same result on every rank)."""
        return self.comm.allreduce(float(value), op=self._mpi.MAX)

    def allgather(self, array: np.ndarray) -> np.ndarray:
        """Every rank's float array (n_rank, ...) stacked along the first axis in rank order (the
        same on every rank; the trailing shape must agree)."""
        send = np.ascontiguousarray(array, dtype=float)
        row = int(np.prod(send.shape[1:], dtype=int))
        counts = np.array(self.comm.allgather(send.size))
        out = np.empty((int(counts.sum()) // max(row, 1), *send.shape[1:]))
        self.comm.Allgatherv(send, [out, counts, np.r_[0, np.cumsum(counts)[:-1]], self._mpi.DOUBLE])
        return out

    def bcast(self, obj, root: int = 0):
        return self.comm.bcast(obj, root=root)

    def abort(self, code: int = 1) -> None:
        """MPI_Abort after a pause of ABORT_GRACE_S: the launcher tears the job down at once and may drop
        output of this rank it has not forwarded yet, such as the message that says why (seen under load)."""
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(ABORT_GRACE_S)
        self.comm.Abort(code)


_WORLD = None


def world():
    """The process's communicator: MPI when started by mpiexec/mpirun with more than one rank."""
    global _WORLD
    if _WORLD is None:
        if any(v in os.environ for v in _LAUNCHER_VARIABLES):
            comm = MPIComm()
            _WORLD = comm if comm.size > 1 else SerialComm()
        else:
            _WORLD = SerialComm()
    return _WORLD


#: Relative cost of a grid point: AO work for every point, the Coulomb potential for points with a
#: model density, and the model per atom within r_cut (measured on uracil, level-3 grid).
COST_PER_POINT, COST_IF_MODEL, COST_PER_NEIGHBOUR = 1.0, 0.65, 0.14


def partition_grid(coords: np.ndarray, atom_coords: np.ndarray, r_cut: float, size: int) -> list[slice]:
    """Contiguous slices of the grid (PySCF sorts points into spatial blocks) with equal estimated
    work per rank, not just equal point counts."""
    if size == 1:
        return [slice(0, len(coords))]
    neighbours = np.zeros(len(coords))
    for atom in atom_coords:
        neighbours += np.einsum("gx,gx->g", coords - atom, coords - atom) < r_cut * r_cut
    return equal_cost_slices(COST_PER_POINT + COST_IF_MODEL * (neighbours > 0) + COST_PER_NEIGHBOUR * neighbours,
                             size)


def equal_cost_slices(cost: np.ndarray, size: int) -> list[slice]:
    """``size`` contiguous slices of items with costs (n,) whose summed costs are about equal."""
    edges = np.searchsorted(np.cumsum(cost), float(np.sum(cost)) * np.arange(1, size) / size)
    bounds = [0, *edges.tolist(), len(cost)]
    return [slice(bounds[k], bounds[k + 1]) for k in range(size)]
