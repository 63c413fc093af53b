"""``zview demo``: a synthetic video dataset, two views on it, and what they cost."""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

PEOPLE = ["ada", "bo", "cy", "dee"]
SIZE = 48
WINDOW = 5


def make_frames(videos: int, frames: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Labels of a synthetic video set: per frame a person, video and frame id, 5 keypoints.

    Each person is a coloured disc moving along its own path; keypoints are its centre and
    four points on its rim.
    """
    rng = np.random.default_rng(seed)
    vid = np.repeat(np.arange(videos), frames)
    fid = np.tile(np.arange(frames), videos)
    pid = vid % len(PEOPLE)
    start = rng.uniform(10, SIZE - 10, (videos, 2))
    speed = rng.uniform(-0.4, 0.4, (videos, 2))
    t = fid[:, None].astype(np.float32)
    centre = (start[vid] + speed[vid] * t) % (SIZE - 16) + 8
    rim = np.array([[0, -6], [6, 0], [0, 6], [-6, 0]], np.float32)
    keypoints = np.concatenate([centre[:, None], centre[:, None] + rim], axis=1)
    paths = np.array([f"images/v{v:03d}/f{f:04d}.png" for v, f in zip(vid, fid, strict=False)])
    return {"image": paths, "keypoints": keypoints.astype(np.float32), "pid": pid,
            "vid": vid, "fid": fid}


def draw(keypoints: np.ndarray, person: int) -> bytes:
    """One PNG frame: a disc in the person's colour at the keypoints' centre."""
    hue = np.array([[230, 80, 60], [60, 160, 230], [90, 200, 90], [230, 190, 60]])[person]
    im = Image.new("RGB", (SIZE, SIZE), (24, 24, 32))
    x, y = keypoints[0]
    ImageDraw.Draw(im).ellipse([x - 6, y - 6, x + 6, y + 6], fill=tuple(int(c) for c in hue))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def windows(vid: np.ndarray, length: int = WINDOW) -> np.ndarray:
    """Start-to-end index rows of every ``length``-frame window inside one video."""
    starts = np.flatnonzero(vid[: len(vid) - length + 1] == vid[length - 1:])
    return starts[:, None] + np.arange(length)


def appearance(frames: np.ndarray, pid: np.ndarray, vid: np.ndarray, seed: int = 0
               ) -> np.ndarray:
    """For each window, a frame of the same person from another video (or any, if none)."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(frames), np.int64)
    for row, first in enumerate(frames[:, 0]):
        same = np.flatnonzero((pid == pid[first]) & (vid != vid[first]))
        pool = same if len(same) else np.flatnonzero(pid == pid[first])
        out[row] = rng.choice(pool)
    return out


def run_demo(path: str, *, videos: int = 12, frames: int = 250, overwrite: bool = False,
             progress: bool = True) -> Any:
    """Write ``path/base`` and ``path/walk``, open the view, and print what was made."""
    import zview

    labels = make_frames(videos, frames)
    base_dir = os.path.join(path, "base")
    zview.write_dataset(
        base_dir, labels, overwrite=overwrite, progress=progress,
        description=f"# Walking discs\n{videos} synthetic videos of {frames} frames: one of "
                    f"{len(PEOPLE)} people (a coloured disc) moving through the picture.",
        loaders={"image": "image", "pid": "category"},
        loader_kwargs={"image": {"support": "0->1"}, "pid": {"categories": PEOPLE}})
    frames = list(zip(labels["image"], labels["keypoints"], labels["pid"], strict=True))
    for rel, kps, person in tqdm(frames,
                                 desc="draw frames", unit="frame", disable=not progress):
        target = os.path.join(base_dir, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(draw(kps, int(person)))
    seq = windows(labels["vid"])
    app = appearance(seq, labels["pid"], labels["vid"])
    zview.write_view(
        os.path.join(path, "walk"), {"frames": seq, "appearance": app}, base=base_dir,
        overwrite=overwrite, progress=progress,
        description=f"Every {WINDOW}-frame window inside one video, with one frame of the "
                    f"same person from another video as appearance reference.")
    view = zview.open(os.path.join(path, "walk"))
    print(report(view, seq, app))
    return view


def report(view: Any, seq: np.ndarray, app: np.ndarray) -> str:
    """What the demo made, for a newcomer."""
    from zview.cli import _bytes

    frames, appear = view.views["frames"], view.views["appearance"]
    npy = seq.nbytes + app.nbytes + 2 * 128
    stored = frames.stored_bytes() + appear.stored_bytes()
    example = view[0]
    lines = [
        "",
        f"base   {view.base.location}",
        f"       {len(view.base)} frames (PNG images, keypoints, person, video and frame ids)",
        f"view   {view.location}",
        f"       {len(view)} examples; example i = 5 consecutive frames + 1 appearance frame",
        "",
        "the view is two index arrays into the base:",
        f"  frames      {seq.shape} {seq.dtype}   row 0 = {seq[0].tolist()}",
        f"  appearance  {app.shape} {app.dtype}      row 0 = {int(app[0])}",
        f"  stored {_bytes(stored)} as zarr, {_bytes(npy)} as edflow .npy "
        f"({npy / max(stored, 1):.0f}x smaller)",
        "",
        "example 0 (view[0]) walks the tree at row 0 and loads base[j] for every index j:",
    ]
    for k, frame in enumerate(example["frames"]):
        lines.append(f"  frames[{k}]    base[{int(frame['index_'])}]: image "
                     f"{frame['image'].shape} {frame['image'].dtype}, person {frame['pid']!r}")
    a = example["appearance"]
    lines.append(f"  appearance   base[{int(a['index_'])}]: image {a['image'].shape}, "
                 f"person {a['pid']!r}")
    rendered = example["labels_"]["frames"]
    lines += [
        "",
        "the base's labels are rendered through each view, so you can filter without images:",
        f"  view.labels['frames']['keypoints']  {view.labels['frames']['keypoints'].shape}",
        f"  example 0 frames' video ids: {rendered['vid'].tolist()}, frame ids: "
        f"{rendered['fid'].tolist()}",
        "",
        f"open it anywhere:  zview.open({str(view.location)!r})",
    ]
    return "\n".join(lines)
