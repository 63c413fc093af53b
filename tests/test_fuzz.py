"""Fuzzing: random ``meta.yaml`` documents and random view arrays fed to open and validate.

Whatever a store holds, only ``zview.errors`` types come out: never an ``AttributeError``,
``TypeError`` or ``KeyError`` from deep inside.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zview
from tests._unchecked import write_label
from zview import errors

N_BASE = 8
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    zview.write_dataset(root / "base", {"x": np.arange(N_BASE) * 10,
                                        "name": np.array([f"n{i}" for i in range(N_BASE)])},
                        progress=False)
    zview.write_view(root / "template", {"a": np.arange(6) % N_BASE,
                                         "b": np.arange(12).reshape(6, 2) % N_BASE},
                     base=str(root / "base"), labels={"extra": np.arange(6)},
                     loaders=None, progress=False)
    return root


def fresh(stores: Path) -> Path:
    store = stores / f"s{uuid.uuid4().hex[:10]}"
    shutil.copytree(stores / "template", store)
    return store


def exercise(store: Path) -> None:
    """Open, read every example singly and in a batch, and validate; only zview errors."""
    try:
        problems = zview.validate(store)
    except errors.ZViewError:
        raise AssertionError("validate reports problems, it does not raise them") from None
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
    try:
        ds = zview.open(store)
        n = len(ds)
        for i in range(min(n, 4)):
            ds[i]
        ds[list(range(min(n, 4)))]
        for leaf in getattr(ds, "views", {}) or {}:
            np.asarray(ds.labels.get(leaf, {}).get("x", np.zeros(0)))
    except errors.ZViewError as e:
        assert isinstance(e, (KeyError, IndexError, ValueError, FileNotFoundError,
                              PermissionError, FileExistsError, ConnectionError)), type(e)
        assert str(e)


# -- random meta.yaml ----------------------------------------------------------------------------
HOSTILE = st.sampled_from([
    "os.system", "subprocess.call", "builtins.eval", "zview.MetaDataset", "zview.MetaViewDataset",
    "edflow.data.believers.meta.MetaDataset", "a.b", "", ".", "..", "x" * 300, "../../etc/passwd",
    "/etc/passwd", "s3://bucket/x", "memory://x", "\x00", "é.ü", "views/a", "views", "labels",
    "image", "np", "cat", "category", "../base", "base", "{{}}", "%s%n", "\n", "- a",
])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=True), st.text(max_size=20), HOSTILE)
TREES = st.recursive(SCALARS, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), HOSTILE),
                                                    children, max_size=4)), max_leaves=12)
KNOWN = {
    "description": TREES,
    "base_dset": st.one_of(HOSTILE, TREES),
    "base_kwargs": st.one_of(
        st.fixed_dictionaries({"root": st.one_of(st.just("../base"), HOSTILE, TREES)},
                              optional={"cache_bytes": TREES, "render": TREES,
                                        "progress": TREES, "trust": TREES,
                                        "storage_options": TREES}),
        TREES),
    "views": st.one_of(st.just({"a": "views/a", "b": "views/b"}), HOSTILE, TREES,
                       st.dictionaries(st.one_of(HOSTILE, st.text(max_size=4)),
                                       st.one_of(HOSTILE, st.sampled_from(
                                           ["views/a", "views/b", "extra"])), max_size=3)),
    "loaders": st.one_of(TREES, st.dictionaries(
        st.sampled_from(["views/a", "views/b", "extra", "nope"]), HOSTILE, max_size=3)),
    "loader_kwargs": st.one_of(TREES, st.dictionaries(
        st.sampled_from(["views/a", "views/b", "extra"]),
        st.dictionaries(st.sampled_from(["root", "support", "resize_to", "categories", "x"]),
                        TREES, max_size=3), max_size=3)),
}
META = st.fixed_dictionaries({}, optional={**KNOWN, "unknown": TREES, "x y": TREES})


@SETTINGS
@given(meta=META)
def test_random_meta_yaml(stores, meta):
    store = fresh(stores)
    (store / "meta.yaml").write_text(yaml.safe_dump(meta, allow_unicode=True))
    exercise(store)


@SETTINGS
@given(changes=st.dictionaries(st.sampled_from(sorted(KNOWN)), st.deferred(
    lambda: st.one_of(*KNOWN.values())), min_size=1, max_size=2),
    loaders=st.dictionaries(st.sampled_from(["extra", "views/a", "nope"]), st.sampled_from(
        ["np", "image", "cat", "category", "os.system", "nope"]), max_size=2),
    loader_kwargs=st.dictionaries(st.sampled_from(["extra", "views/a"]), st.dictionaries(
        st.sampled_from(["root", "support", "resize_to", "categories"]), TREES, max_size=2),
        max_size=2))
def test_meta_yaml_mutations(stores, changes, loaders, loader_kwargs):
    """A sound meta.yaml with a key or two replaced, and loaders on the labels it has."""
    store = fresh(stores)
    meta = yaml.safe_load((store / "meta.yaml").read_text())
    meta.update(loaders=loaders, loader_kwargs=loader_kwargs)
    meta.update(changes)
    (store / "meta.yaml").write_text(yaml.safe_dump(meta, allow_unicode=True))
    exercise(store)


@SETTINGS
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(
    lambda b: b.decode("latin-1")), st.builds(
        lambda parts: "\n".join(parts), st.lists(st.sampled_from([
            "views: {a: views/a}", "base_dset: zview.MetaDataset", "base_kwargs: {root: ../base}",
            "&a [*a]", "!!python/object/apply:os.system [ls]", "!!binary aGVsbG8=",
            "<<: *x", "- &x {a: 1}", "? [a, b]", "views: [[[[[[]]]]]]", "%YAML 1.1", "---",
            "...", "views: !!set {a, b}", "base_kwargs: {root: ../base, cache_bytes: 1e3}",
            "!!timestamp 2001-12-14", "!!timestamp", "!!int x", "!!float []", "!!binary !",
            "!!python/name:os.system", "!!omap [a]", "!!pairs {a: 1}", "? !!set",
            "loaders: {extra: np}", "views: {a: extra}",
        ]), max_size=8))))
def test_random_meta_yaml_text(stores, text):
    store = fresh(stores)
    (store / "meta.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
    exercise(store)


# -- random view arrays ---------------------------------------------------------------------------
DTYPES = st.sampled_from(["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                          "uint64", "float32", "float64", "bool", "<U3", "complex64"])


@st.composite
def view_arrays(draw):
    dtype = np.dtype(draw(DTYPES))
    rows = draw(st.integers(0, 7))
    extra = draw(st.lists(st.integers(0, 3), max_size=2))
    shape = (rows, *extra)
    values = draw(st.lists(st.one_of(st.integers(-3, N_BASE + 3),
                                     st.sampled_from([2**31, -(2**31), 2**62, 255, 65535])),
                           min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    with np.errstate(all="ignore"):
        array = np.array(values, dtype=np.int64).astype(dtype).reshape(shape)
    return array


@SETTINGS
@given(a=view_arrays(), b=view_arrays(), extra_rows=st.integers(0, 7))
def test_random_view_arrays(stores, a, b, extra_rows):
    store = fresh(stores)
    for key, value in (("views/a", a), ("views/b", b), ("extra", np.arange(extra_rows))):
        try:
            write_label(store, key, value)  # past zview's checks: open must catch what is wrong
        except (errors.ZViewError, ValueError):  # newer zarr refuses zero-size chunks
            return  # refused on the way in: as good as refused on the way out
    exercise(store)


@SETTINGS
@given(index=view_arrays())
def test_random_view_through_write_view(stores, index):
    target = stores / f"w{uuid.uuid4().hex[:10]}"
    try:
        zview.write_view(target, {"a": index}, base=str(stores / "base"), progress=False)
    except errors.ZViewError as e:
        assert isinstance(e, (ValueError, IndexError)), type(e)
        assert not target.exists()
        return
    assert index.dtype.kind in "iu" and (index.size == 0 or 0 <= index.min() <= index.max()
                                         < N_BASE)
    exercise(target)
