"""Label arrays: zarr arrays and legacy edflow ``.npy`` memmaps behind one array-like.

Reading one element through zarr costs about a millisecond; reading a decoded chunk from memory
costs a microsecond. :class:`LabelArray` therefore serves every read from whole decoded chunks kept
in a byte-bounded :class:`ChunkCache`, and fetches the chunks a batch is missing in one zarr call,
which zarr runs concurrently.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import posixpath
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import zarr
import zarr.storage
from zarr.core.sync import sync

from zview import _codecs
from zview._tree import SEP
from zview.errors import (
    CorruptStoreError,
    IndexOutOfRangeError,
    MissingChunkError,
    StoreAccessError,
    StoreUnreachableError,
    ZViewError,
    access_error,
)

LEGACY_NAME = re.compile(r"^(?P<key>.+)-\*-(?P<shape>[0-9x]*)-\*-(?P<dtype>.+)\.npy$")
"""edflow's label file name: ``KEY-*-SHAPE-*-DTYPE.npy`` (``KEY`` may end in ``:loader``)."""

DEFAULT_CACHE_BYTES = 512 << 20
MAX_CHUNK_BYTES = 1 << 30
"""Chunks larger than this (uncompressed) are refused rather than decoded."""
_array_ids = itertools.count()


class ChunkCache:
    """A thread-safe LRU of decoded chunks, bounded by their total size in bytes."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._chunks: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            chunk = self._chunks.get(key)
            if chunk is not None:
                self._chunks.move_to_end(key)
            return chunk

    def put(self, key: tuple, chunk: np.ndarray) -> None:
        with self._lock:
            if key in self._chunks:
                return
            self._chunks[key] = chunk
            self._bytes += chunk.nbytes
            while self._bytes > self.max_bytes and len(self._chunks) > 1:
                _, old = self._chunks.popitem(last=False)
                self._bytes -= old.nbytes

    @property
    def nbytes(self) -> int:
        return self._bytes


class LabelArray:
    """A read-only, chunk-cached array over a zarr array or a numpy (memmap) array.

    Indexing follows numpy: ``a[i]``, ``a[2:5]``, ``a[[3, 1]]``; ``np.asarray(a)`` reads all.
    ``check`` is called on every chunk once, when it is decoded (views check their indices).
    """

    def __init__(self, source: zarr.Array | np.ndarray, *, name: str, store: object,
                 cache: ChunkCache | None = None,
                 check: Callable[[np.ndarray, int], None] | None = None) -> None:
        self.source = source
        self.name = name
        self.store = store
        self.cache = cache if cache is not None else ChunkCache()
        self.check = check
        self.shape: tuple[int, ...] = tuple(source.shape)
        if isinstance(source, zarr.Array):
            self._attrs = source.attrs.asdict()
            numpy_dtype = self._attrs.get("numpy_dtype")
            try:
                self.dtype = np.dtype(numpy_dtype) if numpy_dtype else np.dtype(source.dtype)
            except (TypeError, ValueError) as e:
                raise CorruptStoreError(f"array {name!r} names an unknown numpy_dtype "
                                        f"{numpy_dtype!r}: {e}", store=store, key=name,
                                        value=numpy_dtype) from e
            self.rows = source.chunks[0] or 1
            # a chunk is decoded whole: one a store claims to be huge would exhaust memory
            chunk_bytes = math.prod(source.chunks) * max(1, np.dtype(source.dtype).itemsize)
            if chunk_bytes > MAX_CHUNK_BYTES:
                raise CorruptStoreError(
                    f"array {name!r} has chunks of {chunk_bytes} bytes {tuple(source.chunks)}; "
                    f"zview reads chunks of at most {MAX_CHUNK_BYTES} bytes (it writes about "
                    f"1 MiB): re-write the store", store=store, key=name,
                    value=tuple(source.chunks))
        else:
            self._attrs = {}
            self.dtype = source.dtype
            self.rows = max(1, self.shape[0]) if self.shape else 1
        self._key = (next(_array_ids), name)  # unique for the process, unlike id()
        # (start, stop, chunk) of the chunk read last: a hit is served without the cache's
        # lock or a zarr call, which keeps a per-example read at a few hundred nanoseconds
        self._last: tuple[int, int, np.ndarray] = (0, 0, np.empty(0, self.dtype))

    # -- array protocol --------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<LabelArray {self.name} shape={self.shape} dtype={self.dtype}>"

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, (int, np.integer)):
            i = int(index)
            start, stop, chunk = self._last  # one tuple read: safe against concurrent readers
            if start <= i < stop:
                return chunk[i - start]
            i = self._normalize(i)
            return self._chunk(i // self.rows)[i % self.rows]
        if isinstance(index, slice):
            return self.take(np.arange(*index.indices(len(self))))
        if isinstance(index, tuple) and index:  # first axis here, the rest by numpy
            rows = self[index[0]]
            if isinstance(index[0], (int, np.integer)):
                return rows[index[1:]]
            return rows[(slice(None), *index[1:])]
        return self.take(np.asarray(index))

    def _normalize(self, i: int) -> int:
        n = len(self)
        if i < 0:  # a label, like a numpy array, counts negative indices from the end
            i += n
        if not 0 <= i < n:
            raise IndexOutOfRangeError(self.name, i, n, store=self.store)
        return i

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Rows at ``indices`` (any shape), reading each missing chunk once, concurrently."""
        indices = np.asarray(indices)
        if indices.ndim == 0:  # a scalar index gives a scalar, as numpy does
            return self[int(indices)]
        if indices.dtype == bool:
            indices = np.flatnonzero(indices)
        flat = indices.reshape(-1).astype(np.int64)
        if not flat.size:
            return np.empty((*indices.shape, *self.shape[1:]), dtype=self.dtype)
        lowest, highest = int(flat.min()), int(flat.max())
        if lowest < 0:  # a label, like a numpy array, counts negative indices from the end
            flat = np.where(flat < 0, flat + len(self), flat)
            lowest, highest = int(flat.min()), int(flat.max())
        if lowest < 0 or highest >= len(self):
            bad = (flat < 0) | (flat >= len(self))
            raise IndexOutOfRangeError(self.name, int(indices.reshape(-1)[bad.argmax()]),
                                       len(self), store=self.store)
        if lowest // self.rows == highest // self.rows:  # one chunk (a batch of neighbours)
            c = lowest // self.rows
            out = self._chunk(c)[flat - c * self.rows]
            return out.reshape(*indices.shape, *self.shape[1:])
        chunk_ids = flat // self.rows
        # the positions of each chunk from one sort, rather than one scan of the batch per chunk
        order = np.argsort(chunk_ids, kind="stable")
        needed, starts = np.unique(chunk_ids[order], return_index=True)
        self.prefetch(needed)
        out = np.empty((flat.size, *self.shape[1:]), dtype=self.dtype)
        stops = [*starts[1:].tolist(), flat.size]
        for c, a, b in zip(needed.tolist(), starts.tolist(), stops, strict=True):
            where = order[a:b]
            out[where] = self._chunk(c)[flat[where] - c * self.rows]
        return out.reshape(*indices.shape, *self.shape[1:])

    # -- chunks ----------------------------------------------------------------------------------
    def nchunks(self) -> int:
        return -(-len(self) // self.rows) if self.shape else 1

    def prefetch(self, chunk_ids: np.ndarray | list[int]) -> None:
        """Decode the listed chunks that are not cached, in one concurrent zarr read."""
        missing = sorted(c for c in {int(c) for c in chunk_ids}
                         if self.cache.get((*self._key, c)) is None)
        if not missing or not isinstance(self.source, zarr.Array):
            return
        if len(missing) == 1:
            self._chunk(missing[0])
            return
        # one slice per run of consecutive chunks, all read at once on zarr's event loop: a
        # slice decodes straight into its output, where a fancy-index read copies element-wise
        runs = _runs(missing)
        slices = [slice(a * self.rows, min(b * self.rows, len(self))) for a, b in runs]
        values = self._read(lambda: _read_slices(self.source, slices), missing)
        for (a, b), run in zip(runs, values, strict=True):
            for c in range(a, b):
                offset = (c - a) * self.rows
                self._store_chunk(c, run[offset:offset + self.rows], c * self.rows)

    def _chunk(self, c: int) -> np.ndarray:
        chunk = self.cache.get((*self._key, c))
        if chunk is None:
            start = c * self.rows
            stop = min(start + self.rows, len(self))
            if isinstance(self.source, zarr.Array):
                chunk = self._read(lambda: self.source[start:stop], [c])
            else:
                chunk = np.asarray(self.source[start:stop])
            chunk = self._store_chunk(c, chunk, start)
        self._last = (c * self.rows, c * self.rows + len(chunk), chunk)
        return chunk

    def _store_chunk(self, c: int, values: np.ndarray, start: int) -> np.ndarray:
        values = _codecs.from_zarr(np.asarray(values), self._attrs)
        if self.check is not None:
            self.check(values, start)
        values.flags.writeable = False  # cached chunks are shared by every reader
        self.cache.put((*self._key, c), values)
        return values

    def _read(self, read: Callable[[], np.ndarray], chunks: list[int]) -> np.ndarray:
        try:
            return read()
        except MissingChunkError as e:
            raise MissingChunkError(
                f"chunk {e.key} of {self.name!r} is missing although the array was written "
                f"complete; re-render or re-write it", store=self.store, key=self.name,
                value=e.key) from e
        except (ZViewError, KeyboardInterrupt):
            raise
        except Exception as e:  # any decoder failure means bytes that are not what was written
            access = access_error(e, store=self.store, key=self.name)
            if isinstance(access, (StoreAccessError, StoreUnreachableError)):
                raise access from e  # the store could not be read, which is not corruption
            raise CorruptStoreError(
                f"chunk(s) {chunks} of {self.name!r} cannot be decoded ({type(e).__name__}: "
                f"{e}); the store is corrupt: re-write it", store=self.store, key=self.name,
                value=chunks) from e

    def stored_bytes(self) -> int | None:
        """Compressed size in the store, if known without listing (zarr) or the file size."""
        if isinstance(self.source, zarr.Array):
            try:
                return int(self.source.nbytes_stored())
            except Exception:  # remote stores may not list; the size is display-only
                return None
        return int(self.source.nbytes)


class StrictStore(zarr.storage.WrapperStore):
    """A store in which a missing chunk is an error, not fill values.

    zarr reads an absent chunk as fill values; index 0 is a valid index, so for zview that
    silence would mean wrong examples. The same holds for a missing shard, and for a chunk that a
    shard's index marks absent: the store learns which arrays are sharded from the ``zarr.json``
    documents it serves, and checks every shard index read through it.

    ``reopen`` makes the store again in a forked child (a DataLoader worker): the parent's
    connections belong to an event loop that does not exist there.
    """

    def __init__(self, store: zarr.abc.store.Store,
                 reopen: Callable[[], zarr.abc.store.Store] | None = None) -> None:
        super().__init__(store)
        self._reopen = reopen
        self._pid = os.getpid()
        self._shards: dict[str, _codecs.ShardIndex] = {}

    @property
    def _supports_sync_io(self) -> bool:
        # zarr 3.4 reads synchronously from stores that can, straight from the wrapped store:
        # past the checks below
        return False

    def _current(self) -> zarr.abc.store.Store:
        if self._reopen is not None and self._pid != os.getpid():
            self._store, self._pid = self._reopen(), os.getpid()
        return self._store

    async def get(self, key, prototype, byte_range=None):
        value = await self._current().get(key, prototype, byte_range)
        self._check(key, value, byte_range)
        return value

    async def get_partial_values(self, prototype, key_ranges):
        key_ranges = list(key_ranges)
        values = await self._current().get_partial_values(prototype, key_ranges)
        for (key, byte_range), value in zip(key_ranges, values, strict=False):
            self._check(key, value, byte_range)
        return values

    async def get_ranges(self, key, byte_ranges, *, prototype, **kwargs):
        # zarr 3.4 reads the chunks of a shard with this (zarr 3.1 has no such method); a
        # missing key comes as FileNotFoundError in a group, which zarr reads as fill values
        byte_ranges = list(byte_ranges)
        try:
            async for group in self._current().get_ranges(key, byte_ranges, prototype=prototype,
                                                          **kwargs):
                for i, value in group:
                    self._check(key, value, byte_ranges[i])
                yield group
        except BaseExceptionGroup as e:
            if not _is_chunk_key(key) or e.subgroup(FileNotFoundError) is None:
                raise
            raise MissingChunkError(f"missing chunk {key}", key=key) from e

    def _check(self, key: str, value: Any, byte_range: Any) -> None:
        if not _is_chunk_key(key):
            if value is not None and key.rpartition("/")[2] == "zarr.json":
                document = value.to_bytes()
                if b'"sharding_indexed"' in document:
                    self._shards.update(_codecs.shard_indexes(document, posixpath.dirname(key)))
            return
        if value is None:
            raise MissingChunkError(f"missing chunk {key}", key=key)
        # chunk coordinates are digits, so the last "/c/" ends the array's path (even one named c)
        array, _, coords = f"/{key}".rpartition("/c/")
        index = self._shards.get(array.lstrip("/"))
        if index is None or not all(c.isdigit() for c in coords.split("/")):
            return
        shard = tuple(int(c) for c in coords.split("/"))
        if byte_range is None:  # a whole shard
            absent = _codecs.absent_chunks(value.as_numpy_array(), index, shard, whole=True)
        elif _is_index_range(byte_range, index):
            absent = _codecs.absent_chunks(value.as_numpy_array(), index, shard, whole=False)
        else:  # a chunk within a shard
            return
        if absent:
            raise MissingChunkError(f"chunks {absent} of shard {key} are absent from it",
                                    key=key)


def _runs(chunks: list[int]) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of consecutive ids in the sorted ``chunks``.

    >>> _runs([1, 2, 3, 7, 9, 10])
    [(1, 4), (7, 8), (9, 11)]
    """
    runs: list[tuple[int, int]] = []
    for c in chunks:
        if runs and runs[-1][1] == c:
            runs[-1] = (runs[-1][0], c + 1)
        else:
            runs.append((c, c + 1))
    return runs


def _read_slices(array: zarr.Array, slices: list[slice]) -> list[np.ndarray]:
    """``array[s]`` for every slice, requested concurrently in one pass of zarr's event loop."""
    if len(slices) == 1:
        return [array[slices[0]]]

    async def gather() -> list[np.ndarray]:
        return list(await asyncio.gather(*(array.async_array.getitem(s) for s in slices)))

    return sync(gather())


def _is_chunk_key(key: str) -> bool:
    return "/c/" in f"/{key}" or key.endswith("/c")


def _is_index_range(byte_range: Any, index: _codecs.ShardIndex) -> bool:
    if index.at_end:
        return getattr(byte_range, "suffix", None) == index.nbytes
    return (getattr(byte_range, "start", None), getattr(byte_range, "end", None)) == (
        0, index.nbytes)


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Turn ``{"a/b": x}`` into ``{"a": {"b": x}}``; dicts keyed ``0..n-1`` become lists.

    edflow builds label trees with the same rule, so a view ``pair: [a, b]`` rendered into
    ``pair/0`` and ``pair/1`` reads back as a list.

    >>> nest({"a/0": 1, "a/1": 2, "b": 3})
    {'a': [1, 2], 'b': 3}
    """
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, last = path.split(SEP)
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return _listify(tree)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    node = {k: _listify(v) for k, v in node.items()}
    if node and set(node) == {str(i) for i in range(len(node))}:
        return [node[str(i)] for i in range(len(node))]
    return node
