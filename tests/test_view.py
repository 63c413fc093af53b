"""MetaViewDataset: random view trees give the brute-force walk's examples and np.take's labels."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zview
from zview._tree import leaves
from zview.errors import RenderRequiredError, StaleRenderError

N_BASE = 40
CATEGORIES = [f"c{i}" for i in range(7)]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> zview.MetaDataset:
    """A base with flat and nested labels, a string label and a category loader."""
    rng = np.random.default_rng(1)
    root = tmp_path_factory.mktemp("base") / "base"
    zview.write_dataset(root, {
        "cat": rng.integers(0, len(CATEGORIES), N_BASE),
        "pos": rng.normal(size=(N_BASE, 3)).astype(np.float32),
        "nested": {"deep": {"id": np.arange(N_BASE) * 10}, "name": np.array(
            [f"frame{i:03d}" for i in range(N_BASE)])},
    }, loaders={"cat": "category"}, loader_kwargs={"cat": {"categories": CATEGORIES}},
        progress=False)
    return zview.open(root)


def _leaf(m: int) -> st.SearchStrategy[np.ndarray]:
    shapes = st.sampled_from([(m,), (m, 2), (m, 3), (m, 2, 2), (m, 1, 3)])
    return shapes.flatmap(lambda shape: st.builds(
        lambda seed: np.random.default_rng(seed).integers(0, N_BASE, shape),
        st.integers(0, 2**32 - 1)))


def _trees(m: int) -> st.SearchStrategy:
    names = st.text("abcdefgh", min_size=1, max_size=4)
    return st.recursive(
        _leaf(m),
        lambda children: st.one_of(st.dictionaries(names, children, min_size=1, max_size=3),
                                   st.lists(children, min_size=1, max_size=3)),
        max_leaves=5,
    ).filter(lambda tree: isinstance(tree, dict) and _depth(tree) <= 3)


def _depth(tree) -> int:
    if isinstance(tree, dict):
        return 1 + max(map(_depth, tree.values()))
    if isinstance(tree, list):
        return 1 + max(map(_depth, tree))
    return 0


def _walk(tree, i, fetch):
    """The brute-force walk: every index in a leaf's row ``i`` replaced by ``fetch(j)``."""
    if isinstance(tree, dict):
        return {k: _walk(v, i, fetch) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_walk(v, i, fetch) for v in tree]
    return np.vectorize(fetch, otypes=[object])(tree[i]).tolist() if tree.ndim > 1 else fetch(
        tree[i])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 9), data=st.data())
def test_random_trees_match_brute_force(base, m, data):
    views = data.draw(_trees(m))
    cats = np.asarray(base.labels["cat_"])

    def expected_base(j):
        return {"cat": CATEGORIES[cats[j]], "index_": int(j)}

    with tempfile.TemporaryDirectory() as tmp:
        view = zview.write_view(Path(tmp) / "view", views, base=base, progress=False)
        ds = zview.open(view)
        assert len(ds) == m
        for i in range(m):
            got = ds[i]
            want = _walk(views, i, expected_base)
            assert _plain(_strip(got)) == want
        batch = ds[list(range(m))]
        assert [_plain(_strip(e)) for e in batch] == [_walk(views, i, expected_base)
                                                       for i in range(m)]
        for i, example in enumerate(batch):  # labels_ as a single fetch gives them
            got, want = list(leaves(example["labels_"])), list(leaves(ds[i]["labels_"]))
            assert [p for p, _ in got] == [p for p, _ in want]
            for (_, a), (_, b) in zip(got, want, strict=True):
                np.testing.assert_array_equal(a, b)
        for path, leaf in leaves(views):
            rendered = _at(ds.labels, path)
            for key, label in leaves(base.labels):
                np.testing.assert_array_equal(np.asarray(_at(rendered, key)),
                                              np.take(np.asarray(label), leaf, axis=0))


def _strip(example: dict) -> dict:
    return {k: v for k, v in example.items() if k not in ("index_", "labels_")}


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    return value


def _at(tree, path):
    for part in path.split("/"):
        tree = tree[int(part)] if isinstance(tree, list) else tree[part]
    return tree


def test_batch_asks_base_once_per_distinct_index(base, tmp_path, monkeypatch):
    windows = np.arange(30)[:, None] + np.arange(5)
    ds = zview.open(zview.write_view(tmp_path / "v", {"frames": windows}, base=base,
                                     progress=False))
    asked = []
    original = type(ds.base).__getitems__
    monkeypatch.setattr(type(ds.base), "__getitems__",
                        lambda self, idx: asked.extend(int(j) for j in idx) or original(self, idx))
    batch = ds[list(range(30))]
    assert sorted(asked) == list(range(34))
    assert [f["index_"] for f in batch[7]["frames"]] == [7, 8, 9, 10, 11]


def test_single_key_view_returns_base_example(base, tmp_path):
    """As in edflow: the base example itself, its ``index_`` replaced by the view's."""
    ds = zview.open(zview.write_view(tmp_path / "v", np.array([3, 1, 4]), base=base,
                                     progress=False))
    assert ds.meta["views"] == "view"
    assert ds[2]["index_"] == 2
    assert ds[2]["cat"] == CATEGORIES[np.asarray(base.labels["cat_"])[4]]
    np.testing.assert_array_equal(ds.labels["pos"], np.asarray(base.labels["pos"])[[3, 1, 4]])


def test_unrendered_store_renders_on_first_open(base, tmp_path):
    where = zview.write_view(tmp_path / "v", {"a": np.arange(5)}, base=base, render=False,
                             progress=False)
    with pytest.raises(RenderRequiredError, match="not rendered"):
        zview.open(where, render=False)
    ds = zview.open(where, progress=False)
    assert ds.render_status() == {"a": "complete"}
    np.testing.assert_array_equal(ds.labels["a"]["nested"]["deep"]["id"], np.arange(5) * 10)


def test_changed_base_is_reported_not_served(tmp_path):
    zview.write_dataset(tmp_path / "b", {"x": np.arange(10)}, progress=False)
    where = zview.write_view(tmp_path / "v", {"a": np.arange(10)[::-1]}, base=tmp_path / "b",
                             progress=False)
    zview.store_label(tmp_path / "b", "x", np.arange(10) * 2, overwrite=True)
    with pytest.raises(StaleRenderError, match="rendered against a different base"):
        zview.open(where)
    ds = zview.open(where, render=True, progress=False)
    np.testing.assert_array_equal(ds.labels["a"]["x"], np.arange(10)[::-1] * 2)


def test_interrupted_render_resumes(tmp_path):
    zview.write_dataset(tmp_path / "b", {"x": np.arange(300_000)}, progress=False)
    view = np.arange(300_000)[::-1].copy()
    where = zview.write_view(tmp_path / "v", {"a": view}, base=tmp_path / "b", progress=False)
    chunks = sorted((tmp_path / "v" / "rendered" / "a" / "x" / "c").iterdir())
    assert len(chunks) > 1
    chunks[1].unlink()  # as if the render had died before this chunk
    import zarr

    group = zarr.open_group(str(tmp_path / "v"), mode="r+", use_consolidated=False)
    state = group.attrs["zview"]
    state["render"]["a"]["complete"] = False
    group.attrs["zview"] = state
    ds = zview.open(where, render=False, _rendered=False)
    assert ds.render_status() == {"a": "incomplete"}
    assert zview.validate(where) != []
    assert zview.render(where, progress=False) == {"a": "complete"}
    np.testing.assert_array_equal(zview.open(where).labels["a"]["x"], view)
    assert zview.validate(where) == []
