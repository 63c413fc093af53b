"""``MetaViewDataset``: a dataset defined as a tree of index arrays into a base dataset."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from itertools import repeat
from typing import Any

import numpy as np

from zview import _store, _trust
from zview._labels import DEFAULT_CACHE_BYTES, LabelArray, nest
from zview._location import Location
from zview._tree import expand_index, leaves, map_tree, map_with_path
from zview.dataset import MetaDataset
from zview.errors import (
    BaseBuildError,
    IndexOutOfRangeError,
    MetaError,
    MissingLabelError,
    RenderRequiredError,
    StaleRenderError,
    UntrustedBaseError,
    ViewError,
)


class MetaViewDataset(MetaDataset):
    """A view on a base dataset, as edflow's ``MetaViewDataset``.

    ``meta.yaml`` names the base (``base_dset``, ``base_kwargs``) and the views: a label key or
    a nested dict/list of them. Example ``i`` mirrors the views tree, each index ``j`` in a
    leaf's row ``i`` replaced by ``base[j]``, plus the view's own loader outputs, ``index_`` and
    ``labels_``. :attr:`labels` lists the view's own labels and, under each view leaf's name,
    the base's labels rendered through it.

    Parameters
    ----------
    location, storage_options, trust, cache_bytes
        As for :class:`MetaDataset`; ``trust`` also allows an untrusted ``base_dset``.
    base_storage_options
        Storage options for the base's location; by default the base inherits
        ``storage_options`` (a base in another bucket or account needs its own).
    render
        ``None`` (default): render missing labels on first open, as edflow did, and refuse
        labels rendered against a different base. ``True``: also re-render stale labels.
        ``False``: never write; missing or stale rendered labels are an error.
    progress
        Show a progress bar when rendering.

    Examples
    --------
    >>> view = zview.MetaViewDataset("fixtures/edflow-small/view")
    >>> [int(f["index_"]) for f in view[0]["frames"]]
    [0, 1, 2]
    """

    def __init__(self, location: str | os.PathLike | Location, *,
                 storage_options: dict | None = None, trust: bool = False,
                 render: bool | None = None, progress: bool = True,
                 cache_bytes: int = DEFAULT_CACHE_BYTES,
                 base_storage_options: dict | None = None, _rendered: bool = True,
                 _meta: dict | None = None) -> None:
        super().__init__(location, storage_options=storage_options, trust=trust,
                         cache_bytes=cache_bytes, _meta=_meta)
        self.render_policy = render
        self.base_storage_options = base_storage_options
        self.base = build_base(self.meta, self.location, trust=trust,
                               storage_options=base_storage_options)
        if hasattr(self.base, "append_labels"):  # as edflow: base examples carry no labels_
            self.base.append_labels = False
        self._base_len = len(self.base)
        self.view_spec = self.meta.get("views", "view")
        self.views = map_with_path(self._view_array, self.view_spec)
        if _rendered:
            self._attach_rendered(render, progress)

    # -- views ---------------------------------------------------------------------------------
    def _view_array(self, path: str, key: str) -> LabelArray:
        try:
            array = self._flat[key]
        except KeyError:
            raise MissingLabelError(
                f"view {path or 'views'!r} names label {key!r}, which does not exist; labels: "
                f"{sorted(self._flat)}", store=str(self.location), key=path or "views",
                value=key) from None
        if array.dtype.kind not in "iu":
            raise ViewError(f"view {key!r} holds {array.dtype} values; views hold integer "
                            f"indices into the base", store=str(self.location), key=key,
                            value=str(array.dtype))
        array.check = self._index_checker(key)
        return array

    def _index_checker(self, key: str):
        n = self._base_len

        def check(values: np.ndarray, start: int) -> None:
            bad = (values < 0) | (values >= n)
            if bad.any():
                where = np.argwhere(bad)[0]
                raise IndexOutOfRangeError(
                    key, int(values[tuple(where)]), n, store=str(self.location),
                    detail=f" (the base's length) at row {start + int(where[0])}; zview never "
                           f"wraps negative indices around")

        return check

    def view_leaves(self) -> list[tuple[str, LabelArray]]:
        """``(leaf path, index array)`` for every leaf of the views tree."""
        return list(leaves(self.views))

    # -- rendered labels -----------------------------------------------------------------------
    def base_fingerprint(self) -> str:
        """Identifies the base's labels; a change means rendered labels are stale."""
        base = self.base
        if isinstance(base, MetaDataset):
            return base.state.get("fingerprint") or _store.fingerprint(base._flat, len(base))
        return _store.fingerprint(dict(leaves(getattr(base, "labels", {}) or {})), len(base))

    def render_status(self) -> dict[str, str]:
        """``{leaf path: "complete" | "missing" | "incomplete" | "stale"}``."""
        done = self.state.get("render", {}) if self.group is not None else {}
        fingerprint = self.base_fingerprint()
        status = {}
        for path, _ in self.view_leaves():
            entry = done.get(path)
            if not isinstance(entry, dict):
                status[path] = "missing"
            elif entry.get("fingerprint") != fingerprint:
                status[path] = "stale"
            else:
                status[path] = "complete" if entry.get("complete") is True else "incomplete"
        return status

    def _attach_rendered(self, policy: bool | None, progress: bool) -> None:
        if self.group is None:  # legacy folder: opened unchanged, labels rendered on access
            from zview.render import LazyRendered

            rendered = {leaf: {p: LazyRendered(a, view, name=f"{leaf}/{p}")
                               for p, a in base_labels(self.base).items()}
                        for leaf, view in self.view_leaves()}
        else:
            status = self.render_status()
            todo = [p for p, s in status.items() if s != "complete"]
            if todo:
                self._render_or_explain(status, todo, policy, progress)
            rendered = {leaf: _store.zarr_labels(self.group, _rendered_prefix(leaf),
                                                 location=self.location, cache=self.cache)[0]
                        for leaf, _ in self.view_leaves()}
        self._rendered = rendered
        tree = map_with_path(lambda leaf, _: nest(rendered[leaf]), self.view_spec)
        if isinstance(tree, list):  # a top-level list of views renders under its positions
            tree = {str(i): t for i, t in enumerate(tree)}
        self.labels.update(tree)

    def _render_or_explain(self, status: dict[str, str], todo: list[str], policy: bool | None,
                           progress: bool) -> None:
        stale = [p for p in todo if status[p] == "stale"]
        where = str(self.location)
        if policy is False or (stale and policy is None):
            error = StaleRenderError if stale else RenderRequiredError
            what = "were rendered against a different base" if stale else "are not rendered"
            raise error(f"the labels of view(s) {todo} {what}; run `zview render "
                        f"{'--force ' if stale else ''}{where}` or open with render=True",
                        store=where, key=todo[0], value=status[todo[0]])
        if self.location.is_zip:
            raise RenderRequiredError(
                f"the labels of view(s) {todo} are not rendered and a zip is read-only: render "
                f"it elsewhere (`zview convert {where} DIR`, then `zview render DIR`)",
                store=where, key=todo[0], value=status[todo[0]])
        from zview.render import render_view

        render_view(self, force=bool(stale), progress=progress)
        self.group = _store.open_group(self.location)
        self.state = _store.state(self.group, self.location)

    # -- reading -------------------------------------------------------------------------------
    def get_example(self, index: Any) -> dict[str, Any]:
        rows = map_tree(lambda view: view[index], self.views)
        example = self._assemble(rows, self.base.__getitem__)
        example.update(self._loaded(index))
        example["index_"] = index
        if self.append_labels:
            example["labels_"] = self.labels_at(index)
        return example

    def _assemble(self, rows: Any, fetch) -> dict[str, Any]:
        example = map_tree(lambda row: expand_index(row, fetch), rows)
        if not isinstance(example, dict):  # one view of rows: keep the example a dict
            example = {self.view_spec if isinstance(self.view_spec, str) else "view": example}
        return example

    def __getitems__(self, indices: Sequence[int] | np.ndarray) -> list[dict]:
        """Examples at ``indices``, asking the base for each distinct index once.

        Index rows and labels are taken for the whole batch in one read per array, and the
        examples are built a tree level at a time for the whole batch, with no tree walk per
        example.
        """
        given = self._check_indices(indices)
        indices = np.asarray(given, dtype=np.int64)
        leaf_rows = [view.take(indices) for _, view in leaves(self.views)]
        wanted = np.unique(np.concatenate(
            [r.reshape(-1) for r in leaf_rows] or [np.zeros(0, np.int64)]))
        fetched = _fetch_many(self.base, wanted)
        get = dict(zip(wanted.tolist(), fetched, strict=False)).__getitem__
        n = len(given)
        out = _build(self.views, iter([_expand_rows(rows.tolist(), rows.ndim - 1, get)
                                       for rows in leaf_rows]), n)
        if not isinstance(self.views, dict):  # one view of rows: keep the example a dict
            wrap = self.view_spec if isinstance(self.view_spec, str) else "view"
            out = [{wrap: example} for example in out]
        if self._loaders:  # loaders read their labels per example: from chunks fetched at once
            for path in self._loaders:
                label = self._flat[f"{path}_"]
                label.prefetch(np.unique(indices // label.rows))
            for example, i in zip(out, given, strict=True):
                example.update(self._loaded(i))
        if not self.append_labels:
            for example, i in zip(out, given, strict=True):
                example["index_"] = i
            return out
        columns = iter([list(_take(a, indices)) for _, a in leaves(self.labels)])
        for example, i, labels in zip(out, given, _build(self.labels, columns, n), strict=True):
            example["index_"] = i
            example["labels_"] = labels
        return out

    def _extra_state(self) -> dict[str, Any]:
        return {"render": False, "base_storage_options": self.base_storage_options}


def _fetch_many(base: Any, indices: np.ndarray) -> list[dict]:
    """``base[j]`` for each ``j`` (numpy scalars, as edflow passes them), batched if possible."""
    scalars = list(indices.astype(np.int64))
    if isinstance(base, MetaDataset):
        return base.__getitems__(scalars)
    return [base[j] for j in scalars]


def _expand_rows(rows: list, depth: int, get) -> list:
    """Per example, its index row with every index ``j`` replaced by ``get(j)``."""
    if depth == 0:
        return list(map(get, rows))
    if depth == 1:
        return [list(map(get, row)) for row in rows]
    return [_expand_rows(row, depth - 1, get) for row in rows]


def _build(tree: Any, columns: Iterator[list], n: int) -> list:
    """``n`` trees shaped like ``tree``, built a level at a time for all of them at once.

    ``columns`` yields, in :func:`zview._tree.leaves` order, each leaf's ``n`` values. Each
    dict or list of the shape is then made for all trees by one comprehension, never by a walk
    of the shape per tree.

    >>> _build({"a": [0, 0], "b": 0}, iter([[1, 2], [3, 4], [5, 6]]), 2)
    [{'a': [1, 3], 'b': 5}, {'a': [2, 4], 'b': 6}]
    >>> _build({"a": 0, "b": 0, "c": 0, "d": {}}, iter([[1], [2], [3]]), 1)
    [{'a': 1, 'b': 2, 'c': 3, 'd': {}}]
    """
    if isinstance(tree, dict):
        children = [_build(v, columns, n) for v in tree.values()]
        return _dicts(list(tree), children) if children else [{} for _ in range(n)]
    if isinstance(tree, list):
        children = [_build(v, columns, n) for v in tree]
        return list(map(list, zip(*children, strict=False))) if children else [[] for _ in range(n)]
    return next(columns)


def _dicts(keys: list, children: list[list]) -> list[dict]:
    """Per position, the dict of ``keys`` to the ``children``'s values there."""
    # dict displays build small dicts several times faster than dict(zip(keys, values)), and
    # examples mostly hold one to three keys per level
    if len(keys) == 1:
        (a,), (values,) = keys, children
        return [{a: x} for x in values]
    if len(keys) == 2:
        a, b = keys
        return [{a: x, b: y} for x, y in zip(*children, strict=False)]
    if len(keys) == 3:
        a, b, c = keys
        return [{a: x, b: y, c: z} for x, y, z in zip(*children, strict=False)]
    return list(map(dict, map(zip, repeat(keys), zip(*children, strict=False))))


def _take(array: Any, indices: np.ndarray) -> np.ndarray:
    take = getattr(array, "take", None)
    return take(indices) if take is not None else np.take(np.asarray(array), indices, axis=0)


def _rendered_prefix(leaf: str) -> str:
    return f"{_store.RENDERED}/{leaf}" if leaf else _store.RENDERED


def base_labels(base: Any) -> dict[str, Any]:
    """The base's labels by flat path (arrays, memmaps or zview label arrays)."""
    if isinstance(base, MetaDataset):
        return dict(base._flat)
    return {path: array for path, array in leaves(getattr(base, "labels", {}) or {})}


def build_base(meta: dict, location: Location, *, trust: bool = False,
               storage_options: dict | None = None) -> Any:
    """Build the base named by ``base_dset``/``base_kwargs``, relative roots resolved here.

    A ``root`` gets ``storage_options`` if given, else those of ``location``.
    """
    import_path = meta.get("base_dset")
    if not import_path:
        raise MetaError("meta.yaml has no 'base_dset'; a view needs the import path of its base "
                        "(e.g. zview.MetaDataset)", store=str(location), key="base_dset")
    kwargs = dict(meta.get("base_kwargs") or {})
    factory = _trust.resolve(import_path, trust=trust, store=str(location))
    root = kwargs.get("root")
    if isinstance(root, str):
        joined = location.join(root)
        kwargs["root"] = joined if storage_options is None else Location(
            joined.url, dict(storage_options), joined.inner)
    try:
        if _trust.is_builtin(import_path):
            if root is None:
                raise MetaError("base_kwargs needs 'root': where the base store is, relative to "
                                "this meta.yaml", store=str(location), key="base_kwargs/root")
            _check_builtin_kwargs(kwargs, location)
            base = factory(kwargs.pop("root"), trust=trust, **kwargs)
        else:
            if isinstance(root, str):
                kwargs["root"] = str(kwargs["root"])
            base = factory(**kwargs)
        len(base)  # a base is a dataset: anything else fails here, not on first access
        if not hasattr(base, "__getitem__"):
            raise TypeError(f"{type(base).__name__} has no __getitem__")
        return base
    except (UntrustedBaseError, BaseBuildError, MetaError):
        raise
    except Exception as e:
        raise BaseBuildError(f"the base {import_path!r} failed to build with base_kwargs "
                             f"{_short(meta.get('base_kwargs'))}: {type(e).__name__}: {e}",
                             store=str(location), key="base_dset", value=import_path) from e


# keyword arguments a meta.yaml may pass to zview's own bases, and their types
_BUILTIN_KWARGS: dict[str, tuple[type, ...]] = {
    "root": (Location,), "cache_bytes": (int,), "render": (bool, type(None)),
    "progress": (bool,)}


def _check_builtin_kwargs(kwargs: dict, location: Location) -> None:
    for key, value in kwargs.items():
        types = _BUILTIN_KWARGS.get(key)
        if types is None or not isinstance(value, types) or (
                key == "cache_bytes" and (isinstance(value, bool) or value < 0)):
            allowed = sorted(_BUILTIN_KWARGS)
            raise MetaError(f"base_kwargs {key!r}: {_short(value)} is not accepted by zview's "
                            f"bases; they take {allowed} (storage options and trust come from "
                            f"the caller, never from meta.yaml)", store=str(location),
                            key=f"base_kwargs/{key}", value=value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 120 else text[:117] + "..."

