"""A cheap in-memory base dataset, shared by both sides of every benchmark.

The benchmarks measure the view machinery, so the base must cost next to nothing: ``base[j]``
is a one-key dict, and its labels are plain numpy arrays (kept in memory, or memmapped from a
folder for the render benchmark).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

IMPORT_PATH = "tests.benchmarks._bases.ArrayBase"


class ArrayBase:
    """``length`` examples; ``labels`` are random arrays, or the ``.npy`` files in ``folder``.

    Parameters
    ----------
    length
        Number of examples (ignored when ``folder`` is given).
    folder
        A folder of ``NAME.npy`` files, opened as read-only memmaps (the render benchmark's
        multi-gigabyte labels).
    seed
        Seed of the random labels.
    labels
        ``False``: no labels at all (the 100-million-row benchmark).
    """

    def __init__(self, length: int = 1000, folder: str | None = None, seed: int = 0,
                 labels: bool = True) -> None:
        if not labels:
            self.labels = {}
        elif folder is not None:
            self.labels = {name[:-4]: np.load(os.path.join(folder, name), mmap_mode="r")
                           for name in sorted(os.listdir(folder)) if name.endswith(".npy")}
            length = len(next(iter(self.labels.values())))
        else:
            rng = np.random.default_rng(seed)
            self.labels = {"pos": rng.random((length, 2), dtype=np.float32),
                           "cls": rng.integers(0, 10, length)}
        self.length = length
        self.append_labels = False
        self.calls = 0
        """How often ``base[j]`` was called (the batch benchmark counts them)."""

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, j: Any) -> dict:
        self.calls += 1
        return {"j": j}


def register() -> None:
    """Trust :class:`ArrayBase` in this process (a view store names it in ``meta.yaml``)."""
    import zview

    zview.register_base(IMPORT_PATH, ArrayBase)
