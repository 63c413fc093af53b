"""``validate``: read a whole store and list every problem found, without writing anything."""

from __future__ import annotations

import os
from typing import Any

from tqdm.auto import tqdm

from zview._labels import ChunkCache, LabelArray
from zview._location import Location
from zview._meta import read_meta
from zview.dataset import MetaDataset
from zview.errors import ZViewError
from zview.view import MetaViewDataset


def validate(location: str | os.PathLike | Location, *, storage_options: dict | None = None,
             trust: bool = False, progress: bool = False,
             base_storage_options: dict | None = None) -> list[str]:
    """Every problem of the store at ``location``, one line each; empty if it is sound.

    Checks ``meta.yaml``, equal lengths, every view index in ``[0, len(base))``, that every
    chunk of every array is present and decodes, and that every view leaf is rendered against
    the current base.

    Examples
    --------
    >>> zview.validate("walk")
    []
    """
    where = Location.resolve(location, storage_options)
    try:
        meta = read_meta(where)
        if "base_dset" in meta:
            ds: MetaDataset = MetaViewDataset(where, trust=trust, _rendered=False, _meta=meta,
                                              base_storage_options=base_storage_options)
        else:
            ds = MetaDataset(where, trust=trust, _meta=meta)
    except ZViewError as e:
        return [f"{type(e).__name__}: {e}"]
    problems = []
    arrays = dict(ds._flat)
    if isinstance(ds, MetaViewDataset) and ds.group is not None:
        for leaf, status in ds.render_status().items():
            if status != "complete":
                problems.append(f"rendered labels of view {leaf!r} are {status}; run "
                                f"`zview render {'--force ' if status == 'stale' else ''}"
                                f"{where}`")
            else:
                arrays.update({f"rendered/{leaf}/{k}": a for k, a in _rendered(ds, leaf)})
    for name, array in tqdm(sorted(arrays.items()), desc=f"validate {where}", unit="array",
                            disable=not progress):
        problems += _read_all(name, array)
    return problems


def _rendered(ds: MetaViewDataset, leaf: str) -> list[tuple[str, LabelArray]]:
    from zview import _store
    from zview.view import _rendered_prefix

    labels, _ = _store.zarr_labels(ds.group, _rendered_prefix(leaf), location=ds.location,
                                   cache=ChunkCache(0))
    return sorted(labels.items())


def _read_all(name: str, array: Any) -> list[str]:
    """Decode every chunk (views check their indices as they decode); one problem per array."""
    reader = LabelArray(array.source, name=array.name, store=array.store,
                        cache=ChunkCache(0), check=array.check)
    try:
        for c in range(reader.nchunks()):
            reader._chunk(c)
    except ZViewError as e:
        return [f"{name}: {type(e).__name__}: {e}"]
    return []
