"""Which import paths a store may name: zview never imports what a store asks it to on its own.

``base_dset`` plus ``base_kwargs`` in a ``meta.yaml`` is a function call, and a loader named by
import path is one per example. A path is imported only if it is trusted:

- zview's own datasets, and edflow's believer classes (which open with zview's);
- registered with :func:`register_base` or the ``zview.bases`` entry point group;
- listed in the ``ZVIEW_TRUSTED_BASES`` environment variable (comma-separated; ``pkg.*`` allows a
  package);
- or the caller passes ``trust=True`` (``--trust`` on the command line).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Callable
from typing import Any

from zview.errors import BaseBuildError, UntrustedBaseError

ENV_VAR = "ZVIEW_TRUSTED_BASES"
ENTRY_POINT_GROUP = "zview.bases"

# edflow's believers are re-implemented here, so their names open zview's classes.
_BUILTIN = {
    "zview.MetaDataset": "zview.dataset.MetaDataset",
    "zview.MetaViewDataset": "zview.view.MetaViewDataset",
    "zview.dataset.MetaDataset": "zview.dataset.MetaDataset",
    "zview.view.MetaViewDataset": "zview.view.MetaViewDataset",
    "edflow.data.believers.meta.MetaDataset": "zview.dataset.MetaDataset",
    "edflow.data.believers.meta_view.MetaViewDataset": "zview.view.MetaViewDataset",
}
_registered: dict[str, Callable[..., Any] | None] = {}


def register_base(import_path: str, obj: Callable[..., Any] | None = None) -> None:
    """Trust ``import_path`` as a base dataset or loader; ``obj`` is used instead of importing.

    Examples
    --------
    >>> zview.register_base("mylab.data.Frames")
    """
    _registered[import_path] = obj


def _entry_points() -> dict[str, str]:
    return {ep.value.replace(":", "."): ep.value
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _env_allows(import_path: str) -> bool:
    for item in os.environ.get(ENV_VAR, "").split(","):
        item = item.strip()
        if item and (item == import_path or (item.endswith(".*")
                                             and import_path.startswith(item[:-1]))):
            return True
    return False


def is_builtin(import_path: str) -> bool:
    return import_path in _BUILTIN


def resolve(import_path: str, *, trust: bool = False, store: object = None,
            what: str = "base_dset") -> Callable[..., Any]:
    """The object at ``import_path`` if it is trusted; raises before any import otherwise."""
    if import_path in _registered and _registered[import_path] is not None:
        return _registered[import_path]
    target = _BUILTIN.get(import_path)
    if target is None:
        trusted = (trust or import_path in _registered or import_path in _entry_points()
                   or _env_allows(import_path))
        if not trusted:
            raise UntrustedBaseError(
                f"{what} {import_path!r} is not a trusted import path, so it was not imported. "
                f"To allow it: call zview.register_base({import_path!r}), list it in the "
                f"{ENV_VAR} environment variable or the {ENTRY_POINT_GROUP!r} entry point "
                f"group, or pass trust=True (--trust) if you trust this store",
                store=store, key=what, value=import_path)
        target = import_path
    module_name, _, attr = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise BaseBuildError(f"cannot import {what} {import_path!r}: {e}", store=store,
                             key=what, value=import_path) from e
