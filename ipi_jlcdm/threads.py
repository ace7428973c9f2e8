"""Threads over blocks of grid points: one block per worker, every native library on one thread.

Every pass over the integration grid (AO values, densities, XC potentials and kernels, the model's
compiled kernels, the Coulomb potentials) runs as independent blocks whose partial sums are added
at the end. numpy's BLAS, PySCF's OpenMP loops and libxc release the GIL, so Python threads over
blocks keep the cores busy without two thread pools fighting for them: measured on 2 cores, the
same XC pass took 1.19 s with numpy's and PySCF's own two threads each, 0.66 s on one thread.

The worker count follows the thread count that the user set (``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``), so ``OMP_NUM_THREADS=1`` under ``mpiexec`` keeps one thread per rank.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from typing import TypeVar

from threadpoolctl import ThreadpoolController

T = TypeVar("T")
R = TypeVar("R")


@lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    """The native thread pools of this process, found once (scanning the loaded libraries costs
    ~1 ms, which a small molecule's step would pay dozens of times)."""
    return ThreadpoolController()


@lru_cache(maxsize=1)
def worker_count() -> int:
    """Threads that the user grants BLAS (the largest of the loaded BLAS libraries' settings at the
    first call), >= 1."""
    counts = [int(lib["num_threads"]) for lib in _controller().info() if lib.get("user_api") == "blas"]
    return max(counts, default=1)


def chunk_map(function: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> list[R]:
    """[function(item) for item in items], run by ``workers`` threads (default ``worker_count()``)
    while every BLAS and OpenMP library is limited to one thread; results in the order of ``items``.
    Nested calls run serially inside the outer call's workers."""
    items = list(items)
    workers = worker_count() if workers is None else workers
    with _controller().limit(limits=1):
        if workers <= 1 or len(items) <= 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(function, items))


@contextmanager
def serial_blas() -> Iterator[None]:
    """BLAS on one thread for the enclosed work; the grid passes inside still run their blocks on
    ``worker_count()`` threads (``chunk_map``), and PySCF's OpenMP loops keep their threads.

    Between the grid passes a step's dense algebra is small (matrices over the AOs and auxiliary
    functions), and after a call on two threads OpenBLAS's idle worker keeps spinning for a while
    (its thread timeout), taking a core from the grid pass or the libcint integrals that follow: in
    one uracil step a 132 x 132 generalized eigenproblem took up to 110 ms instead of 2 ms. Measured
    on 2 cores (uracil, default route): 5.77 s per step with BLAS on two threads between the passes,
    5.44 s on one; at 36 atoms 42.6 s both ways."""
    worker_count()  # the user's thread count, read before the limit (it is read once per process)
    # a fresh scan (~1 ms, once per step): the libraries loaded since ``_controller`` was made too
    with ThreadpoolController().limit(limits=1, user_api="blas"):
        yield


@contextmanager
def parallel_blas() -> Iterator[None]:
    """BLAS on ``worker_count()`` threads again inside ``serial_blas`` (PySCF's own SCF)."""
    with ThreadpoolController().limit(limits=worker_count(), user_api="blas"):
        yield
