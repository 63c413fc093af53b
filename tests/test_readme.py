"""The README's Python example runs as written, after the README's first command."""

from __future__ import annotations

import re
from pathlib import Path

from zview.demo import run_demo

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run_demo("demo-store", videos=12, frames=250, progress=False)
    assert "2952 examples" in capsys.readouterr().out
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has a Python example"
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    assert namespace["view"].labels["frames"]["keypoints"].shape == (2952, 5, 5, 2)
    assert len(namespace["batch"]) == 3
