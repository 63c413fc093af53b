"""A bucket-backed view in worker processes: DataLoader (fork and spawn) and multiprocessing.

The dataset pickles as its location and options and reopens itself in the worker; the worker
finds the S3 endpoint through the inherited ``AWS_ENDPOINT_URL``, as it would find AWS.
"""

from __future__ import annotations

import multiprocessing
import pickle

import numpy as np
import pytest

import zview
from tests.conftest import BUCKET

N = 30


@pytest.fixture
def s3_view(s3) -> str:
    root = f"s3://{BUCKET}/workers"
    zview.write_dataset(f"{root}/base", {"value": np.arange(100) * 10,
                                         "name": np.array([f"n{i}" for i in range(100)])},
                        progress=False)
    zview.write_view(f"{root}/view", {"pair": np.arange(N)[:, None] * 3 + np.arange(2)},
                     base=f"{root}/base", progress=False)
    return f"{root}/view"


def _as_list(batch: list) -> list:  # module level: spawned workers unpickle it
    return batch


def _values(example: dict) -> list[int]:
    return [int(b["index_"]) for b in example["pair"]]


def test_pickles_as_its_location(s3_view):
    view = zview.open(s3_view)
    view[0]  # a warm cache and open connections must not travel
    data = pickle.dumps(view)
    assert len(data) < 2000
    again = pickle.loads(data)
    assert again.location.url == s3_view and _values(again[4]) == [12, 13]


def _first_values(location: str, i: int) -> tuple[int, list[int]]:
    view = zview.open(location)
    return i, [int(v) for v in view.labels["pair"]["value"][i]]


def _from_pickled(view, i: int) -> list[int]:
    return _values(view[i])


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_pool(s3_view, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.fail(f"{method} is not available here")
    view = zview.open(s3_view)
    view[1]  # the parent has used its connections before the workers start
    with multiprocessing.get_context(method).Pool(2) as pool:
        opened = dict(pool.starmap(_first_values, [(s3_view, i) for i in range(0, N, 7)]))
        sent = pool.starmap(_from_pickled, [(view, i) for i in range(N)])
    assert opened == {i: [30 * i, 30 * i + 10] for i in range(0, N, 7)}
    assert sent == [[3 * i, 3 * i + 1] for i in range(N)]


@pytest.mark.torch  # CI runs it on the Python 3.11 leg, where torch is installed
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_dataloader_workers(s3_view, method):
    import torch
    from torch.utils.data import DataLoader

    view = zview.open(s3_view)
    view[0]  # the parent's event loop and sessions exist before the fork
    loader = DataLoader(view, batch_size=4, num_workers=2, shuffle=False,
                        multiprocessing_context=method, collate_fn=_as_list)
    seen = [ex for batch in loader for ex in batch]
    assert [ex["index_"] for ex in seen] == list(range(N))
    assert [_values(ex) for ex in seen] == [[3 * i, 3 * i + 1] for i in range(N)]
    assert [str(ex["labels_"]["pair"]["name"][1]) for ex in seen[:3]] == ["n1", "n4", "n7"]
    assert torch.utils.data.get_worker_info() is None  # the parent is not a worker
