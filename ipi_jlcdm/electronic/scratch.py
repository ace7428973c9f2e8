"""Large work arrays kept from one step to the next.

A step writes its 3-centre integrals into arrays of the same size every time (uracil: 61 MiB for
(mu nu|P), 182 MiB for (d mu nu|P)). Allocated afresh, such arrays are new pages from the operating
system on every step, and touching them costs more than the integrals themselves take to write:
measured on the 2-core development VM, libcint's (d mu nu|P) took 0.47-0.51 s into a fresh array and
0.25-0.27 s into one reused (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import numpy as np


class ScratchArrays:
    """Named float64 buffers that grow to the largest size asked for and are then reused.

    ``take(name, size)`` returns a contiguous (size,) view of the buffer ``name``: its contents are
    whatever the last user left, and the next ``take`` of the same name hands out the same memory,
    so a caller must be done with a view before asking again (one engine step at a time)."""

    def __init__(self):
        self._buffers: dict[str, np.ndarray] = {}

    def take(self, name: str, size: int) -> np.ndarray:
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size:
            buffer = self._buffers[name] = np.empty(size)
        return buffer[:size]
