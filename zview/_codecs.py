"""How arrays are laid out in a store: the one module that talks to zarr's codecs and chunking.

- Chunks run along the first axis and hold about :data:`CHUNK_BYTES` uncompressed.
- Chunks that compress to small objects are packed into shards (zarr's sharding codec), so a
  bucket holds objects of about :data:`SHARD_BYTES` rather than thousands of a few hundred bytes;
  readers still read (and cache) single chunks, by byte range. See :func:`chunks_per_shard`.
- Integers get Blosc/zstd with byte or bit shuffle, plus a delta filter where it helps: a
  sliding-window view becomes a constant stride pattern and shrinks by 1000x, while random
  indices compress best without it, bit-shuffled to about log2(N) bits each (their high bits are
  constant). The choice is made on a sample of the data.
- Floats and booleans get shuffled Blosc/lz4, or Blosc/zstd at a fast level where that stores
  the sample at least a tenth smaller; strings are zarr string arrays with zstd.
- Every chunk carries a CRC32C checksum, and so does every shard's index, so corrupt bytes are an
  error rather than wrong values.
- :func:`create_arrays` writes the metadata of many arrays at once: zarr's own ``create_array``
  costs about a dozen requests per array in a bucket (parents checked, the path removed).
"""

from __future__ import annotations

import asyncio
import json
import math
import posixpath
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numcodecs
import numpy as np
import zarr
import zarr.storage
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec
from zarr.core.array import AsyncArray
from zarr.core.buffer import default_buffer_prototype
from zarr.core.group import GroupMetadata, create_nodes
from zarr.core.sync import sync
from zarr.storage import StorePath

# zview stores use numcodecs' delta filter and consolidated metadata on purpose, and read them
# with zarr-python; zarr's warning that other implementations may not is noise to our users.
warnings.filterwarnings("ignore", message="Numcodecs codecs are not in the Zarr version 3",
                        category=UserWarning)
warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part",
                        category=UserWarning)

CHUNK_BYTES = 1 << 20
"""Target uncompressed size of one chunk."""

SHARD_BYTES = 1 << 20
"""Stored (compressed) size a shard aims at: chunks far smaller than this are packed together."""

MIN_SHARD_CHUNKS = 16
"""Fewest chunks worth a shard. Fewer would save few objects, while a cold read of one chunk of a
shard costs two requests (the shard's index, then the chunk)."""

MAX_SHARD_BYTES = 64 << 20
"""Most uncompressed bytes in a shard written from an array already in memory (zarr encodes a
shard a chunk at a time from the caller's array)."""

BUILT_SHARD_BYTES = 16 << 20
"""Most uncompressed bytes in a shard whose values are built to be written: a render's output
(taken from the base a shard at a time) and strings (copied into Python objects). A shard is
written whole, so this bounds what such a write holds in memory."""

_STRING_BYTES = 64
"""Bytes counted per string when sizing chunks (zarr strings have no fixed width)."""

_BLOSC = {"cname": "zstd", "clevel": 5}
# Labels are mostly floats, which zstd barely shrinks (a few percent more at level 5) but
# encodes eight times slower there (60 vs 470 MB/s a core): rendering would be compression-bound.
_BLOSC_FAST = {"cname": "zstd", "clevel": 1}
# lz4 encodes floats 3-4x and decodes them 5-7x faster than zstd at level 1 (2 and 6 GB/s a
# core), within a few percent of its size on measured values; zstd wins clearly only on values
# with few distinct bit patterns (quantized coordinates: a fifth smaller). Reading chunks and
# rendering are otherwise bound by decoding and encoding.
_BLOSC_LZ4 = {"cname": "lz4", "clevel": 5}
_ZSTD_WORTH = 0.9
"""zstd is chosen for non-integer values only if it stores the sample in this share of lz4's
size or less."""
_NEAR_TIE = 1.03
"""Integer encodings whose samples are within this factor of the smallest count as equal."""
_EMPTY = 2**64 - 1
"""A shard index entry (offset and length) of a chunk the shard does not hold."""


@dataclass(frozen=True, slots=True, eq=False)
class ArraySpec:
    """An array for :func:`create_arrays` to lay out and create."""

    shape: tuple[int, ...]
    """Its shape; chunks and shards run along the first axis."""
    dtype: np.dtype
    """Its numpy dtype. Strings are stored as zarr strings and read back at this width."""
    sample: np.ndarray | None = None
    """About a chunk of its values: picks the integer filter, and whether to shard."""
    attrs: dict | None = None
    """Its attributes."""
    max_shard_bytes: int | None = None
    """Most uncompressed bytes one shard may hold; :data:`MAX_SHARD_BYTES` if not given (see
    :data:`BUILT_SHARD_BYTES`)."""


def rows_per_chunk(shape: tuple[int, ...], itemsize: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """How many rows (first-axis entries) make one chunk of about ``chunk_bytes``.

    >>> rows_per_chunk((10_000_000, 5), 8)
    26214
    """
    row_bytes = max(1, itemsize * math.prod(shape[1:]))
    return max(1, min(max(shape[0], 1), chunk_bytes // row_bytes))


def chunks_per_shard(nchunks: int, chunk_bytes: int, stored_bytes: float, *,
                     max_shard_bytes: int | None = None) -> int:
    """How many chunks of ``chunk_bytes`` (``stored_bytes`` compressed) one shard holds.

    As many as make a shard of about :data:`SHARD_BYTES` stored, but no more than
    ``max_shard_bytes`` uncompressed and no more than the array has. Fewer than
    :data:`MIN_SHARD_CHUNKS` is not worth a shard: 1 means the array is not sharded.

    >>> chunks_per_shard(3815, 1 << 20, 300)  # a sliding-window view: 1 MiB stored in 300 bytes
    64
    >>> chunks_per_shard(3815, 1 << 20, 900_000)  # random floats
    1
    """
    fit = min(nchunks, (max_shard_bytes or MAX_SHARD_BYTES) // max(1, chunk_bytes),
              int(SHARD_BYTES // max(1.0, stored_bytes)))
    return fit if fit >= MIN_SHARD_CHUNKS else 1


def _encoding(sample: np.ndarray) -> tuple[dict, int]:
    """Codec arguments for ``sample``'s array, and the sample's size encoded with them."""
    # every chunk ends with a CRC32C checksum: a flipped byte in a bucket is an error, not
    # silently different values (Blosc alone decodes many corruptions without complaint)
    flat = np.ascontiguousarray(sample).reshape(-1)
    if sample.dtype.kind in "US":
        size = 0
        if flat.size:
            size = len(numcodecs.Zstd(level=5).encode(
                numcodecs.VLenUTF8().encode(flat.astype(object))))
        return {"compressors": [ZstdCodec(level=5), Crc32cCodec()]}, size
    if sample.dtype.kind in "iu":
        return _integer_encoding(flat)
    if not flat.size:
        return {"compressors": [BloscCodec(**_BLOSC_LZ4, shuffle="shuffle"), Crc32cCodec()]}, 0
    level, size = _BLOSC_LZ4, _encoded_size(flat, _BLOSC_LZ4, "shuffle")
    zstd = _encoded_size(flat, _BLOSC_FAST, "shuffle")
    if zstd <= _ZSTD_WORTH * size:
        level, size = _BLOSC_FAST, zstd
    return {"compressors": [BloscCodec(**level, shuffle="shuffle"), Crc32cCodec()]}, size


def _integer_encoding(flat: np.ndarray) -> tuple[dict, int]:
    """Blosc/zstd with byte or bit shuffle, after a delta filter or not: whichever of the four
    stores the sample smallest.

    Bit shuffle stores random indices into N examples in about log2(N) bits each (byte shuffle
    needs about a tenth more); a delta filter turns sliding windows into a constant stride.
    """
    if not flat.size:
        return {"compressors": [BloscCodec(**_BLOSC, shuffle="shuffle"), Crc32cCodec()]}, 0
    delta = numcodecs.Delta(dtype=flat.dtype).encode(flat)
    choices = [(shuffle, filtered) for filtered in (False, True)
               for shuffle in ("shuffle", "bitshuffle")]
    sizes = [_encoded_size(delta if filtered else flat, _BLOSC, shuffle)
             for shuffle, filtered in choices]
    # near-ties go to the earlier choice: a sample's few bytes do not tell them apart
    best = next(i for i, size in enumerate(sizes) if size <= _NEAR_TIE * min(sizes))
    shuffle, filtered = choices[best]
    codecs: dict = {"compressors": [BloscCodec(**_BLOSC, shuffle=shuffle), Crc32cCodec()]}
    if filtered:
        from zarr.codecs.numcodecs import Delta

        codecs["filters"] = [Delta(dtype=flat.dtype.str)]
    return codecs, sizes[best]


def _encoded_size(values: np.ndarray, level: dict, shuffle: str) -> int:
    shuffles = {"shuffle": numcodecs.Blosc.SHUFFLE, "bitshuffle": numcodecs.Blosc.BITSHUFFLE}
    return len(numcodecs.Blosc(**level, shuffle=shuffles[shuffle]).encode(values))


def _metadata(spec: ArraySpec, chunk_bytes: int) -> zarr.core.metadata.ArrayV3Metadata:
    shape = tuple(int(n) for n in spec.shape)
    dtype = np.dtype(spec.dtype)
    attrs = dict(spec.attrs or {})
    zdtype: object = dtype
    itemsize, max_shard_bytes = dtype.itemsize, spec.max_shard_bytes or MAX_SHARD_BYTES
    if dtype.kind in "US":
        attrs["numpy_dtype"] = dtype.str
        zdtype = str
        itemsize, max_shard_bytes = _STRING_BYTES, min(max_shard_bytes, BUILT_SHARD_BYTES)
    sample = np.zeros((0,), dtype) if spec.sample is None else np.asarray(spec.sample, dtype)
    codecs, stored = _encoding(sample)
    rows = rows_per_chunk(shape, itemsize, chunk_bytes)
    shards = None
    if sample.size and shape[0]:
        items = rows * math.prod(shape[1:])  # values in one chunk
        per_shard = chunks_per_shard(-(-shape[0] // rows), items * itemsize,
                                     stored * items / sample.size,
                                     max_shard_bytes=max_shard_bytes)
        if per_shard > 1:
            shards = (rows * per_shard, *shape[1:])
    # zarr turns the arguments into metadata; an array in memory keeps that from the store
    array = zarr.create_array(zarr.storage.MemoryStore(), shape=shape, dtype=zdtype,
                              chunks=(rows, *shape[1:]), shards=shards, attributes=attrs,
                              fill_value=_fill(dtype), **codecs)
    return array.metadata


def create_arrays(group: zarr.Group, specs: dict[str, ArraySpec], *,
                  chunk_bytes: int | None = None) -> dict[str, zarr.Array]:
    """Create (replacing) the arrays ``{path: spec}`` in ``group``, each laid out for its data.

    An array replaces whatever was at its path, chunks included. In a bucket this costs a few
    requests in all plus one per array: each parent group is read and each folder that receives
    arrays is listed once, only what exists is removed, and the metadata documents are written
    concurrently. Missing parent groups are created.
    """
    root = group.store_path
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    metadata = {posixpath.join(root.path, p) if root.path else p: _metadata(spec, chunk_bytes)
                for p, spec in specs.items()}
    sync(_create(root.store, root.path, metadata))
    # written empty too: a missing chunk means "not written yet", never "all fill values"
    return {p: zarr.Array(AsyncArray(metadata=m, store_path=StorePath(root.store, full),
                                     config={"write_empty_chunks": True}))
            for p, (full, m) in zip(specs, metadata.items(), strict=True)}


async def _create(store: zarr.abc.store.Store, root: str,
                  metadata: dict[str, zarr.core.metadata.ArrayV3Metadata]) -> None:
    parents = sorted({parent for path in metadata for parent in _parents(path, root)})
    folders = sorted({posixpath.dirname(path) for path in metadata})
    fs = getattr(store, "fs", None)
    if fs is not None:  # fsspec caches listings: another process may have written since
        for folder in folders:
            fs.invalidate_cache(posixpath.join(store.path, folder))
    prototype = default_buffer_prototype()
    docs, listings = await asyncio.gather(
        asyncio.gather(*(store.get(f"{p}/zarr.json", prototype) for p in parents)),
        asyncio.gather(*(_children(store, folder) for folder in folders)))
    for parent, doc in zip(parents, docs, strict=True):
        if doc is not None and json.loads(doc.to_bytes()).get("node_type") == "array":
            below = next(p for p in metadata if p.startswith(f"{parent}/"))
            raise ValueError(f"cannot create the array {below!r}: {parent!r} is an array, and "
                             f"only groups hold arrays")
    children = dict(zip(folders, listings, strict=True))
    existing = [p for p in metadata if posixpath.basename(p) in children[posixpath.dirname(p)]]
    # an array replaces what was there: none of its old chunks may be read as the new one's
    await asyncio.gather(*(store.delete_dir(p) for p in existing))
    nodes: dict = {p: GroupMetadata(zarr_format=3)
                   for p, doc in zip(parents, docs, strict=True) if doc is None}
    nodes.update(metadata)
    async for _ in create_nodes(store=store, nodes=nodes):
        pass


def _parents(path: str, root: str) -> Iterator[str]:
    """The groups between ``root`` (excluded) and ``path``."""
    parent = posixpath.dirname(path)
    while parent and parent != root:
        yield parent
        parent = posixpath.dirname(parent)


async def _children(store: zarr.abc.store.Store, folder: str) -> set[str]:
    return {name.rstrip("/") async for name in store.list_dir(folder)}


def create_array(group: zarr.Group, path: str, shape: tuple[int, ...], dtype: np.dtype, *,
                 sample: np.ndarray | None = None, attrs: dict | None = None,
                 chunk_bytes: int | None = None, max_shard_bytes: int | None = None
                 ) -> zarr.Array:
    """Create (replacing) the array ``path`` in ``group``, laid out for its dtype.

    ``sample`` (a chunk's worth of the data) picks the integer filter and whether to shard.
    String arrays remember their numpy dtype (``<U14``) in ``attrs["numpy_dtype"]`` so they read
    back as written.
    """
    spec = ArraySpec(tuple(shape), np.dtype(dtype), sample, attrs, max_shard_bytes)
    return create_arrays(group, {path: spec}, chunk_bytes=chunk_bytes)[path]


def _fill(dtype: np.dtype) -> object:
    if dtype.kind in "US":
        return ""
    return np.zeros((), dtype)[()]


def chunks_in_shard(array: zarr.Array) -> int:
    """Chunks per shard of ``array`` along the first axis (1 where it is not sharded)."""
    shards = array.shards
    return shards[0] // array.chunks[0] if shards else 1


def chunk_slices(array: zarr.Array | np.ndarray, rows: int | None = None
                 ) -> Iterator[slice]:
    """First-axis slices, one per chunk of ``array`` (or of ``rows`` rows)."""
    step = rows or array.chunks[0]
    for start in range(0, array.shape[0], step):
        yield slice(start, min(start + step, array.shape[0]))


WRITE_CHUNKS = 8
"""Chunks :func:`write_array` hands zarr at once (it encodes and stores them concurrently)."""


def write_array(group: zarr.Group, path: str, data: np.ndarray, *, attrs: dict | None = None
                ) -> zarr.Array:
    """Create ``path`` and write ``data`` into it, whole shards (or a few chunks) at a time."""
    data = np.asarray(data)
    itemsize = data.dtype.itemsize if data.dtype.kind not in "US" else _STRING_BYTES
    rows = rows_per_chunk(data.shape, itemsize, CHUNK_BYTES)
    arr = create_array(group, path, data.shape, data.dtype, sample=data[:rows], attrs=attrs)
    # a write covering part of a shard would read the shard back and rewrite it
    per_write = chunks_in_shard(arr) * max(1, WRITE_CHUNKS // chunks_in_shard(arr))
    for sl in chunk_slices(arr, arr.chunks[0] * per_write):
        arr[sl] = to_zarr(data[sl])
    return arr


def to_zarr(values: np.ndarray) -> np.ndarray:
    """Values as zarr takes them (fixed-width strings become Python strings)."""
    if values.dtype.kind in "US":
        return values.astype(object)
    return values


def from_zarr(values: np.ndarray, attrs: dict) -> np.ndarray:
    """Values as they were written (zarr string arrays come back as ``<U`` of the stored width)."""
    numpy_dtype = attrs.get("numpy_dtype")
    if numpy_dtype is not None:
        return np.asarray(values.tolist(), dtype=numpy_dtype).reshape(values.shape)
    return values


def stored_codecs(array: zarr.Array) -> str:
    """A short description of an array's codecs, for display (``delta+blosc/zstd``)."""
    names = []
    for codec in (*array.filters, *(array.compressors or ())):
        config = codec.to_dict()
        name = config["name"].removeprefix("numcodecs.")
        if name == "crc32c":  # on every chunk; not worth a column of noise
            continue
        cname = config.get("configuration", {}).get("cname")
        names.append(f"{name}/{cname}" if cname else name)
    return "+".join(names) or "none"


# -- reading shards: what a missing-chunk check needs to know --------------------------------------
@dataclass(frozen=True, slots=True)
class ShardIndex:
    """Where a sharded array's shards keep their index of chunks, and which chunks exist."""

    per_shard: tuple[int, ...]
    """Chunks per shard along each axis (the shape of the index)."""
    grid: tuple[int, ...]
    """Chunks of the whole array along each axis: the last shard's index marks the positions
    past the array's end absent."""
    nbytes: int
    """Size of the encoded index: 16 bytes an entry, plus 4 for its CRC32C checksum."""
    at_end: bool
    """The index ends the shard (zarr's default) rather than starting it."""


def shard_indexes(document: bytes, node: str) -> dict[str, ShardIndex]:
    """The sharded arrays a ``zarr.json`` describes, by path: the node ``node`` itself, or every
    array in its consolidated metadata. Unreadable entries are left to zarr to refuse."""
    try:
        meta = json.loads(document)
        nodes = {node: meta}
        consolidated = (meta.get("consolidated_metadata") or {}).get("metadata") or {}
        nodes.update({posixpath.join(node, p) if node else p: m for p, m in consolidated.items()})
    except (ValueError, AttributeError, TypeError):
        return {}
    found = {}
    for path, array in nodes.items():
        try:
            codec = array["codecs"][0]
            if array.get("node_type") != "array" or codec.get("name") != "sharding_indexed":
                continue
            config = codec["configuration"]
            outer = array["chunk_grid"]["configuration"]["chunk_shape"]
            inner = config["chunk_shape"]
            per_shard = tuple(int(o // i) for o, i in zip(outer, inner, strict=True))
            grid = tuple(-(-int(n) // int(i)) for n, i in zip(array["shape"], inner, strict=True))
            checksums = sum(c.get("name") == "crc32c" for c in config.get(
                "index_codecs", [{"name": "bytes"}, {"name": "crc32c"}]))
            found[path] = ShardIndex(per_shard, grid, 16 * math.prod(per_shard) + 4 * checksums,
                                     config.get("index_location", "end") == "end")
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, ZeroDivisionError):
            continue
    return found


def absent_chunks(value: np.ndarray, index: ShardIndex, shard: tuple[int, ...], *,
                  whole: bool) -> list[int]:
    """Chunks (positions within the shard, in C order) of shard ``shard`` that its index marks
    absent, past the array's end excepted.

    ``value`` (bytes as ``uint8``) is the whole shard (``whole=True``) or the index alone, as
    read by range.
    """
    raw = value.view(np.uint8).reshape(-1)
    if whole:
        raw = raw[-index.nbytes:] if index.at_end else raw[:index.nbytes]
    if raw.size != index.nbytes or len(shard) != len(index.per_shard):
        return []  # not an index zarr can read either: it will say so
    entries = raw[:16 * math.prod(index.per_shard)].view("<u8").reshape(*index.per_shard, 2)
    empty = (entries == _EMPTY).all(axis=-1)
    inside = np.ones(index.per_shard, bool)
    for axis, (s, n, total) in enumerate(zip(shard, index.per_shard, index.grid, strict=True)):
        within = s * n + np.arange(n) < total
        inside &= within.reshape([-1 if a == axis else 1 for a in range(len(shard))])
    return np.flatnonzero(empty & inside).tolist()
