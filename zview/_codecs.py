"""How arrays are laid out in a store: the one module that talks to zarr's codecs and chunking.

- Chunks run along the first axis and hold about :data:`CHUNK_BYTES` uncompressed.
- Integers get Blosc/zstd with byte shuffle, plus a delta filter where it helps: a sliding-window
  view becomes a constant stride pattern and shrinks by 1000x, while random indices compress best
  without it (shuffled high bytes are constant). The choice is made on a sample of the data.
- Floats and booleans get shuffled Blosc/zstd at a fast level; strings are zarr string arrays
  with zstd.
- Every chunk carries a CRC32C checksum, so corrupt bytes are an error rather than wrong values.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

# zview stores use numcodecs' delta filter and consolidated metadata on purpose, and read them
# with zarr-python; zarr's warning that other implementations may not is noise to our users.
warnings.filterwarnings("ignore", message="Numcodecs codecs are not in the Zarr version 3",
                        category=UserWarning)
warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part",
                        category=UserWarning)

CHUNK_BYTES = 1 << 20
"""Target uncompressed size of one chunk."""

_BLOSC = {"cname": "zstd", "clevel": 5}
# Labels are mostly floats, which zstd barely shrinks (a few percent more at level 5) but
# encodes eight times slower there (60 vs 470 MB/s a core): rendering would be compression-bound.
_BLOSC_FAST = {"cname": "zstd", "clevel": 1}


def rows_per_chunk(shape: tuple[int, ...], itemsize: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """How many rows (first-axis entries) make one chunk of about ``chunk_bytes``.

    >>> rows_per_chunk((10_000_000, 5), 8)
    26214
    """
    row_bytes = max(1, itemsize * math.prod(shape[1:]))
    return max(1, min(max(shape[0], 1), chunk_bytes // row_bytes))


def _delta_helps(sample: np.ndarray) -> bool:
    flat = np.ascontiguousarray(sample).reshape(-1)
    plain = numcodecs.Blosc(**_BLOSC, shuffle=numcodecs.Blosc.SHUFFLE).encode(flat)
    delta = numcodecs.Delta(dtype=flat.dtype).encode(flat)
    shuffled = numcodecs.Blosc(**_BLOSC, shuffle=numcodecs.Blosc.SHUFFLE).encode(delta)
    return len(shuffled) < len(plain)


def _codecs_for(sample: np.ndarray) -> dict:
    # every chunk ends with a CRC32C checksum: a flipped byte in a bucket is an error, not
    # silently different values (Blosc alone decodes many corruptions without complaint)
    kind = sample.dtype.kind
    if kind in "US":
        return {"compressors": [ZstdCodec(level=5), Crc32cCodec()]}
    level = _BLOSC if kind in "iu" else _BLOSC_FAST
    compressors = [BloscCodec(**level, shuffle="shuffle"), Crc32cCodec()]
    if kind in "iu" and sample.size and _delta_helps(sample):
        from zarr.codecs.numcodecs import Delta

        return {"filters": [Delta(dtype=sample.dtype.str)], "compressors": compressors}
    return {"compressors": compressors}


def create_array(group: zarr.Group, path: str, shape: tuple[int, ...], dtype: np.dtype, *,
                 sample: np.ndarray | None = None, attrs: dict | None = None,
                 chunk_bytes: int = CHUNK_BYTES) -> zarr.Array:
    """Create (replacing) the array ``path`` in ``group``, laid out for its dtype.

    ``sample`` (a chunk's worth of the data) picks the integer filter. String arrays remember
    their numpy dtype (``<U14``) in ``attrs["numpy_dtype"]`` so they read back as written.
    """
    dtype = np.dtype(dtype)
    attrs = dict(attrs or {})
    zdtype: object = dtype
    if dtype.kind in "US":
        attrs["numpy_dtype"] = dtype.str
        zdtype = str
    if sample is None:
        sample = np.zeros((0,), dtype)
    rows = rows_per_chunk(shape, dtype.itemsize if dtype.kind not in "US" else 64, chunk_bytes)
    return group.create_array(
        path, shape=shape, dtype=zdtype, chunks=(rows, *shape[1:]), overwrite=True,
        attributes=attrs, fill_value=_fill(dtype), config={"write_empty_chunks": True},
        **_codecs_for(np.asarray(sample, dtype)))


def _fill(dtype: np.dtype) -> object:
    if dtype.kind in "US":
        return ""
    return np.zeros((), dtype)[()]


def chunk_slices(array: zarr.Array | np.ndarray, rows: int | None = None
                 ) -> Iterator[slice]:
    """First-axis slices, one per chunk of ``array`` (or of ``rows`` rows)."""
    step = rows or array.chunks[0]
    for start in range(0, array.shape[0], step):
        yield slice(start, min(start + step, array.shape[0]))


def write_array(group: zarr.Group, path: str, data: np.ndarray, *, attrs: dict | None = None
                ) -> zarr.Array:
    """Create ``path`` and write ``data`` into it chunk by chunk."""
    data = np.asarray(data)
    rows = rows_per_chunk(data.shape, data.dtype.itemsize)
    arr = create_array(group, path, data.shape, data.dtype, sample=data[:rows], attrs=attrs)
    for sl in chunk_slices(arr):
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
