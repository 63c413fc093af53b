"""Nothing lost: a write, render or convert killed with SIGKILL leaves a readable old state or a
resumable one that says it is incomplete, and ``zview.render`` then completes it correctly.

Each operation runs in a subprocess that imports zview, says ``ready`` and starts; the test kills
it after a seeded random delay spread over the operation's measured duration, then checks what
is left. No hook in zview is involved: the kill can land anywhere.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import zview
from tests.conftest import BUCKET
from zview import errors

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

N = 60_000
M = 50_000
KILLS = 6

WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    import zview

    op, *args = sys.argv[1:]
    if op == "write_view":
        views = {k: np.load(f"{args[2]}/{k}.npy") for k in ("seq", "one")}
    print("ready", flush=True)
    if op == "render":
        zview.render(args[0], progress=False)
    elif op == "write_view":
        zview.write_view(args[0], views, base=args[1], overwrite=True, progress=False)
    elif op == "convert":
        zview.convert(args[0], args[1], overwrite=True, progress=False)
    elif op == "store_label":
        zview.store_label(args[0], "feat", np.load(args[1]), overwrite=True)
    print("done", flush=True)
""")


def base_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"feat": rng.random((N, 16), dtype=np.float32), "cls": rng.integers(0, 10, N)}


def view_arrays(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    start = rng.integers(0, 10)
    return {"seq": start + np.arange(M)[:, None] + np.arange(4),
            "one": rng.integers(0, N, M)}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("kill")
    base = base_arrays()
    zview.write_dataset(root / "base", base, progress=False)
    old, new = view_arrays(1), view_arrays(2)
    zview.write_view(root / "template", old, base=str(root / "base"), render=False,
                     progress=False)
    (root / "new").mkdir()
    for key, array in new.items():
        np.save(root / "new" / f"{key}.npy", array)
    return {"root": root, "base": base, "old": old, "new": new}


@pytest.fixture(autouse=True)
def _base_beside(data, tmp_path):
    """Copies of the template find the base at ``../base``, as the template does."""
    (tmp_path / "base").symlink_to(data["root"] / "base")


def start(op: str, *args: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", WORKER, op, *map(str, args)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    assert line == "ready\n", (line, process.stderr.read())
    return process


def finish(process: subprocess.Popen) -> None:
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err


def duration(op: str, *args: str) -> float:
    """How long ``op`` takes after ``ready``: the span the kills are spread over."""
    process = start(op, *args)
    began = time.perf_counter()
    finish(process)
    return time.perf_counter() - began


def kill_after(op: str, delay: float, *args: str) -> bool:
    """Run ``op`` and SIGKILL it ``delay`` seconds after ``ready``; ``True`` if it was killed."""
    process = start(op, *args)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    return process.returncode == -signal.SIGKILL


def delays(span: float, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    edges = np.linspace(0, span * 1.1, KILLS + 1)
    return [float(rng.uniform(a, b)) for a, b in itertools.pairwise(edges)]


def assert_view(location, views: dict, base: dict) -> None:
    """Complete, valid, and every rendered label is the base's label taken through the view."""
    ds = zview.open(location, render=False)
    assert set(ds.render_status().values()) == {"complete"}
    assert zview.validate(location) == []
    assert len(ds) == M
    for leaf, index in views.items():
        assert np.array_equal(np.asarray(ds.views[leaf]), index)
        for key, array in base.items():
            assert np.array_equal(np.asarray(ds.labels[leaf][key]), array[index]), (leaf, key)
    for i in (0, M // 2, M - 1):
        example = ds[i]
        assert example["one"]["index_"] == views["one"][i]
        assert example["labels_"]["one"]["cls"] == base["cls"][views["one"][i]]


def assert_resumable(location) -> str:
    """A killed render: either complete, or it says so everywhere. Returns the state seen."""
    status = zview.open(location, render=False, _rendered=False).render_status()
    if set(status.values()) == {"complete"}:
        return "complete"
    assert set(status.values()) <= {"missing", "incomplete"}, status
    with pytest.raises(errors.RenderRequiredError, match="are not rendered"):
        zview.open(location, render=False)
    problems = zview.validate(location)
    assert any("are incomplete" in p or "are missing" in p for p in problems), problems
    return "incomplete"


# -- local ------------------------------------------------------------------------------------
def test_render_killed_resumes(data, tmp_path):
    template = data["root"] / "template"
    work = tmp_path / "view"
    shutil.copytree(template, work)
    span = duration("render", work)
    seen = []
    for i, delay in enumerate(delays(span, seed=10)):
        store = tmp_path / f"v{i}"
        shutil.copytree(template, store)
        kill_after("render", delay, store)
        seen.append(assert_resumable(store))
        zview.render(store, progress=False)
        assert_view(store, data["old"], data["base"])
    assert "incomplete" in seen, f"no kill landed inside the render ({span:.2f} s)"


def test_render_killed_twice_resumes(data, tmp_path):
    """A resumed render killed again still resumes: kept chunks are never rewritten wrong."""
    store, probe = tmp_path / "view", tmp_path / "probe"
    shutil.copytree(data["root"] / "template", store)
    shutil.copytree(data["root"] / "template", probe)
    span = duration("render", probe)
    for delay in (span * 0.3, span * 0.3, span * 0.5):
        kill_after("render", delay, store)
        assert_resumable(store)
    zview.render(store, progress=False)
    assert_view(store, data["old"], data["base"])


def test_write_view_overwrite_killed_keeps_old_or_new(data, tmp_path):
    template = data["root"] / "template"
    base, new = data["root"] / "base", data["root"] / "new"
    rendered = tmp_path / "rendered"
    shutil.copytree(template, rendered)
    zview.render(rendered, progress=False)
    probe = tmp_path / "probe"
    shutil.copytree(rendered, probe)
    span = duration("write_view", probe, base, new)
    seen = []
    for i, delay in enumerate(delays(span, seed=20)):
        store = tmp_path / f"v{i}"
        shutil.copytree(rendered, store)
        kill_after("write_view", delay, store, base, new)
        # the new store is published before it is rendered in place: killed during that
        # render, it is the new store, resumable; before it, the old one, untouched
        ds = zview.open(store, render=False, _rendered=False)
        which = "new" if np.array_equal(np.asarray(ds.views["one"]), data["new"]["one"]) else "old"
        assert np.array_equal(np.asarray(ds.views["seq"]), data[which]["seq"])
        state = assert_resumable(store)
        seen.append(f"{which}, {state}")
        if state == "incomplete":
            assert which == "new"
            zview.render(store, progress=False)
        assert_view(store, data[which], data["base"])
    assert "old, complete" in seen, seen
    # killed builds leave hidden folders beside their stores, which the next write removes
    assert all(name.startswith(".") or name in {"rendered", "probe", "base"} or name[0] == "v"
               for name in os.listdir(tmp_path))
    for i in range(KILLS):
        zview.write_view(tmp_path / f"v{i}", data["new"], base=base, overwrite=True,
                         render=False, progress=False)
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]


def legacy_folder(root: Path, base: dict) -> Path:
    """An edflow dataset folder of the big base: raw memmaps named KEY-*-SHAPE-*-DTYPE.npy."""
    folder = root / "legacy"
    (folder / "labels").mkdir(parents=True)
    (folder / "meta.yaml").write_text("description: big\n")
    for key, array in base.items():
        shape = "x".join(map(str, array.shape))
        array.tofile(folder / "labels" / f"{key}-*-{shape}-*-{array.dtype}.npy")
    return folder


def test_convert_killed_keeps_old_or_new(data, tmp_path):
    source = legacy_folder(tmp_path, data["base"])
    old = tmp_path / "old"
    zview.write_dataset(old, {"cls": np.arange(5)}, progress=False)
    probe = tmp_path / "probe"
    span = duration("convert", source, probe)
    seen = []
    for i, delay in enumerate(delays(span, seed=30)):
        store = tmp_path / f"c{i}"
        shutil.copytree(old, store)
        kill_after("convert", delay, source, store)
        ds = zview.open(store)
        if len(ds) == 5:
            seen.append("old")
            assert np.array_equal(np.asarray(ds.labels["cls"]), np.arange(5))
        else:
            seen.append("new")
            for key, array in data["base"].items():
                assert np.array_equal(np.asarray(ds.labels[key]), array)
        assert zview.validate(store) == []
    assert "old" in seen


def test_store_label_killed_says_so(data, tmp_path):
    """Replacing a label killed half-way: the store says which label is unfinished until
    ``store_label`` runs again; it never serves half of one as whole."""
    rng = np.random.default_rng(3)
    new = rng.random((N, 16), dtype=np.float32).round(1)  # other values, other codecs
    np.save(tmp_path / "feat.npy", new)
    probe = tmp_path / "probe"
    shutil.copytree(data["root"] / "base", probe)
    span = duration("store_label", probe, tmp_path / "feat.npy")
    seen = []
    for i, delay in enumerate(delays(span, seed=70)):
        store = tmp_path / f"b{i}"
        shutil.copytree(data["root"] / "base", store)
        kill_after("store_label", delay, store, tmp_path / "feat.npy")
        try:
            feat = np.asarray(zview.open(store).labels["feat"])
        except errors.IncompleteStoreError as e:
            assert e.value == ["feat"] and "store_label" in str(e)
            seen.append("unfinished")
            zview.store_label(store, "feat", new, overwrite=True)
            feat = np.asarray(zview.open(store).labels["feat"])
        else:
            seen.append("old" if np.array_equal(feat, data["base"]["feat"]) else "new")
        assert np.array_equal(feat, data["base"]["feat"] if seen[-1] == "old" else new)
        assert zview.validate(store) == []
    assert "unfinished" in seen, seen


def test_two_renders_at_once(data, tmp_path):
    store = tmp_path / "view"
    shutil.copytree(data["root"] / "template", store)
    first, second = start("render", store), start("render", store)
    for process in (first, second):
        _out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
    assert_view(store, data["old"], data["base"])


def test_render_after_kill_while_another_runs(data, tmp_path):
    store = tmp_path / "view"
    shutil.copytree(data["root"] / "template", store)
    survivor = start("render", store)
    kill_after("render", 0.1, store)
    finish(survivor)
    zview.render(store, progress=False)
    assert_view(store, data["old"], data["base"])


# -- S3 ------------------------------------------------------------------------------------------
def bucket_base(data: dict, prefix: str) -> str:
    """The base of these tests, written to ``s3://BUCKET/PREFIX/base``."""
    base = f"s3://{BUCKET}/{prefix}/base"
    zview.write_dataset(base, data["base"], progress=False)
    return base


@pytest.mark.s3
def test_render_killed_resumes_on_s3(data, s3):
    base = bucket_base(data, "kill")
    probe = f"s3://{BUCKET}/kill/probe"
    zview.write_view(probe, data["old"], base=base, render=False, progress=False)
    span = duration("render", probe)
    seen = []
    for i, delay in enumerate(delays(span, seed=40)[::2]):
        store = f"s3://{BUCKET}/kill/v{i}"
        zview.write_view(store, data["old"], base=base, render=False, progress=False)
        kill_after("render", delay, store)
        seen.append(assert_resumable(store))
        zview.render(store, progress=False)
        assert_view(store, data["old"], data["base"])
    assert "incomplete" in seen, f"no kill landed inside the render ({span:.2f} s)"


@pytest.mark.s3
def test_write_view_killed_on_s3(data, s3):
    """A bucket has no rename: a new store appears when its meta.yaml, written last, does; a
    write killed before that leaves no store, and killed after, a resumable one."""
    base = bucket_base(data, "kw")
    new = data["root"] / "new"
    span = duration("write_view", f"s3://{BUCKET}/kw/probe", base, new)
    seen = []
    for i, delay in enumerate(delays(span, seed=50)[::2]):
        store = f"s3://{BUCKET}/kw/v{i}"
        kill_after("write_view", delay, store, base, new)
        try:
            zview.open(store, render=False, _rendered=False)
        except errors.StoreNotFoundError:
            seen.append("absent")
            zview.write_view(store, data["new"], base=base, progress=False)  # no overwrite
        else:
            seen.append(assert_resumable(store))
            zview.render(store, progress=False)
        assert_view(store, data["new"], data["base"])
    assert len(set(seen)) > 1, seen


@pytest.mark.s3
def test_write_view_overwrite_killed_on_s3(data, s3):
    """A bucket has no rename: the new store is built and rendered beside the old one, then
    copied over it. Killed before the copy, the old store is untouched; during it, the store
    says it is incomplete and names the command that finishes it; after it, the new store is
    complete."""
    base = bucket_base(data, "ko")
    new = data["root"] / "new"
    probe = f"s3://{BUCKET}/ko/probe"
    zview.write_view(probe, data["old"], base=base, progress=False)
    span = duration("write_view", probe, base, new)
    rng = np.random.default_rng(60)  # the copy is the last fifth or so: more kills land there
    moments = [*rng.uniform(0, span, 1), *rng.uniform(0.7 * span, span, 5), 1.1 * span]
    seen = []
    for i, delay in enumerate(moments):
        store = f"s3://{BUCKET}/ko/v{i}"
        zview.write_view(store, data["old"], base=base, progress=False)
        kill_after("write_view", delay, store, base, new)
        try:
            ds = zview.open(store, render=False)
        except errors.IncompleteStoreError as e:
            seen.append("stopped while copying")
            zview.convert(e.value, store, overwrite=True, progress=False)
            which = "new"
        else:
            which = "new" if np.array_equal(np.asarray(ds.views["one"]),
                                            data["new"]["one"]) else "old"
            seen.append(which)
        assert_view(store, data[which], data["base"])
    assert "old" in seen and len(set(seen)) > 1, seen


@pytest.mark.s3
def test_two_renders_at_once_on_s3(data, s3):
    base = bucket_base(data, "two")
    store = f"s3://{BUCKET}/two/view"
    zview.write_view(store, data["old"], base=base, render=False, progress=False)
    first, second = start("render", store), start("render", store)
    for process in (first, second):
        _out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    assert_view(store, data["old"], data["base"])


# -- the moment of replacing -----------------------------------------------------------------------
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_overwrite_never_moves_the_old_store_away_first(tmp_path, monkeypatch):
    """The old store is swapped with the new one in one step: no moment without a store."""
    store = tmp_path / "ds"
    zview.write_dataset(store, {"a": np.arange(3)}, progress=False)
    moved_away = []
    real = os.replace

    def spy(src, dst, *args, **kwargs):
        moved_away.append(os.fspath(src))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", spy)
    zview.write_dataset(store, {"a": np.arange(7)}, overwrite=True, progress=False)
    assert str(store) not in moved_away
    assert np.array_equal(np.asarray(zview.open(store).labels["a"]), np.arange(7))
    assert sorted(os.listdir(tmp_path)) == ["base", "ds"]  # the old one is cleaned up


def test_partial_chunk_file_is_not_a_written_chunk(data, tmp_path):
    """zarr writes a local chunk as ``c/N/0.<hex>.partial`` first; a render killed then must
    redo chunk N, not count it written and mark the leaf complete without it."""
    from zview._location import Location
    from zview.render import written_chunks

    store = tmp_path / "view"
    shutil.copytree(data["root"] / "template", store)
    zview.render(store, progress=False)
    chunk = store / "rendered" / "seq" / "feat" / "c" / "1" / "0"
    chunk.rename(chunk.with_name("0.0123abcd.partial"))
    written = written_chunks(Location.resolve(store), "rendered/seq/feat")
    assert 1 not in written and {0, 2} <= written
