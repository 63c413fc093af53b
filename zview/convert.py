"""``convert``: an edflow folder (or any zview store) rewritten as a zview store, anywhere."""

from __future__ import annotations

import os
import posixpath
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from zview import _store
from zview._labels import ChunkCache
from zview._location import Location
from zview._meta import META_NAME, read_meta
from zview._tree import leaves
from zview.errors import ZViewError
from zview.write import _publish, _write_store

COMPARE_EXAMPLES = 200
"""At most this many examples, spread over the dataset, are compared after converting."""


def convert(source: str | os.PathLike | Location, destination: str | os.PathLike | Location, *,
            storage_options: dict | None = None,
            destination_storage_options: dict | None = None, overwrite: bool = False,
            trust: bool = False, progress: bool = True, dask: Any = None) -> Location:
    """Rewrite the dataset at ``source`` as a zview store at ``destination``.

    Labels become zarr arrays (a ``key:loader`` file name becomes the array's ``loader``
    attribute); other files (images, ``.npy`` files a loader reads) are copied alongside. A
    relative ``root`` that does not resolve from the destination is made absolute. A view is
    rendered at the destination. Every label and a spread of examples are read back from both
    and compared before the store is put in place. ``dask`` (a ``distributed.Client`` or a
    scheduler address) renders a view on Dask, as :func:`zview.render` does.

    Examples
    --------
    >>> where = zview.convert("fixtures/edflow-small/view", "converted.zip", progress=False)
    >>> zview.open(where).render_status()["frames"]
    'complete'
    """
    src = Location.resolve(source, storage_options)
    dst = Location.resolve(destination, destination_storage_options
                           if destination_storage_options is not None else storage_options)
    meta = read_meta(src)
    cache = ChunkCache()
    group = _store.open_group(src)
    if group is None:
        labels, named = _store.legacy_labels(src, cache=cache)
    else:
        labels, named = _store.zarr_labels(group, _store.LABELS, location=src, cache=cache)
    arrays = {path: np.asarray(a) for path, a in labels.items()}
    meta = _relocate_roots(meta, src, dst)
    with _publish(dst, overwrite=overwrite) as target:
        _write_store(target, meta, arrays, progress=progress, loaders=named, name=dst)
        _copy_other_files(src, target, progress)
        if "base_dset" in meta:
            from zview.render import render

            render(target, trust=trust, progress=progress, dask=dask)
        _compare(src, target, trust=trust, progress=progress)
    return dst


def _relocate_roots(meta: dict, src: Location, dst: Location) -> dict:
    """Point relative roots at the same data from ``dst``.

    A root inside the source folder follows the copied files; a base that is a store beside
    the destination too stays relative; anything else becomes the source's absolute location.
    """
    meta = {k: (dict(v) if isinstance(v, dict) else v) for k, v in meta.items()}
    kwargs = meta.get("base_kwargs")
    if (isinstance(kwargs, dict) and _is_relative(kwargs.get("root"))
            and not _same_base(src.join(kwargs["root"]), dst.join(kwargs["root"]))):
        kwargs["root"] = str(src.join(kwargs["root"]))
    for name, options in (meta.get("loader_kwargs") or {}).items():
        if isinstance(options, dict) and _is_relative(options.get("root")):
            target = src.join(options["root"])
            inside = _within(target, src)
            meta["loader_kwargs"][name] = {**options, "root": inside if inside is not None
                                           else str(target)}
    return meta


def _is_relative(root: Any) -> bool:
    return isinstance(root, str) and "://" not in root and not os.path.isabs(root)


def _within(target: Location, folder: Location) -> str | None:
    """``target`` relative to ``folder`` if it lies inside it, else ``None``."""
    t, f = str(target), str(folder)
    if t == f:
        return "."
    return t[len(f) + 1:] if t.startswith(f + "/") else None


def _same_base(source: Location, candidate: Location) -> bool:
    """Whether ``candidate`` holds the same labels as ``source`` (e.g. the base converted too).

    A store that merely exists there is not enough: it could be another dataset.
    """
    from zview.dataset import MetaDataset

    try:
        a, b = MetaDataset(source), MetaDataset(candidate)
    except (FileNotFoundError, ZViewError):
        return False
    return (_store.fingerprint(a._flat, len(a)) == _store.fingerprint(b._flat, len(b))
            and all(_equal(np.asarray(a._flat[k]), np.asarray(b._flat[k])) for k in a._flat))


def _copy_other_files(src: Location, dst: Location, progress: bool) -> None:
    """Copy what is not labels or metadata (images, arrays read by loaders)."""
    fs, root = src.filesystem()
    out_fs, out_root = dst.filesystem()
    skip = {META_NAME, "zarr.json", ".constructed.txt"}
    files = [f for f in fs.find(root) if posixpath.relpath(f, root).split("/", 1)[0]
             not in (_store.LABELS, _store.RENDERED, *skip)] if root else []
    for file in tqdm(files, desc=f"copy files to {dst}", unit="file",
                     disable=not progress or len(files) < 20):
        relative = posixpath.relpath(file, root)
        target = posixpath.join(out_root, relative)
        out_fs.makedirs(posixpath.dirname(target), exist_ok=True)
        out_fs.pipe_file(target, fs.cat_file(file))


def _compare(src: Location, dst: Location, *, trust: bool, progress: bool) -> None:
    """Raise unless ``dst`` returns the same labels and examples as ``src``."""
    from zview import open as open_store

    options = {"render": False} if "base_dset" in read_meta(src) else {}
    before = open_store(src, trust=trust, **options)
    after = open_store(dst, trust=trust, **options)
    if len(before) != len(after):
        raise ZViewError(f"converted store has {len(after)} examples, source {len(before)}",
                         store=str(dst), key="length", value=len(after))
    for path, array in leaves(before.labels):
        other = after.labels
        for part in path.split("/"):
            other = other[int(part)] if isinstance(other, list) else other.get(part)
        if other is None or not _equal(np.asarray(array), np.asarray(other)):
            raise ZViewError(f"label {path!r} differs after conversion", store=str(dst),
                             key=path)
    n = len(before)
    sample = sorted(set(np.linspace(0, n - 1, min(n, COMPARE_EXAMPLES)).astype(int).tolist()))
    for i in sample:
        if not _equal_tree(before[i], after[i]):
            raise ZViewError(f"example {i} differs after conversion", store=str(dst), key=i)


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and bool(
        np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def _equal_tree(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            _equal_tree(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_equal_tree, a, b))
    if isinstance(a, (np.ndarray, np.generic)):
        return type(a) is type(b) and _equal(np.asarray(a), np.asarray(b))
    return type(a) is type(b) and a == b
