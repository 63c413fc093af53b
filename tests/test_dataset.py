"""MetaDataset: edflow's base format on legacy .npy folders and zarr stores."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import zview
from zview.errors import IndexOutOfRangeError


def store_label_mmap(data: np.ndarray, root, name: str) -> None:
    """edflow's writer: a raw memmap named KEY-*-SHAPE-*-DTYPE.npy."""
    root.mkdir(parents=True, exist_ok=True)
    shape = "x".join(str(s) for s in data.shape)
    mm = np.memmap(root / f"{name}-*-{shape}-*-{data.dtype}.npy", dtype=data.dtype, mode="w+",
                   shape=data.shape)
    mm[:] = data
    mm.flush()


@pytest.fixture
def legacy(tmp_path):
    """An edflow folder with a sub-folder, a ``:image`` label and an ``np`` loader label."""
    root = tmp_path / "legacy"
    (root / "px").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((2, 3, 3), 60 * i, np.uint8)).save(root / "px" / f"{i}.png")
        np.save(root / "px" / f"{i}.npy", np.arange(i + 1))
    store_label_mmap(np.array([f"px/{i}.png" for i in range(4)]), root / "labels", "im:image")
    store_label_mmap(np.array([f"px/{i}.npy" for i in range(4)]), root / "labels", "arr")
    store_label_mmap(np.arange(8.0).reshape(4, 2), root / "labels" / "sub" / "deeper", "xy")
    (root / "meta.yaml").write_text("description: legacy\nloaders:\n  arr: np\n")
    return root


def test_legacy_labels_loaders_and_nesting(legacy):
    ds = zview.open(legacy)
    assert sorted(ds.labels) == ["arr_", "im_", "sub"]
    np.testing.assert_array_equal(ds.labels["sub"]["deeper"]["xy"][3], [6.0, 7.0])
    ex = ds[2]
    assert ex["im"].dtype == np.uint8 and ex["im"].shape == (2, 3, 3) and ex["im"].max() == 120
    np.testing.assert_array_equal(ex["arr"], [0, 1, 2])
    assert ex["index_"] == 2
    assert ex["labels_"]["im_"] == "px/2.png"


def test_indexing_forms(legacy):
    ds = zview.open(legacy)
    assert [e["index_"] for e in ds[1:4:2]] == [1, 3]
    assert [e["index_"] for e in ds[[3, 0]]] == [3, 0]
    picked = ds[np.array([2, 1])]
    assert [type(e["index_"]) for e in picked] == [np.int64, np.int64]
    ds.append_labels = False
    assert "labels_" not in ds[0]
    with pytest.raises(IndexOutOfRangeError, match=r"index 4 in index is outside \[0, 4\)"):
        ds[4]
    with pytest.raises(IndexOutOfRangeError, match="index -1"):
        ds[[0, -1]]
    with pytest.raises(TypeError, match="integers"):
        ds["a"]


def test_labels_are_read_only(legacy):
    ds = zview.open(legacy)
    row = ds.labels["sub"]["deeper"]["xy"][0]
    with pytest.raises(ValueError, match="read-only"):
        row[0] = 1.0


def test_image_supports_and_resize(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    Image.fromarray(np.array([[[0, 255, 51]]], np.uint8)).save(root / "a.png")
    for support, want in [("0->255", [0, 255, 51]), ("0->1", [0.0, 1.0, 0.2]),
                          ("-1->1", [-1.0, 1.0, -0.6])]:
        zview.write_dataset(root / support.replace(">", ""), {"im": np.array(["../a.png"])},
                            loaders={"im": "image"},
                            loader_kwargs={"im": {"support": support, "resize_to": 2}},
                            progress=False)
        image = zview.open(root / support.replace(">", ""))[0]["im"]
        assert image.shape == (2, 2, 3)
        np.testing.assert_allclose(image[0, 0], want, atol=1e-6)


def test_pickle_reopens(legacy):
    import pickle

    ds = zview.open(legacy)
    ds.append_labels = False
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.location == ds.location and clone.append_labels is False
    np.testing.assert_array_equal(clone[1]["arr"], [0, 1])
    assert len(pickle.dumps(ds)) < 2000  # the location and options, not the data
