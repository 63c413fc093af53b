"""Array layout: sharding of arrays whose chunks compress to small objects, what a missing or
corrupt shard reads as, renders into sharded stores, and what creating arrays costs in a bucket.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zview
from tests._s3 import Proxy
from tests.conftest import BUCKET
from zview import _codecs, errors
from zview._location import Location

render_module = __import__("zview.render", fromlist=["render"])


def _objects(root: Path, under: str = "") -> list[str]:
    """Every file (object) in a local store, relative to its root."""
    top = root / under
    return sorted(str(Path(d, f).relative_to(root)) for d, _, files in os.walk(top)
                  for f in files)


def _chunk_objects(root: Path, array: str) -> list[str]:
    return [p for p in _objects(root, array) if "/c/" in f"/{p}"]


@pytest.fixture
def small_chunks(monkeypatch):
    """The layout scaled down 256 times, so that sharding shows on small data: chunks of 4 KiB,
    shards of at most 16 of them aiming at 4 KiB stored."""
    monkeypatch.setattr(_codecs, "CHUNK_BYTES", 4096)
    monkeypatch.setattr(_codecs, "SHARD_BYTES", 4096)
    monkeypatch.setattr(_codecs, "MAX_SHARD_BYTES", 16 * 4096)
    monkeypatch.setattr(_codecs, "BUILT_SHARD_BYTES", 16 * 4096)


# -- the rule --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("nchunks", "stored", "cap", "expected"), [
    (3815, 300, 64 << 20, 64),          # a sliding-window view: capped by the decoded size
    (3815, 300, 16 << 20, 16),          # the same array rendered: a smaller cap
    (3815, 40_000, 64 << 20, 26),       # 26 chunks of 40 kB make a shard of about 1 MiB
    (3815, 70_000, 64 << 20, 1),        # 14 per MiB: too few to be worth a shard
    (3815, 900_000, 64 << 20, 1),       # random floats
    (10, 300, 64 << 20, 1),             # too few chunks in all
    (20, 300, 64 << 20, 20),            # one shard holds the whole array
])
def test_chunks_per_shard(nchunks, stored, cap, expected):
    assert _codecs.chunks_per_shard(nchunks, 1 << 20, stored, max_shard_bytes=cap) == expected


def test_sliding_window_view_is_sharded_into_few_objects(tmp_path, monkeypatch):
    """The case sharding is for: a view that compresses 3800x becomes a few objects of tens of
    kB instead of one object of a few hundred bytes per chunk."""
    windows = np.arange(3_000_000)[:, None] + np.arange(5)
    sharded = _codecs.write_array(zarr.open_group(tmp_path / "a", mode="w"), "w", windows)
    monkeypatch.setattr(_codecs, "MIN_SHARD_CHUNKS", 10**9)
    plain = _codecs.write_array(zarr.open_group(tmp_path / "b", mode="w"), "w", windows)
    assert plain.shards is None and sharded.chunks == plain.chunks
    assert sharded.shards == (64 * plain.chunks[0], 5)
    objects = {k: _chunk_objects(tmp_path / k, "w") for k in "ab"}
    assert len(objects["b"]) == 115 and len(objects["a"]) == 2  # ceil(115 / 64)
    assert max((tmp_path / "b" / p).stat().st_size for p in objects["b"]) < 1000
    assert min((tmp_path / "a" / p).stat().st_size for p in objects["a"]) > 10_000
    np.testing.assert_array_equal(sharded[:], windows)
    np.testing.assert_array_equal(sharded[1_000_000:1_000_003], windows[1_000_000:1_000_003])


@pytest.mark.parametrize("data", [
    np.random.default_rng(0).random((400_000, 4), dtype=np.float32),  # incompressible
    np.arange(100_000),  # compressible, but one chunk
])
def test_arrays_that_gain_nothing_are_not_sharded(tmp_path, data):
    array = _codecs.write_array(zarr.open_group(tmp_path, mode="w"), "x", data)
    assert array.shards is None
    np.testing.assert_array_equal(array[:], data)


def test_every_chunk_and_shard_index_is_checksummed(tmp_path):
    array = _codecs.write_array(zarr.open_group(tmp_path, mode="w"), "w",
                                np.arange(3_000_000)[:, None] + np.arange(2))
    sharding = array.metadata.codecs[0].to_dict()
    assert sharding["name"] == "sharding_indexed"
    assert sharding["configuration"]["codecs"][-1] == {"name": "crc32c"}
    assert sharding["configuration"]["index_codecs"][-1] == {"name": "crc32c"}
    assert _codecs.stored_codecs(array) == "delta+blosc/zstd"


_VALUES = {
    "arange": lambda n, w, rng: (np.arange(n)[:, None] + np.arange(w)).reshape(n, *(w,) * (w > 1)),
    "constant": lambda n, w, rng: np.full((n, w) if w > 1 else (n,), 7, np.int32),
    "steps": lambda n, w, rng: np.repeat(np.arange(n // 50 + 1), 50)[:n].astype(np.uint16),
    "floats": lambda n, w, rng: rng.random((n, w) if w > 1 else (n,)),
    "ramp": lambda n, w, rng: np.linspace(0, 1, n, dtype=np.float32),
    "bools": lambda n, w, rng: np.arange(n) % 3 == 0,
    "strings": lambda n, w, rng: np.array([f"frame{i // 4:05d}.png" for i in range(n)]),
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(_VALUES)), rows=st.integers(1, 6000),
       width=st.sampled_from([1, 3]), seed=st.integers(0, 2**16))
def test_any_array_round_trips_sharded_or_not(tmp_path_factory, kind, rows, width, seed):
    data = _VALUES[kind](rows, width, np.random.default_rng(seed))
    root = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_codecs, "CHUNK_BYTES", 1024)
        mp.setattr(_codecs, "SHARD_BYTES", 4096)
        mp.setattr(_codecs, "MAX_SHARD_BYTES", 32 * 1024)
        array = _codecs.write_array(zarr.open_group(root, mode="w"), "labels/x", data)
    per_shard = _codecs.chunks_in_shard(array)
    nchunks = -(-rows // array.chunks[0])
    assert len(_chunk_objects(root, "labels/x")) == -(-nchunks // per_shard)
    assert per_shard == 1 or per_shard >= _codecs.MIN_SHARD_CHUNKS
    label = zview.open(_as_store(root, rows)).labels["x"]
    np.testing.assert_array_equal(np.asarray(label), data)
    picks = np.random.default_rng(seed).integers(0, rows, 50)
    np.testing.assert_array_equal(label[picks], data[picks])


def _as_store(root: Path, length: int) -> Path:
    """A zarr group with ``labels/`` made into a zview base store."""
    group = zarr.open_group(root, mode="r+")
    group.attrs["zview"] = {"format": 1, "length": length, "fingerprint": "0" * 16}
    zarr.consolidate_metadata(root)
    (root / "meta.yaml").write_text("description: test\n")
    return root


# -- reading sharded stores: missing and corrupt shards --------------------------------------------
N_BASE = 3000
M_VIEW = 2500


def _base_labels() -> dict[str, np.ndarray]:
    return {"fid": np.arange(N_BASE), "cls": (np.arange(N_BASE) // 100) % 7,
            "feat": np.random.default_rng(0).random((N_BASE, 8), dtype=np.float32),
            "name": np.array([f"f{i:05d}" for i in range(N_BASE)])}


def _views() -> dict[str, np.ndarray]:
    return {"frames": np.arange(M_VIEW)[:, None] + np.arange(4),
            "single": np.arange(M_VIEW)[::-1].copy()}


def _expected(view: str, key: str) -> np.ndarray:
    return np.take(_base_labels()[key], _views()[view], axis=0)


@pytest.fixture
def sharded_view(tmp_path, small_chunks):
    """A view store (rendered) in which the index arrays and the compressible rendered labels
    are sharded: chunks of 4 KiB, shards of 16 chunks."""
    zview.write_dataset(tmp_path / "base", _base_labels(), progress=False)
    zview.write_view(tmp_path / "view", _views(), base=tmp_path / "base", progress=False)
    return tmp_path / "view"


def _array(store: Path, path: str) -> zarr.Array:
    return zarr.open_array(store, path=path, mode="r")


def test_render_into_sharded_store_equals_take(sharded_view):
    ds = zview.open(sharded_view)
    for view in _views():
        for key in _base_labels():
            np.testing.assert_array_equal(np.asarray(ds.labels[view][key]),
                                          _expected(view, key), err_msg=f"{view}/{key}")
    frames = _array(sharded_view, "rendered/frames/fid")
    assert _codecs.chunks_in_shard(frames) == 16
    # one object per shard: 10000 values of 8 bytes in 4 KiB chunks, 16 chunks a shard
    chunks = -(-M_VIEW // frames.chunks[0])
    assert len(_chunk_objects(sharded_view, "rendered/frames/fid")) == -(-chunks // 16)
    assert _array(sharded_view, "rendered/frames/feat").shards is None  # random floats
    assert _array(sharded_view, "labels/views/frames").shards is not None
    assert zview.validate(sharded_view) == []


def _shard_path(store: Path, array: str) -> Path:
    return store / array / "c" / "1" / "0"


@pytest.mark.parametrize("array", ["labels/views/frames", "rendered/frames/fid"])
@pytest.mark.parametrize("how", ["single", "batch", "validate"])
def test_missing_shard_is_an_error(sharded_view, array, how):
    shard = _shard_path(sharded_view, array)
    shard.unlink()
    first = _array(sharded_view, array).shards[0] + 5  # a row in shard 1
    if how == "validate":
        problems = zview.validate(sharded_view)
        assert any("MissingChunkError" in p and array.removeprefix("labels/") in p
                   for p in problems), problems
        return
    ds = zview.open(sharded_view)
    with pytest.raises(errors.MissingChunkError, match=f"{array}/c/1/0 of '{array}' is missing"):
        if how == "single":
            ds[first]
        else:
            ds[[first, first + 1, 3]]


@pytest.mark.parametrize("read", ["one chunk", "whole shard"])
def test_chunk_absent_from_its_shard_is_an_error(tmp_path, small_chunks, read):
    """A shard whose index marks a chunk absent (a writer that skips chunks of fill values, as
    zarr does by default) reads as an error, not as fill values."""
    data = np.arange(5000)[:, None] + np.arange(4)
    root = tmp_path / "base"
    group = zarr.open_group(root, mode="w")
    array = _codecs.create_array(group, "labels/x", data.shape, data.dtype, sample=data[:128])
    rows = array.chunks[0]
    data[rows * 17:rows * 18] = 0  # chunk 17, in shard 1, equals the fill value
    array.with_config({"write_empty_chunks": False})[:] = data
    store = _as_store(root, len(data))
    label = zview.open(store).labels["x"]
    with pytest.raises(errors.MissingChunkError, match="labels/x/c/1/0 of 'labels/x' is missing"
                       ) as info:
        if read == "one chunk":
            label[rows * 17 + 3]
        else:
            np.asarray(label)
    assert "chunks [1] of shard labels/x/c/1/0 are absent" in str(info.value.__cause__)
    np.testing.assert_array_equal(label[: rows * 16], data[: rows * 16])  # shard 0 is whole


@pytest.mark.parametrize("where", ["payload", "index"])
def test_corrupt_shard_is_an_error(sharded_view, where):
    shard = _shard_path(sharded_view, "labels/views/frames")
    data = bytearray(shard.read_bytes())
    at = len(data) // 3 if where == "payload" else len(data) - 40  # the index is the last 260
    data[at:at + 4] = bytes(b ^ 0xFF for b in data[at:at + 4])
    shard.write_bytes(bytes(data))
    view = zview.open(sharded_view, render=False)
    with pytest.raises(errors.CorruptStoreError, match="'labels/views/frames' cannot be decoded"):
        np.asarray(view.views["frames"])


_ZARR_34 = hasattr(zarr.abc.store.Store, "get_ranges")


@pytest.mark.skipif(not _ZARR_34, reason="zarr 3.4's synchronous pipeline; zarr 3.1 has none")
def test_missing_chunk_is_an_error_in_zarrs_synchronous_pipeline(tmp_path):
    """zarr 3.4's FusedCodecPipeline reads local stores synchronously, straight from the store
    a StrictStore wraps; the StrictStore says it cannot, so the check stays in the path."""
    zview.write_dataset(tmp_path, {"x": np.arange(300_000) % 1000 * 1.5}, progress=False)
    (tmp_path / "labels" / "x" / "c" / "1").unlink()
    fused = "zarr.core.codec_pipeline.FusedCodecPipeline"
    with zarr.config.set({"codec_pipeline.path": fused}):
        label = zview.open(tmp_path).labels["x"]
        with pytest.raises(errors.MissingChunkError, match="labels/x/c/1 of 'labels/x'"):
            label[200_000]


@pytest.mark.skipif(not _ZARR_34, reason="zarr 3.4 reads chunks of a shard by get_ranges")
def test_chunk_ranges_of_a_missing_shard_are_an_error():
    """zarr 3.4 reads a shard's chunks with ``get_ranges`` after its index, and reads a shard
    gone meanwhile (FileNotFoundError in an exception group) as fill values."""
    from zarr.abc.store import RangeByteRequest
    from zarr.core.buffer import default_buffer_prototype

    from zview._labels import StrictStore

    store = StrictStore(zarr.storage.MemoryStore())

    async def read(key):
        return [group async for group in store.get_ranges(
            key, [RangeByteRequest(0, 4)], prototype=default_buffer_prototype())]

    with pytest.raises(errors.MissingChunkError, match="missing chunk x/c/0"):
        zarr.core.sync.sync(read("x/c/0"))
    with pytest.raises(BaseExceptionGroup):  # not a chunk: zarr's own meaning stays
        zarr.core.sync.sync(read("x/zarr.json"))


# -- rendering: whole shards, resumable ------------------------------------------------------------
def test_regions_cover_whole_shards():
    tasks = [("v", "a", c) for c in range(3, 40)] + [("v", "b", c) for c in range(0, 20)]
    regions = render_module._regions(tasks, {("v", "a"): 16, ("v", "b"): 8})
    assert regions == [("v", "a", 3, 16), ("v", "a", 16, 32), ("v", "a", 32, 40),
                       ("v", "b", 0, 8), ("v", "b", 8, 16), ("v", "b", 16, 20)]


def test_writing_part_of_a_shard_is_refused(sharded_view):
    out = zarr.open_group(sharded_view, mode="r+")["rendered/frames/fid"]
    ds = zview.open(sharded_view, render=False, _rendered=False)
    leaf = render_module.get_view_leaf(ds, "frames")
    with pytest.raises(ValueError, match="part of a shard of 16 chunks"):
        render_module.write_region(out, leaf, ds.base.labels["fid"], 3, 16)
    render_module.write_region(out, leaf, ds.base.labels["fid"], 16, 32)  # a whole shard


def test_interrupted_render_resumes_by_whole_shards(tmp_path, small_chunks, monkeypatch):
    zview.write_dataset(tmp_path / "base", _base_labels(), progress=False)
    view = tmp_path / "view"
    zview.write_view(view, _views(), base=tmp_path / "base", render=False, progress=False)
    real = render_module.write_region
    calls = []

    def stop_after_five(out, index, source, first, stop):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append((out.path, first, stop))
        real(out, index, source, first, stop)

    monkeypatch.setattr(render_module, "write_region", stop_after_five)
    with pytest.raises(KeyboardInterrupt):
        zview.render(view, progress=False)
    assert zview.open(view, render=False, _rendered=False).render_status()["frames"] == (
        "incomplete")
    fid = _array(view, "rendered/frames/fid")
    written = render_module.written_chunks(Location.resolve(view), "rendered/frames/fid",
                                           array=fid)
    objects = _chunk_objects(view, "rendered/frames/fid")
    assert written == set(range(16 * len(objects)))  # each shard present counts whole

    first_run = set(calls)
    calls.clear()

    def record(out, index, source, first, stop):
        calls.append((out.path, first, stop))
        real(out, index, source, first, stop)

    monkeypatch.setattr(render_module, "write_region", record)
    assert zview.render(view, progress=False) == {"frames": "complete", "single": "complete"}
    assert calls and not first_run & set(calls), "a region was written twice"
    for path, first, _ in calls:
        assert first % _codecs.chunks_in_shard(_array(view, path)) == 0, (path, first)
    ds = zview.open(view)
    for v in _views():
        for key in _base_labels():
            np.testing.assert_array_equal(np.asarray(ds.labels[v][key]), _expected(v, key))
    assert zview.validate(view) == []


# -- in a bucket: requests ------------------------------------------------------------------------
@pytest.fixture
def proxy(s3):
    """A counting proxy in front of the S3 server."""
    proxy = Proxy(s3.endpoint)
    yield proxy
    proxy.stop()


def _bucket_group(proxy: Proxy, name: str) -> zarr.Group:
    where = Location.resolve(f"s3://{BUCKET}/{name}", {"endpoint_url": proxy.endpoint})
    return zarr.open_group(where.zarr_store(read_only=False), mode="w")


def test_creating_arrays_in_a_bucket_costs_about_one_request_each(s3, proxy):
    """zarr's own create_array costs 10-12 requests per array in a bucket (parents checked and
    rewritten, the path listed and removed); here a batch costs one PUT per array plus a read
    and a listing per parent, and a single array a few requests."""
    group = _bucket_group(proxy, "create")
    specs = {f"rendered/{leaf}/label{k}": _codecs.ArraySpec((100, 3), np.dtype("float32"))
             for leaf in ("a", "b") for k in range(20)}
    proxy.clear()
    arrays = _codecs.create_arrays(group, specs)
    methods = [m for m, _ in proxy.requests]
    assert methods.count("PUT") == 40 + 3  # each array, and the groups rendered, a and b
    assert len(proxy.requests) <= 40 + 3 + 3 * 4, proxy.requests  # per parent: read, list
    assert sorted(arrays) == sorted(specs)

    proxy.clear()
    _codecs.create_array(group, "rendered/a/one_more", (10,), np.int64)
    assert len(proxy.requests) <= 4, proxy.requests  # parent read, folder listed, one PUT

    # replacing keeps zarr's meaning: nothing of the old array is left
    arrays["rendered/a/label0"][:] = np.ones((100, 3), np.float32)
    proxy.clear()
    again = _codecs.create_array(group, "rendered/a/label0", (5,), np.int64)
    assert len(proxy.requests) <= 7, proxy.requests  # ... plus the removal: list, delete
    fs, root = Location.resolve(f"s3://{BUCKET}/create").filesystem()
    fs.invalidate_cache()
    assert fs.find(f"{root}/rendered/a/label0") == [f"{root}/rendered/a/label0/zarr.json"]
    assert again.shape == (5,)


def test_render_into_a_bucket_requests_per_array(s3, proxy):
    """A render creates its outputs in one batch, writes each region once and checks
    completeness with one listing per view leaf."""
    options = {"endpoint_url": proxy.endpoint}
    labels = {f"label{k:02d}": np.arange(200) * k for k in range(20)}
    zview.write_dataset(f"s3://{BUCKET}/r/base", labels, storage_options=options,
                        progress=False)
    zview.write_view(f"s3://{BUCKET}/r/view", {"a": np.arange(150), "b": np.arange(150)[::-1]},
                     base=f"s3://{BUCKET}/r/base", storage_options=options, render=False,
                     progress=False)
    proxy.clear()
    zview.render(f"s3://{BUCKET}/r/view", storage_options=options, progress=False)
    arrays = 2 * len(labels)
    creating = [r for r in proxy.requests if r[1].endswith("/zarr.json") and r[0] == "PUT"
                and "/rendered/" in r[1]]
    assert len(creating) == arrays + 3  # the arrays, and the groups rendered/, a and b
    chunk_writes = [r for r in proxy.requests if r[0] == "PUT" and "/c/" in r[1]]
    assert len(chunk_writes) == arrays  # one chunk each
    # the rest: reading the base's chunks, the render state and consolidated metadata (the two
    # consolidations read every array's zarr.json), a listing per leaf
    assert len(proxy.requests) <= 8 * arrays, len(proxy.requests)


def test_sharded_chunk_read_from_a_bucket(s3, proxy):
    """Opening costs what it did (meta.yaml and zarr.json); a cold chunk of a shard costs the
    shard's index and the chunk, two ranged GETs of one object; a cached chunk costs nothing."""
    url = f"s3://{BUCKET}/sharded"
    windows = np.arange(2_000_000)[:, None] + np.arange(5)
    zview.write_dataset(url, {"w": windows}, progress=False)
    proxy.clear()
    label = zview.open(url, storage_options={"endpoint_url": proxy.endpoint}).labels["w"]
    assert proxy.requests == [("GET", f"/{BUCKET}/sharded/meta.yaml"),
                              ("GET", f"/{BUCKET}/sharded/zarr.json")]
    assert label.source.shards is not None
    proxy.clear()
    np.testing.assert_array_equal(label[1_700_000], windows[1_700_000])
    assert proxy.requests == [("GET", f"/{BUCKET}/sharded/labels/w/c/1/0")] * 2
    proxy.clear()
    label[1_700_001]
    assert proxy.requests == []
    # a batch over many chunks of both shards is fetched concurrently, correctly
    picks = np.random.default_rng(0).integers(0, len(windows), 200)
    np.testing.assert_array_equal(label[picks], windows[picks])


@pytest.mark.parametrize(("values", "cname"), [
    (np.random.default_rng(0).random((4096, 64), dtype=np.float32), "lz4"),  # measured values
    (np.round(np.random.default_rng(0).random((4096, 64)) * 256, 1).astype(np.float32),
     "zstd"),  # quantized: zstd stores them a fifth smaller
])
def test_floats_use_lz4_unless_zstd_is_much_smaller(values, cname):
    codecs, _ = _codecs._encoding(values)
    assert codecs["compressors"][0].to_dict()["configuration"]["cname"] == cname


@pytest.mark.parametrize(("values", "shuffle", "delta"), [
    (np.random.default_rng(0).integers(0, 2_000_000, 131072), "bitshuffle", False),
    (np.arange(26214)[:, None] + np.arange(5), "shuffle", True),  # sliding windows
])
def test_integers_pick_shuffle_and_delta_on_the_sample(values, shuffle, delta):
    codecs, _ = _codecs._encoding(values)
    assert codecs["compressors"][0].to_dict()["configuration"]["shuffle"] == shuffle
    assert ("filters" in codecs) == delta
