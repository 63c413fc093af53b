"""The store layout (format 1): what lives where under a store's root, and its state.

::

    ROOT/meta.yaml     the only file a person edits
    ROOT/zarr.json     root group, consolidated metadata; attrs["zview"] holds the state
    ROOT/labels/...    the store's own labels; attrs["loader"] on an array names its loader
    ROOT/rendered/<view leaf>/<base label>

Legacy edflow folders (``labels/KEY-*-SHAPE-*-DTYPE.npy``) are read in place by
:func:`legacy_labels`.
"""

from __future__ import annotations

import hashlib
import posixpath
import warnings
from typing import Any

import numpy as np
import zarr
import zarr.errors

from zview._labels import LEGACY_NAME, ChunkCache, LabelArray, StrictStore
from zview._location import Location
from zview.errors import CorruptStoreError, IncompleteStoreError, ZViewError

FORMAT = 1
LABELS = "labels"
RENDERED = "rendered"
ROOT_JSON = "zarr.json"


def open_group(location: Location, *, read_only: bool = True) -> zarr.Group | None:
    """The consolidated root group, or ``None`` where there is no ``zarr.json`` (legacy)."""
    store = location.zarr_store(read_only=read_only)

    def reopen() -> zarr.abc.store.Store:
        return location.zarr_store(read_only=read_only)

    def corrupt(e: Exception, what: str) -> CorruptStoreError:
        return CorruptStoreError(f"zarr.json {what}: {type(e).__name__}: {e}",
                                 store=str(location), key="zarr.json")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
            try:
                # zarr_format: without it zarr also asks for zarr 2's three metadata files
                return zarr.open_group(StrictStore(store, reopen), mode="r" if read_only else "r+",
                                       use_consolidated=True, zarr_format=3)
            except ValueError as e:
                if "consolidated" not in str(e).lower():
                    raise
            # written by another tool: read without consolidated metadata
            return zarr.open_group(StrictStore(store), mode="r", use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
        return None
    except (zarr.errors.NodeTypeValidationError, zarr.errors.ContainsArrayError) as e:
        raise corrupt(e, "is not a zarr group") from e
    except ZViewError:
        raise
    # a zarr.json that is not a JSON object reaches zarr's parser as a list or None
    except (ValueError, TypeError, AttributeError) as e:
        raise corrupt(e, "is corrupt") from e


def state(group: zarr.Group | None, location: Location, *, finished: bool = True
          ) -> dict[str, Any]:
    """The zview state in the root attributes (format, length, fingerprint, render).

    A store whose last write stopped half-way raises :class:`IncompleteStoreError`, unless
    ``finished=False`` (for the write that finishes it).
    """
    if group is None:
        return {}
    value = group.attrs.get("zview", {})
    if not isinstance(value, dict):
        raise CorruptStoreError("attrs['zview'] of zarr.json must be a mapping",
                                store=str(location), key="zarr.json/zview", value=value)
    staging, labels = value.get("replacing"), value.get("writing")
    if finished and staging is not None:
        raise IncompleteStoreError(f"an overwrite of this store stopped while the new store was "
                                   f"copied in; {finish_hint(location, staging)}",
                                   store=str(location), key="zarr.json/zview/replacing",
                                   value=staging)
    if finished and labels:
        raise IncompleteStoreError(f"writing label(s) {labels} stopped half-way; run "
                                   f"store_label(..., overwrite=True) for each again",
                                   store=str(location), key="zarr.json/zview/writing",
                                   value=labels)
    render = value.get("render", {})
    if not isinstance(render, dict) or not all(isinstance(e, dict) for e in render.values()):
        raise CorruptStoreError("attrs['zview']['render'] of zarr.json must map view leaves to "
                                "mappings", store=str(location), key="zarr.json/zview/render",
                                value=render)
    return value


def finish_hint(location: Location, staging: object) -> str:
    """How to finish an overwrite that stopped while copying the store built at ``staging``."""
    return (f"the new store is complete at {staging}: finish with `zview convert {staging} "
            f"{location} --overwrite`, or run the write again with overwrite=True")


def zarr_arrays(group: zarr.Group, prefix: str) -> dict[str, zarr.Array]:
    """Every array under ``prefix`` by its path relative to it, from consolidated metadata."""
    if prefix not in group:
        return {}
    sub = group[prefix]
    return {path: node for path, node in sub.members(max_depth=None)
            if isinstance(node, zarr.Array)}


def zarr_labels(group: zarr.Group, prefix: str, *, location: Location, cache: ChunkCache
                ) -> tuple[dict[str, LabelArray], dict[str, str]]:
    """Label arrays under ``prefix`` by path, and the loader each names in its attributes."""
    labels, loaders = {}, {}
    for path, array in zarr_arrays(group, prefix).items():
        labels[path] = LabelArray(array, name=f"{prefix}/{path}", store=str(location),
                                  cache=cache)
        loader = array.attrs.get("loader")
        if loader:
            loaders[path] = str(loader)
    return labels, loaders


def legacy_labels(location: Location, *, cache: ChunkCache
                  ) -> tuple[dict[str, LabelArray], dict[str, str]]:
    """edflow's ``labels/`` folder: ``.npy`` memmaps named ``KEY[:loader]-*-SHAPE-*-DTYPE``."""
    fs, root = location.filesystem()
    folder = posixpath.join(root, LABELS) if root else LABELS
    try:
        files = fs.find(folder)
    except FileNotFoundError:
        files = []
    labels, loaders = {}, {}
    for file in sorted(files):
        relative = posixpath.relpath(file, folder)
        match = LEGACY_NAME.match(posixpath.basename(relative))
        if not match:
            continue
        key, _, loader = match["key"].partition(":")
        path = posixpath.join(posixpath.dirname(relative), key).lstrip("./") if posixpath.dirname(
            relative) else key
        try:
            shape = tuple(int(s) for s in match["shape"].split("x")) if match["shape"] else ()
            dtype = np.dtype(match["dtype"])
        except (ValueError, TypeError) as e:
            raise CorruptStoreError(f"label file name {relative!r} has a bad shape or dtype: {e}",
                                    store=str(location), key=relative, value=match["shape"]) from e
        labels[path] = LabelArray(_legacy_array(fs, file, shape, dtype, location),
                                  name=f"{LABELS}/{path}", store=str(location), cache=cache)
        if loader:
            loaders[path] = loader
    return labels, loaders


def _legacy_array(fs, file: str, shape: tuple, dtype: np.dtype, location: Location) -> np.ndarray:
    expected = int(np.prod(shape)) * dtype.itemsize
    size = fs.size(file)
    if size != expected:
        raise CorruptStoreError(f"label file {file!r} holds {size} bytes, but its name says "
                                f"{shape} {dtype} ({expected} bytes)", store=str(location),
                                key=file, value=size)
    if location.is_local and not location.is_zip:
        return np.memmap(file, mode="r", dtype=dtype, shape=shape)
    return np.frombuffer(fs.cat_file(file), dtype=dtype).reshape(shape)


def fingerprint(labels: dict[str, Any], length: int) -> str:
    """A digest of the labels' paths, shapes and dtypes (used for bases not written by zview)."""
    parts = [str(length)] + [f"{p}:{tuple(a.shape)}:{np.dtype(a.dtype).str}"
                             for p, a in sorted(labels.items())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def consolidate(location: Location) -> None:
    """Rewrite the consolidated metadata; every write ends with this."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
        try:
            zarr.consolidate_metadata(location.zarr_store(read_only=False))
        except OSError as e:
            raise ZViewError(f"cannot write zarr.json: {e}", store=str(location),
                             key="zarr.json") from e
