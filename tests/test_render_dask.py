"""Rendering on Dask: every output region a task on a worker process, identical to serial."""

from __future__ import annotations

import importlib
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import zview

render_module = importlib.import_module("zview.render")  # zview.render is the function

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        # distributed's start-up may warn about its dashboard or a free port on a shared
        # machine; the cluster itself is what the tests check
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
        client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def _pair(root: Path, *, rows: int) -> tuple[str, str]:
    """A base with float, integer and string labels, and a view of several leaves over it."""
    rng = np.random.default_rng(0)
    n = rows
    base = zview.write_dataset(root / "base", {
        "kps": rng.random((n, 17, 2), dtype=np.float32),
        "feat": rng.random((n, 128), dtype=np.float32),  # 2048 rows a chunk: several chunks
        "cls": rng.integers(0, 9, n),
        "name": np.array([f"frame{i:06d}" for i in range(n)]),
    }, progress=False)
    m = n - 4
    views = {"frames": np.arange(m)[:, None] + np.arange(5),
             "appearance": rng.integers(0, n, m),
             "pair": [rng.integers(0, n, m), np.arange(m)[::-1].copy()]}
    serial, parallel = str(root / "serial"), str(root / "dask")
    for where in (serial, parallel):
        zview.write_view(where, views, base=zview.open(base), render=False, progress=False)
    return serial, parallel


def _rendered_files(store: str) -> dict[str, bytes]:
    folder = os.path.join(store, "rendered")
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


def test_dask_render_equals_serial_byte_for_byte(client, tmp_path, monkeypatch):
    # a task per chunk: many tasks, so the work really spreads over both workers
    monkeypatch.setattr(render_module, "REGION_CHUNKS", 1)
    serial, parallel = _pair(tmp_path, rows=12_000)
    assert set(zview.render(serial, progress=False).values()) == {"complete"}
    status = zview.render(parallel, progress=False, dask=client)
    assert set(status.values()) == {"complete"}
    a, b = _rendered_files(serial), _rendered_files(parallel)
    assert len(a) > 40 and a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]][:5]
    s, d = zview.open(serial), zview.open(parallel)
    for leaf in ("frames", "appearance", "pair/0", "pair/1"):
        for key in ("kps", "feat", "cls", "name"):
            x = np.asarray(s._rendered[leaf][key])
            np.testing.assert_array_equal(x, np.asarray(d._rendered[leaf][key]))
    assert s[7]["labels_"]["frames"]["name"].tolist() == [f"frame{i:06d}" for i in range(7, 12)]


def test_dask_render_by_scheduler_address(client, tmp_path):
    _, parallel = _pair(tmp_path, rows=200)
    status = zview.render(parallel, progress=False, dask=client.scheduler.address)
    assert set(status.values()) == {"complete"}
    assert len(zview.open(parallel, render=False)[3]["frames"]) == 5


def test_dask_render_marks_complete_only_when_every_chunk_is_written(client, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setattr(render_module, "REGION_CHUNKS", 1)
    _, parallel = _pair(tmp_path, rows=6000)
    real = render_module._run_on_dask

    def lose_a_region(view, regions, dask, progress):  # a worker that died mid-render
        real(view, regions[1:], dask, progress)

    monkeypatch.setattr(render_module, "_run_on_dask", lose_a_region)
    with pytest.raises(zview.errors.ZViewError, match="unwritten"):
        zview.render(parallel, progress=False, dask=client)
    with pytest.raises(zview.errors.ZViewError, match=r"not rendered|render"):
        zview.open(parallel, render=False)
    monkeypatch.setattr(render_module, "_run_on_dask", real)
    status = zview.render(parallel, progress=False, dask=client)  # resumes: the rest only
    assert set(status.values()) == {"complete"}
    assert zview.open(parallel, render=False)[0]["index_"] == 0


def test_dask_convert_equals_serial(client, tmp_path):
    """An edflow view converted with its render on Dask: the same store as a serial convert."""
    from tests._expected import FIXTURE

    for name in ("base", "view"):
        shutil.copytree(FIXTURE / name, tmp_path / name)
    serial = zview.convert(tmp_path / "view", tmp_path / "serial", progress=False)
    parallel = zview.convert(tmp_path / "view", tmp_path / "dask", progress=False,
                             dask=client.scheduler.address)
    assert set(zview.open(parallel).render_status().values()) == {"complete"}
    a, b = _rendered_files(str(serial)), _rendered_files(str(parallel))
    assert a and a.keys() == b.keys() and all(a[k] == b[k] for k in a)
