"""The baseline: edflow 0.4.0's view machinery, re-implemented access pattern for access pattern.

edflow itself needs chainer, so it is not imported; what it does per example and per render is
small and copied in spirit here (see ``edflow/data/believers/meta_view.py``, ``meta.py``,
``meta_util.py`` and ``edflow/util/util.py`` in edflow 0.4.0):

- labels and views are ``np.memmap`` (mode ``"c"``) of ``labels/KEY-*-SHAPE-*-DTYPE.npy``;
- an example walks the views tree taking row ``idx`` of each memmap, then walks the rows
  (numpy arrays as lists) calling ``base[j]`` for every index, then adds ``index_`` and walks
  every label for ``labels_``, then walks the result once more to expand callables;
- rendering is ``np.take(label, view, axis=0)`` for every base label, written with
  ``store_label_mmap`` (a ``w+`` memmap assigned in one go).
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

_LABEL_FILE = re.compile(r".*-\*-.*-\*-.*\.npy")


def walk(tree: Any, fn, walk_np_arrays: bool = False) -> Any:
    """edflow's ``walk`` without ``pass_key``: a new tree with ``fn`` at the leaves."""
    instance_test: tuple = (list, dict)
    list_test: tuple = (list,)
    if walk_np_arrays:
        instance_test += (np.ndarray,)
        list_test += (np.ndarray,)

    def call(value):
        if isinstance(value, instance_test):
            return walk(value, fn, walk_np_arrays=walk_np_arrays)
        return fn(value)

    if isinstance(tree, list_test):
        return [call(v) for v in tree]
    if isinstance(tree, dict):
        return {k: call(v) for k, v in tree.items()}
    return fn(tree)


def store_label_mmap(data: np.ndarray, root: str, name: str) -> None:
    """edflow's ``store_label_mmap``: one ``w+`` memmap named ``NAME-*-SHAPE-*-DTYPE.npy``."""
    shape = "x".join(str(int(x)) for x in data.shape)
    mmap = np.memmap(os.path.join(root, f"{name}-*-{shape}-*-{data.dtype}.npy"),
                     dtype=data.dtype, mode="w+", shape=data.shape)
    mmap[:] = data
    del mmap


def load_labels(root: str) -> dict[str, Any]:
    """edflow's ``load_labels``: every label file under ``root/labels`` as a ``c`` memmap."""
    labels: dict[str, Any] = {}
    folder = os.path.join(root, "labels")
    for dirpath, _, files in os.walk(folder):
        for f in sorted(files):
            if not _LABEL_FILE.match(f):
                continue
            key, shape, dtype = f[: -len(".npy")].split("-*-")
            node = labels
            for part in os.path.relpath(dirpath, folder).split(os.sep):
                if part != ".":
                    node = node.setdefault(part, {})
            node[key] = np.memmap(os.path.join(dirpath, f), mode="c", dtype=dtype,
                                  shape=tuple(int(s) for s in shape.split("x")))
    return labels


def render(root: str, base_labels: dict[str, Any], views: dict[str, np.ndarray]) -> None:
    """edflow's constructor: ``np.take`` of every base label through every view, then a memmap."""
    for name, view in views.items():
        folder = os.path.join(root, "labels", name)
        os.makedirs(folder, exist_ok=True)
        for key, label in base_labels.items():
            store_label_mmap(np.take(label, view, axis=0), folder, key)


class View:
    """edflow's ``MetaViewDataset.__getitem__`` (via ``DatasetMixin``) over a rendered folder.

    ``views`` maps a view name to the label key holding its indices, as ``meta.yaml`` does.
    """

    def __init__(self, root: str, base: Any, views: dict[str, str]) -> None:
        self.labels = load_labels(root)
        self.base = base
        self.base.append_labels = False
        self.views = walk(views, lambda key: self.labels[key])
        self.append_labels = True

    def __len__(self) -> int:
        return len(next(iter(self.views.values())))

    def get_example(self, idx: int) -> dict:
        view = walk(self.views, lambda v: v[idx])
        return walk(view, self.base.__getitem__, walk_np_arrays=True)

    def __getitem__(self, i: int) -> dict:
        d = self.get_example(i)
        d["index_"] = i
        if self.append_labels:
            d["labels_"] = walk(self.labels, lambda label: label[i])
        return walk(d, lambda v: v() if callable(v) else v)
