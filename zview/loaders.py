"""Loaders: turn a label value (a path, a category id) into what an example holds.

The defaults keep edflow's names and keyword arguments: ``image``, ``np``, ``category``/``cat``.
A relative ``root`` has been resolved against the ``meta.yaml`` that names it before a loader is
called, so paths work the same on a disk, in a zip and in a bucket.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from zview import _trust
from zview._location import Location
from zview.errors import LoaderError, MetaError, MissingFileError, MissingLabelError, ZViewError

SUPPORTS = ("0->255", "0->1", "-1->1")


def _read(path: str, root: Location) -> bytes:
    return root.join(str(path)).read_bytes("")


def image(path: str, *, root: Location, support: str = "0->255",
          resize_to: int | list[int] | None = None) -> np.ndarray:
    """Load the image at ``root/path`` with PIL, optionally resized, in the given support.

    ``0->255`` gives PIL's ``uint8`` values; ``0->1`` and ``-1->1`` give floats (``float64``, as
    edflow returns them).
    """
    if support not in SUPPORTS:
        raise MetaError(f"image loader support must be one of {SUPPORTS}, got {support!r}",
                        key="loader_kwargs/support", value=support)
    with Image.open(io.BytesIO(_read(path, root))) as im:
        if resize_to is not None:
            size = [resize_to] * 2 if isinstance(resize_to, int) else list(resize_to)
            im = im.resize(size)
        pixels = np.array(im)
    if support == "0->255":
        return pixels
    low = 0.0 if support == "0->1" else -1.0
    return pixels.astype(float) / 255.0 * (1.0 - low) + low


def numpy(path: str, *, root: Location) -> np.ndarray:
    """Load the ``.npy`` file at ``root/path``."""
    return np.load(io.BytesIO(_read(path, root)), allow_pickle=False)


def category(index: Any, *, categories: Any) -> Any:
    """``categories[index]``: a readable name for a category id."""
    return categories[index]


DEFAULT_LOADERS: dict[str, Callable[..., Any]] = {
    "image": image,
    "np": numpy,
    "category": category,
    "cat": category,
}


def make_loader(name: str, kwargs: dict, *, root: Location, trust: bool,
                label: str, store: object) -> Callable[[Any], Any]:
    """A one-argument function that loads a label value with loader ``name`` and ``kwargs``.

    A relative ``root`` in ``kwargs`` resolves against ``root`` (the ``meta.yaml`` location).
    """
    kwargs = dict(kwargs)
    base = root.join(str(kwargs.pop("root"))) if kwargs.get("root") else root
    if name in DEFAULT_LOADERS:
        fn = DEFAULT_LOADERS[name]
        if fn is not category:
            kwargs["root"] = base
        elif "categories" not in kwargs:
            raise MetaError(f"the category loader of label {label!r} needs "
                            f"loader_kwargs: {{{label}: {{categories: [...]}}}}", store=store,
                            key=f"loader_kwargs/{label}", value=kwargs)

        def load(value: Any) -> Any:
            try:
                return fn(value, **kwargs)
            except ZViewError:
                raise
            except FileNotFoundError as e:
                raise MissingFileError(
                    f"label {label!r} names {_short(value)}, which the {name!r} loader cannot "
                    f"find under {base}", store=store, key=label, value=value) from e
            except Exception as e:  # PIL, numpy and indexing fail in many types on bad input
                raise LoaderError(
                    f"the {name!r} loader of label {label!r} failed on {_short(value)} with "
                    f"loader_kwargs {_short(kwargs)}: {type(e).__name__}: {e}", store=store,
                    key=label, value=value) from e

        return load
    if "." not in name:
        raise MissingLabelError(f"unknown loader {name!r} for label {label!r}; use one of "
                                f"{sorted(DEFAULT_LOADERS)} or an import path", store=store,
                                key=f"loaders/{label}", value=name)
    fn = _trust.resolve(name, trust=trust, store=store, what=f"loader of {label!r}")
    if "root" in kwargs or base is not root:
        kwargs["root"] = base.url

    def load_custom(value: Any) -> Any:
        out = fn(value, **kwargs)
        return out() if callable(out) else out  # edflow's loaders return thunks

    return load_custom


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)  # 'a', not np.str_('a')
    return text if len(text) <= limit else text[: limit - 3] + "..."
