"""The benchmark command runs end to end in quick mode (sizes too small to judge targets)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_quick_benchmarks_print_the_table():
    pytest.importorskip("moto.server", reason="B3/B4 start a local S3 server")
    pytest.importorskip("distributed", reason="B5 reports a Dask render")
    out = subprocess.run([sys.executable, "-m", "tests.benchmarks", "--quick"], cwd=REPO,
                         capture_output=True, text=True, timeout=110, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    table = [line for line in out.stdout.splitlines() if line.startswith("| B")]
    assert {line.split("|")[1].strip() for line in table} == {f"B{i}" for i in range(1, 8)}
    assert "| # | what | zview | baseline | ratio | target | met |" in out.stdout
    assert all(line.rstrip().endswith("| n/a |") for line in table)  # quick: nothing judged
