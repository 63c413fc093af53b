"""The catalogue of bad inputs (README.md, "Bad input"): one test per row.

Every error is a ``zview.errors`` type that is also the builtin a caller would catch, and names
the store, the key and the offending value, as messages and as attributes.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import fsspec
import numpy as np
import pytest
import yaml

import zview
from tests._unchecked import write_label
from zview import errors
from zview._location import Location
from zview._meta import MAX_META_BYTES

N_BASE = 20


# -- helpers ----------------------------------------------------------------------------------
def check(error: BaseException, builtin: type, *, store=None, key=None, value=None) -> None:
    """``error`` is a zview error, the builtin, and names the store, key and value given."""
    assert isinstance(error, errors.ZViewError)
    assert isinstance(error, builtin)
    if store is not None:
        assert error.store == str(store)
        assert str(store) in str(error)
    if key is not None:
        assert error.key == key
    if value is not None:
        assert error.value == value


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A base store of 20 examples."""
    path = tmp_path / "base"
    zview.write_dataset(path, {"x": np.arange(N_BASE) * 10,
                               "name": np.array([f"n{i}" for i in range(N_BASE)])},
                        progress=False)
    return path


def make_view(base: Path, name: str = "view", views=None, **kwargs) -> Path:
    path = base.parent / name
    if views is None:
        views = {"a": np.arange(10), "b": np.arange(20).reshape(10, 2)}
    zview.write_view(path, views, base=str(base), progress=False, **kwargs)
    return path


def edit_meta(store: Path, **changes) -> None:
    meta = yaml.safe_load((store / "meta.yaml").read_text())
    meta.update(changes)
    (store / "meta.yaml").write_text(yaml.safe_dump(meta))


def replace_label(store: Path, key: str, data: np.ndarray) -> None:
    """Rewrite a label of a written store, as a careless or hostile writer would."""
    write_label(store, key, data)


def free_loopback_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- no code from a store (more in test_trust.py) -----------------------------------------------
def test_untrusted_base_dset(base, tmp_path):
    store = make_view(base)
    marker = tmp_path / "marker"
    edit_meta(store, base_dset="subprocess.call", base_kwargs={"args": ["touch", str(marker)]})
    with pytest.raises(errors.UntrustedBaseError, match=r"'subprocess\.call' is not a trusted"
                       ) as info:
        zview.open(store)
    check(info.value, PermissionError, store=store, key="base_dset", value="subprocess.call")
    assert not marker.exists()


def test_untrusted_loader(tmp_path):
    store = tmp_path / "ds"
    zview.write_dataset(store, {"cmd": np.array(["true"] * 3)}, loaders={"cmd": "os.system"},
                        progress=False)
    with pytest.raises(errors.UntrustedBaseError, match=r"'os\.system' is not a trusted") as info:
        zview.open(store)
    check(info.value, PermissionError, store=store, value="os.system")


# -- meta.yaml ----------------------------------------------------------------------------------
def test_yaml_python_tag_is_not_constructed(base, tmp_path):
    store = make_view(base)
    marker = tmp_path / "marker"
    (store / "meta.yaml").write_text(f"!!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(errors.MetaError, match=r"not valid YAML.*python/object/apply") as info:
        zview.open(store)
    check(info.value, ValueError, store=store, key="meta.yaml")
    assert not marker.exists()


def test_oversize_meta_yaml(base):
    store = make_view(base)
    (store / "meta.yaml").write_text("description: " + "x" * (MAX_META_BYTES + 10) + "\n")
    start = time.perf_counter()
    with pytest.raises(errors.MetaError, match=f"larger than {MAX_META_BYTES} bytes") as info:
        zview.open(store)
    assert time.perf_counter() - start < 2
    check(info.value, ValueError, store=store, key="meta.yaml", value=MAX_META_BYTES + 1)


def test_billion_laughs_meta_yaml(base):
    store = make_view(base)
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    (store / "meta.yaml").write_text("\n".join(lines) + "\n")
    assert (store / "meta.yaml").stat().st_size < 2000
    start = time.perf_counter()
    with pytest.raises(errors.MetaError, match=r"expands to more than .* nodes") as info:
        zview.open(store)
    assert time.perf_counter() - start < 2
    check(info.value, ValueError, store=store, key="meta.yaml")


def test_deeply_nested_meta_yaml(base):
    store = make_view(base)
    (store / "meta.yaml").write_text("views: " + "[" * 50_000 + "]" * 50_000 + "\n")
    start = time.perf_counter()
    with pytest.raises(errors.MetaError, match="nested deeper than 64 levels") as info:
        zview.open(store)
    assert time.perf_counter() - start < 2
    check(info.value, ValueError, store=store, key="meta.yaml", value=65)


def test_malformed_meta_yaml(base):
    store = make_view(base)
    (store / "meta.yaml").write_text("views: [a, b\nbase_dset: zview.MetaDataset\n")
    with pytest.raises(errors.MetaError, match="not valid YAML") as info:
        zview.open(store)
    check(info.value, ValueError, store=store, key="meta.yaml")


def test_meta_yaml_not_utf8(base):
    store = make_view(base)
    (store / "meta.yaml").write_bytes(b"description: \xff\xfe\n")
    with pytest.raises(errors.MetaError, match="not valid YAML") as info:
        zview.open(store)
    check(info.value, ValueError, store=store, key="meta.yaml")


def test_meta_yaml_not_a_mapping(base):
    store = make_view(base)
    (store / "meta.yaml").write_text("- base_dset\n- views\n")
    with pytest.raises(errors.MetaError, match="must be a mapping of keys, got list") as info:
        zview.open(store)
    check(info.value, ValueError, store=store, key="meta.yaml", value=["base_dset", "views"])


@pytest.mark.parametrize(("key", "value", "match"), [
    ("views", 5, "'views' must be a str or dict or list, got int 5"),
    ("views", {"a": []}, "views/a must be a label key"),
    ("views", {"a/b": "views/a"}, "without '/'"),
    ("base_kwargs", [1, 2], "'base_kwargs' must be a dict, got list"),
    ("base_dset", ["x"], "'base_dset' must be a str, got list"),
    ("base_dset", "os; rm -rf /", "must be an import path"),
    ("description", {"a": 1}, "'description' must be a str, got dict"),
    ("loaders", "image", "'loaders' must be a dict, got str"),
    ("loaders", {"views/a": 3}, "'loaders' maps label names to loader names"),
    ("loader_kwargs", {"views/a": [1]}, "'loader_kwargs' maps label names to keyword"),
])
def test_wrong_types_in_meta_yaml(base, key, value, match):
    store = make_view(base)
    edit_meta(store, **{key: value})
    with pytest.raises(errors.MetaError, match=match) as info:
        zview.open(store)
    check(info.value, ValueError, store=store)
    assert info.value.key.split("/")[0] == key


def test_wrong_base_kwargs_for_zview_base(base):
    store = make_view(base)
    edit_meta(store, base_kwargs={"root": "../base", "cache_bytes": "lots"})
    with pytest.raises(errors.MetaError, match="'cache_bytes': 'lots' is not accepted") as info:
        zview.open(store)
    check(info.value, ValueError, store=store, key="base_kwargs/cache_bytes", value="lots")


def test_missing_meta_yaml(base):
    store = make_view(base)
    (store / "meta.yaml").unlink()
    with pytest.raises(errors.StoreNotFoundError, match=r"no meta\.yaml at") as info:
        zview.open(store)
    check(info.value, FileNotFoundError, store=store, key="meta.yaml")


@pytest.mark.parametrize("where", ["local", "memory", "zip", "protocol"])
def test_missing_store(tmp_path, where):
    location = {"local": str(tmp_path / "nothing"), "memory": "memory://zview-nothing-here",
                "zip": str(tmp_path / "nothing.zip"), "protocol": "nosuch://bucket/x"}[where]
    with pytest.raises(errors.StoreNotFoundError, match=r"no meta\.yaml at|unknown protocol"
                       ) as info:
        zview.open(location)
    check(info.value, FileNotFoundError, store=location)


# -- loaders and labels -------------------------------------------------------------------------
def test_unknown_loader(base):
    store = make_view(base)
    edit_meta(store, loaders={"views/b": "nosuchloader"})
    with pytest.raises(errors.MissingLabelError, match="unknown loader 'nosuchloader'") as info:
        zview.open(store)
    check(info.value, KeyError, store=store, key="loaders/views/b", value="nosuchloader")


def test_loader_for_missing_label(base):
    store = make_view(base)
    edit_meta(store, loaders={"nolabel": "image"})
    with pytest.raises(errors.MissingLabelError, match="no such label") as info:
        zview.open(store)
    check(info.value, KeyError, store=store, key="loaders/nolabel", value="nolabel")


def test_loader_file_missing(tmp_path):
    store = tmp_path / "ds"
    zview.write_dataset(store, {"image": np.array(["a.png", "gone.png"])},
                        loaders={"image": "image"}, progress=False)
    (store / "a.png").write_bytes(b"not a png")
    ds = zview.open(store)
    with pytest.raises(errors.MissingFileError, match=r"names 'gone\.png', which the 'image' "
                       r"loader cannot find") as info:
        ds[1]
    check(info.value, FileNotFoundError, store=store, key="image", value="gone.png")
    with pytest.raises(errors.LoaderError, match=r"'image' loader of label 'image' failed on "
                       r"'a\.png'") as info:
        ds[0]
    check(info.value, ValueError, store=store, key="image", value="a.png")


def test_category_loader_without_categories(tmp_path):
    store = tmp_path / "ds"
    zview.write_dataset(store, {"cls": np.arange(3)}, loaders={"cls": "category"},
                        progress=False)
    with pytest.raises(errors.MetaError, match="needs loader_kwargs") as info:
        zview.open(store)
    check(info.value, ValueError, store=store, key="loader_kwargs/cls")


def test_category_out_of_range(tmp_path):
    store = tmp_path / "ds"
    zview.write_dataset(store, {"cls": np.array([0, 5])}, loaders={"cls": "category"},
                        loader_kwargs={"cls": {"categories": ["cat", "dog"]}}, progress=False)
    ds = zview.open(store)
    assert ds[0]["cls"] == "cat"
    with pytest.raises(errors.LoaderError, match=r"failed on .*5.*IndexError") as info:
        ds[1]
    check(info.value, ValueError, store=store, key="cls", value=5)


def test_view_key_with_no_label(base):
    store = make_view(base)
    edit_meta(store, views={"a": "views/a", "c": "views/nope"})
    with pytest.raises(errors.MissingLabelError, match="names label 'views/nope'") as info:
        zview.open(store)
    check(info.value, KeyError, store=store, key="c", value="views/nope")


def test_views_of_unequal_length(base):
    store = make_view(base)
    replace_label(store, "views/a", np.arange(9))
    with pytest.raises(errors.ViewError, match="differ in length: views/a=9, views/b=10"
                       ) as info:
        zview.open(store)
    check(info.value, ValueError, store=store, value={"views/a": 9, "views/b": 10})


def test_write_views_of_unequal_length(base):
    with pytest.raises(errors.ViewError, match="must all have one length") as info:
        make_view(base, views={"a": np.arange(10), "b": np.arange(9)})
    check(info.value, ValueError, store=base.parent / "view")
    assert not (base.parent / "view").exists()


@pytest.mark.parametrize("dtype", ["float64", "float32", "<U3", "bool", "complex64"])
def test_non_integer_view(base, dtype):
    store = make_view(base)
    replace_label(store, "views/a", np.arange(10).astype(dtype))
    with pytest.raises(errors.ViewError, match=f"holds {np.dtype(dtype)} values") as info:
        zview.open(store)
    check(info.value, ValueError, store=store, key="views/a", value=str(np.dtype(dtype)))


def test_write_float_view(base):
    with pytest.raises(errors.ViewError, match="holds float64 values") as info:
        make_view(base, views={"a": np.arange(10) * 1.0})
    check(info.value, ValueError, key="views/a", value="float64")
    assert not (base.parent / "view").exists()


# -- indices --------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [N_BASE, 10**12, -1, -N_BASE])
@pytest.mark.parametrize("how", ["single", "batch", "labels", "validate"])
def test_view_index_out_of_range(base, bad, how):
    store = make_view(base)
    index = np.arange(10)
    index[7] = bad
    replace_label(store, "views/a", index)
    if how == "validate":
        problems = zview.validate(store)
        assert any("IndexOutOfRangeError" in p and f"index {bad} in views/a" in p
                   for p in problems), problems
        return
    ds = zview.open(store, render=False) if how != "labels" else None
    with pytest.raises(errors.IndexOutOfRangeError,
                       match=rf"index {bad} in views/a is outside \[0, {N_BASE}\)") as info:
        if how == "single":
            ds[7]
        elif how == "batch":
            ds[[6, 7]]
        else:
            zview.render(store, force=True, progress=False)
    check(info.value, IndexError, store=store, key="views/a", value=bad)
    assert info.value.length == N_BASE
    assert "row 7" in str(info.value)


def test_write_view_index_out_of_range(base):
    with pytest.raises(errors.IndexOutOfRangeError, match=r"index -3 in views/a .*nothing was "
                       r"written") as info:
        make_view(base, views={"a": np.array([0, -3, 1])})
    check(info.value, IndexError, key="views/a", value=-3)
    assert not (base.parent / "view").exists()


@pytest.mark.parametrize("index", [10, -1, 10**9])
def test_dataset_index_out_of_range(base, index):
    ds = zview.open(make_view(base))
    with pytest.raises(errors.IndexOutOfRangeError, match=rf"index {index} in index is outside"
                       ) as info:
        ds[index]
    check(info.value, IndexError, key="index", value=index)
    with pytest.raises(errors.IndexOutOfRangeError, match=rf"index {index} in index"):
        ds[[0, index]]


# -- chunks and metadata --------------------------------------------------------------------------
def _remove(location: str, key: str) -> None:
    fs, root = Location.resolve(location).filesystem()
    fs.rm(f"{root}/{key}" if root else key)


def _overwrite(location: str, key: str, transform) -> None:
    fs, root = Location.resolve(location).filesystem()
    path = f"{root}/{key}" if root else key
    fs.pipe_file(path, transform(fs.cat_file(path)))


def _chunk_key(location: str, array: str) -> str:
    fs, root = Location.resolve(location).filesystem()
    prefix = f"{root}/{array}/c" if root else f"{array}/c"
    return f"{array}/c/" + fs.find(prefix)[0][len(prefix) + 1:]


def _backend_view(location, base_name="base", name="view") -> str:
    base = location(base_name)
    zview.write_dataset(base, {"x": np.arange(N_BASE) * 10}, progress=False)
    view = location(name)
    zview.write_view(view, {"a": np.arange(10), "b": np.arange(20).reshape(10, 2)}, base=base,
                     progress=False)
    return view


@pytest.fixture(params=["local", "memory", "s3"])
def writable(request, tmp_path):
    """Store locations in which a test can delete and overwrite single objects."""
    from tests.conftest import BUCKET, Backend

    if request.param == "local":
        yield Backend("local", str(tmp_path))
    elif request.param == "memory":
        name = f"memory://zview-errors-{os.getpid()}-{time.monotonic_ns()}"
        yield Backend("memory", name)
        fs = fsspec.filesystem("memory")
        if fs.exists(name[len("memory://"):]):
            fs.rm(name[len("memory://"):], recursive=True)
    else:
        request.getfixturevalue("s3")
        yield Backend("s3", f"s3://{BUCKET}/errors-{time.monotonic_ns()}")


@pytest.mark.parametrize("array", ["labels/views/a", "labels/views/b", "rendered/a/x"])
@pytest.mark.parametrize("how", ["single", "batch", "validate"])
def test_missing_chunk(writable, array, how):
    view = _backend_view(writable)
    key = _chunk_key(view, array)
    _remove(view, key)
    if how == "validate":
        problems = zview.validate(view)
        assert any(p.startswith(array.removeprefix("labels/")) and "MissingChunkError" in p
                   for p in problems), problems
        return
    ds = zview.open(view)
    with pytest.raises(errors.MissingChunkError, match=f"chunk {key} of '{array}' is missing"
                       ) as info:
        if how == "single":
            ds[3]
        else:
            ds[[2, 3]]
    check(info.value, FileNotFoundError, store=view, key=array, value=key)


@pytest.mark.parametrize("array", ["labels/views/a", "rendered/b/x"])
@pytest.mark.parametrize("how", ["single", "batch", "validate"])
def test_corrupt_chunk(writable, array, how):
    view = _backend_view(writable)
    key = _chunk_key(view, array)
    _overwrite(view, key, lambda data: b"\x00" * 16 + data[16:])  # the compressor's header
    if how == "validate":
        problems = zview.validate(view)
        assert any("CorruptStoreError" in p and array in p for p in problems), problems
        return
    ds = zview.open(view)
    with pytest.raises(errors.CorruptStoreError, match=f"chunk.* of '{array}' cannot be decoded"
                       ) as info:
        if how == "single":
            ds[3]
        else:
            ds[[2, 3]]
    check(info.value, ValueError, store=view, key=array)


@pytest.mark.parametrize("where", [0.2, 1 / 3, 0.5, 0.7])
def test_corrupt_chunk_payload_is_detected(base, where):
    """Bytes flipped inside the compressed payload, which Blosc alone may decode to other
    values: the chunk checksum turns them into an error."""
    index = np.random.default_rng(1).integers(0, N_BASE, 2000)
    view = make_view(base, views={"a": index})
    chunk = view / "labels" / "views" / "a" / "c" / "0"
    data = bytearray(chunk.read_bytes())
    at = int(len(data) * where)
    data[at:at + 4] = bytes(b ^ 0xFF for b in data[at:at + 4])
    chunk.write_bytes(bytes(data))
    with pytest.raises(errors.CorruptStoreError, match="'labels/views/a' cannot be decoded"
                       ) as info:
        np.asarray(zview.open(view, render=False).views["a"])
    check(info.value, ValueError, store=view, key="labels/views/a", value=[0])


@pytest.mark.parametrize(("text", "match"), [
    (b"{not json", "zarr.json is corrupt: JSONDecodeError"),
    (b"[1, 2]", "zarr.json is corrupt"),
    (b"null", "zarr.json is corrupt"),
    (b"\xff\xfe\x00", "zarr.json is corrupt"),
    (b'{"zarr_format": 3, "node_type": "array"}', "zarr.json is not a zarr group"),
])
def test_corrupt_zarr_json(writable, text, match):
    view = _backend_view(writable)
    _overwrite(view, "zarr.json", lambda data: text)
    with pytest.raises(errors.CorruptStoreError, match=match) as info:
        zview.open(view)
    check(info.value, ValueError, store=view, key="zarr.json")
    assert any("CorruptStoreError" in p for p in zview.validate(view))


@pytest.mark.parametrize(("edit", "match"), [
    (lambda m: m["consolidated_metadata"]["metadata"]["labels/views/a"].update(shape="x"),
     "zarr.json is corrupt"),
    (lambda m: m["consolidated_metadata"]["metadata"]["labels/views/a"].update(
        data_type="nosuchtype"), "zarr.json is corrupt.*nosuchtype"),
    (lambda m: m["consolidated_metadata"]["metadata"]["labels/views/a"].update(
        codecs=[{"name": "nosuchcodec"}]), "zarr.json is corrupt.*nosuchcodec"),
    (lambda m: m["consolidated_metadata"]["metadata"]["labels/views/a"]["attributes"].update(
        numpy_dtype="nosuchtype"), "'labels/views/a' names an unknown numpy_dtype 'nosuchtype'"),
    (lambda m: m["consolidated_metadata"]["metadata"]["labels/views/a"].update(
        shape=[2**40], chunk_grid={"name": "regular", "configuration": {"chunk_shape": [2**40]}}),
     r"'labels/views/a' has chunks of 8796093022208 bytes"),
    (lambda m: m["attributes"].update(zview=[1]), r"attrs\['zview'\] of zarr.json"),
    (lambda m: m["attributes"]["zview"].update(render={"a": 1}), r"\['render'\] of zarr.json"),
])
def test_corrupt_consolidated_metadata(base, edit, match):
    view = make_view(base)
    meta = json.loads((view / "zarr.json").read_text())
    edit(meta)
    (view / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(errors.CorruptStoreError, match=match) as info:
        zview.open(view)
    check(info.value, ValueError)
    assert info.value.key.startswith("zarr.json") or info.value.key == "labels/views/a"


# -- the base ---------------------------------------------------------------------------------
def test_base_missing(base):
    store = make_view(base)
    edit_meta(store, base_kwargs={"root": "../moved-away"})
    with pytest.raises(errors.BaseBuildError, match=r"failed to build.*no meta\.yaml at") as info:
        zview.open(store)
    check(info.value, ValueError, store=store, key="base_dset", value="zview.MetaDataset")
    assert isinstance(info.value.__cause__, errors.StoreNotFoundError)


def test_base_fails_to_build(base, monkeypatch):
    store = make_view(base)
    monkeypatch.setenv("ZVIEW_TRUSTED_BASES", "fractions.*")
    edit_meta(store, base_dset="fractions.Fraction", base_kwargs={"numerator": "x"})
    with pytest.raises(errors.BaseBuildError, match="ValueError: Invalid literal") as info:
        zview.open(store)
    check(info.value, ValueError, store=store, key="base_dset", value="fractions.Fraction")


def test_base_is_not_a_dataset(base):
    store = make_view(base)
    edit_meta(store, base_dset="builtins.object", base_kwargs={})
    with pytest.raises(errors.BaseBuildError, match="TypeError: object of type 'object' has no "
                       "len") as info:
        zview.open(store, trust=True)
    check(info.value, ValueError, store=store, key="base_dset", value="builtins.object")


def test_base_without_base_dset(base):
    store = make_view(base)
    edit_meta(store, base_dset=None)
    with pytest.raises(errors.MetaError, match="no 'base_dset'") as info:
        zview.MetaViewDataset(store)
    check(info.value, ValueError, store=store, key="base_dset")


def test_stale_render(base):
    store = make_view(base)
    zview.store_label(base, "x", np.arange(N_BASE) * 7, overwrite=True)
    with pytest.raises(errors.StaleRenderError, match="rendered against a different base"
                       ) as info:
        zview.open(store)
    check(info.value, ValueError, store=store, value="stale")
    assert zview.open(store, render=True).labels["a"]["x"][3] == 21


def test_render_required(base):
    store = make_view(base, render=False)
    with pytest.raises(errors.RenderRequiredError, match="are not rendered") as info:
        zview.open(store, render=False)
    check(info.value, PermissionError, store=store, value="missing")


# -- writes ---------------------------------------------------------------------------------------
def test_store_label_keeps_what_is_there(base, edflow_copy):
    before = {p: p.read_bytes() for p in base.rglob("*") if p.is_file()}
    with pytest.raises(errors.StoreExistsError, match="pass overwrite=True") as info:
        zview.store_label(base, "x", np.arange(N_BASE))
    check(info.value, FileExistsError, store=base, key="x")
    with pytest.raises(errors.ViewError, match=f"3 rows, but the store's examples number "
                                               f"{N_BASE}") as info:
        zview.store_label(base, "y", np.arange(3))
    check(info.value, ValueError, store=base, key="y", value=3)
    with pytest.raises(errors.ViewError, match="one would be a folder of the other") as info:
        zview.store_label(base, "x/sub", np.arange(N_BASE), overwrite=True)
    check(info.value, ValueError, store=base, key="x/sub", value="x")
    assert {p: p.read_bytes() for p in base.rglob("*") if p.is_file()} == before
    zview.store_label(base, "nested/y", np.arange(N_BASE))
    with pytest.raises(errors.ViewError, match="one would be a folder of the other") as info:
        zview.store_label(base, "nested", np.arange(N_BASE), overwrite=True)  # not a deletion
    check(info.value, ValueError, store=base, key="nested", value="nested/y")
    np.testing.assert_array_equal(zview.open(base).labels["nested"]["y"], np.arange(N_BASE))
    legacy = edflow_copy / "base"
    with pytest.raises(errors.ReadOnlyStoreError, match="zview convert") as info:
        zview.store_label(legacy, "y", np.arange(24))
    check(info.value, PermissionError, store=legacy, key="y")
    assert not (legacy / "zarr.json").exists()


@pytest.mark.parametrize("write", ["write_dataset", "convert"])
def test_zip_in_a_bucket_is_not_written(base, write):
    where = f"memory://zip-{write}/store.zip"
    with pytest.raises(errors.ReadOnlyStoreError, match="zip files on a local disk only") as info:
        if write == "convert":
            zview.convert(base, where, progress=False)
        else:
            zview.write_dataset(where, {"x": np.arange(3)}, progress=False)
    check(info.value, PermissionError, store=where, key="location", value=where)
    assert not fsspec.filesystem("memory").exists(f"/zip-{write}")


def test_existing_store_kept_without_overwrite(base):
    store = make_view(base)
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    with pytest.raises(errors.StoreExistsError, match="pass overwrite=True") as info:
        make_view(base, views={"a": np.arange(3)})
    check(info.value, FileExistsError, store=store, key="meta.yaml")
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before
    make_view(base, views={"a": np.arange(3)}, overwrite=True)
    assert len(zview.open(store)) == 3


# -- remote access ------------------------------------------------------------------------------
@pytest.fixture
def no_aws(monkeypatch, tmp_path):
    """No credentials anywhere botocore looks, and no instance-metadata lookups."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "absent"))


def _dead_s3(**options) -> dict:
    return {"endpoint_url": f"http://127.0.0.1:{free_loopback_port()}",
            "skip_instance_cache": True,
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
            **options}


def test_unreachable_endpoint(no_aws):
    pytest.importorskip("s3fs")
    options = _dead_s3(key="k", secret="s")
    with pytest.raises(errors.StoreUnreachableError, match="cannot reach the store") as info:
        zview.open("s3://bucket/view", storage_options=options)
    check(info.value, ConnectionError, store="s3://bucket/view", key="meta.yaml")


def test_missing_credentials(no_aws):
    pytest.importorskip("s3fs")
    with pytest.raises(errors.StoreAccessError, match="Unable to locate credentials") as info:
        zview.open("s3://bucket/view", storage_options=_dead_s3())
    check(info.value, PermissionError, store="s3://bucket/view", key="meta.yaml",
          value="NoCredentialsError")


def test_bad_storage_options(no_aws):
    pytest.importorskip("s3fs")
    options = _dead_s3(key="k", secret="s", no_such_option=1)
    with pytest.raises(errors.StorageOptionsError, match="no_such_option") as info:
        zview.open("s3://bucket/view", storage_options=options)
    check(info.value, ValueError, store="s3://bucket/view", key="storage_options")
    assert "no_such_option" in info.value.value
    assert "s" not in str(info.value).split("storage options")[0]  # no secret in the message


def test_errors_pickle_with_their_attributes(base):
    store = make_view(base)
    replace_label(store, "views/a", np.full(10, N_BASE))
    import pickle

    with pytest.raises(errors.IndexOutOfRangeError) as info:
        zview.open(store, render=False)[0]
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is errors.IndexOutOfRangeError
    assert (again.store, again.key, again.value) == (str(store), "views/a", N_BASE)
    assert again.length == N_BASE and str(again) == str(info.value)


@pytest.mark.parametrize("how", ["write_dataset", "store_label", "write_view"])
def test_label_with_empty_rows(base, how):
    """(M, 0) rows: zarr 3.1 stores them, newer zarr cannot; refused everywhere, up front."""
    empty = np.zeros((10, 0), dtype=np.int64)
    store = base.parent / "empty"
    with pytest.raises(errors.ViewError, match=r"shape \(10, 0\): rows must not be empty"
                       ) as info:
        if how == "write_dataset":
            zview.write_dataset(store, {"e": empty}, progress=False)
        elif how == "store_label":
            zview.store_label(base, "e", empty)
        else:
            make_view(base, "empty", views={"a": empty})
    check(info.value, ValueError, value=(10, 0))
    assert not store.exists()


@pytest.mark.parametrize(("raised", "error", "builtin"), [
    (ConnectionResetError("reset by peer"), errors.StoreUnreachableError, ConnectionError),
    (TimeoutError("read timed out"), errors.StoreUnreachableError, ConnectionError),
    (PermissionError("access denied"), errors.StoreAccessError, PermissionError),
])
def test_chunk_read_failure_is_not_called_corruption(base, monkeypatch, raised, error, builtin):
    """A chunk the store fails to serve (network, permissions) is reported as that."""
    import zarr.storage

    view = make_view(base)
    ds = zview.open(view)

    async def fail(self, key, *args, **kwargs):
        if "/c/" in key or key.endswith("/c"):
            raise raised
        return await real(self, key, *args, **kwargs)

    real = zarr.storage.LocalStore.get
    monkeypatch.setattr(zarr.storage.LocalStore, "get", fail)
    with pytest.raises(error, match=type(raised).__name__) as info:
        ds[3]
    check(info.value, builtin, store=view, key="labels/views/a")
    assert not isinstance(info.value, errors.CorruptStoreError)

