"""Every notebook in notebooks/ runs top to bottom; the cloud one against the local S3 server."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests._expected import FIXTURE
from tests.conftest import BUCKET

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ["quickstart", "cloud", "from_edflow"]


def test_every_notebook_is_tested():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


def _run(name: str) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(notebook, timeout=60, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return notebook


def _outputs(notebook: nbformat.NotebookNode, kind: str) -> list[dict]:
    return [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == kind]


def _check(notebook: nbformat.NotebookNode) -> None:
    assert not _outputs(notebook, "error")
    stderr = [o.text for o in _outputs(notebook, "stream") if o.name == "stderr"]
    assert not stderr, f"the notebook writes to stderr (warnings?): {stderr}"
    html = [o for o in _outputs(notebook, "execute_result") + _outputs(notebook, "display_data")
            if "text/html" in o.data]
    assert any("zview-repr" in o.data["text/html"] for o in html), "no dataset displays itself"


@pytest.mark.parametrize("name", ["quickstart", "from_edflow"])
def test_notebook_runs(name, monkeypatch):
    monkeypatch.setenv("ZVIEW_EDFLOW_FIXTURE", str(FIXTURE))
    _check(_run(name))


@pytest.mark.s3
def test_cloud_notebook_runs_against_the_bucket_named_by_the_environment(s3, monkeypatch):
    monkeypatch.setenv("ZVIEW_BUCKET", BUCKET)
    notebook = _run("cloud")
    _check(notebook)
    printed = "".join(o.text for o in _outputs(notebook, "stream"))
    assert f"s3://{BUCKET}/" in printed


def test_cloud_notebook_names_no_endpoint():
    """It must run unchanged against a user's bucket: the endpoint comes from the environment."""
    source = "\n".join(c.source for c in nbformat.read(NOTEBOOKS / "cloud.ipynb", 4).cells
                       if c.cell_type == "code")
    for local in ("localhost", "127.0.0.1", "endpoint_url", "http://"):
        assert local not in source


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebooks_hold_outputs_of_a_full_run(name):
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    _check(notebook)
