"""Doctests run in a folder holding a copy of the edflow fixture and a small view, ``walk``."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from _pytest.doctest import DoctestItem

import zview
from tests._expected import FIXTURE


@pytest.fixture(scope="session")
def doctest_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("doctest")
    shutil.copytree(FIXTURE, folder / "fixtures" / "edflow-small")
    windows = np.arange(20)[:, None] + np.arange(5)
    zview.write_view(folder / "walk", {"frames": windows},
                     base=folder / "fixtures" / "edflow-small" / "base", progress=False)
    return folder


@pytest.fixture(autouse=True)
def _doctest_env(request, doctest_namespace, monkeypatch):
    if isinstance(request.node, DoctestItem):
        monkeypatch.chdir(request.getfixturevalue("doctest_folder"))
        doctest_namespace.update(zview=zview, np=np)
