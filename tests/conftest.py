"""Shared fixtures: the edflow fixture copied to a temporary folder, small synthetic stores."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests._expected import FIXTURE


@pytest.fixture
def edflow_copy(tmp_path: Path) -> Path:
    """A writable copy of shared/fixtures/edflow-small (``base/`` and ``view/``)."""
    target = tmp_path / "edflow-small"
    shutil.copytree(FIXTURE, target)
    return target


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
