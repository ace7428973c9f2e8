"""Writing output files whole or not at all: a run that fails part-way leaves no half-written file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def write_text_atomically(path: str | Path, text: str) -> None:
    """``text`` into ``path`` through a temporary file renamed into place."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def save_npz_atomically(path: str | Path, **arrays: np.ndarray) -> None:
    """``np.savez(path, **arrays)`` through a temporary file renamed into place."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, **arrays)
    os.replace(partial, path)
