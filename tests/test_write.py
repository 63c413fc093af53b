"""Writing: checks before anything is written, layout, compression, replacing stores."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import yaml

import zview
from zview.errors import IndexOutOfRangeError, StoreExistsError, ViewError


@pytest.fixture
def base(tmp_path):
    zview.write_dataset(tmp_path / "base", {"x": np.arange(100)}, progress=False)
    return tmp_path / "base"


def test_meta_yaml_is_edflow_compatible(base, tmp_path):
    zview.write_view(tmp_path / "v", {"seq": np.zeros((3, 2), int), "app": np.ones(3, int)},
                     base=base, description="two views", progress=False)
    meta = yaml.safe_load((tmp_path / "v" / "meta.yaml").read_text())
    assert meta == {"description": "two views", "base_dset": "zview.MetaDataset",
                    "base_kwargs": {"root": "../base"},
                    "views": {"seq": "views/seq", "app": "views/app"}}


def test_sliding_windows_store_100x_smaller_than_npy(base, tmp_path):
    windows = np.arange(100_000)[:, None] % 96 + np.arange(5)
    view = zview.open(zview.write_view(tmp_path / "v", {"seq": windows}, base=base,
                                       render=False, progress=False), _rendered=False)
    npy = windows.nbytes + 128
    assert npy / view.views["seq"].stored_bytes() >= 100


@pytest.mark.parametrize(("views", "error", "match"), [
    ({"a": np.arange(3), "b": np.arange(4)}, ViewError, "one length"),
    ({"a": np.arange(3.0)}, ViewError, "float64 values"),
    ({"a": np.array([0, 100])}, IndexOutOfRangeError,
     r"index 100 in views/a is outside \[0, 100\)"),
    ({"a": np.array([0, -1])}, IndexOutOfRangeError, r"index -1 in views/a"),
])
def test_bad_views_write_nothing(base, tmp_path, views, error, match):
    with pytest.raises(error, match=match):
        zview.write_view(tmp_path / "v", views, base=base, progress=False)
    assert not (tmp_path / "v").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["base"]


def test_existing_store_replaced_only_on_request(base, tmp_path):
    zview.write_view(tmp_path / "v", {"a": np.arange(3)}, base=base, progress=False)
    with pytest.raises(StoreExistsError, match="overwrite=True"):
        zview.write_view(tmp_path / "v", {"a": np.arange(5)}, base=base, progress=False)
    assert len(zview.open(tmp_path / "v")) == 3
    with pytest.raises(IndexOutOfRangeError):
        zview.write_view(tmp_path / "v", {"a": np.arange(200)}, base=base, overwrite=True,
                         progress=False)
    assert len(zview.open(tmp_path / "v")) == 3  # a failed overwrite keeps the old store
    zview.write_view(tmp_path / "v", {"a": np.arange(5)}, base=base, overwrite=True,
                     progress=False)
    assert len(zview.open(tmp_path / "v")) == 5


def test_store_label_reads_back_with_loader(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "meta.yaml").write_text("description: hand-made\n")
    zview.store_label(tmp_path / "s", "kind", np.array([2, 0, 1]), loader="category")
    (tmp_path / "s" / "meta.yaml").write_text(
        "loader_kwargs:\n  kind:\n    categories: [a, b, c]\n")
    ds = zview.open(tmp_path / "s")
    assert [ds[i]["kind"] for i in range(3)] == ["c", "a", "b"]
    np.testing.assert_array_equal(ds.labels["kind_"], [2, 0, 1])


def test_string_labels_keep_their_width(tmp_path):
    names = np.array(["a", "bbbb", "cc"])
    zview.write_dataset(tmp_path / "s", {"name": names}, progress=False)
    got = np.asarray(zview.open(tmp_path / "s").labels["name"])
    assert got.dtype == names.dtype
    np.testing.assert_array_equal(got, names)


# -- replacing a store, on every backend --------------------------------------------------------
def _siblings(backend, store: str) -> list[str]:
    """What sits beside ``store`` (hidden leftovers of builds included)."""
    from zview._location import Location

    parent = store.rsplit("/", 1)[0]
    fs, path = Location.resolve(parent).filesystem(outer=True)
    fs.invalidate_cache()
    return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))


def test_overwrite_replaces_the_whole_store(location):
    base = location("base")
    zview.write_dataset(base, {"x": np.arange(100)}, progress=False)
    store = location("v")
    zview.write_view(store, {"a": np.arange(3), "b": np.arange(3)}, base=base, progress=False)
    zview.write_view(store, {"a": np.arange(7) * 2}, base=base, overwrite=True, progress=False)
    view = zview.open(store)
    assert len(view) == 7
    assert sorted(view.views) == ["a"]  # nothing of the old store's b is left
    np.testing.assert_array_equal(np.asarray(view.labels["a"]["x"]), np.arange(7) * 2)
    assert zview.validate(store) == []
    assert _siblings(location, store) == sorted(p.rsplit("/", 1)[-1] for p in (base, store))


def test_overwrite_stopped_while_copying_in_a_bucket_says_how_to_finish(tmp_path, monkeypatch):
    """An object store has no rename: the new store is built whole beside the old one and
    copied over it. Stopped during the copy, the store says it is incomplete and names the
    complete new store, and the command it names finishes the overwrite."""
    import fsspec

    from zview.errors import IncompleteStoreError

    root = f"memory://overwrite-{tmp_path.name}"
    base, store = f"{root}/base", f"{root}/v"
    zview.write_dataset(base, {"x": np.arange(100)}, progress=False)
    zview.write_view(store, {"a": np.arange(3)}, base=base, progress=False)
    memory = type(fsspec.filesystem("memory"))
    copy = memory.copy
    calls = []

    def failing_copy(self, path1, path2, *args, **kwargs):
        calls.append(path1)
        if len(calls) == 2:  # the body is in, the new zarr.json is not
            raise OSError("connection reset")
        return copy(self, path1, path2, *args, **kwargs)

    monkeypatch.setattr(memory, "copy", failing_copy)
    with pytest.raises(IncompleteStoreError, match=r"connection reset.*zview convert") as caught:
        zview.write_view(store, {"a": np.arange(7)}, base=base, overwrite=True, progress=False)
    monkeypatch.setattr(memory, "copy", copy)
    staging = caught.value.value
    assert staging.startswith(f"{root}/.v.") and staging.endswith(".tmp")
    with pytest.raises(IncompleteStoreError, match=re.escape(f"complete at {staging}")) as opened:
        zview.open(store)
    assert opened.value.store == store and isinstance(opened.value, FileNotFoundError)
    assert zview.validate(store)[0].startswith("IncompleteStoreError")
    with pytest.raises(StoreExistsError):  # still a store: replaced only on request
        zview.write_view(store, {"a": np.arange(5)}, base=base, progress=False)

    zview.convert(staging, store, overwrite=True, progress=False)  # as the message says
    view = zview.open(store)
    np.testing.assert_array_equal(np.asarray(view.views["a"]), np.arange(7))
    assert zview.validate(store) == []
    assert not fsspec.filesystem("memory").exists(staging)  # its writer is gone: cleaned up


def test_leftovers_of_killed_writes_are_removed_by_the_next_write(tmp_path):
    import subprocess
    import sys

    base = tmp_path / "base"
    zview.write_dataset(base, {"x": np.arange(10)}, progress=False)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    from zview.write import _HOST

    left = tmp_path / f".v.{_HOST}-{dead}-0123abcd.tmp"
    running = tmp_path / f".v.{_HOST}-{os.getppid()}-0123abcd.tmp"  # a live process: maybe
    other = tmp_path / ".v.ffffff-1-0123abcd.tmp"  # another host's: maybe still going on
    for folder in (left, running, other):
        folder.mkdir()
    zview.write_view(tmp_path / "v", {"a": np.arange(3)}, base=base, progress=False)
    assert not left.exists() and running.exists() and other.exists()
