"""zview's benchmarks: one table of ratios, each measured side by side in the same run.

Run from the repository root::

    python -m tests.benchmarks            # full sizes (several minutes, ~10 GB of temp files)
    python -m tests.benchmarks --quick    # small sizes, seconds; what CI runs

Every figure is a ratio of two measurements made in this run on the same data (medians of
several repeats, alternating the two sides), so a busy machine slows both alike. The baseline,
"edflow-style", is edflow 0.4.0's access pattern (see ``_edflow.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tests.benchmarks import _bases, _edflow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Sizes:
    """Problem sizes of one mode."""

    examples: int  # B1/B2 view length
    fetches: int  # B1 random examples per repeat
    repeats: int
    many_arrays: int  # B3
    s3_chunks: int  # B4 chunks in a cold batch
    render_rows: int  # B5 rows of a (rows, 64) float32 label
    index_rows: int  # B6
    long_rows: int  # B7
    long_fetches: int


FULL = Sizes(examples=200_000, fetches=20_000, repeats=5, many_arrays=500, s3_chunks=64,
             render_rows=1 << 23, index_rows=2_000_000, long_rows=100_000_000,
             long_fetches=10_000)
QUICK = Sizes(examples=2_000, fetches=1_000, repeats=3, many_arrays=40, s3_chunks=8,
              render_rows=1 << 13, index_rows=20_000, long_rows=100_000, long_fetches=1_000)


@dataclass
class Row:
    key: str
    what: str
    zview: str
    baseline: str
    ratio: float
    target: str
    met: bool | None


def median_times(sides: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each side; the sides alternate, so noise hits them alike."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, fn in sides.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} us"


def _mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 1e7 else f"{n / 1e3:,.1f} kB"


# -- B1, B2: reading through a view ---------------------------------------------------------------
def _sequence_view(tmp: str, sizes: Sizes, name: str, with_appearance: bool = True):
    import zview

    m = sizes.examples
    frames = np.arange(m)[:, None] + np.arange(5)
    views = {"frames": frames}
    if with_appearance:
        views["appearance"] = np.random.default_rng(1).integers(0, m + 4, m)
    location = os.path.join(tmp, name)
    zview.write_view(location, views, base=_bases.IMPORT_PATH, base_kwargs={"length": m + 4},
                     progress=False)
    return location, views


def bench_b1(tmp: str, sizes: Sizes) -> Row:
    import zview

    location, views = _sequence_view(tmp, sizes, "b1")
    view = zview.open(location)
    # the same views, rendered and read as edflow does, over the same base class and data
    root = os.path.join(tmp, "b1-edflow")
    os.makedirs(os.path.join(root, "labels"))
    for name, index in views.items():
        _edflow.store_label_mmap(index, os.path.join(root, "labels"), f"{name}_view")
    base = _bases.ArrayBase(length=sizes.examples + 4)
    _edflow.render(root, base.labels, views)
    edflow = _edflow.View(root, base, {k: f"{k}_view" for k in views})
    assert sorted(view[3]["labels_"]["frames"]) == sorted(edflow[3]["labels_"]["frames"])

    indices = [int(i) for i in np.random.default_rng(2).integers(0, len(view), sizes.fetches)]

    def read(ds):
        return lambda: [ds[i] for i in indices]

    read(view)(), read(edflow)()  # warm: page cache for edflow, chunk cache for zview
    t = median_times({"zview": read(view), "edflow": read(edflow)}, sizes.repeats)
    z, e = t["zview"] / len(indices), t["edflow"] / len(indices)
    return Row("B1", "per-example fetch, 5-frame window + 1 frame, random order", _us(z), _us(e),
               z / e, "<= 1.0", z <= e)


def bench_b2(tmp: str, sizes: Sizes) -> Row:
    import zview

    location, _ = _sequence_view(tmp, sizes, "b2", with_appearance=False)
    view = zview.open(location)
    start = len(view) // 2
    batch = list(range(start, start + 256))
    view.__getitems__(batch)  # warm the chunk cache
    view.base.calls = 0
    view.__getitems__(batch)
    calls = view.base.calls
    t = median_times({"batch": lambda: view.__getitems__(batch),
                      "single": lambda: [view[i] for i in batch]}, sizes.repeats * 3)
    speedup = t["single"] / t["batch"]
    return Row("B2", "__getitems__ of 256 consecutive 5-frame windows vs 256 single fetches",
               f"{t['batch'] * 1e3:.2f} ms, {calls} base calls",
               f"{t['single'] * 1e3:.2f} ms, 1280 base calls", speedup,
               ">= 3x faster, 260 calls", speedup >= 3 and calls == 260)


# -- B3, B4: S3 behind a 20 ms proxy --------------------------------------------------------------
def bench_s3(tmp: str, sizes: Sizes) -> list[Row]:
    import zview
    from tests.benchmarks._s3 import S3

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(name, value)
    s3 = S3(delay=0.020)
    try:
        return [_bench_b3(s3, sizes, zview, tmp), _bench_b4(s3, sizes, zview)]
    finally:
        s3.stop()


def _bench_b3(s3, sizes: Sizes, zview, tmp: str) -> Row:
    import s3fs

    counts = {}
    # built locally and uploaded in one concurrent put: writing hundreds of arrays object by
    # object to the test server would take minutes and is not what is measured
    fs = s3fs.S3FileSystem(**s3.options(delayed=False))
    for n in (10, sizes.many_arrays):
        labels = {f"label{k:03d}": np.arange(100) for k in range(n)}
        local = os.path.join(tmp, f"b3-{n}")
        base = zview.write_dataset(os.path.join(local, "base"), labels, progress=False)
        zview.write_view(os.path.join(local, "view"),
                         {"frames": np.arange(96)[:, None] + np.arange(5)},
                         base=zview.open(base), progress=False)
        fs.put(local, f"{s3.bucket}/b3/{n}", recursive=True)
        s3.reset()
        zview.open(s3.url(f"b3/{n}/view"), storage_options=s3.options())
        counts[n] = s3.total()
    few, many = counts[10], counts[sizes.many_arrays]
    return Row("B3", f"requests to open a view + its base on S3: base with {sizes.many_arrays} "
               f"vs 10 labels ({2 * sizes.many_arrays} vs 20 arrays)", f"{many} requests",
               f"{few} requests", many / few, "1.0, <= 4", many == few and many <= 4)


def _bench_b4(s3, sizes: Sizes, zview) -> Row:
    from zview._labels import ChunkCache, LabelArray

    rows = 4096  # (4096, 64) float32 = one 1 MiB chunk
    data = np.random.default_rng(3).random((rows * sizes.s3_chunks, 64), dtype=np.float32)
    zview.write_dataset(s3.url("b4/base"), {"x": data}, storage_options=s3.options(delayed=False),
                        progress=False)
    ds = zview.open(s3.url("b4/base"), storage_options=s3.options())
    label = ds._flat["x"]
    assert label.rows == rows, label.rows
    batch = np.arange(sizes.s3_chunks) * rows + 7  # a batch touching every chunk once

    def cold():
        return LabelArray(label.source, name=label.name, store=label.store, cache=ChunkCache())

    def concurrent():
        out = cold().take(batch)
        assert np.array_equal(out, data[batch])

    def one_at_a_time():
        fresh = cold()
        for c in range(sizes.s3_chunks):
            fresh[int(batch[c])]

    t = median_times({"concurrent": concurrent, "serial": one_at_a_time}, sizes.repeats)
    speedup = t["serial"] / t["concurrent"]
    return Row("B4", f"cold batch over {sizes.s3_chunks} chunks from S3 (+20 ms/request): "
               f"concurrent vs one-at-a-time chunk reads", f"{t['concurrent'] * 1e3:.0f} ms",
               f"{t['serial'] * 1e3:.0f} ms", speedup, ">= 5x faster", speedup >= 5)


# -- B5, B7: memory, in child processes -----------------------------------------------------------
def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "tests.benchmarks._child", *args], cwd=REPO,
                         capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"child {args} failed:\n{out.stderr[-3000:]}")
    result = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            result.update(json.loads(line))
    result["added"] = result["peak"] - result["before"]
    return result


def bench_b5(tmp: str, sizes: Sizes, dask: bool) -> list[Row]:
    import zview

    n = sizes.render_rows
    rng = np.random.default_rng(5)
    npy_root = os.path.join(tmp, "b5-base-edflow")
    os.makedirs(os.path.join(npy_root, "labels"))
    feat = np.lib.format.open_memmap(
        os.path.join(npy_root, "labels", f"feat-*-{n}x64-*-float32.npy"), mode="w+",
        dtype=np.float32, shape=(n, 64))
    step = 1 << 18
    for a in range(0, n, step):
        feat[a:a + step] = rng.random((min(step, n - a), 64), dtype=np.float32)
    feat.flush()
    # edflow writes raw memmaps; this file has a .npy header, so reopen it as edflow would read
    # it: the header is skipped by offsetting the raw memmap
    offset = feat.offset
    del feat
    raw = os.path.join(npy_root, "labels", f"feat-*-{n}x64-*-float32.npy")
    with open(raw, "r+b") as f:  # drop the header, leaving edflow's raw layout
        body = os.path.join(npy_root, "body")
        with open(body, "wb") as g:
            f.seek(offset)
            shutil.copyfileobj(f, g, 16 << 20)
    os.replace(body, raw)
    feat = np.memmap(raw, mode="r", dtype=np.float32, shape=(n, 64))
    base = zview.write_dataset(os.path.join(tmp, "b5-base"), {"feat": feat}, progress=False)
    # a view of the same length: each example near its own position (a shuffled sequence)
    index = np.clip(np.arange(n) + rng.integers(-64, 64, n), 0, n - 1)
    np.save(os.path.join(tmp, "b5-view.npy"), index)
    view = os.path.join(tmp, "b5-view")
    zview.write_view(view, {"view": index}, base=zview.open(base), render=False,
                     progress=False)
    del feat
    label_bytes = n * 64 * 4

    zs, es = [], []
    repeats = max(1, sizes.repeats - 2)
    for r in range(repeats):
        # both sides render for the first time into fresh stores: edflow into a new folder,
        # zview into a copy of the unrendered view (the copy and the clean-up are not timed)
        # os.sync(): neither side starts with the other's unwritten pages to flush
        fresh = os.path.join(tmp, f"b5-view{r}")
        shutil.copytree(view, fresh)
        os.sync()
        zs.append(_child("render-zview", fresh))
        shutil.rmtree(fresh)
        out = os.path.join(tmp, f"b5-edflow-out{r}")
        os.sync()
        es.append(_child("render-edflow", npy_root, os.path.join(tmp, "b5-view.npy"), out))
        shutil.rmtree(out)
    z_mem = statistics.median(x["added"] for x in zs)
    e_mem = statistics.median(x["added"] for x in es)
    z_s = statistics.median(x["seconds"] for x in zs)
    e_s = statistics.median(x["seconds"] for x in es)
    rows = [
        Row("B5", f"render {label_bytes / 1e9:.2f} GB of labels through a view of the same "
            f"length: peak memory", _mb(z_mem), _mb(e_mem), z_mem / e_mem, "<= 0.25",
            z_mem <= e_mem / 4),
        Row("B5", "... throughput", f"{label_bytes / z_s / 1e6:,.0f} MB/s",
            f"{label_bytes / e_s / 1e6:,.0f} MB/s", e_s / z_s, ">= 0.7", e_s / z_s >= 0.7),
    ]
    if dask:
        rows.append(_bench_dask(view, sizes, label_bytes))
    return rows


def _bench_dask(view: str, sizes: Sizes, label_bytes: int) -> Row:
    from distributed import Client, LocalCluster

    import zview

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            t = median_times({
                "dask": lambda: zview.render(view, force=True, progress=False, dask=client),
                "serial": lambda: zview.render(view, force=True, progress=False)},
                max(1, sizes.repeats - 2))
    speedup = t["serial"] / t["dask"]
    return Row("B5", "... on Dask (LocalCluster, 2 worker processes) vs serial",
               f"{label_bytes / t['dask'] / 1e6:,.0f} MB/s",
               f"{label_bytes / t['serial'] / 1e6:,.0f} MB/s (serial zview)", speedup,
               "(reported)", None)


def bench_b6(tmp: str, sizes: Sizes) -> list[Row]:
    import zview

    m = sizes.index_rows
    windows = np.arange(m)[:, None] + np.arange(5)
    n = m + 4
    random = np.random.default_rng(6).integers(0, n, m)
    location = os.path.join(tmp, "b6")
    zview.write_view(location, {"windows": windows, "random": random},
                     base=_bases.IMPORT_PATH, base_kwargs={"length": n, "labels": False},
                     progress=False)
    view = zview.open(location)
    rows = []
    for name, array in (("windows", windows), ("random", random)):
        path = os.path.join(tmp, f"b6-{name}.npy")
        np.save(path, array)
        npy = os.path.getsize(path)
        stored = view._flat[f"views/{name}"].stored_bytes()
        if name == "windows":
            rows.append(Row("B6", f"stored size of a ({m:,}, 5) int64 sliding-window view vs .npy",
                            _mb(stored), _mb(npy), npy / stored, ">= 100x smaller",
                            npy / stored >= 100))
        else:
            bound = m * np.log2(n) / 8
            rows.append(Row("B6", f"stored size of {m:,} uniform random int64 indices vs "
                            f"entropy bound (log2 N bits each; .npy: {_mb(npy)})", _mb(stored),
                            _mb(bound), stored / bound, "<= 1.10", stored / bound <= 1.10))
    return rows


def bench_b7(tmp: str, sizes: Sizes) -> list[Row]:
    small = max(sizes.long_rows // 100, 1000)
    results = {}
    for n in (small, sizes.long_rows):
        folder = os.path.join(tmp, f"b7-{n}")
        os.makedirs(folder)
        write = _child("write-long", folder, str(n))
        opens = [_child("open-long", folder, str(sizes.long_fetches)) for _ in range(3)]
        results[n] = (write, opens)
        shutil.rmtree(folder)
    write, opens = results[sizes.long_rows]
    peak = max(write["added"], *(o["added"] for o in opens))
    peak_total = max(write["peak"], *(o["peak"] for o in opens))
    big_open = statistics.median(o["open"] for o in opens)
    small_open = statistics.median(o["open"] for o in results[small][1])
    return [
        Row("B7", f"{sizes.long_rows:,}-row view: write, open, {sizes.long_fetches:,} random "
            f"fetches: peak memory (process total)", _mb(peak_total),
            f"{_mb(peak)} above imports", peak_total / 1e9, "< 1 GB", peak_total < 1e9),
        Row("B7", f"... open time, {sizes.long_rows:,} vs {small:,} rows",
            f"{big_open * 1e3:.0f} ms", f"{small_open * 1e3:.0f} ms", big_open / small_open,
            "~1.0 (independent)", big_open / small_open < 1.5),
    ]


# -- the table ------------------------------------------------------------------------------------
def table(rows: list[Row], quick: bool) -> str:
    lines = ["| # | what | zview | baseline | ratio | target | met |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        met = "n/a" if r.met is None or quick else ("yes" if r.met else "**no**")
        lines.append(f"| {r.key} | {r.what} | {r.zview} | {r.baseline} | {r.ratio:.3g} | "
                     f"{r.target} | {met} |")
    return "\n".join(lines)


def machine() -> str:
    import zarr

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return (f"{os.cpu_count()} CPUs (nproc), {ram / 2**30:.0f} GiB RAM, Python "
            f"{sys.version.split()[0]}, zarr {zarr.__version__}, numpy {np.__version__}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes; no targets judged")
    parser.add_argument("--only", default="", help="comma-separated subset, e.g. B1,B5")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask render row")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    only = {s.strip().upper() for s in args.only.split(",") if s.strip()}
    _bases.register()
    warnings.filterwarnings("ignore", module="zarr")  # portability notes, not results
    benches = [("B1", lambda t: [bench_b1(t, sizes)]), ("B2", lambda t: [bench_b2(t, sizes)]),
               ("B3", lambda t: bench_s3(t, sizes)), ("B5", lambda t: bench_b5(
                   t, sizes, dask=not args.no_dask)),
               ("B6", lambda t: bench_b6(t, sizes)), ("B7", lambda t: bench_b7(t, sizes))]
    rows: list[Row] = []
    started = time.perf_counter()
    for key, bench in benches:
        if only and key not in only and not (key == "B3" and "B4" in only):
            continue
        tmp = tempfile.mkdtemp(prefix=f"zview-bench-{key}-")
        try:
            t = time.perf_counter()
            rows += bench(tmp)
            print(f"{key} done in {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    mode = "quick mode: sizes too small for the targets to mean anything" if args.quick else \
        "full mode"
    print(f"\nzview benchmarks ({mode}); {machine()}; {time.perf_counter() - started:.0f} s\n")
    print(table(rows, args.quick))


if __name__ == "__main__":
    main()
