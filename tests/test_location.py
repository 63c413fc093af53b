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
from tests._expected import assert_same, expected
from tests._s3 import Faults, Proxy
from tests.conftest import BUCKET
from zview._location import Location
from zview.errors import BaseBuildError, RenderRequiredError, StoreUnreachableError

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
    for got, ref in zip(view[[5, 0, 5]], want[[5, 0, 5]], strict=True):
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


# -- request budget ------------------------------------------------------------------------------
_CHILD = textwrap.dedent("""
    import sys
    import zview

    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "open":
            view = zview.open(sys.argv[1])
        else:
            view[int(line)]
        print("done", flush=True)
""")


@pytest.fixture
def proxy(s3):
    """A counting proxy in front of the S3 server."""
    proxy = Proxy(s3.endpoint)
    yield proxy
    proxy.stop()


def test_request_budget_from_a_fresh_process(s3, proxy):
    """Open: the two metadata documents of view and base. Cold read: each chunk once. Warm: 0."""
    root = f"s3://{BUCKET}/budget"
    n = 50
    labels = {f"label{k}": np.arange(n * (k + 1)).reshape(n, k + 1) for k in range(4)}
    zview.write_dataset(f"{root}/base", labels, progress=False)
    views = {f"v{k}": (np.arange(n - 5)[:, None] + np.arange(k + 1)) for k in range(3)}
    zview.write_view(f"{root}/view", views, base=f"{root}/base", progress=False,
                     labels={"own": np.arange(n - 5), "other": np.ones(n - 5)})
    arrays = [k for k, v in _files(f"{root}/view").items() if k.endswith("zarr.json")
              and yaml.safe_load(v)["node_type"] == "array"]
    assert len(arrays) == 3 + 2 + 3 * 4  # index arrays, own labels, rendered labels

    env = {**os.environ, "AWS_ENDPOINT_URL": proxy.endpoint}
    seen = {}
    with subprocess.Popen([sys.executable, "-c", _CHILD, f"{root}/view"], env=env, cwd=ROOT,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout.readline() == "ready\n"
        for step, command in (("open", "open"), ("cold", "7"), ("warm", "7")):
            proxy.requests.clear()
            child.stdin.write(command + "\n")
            child.stdin.flush()
            assert child.stdout.readline() == "done\n", f"{step} failed in the child"
            seen[step] = list(proxy.requests)
        child.stdin.close()
    assert seen["open"] == [("GET", f"/{BUCKET}/budget/view/meta.yaml"),
                            ("GET", f"/{BUCKET}/budget/view/zarr.json"),
                            ("GET", f"/{BUCKET}/budget/base/meta.yaml"),
                            ("GET", f"/{BUCKET}/budget/base/zarr.json")]
    cold = seen["cold"]
    assert {m for m, _ in cold} == {"GET"} and not any("?" in p for _, p in cold), cold
    assert len(cold) == len(set(cold)), "a chunk was read twice"
    prefix = f"/{BUCKET}/budget/view/"
    read = sorted(p[len(prefix):].split("/c/")[0] for _, p in cold)
    assert read == sorted(a[: -len("/zarr.json")] for a in arrays)  # every array, one chunk
    assert seen["warm"] == []


def test_base_inherits_the_views_storage_options_unless_given_its_own(s3, proxy):
    """By default the base is read with the view's options (here: through the proxy); with
    ``base_storage_options`` the base gets only those, and a worker's copy keeps them."""
    import pickle

    root = f"s3://{BUCKET}/own"
    zview.write_dataset(f"{root}/base", {"x": np.arange(10) * 3}, progress=False)
    zview.write_view(f"{root}/view", {"v": np.arange(5)[::-1]}, base=f"{root}/base",
                     progress=False)
    through_proxy = {"endpoint_url": proxy.endpoint}

    def read(**options) -> set[str]:
        proxy.requests.clear()
        view = zview.open(f"{root}/view", storage_options=through_proxy, **options)
        assert view[1]["v"]["index_"] == 3 and view.labels["v"]["x"][1] == 9
        return {path.split("/")[3] for _, path in proxy.requests}

    assert read() == {"view", "base"}
    assert read(base_storage_options={}) == {"view"}  # the base straight from the server
    direct = zview.open(f"{root}/view", storage_options=through_proxy, base_storage_options={})
    assert pickle.loads(pickle.dumps(direct)).base.location.storage_options == {}
    with pytest.raises(BaseBuildError, match=r"127\.0\.0\.1:9") as caught:  # they reach the base
        zview.open(f"{root}/view", base_storage_options={
            "endpoint_url": "http://127.0.0.1:9",
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1}})
    assert isinstance(caught.value.__cause__, StoreUnreachableError)
    assert caught.value.__cause__.store == f"{root}/base"


# -- faults --------------------------------------------------------------------------------------
def _assert_complete_and_correct(view_url: str, reference: zview.MetaViewDataset) -> None:
    """Marked complete, every chunk of every rendered array present, the reference's examples."""
    view = zview.open(view_url, render=False)
    assert set(view.render_status().values()) == {"complete"}
    fs, root = Location.resolve(view_url).filesystem()
    keys = {k[len(root) + 1:] for k in fs.find(root)}
    for path, array in view._rendered.items():
        for key, label in array.items():
            chunks = {k for k in keys if k.startswith(f"rendered/{path}/{key}/c/")}
            assert len(chunks) == label.nchunks(), f"rendered/{path}/{key}: {sorted(chunks)}"
    assert len(view) == len(reference)
    for i in range(len(view)):
        assert_same(view[i], reference[i], f"view[{i}]")


@pytest.mark.parametrize("seed", [0, 1])
def test_render_through_transient_faults(s3, proxy, tmp_path, seed):
    """A share of requests fails or is dropped; retries get the render through, correct."""
    root = f"s3://{BUCKET}/faults"
    zview.write_dataset(f"{root}/base", _labels(), progress=False)
    proxy.faults = Faults(rate=0.15, limit=5, seed=seed, kinds=("500", "503", "drop"))
    zview.write_view(f"{root}/view", _views(), base=f"{root}/base", progress=False,
                     labels={"score": np.linspace(0, 1, 36)},
                     storage_options={"endpoint_url": proxy.endpoint})
    assert len(proxy.faults.injected) == 5
    _write_pair(str(tmp_path / "base"), str(tmp_path / "view"))
    _assert_complete_and_correct(f"{root}/view", zview.open(tmp_path / "view"))


def test_render_cut_off_resumes(s3, proxy, tmp_path):
    """A chunk that cannot be written stops the render; it is not marked complete, and a
    later render writes only what is missing."""
    root = f"s3://{BUCKET}/cut"
    n = 3000
    labels = {"kps": np.arange(n * 80, dtype=np.float32).reshape(n, 40, 2),
              "cls": np.arange(n) % 7}
    windows = {"frames": np.arange(n - 4)[:, None] + np.arange(5)}
    zview.write_dataset(f"{root}/base", labels, progress=False)
    zview.write_view(f"{root}/view", windows, base=f"{root}/base", render=False, progress=False)
    target = "/rendered/frames/kps/c/2/"
    proxy.faults = Faults(rate=1.0, limit=10**6, methods=("PUT",), kinds=("503",),
                          paths=(target,))
    fail_fast = {"endpoint_url": proxy.endpoint,  # s3fs still retries; botocore need not
                 "config_kwargs": {"retries": {"max_attempts": 1}}}
    with pytest.raises(StoreUnreachableError, match=r"rendered/frames/kps.*zview render"):
        zview.render(f"{root}/view", storage_options=fail_fast, progress=False)
    fs, path = Location.resolve(f"{root}/view").filesystem()
    fs.invalidate_cache()
    kept = {k[len(path):] for k in fs.find(path) if "/c/" in k and "/rendered/" in k}
    assert "/rendered/frames/kps/c/2/0/0/0" not in kept
    view = zview.open(f"{root}/view", render=False, _rendered=False)
    assert view.render_status() == {"frames": "incomplete"}
    with pytest.raises(RenderRequiredError, match="zview render"):
        zview.open(f"{root}/view", render=False)

    proxy.clear()
    assert zview.render(f"{root}/view", storage_options={"endpoint_url": proxy.endpoint},
                        progress=False) == {"frames": "complete"}
    rewritten = {p[len(f"/{BUCKET}/cut/view"):] for m, p in proxy.requests
                 if m == "PUT" and "/c/" in p}
    assert "/rendered/frames/kps/c/2/0/0/0" in rewritten
    assert kept and not rewritten & kept, "chunks written before were written again"
    zview.write_dataset(str(tmp_path / "base"), labels, progress=False)
    zview.write_view(str(tmp_path / "view"), windows, base=str(tmp_path / "base"),
                     progress=False)
    _assert_complete_and_correct(f"{root}/view", zview.open(tmp_path / "view"))


# -- command line --------------------------------------------------------------------------------
def test_cli_storage_option_reaches_the_bucket(s3, proxy, edflow_copy, capsys):
    """``--storage-option endpoint_url=...`` sends the CLI's requests where it says."""
    from zview.cli import main

    options = ["--storage-option", f"endpoint_url={proxy.endpoint}"]
    root = f"s3://{BUCKET}/cli"
    assert main(["convert", str(edflow_copy / "base"), f"{root}/base", *options]) == 0
    assert any(m == "PUT" and p.startswith(f"/{BUCKET}/cli/base/") for m, p in proxy.requests)
    proxy.clear()
    assert main(["info", f"{root}/base", *options]) == 0
    assert proxy.requests[:2] == [("GET", f"/{BUCKET}/cli/base/meta.yaml"),
                                  ("GET", f"/{BUCKET}/cli/base/zarr.json")]
    assert "24" in capsys.readouterr().out


def test_base_given_as_url_is_opened_with_the_views_options(s3, monkeypatch):
    """write_view(base="s3://...", storage_options=...) reaches the base with those options."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # only the options know the endpoint now
    options = {"endpoint_url": s3.endpoint}
    root = f"s3://{BUCKET}/by-url"
    zview.write_dataset(f"{root}/base", {"x": np.arange(10)}, storage_options=options,
                        progress=False)
    zview.write_view(f"{root}/view", {"a": np.arange(10)[::-1]}, base=f"{root}/base",
                     storage_options=options, progress=False)
    view = zview.open(f"{root}/view", storage_options=options)
    np.testing.assert_array_equal(view.labels["a"]["x"], np.arange(10)[::-1])


def test_s3_defaults_yield_to_the_callers_options(s3):
    """zview's s3fs defaults (no HEAD before a GET; botocore's second checksum off, as every
    chunk has zarr's CRC32C) reach the filesystem, and a caller's own choice wins."""
    fs, _ = Location.resolve(f"s3://{BUCKET}/x").filesystem()
    assert fs.config_kwargs["response_checksum_validation"] == "when_required"
    assert fs.max_concurrency == 1
    mine = {"config_kwargs": {"response_checksum_validation": "when_supported"},
            "max_concurrency": 4}
    fs, _ = Location.resolve(f"s3://{BUCKET}/x", mine).filesystem()
    assert fs.config_kwargs["response_checksum_validation"] == "when_supported"
    assert fs.max_concurrency == 4
