"""Display: a dataset as HTML for notebooks and as text for terminals.

Both show the same three things: the description (Markdown, rendered in HTML with raw HTML
disabled), a table of labels and views (key, shape, dtype, chunks, codecs, stored size,
compression ratio, render state) and the first example, images drawn as inline PNG thumbnails
and other arrays summarised. Everything is bounded: a tree of thousands of labels is cut off with
a note, so a notebook output stays small. Every piece of text from the store is escaped.

Examples
--------
In Jupyter, a dataset shows itself (``_repr_html_``); in a terminal, ``show()`` prints the same:

>>> ds = zview.open("walk")
>>> "<th>stored</th>" in ds._repr_html_()
True
>>> ds.show()  # doctest: +ELLIPSIS
MetaViewDataset
  location: ...walk
  examples: 20
  labels: 1
  base: MetaDataset at ...base (24 examples)
<BLANKLINE>
Labels
  key           shape    dtype  chunks   codecs            stored  ratio  state
  views/frames  (20, 5)  int64  (20, 5)  delta+blosc/zstd  ...  view frames: complete
...
Example 0
  frames:
    0:
      image: image (8, 8, 3) float64 in [-1, 0.9765]
...
"""

from __future__ import annotations

import base64
import html
import io
import math
import sys
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

MAX_ROWS = 120
"""Label-table rows shown; the rest are counted in a note."""

MAX_EXAMPLE_LEAVES = 80
"""Values of the first example shown; the rest are counted in a note."""

MAX_IMAGES = 24
"""Images of the first example drawn; later ones are summarised as arrays."""

MAX_ITEMS = 12
"""Entries of one list in the example shown before ``... N more``."""

THUMBNAIL = 128
"""Longest side, in pixels, of an image thumbnail (small images are scaled up to half of it)."""

MAX_TEXT = 200
"""Characters of one string value shown."""

OPEN_BELOW = 16
"""A group of the label tree starts unfolded when it holds at most this many labels."""

_COLUMNS = ("key", "shape", "dtype", "chunks", "codecs", "stored", "ratio", "state")


# -- the label table -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LabelRow:
    """One array of a dataset, as the label table shows it."""

    path: str
    """Path in the table's tree (``frames/attr1``)."""
    shape: tuple[int, ...]
    """Shape, first axis = example."""
    dtype: str
    """numpy dtype."""
    chunks: str
    """Chunk shape (``-`` for an edflow ``.npy`` label, which is one file)."""
    codecs: str
    """Filters and compressors (``delta+blosc/zstd``)."""
    stored: int | None
    """Bytes in the store, if known."""
    nbytes: int
    """Bytes decoded."""
    state: str
    """Render state or role (``view frames: complete``)."""

    @property
    def ratio(self) -> float | None:
        """Decoded over stored size."""
        return self.nbytes / self.stored if self.stored else None


@dataclass(slots=True)
class Section:
    """A titled table: rows in tree order, and notes on groups (view leaves)."""

    title: str
    rows: list[LabelRow] = field(default_factory=list)
    groups: dict[str, str] = field(default_factory=dict)
    """Annotation of a group path (a view leaf: its index array and state)."""

    def ncolumns(self) -> int:
        """Columns worth showing: the state column only if some row has a state."""
        return len(_COLUMNS) if any(row.state for row in self.rows) else len(_COLUMNS) - 1


def sections(ds: Any) -> list[Section]:
    """The label table of ``ds``: its own labels and, for a view, the rendered labels by leaf.

    Only rows that are shown ask the store for their size (a listing each on remote stores).
    """
    from zview.view import MetaViewDataset

    budget = [MAX_ROWS]
    own = Section("Labels")
    is_view = isinstance(ds, MetaViewDataset)
    status = ds.render_status() if is_view and ds.group is not None else {}
    roles: dict[int, list[str]] = {}
    if is_view:
        for leaf, index in ds.view_leaves():
            roles.setdefault(id(index), []).append(leaf or "(view)")
    for path, array in ds._flat.items():
        leaves_of = roles.get(id(array))
        state = ""
        if leaves_of:
            states = {status.get(leaf) for leaf in leaves_of}
            state = "view " + ", ".join(leaves_of)
            if len(states) == 1 and None not in states:
                state += f": {states.pop()}"
            elif states != {None}:
                state = "view " + ", ".join(f"{leaf}: {status.get(leaf, '-')}"
                                            for leaf in leaves_of)
        own.rows.append(_row(path, array, state, budget))
    out = [own]
    if is_view:
        views = Section("Views (base labels rendered through each view)")
        rendered = getattr(ds, "_rendered", {})
        for leaf, index in ds.view_leaves():
            name = leaf or "(view)"
            state = status.get(leaf, "on access") if ds.group is not None else "on access"
            views.groups[name] = (f"index {_shape(index.shape)} from {_label_name(ds, index)}, "
                                  f"{state}")
            for key, array in rendered.get(leaf, {}).items():
                views.rows.append(_row(f"{name}/{key}", array, state, budget))
        out.append(views)
    return out


def _label_name(ds: Any, index: Any) -> str:
    for path, array in ds._flat.items():
        if array is index:
            return path
    return "?"


def _row(path: str, array: Any, state: str, budget: list[int]) -> LabelRow:
    import zarr

    shape = tuple(int(n) for n in np.shape(array))
    dtype = np.dtype(array.dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    source = getattr(array, "source", None)
    chunks, codecs, stored = "-", "-", None
    if budget[0] > 0:  # sizes of rows cut off are never looked up
        budget[0] -= 1
        if isinstance(source, zarr.Array):
            from zview._codecs import stored_codecs

            chunks = _shape(source.chunks)
            if getattr(source, "shards", None):
                chunks += f" in shards {_shape(source.shards)}"
            codecs = stored_codecs(source)
            stored = array.stored_bytes()
        elif isinstance(source, np.ndarray):
            codecs, stored = "npy (raw)", int(source.nbytes)
        elif hasattr(array, "index"):  # rendered on access from an edflow folder
            codecs = "not stored"
    return LabelRow(path, shape, str(dtype), chunks, codecs, stored, nbytes, state)


# -- values --------------------------------------------------------------------------------------
def _shape(shape: Any) -> str:
    return "(" + ", ".join(str(int(n)) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # unreachable


def _ratio(row: LabelRow) -> str:
    ratio = row.ratio
    if ratio is None:
        return "-"
    return f"{ratio:.0f}x" if ratio >= 100 else f"{ratio:.1f}x"


def _cells(row: LabelRow) -> tuple[str, ...]:
    return (row.path.rsplit("/", 1)[-1], _shape(row.shape), row.dtype, row.chunks, row.codecs,
            _size(row.stored), _ratio(row), row.state)


def as_image(value: Any) -> np.ndarray | None:
    """``value`` as a ``uint8`` image (H, W) or (H, W, 3|4), if it looks like one, else ``None``.

    ``uint8`` arrays are taken as they are; float arrays with values in ``[0, 1]`` or
    ``[-1, 1]`` (edflow's image supports) are mapped to ``0..255``.

    >>> as_image(np.zeros((8, 8, 3))).dtype
    dtype('uint8')
    >>> as_image(np.full((17, 2), 0.5)) is None  # keypoints, not an image
    True
    """
    if not isinstance(value, np.ndarray):
        return None
    if value.ndim == 3 and value.shape[2] == 1:
        value = value[..., 0]
    if value.ndim == 3 and value.shape[2] in (3, 4) and min(value.shape[:2]) >= 4:
        pass
    elif not (value.ndim == 2 and min(value.shape) >= 8):
        return None
    if value.dtype == np.uint8:
        return value
    if value.dtype.kind != "f" or not value.size:
        return None
    low, high = float(np.min(value)), float(np.max(value))
    if not (math.isfinite(low) and math.isfinite(high)) or low < -1.0 or high > 1.0:
        return None
    scaled = (value + 1.0) / 2.0 if low < 0.0 else value
    return np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)


def _png(image: np.ndarray) -> tuple[str, int, int]:
    """A base64 PNG of at most :data:`THUMBNAIL` px and its on-screen width and height."""
    from PIL import Image

    picture = Image.fromarray(image)
    picture.thumbnail((THUMBNAIL, THUMBNAIL))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    width, height = picture.size
    scale = max(1, (THUMBNAIL // 2) // max(width, height))  # tiny images: bigger pixels
    return base64.b64encode(buffer.getvalue()).decode("ascii"), width * scale, height * scale


def _summary(value: np.ndarray) -> str:
    """``(17, 2) float32 [0.1, 3.2]``: shape, dtype and range (the values if only a few)."""
    text = f"{_shape(value.shape)} {value.dtype}"
    if value.size and value.dtype.kind in "biuf":
        if value.size <= 6:
            return text + " " + np.array2string(value.reshape(-1), precision=4, separator=", ")
        low, high = np.nanmin(value), np.nanmax(value)
        return text + f" in [{_number(low)}, {_number(high)}]"
    if value.size and value.size <= 6:
        return text + " " + _clip(repr(value.reshape(-1).tolist()))
    return text


def _number(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, (float, np.floating)) else str(x)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "..."


def _scalar(value: Any) -> str:
    if isinstance(value, (np.generic, np.ndarray)) and np.ndim(value) == 0:
        value = value.item() if not isinstance(value, np.str_) else str(value)
    if isinstance(value, str):
        return _clip(repr(value))
    if isinstance(value, float):
        return _number(value)
    return _clip(repr(value))


# -- the first example ---------------------------------------------------------------------------
@dataclass(slots=True)
class _Budget:
    leaves: int = MAX_EXAMPLE_LEAVES
    images: int = MAX_IMAGES
    skipped: int = 0


def _count_leaves(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_count_leaves(v) for v in value.values())
    if isinstance(value, list):
        return sum(_count_leaves(v) for v in value)
    return 1


def _first_example(ds: Any) -> tuple[Any, str | None]:
    if len(ds) == 0:
        return None, "the dataset is empty"
    try:
        return ds[0], None
    except Exception as e:  # a display must not raise; say what went wrong instead
        return None, f"example 0 could not be loaded: {type(e).__name__}: {e}"


def _example_html(value: Any, budget: _Budget, key: str = "") -> str:
    if isinstance(value, (dict, list)):
        if budget.leaves <= 0:
            budget.skipped += _count_leaves(value)
            return ""
        if isinstance(value, list):
            shown, rest = value[:MAX_ITEMS], value[MAX_ITEMS:]
            budget.skipped += sum(_count_leaves(v) for v in rest)
            cells = "".join(
                f'<div class="zv-item"><div class="zv-idx">{i}</div>'
                f"{_example_html(v, budget, str(i))}</div>" for i, v in enumerate(shown))
            more = f'<div class="zv-note">... {len(rest)} more</div>' if rest else ""
            return f'<div class="zv-list">{cells}{more}</div>'
        rows = []
        for k, v in value.items():
            inner = _example_html(v, budget, str(k))
            if not inner:
                continue
            name = html.escape(str(k))
            if str(k) == "labels_" and isinstance(v, dict):  # a copy of the table above
                inner = (f"<details><summary>{_count_leaves(v)} labels at this index"
                         f"</summary>{inner}</details>")
            rows.append(f'<tr><th>{name}</th><td>{inner}</td></tr>')
        return f'<table class="zv-ex">{"".join(rows)}</table>' if rows else ""
    if budget.leaves <= 0:
        budget.skipped += 1
        return ""
    budget.leaves -= 1
    if isinstance(value, np.ndarray) and value.ndim > 0:
        image = as_image(value) if budget.images > 0 else None
        summary = html.escape(_summary(value))
        if image is not None:
            budget.images -= 1
            data, width, height = _png(image)
            # a short caption keeps a sequence of frames on one line; the range is in the title
            caption = html.escape("x".join(map(str, value.shape)) + f" {value.dtype}")
            return (f'<figure class="zv-img" title="{summary}">'
                    f'<img src="data:image/png;base64,{data}" width="{width}" height="{height}" '
                    f'alt="{html.escape(key)} {summary}" style="image-rendering: pixelated">'
                    f"<figcaption>{caption}</figcaption></figure>")
        return f'<code class="zv-arr">{summary}</code>'
    return f"<code>{html.escape(_scalar(value))}</code>"


def _example_text(value: Any, budget: _Budget, indent: str = "") -> list[str]:
    lines: list[str] = []
    items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
    if isinstance(value, list) and len(items) > MAX_ITEMS:
        budget.skipped += sum(_count_leaves(v) for _, v in items[MAX_ITEMS:])
        items = items[:MAX_ITEMS]
    for k, v in items:
        if budget.leaves <= 0:
            budget.skipped += _count_leaves(v)
            continue
        if isinstance(v, (dict, list)):
            lines.append(f"{indent}{k}:")
            lines += _example_text(v, budget, indent + "  ")
            continue
        budget.leaves -= 1
        if isinstance(v, np.ndarray) and v.ndim > 0:
            kind = "image " if as_image(v) is not None else "array "
            lines.append(f"{indent}{k}: {kind}{_summary(v)}")
        else:
            lines.append(f"{indent}{k}: {_scalar(v)}")
    return lines


# -- the whole summary ---------------------------------------------------------------------------
def _header(ds: Any) -> tuple[str, list[tuple[str, str]]]:
    facts = [("location", str(ds.location)), ("examples", str(len(ds))),
             ("labels", str(len(ds._flat)))]
    base = getattr(ds, "base", None)
    if base is not None:
        facts.append(("base", f"{type(base).__name__} at {getattr(base, 'location', '?')} "
                              f"({len(base)} examples)"))
    return type(ds).__name__, facts


def _description(ds: Any) -> str:
    text = ds.meta.get("description") or ""
    return text if isinstance(text, str) else str(text)


def markdown_html(text: str) -> str:
    """``text`` rendered as Markdown with raw HTML escaped, not passed through.

    >>> markdown_html("# Hi <script>x</script>")
    '<h1>Hi &lt;script&gt;x&lt;/script&gt;</h1>\\n'
    """
    try:
        from markdown_it import MarkdownIt
    except ImportError:  # the notebook extra is optional; show the text as it is
        return f"<pre>{html.escape(text)}</pre>"
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


_STYLE = """<style>
.zview-repr{font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:13px;
 line-height:1.4;max-width:1100px}
.zview-repr h4{margin:.9em 0 .3em;font-size:13px;text-transform:uppercase;letter-spacing:.04em;
 opacity:.7}
.zview-repr .zv-head{font-size:14px}
.zview-repr .zv-head span{margin-right:1.2em}
.zview-repr .zv-desc{border-left:3px solid rgba(127,127,127,.4);padding:0 .8em;margin:.4em 0}
.zview-repr .zv-desc h1,.zview-repr .zv-desc h2,.zview-repr .zv-desc h3{font-size:15px;
 margin:.3em 0}
.zview-repr table{border-collapse:collapse;table-layout:fixed;margin:0}
.zview-repr .zv-labels td,.zview-repr .zv-labels th{padding:1px 6px;text-align:left;
 white-space:nowrap;overflow:hidden;text-overflow:ellipsis;border-bottom:1px solid
 rgba(127,127,127,.15);font-family:var(--jp-code-font-family,monospace);font-size:12px}
.zview-repr .zv-labels th{font-family:inherit;font-weight:600;border-bottom:1px solid
 rgba(127,127,127,.5)}
.zview-repr details>summary{cursor:pointer;font-family:var(--jp-code-font-family,monospace);
 font-size:12px;padding:1px 0}
.zview-repr .zv-body{margin-left:16px}
.zview-repr .zv-group{opacity:.65;font-family:var(--jp-ui-font-family,sans-serif);
 margin-left:.8em}
.zview-repr .zv-note{opacity:.65;font-style:italic;padding:2px 0}
.zview-repr .zv-ex th{text-align:left;vertical-align:top;padding:2px 8px 2px 0;
 font-family:var(--jp-code-font-family,monospace);font-size:12px;font-weight:600}
.zview-repr .zv-ex td{text-align:left;padding:2px 0;vertical-align:top}
.zview-repr .zv-list{display:flex;flex-wrap:wrap;gap:6px}
.zview-repr .zv-item{border:1px solid rgba(127,127,127,.25);border-radius:3px;padding:2px 4px}
.zview-repr .zv-idx{font-size:11px;opacity:.6}
.zview-repr figure.zv-img{margin:0;display:inline-block}
.zview-repr figcaption{font-size:11px;opacity:.7;font-family:var(--jp-code-font-family,
 monospace)}
.zview-repr code{font-size:12px;white-space:pre-wrap}
</style>"""

_WIDTHS = (220, 140, 70, 130, 140, 80, 60, 260)


def _table(depth: int, n: int) -> str:
    """An opening table tag whose columns line up with the header's, ``depth`` groups in."""
    # the key column gives up what the groups indent; a fixed layout needs a fixed table width
    widths = (_WIDTHS[0] - 16 * depth, *_WIDTHS[1:n])
    cols = "".join(f'<col style="width:{w}px">' for w in widths)
    return (f'<table class="zv-labels" style="width:{sum(widths)}px">'
            f"<colgroup>{cols}</colgroup>")


def _table_html(section: Section, shown: list[int]) -> str:
    """The section's rows as a tree of ``<details>`` groups with aligned tables."""
    n = section.ncolumns()
    head = "".join(f"<th>{c}</th>" for c in _COLUMNS[:n])
    out = [f"{_table(0, n)}<tr>{head}</tr></table>"]
    tree: dict[str, Any] = {}
    for row in section.rows:
        node = tree
        for part in row.path.split("/")[:-1]:
            node = node.setdefault(part + "/", {})
        node[row.path.rsplit("/", 1)[-1]] = row
    out.append(_tree_html(tree, section, "", 0, shown))
    return "".join(out)


def _tree_size(node: dict) -> int:
    return sum(_tree_size(v) if isinstance(v, dict) else 1 for v in node.values())


def _tree_html(node: dict, section: Section, prefix: str, depth: int, shown: list[int]) -> str:
    parts: list[str] = []
    rows: list[str] = []

    def flush() -> None:
        if rows:
            parts.append(f'{_table(depth, section.ncolumns())}{"".join(rows)}</table>')
            rows.clear()

    for name, child in node.items():
        if shown[0] <= 0:
            break
        if isinstance(child, LabelRow):
            shown[0] -= 1
            rows.append("<tr>" + "".join(f"<td title=\"{html.escape(c)}\">{html.escape(c)}</td>"
                                         for c in _cells(child)[:section.ncolumns()])
                        + "</tr>")
            continue
        flush()
        path = prefix + name.rstrip("/")
        size = _tree_size(child)
        note = section.groups.get(path)
        extra = f' <span class="zv-group">{html.escape(note)}</span>' if note else ""
        opened = " open" if size <= OPEN_BELOW else ""
        parts.append(f"<details{opened}><summary>{html.escape(name)} "
                     f'<span class="zv-group">{size} label{"s" * (size != 1)}</span>{extra}'
                     f'</summary><div class="zv-body">'
                     f"{_tree_html(child, section, path + '/', depth + 1, shown)}</div></details>")
    flush()
    return "".join(parts)


@dataclass(slots=True)
class Summary:
    """Everything a display shows, computed once; :meth:`html` and :meth:`text` render it."""

    kind: str
    facts: list[tuple[str, str]]
    description: str
    sections: list[Section]
    example: Any
    example_error: str | None

    @classmethod
    def of(cls, ds: Any) -> Summary:
        kind, facts = _header(ds)
        example, error = _first_example(ds)
        return cls(kind, facts, _description(ds), sections(ds), example, error)

    def _total(self) -> int:
        return sum(len(s.rows) for s in self.sections)

    def html(self) -> str:
        facts = "".join(f"<span>{html.escape(k)}: <code>{html.escape(v)}</code></span>"
                        for k, v in self.facts)
        out = [_STYLE, '<div class="zview-repr">',
               f'<div class="zv-head"><b>{html.escape(self.kind)}</b> {facts}</div>']
        if self.description.strip():
            out.append(f'<div class="zv-desc">{markdown_html(self.description)}</div>')
        shown = [MAX_ROWS]
        for section in self.sections:
            if not section.rows and not section.groups:
                continue
            out.append(f"<h4>{html.escape(section.title)}</h4>")
            out.append(_table_html(section, shown))
        if shown[0] <= 0 and self._total() > MAX_ROWS:
            out.append(f'<div class="zv-note">{self._total() - MAX_ROWS} more labels not shown '
                       f"(the dataset's <code>labels</code> lists them all)</div>")
        out.append("<h4>Example 0</h4>")
        if self.example_error is not None:
            out.append(f'<div class="zv-note">{html.escape(self.example_error)}</div>')
        else:
            budget = _Budget()
            out.append(_example_html(self.example, budget))
            if budget.skipped:
                out.append(f'<div class="zv-note">{budget.skipped} more values not shown</div>')
        out.append("</div>")
        return "".join(out)

    def text(self) -> str:
        lines = [f"{self.kind}", *(f"  {k}: {v}" for k, v in self.facts)]
        if self.description.strip():
            lines += ["", *self.description.rstrip().splitlines()]
        left = MAX_ROWS
        for section in self.sections:
            if not section.rows:
                continue
            lines += ["", section.title]
            n = section.ncolumns()
            table = [("key", *_COLUMNS[1:n])]
            for row in section.rows[:max(left, 0)]:
                table.append((row.path, *_cells(row)[1:n]))
            left -= len(section.rows)
            widths = [max(len(r[i]) for r in table) for i in range(n)]
            lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                      for r in table]
            for group, note in section.groups.items():
                lines.append(f"  {group}: {note}")
        if left < 0:
            lines.append(f"  ... {-left} more labels not shown (the dataset's labels lists "
                         f"them all)")
        lines += ["", "Example 0"]
        if self.example_error is not None:
            lines.append(f"  {self.example_error}")
        else:
            budget = _Budget()
            lines += _example_text(self.example, budget, "  ")
            if budget.skipped:
                lines.append(f"  ... {budget.skipped} more values not shown")
        return "\n".join(lines)


def to_html(ds: Any) -> str:
    """The HTML summary of ``ds`` (what Jupyter shows)."""
    return Summary.of(ds).html()


def to_text(ds: Any) -> str:
    """The text summary of ``ds`` (what :meth:`~zview.MetaDataset.show` prints)."""
    return Summary.of(ds).text()


def mimebundle(ds: Any, include: Any = None, exclude: Any = None) -> dict[str, str]:
    """``text/plain`` and ``text/html`` of ``ds``, sharing one read of the first example."""
    summary = Summary.of(ds)
    bundle = {"text/plain": summary.text(), "text/html": summary.html()}
    if include:
        bundle = {k: v for k, v in bundle.items() if k in include}
    if exclude:
        bundle = {k: v for k, v in bundle.items() if k not in exclude}
    return bundle


def show(ds: Any, *, file: IO[str] | None = None) -> None:
    """Print the text summary of ``ds``, as edflow's ``show()`` did."""
    print(to_text(ds), file=file if file is not None else sys.stdout)
