"""Writing stores: a base dataset's labels, a label at a time, and views.

Everything is checked before anything is written. A new local store is built in a temporary
folder beside its destination and moved into place in one rename, so a failed write leaves what
was there before; an existing store is replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import posixpath
import re
import shutil
import socket
import sys
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import zarr
from tqdm.auto import tqdm

from zview import _codecs, _store
from zview._labels import ChunkCache
from zview._location import Location
from zview._meta import META_NAME, check_meta, dump_meta
from zview._tree import leaves, map_with_path
from zview.errors import (
    IncompleteStoreError,
    IndexOutOfRangeError,
    MetaError,
    ReadOnlyStoreError,
    StoreExistsError,
    StoreNotFoundError,
    ViewError,
)


def store_label(location: str | Location, key: str, data: np.ndarray, *,
                loader: str | None = None, overwrite: bool = False,
                storage_options: dict | None = None) -> None:
    """Write one label array into the store at ``location`` (edflow's ``store_label_mmap``).

    ``key`` may be a path (``"views/seq"``); ``loader`` names the loader applied on access
    (``"image"`` for a label of image paths). The store's root group is created if needed. A
    label of that key is replaced only with ``overwrite=True``; the data must have one row per
    example of the store.

    Examples
    --------
    >>> zview.store_label("walk", "score", np.linspace(0, 1, 20))
    >>> zview.open("walk").labels["score"].shape
    (20,)
    """
    where = Location.resolve(location, storage_options)
    data = np.asarray(data)
    if data.ndim == 0:
        raise ViewError(f"label {key!r} is a scalar; labels need one row per example",
                        store=str(where), key=key, value=data)
    _check_row_shape(key, data, where)
    _check_label_fits(where, key, data, overwrite)
    group = zarr.open_group(where.zarr_store(read_only=False), mode="a")
    state = dict(group.attrs.get("zview", {}))
    # until the label is whole, the store says so: a kill must not leave half a label, read as
    # whole (a new array's codecs may differ from those consolidated for the old one)
    unfinished = [k for k in state.get("writing", []) if k != key]
    group.attrs["zview"] = {**state, "writing": [*unfinished, key]}
    _store.consolidate(where)
    _codecs.write_array(group, f"{_store.LABELS}/{key}", data,
                        attrs={"loader": loader} if loader else None)
    state["writing"] = unfinished
    if not unfinished:
        del state["writing"]
    state.update(format=_store.FORMAT, length=int(data.shape[0]), fingerprint=_new_fingerprint())
    group.attrs["zview"] = state
    _store.consolidate(where)


def _check_label_fits(where: Location, key: str, data: np.ndarray, overwrite: bool) -> None:
    group = _store.open_group(where)
    if group is None:
        if _store.legacy_labels(where, cache=ChunkCache(0))[0]:
            raise ReadOnlyStoreError(f"{where} is an edflow folder, which zview reads as it is; "
                                     f"convert it to add labels: `zview convert {where} DST`",
                                     store=str(where), key=key)
        return
    labels = _store.zarr_arrays(group, _store.LABELS)
    state = _store.state(group, where, finished=False)
    if key in labels and not overwrite:
        raise StoreExistsError(f"label {key!r} exists; pass overwrite=True to replace it",
                               store=str(where), key=key)
    # a label is an array, a path segment a group: one name cannot be both
    clash = sorted(p for p in labels if p.startswith(f"{key}/") or key.startswith(f"{p}/"))
    if clash:
        raise ViewError(f"label {key!r} cannot sit beside label {clash[0]!r}: one would be a "
                        f"folder of the other", store=str(where), key=key, value=clash[0])
    length = state.get("length")
    if set(labels) - {key} and length != data.shape[0]:
        raise ViewError(f"label {key!r} has {data.shape[0]} rows, but the store's examples "
                        f"number {length}: a label needs one row per example", store=str(where),
                        key=key, value=data.shape[0])


def write_dataset(location: str | Location, labels: dict[str, Any], *,
                  description: str = "", loaders: dict[str, str] | None = None,
                  loader_kwargs: dict[str, dict] | None = None, overwrite: bool = False,
                  storage_options: dict | None = None, progress: bool = True) -> Location:
    """Write a base dataset store: ``meta.yaml`` and a tree of labels.

    Parameters
    ----------
    labels
        Nested dicts of arrays, one row per example (``{"image": paths, "kps": (N, 17, 2)}``).
    loaders, loader_kwargs
        As in ``meta.yaml``: ``{"image": "image"}``, ``{"image": {"support": "-1->1"}}``.
    """
    where = Location.resolve(location, storage_options)
    arrays = {path: np.asarray(a) for path, a in leaves(labels)}
    _check_lengths(arrays, where)
    meta = {"description": description}
    if loaders:
        meta["loaders"] = dict(loaders)
    if loader_kwargs:
        meta["loader_kwargs"] = dict(loader_kwargs)
    check_meta(meta, store=str(where))
    with _publish(where, overwrite=overwrite) as target:
        _write_store(target, meta, arrays, progress=progress, name=where)
    return where


def write_view(location: str | Location, views: Any, *, base: Any,
               base_kwargs: dict | None = None, description: str = "",
               labels: dict[str, Any] | None = None, loaders: dict[str, str] | None = None,
               loader_kwargs: dict[str, dict] | None = None, overwrite: bool = False,
               render: bool = True, storage_options: dict | None = None, trust: bool = False,
               progress: bool = True, base_storage_options: dict | None = None) -> Location:
    """Write a view store: ``meta.yaml``, the index arrays and the rendered labels.

    Parameters
    ----------
    location
        Where to write (folder, URL or ``.zip``).
    views
        A tree (dicts and lists) of integer index arrays of one length ``M``, each of any shape
        ``(M, ...)``; or of label keys into ``labels``.
    base
        The base: a zview dataset, a store location, or the import path of a dataset class
        (called with ``base_kwargs``). A base location on the same filesystem is written
        relative to the view, so the two can move together.
    labels
        The view's own labels (``M`` rows each), stored beside the index arrays.
    render
        Render the base's labels through every view now (otherwise on first open).
    base_storage_options
        Storage options for reading the base; by default those of the view. Never stored:
        pass them again to :func:`zview.open`.

    Examples
    --------
    >>> windows = np.arange(20)[:, None] + np.arange(5)
    >>> where = zview.write_view("windows", {"frames": windows},
    ...                          base="fixtures/edflow-small/base", progress=False)
    >>> len(zview.open(where)), zview.open(where).labels["frames"]["attr1"][0]
    (20, array([ 0,  3,  6,  9, 12]))
    """
    where = Location.resolve(location, storage_options)
    base_options = where.storage_options if base_storage_options is None else base_storage_options
    base_dset, base_kwargs = _base_reference(base, base_kwargs, where, base_options)
    meta: dict[str, Any] = {"description": description, "base_dset": base_dset,
                            "base_kwargs": base_kwargs}
    arrays = {path: np.asarray(a) for path, a in leaves(labels or {})}
    spec = map_with_path(lambda path, leaf: _view_key(path, leaf, arrays), views)
    meta["views"] = spec
    if loaders:
        meta["loaders"] = dict(loaders)
    if loader_kwargs:
        meta["loader_kwargs"] = dict(loader_kwargs)
    check_meta(meta, store=str(where))
    length = _check_lengths(arrays, where)
    _check_indices(spec, arrays, meta, where, trust, base_storage_options)
    with _publish(where, overwrite=overwrite) as target:
        _write_store(target, meta, arrays, progress=progress, length=length, name=where)
        # rendered before it is put in place: a zip, before it is packed; a store replacing
        # one in a bucket, before it is copied over it (the old one stays readable meanwhile)
        staged = render and (where.is_zip or (not where.is_local and target != where))
        if staged:
            _render(target, trust, progress, base_storage_options)
    if render and not staged:  # in place: an interrupted render resumes there
        _render(where, trust, progress, base_storage_options)
    return where


def _render(location: Location, trust: bool, progress: bool, base_options: dict | None) -> None:
    from zview.render import render

    render(location, trust=trust, progress=progress, base_storage_options=base_options)


def _view_key(path: str, leaf: Any, arrays: dict[str, np.ndarray]) -> str:
    if isinstance(leaf, str):
        if leaf not in arrays:
            raise ViewError(f"view {path!r} names label {leaf!r}, which is not in labels",
                            key=path, value=leaf)
        return leaf
    key = posixpath.join("views", path) if path else "view"
    arrays[key] = np.asarray(leaf)
    return key


def _base_reference(base: Any, kwargs: dict | None, where: Location, options: dict
                    ) -> tuple[str, dict]:
    from zview.dataset import MetaDataset
    from zview.view import MetaViewDataset

    if isinstance(base, MetaDataset):
        cls = "zview.MetaViewDataset" if isinstance(base, MetaViewDataset) else "zview.MetaDataset"
        return cls, {"root": _relative(base.location, where), **(kwargs or {})}
    if isinstance(base, (str, os.PathLike)) and (
            "://" in os.fspath(base) or os.path.sep in os.fspath(base)
            or os.path.exists(os.fspath(base))):
        from zview import open as open_store

        return _base_reference(open_store(base, storage_options=options), kwargs, where, options)
    if isinstance(base, str):
        return base, dict(kwargs or {})
    raise ViewError(f"base must be a zview dataset, a store location or an import path, not "
                    f"{type(base).__name__}", store=str(where), key="base", value=base)


def _relative(target: Location, start: Location) -> str:
    if target.is_local and start.is_local:  # a zip counts as a folder, as in Location.join
        return os.path.relpath(target.url, start.url)
    if target.protocol == start.protocol and not start.is_zip:
        a, b = target.url.split("://", 1)[1], start.url.split("://", 1)[1]
        if a.split("/", 1)[0] == b.split("/", 1)[0]:  # same bucket
            return posixpath.relpath(a, b)
    return target.url


def _check_row_shape(key: str, data: np.ndarray, where: Location) -> None:
    # zarr 3.1 stores an (M, 0) array, newer zarr refuses its zero-size chunk: refuse it
    # everywhere, before anything is written
    if 0 in data.shape[1:]:
        raise ViewError(f"label {key!r} has shape {data.shape}: rows must not be empty (a zero "
                        f"after the first axis)", store=str(where), key=key, value=data.shape)


def _check_lengths(arrays: dict[str, np.ndarray], where: Location) -> int:
    for path, array in arrays.items():
        _check_row_shape(path, array, where)
    lengths = {p: (a.shape[0] if a.ndim else None) for p, a in arrays.items()}
    if None in lengths.values() or len(set(lengths.values())) > 1:
        raise ViewError(f"labels and views must all have one length (first axis), got "
                        f"{ {p: n for p, n in lengths.items()} }", store=str(where),
                        key=sorted(lengths), value=lengths)
    return next(iter(lengths.values()), 0)


def _check_indices(spec: Any, arrays: dict[str, np.ndarray], meta: dict, where: Location,
                   trust: bool, base_options: dict | None) -> None:
    from zview.view import build_base

    base = build_base(meta, where, trust=trust, storage_options=base_options)
    n = len(base)
    for path, key in leaves(spec):
        index = arrays[key]
        if index.dtype.kind not in "iu":
            raise ViewError(f"view {path or key!r} holds {index.dtype} values; views hold "
                            f"integer indices into the base", store=str(where), key=key,
                            value=str(index.dtype))
        if index.size:
            low, high = index.min(), index.max()
            if low < 0 or high >= n:
                bad = low if low < 0 else high
                raise IndexOutOfRangeError(key, int(bad), n, store=str(where),
                                           detail=" (the base's length); nothing was written")


def _write_store(target: Location, meta: dict, arrays: dict[str, np.ndarray], *,
                 progress: bool, length: int | None = None,
                 loaders: dict[str, str] | None = None, name: Location | None = None) -> None:
    fs, root = target.filesystem()
    fs.makedirs(root, exist_ok=True)
    group = zarr.open_group(target.zarr_store(read_only=False), mode="w")
    for path, array in tqdm(arrays.items(), desc=f"write {name or target}", unit="array",
                            disable=not progress or len(arrays) < 2):
        loader = (loaders or {}).get(path)
        _codecs.write_array(group, f"{_store.LABELS}/{path}", array,
                            attrs={"loader": loader} if loader else None)
    group.attrs["zview"] = {"format": _store.FORMAT,
                            "length": int(length if length is not None else
                                          _check_lengths(arrays, target)),
                            "fingerprint": _new_fingerprint()}
    _store.consolidate(target)
    fs.pipe_file(posixpath.join(root, META_NAME), dump_meta(meta).encode())  # last: "it exists"


def _new_fingerprint() -> str:
    return uuid.uuid4().hex[:16]


@contextlib.contextmanager
def _publish(where: Location, *, overwrite: bool) -> Iterator[Location]:
    """Yield where to build the store; put it in place only if building succeeded."""
    exists = _exists(where)
    if exists and not overwrite:
        raise StoreExistsError(f"a store already exists at {where}; pass overwrite=True "
                               f"(--overwrite) to replace it", store=str(where), key=META_NAME)
    if where.inner:
        raise MetaError("write a zip store to the zip file itself", store=str(where))
    if where.is_zip and not where.is_local:
        raise ReadOnlyStoreError(
            "zview writes zip files on a local disk only: write the zip locally and upload the "
            "file, or write the store to a folder (prefix) in the bucket", store=str(where),
            key="location", value=where.url)
    if where.is_local:
        with _publish_local(where) as target:
            yield target
    elif exists:
        with _publish_remote(where) as target:
            yield target
    else:  # a new store in a bucket appears when its meta.yaml, written last, does
        yield where
    _remove_dead_leftovers(where)  # after: a stopped overwrite may be finished from one


@contextlib.contextmanager
def _publish_local(where: Location) -> Iterator[Location]:
    # built beside the destination, so relative roots in meta.yaml resolve the same there
    with _building_beside(where) as stem:
        os.makedirs(os.path.dirname(stem), exist_ok=True)
        built = f"{stem}.tmp"
        try:
            yield Location(built, where.storage_options)
            if where.is_zip:
                _zip(built, f"{stem}.zip")
                shutil.rmtree(built)
                built = f"{stem}.zip"
            _replace(built, where.url, f"{stem}.old")
        finally:
            _remove(where, [f"{stem}.{suffix}" for suffix in _LEFTOVERS])


@contextlib.contextmanager
def _publish_remote(where: Location) -> Iterator[Location]:
    # object stores have no rename: the new store is built whole beside the old one, which
    # stays readable until the copy over it starts
    with _building_beside(where) as stem:
        staging = Location(f"{stem}.tmp", where.storage_options)
        try:
            yield staging
        except BaseException:
            _remove(where, [staging.url])
            raise
        _copy_over(staging, where)  # if this fails, the store names staging, which is kept
        _remove(where, [staging.url])


def _copy_over(staging: Location, where: Location) -> None:
    """Copy the complete store at ``staging`` over the one at ``where``.

    The root ``zarr.json`` is first replaced by a marker naming ``staging``, so a process killed
    during the copy leaves a store that says it is incomplete and how to finish it (opening it
    raises :class:`~zview.errors.IncompleteStoreError`); the new ``zarr.json``, copied last in
    one request, ends the swap.
    """
    fs, root = where.filesystem()
    _, built = staging.filesystem()
    new = {posixpath.relpath(p, built) for p in fs.find(built)}
    old = {posixpath.relpath(p, root) for p in fs.find(root)}
    marker = {"zarr_format": 3, "node_type": "group",
              "attributes": {"zview": {"format": _store.FORMAT, "replacing": staging.url}}}
    fs.pipe_file(posixpath.join(root, _store.ROOT_JSON), json.dumps(marker).encode())
    try:
        body = sorted(new - {_store.ROOT_JSON})
        fs.copy([posixpath.join(built, p) for p in body], [posixpath.join(root, p) for p in body])
        gone = sorted(old - new)
        if gone:
            fs.rm([posixpath.join(root, p) for p in gone])
        fs.copy(posixpath.join(built, _store.ROOT_JSON), posixpath.join(root, _store.ROOT_JSON))
    except Exception as e:
        raise IncompleteStoreError(
            f"replacing the store failed while the new one was copied in ({type(e).__name__}: "
            f"{e}); {_store.finish_hint(where, staging.url)}", store=str(where),
            key=_store.ROOT_JSON, value=staging.url) from e


# -- leftovers of killed writes --------------------------------------------------------------------
# A build in progress sits beside its destination as ".NAME.HOST-PID-RANDOM.tmp" (".zip", ".old"
# while it is put in place). One left by a process of this host that no longer runs is removed by
# the next write to that destination; others may belong to a write still running elsewhere.
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
_LEFTOVERS = ("tmp", "zip", "old")


@contextlib.contextmanager
def _building_beside(where: Location) -> Iterator[str]:
    """A fresh stem for a build beside ``where``, known to this process while it runs."""
    parent, name = where.url.rsplit("/", 1)
    stem = f"{parent}/.{name}.{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    _BUILDING.add(stem)
    try:
        yield stem
    finally:
        _BUILDING.discard(stem)


_BUILDING: set[str] = set()


def _remove_dead_leftovers(where: Location) -> None:
    parent, name = where.url.rsplit("/", 1)
    pattern = re.compile(rf"\.{re.escape(name)}\.{_HOST}-(\d+)-[0-9a-f]{{8}}")
    try:
        fs, path = Location(parent or "/", where.storage_options).filesystem(outer=True)
        names = [posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False)]
    except (OSError, ValueError):  # no parent yet, or nothing to list it with
        return
    dead = []
    for n in names:
        stem, _, suffix = n.rpartition(".")
        match = pattern.fullmatch(stem)
        if match and suffix in _LEFTOVERS and not _running(int(match[1]), f"{parent}/{stem}"):
            dead.append(f"{parent}/{n}")
    _remove(where, dead)


def _running(pid: int, stem: str) -> bool:
    if pid == os.getpid():
        return stem in _BUILDING
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _remove(where: Location, urls: list[str]) -> None:
    """Remove leftovers, quietly: a leftover that stays is only wasted space."""
    for url in urls:
        fs, path = Location(url, where.storage_options).filesystem(outer=True)
        with contextlib.suppress(OSError):
            if fs.isdir(path):
                fs.rm(path, recursive=True)
            elif fs.exists(path):
                fs.rm(path)


def _exists(where: Location) -> bool:
    try:
        where.read_bytes(META_NAME, limit=1)
        return True
    except (FileNotFoundError, StoreNotFoundError, NotADirectoryError):
        return False


def _zip(folder: str, path: str) -> None:
    # zarr reads stored (uncompressed) members fastest; chunks are compressed already
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for dirpath, _, files in os.walk(folder):
            for name in sorted(files):
                full = os.path.join(dirpath, name)
                zf.write(full, os.path.relpath(full, folder))


def _replace(built: str, destination: str, old: str) -> None:
    """Move ``built`` to ``destination``; the old one is removed only after the move.

    Where the system can swap two paths in one step, the old store ends up at ``built`` and
    ``destination`` is never absent, even for a process killed at that moment.
    """
    if os.path.lexists(destination) and _exchange(built, destination):
        return
    if os.path.lexists(destination):
        os.replace(destination, old)
    else:
        old = None
    try:
        os.replace(built, destination)
    except BaseException:
        if old is not None:
            os.replace(old, destination)
        raise


def _exchange(a: str, b: str) -> bool:
    """Swap the paths ``a`` and ``b`` atomically (Linux ``renameat2(RENAME_EXCHANGE)``).

    ``False`` where that is not available (other systems, old kernels, some filesystems).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0
