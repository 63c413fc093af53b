"""``meta.yaml``: reading it safely and checking every key edflow knows.

The document is parsed with ``yaml.safe_load`` only, after bounds on its size and on the size it
expands to through aliases (a "billion laughs" document is small on disk and huge in memory).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from zview._location import Location
from zview.errors import MetaError, StorageOptionsError, StoreNotFoundError, access_error

META_NAME = "meta.yaml"
MAX_META_BYTES = 1 << 20
"""A ``meta.yaml`` larger than this is refused; real ones are a few hundred bytes."""
MAX_META_NODES = 100_000
"""Refuse documents whose alias-expanded tree has more nodes than this."""
MAX_META_DEPTH = 64
"""Refuse documents nested deeper than this (deep nesting costs the parser seconds)."""
IMPORT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")

_EXPECTED: dict[str, tuple[type, ...]] = {
    "description": (str,),
    "base_dset": (str,),
    "base_kwargs": (dict,),
    "views": (str, dict, list),
    "loaders": (dict,),
    "loader_kwargs": (dict,),
}


def read_meta(location: Location) -> dict[str, Any]:
    """Read and check ``meta.yaml`` at ``location``.

    Raises
    ------
    StoreNotFoundError
        No ``meta.yaml`` there.
    MetaError
        Too large, not YAML, or a known key of the wrong type.
    """
    try:
        raw = location.read_bytes(META_NAME, limit=MAX_META_BYTES + 1)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
        raise StoreNotFoundError(
            f"no {META_NAME} at {location}: not a zview store or edflow dataset folder (check "
            f"the path, or write one with zview.write_view)", store=location.url, key=META_NAME
        ) from e
    except Exception as e:  # filesystems fail in their own types
        error = access_error(e, store=location.url, key=META_NAME)
        if error is None:
            raise
        if isinstance(error, StorageOptionsError):  # names only: options may hold secrets
            error.value = sorted(location.storage_options)
        raise error from e
    return parse_meta(raw, store=location.url)


def parse_meta(raw: bytes | str, *, store: object = None) -> dict[str, Any]:
    """Parse and check the text of a ``meta.yaml``.

    >>> parse_meta("base_dset: a.B\\nviews: {x: v}")
    {'base_dset': 'a.B', 'views': {'x': 'v'}}
    """
    if len(raw) > MAX_META_BYTES:
        raise MetaError(f"{META_NAME} is larger than {MAX_META_BYTES} bytes; it should only "
                        f"name the base and the views", store=store, key=META_NAME,
                        value=len(raw))
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        _check_expanded_size(text, store)
        meta = yaml.safe_load(text)
    except MetaError:
        raise
    # PyYAML's constructors fail in their own ways on odd tags (``!!timestamp`` alone raises
    # AttributeError, ``!!int x`` ValueError): anything raised while parsing is bad YAML
    except Exception as e:
        raise MetaError(f"{META_NAME} is not valid YAML: {e}", store=store, key=META_NAME,
                        value=None) from e
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise MetaError(f"{META_NAME} must be a mapping of keys, got {type(meta).__name__}",
                        store=store, key=META_NAME, value=meta)
    check_meta(meta, store=store)
    return meta


def _check_expanded_size(text: str, store: object) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):  # lazily: stops at the first excess
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_META_DEPTH:
                raise MetaError(f"{META_NAME} is nested deeper than {MAX_META_DEPTH} levels; "
                                f"refusing it", store=store, key=META_NAME, value=depth)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:  # counts aliased subtrees once per use, memoized per node
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1  # guards against recursive aliases
        n = 1
        if isinstance(node, yaml.SequenceNode):
            n += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            n += sum(size(k) + size(v) for k, v in node.value)
        sizes[id(node)] = n
        if n > MAX_META_NODES:
            raise MetaError(f"{META_NAME} expands to more than {MAX_META_NODES} nodes through "
                            f"aliases; refusing it", store=store, key=META_NAME, value=n)
        return n

    if root is not None:
        size(root)


def check_meta(meta: dict, *, store: object = None) -> None:
    """Check the types of the keys edflow knows; unknown keys are kept and ignored."""
    for key, types in _EXPECTED.items():
        value = meta.get(key)
        if value is not None and not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types)
            raise MetaError(f"{META_NAME} key {key!r} must be a {names}, got "
                            f"{type(value).__name__} {_short(value)}", store=store, key=key,
                            value=value)
    base = meta.get("base_dset")
    if base is not None and not IMPORT_PATH.match(base):
        raise MetaError(f"{META_NAME} key 'base_dset' must be an import path like "
                        f"'package.module.Class', got {_short(base)}", store=store,
                        key="base_dset", value=base)
    if "views" in meta:
        _check_views(meta["views"], store)
    for name, loader in (meta.get("loaders") or {}).items():
        if not isinstance(name, str) or not isinstance(loader, str):
            raise MetaError(f"{META_NAME} 'loaders' maps label names to loader names, got "
                            f"{_short(name)}: {_short(loader)}", store=store,
                            key=f"loaders/{name}", value=loader)
    for name, kwargs in (meta.get("loader_kwargs") or {}).items():
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise MetaError(f"{META_NAME} 'loader_kwargs' maps label names to keyword "
                            f"dicts, got {_short(name)}: {_short(kwargs)}", store=store,
                            key=f"loader_kwargs/{name}", value=kwargs)
    kwargs = meta.get("base_kwargs") or {}
    if not all(isinstance(k, str) for k in kwargs):
        raise MetaError(f"{META_NAME} 'base_kwargs' keys must be strings, got "
                        f"{_short(list(kwargs))}", store=store, key="base_kwargs", value=kwargs)


def _check_views(views: Any, store: object, path: str = "views") -> None:
    if isinstance(views, str) and views:
        return
    if isinstance(views, dict) and views:
        for k, v in views.items():
            if not isinstance(k, str) or not k or "/" in k:
                raise MetaError(f"{META_NAME} view names must be non-empty strings without "
                                f"'/', got {_short(k)} in {path}", store=store, key=path,
                                value=k)
            _check_views(v, store, f"{path}/{k}")
        return
    if isinstance(views, list) and views:
        for i, v in enumerate(views):
            _check_views(v, store, f"{path}/{i}")
        return
    raise MetaError(f"{META_NAME} {path} must be a label key or a non-empty dict/list of them, "
                    f"got {_short(views)}", store=store, key=path, value=views)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def dump_meta(meta: dict) -> str:
    """The YAML text of ``meta``, keys in edflow's order."""
    return yaml.safe_dump(meta, sort_keys=False, default_flow_style=False, allow_unicode=True)
