"""Display: HTML and text summaries of datasets; progress bars that ``progress=False`` hushes."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zview
from zview import display

HOSTILE = "# Title\n\n<script>alert('owned')</script> **bold** <img src=x onerror=alert(1)>"


@pytest.fixture
def converted(tmp_path: Path, edflow_copy: Path) -> Path:
    """The edflow fixture converted to zarr stores: ``base`` and ``view`` (rendered)."""
    zview.convert(edflow_copy / "base", tmp_path / "base", progress=False)
    zview.convert(edflow_copy / "view", tmp_path / "view", progress=False)
    return tmp_path


def _pngs(text: str) -> list[Image.Image]:
    found = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in found]


def test_html_has_the_label_table_and_inline_pngs(converted: Path):
    view = zview.open(converted / "view")
    out = view._repr_html_()
    for column in ("key", "shape", "dtype", "chunks", "codecs", "stored", "ratio", "state"):
        assert f"<th>{column}</th>" in out
    assert "<details" in out and "keypoints" in out and "(7, 3, 17, 2)" in out
    assert "complete" in out  # render state of the rendered labels
    assert "delta+blosc/zstd" in out or "blosc/zstd" in out
    images = _pngs(out)
    # example 0: 3 frames, 1 appearance, a 2x2 grid and a pair of (3 frames, 1 image)
    assert len(images) == 3 + 1 + 4 + 4
    assert all(im.format == "PNG" and im.size == (8, 8) for im in images)
    assert "A view on the base." in out


def test_image_pixels_survive_the_thumbnail(converted: Path):
    base = zview.open(converted / "base")
    [thumbnail] = _pngs(base._repr_html_())
    want = np.rint((base[0]["image"] + 1) / 2 * 255).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(thumbnail.convert("RGB")), want)


def test_hostile_description_and_values_are_escaped(tmp_path: Path):
    zview.write_dataset(tmp_path / "evil", {"note": np.array(["<script>x()</script>", "ok"]),
                                            "value": np.arange(2)},
                        description=HOSTILE, progress=False)
    out = zview.open(tmp_path / "evil")._repr_html_()
    assert "<script" not in out and "<img src=x" not in out
    assert "&lt;script&gt;alert(" in out and "&lt;script&gt;x()&lt;/script&gt;" in out
    assert "<h1>Title</h1>" in out and "<strong>bold</strong>" in out  # Markdown still rendered


def test_markdown_links_cannot_run_script():
    out = display.markdown_html("[click](javascript:alert(1))")
    assert "href" not in out and "<a" not in out  # shown as text, never a link


def _legacy_with_many_labels(root: Path, groups: int, per_group: int) -> Path:
    """An edflow folder (raw ``.npy`` memmaps) with ``groups * per_group`` labels: fast to make."""
    for g in range(groups):
        folder = root / "labels" / f"group{g:02d}"
        folder.mkdir(parents=True)
        for i in range(per_group):
            (np.arange(4, dtype=np.int64) * i).tofile(folder / f"label{i:03d}-*-4-*-int64.npy")
    (root / "meta.yaml").write_text("description: many labels\n")
    return root


def test_html_of_thousands_of_labels_is_bounded(tmp_path: Path):
    ds = zview.open(_legacy_with_many_labels(tmp_path / "many", 30, 100))
    assert len(ds._flat) == 3000
    out = ds._repr_html_()
    assert len(out) < 100_000
    assert f"{3000 - display.MAX_ROWS} more labels not shown" in out
    assert "more values not shown" in out  # example 0's labels_ is cut off too
    text = display.to_text(ds)
    assert len(text) < 30_000 and "more labels not shown" in text


def test_small_groups_start_unfolded_big_ones_folded(tmp_path: Path):
    ds = zview.open(_legacy_with_many_labels(tmp_path / "some", 2, display.OPEN_BELOW + 1))
    out = ds._repr_html_()
    assert out.count("<details>") >= 2 and "<details open>" not in out.split("Example 0")[0]
    small = zview.open(_legacy_with_many_labels(tmp_path / "few", 2, 3))
    assert small._repr_html_().split("Example 0")[0].count("<details open>") == 2


def test_show_prints_description_labels_and_example(converted: Path, capsys):
    view = zview.open(converted / "view")
    view.show()
    out = capsys.readouterr().out
    assert out.startswith("MetaViewDataset\n")
    assert "A view on the base." in out
    assert re.search(r"frames/keypoints\s+\(7, 3, 17, 2\)\s+float32", out)
    assert "Example 0" in out and "image: image (8, 8, 3) float64" in out
    assert "pid: 'cleo'" in out
    assert "\n" not in repr(view)


def test_mimebundle_has_text_and_html(converted: Path):
    base = zview.open(converted / "base")
    bundle = base._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}
    assert "# Base" in bundle["text/plain"] and "<h1>Base</h1>" in bundle["text/html"]
    assert set(base._repr_mimebundle_(include=["text/html"])) == {"text/html"}
    assert set(base._repr_mimebundle_(exclude=["text/html"])) == {"text/plain"}


def test_legacy_view_shows_labels_rendered_on_access():
    from tests._expected import FIXTURE

    text = display.to_text(zview.open(FIXTURE / "view"))
    assert re.search(r"frames/attr1 .* not stored .* on access", text)


def test_an_example_that_fails_to_load_is_reported_not_raised(edflow_copy: Path):
    (edflow_copy / "base" / "images" / "000.png").unlink()
    out = zview.open(edflow_copy / "base")._repr_html_()
    assert "example 0 could not be loaded" in out
    assert "<th>key</th>" in out


def test_empty_dataset(tmp_path: Path):
    zview.write_dataset(tmp_path / "empty", {"x": np.zeros((0, 3))}, progress=False)
    assert "the dataset is empty" in display.to_text(zview.open(tmp_path / "empty"))


@pytest.mark.parametrize(("value", "expected"), [
    (np.full((8, 8, 3), 7, np.uint8), 7),          # uint8 as it is
    (np.zeros((8, 8, 3)), 0),                      # 0..1
    (np.full((8, 8, 1), 0.5), 128),                # 0..1, one channel
    (np.ones((8, 8, 4), np.float32), 255),         # 0..1, RGBA
    (-np.ones((8, 8)), 0),                         # -1..1: -1 is black
    (np.linspace(-0.5, 1, 64).reshape(8, 8), 64),  # -1..1: -0.5 is a quarter
])
def test_as_image_maps_supports_to_uint8(value, expected):
    image = display.as_image(value)
    assert image is not None and image.dtype == np.uint8
    assert image.shape[:2] == value.shape[:2]
    assert image.flat[0] == expected


@pytest.mark.parametrize("value", [
    np.full((17, 2), 0.5),                  # keypoints
    np.full((8, 8, 3), 2.0),                # floats out of an image support
    np.arange(64, dtype=np.int64).reshape(8, 8),
    np.full((8, 8, 5), 0.5),                # five channels
    np.full((8, 8), np.nan),
])
def test_as_image_rejects_what_is_not_an_image(value):
    assert display.as_image(value) is None


# -- progress bars --------------------------------------------------------------------------------
def _write_all(tmp_path: Path, edflow_copy: Path, *, progress: bool) -> None:
    base = tmp_path / f"base-{progress}"
    zview.write_dataset(base, {"a": np.arange(30), "b": np.ones((30, 2))}, progress=progress)
    windows = np.arange(26)[:, None] + np.arange(5)
    zview.write_view(tmp_path / f"view-{progress}", {"frames": windows, "one": np.arange(26)},
                     base=base, progress=progress)
    zview.write_view(tmp_path / f"later-{progress}", {"frames": windows}, base=base,
                     render=False, progress=progress)
    zview.render(tmp_path / f"later-{progress}", progress=progress)
    zview.write_view(tmp_path / f"open-{progress}", {"frames": windows}, base=base,
                     render=False, progress=progress)
    zview.MetaViewDataset(tmp_path / f"open-{progress}", progress=progress)  # renders on open
    for name in ("base", "view"):
        zview.convert(edflow_copy / name, tmp_path / f"{name}-converted-{progress}",
                      progress=progress)


def test_progress_false_is_silent(tmp_path: Path, edflow_copy: Path, capfd):
    _write_all(tmp_path, edflow_copy, progress=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_progress_true_shows_bars(tmp_path: Path, edflow_copy: Path, capfd):
    """The control for the test above: the same calls do draw bars on stderr."""
    _write_all(tmp_path, edflow_copy, progress=True)
    err = capfd.readouterr().err
    assert "render" in err and "write" in err and "%|" in err
