"""Rendering: the base's labels taken through every view leaf, written chunk by chunk.

``rendered[leaf][key] = take(base.labels[key], view_leaf, axis=0)``, streamed one output chunk
at a time so memory stays bounded by a few chunks. A leaf is marked complete in the root
attributes only after every chunk of every one of its arrays is in the store; an interrupted
render resumes by skipping the chunks already there.
"""

from __future__ import annotations

import posixpath
import uuid
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import zarr
import zarr.errors
from tqdm.auto import tqdm

from zview import _codecs, _store
from zview._labels import ChunkCache, LabelArray
from zview._location import Location
from zview.errors import MissingChunkError, ReadOnlyStoreError, RenderRequiredError, access_error
from zview.view import MetaViewDataset, _rendered_prefix, base_labels

RENDER_CACHE_BYTES = 64 << 20
"""Decoded base-label chunks kept while rendering (the memory bound of a render)."""

REGION_CHUNKS = 8
"""Output chunks written by one call (one Dask task): zarr encodes them concurrently."""


def render(location: str | Location, *, storage_options: dict | None = None,
           trust: bool = False, force: bool = False, progress: bool = True,
           dask: Any = None, base_storage_options: dict | None = None) -> dict[str, str]:
    """Render the base's labels through every view leaf of the store at ``location``.

    Parameters
    ----------
    location, storage_options, trust, base_storage_options
        As for :class:`zview.MetaViewDataset`.
    force
        Re-render complete leaves too (needed after the base changed).
    progress
        Show a progress bar (a widget in a notebook).
    dask
        A ``distributed.Client`` or a scheduler address: each output chunk becomes a task
        written straight to the store. The result is identical to the serial render.

    Returns
    -------
    dict
        ``{leaf path: status}`` after rendering; every status is ``"complete"``.

    Examples
    --------
    >>> zview.render("walk", force=True, progress=False)
    {'frames': 'complete'}
    """
    view = MetaViewDataset(location, storage_options=storage_options, trust=trust,
                           base_storage_options=base_storage_options, _rendered=False)
    render_view(view, force=force, progress=progress, dask=dask)
    view.group = _store.open_group(view.location)
    view.state = _store.state(view.group, view.location)
    return view.render_status()


def render_view(view: MetaViewDataset, *, force: bool = False, progress: bool = True,
                dask: Any = None) -> None:
    """Render the leaves of ``view`` that are not complete (all of them with ``force``)."""
    location = view.location
    if view.group is None:
        raise RenderRequiredError(
            f"{location} is an edflow folder, which zview reads unchanged and renders on "
            f"access; to store rendered labels, convert it: `zview convert {location} DST`",
            store=str(location), key="labels")
    group = _writable_group(location)
    status = view.render_status()
    fingerprint = view.base_fingerprint()
    sources = base_labels(view.base)
    tasks: list[tuple[str, str, int]] = []
    todo = [leaf for leaf, s in status.items() if force or s != "complete"]
    try:  # the first write: a bucket that refuses writes (anonymous, read-only) fails here
        _set_render_state(group, {leaf: {"fingerprint": fingerprint, "complete": False}
                                  for leaf in todo})
    except PermissionError as e:
        raise RenderRequiredError(
            f"{location} cannot be written here ({e}); render it where it can be written, or "
            f"convert it to a writable location first", store=str(location), key="rendered"
        ) from e
    outputs, written = _outputs(view, group, todo, status, sources, force)
    for (leaf, key), out in outputs.items():
        done = written.get((leaf, key), set())
        tasks += [(leaf, key, c) for c in range(_nchunks(out)) if c not in done]
    _store.consolidate(location)
    regions = _regions(tasks, {output: _region_chunks(out) for output, out in outputs.items()})
    if dask is not None:
        _run_on_dask(view, regions, dask, progress)
    else:
        cache = ChunkCache(RENDER_CACHE_BYTES)
        sources = {k: _cached(a, cache) for k, a in sources.items()}
        with tqdm(total=len(tasks), desc=f"render {location}", unit="chunk",
                  disable=not progress or not tasks) as bar:
            for leaf, key, first, stop in regions:
                path = f"{_rendered_prefix(leaf)}/{key}"
                try:
                    write_region(outputs[leaf, key], get_view_leaf(view, leaf), sources[key],
                                 first, stop)
                except OSError as e:  # the store failed (after the filesystem's own retries)
                    cause = access_error(e, store=str(location), key=path)
                    if cause is None:
                        raise
                    raise type(cause)(
                        f"rendering {path!r} stopped at chunks {first}-{stop - 1} "
                        f"({type(e).__name__}: {e}); the leaf stays incomplete and the chunks "
                        f"written are kept: run `zview render {location}` to resume",
                        store=str(location), key=path, value=[first, stop]) from e
                bar.update(stop - first)
    _mark_complete(view, outputs, todo, fingerprint)
    _store.consolidate(location)


def _region_chunks(out: zarr.Array) -> int:
    """Chunks in one region of ``out``: whole shards, about :data:`REGION_CHUNKS` chunks."""
    per_shard = _codecs.chunks_in_shard(out)
    return per_shard * max(1, REGION_CHUNKS // per_shard)


def _regions(tasks: list[tuple[str, str, int]], spans: dict[tuple[str, str], int]
             ) -> list[tuple[str, str, int, int]]:
    """Runs of consecutive chunks of one output, each within one aligned span of
    ``spans[leaf, key]`` chunks (whole shards: no region writes part of a shard)."""
    regions: list[tuple[str, str, int, int]] = []
    for leaf, key, c in tasks:
        if regions:
            last_leaf, last_key, first, stop = regions[-1]
            span = spans[leaf, key]
            if (last_leaf, last_key, stop) == (leaf, key, c) and first // span == c // span:
                regions[-1] = (leaf, key, first, c + 1)
                continue
        regions.append((leaf, key, c, c + 1))
    return regions


def write_region(out: zarr.Array, index: LabelArray, source: Any, first: int, stop: int
                 ) -> None:
    """Write output chunks ``first`` to ``stop - 1`` in one call (zarr encodes them at once).

    In a sharded array the chunks must make whole shards: zarr would otherwise read the shard
    back, merge and rewrite it, and two writers of one shard would lose each other's chunks.
    """
    per_shard = _codecs.chunks_in_shard(out)
    if first % per_shard or (stop % per_shard and stop < _nchunks(out)):
        raise ValueError(f"chunks {first}-{stop - 1} of {out.path!r} cover part of a shard of "
                         f"{per_shard} chunks; write whole shards")
    rows = slice(first * out.chunks[0], min(stop * out.chunks[0], out.shape[0]))
    # a chunk of fill values must still be written: a missing chunk means "not rendered yet"
    out = out.with_config({"write_empty_chunks": True})
    out[rows] = _codecs.to_zarr(take(source, index[rows]))


def take(source: Any, indices: np.ndarray) -> np.ndarray:
    """``source`` rows at ``indices`` (any shape) for zview label arrays and numpy arrays."""
    if isinstance(source, (LabelArray, LazyRendered)):
        return source.take(indices)
    return np.take(np.asarray(source) if not isinstance(source, np.ndarray) else source,
                   indices, axis=0)


def get_view_leaf(view: MetaViewDataset, leaf: str) -> LabelArray:
    return dict(view.view_leaves())[leaf]


def _cached(source: Any, cache: ChunkCache) -> Any:
    """The source read through the render's own bounded cache (not the base's big one)."""
    if isinstance(source, LabelArray):
        return LabelArray(source.source, name=source.name, store=source.store, cache=cache)
    return source


def _writable_group(location: Location) -> zarr.Group:
    try:
        store = location.zarr_store(read_only=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
            return zarr.open_group(store, mode="r+", use_consolidated=False)
    except (ReadOnlyStoreError, PermissionError) as e:
        raise RenderRequiredError(
            f"{location} cannot be written here ({e}); render it where it can be written, or "
            f"convert it to a writable location first", store=str(location), key="rendered"
        ) from e


def _outputs(view: MetaViewDataset, group: zarr.Group, todo: list[str], status: dict[str, str],
             sources: dict[str, Any], force: bool
             ) -> tuple[dict[tuple[str, str], zarr.Array], dict[tuple[str, str], set[int]]]:
    """The output array of each base label for each leaf in ``todo``, and the chunks of each
    already written.

    An incomplete leaf (not forced) keeps the arrays that still fit and resumes them; every
    other output is created, replacing what is there, all in one call (a few requests in a
    bucket, not a dozen per array).
    """
    outputs: dict[tuple[str, str], zarr.Array | None] = {}
    written: dict[tuple[str, str], set[int]] = {}
    specs: dict[str, _codecs.ArraySpec] = {}
    for leaf, index in view.view_leaves():
        if leaf not in todo:
            continue
        kept = {}
        for key, source in sources.items():
            path = f"{_rendered_prefix(leaf)}/{key}"
            existing = None
            if not force and status[leaf] == "incomplete":
                existing = _fitting(group, path, index, source)
            outputs[leaf, key] = existing
            if existing is not None:
                kept[path] = existing
            else:
                specs[path] = _output_spec(index, source)
        if kept:  # one listing for the leaf
            found = _written(view.location, _rendered_prefix(leaf), kept)
            prefix = len(_rendered_prefix(leaf)) + 1
            written.update({(leaf, p[prefix:]): chunks for p, chunks in found.items()})
    created = _codecs.create_arrays(group, specs) if specs else {}
    return {(leaf, key): out if out is not None else created[f"{_rendered_prefix(leaf)}/{key}"]
            for (leaf, key), out in outputs.items()}, written


def _fitting(group: zarr.Group, path: str, index: LabelArray, source: Any) -> zarr.Array | None:
    """The array at ``path`` if it has the output's shape and dtype (a render to resume)."""
    try:
        existing = group[path]
    except KeyError:
        return None
    dtype = np.dtype(source.dtype)
    if isinstance(existing, zarr.Array) and existing.shape == (
            *index.shape, *np.shape(source)[1:]) and existing.attrs.get(
            "numpy_dtype", str(existing.dtype)) in (dtype.str, str(dtype)):
        return existing
    return None


def _output_spec(index: LabelArray, source: Any) -> _codecs.ArraySpec:
    shape = (*index.shape, *np.shape(source)[1:])
    dtype = np.dtype(source.dtype)
    rows = _codecs.rows_per_chunk(shape, dtype.itemsize, _codecs.CHUNK_BYTES)
    sample = take(source, index[: min(rows, len(index))]) if len(index) else None
    # a region is built in memory a shard at a time
    return _codecs.ArraySpec(shape, dtype, sample, max_shard_bytes=_codecs.BUILT_SHARD_BYTES)


def _nchunks(array: zarr.Array) -> int:
    if 0 in array.shape:  # an empty array, (M, 0) too, has no chunks to write
        return 0
    return -(-array.shape[0] // array.chunks[0])


def written_chunks(location: Location, path: str, *, array: zarr.Array | None = None
                   ) -> set[int]:
    """First-axis chunk indices present in the store for the array at ``path`` (one listing).

    Pass the ``array`` for a sharded one: a shard present counts for each of its chunks.
    """
    return _written(location, path, {path: array})[path]


def _written(location: Location, prefix: str, arrays: dict[str, zarr.Array | None]
             ) -> dict[str, set[int]]:
    """:func:`written_chunks` of every array in ``arrays`` (paths under ``prefix``), from one
    listing of ``prefix``."""
    fs, root = location.filesystem()
    base = posixpath.join(root, prefix) if root else prefix
    try:
        keys = fs.find(base)
    except FileNotFoundError:
        keys = []
    found: dict[str, set[int]] = {path: set() for path in arrays}
    for key in keys:
        # chunk coordinates are digits, so the last "/c/" ends the array's path; only whole
        # chunk keys count: zarr's local store writes "c/5/0.<hex>.partial" first, and a render
        # killed then leaves it behind
        path, _, coords = posixpath.join(prefix, posixpath.relpath(key, base)).rpartition("/c/")
        parts = coords.split("/")
        if path not in found or not all(part.isdigit() for part in parts):
            continue
        array = arrays[path]
        per_shard = _codecs.chunks_in_shard(array) if array is not None else 1
        first = int(parts[0]) * per_shard
        stop = first + per_shard if array is None else min(first + per_shard, _nchunks(array))
        found[path].update(range(first, stop))
    return found


def _set_render_state(group: zarr.Group, updates: dict[str, dict]) -> None:
    state = dict(group.attrs.get("zview", {}))
    render = dict(state.get("render", {}))
    render.update(updates)
    state["render"] = render
    group.attrs["zview"] = state


def _mark_complete(view: MetaViewDataset, outputs: dict[tuple[str, str], zarr.Array],
                   leaves: Iterable[str], fingerprint: str) -> None:
    """Mark each leaf complete, after checking that every chunk of it is in the store."""
    for leaf in leaves:
        arrays = {f"{_rendered_prefix(leaf)}/{key}": out
                  for (of, key), out in outputs.items() if of == leaf}
        written = _written(view.location, _rendered_prefix(leaf), arrays)  # one listing
        for path, out in arrays.items():
            missing = set(range(_nchunks(out))) - written[path]
            if missing:
                raise MissingChunkError(
                    f"render of {path!r} left chunks {sorted(missing)[:10]} unwritten; run "
                    f"`zview render {view.location}` to resume", store=str(view.location),
                    key=path, value=sorted(missing))
    # re-read: another render may have marked other leaves meanwhile
    fresh = zarr.open_group(view.location.zarr_store(read_only=False), mode="r+",
                            use_consolidated=False)
    _set_render_state(fresh, {leaf: {"fingerprint": fingerprint, "complete": True}
                              for leaf in leaves})


def _run_on_dask(view: MetaViewDataset, regions: list[tuple[str, str, int, int]], dask: Any,
                 progress: bool) -> None:
    """Each region a task; workers open the store from its location and write to it."""
    from distributed import Client, as_completed

    own = isinstance(dask, str)
    client = Client(dask) if own else dask
    try:
        args = (view.location.url, view.location.storage_options, view.base_storage_options,
                view.trust, uuid.uuid4().hex)
        futures = [client.submit(_dask_task, *args, *region, pure=False) for region in regions]
        with tqdm(total=sum(stop - first for *_, first, stop in regions),
                  desc=f"render {view.location}", unit="chunk",
                  disable=not progress or not futures) as bar:
            for future in as_completed(futures):
                bar.update(future.result())
    finally:
        if own:
            client.close()


_worker_state: dict[tuple, tuple] = {}


def _dask_task(url: str, storage_options: dict, base_storage_options: dict | None, trust: bool,
               token: str, leaf: str, key: str, first: int, stop: int) -> int:
    """One output region, on a Dask worker; the store is opened once per worker and render."""
    ident = (url, repr(storage_options), repr(base_storage_options), trust, token)
    state = _worker_state.get(ident)
    if state is None:
        _worker_state.clear()  # a new render: what an earlier one opened may be stale
        view = MetaViewDataset(Location.resolve(url, storage_options), trust=trust,
                               base_storage_options=base_storage_options, _rendered=False)
        cache = ChunkCache(RENDER_CACHE_BYTES)
        sources = {k: _cached(a, cache) for k, a in base_labels(view.base).items()}
        state = _worker_state[ident] = (view, _writable_group(view.location), sources, {})
    view, group, sources, outputs = state
    path = f"{_rendered_prefix(leaf)}/{key}"
    if path not in outputs:  # read once per worker, not per region
        outputs[path] = group[path]
    write_region(outputs[path], get_view_leaf(view, leaf), sources[key], first, stop)
    return stop - first


class LazyRendered:
    """A base label taken through a view leaf on access (legacy folders are never written)."""

    def __init__(self, source: Any, index: LabelArray, *, name: str) -> None:
        self.source, self.index, self.name = source, index, name
        self.shape = (*index.shape, *np.shape(source)[1:])
        self.dtype = np.dtype(source.dtype)
        self.rows = max(1, index.rows)

    ndim = property(lambda self: len(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, i: Any) -> Any:
        return take(self.source, self.index[i])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def take(self, indices: np.ndarray) -> np.ndarray:
        return take(self.source, self.index.take(indices))

    def prefetch(self, chunk_ids: Any) -> None:
        self.index.prefetch(chunk_ids)

    def __repr__(self) -> str:
        return f"<rendered {self.name} shape={self.shape} dtype={self.dtype}>"
