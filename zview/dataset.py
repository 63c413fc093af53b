"""``MetaDataset``: edflow's base format, with labels as zarr arrays or legacy ``.npy`` memmaps."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from zview import _store, loaders
from zview._labels import DEFAULT_CACHE_BYTES, ChunkCache, LabelArray, nest
from zview._location import Location
from zview._meta import read_meta
from zview._tree import map_tree, set_path
from zview.errors import IndexOutOfRangeError, MissingLabelError, ViewError


class MetaDataset:
    """A dataset described by a ``meta.yaml`` and a ``labels`` tree, as edflow's ``MetaDataset``.

    ``ds[i]`` is a dict: every loader's output under its label's name, ``index_ = i`` and, with
    :attr:`append_labels` (default on), ``labels_``: every label at ``i``. A label with a loader
    is listed in :attr:`labels` as ``name_``.

    Parameters
    ----------
    location
        A folder, a ``file://``, ``s3://``, ``gs://``, ``az://`` or ``memory://`` URL, or a
        ``.zip`` file, holding ``meta.yaml`` and the labels (zarr or edflow's ``.npy``).
    storage_options
        fsspec options for remote locations (``anon``, ``endpoint_url``, ...).
    trust
        Allow loaders named by an import path that is not otherwise trusted (see
        :func:`zview.register_base`).
    cache_bytes
        Bound on the decoded label chunks kept in memory.

    Examples
    --------
    >>> ds = zview.MetaDataset("fixtures/edflow-small/base")
    >>> ds[0]["pid"], ds.labels["attr1"][:3]
    ('cleo', array([0, 3, 6]))
    """

    def __init__(self, location: str | os.PathLike | Location, *,
                 storage_options: dict | None = None, trust: bool = False,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, _meta: dict | None = None) -> None:
        self.location = Location.resolve(location, storage_options)
        self.trust = trust
        self.cache = ChunkCache(cache_bytes)
        self.meta: dict[str, Any] = _meta if _meta is not None else read_meta(self.location)
        self.group = _store.open_group(self.location)
        self.state = _store.state(self.group, self.location)
        if self.group is not None:
            own, named = _store.zarr_labels(self.group, _store.LABELS, location=self.location,
                                            cache=self.cache)
        else:
            own, named = _store.legacy_labels(self.location, cache=self.cache)
        self._loaders, self._flat = self._setup_loaders(own, named)
        self.append_labels = True
        self._length = self._check_lengths()
        self.labels: dict[str, Any] = nest(self._flat)
        """The label tree: nested dicts (and lists) of read-only arrays, one row per example."""

    # -- construction ------------------------------------------------------------------------
    def _setup_loaders(self, own: dict[str, LabelArray], named: dict[str, str]
                       ) -> tuple[dict[str, Callable[[Any], Any]], dict[str, LabelArray]]:
        """Loaders by label path and the labels with loader labels renamed ``name_``."""
        names = dict(named)
        names.update(self.meta.get("loaders") or {})
        kwargs_all = self.meta.get("loader_kwargs") or {}
        built = {}
        for path, name in names.items():
            if path not in own:
                raise MissingLabelError(f"meta.yaml names loader {name!r} for label {path!r}, "
                                        f"but there is no such label; labels: {sorted(own)}",
                                        store=str(self.location), key=f"loaders/{path}",
                                        value=path)
            built[path] = loaders.make_loader(
                name, kwargs_all.get(path) or {}, root=self.location, trust=self.trust,
                label=path, store=str(self.location))
        flat = {f"{p}_" if p in built else p: a for p, a in own.items()}
        return built, flat

    def _check_lengths(self) -> int:
        lengths = {path: len(a) if a.ndim else None for path, a in self._flat.items()}
        if any(n is None for n in lengths.values()):
            path = next(p for p, n in lengths.items() if n is None)
            raise ViewError(f"label {path!r} is a scalar; labels need one entry per example",
                            store=str(self.location), key=path, value=())
        distinct = set(lengths.values())
        if len(distinct) > 1:
            raise ViewError(f"labels (and views) differ in length: {_lengths(lengths)}; every "
                            f"label needs one entry per example", store=str(self.location),
                            key=sorted(lengths), value=lengths)
        stated = self.state.get("length")
        if distinct:
            return distinct.pop()
        if isinstance(stated, int):
            return stated
        return 0

    # -- reading -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> Any:
        if isinstance(index, (int, np.integer)):
            return self.get_example(self._check_index(index))
        if isinstance(index, slice):
            return self.__getitems__(range(*index.indices(len(self))))
        if isinstance(index, (list, tuple, range, np.ndarray)):
            return self.__getitems__(index)
        raise TypeError(f"{type(self).__name__} indices must be integers, slices, lists or "
                        f"arrays, not {type(index).__name__}")

    def _check_index(self, index: int) -> int:
        if not 0 <= index < len(self):
            raise IndexOutOfRangeError("index", index, len(self), store=str(self.location),
                                       detail=" (the dataset's length)")
        return index

    def _check_indices(self, indices: Sequence[int] | np.ndarray) -> list:
        """The indices, each checked; elements keep their type, as ``index_`` in edflow."""
        if isinstance(indices, np.ndarray):
            indices = list(indices.reshape(-1))
        indices = list(indices)
        for i in indices:
            if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
                raise TypeError(f"dataset indices must be integers, got {i!r}")
        if indices:  # range checks for the whole batch at once; the first bad one is reported
            values = np.asarray(indices)
            if values.dtype.kind not in "iu" or values.min() < 0 or values.max() >= len(self):
                for i in indices:
                    self._check_index(i)
        return indices

    def __getitems__(self, indices: Sequence[int] | np.ndarray) -> list[dict]:
        """Examples at ``indices``; label chunks a batch needs are fetched at once."""
        indices = self._check_indices(indices)
        chunked = np.asarray(indices, dtype=np.int64)
        for label in self._flat.values():
            label.prefetch(np.unique(chunked // label.rows))
        return [self.get_example(i) for i in indices]

    def get_example(self, index: Any) -> dict[str, Any]:
        """The example at ``index``, which is in range (``index_`` keeps its type)."""
        example = self._loaded(index)
        example["index_"] = index
        if self.append_labels:
            example["labels_"] = self.labels_at(index)
        return example

    def _loaded(self, index: Any) -> dict[str, Any]:
        example: dict[str, Any] = {}
        for path, load in self._loaders.items():
            set_path(example, path, load(self._flat[f"{path}_"][index]))
        return example

    def labels_at(self, index: int) -> dict[str, Any]:
        """Every label at ``index``, as a tree like :attr:`labels`."""
        return map_tree(lambda a: a[index], self.labels)

    # -- pickling: a dataset travels as its location and reopens in the worker ------------------
    def __getstate__(self) -> dict[str, Any]:
        return {"location": self.location, "trust": self.trust,
                "cache_bytes": self.cache.max_bytes, "append_labels": self.append_labels,
                **self._extra_state()}

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        append_labels = state.pop("append_labels")
        self.__init__(state.pop("location"), **state)
        self.append_labels = append_labels

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.location} len={len(self)} "
                f"labels={len(self._flat)}>")

    # -- display: see zview.display --------------------------------------------------------------
    def _repr_html_(self) -> str:
        from zview import display

        return display.to_html(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from zview import display

        return display.mimebundle(self, include, exclude)

    def show(self, *, file: Any = None) -> None:
        """Print the description, the table of labels and views, and example 0 (as edflow)."""
        from zview import display

        display.show(self, file=file)


def _lengths(lengths: dict[str, int | None]) -> str:
    items = sorted(lengths.items())
    text = ", ".join(f"{p}={n}" for p, n in items[:10])
    return text + (f", ... ({len(items)} labels)" if len(items) > 10 else "")

