"""convert: where relative roots point after the move."""

from __future__ import annotations

import numpy as np
import yaml

import zview
from tests._expected import FIXTURE, assert_same, expected


def test_relative_base_root_kept_only_for_the_same_base(tmp_path):
    zview.write_dataset(tmp_path / "other" / "base", {"x": np.arange(24)}, progress=False)
    zview.convert(FIXTURE / "view", tmp_path / "other" / "view", progress=False)
    meta = yaml.safe_load((tmp_path / "other" / "view" / "meta.yaml").read_text())
    assert meta["base_kwargs"]["root"] == str(FIXTURE / "base")  # not the unrelated ../base

    zview.convert(FIXTURE / "base", tmp_path / "moved" / "base", progress=False)
    zview.convert(FIXTURE / "view", tmp_path / "moved" / "view", progress=False)
    meta = yaml.safe_load((tmp_path / "moved" / "view" / "meta.yaml").read_text())
    assert meta["base_kwargs"]["root"] == "../base"
    assert_same(zview.open(tmp_path / "moved" / "view")[6], expected()["view"]["examples"][6])
