"""zview returns what edflow 0.4.0 returned for the shared fixture, in place and converted."""

from __future__ import annotations

import pytest

import zview
from tests._expected import FIXTURE, assert_same, expected

EXPECTED = expected()


@pytest.mark.parametrize("name", ["base", "view"])
def test_in_place_matches_edflow(name):
    ds = zview.open(FIXTURE / name)
    assert len(ds) == EXPECTED[name]["len"]
    for i, want in enumerate(EXPECTED[name]["examples"]):
        assert_same(ds[i], want, f"{name}[{i}]")


@pytest.mark.parametrize("name", ["base", "view"])
def test_batch_matches_edflow(name):
    ds = zview.open(FIXTURE / name)
    got = ds.__getitems__(list(range(len(ds))))
    for i, want in enumerate(EXPECTED[name]["examples"]):
        assert_same(got[i], want, f"{name}[{i}]")


@pytest.mark.parametrize("suffix", ["", ".zip"])
def test_converted_matches_edflow(tmp_path, suffix):
    zview.convert(FIXTURE / "base", tmp_path / "base", progress=False)
    zview.convert(FIXTURE / "view", tmp_path / f"view{suffix}", progress=False)
    for name in ("base", "view"):
        ds = zview.open(tmp_path / (name + (suffix if name == "view" else "")))
        for i, want in enumerate(EXPECTED[name]["examples"]):
            assert_same(ds[i], want, f"{name}[{i}]")
    view = zview.open(tmp_path / f"view{suffix}")
    assert set(view.render_status().values()) == {"complete"}


def test_fixture_left_unchanged():
    """Opening a legacy folder writes nothing into it (edflow would render into labels/)."""
    before = sorted(p.relative_to(FIXTURE) for p in FIXTURE.rglob("*"))
    zview.open(FIXTURE / "view")[0]
    assert sorted(p.relative_to(FIXTURE) for p in FIXTURE.rglob("*")) == before
