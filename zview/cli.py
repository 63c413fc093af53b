"""The ``zview`` command line: demo, info, show, render, convert, validate."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from zview.errors import ZViewError

EPILOG = """\
locations: a folder, a .zip file, or a file://, s3://, gs://, az://, memory:// URL.
remote options: --storage-option KEY=VALUE, repeatable; dotted keys nest
  (--storage-option client_kwargs.region_name=eu-west-1); the standard environment
  (AWS_ENDPOINT_URL, AWS_PROFILE, ...) works unchanged, and anon=true reads public buckets.

examples:
  zview demo ./demo-store
  zview info ./demo-store/walk
  zview convert edflow/view s3://bucket/view --storage-option anon=false
  zview render s3://bucket/view --dask tcp://scheduler:8786
"""


def _storage_option(text: str) -> tuple[list[str], Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.split("."), yaml.safe_load(value) if value else ""


def storage_options(pairs: Sequence[tuple[list[str], Any]] | None) -> dict | None:
    """``[(["client_kwargs", "region_name"], "x")]`` -> ``{"client_kwargs": {...}}``."""
    if not pairs:
        return None
    options: dict = {}
    for keys, value in pairs:
        node = options
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return options


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--storage-option", "-o", action="append", type=_storage_option,
                        metavar="KEY=VALUE", dest="storage_options",
                        help="fsspec option for remote locations (repeatable)")
    common.add_argument("--base-storage-option", action="append", type=_storage_option,
                        metavar="KEY=VALUE", dest="base_storage_options",
                        help="fsspec option for a view's base, if not the view's (repeatable)")
    common.add_argument("--trust", action="store_true",
                        help="import the base_dset/loaders the store names even if not trusted")
    common.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bars")

    parser = argparse.ArgumentParser(
        prog="zview", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Views of machine-learning datasets as chunked, compressed zarr arrays.")
    from zview import __version__

    parser.add_argument("--version", action="version", version=f"zview {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help, description=help,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = command("demo", "build a synthetic video dataset and two views on it, then open them")
    p.add_argument("path", help="where to write the demo (base/ and walk/ go inside)")
    p.add_argument("--videos", type=int, default=12, help="number of videos (default 12)")
    p.add_argument("--frames", type=int, default=250, help="frames per video (default 250)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing demo")

    p = command("info", "print a store's length, labels, views and render state")
    p.add_argument("location")

    p = command("show", "print the description, labels and the first example")
    p.add_argument("location")

    p = command("render", "render the base's labels through every view of a store")
    p.add_argument("location")
    p.add_argument("--force", action="store_true", help="re-render complete views too")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="run on a Dask cluster (scheduler address, e.g. tcp://host:8786)")

    p = command("convert", "rewrite an edflow folder (or any store) as a zview store")
    p.add_argument("source")
    p.add_argument("destination")
    p.add_argument("--overwrite", action="store_true", help="replace an existing destination")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="render a view on a Dask cluster (scheduler address)")

    p = command("validate", "check every index, chunk and render; exit 1 naming each problem")
    p.add_argument("location")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    options = storage_options(args.storage_options)
    base_options = storage_options(args.base_storage_options)
    try:
        return _run(args, options, base_options)
    except ZViewError as e:
        print(f"zview {args.command}: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"zview {args.command}: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace, options: dict | None, base_options: dict | None) -> int:
    import zview

    if args.command == "demo":
        from zview.demo import run_demo

        run_demo(args.path, videos=args.videos, frames=args.frames, overwrite=args.overwrite,
                 progress=args.progress)
        return 0
    if args.command == "render":
        status = zview.render(args.location, storage_options=options, trust=args.trust,
                              force=args.force, progress=args.progress, dask=args.dask,
                              base_storage_options=base_options)
        for leaf, state in status.items():
            print(f"{leaf or '(view)'}: {state}")
        return 0
    if args.command == "convert":
        where = zview.convert(args.source, args.destination, storage_options=options,
                              overwrite=args.overwrite, trust=args.trust,
                              progress=args.progress, dask=args.dask)
        print(f"converted {args.source} -> {where}; read back and compared: identical")
        return 0
    if args.command == "validate":
        problems = zview.validate(args.location, storage_options=options, trust=args.trust,
                                  progress=args.progress, base_storage_options=base_options)
        for problem in problems:
            print(problem)
        print(f"{args.location}: {len(problems)} problem(s)" if problems
              else f"{args.location}: valid")
        return 1 if problems else 0
    ds = zview.open(args.location, storage_options=options, trust=args.trust,
                    base_storage_options=base_options,
                    **({"progress": args.progress} if args.command != "info" else {}))
    if args.command == "show" and hasattr(ds, "show"):
        ds.show()
    else:
        print(info(ds))
    return 0


def info(ds: Any) -> str:
    """A plain-text summary: length, labels with shape, dtype and stored size, render state."""
    from zview._tree import leaves
    from zview.view import MetaViewDataset

    lines = [f"{type(ds).__name__} at {ds.location}: {len(ds)} examples"]
    if isinstance(ds, MetaViewDataset):
        lines.append(f"base: {ds.meta.get('base_dset')} ({len(ds.base)} examples)")
        status = ds.render_status() if ds.group is not None else {}
        for leaf, view in ds.view_leaves():
            state = status.get(leaf, "rendered on access")
            lines.append(f"view {leaf or '(view)'}: {view.name} {view.shape} [{state}]")
    lines.append("labels:")
    for path, array in leaves(ds.labels):
        stored = array.stored_bytes() if hasattr(array, "stored_bytes") else None
        size = f" {_bytes(stored)} stored" if stored is not None else ""
        lines.append(f"  {path}: {tuple(array.shape)} {array.dtype}{size}")
    return "\n".join(lines)


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


if __name__ == "__main__":
    sys.exit(main())
