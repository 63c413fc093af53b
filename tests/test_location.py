"""Every zview operation on every backend: a local folder, memory, a zip file and an S3 bucket."""

from __future__ import annotations

import numpy as np

import zview


def _labels(n: int = 40) -> dict:
    return {"pid": np.array([f"p{i % 7}" for i in range(n)]),
            "kps": np.arange(n * 6, dtype=np.float32).reshape(n, 3, 2),
            "nested": {"cls": np.arange(n, dtype=np.int64) % 5}}


def test_write_and_open(location):
    base = zview.write_dataset(location("base"), _labels(), description="base",
                               storage_options=location.storage_options, progress=False)
    windows = np.arange(36)[:, None] + np.arange(5)
    zview.write_view(location("view"), {"frames": windows, "single": np.arange(36)[::-1].copy()},
                     base=zview.open(base), storage_options=location.storage_options,
                     progress=False)
    view = zview.open(location("view"), storage_options=location.storage_options)
    assert len(view) == 36
    ex = view[3]
    assert [f["index_"] for f in ex["frames"]] == [3, 4, 5, 6, 7]
    assert ex["single"]["index_"] == 32
    np.testing.assert_array_equal(view.labels["frames"]["kps"][3], _labels()["kps"][3:8])
