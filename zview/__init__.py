"""zview: views of machine-learning datasets as chunked, compressed zarr arrays.

A view is a tree of integer index arrays into a base dataset, described by an edflow-compatible
``meta.yaml``. zview writes views and the base's labels rendered through them as zarr arrays, on
a local disk, in a zip or in a bucket, and opens them anywhere.

>>> import zview
>>> view = zview.open("fixtures/edflow-small/view")
>>> len(view), sorted(view[0])
(7, ['appearance', 'frames', 'index_', 'labels_', 'nested'])
"""

from __future__ import annotations

import importlib.metadata
import os

from zview import errors
from zview._location import Location
from zview._meta import read_meta
from zview._trust import register_base
from zview.convert import convert
from zview.dataset import MetaDataset
from zview.render import render
from zview.validate import validate
from zview.view import MetaViewDataset
from zview.write import store_label, write_dataset, write_view

__version__ = importlib.metadata.version("zview")


def open(location: str | os.PathLike | Location, *, storage_options: dict | None = None,
         trust: bool = False, **kwargs) -> MetaDataset:
    """Open the store at ``location``: a :class:`MetaViewDataset` if its ``meta.yaml`` names a
    base, else a :class:`MetaDataset`. Further keywords go to the class; those only a view
    takes (``render``, ``progress``, ``base_storage_options``) are ignored for a dataset.

    Examples
    --------
    >>> zview.open("walk")
    <MetaViewDataset ... len=20 labels=...>

    A public bucket: ``zview.open("s3://bucket/views/walk", storage_options={"anon": True})``.
    """
    where = Location.resolve(location, storage_options)
    meta = read_meta(where)
    if "base_dset" in meta:
        return MetaViewDataset(where, trust=trust, _meta=meta, **kwargs)
    # a dataset that is no view has no base to render or read: its keywords do not apply
    kwargs = {k: v for k, v in kwargs.items() if k not in _VIEW_ONLY}
    return MetaDataset(where, trust=trust, _meta=meta, **kwargs)


_VIEW_ONLY = frozenset({"render", "progress", "base_storage_options", "_rendered"})


__all__ = [
    "MetaDataset",
    "MetaViewDataset",
    "__version__",
    "convert",
    "errors",
    "open",
    "register_base",
    "render",
    "store_label",
    "validate",
    "write_dataset",
    "write_view",
]
