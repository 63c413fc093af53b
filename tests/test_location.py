"""Every zview operation on every backend: a local folder, memory, a zip file and an S3 bucket.

The ``location`` fixture (tests/conftest.py) runs each test on all four; tests that only make
sense in a bucket take the ``s3`` fixture. The S3 backend is moto's server on loopback, reached
over HTTP through s3fs and zarr, found through ``AWS_ENDPOINT_URL`` alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import fsspec
import numpy as np
import pytest
import yaml

import zview
from tests._expected import FIXTURE, assert_same, expected
from tests._s3 import Faults, Proxy
from tests.conftest import BUCKET
from zview._location import Location
from zview.errors import RenderRequiredError, ZViewError

EXPECTED = expected()
ROOT = Path(__file__).resolve().parents[1]


def _labels(n: int = 40) -> dict:
    return {"pid": np.array([f"p{i % 7}" for i in range(n)]),
            "kps": np.arange(n * 6, dtype=np.float32).reshape(n, 3, 2),
            "nested": {"cls": np.arange(n, dtype=np.int64) % 5}}


def _views() -> dict:
    return {"frames": np.arange(36)[:, None] + np.arange(5),
            "single": np.arange(36)[::-1].copy()}


def _write_pair(base: str, view: str, options: dict | None = None, *, render: bool = True):
    zview.write_dataset(base, _labels(), description="base", storage_options=options,
                        progress=False)
    return zview.write_view(view, _views(), base=zview.open(base, storage_options=options),
                            labels={"score": np.linspace(0, 1, 36)}, render=render,
                            storage_options=options, progress=False)


def _files(location: str, options: dict | None = None) -> dict[str, bytes]:
    """Every file of the store at ``location``, by path (a zip's members for a zip)."""
    where = Location.resolve(location, options)
    fs, root = where.filesystem()
    return {f[len(root):].lstrip("/"): fs.cat_file(f) for f in fs.find(root or "/")}


def test_write_and_open_same_on_every_backend(location, tmp_path):
    _write_pair(location("base"), location("view"), location.storage_options)
    view = zview.open(location("view"), storage_options=location.storage_options)
    reference = tmp_path / "reference"
    _write_pair(str(reference / "base"), str(reference / "view"))
    want = zview.open(reference / "view")
    assert len(view) == len(want) == 36
    assert view.render_status() == {"frames": "complete", "single": "complete"}
    assert [f["index_"] for f in view[3]["frames"]] == [3, 4, 5, 6, 7]
    for i in (0, 3, 35):
        assert_same(view[i], want[i], f"view[{i}]")
    for got, ref in zip(view[[5, 0, 5]], want[[5, 0, 5]]):
        assert_same(got, ref)
    np.testing.assert_array_equal(view.labels["frames"]["kps"][3], _labels()["kps"][3:8])


def test_relative_roots_resolve_beside_the_view(location):
    _write_pair(location("base"), location("view"), location.storage_options)
    raw = Location.resolve(location("view"), location.storage_options).read_bytes("meta.yaml")
    root = yaml.safe_load(raw)["base_kwargs"]["root"]
    assert "://" not in root and not os.path.isabs(root), root
    view = zview.open(location("view"), storage_options=location.storage_options)
    assert view.base.location.url == Location.resolve(location("base")).url


def test_convert_edflow_fixture(location, edflow_copy):
    """The shared fixture, converted base and view side by side, gives edflow's examples."""
    # a zip holds one store; its base sits beside it as a folder
    base = location("base") if location.name != "zip" else f"{location.root}/base"
    view = location("view")
    zview.convert(edflow_copy / "base", base, destination_storage_options=location.storage_options,
                  progress=False)
    zview.convert(edflow_copy / "view", view, destination_storage_options=location.storage_options,
                  progress=False)
    shutil.rmtree(edflow_copy)  # from here on, only the converted stores can be read
    files = _files(base, location.storage_options)
    assert {f"images/{i:03d}.png" for i in range(24)} <= set(files)
    for name, where in (("base", base), ("view", view)):
        ds = zview.open(where, storage_options=location.storage_options)
        assert len(ds) == EXPECTED[name]["len"]
        for i, want in enumerate(EXPECTED[name]["examples"]):
            assert_same(ds[i], want, f"{name}[{i}]")
    opened = zview.open(view, storage_options=location.storage_options)
    assert opened.base.location.url == Location.resolve(base).url
    assert set(opened.render_status().values()) == {"complete"}


def test_zip_that_needs_rendering_says_how(tmp_path):
    _write_pair(str(tmp_path / "base"), str(tmp_path / "view.zip"), render=False)
    with pytest.raises(RenderRequiredError, match=r"zip is read-only: render it elsewhere"):
        zview.open(tmp_path / "view.zip")


# -- S3 only -------------------------------------------------------------------------------------
def test_standard_environment_finds_the_endpoint(s3):
    """Nothing but AWS_ENDPOINT_URL points s3fs at the server (as for any S3-compatible service)."""
    assert os.environ["AWS_ENDPOINT_URL"] == s3.endpoint
    zview.write_dataset(f"s3://{BUCKET}/env", _labels(), progress=False)
    fs = fsspec.filesystem("s3", endpoint_url=s3.endpoint)
    assert fs.exists(f"{BUCKET}/env/meta.yaml") and fs.exists(f"{BUCKET}/env/zarr.json")


def test_credentials_never_stored(s3):
    options = {"key": "AKIAZVIEWSENTINEL", "secret": "zview-secret-sentinel",
               "client_kwargs": {"region_name": "us-east-1"}}
    root = f"s3://{BUCKET}/creds"
    _write_pair(f"{root}/base", f"{root}/view", options)
    zview.convert(f"{root}/view", f"{root}/copy", storage_options=options, progress=False)
    files = {**_files(f"{root}/view", options), **_files(f"{root}/copy", options)}
    assert "meta.yaml" in files and "zarr.json" in files
    for path, data in files.items():
        for secret in (b"AKIAZVIEWSENTINEL", b"zview-secret-sentinel"):
            assert secret not in data, f"{secret!r} written into {path}"


def test_read_only_bucket_that_needs_rendering_says_how(s3):
    root = f"s3://{BUCKET}/ro"
    _write_pair(f"{root}/base", f"{root}/view", render=False)
    import boto3

    client = boto3.client("s3")
    for key in _files(f"{root}/view"):  # moto serves objects to anonymous callers by their ACL
        client.put_object_acl(Bucket=BUCKET, Key=f"ro/view/{key}", ACL="public-read")
    for key in _files(f"{root}/base"):
        client.put_object_acl(Bucket=BUCKET, Key=f"ro/base/{key}", ACL="public-read")
    proxy = Proxy(s3.endpoint)  # moto lets anyone write: the proxy refuses as S3 would
    proxy.faults = Faults(rate=1.0, limit=10**6, methods=("PUT", "POST", "DELETE"),
                          kinds=("403",))
    before = _files(f"{root}/view")
    try:
        options = {"anon": True, "endpoint_url": proxy.endpoint}
        with pytest.raises(RenderRequiredError, match=r"render it where it can be written"):
            zview.open(f"{root}/view", storage_options=options)
        assert proxy.faults.injected, "the open never tried to write"
    finally:
        proxy.stop()
    assert _files(f"{root}/view") == before
