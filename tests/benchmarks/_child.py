"""Memory-measured work, run in a fresh process: ``python -m tests.benchmarks._child JOB ARGS``.

Prints one JSON line: the seconds the job took, the peak resident set size of the process
during the job (``VmHWM``, reset after imports), and the resident set
size before the job; the benchmarks report the difference, the memory the job itself added.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

import numpy as np


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak() -> int:
    """The RSS high-water mark of this process's memory (``VmHWM``).

    Not ``getrusage``: its ``ru_maxrss`` carries the parent's peak over ``fork`` and ``exec``,
    so a child of a big benchmark process would report its parent's memory.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak() -> None:
    """Start the peak over from here (Linux: ``clear_refs`` 5 resets the RSS high-water mark)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # elsewhere the peak includes the imports
        pass


def render_zview(view: str) -> None:
    import zview

    zview.render(view, progress=False)  # a fresh copy of the view: everything is rendered


def render_edflow(base_npy: str, view_npy: str, out: str) -> None:
    from tests.benchmarks import _edflow

    labels = _edflow.load_labels(base_npy)  # c-mode memmaps, as edflow's MetaDataset holds them
    view = np.load(view_npy, mmap_mode="c")
    _edflow.render(out, labels, {"view": view})


def write_long(folder: str, rows: str) -> None:
    import zview
    from tests.benchmarks import _bases

    _bases.register()
    n = int(rows)
    zview.write_view(os.path.join(folder, "long"), {"seq": np.arange(n, dtype=np.int32)},
                     base=_bases.IMPORT_PATH, base_kwargs={"length": n, "labels": False},
                     progress=False)


def open_long(folder: str, fetches: str) -> None:
    import zview
    from tests.benchmarks import _bases

    _bases.register()
    t = time.perf_counter()
    view = zview.open(os.path.join(folder, "long"))
    opened = time.perf_counter() - t
    rng = np.random.default_rng(0)
    for i in rng.integers(0, len(view), int(fetches)):
        view[int(i)]
    print(json.dumps({"open": opened}))


JOBS = {"render-zview": render_zview, "render-edflow": render_edflow, "write-long": write_long,
        "open-long": open_long}


def main() -> None:
    import zview  # noqa: F401  (both sides import the same modules before measuring)
    from tests.benchmarks import _bases, _edflow  # noqa: F401

    job, *args = sys.argv[1:]
    _reset_peak()
    before = _rss()
    t = time.perf_counter()
    JOBS[job](*args)
    seconds = time.perf_counter() - t
    peak = _peak()
    print(json.dumps({"seconds": seconds, "peak": peak, "before": before}))


if __name__ == "__main__":
    main()
