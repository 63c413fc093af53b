"""The command line, run as a user runs it: in a subprocess, from the installed entry point."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

import zview
from tests._expected import FIXTURE, assert_same, expected

ZVIEW = shutil.which("zview") or f"{sys.executable} -m zview.cli"


def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*ZVIEW.split(), *map(str, args)], capture_output=True, text=True,
                            timeout=120)
    assert (result.returncode == 0) == ok, result.stderr + result.stdout
    return result


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "demo-store"
    result = run("demo", path, "--videos", "3", "--frames", "20", "--no-progress")
    return path, result.stdout


def test_demo_explains_itself(demo):
    path, out = demo
    for phrase in ("60 frames", "48 examples", "as edflow .npy", "example 0", "frames[4]",
                   "person", "zview.open("):
        assert phrase in out
    view = zview.open(path / "walk")
    assert len(view) == 3 * (20 - 4) and len(view.base) == 60
    assert [int(f["index_"]) for f in view[0]["frames"]] == [0, 1, 2, 3, 4]


def test_info_and_validate(demo):
    path, _ = demo
    out = run("info", path / "walk").stdout
    assert "view frames: labels/views/frames (48, 5) [complete]" in out
    assert run("validate", path / "walk").stdout.strip().endswith("valid")


def test_validate_names_problems_and_fails(demo, tmp_path):
    broken = tmp_path / "walk"
    shutil.copytree(demo[0] / "walk", broken)
    shutil.copytree(demo[0] / "base", tmp_path / "base")
    chunk = next((broken / "rendered" / "frames" / "keypoints" / "c").rglob("*"))
    while chunk.is_dir():
        chunk = next(chunk.iterdir())
    chunk.unlink()
    result = run("validate", broken, ok=False)
    assert "rendered/frames/keypoints" in result.stdout and "MissingChunkError" in result.stdout
    assert "1 problem(s)" in result.stdout


def test_convert_then_render_and_errors(tmp_path):
    run("convert", FIXTURE / "base", tmp_path / "base", "--no-progress")
    out = run("convert", FIXTURE / "view", tmp_path / "view", "--no-progress").stdout
    assert "identical" in out
    view = zview.open(tmp_path / "view")
    assert_same(view[3], expected()["view"]["examples"][3])
    assert "frames: complete" in run("render", tmp_path / "view", "--force", "--no-progress").stdout
    err = run("convert", FIXTURE / "view", tmp_path / "view", ok=False).stderr
    assert "StoreExistsError" in err and "--overwrite" in err
    err = run("info", tmp_path / "nothing-here", ok=False).stderr
    assert "StoreNotFoundError" in err and "nothing-here" in err


def test_help_answers():
    out = run("--help").stdout
    for command in ("demo", "info", "show", "render", "convert", "validate", "--storage-option"):
        assert command in out
    assert "--dask" in run("render", "--help").stdout


def test_storage_options_nest_and_parse():
    from zview.cli import _storage_option, storage_options

    pairs = [_storage_option("anon=true"), _storage_option("client_kwargs.region_name=eu-1")]
    assert storage_options(pairs) == {"anon": True, "client_kwargs": {"region_name": "eu-1"}}


def test_show_and_info_take_a_dataset_that_is_no_view():
    for command in ("show", "info"):
        out = run(command, FIXTURE / "base", "--no-progress").stdout
        assert "MetaDataset" in out and "24" in out, out


@pytest.mark.s3
def test_base_storage_option_reaches_the_base(s3, tmp_path):
    """A local view of a base in a bucket: options given for the base go to it alone."""
    from tests.conftest import BUCKET

    base = f"s3://{BUCKET}/cli/base"
    zview.write_dataset(base, {"x": np.arange(10)}, progress=False)
    zview.write_view(tmp_path / "view", {"v": np.arange(4)}, base=base, progress=False)
    assert "4 examples" in run("info", tmp_path / "view").stdout
    result = run("info", tmp_path / "view", "--base-storage-option",
                 "endpoint_url=http://127.0.0.1:9", "--base-storage-option",
                 "config_kwargs.retries.max_attempts=1", ok=False)
    assert "BaseBuildError" in result.stderr and "127.0.0.1:9" in result.stderr, result.stderr
