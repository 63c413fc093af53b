"""Nested trees of dicts and lists: walking, mapping, and key paths.

A *tree* is a dict or list whose leaves are anything else. A leaf's *path* joins its keys and
list positions with ``/``, as edflow does: ``{"a": [x, y]}`` has leaves ``a/0`` and ``a/1``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

SEP = "/"


def leaves(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield ``(path, leaf)`` for every leaf, depth first, in key order.

    >>> list(leaves({"a": [1, 2], "b": {"c": 3}}))
    [('a/0', 1), ('a/1', 2), ('b/c', 3)]
    """
    if isinstance(tree, dict):
        items = ((str(k), v) for k, v in tree.items())
    elif isinstance(tree, list):
        items = ((str(i), v) for i, v in enumerate(tree))
    else:
        yield prefix, tree
        return
    for key, value in items:
        yield from leaves(value, f"{prefix}{SEP}{key}" if prefix else key)


def map_tree(fn: Callable[[Any], Any], tree: Any) -> Any:
    """Return a tree of the same shape with ``fn`` applied to every leaf.

    >>> map_tree(lambda x: x * 10, {"a": [1, 2], "b": 3})
    {'a': [10, 20], 'b': 30}
    """
    if isinstance(tree, dict):
        return {k: map_tree(fn, v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [map_tree(fn, v) for v in tree]
    return fn(tree)


def map_with_path(fn: Callable[[str, Any], Any], tree: Any, prefix: str = "") -> Any:
    """Like :func:`map_tree`, passing each leaf's path as first argument."""
    if isinstance(tree, dict):
        return {k: map_with_path(fn, v, _join(prefix, k)) for k, v in tree.items()}
    if isinstance(tree, list):
        return [map_with_path(fn, v, _join(prefix, i)) for i, v in enumerate(tree)]
    return fn(prefix, tree)


def _join(prefix: str, key: object) -> str:
    return f"{prefix}{SEP}{key}" if prefix else str(key)


def get_path(tree: Any, path: str) -> Any:
    """The node at ``path``; raises ``KeyError`` naming the first missing part.

    >>> get_path({"a": [1, {"b": 2}]}, "a/1/b")
    2
    """
    node = tree
    for part in path.split(SEP) if path else []:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(path)
    return node


def set_path(tree: dict, path: str, value: Any) -> None:
    """Set ``value`` at ``path`` in a tree of dicts, creating dicts on the way.

    >>> t = {}
    >>> set_path(t, "a/b", 1)
    >>> t
    {'a': {'b': 1}}
    """
    *parents, last = path.split(SEP)
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def expand_index(row: np.ndarray | np.generic, fn: Callable[[Any], Any]) -> Any:
    """Replace each element of an index row by ``fn(element)``, as nested lists.

    A 0-d row gives ``fn(row)``; a row of shape ``(5, 3)`` gives 5 lists of 3 results. Elements
    stay numpy scalars, as edflow passes them to the base.

    >>> expand_index(np.array([[1, 2], [3, 4]]), int)
    [[1, 2], [3, 4]]
    """
    if isinstance(row, np.ndarray) and row.ndim > 0:
        return [expand_index(sub, fn) for sub in row]
    return fn(row[()] if isinstance(row, np.ndarray) else row)
