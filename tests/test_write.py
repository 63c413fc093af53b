"""Writing: checks before anything is written, layout, compression, replacing stores."""

from __future__ import annotations

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
