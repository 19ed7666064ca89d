"""A generated dataset in AVA's exact layout, built so that learning can be proven on a CPU.

Every tool reads it unchanged: real H.264 mp4 files (the 15-minute-cut convention: video time 0
is AVA second 900), ground-truth and predicted-box CSVs, label maps in both pbtxt dialects,
excluded timestamps and PySlowFast frame lists (plus, with ``write_frames``, the extracted
frames themselves). Output, for video ids ``syn_000 ...``::

    DIR/videos/syn_000.mp4                         30 fps, 160x120, lossless libx264 (qp 0), yuv420p
    DIR/annotations/ava_{train,val}_v2.2.csv       video,sec,x1,y1,x2,y2,action,person
    DIR/annotations/ava_{train,val}_predicted_boxes.csv   video,sec,x1,y1,x2,y2,,score
    DIR/annotations/ava_{train,val}_excluded_timestamps_v2.2.csv
    DIR/annotations/ava_action_list_v2.2.pbtxt                    label { name label_id label_type }
    DIR/annotations/ava_action_list_v2.2_for_activitynet_2019.pbtxt  item { name id }
    DIR/frame_lists/{train,val}.csv                PySlowFast frame lists (space separated)
    DIR/frames/syn_000/syn_000_000001.jpg          only with write_frames (ffmpeg numbering from 1)

Scene. Each video has a static textured background and 2-4 "actors" (striped coloured
rectangles), one per cell of a 2x2 grid so they never overlap. Keyframes are the seconds
902 .. 900 + seconds - 2 (AVA's 1 fps convention, leaving room for a clip around each). Each
actor has exactly one motion class and, with probability 0.4, also the flicker class:

==  ================  =============================================================  ========
id  name              what the pixels do                                             needs
==  ================  =============================================================  ========
1   static            does not move                                                  Fast
2   slow drift        slides sideways at 1 px/frame, turning at its cell's edges     Slow
3   bounce            hops up and down, 9 px high, period 24 frames                  Slow
4   fast oscillation  swings sideways +-6 px with a period of 10 frames              Fast
5   fast flicker      bright for 5 frames, dark (x0.35) for 5 (period 10 frames)      Fast
==  ================  =============================================================  ========

Why period 10 makes classes 1, 4 and 5 invisible to the Slow pathway. The tiny configs sample
DATA.NUM_FRAMES 16 at DATA.SAMPLING_RATE 2 around keyframe frame c = (sec - 900) * 30, i.e.
frames c-16, c-14, ..., c+14; SLOWFAST.ALPHA 4 gives the Slow pathway positions
linspace(0, 15, 4) = 0, 5, 10, 15 of those, i.e. frames c-16, c-6, c+4, c+14: 10 frames apart.
With a period of exactly 10 frames, Slow sees one phase of the oscillation and of the flicker in
all its frames, while Fast (every 2nd frame) sees 5 phases per period. What Slow sees of an
oscillating or flickering actor is then a still actor at a fixed sideways offset in
{6 sin(2 pi k / 10)} and at a fixed brightness (bright or dark, 1/2 each), with k uniform
because every actor draws a random phase. To leave no other cue, every actor that does not
oscillate is drawn at a fixed offset 6 sin(2 pi k / 10) with a random k, every actor that does
not flicker is drawn bright or dark with probability 1/2, and every box spans the full
oscillation range (actor width + 2 x 6 px), so box and actor line up alike for all classes.
A Slow-only baseline sees the same blindness when its frames are also 10 apart
(DATA.NUM_FRAMES 4, DATA.SAMPLING_RATE 10: frames c-20, c-10, c, c+10). Drift (10 px) and
bounce (up to 9 px) move between Slow's frames, so both models can learn them.

The signals are strong on purpose (a 6 px swing on a 18-26 px wide actor, a 65% brightness drop)
so that a tiny model learns them in minutes. The videos are coded losslessly: identical frames
decode to identical pixels, so nothing but the drawn motion tells the classes apart (with lossy
coding, a still actor and one at the same phase of its swing differ by compression noise: mean
|difference| 0.02 vs 1.3 grey levels between frames 10 apart). Predicted boxes are the
ground-truth boxes jittered by ~1% of the frame, with scores in [0.92, 1) (all pass
AVA.DETECTION_SCORE_THRESH 0.9), plus false positives on the background with scores below 0.6.
One keyframe of the first video of each split (and of a third of the others; none in videos with
fewer than 3 keyframes) is listed as excluded and left out of the ground truth, as in AVA.
Everything is drawn from ``numpy.random.default_rng(seed)`` and x264 runs single-threaded, so a
seed gives identical files.

Annotation-tool exports (``annotation_formats``, ``--annotation-formats cvat,via``). The same
people and actions as annotators would export them from CVAT or VIA, under custom class ids
and names (`CUSTOM_CLASSES`: not AVA's, not contiguous), in the time of the video file (second
0 is its first frame, not AVA's 900), for every video of both splits::

    DIR/custom/labelmap.pbtxt            item { name id } with the custom ids
    DIR/custom/cvat/syn_000.xml          CVAT for video 1.1, one task per video: a "person"
                                         track per actor (track id = person id) with a box on
                                         every frame (keyframe="1" every second) and one
                                         checkbox attribute per custom class
    DIR/custom/via/project.json          VIA 3 project of all videos: a rectangle per actor at
                                         every whole second, "person_id" text and "action"
                                         checkbox attributes
    DIR/custom/person_boxes.csv          what a person detector would give at every whole
                                         second: video,second,x1,y1,x2,y2,,score (file time)

`tools/import_annotations.py --format cvat|via ... --labelmap DIR/custom/labelmap.pbtxt` turns
them back into this dataset's boxes and actions (at seconds 0 .. seconds - 1); the detector
boxes are drawn from their own random stream, so asking for exports leaves every other file
unchanged.

Sizes: by default 16 videos of 12 s (the last 4 are the val split), keyframes 902-910, about
5 s to generate on 2 cores (frames add a few seconds); ``synthetic_ava.json`` records the
settings.

Crossing people (for tracking, separate from the dataset above): `make_crossing_scene` gives
a `CrossingScene` of people walking across the frame in both directions on nearby lanes, so
paths cross and nearer people hide farther ones, with known identities, boxes and visible
fractions at any time (`CrossingScene.boxes_at`), each person's actions over time, frames
(`render`, `write_video`), and `noisy_detections`, what a person detector might report.
"""

from __future__ import annotations

import csv
import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from tqdm import tqdm

from detection.ava.dataset_files import format_labelmap

from .video import VideoReader

ACTION_NAMES = {1: "static", 2: "slow drift", 3: "bounce", 4: "fast oscillation", 5: "fast flicker"}
MOTION_CLASSES = (1, 2, 3, 4)
FLICKER_CLASS = 5
# Classes that only a pathway seeing more than one phase per 10 frames can tell apart.
FAST_CLASSES = (1, 4, 5)

FPS = 30
VIDEO_START_SEC = 900
FAST_PERIOD = 10  # frames; see the module docstring
OSC_AMPLITUDE = 6.0  # px
DARK_LEVEL = 0.35
FLICKER_PROB = 0.4
DRIFT_SPEED = 1.0  # px per frame
BOUNCE_HEIGHT = 9.0  # px
BOUNCE_PERIOD = 24  # frames
BOX_PAD = 2  # px around the actor's full extent
FRAME_LIST_HEADER = "original_vido_id video_id frame_id path labels"

CUSTOM_CLASSES = {
    1: (3, "stand still"),
    2: (7, "stroll"),
    3: (8, "hop"),
    4: (12, "shake"),
    5: (15, "blink"),
}
"""Generated class id -> (custom id, custom name) in the annotation-tool exports: ids with gaps
and above the class count, names other than `ACTION_NAMES`, as a user's own label map has."""
ANNOTATION_FORMATS = ("cvat", "via")
CUSTOM_DIR = "custom"
CVAT_PERSON_LABEL = "person"


@dataclass(frozen=True)
class Actor:
    """One moving rectangle. Positions are of the rectangle's centre, in pixels."""

    person_id: int
    labels: tuple[int, ...]
    width: int
    height: int
    color: tuple[int, int, int]
    cell: tuple[float, float, float, float]  # x0, y0, x1, y1 of the grid cell
    center: tuple[float, float]  # base position (drift starts here)
    osc_phase: int
    flicker_phase: int
    level: float  # constant brightness of a non-flickering actor
    drift_dir: int  # +1 or -1
    bounce_phase: int

    @property
    def half_box(self) -> tuple[float, float]:
        """Half width and height of the box (full oscillation range plus padding)."""
        return self.width / 2 + OSC_AMPLITUDE + BOX_PAD, self.height / 2 + BOX_PAD

    def base_center(self, frame: int) -> tuple[float, float]:
        """Centre of the box at `frame` (slow motion only)."""
        cx, cy = self.center
        if 2 in self.labels:
            hw = self.half_box[0]
            lo, hi = self.cell[0] + hw, self.cell[2] - hw
            span = hi - lo
            # Triangle wave: slide at DRIFT_SPEED, turn at the cell's edges.
            pos = (cx - lo + self.drift_dir * DRIFT_SPEED * frame) % (2 * span)
            cx = lo + (pos if pos <= span else 2 * span - pos)
        if 3 in self.labels:
            cy -= BOUNCE_HEIGHT * abs(
                math.sin(math.pi * (frame + self.bounce_phase) / BOUNCE_PERIOD)
            )
        return cx, cy

    def box(self, frame: int, frame_w: int, frame_h: int) -> tuple[float, float, float, float]:
        """Normalized box (x1, y1, x2, y2) at `frame`."""
        (cx, cy), (hw, hh) = self.base_center(frame), self.half_box
        return (
            max(0.0, (cx - hw) / frame_w),
            max(0.0, (cy - hh) / frame_h),
            min(1.0, (cx + hw) / frame_w),
            min(1.0, (cy + hh) / frame_h),
        )

    def appearance(self, frame: int) -> tuple[float, float]:
        """(sideways offset in px, brightness factor) at `frame`."""
        osc_phase = frame + self.osc_phase if 4 in self.labels else self.osc_phase
        dx = OSC_AMPLITUDE * math.sin(2 * math.pi * osc_phase / FAST_PERIOD)
        if FLICKER_CLASS in self.labels:
            bright = (frame + self.flicker_phase) % FAST_PERIOD < FAST_PERIOD // 2
            return dx, 1.0 if bright else DARK_LEVEL
        return dx, self.level


@dataclass(frozen=True)
class SyntheticAva:
    """Where a generated dataset lives and what it holds."""

    root: Path
    train_videos: tuple[str, ...]
    val_videos: tuple[str, ...]
    seconds: int
    width: int
    height: int

    @property
    def keyframe_seconds(self) -> range:
        return range(VIDEO_START_SEC + 2, VIDEO_START_SEC + self.seconds - 1)


def _random_actor(
    rng: np.random.Generator, person_id: int, cell: tuple[float, float, float, float]
) -> Actor:
    labels = [int(rng.choice(MOTION_CLASSES))]
    if rng.random() < FLICKER_PROB:
        labels.append(FLICKER_CLASS)
    width, height = int(rng.integers(18, 27)), int(rng.integers(24, 35))
    hue = int(rng.integers(0, 180))
    hsv = np.array(
        [[[hue, int(rng.integers(160, 256)), int(rng.integers(220, 256))]]], dtype=np.uint8
    )
    red, green, blue = (int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])
    hw, hh = width / 2 + OSC_AMPLITUDE + BOX_PAD, height / 2 + BOX_PAD
    x0, y0, x1, y1 = cell
    cx = float(rng.uniform(x0 + hw, x1 - hw))
    cy = float(rng.uniform(y0 + hh + BOUNCE_HEIGHT, y1 - hh))
    return Actor(
        person_id=person_id,
        labels=tuple(labels),
        width=width,
        height=height,
        color=(red, green, blue),
        cell=cell,
        center=(cx, cy),
        osc_phase=int(rng.integers(0, FAST_PERIOD)),
        flicker_phase=int(rng.integers(0, FAST_PERIOD)),
        level=1.0 if rng.random() < 0.5 else DARK_LEVEL,
        drift_dir=1 if rng.random() < 0.5 else -1,
        bounce_phase=int(rng.integers(0, BOUNCE_PERIOD)),
    )


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    coarse = rng.uniform(40, 150, size=(5, 7, 3)).astype(np.float32)
    return (
        cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        .clip(0, 255)
        .astype(np.uint8)
    )


def _actor_texture(actor: Actor) -> np.ndarray:
    """float32 [h, w, 3]: the actor's colour with horizontal stripes, so motion shows in edges."""
    stripes = np.where((np.arange(actor.height) // 3) % 2 == 0, 1.0, 0.7).astype(np.float32)
    return (
        stripes[:, None, None]
        * np.array(actor.color, dtype=np.float32)[None, None, :]
        * np.ones((1, actor.width, 1), np.float32)
    )


def render_frame(
    background: np.ndarray, actors: list[Actor], textures: list[np.ndarray], frame: int
) -> np.ndarray:
    """uint8 RGB [H, W, 3] of the scene at `frame`."""
    image = background.copy()
    height, width = image.shape[:2]
    for actor, texture in zip(actors, textures, strict=True):
        (cx, cy), (dx, level) = actor.base_center(frame), actor.appearance(frame)
        x0 = int(round(cx + dx - actor.width / 2))
        y0 = int(round(cy - actor.height / 2))
        xa, ya = max(0, x0), max(0, y0)
        xb, yb = min(width, x0 + actor.width), min(height, y0 + actor.height)
        image[ya:yb, xa:xb] = (texture[ya - y0 : yb - y0, xa - x0 : xb - x0] * level).astype(
            np.uint8
        )
    return image


def _write_video(path: Path, background: np.ndarray, actors: list[Actor], num_frames: int) -> None:
    textures = [_actor_texture(a) for a in actors]
    height, width = background.shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # Lossless (qp 0): lossy coding leaves noise that differs between a still actor and one
        # that moved away and back, a cue that would let the Slow pathway see the period-10
        # classes (module docstring). A 1 s GOP keeps seeks short; one thread keeps the bitstream
        # identical from run to run.
        stream.options = {"qp": "0", "preset": "veryfast", "threads": "1"}
        stream.codec_context.gop_size = FPS
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(
                render_frame(background, actors, textures, index), format="rgb24"
            )
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def _fmt_box(box: tuple[float, float, float, float]) -> list[str]:
    return [f"{v:.3f}" for v in box]


def _jitter_box(
    rng: np.random.Generator, box: tuple[float, ...], sigma: float
) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = np.clip(np.asarray(box) + rng.normal(0.0, sigma, 4), 0.0, 1.0)
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def _write_labelmaps(annotation_dir: Path) -> None:
    (annotation_dir / "ava_action_list_v2.2.pbtxt").write_text(
        format_labelmap(ACTION_NAMES, dialect="label")
    )
    (annotation_dir / "ava_action_list_v2.2_for_activitynet_2019.pbtxt").write_text(
        format_labelmap(ACTION_NAMES)
    )


def write_frame_layout(
    video_path: str | Path, frame_dir: str | Path, video_id: str, ext: str = "jpg"
) -> int:
    """Decode every frame of `video_path` and write ``frame_dir/{id}/{id}_%06d.{ext}`` (numbered
    from 1, as ffmpeg does). JPEG quality 95; PNG is lossless. Returns the number of frames."""
    out_dir = Path(frame_dir) / video_id
    out_dir.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == "jpg" else []
    count = 0
    with VideoReader(video_path) as reader:
        for count, (image, _) in enumerate(reader.iter_frames(), start=1):
            cv2.imwrite(
                str(out_dir / f"{video_id}_{count:06d}.{ext}"),
                cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                params,
            )
    return count


def write_frame_list(
    path: str | Path, video_ids: list[str], num_frames: dict[str, int], ext: str = "jpg"
) -> None:
    """PySlowFast frame list: header, then ``original_id video_idx frame_idx path ""`` per frame."""
    lines = [FRAME_LIST_HEADER]
    for video_idx, vid in enumerate(video_ids):
        lines += [
            f'{vid} {video_idx} {i} {vid}/{vid}_{i + 1:06d}.{ext} ""'
            for i in range(num_frames[vid])
        ]
    Path(path).write_text("\n".join(lines) + "\n")


def generate_synthetic_ava(
    output_dir: str | Path,
    *,
    num_videos: int = 16,
    seconds: int = 12,
    seed: int = 0,
    num_val: int | None = None,
    width: int = 160,
    height: int = 120,
    write_frames: bool = False,
    annotation_formats: Sequence[str] = (),
    progress: bool = True,
) -> SyntheticAva:
    """Write the dataset described in the module docstring to `output_dir`.

    The last `num_val` videos (default ``max(1, num_videos // 4)``) form the val split.
    `annotation_formats` (any of `ANNOTATION_FORMATS`) adds the annotation-tool exports under
    ``custom/``.
    """
    unknown = sorted(set(annotation_formats) - set(ANNOTATION_FORMATS))
    if unknown:
        raise ValueError(f"annotation formats must be among {ANNOTATION_FORMATS}, got {unknown}")
    if seconds < 4:
        raise ValueError(
            f"seconds must be >= 4 to hold one keyframe with a clip around it, got {seconds}"
        )
    num_val = max(1, num_videos // 4) if num_val is None else num_val
    if not 1 <= num_val < num_videos:
        raise ValueError(
            f"need 1 <= num_val < num_videos, got num_val={num_val}, num_videos={num_videos}"
        )
    root = Path(output_dir)
    dirs = {name: root / name for name in ("videos", "annotations", "frame_lists", "frames")}
    for name, d in dirs.items():
        if name != "frames" or write_frames:
            d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    video_ids = [f"syn_{i:03d}" for i in range(num_videos)]
    splits = {"train": video_ids[: num_videos - num_val], "val": video_ids[num_videos - num_val :]}
    info = SyntheticAva(root, tuple(splits["train"]), tuple(splits["val"]), seconds, width, height)
    num_frames = seconds * FPS
    cells = [
        (cx * width / 2, cy * height / 2, (cx + 1) * width / 2, (cy + 1) * height / 2)
        for cy in (0, 1)
        for cx in (0, 1)
    ]

    gt_rows: dict[str, list[list[str]]] = {"train": [], "val": []}
    pred_rows: dict[str, list[list[str]]] = {"train": [], "val": []}
    excluded: dict[str, list[list[str]]] = {"train": [], "val": []}
    scenes: dict[str, list[Actor]] = {}
    for vid in tqdm(video_ids, desc="synthetic AVA videos", disable=not progress):
        split = "train" if vid in splits["train"] else "val"
        background = _background(rng, width, height)
        chosen = rng.permutation(len(cells))[: int(rng.integers(2, 5))]
        actors = [_random_actor(rng, pid, cells[c]) for pid, c in enumerate(chosen)]
        scenes[vid] = actors
        _write_video(dirs["videos"] / f"{vid}.mp4", background, actors, num_frames)
        seconds_here = list(info.keyframe_seconds)
        excluded_sec = None
        # Short videos keep all their keyframes: excluding one of one or two would empty them.
        if len(seconds_here) >= 3 and (vid == splits[split][0] or rng.random() < 1 / 3):
            excluded_sec = int(rng.choice(seconds_here))
            excluded[split].append([vid, f"{excluded_sec:04d}"])
        for sec in seconds_here:
            frame = (sec - VIDEO_START_SEC) * FPS
            for actor in actors:
                box = actor.box(frame, width, height)
                if sec != excluded_sec:
                    gt_rows[split] += [
                        [vid, f"{sec:04d}", *_fmt_box(box), str(a), str(actor.person_id)]
                        for a in actor.labels
                    ]
                score = rng.uniform(0.92, 1.0)
                pred_rows[split].append(
                    [vid, f"{sec:04d}", *_fmt_box(_jitter_box(rng, box, 0.01)), "", f"{score:.6f}"]
                )
            if rng.random() < 0.3:
                bw, bh = rng.uniform(0.1, 0.25), rng.uniform(0.15, 0.3)
                x1, y1 = rng.uniform(0, 1 - bw), rng.uniform(0, 1 - bh)
                pred_rows[split].append(
                    [
                        vid,
                        f"{sec:04d}",
                        *_fmt_box((x1, y1, x1 + bw, y1 + bh)),
                        "",
                        f"{rng.uniform(0.05, 0.6):.6f}",
                    ]
                )

    ann = dirs["annotations"]
    for split in ("train", "val"):
        _write_csv(ann / f"ava_{split}_v2.2.csv", gt_rows[split])
        _write_csv(ann / f"ava_{split}_predicted_boxes.csv", pred_rows[split])
        _write_csv(ann / f"ava_{split}_excluded_timestamps_v2.2.csv", excluded[split])
        write_frame_list(
            dirs["frame_lists"] / f"{split}.csv",
            splits[split],
            dict.fromkeys(splits[split], num_frames),
        )
    _write_labelmaps(ann)
    manifest = {k: v for k, v in asdict(info).items() if k != "root"}
    manifest.update(seed=seed, fps=FPS, fast_period=FAST_PERIOD, actions=ACTION_NAMES)
    if annotation_formats:
        manifest.update(
            annotation_formats=sorted(set(annotation_formats)),
            custom_classes={str(k): list(v) for k, v in CUSTOM_CLASSES.items()},
        )
        write_annotation_exports(root / CUSTOM_DIR, scenes, info, annotation_formats, seed=seed)
    (root / "synthetic_ava.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if write_frames:
        for vid in tqdm(video_ids, desc="extracting JPEG frames", disable=not progress):
            written = write_frame_layout(dirs["videos"] / f"{vid}.mp4", dirs["frames"], vid)
            if written != num_frames:
                raise RuntimeError(f"{vid}.mp4 decoded to {written} frames, expected {num_frames}")
    return info


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def write_annotation_exports(
    out_dir: str | Path,
    scenes: dict[str, list[Actor]],
    info: SyntheticAva,
    formats: Sequence[str],
    *,
    seed: int = 0,
) -> None:
    """Write the annotation-tool exports of the module docstring for `scenes` (video id -> its
    actors) into `out_dir`: the custom label map, the person-detector boxes and each of
    `formats` ("cvat": one XML per video, "via": one project)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "labelmap.pbtxt").write_text(format_labelmap(dict(CUSTOM_CLASSES.values())))
    if "cvat" in formats:
        (out_dir / "cvat").mkdir(exist_ok=True)
        for task_id, (vid, actors) in enumerate(scenes.items(), start=1):
            _write_cvat_task(out_dir / "cvat" / f"{vid}.xml", task_id, vid, actors, info)
    if "via" in formats:
        (out_dir / "via").mkdir(exist_ok=True)
        project = _via_project(scenes, info)
        (out_dir / "via" / "project.json").write_text(json.dumps(project, indent=1) + "\n")
    # Its own stream: the dataset's files stay the same with or without exports.
    rng = np.random.default_rng([seed, 1])
    rows: list[list[str]] = []
    for vid, actors in scenes.items():
        for sec in range(info.seconds):
            for actor in actors:
                box = _jitter_box(rng, actor.box(sec * FPS, info.width, info.height), 0.01)
                rows.append([vid, f"{sec:04d}", *_fmt_box(box), "", f"{rng.uniform(0.92, 1):.6f}"])
            if rng.random() < 0.3:
                bw, bh = rng.uniform(0.1, 0.25), rng.uniform(0.15, 0.3)
                x1, y1 = rng.uniform(0, 1 - bw), rng.uniform(0, 1 - bh)
                box = (x1, y1, x1 + bw, y1 + bh)
                rows.append(
                    [vid, f"{sec:04d}", *_fmt_box(box), "", f"{rng.uniform(0.05, 0.6):.6f}"]
                )
    _write_csv(out_dir / "person_boxes.csv", rows)


def _custom_names(actor: Actor) -> list[str]:
    return [CUSTOM_CLASSES[a][1] for a in actor.labels]


def _pixel_box(actor: Actor, frame: int, info: SyntheticAva) -> tuple[float, ...]:
    x1, y1, x2, y2 = actor.box(frame, info.width, info.height)
    return (x1 * info.width, y1 * info.height, x2 * info.width, y2 * info.height)


def _write_cvat_task(
    path: Path, task_id: int, video_id: str, actors: list[Actor], info: SyntheticAva
) -> None:
    """One CVAT task's "for video 1.1" export: a person track per actor, a box on every frame
    (pixels of the 30 fps file, (xtl, ytl) the top-left corner) with every custom class as a
    checkbox attribute."""
    num_frames = info.seconds * FPS
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    meta = ET.SubElement(root, "meta")
    task = ET.SubElement(meta, "task")
    for key, value in (
        ("id", str(task_id)),
        ("name", video_id),
        ("size", str(num_frames)),
        ("mode", "interpolation"),
        ("overlap", "0"),
        ("bugtracker", ""),
        ("flipped", "False"),
        ("start_frame", "0"),
        ("stop_frame", str(num_frames - 1)),
        ("frame_filter", ""),
    ):
        ET.SubElement(task, key).text = value
    label = ET.SubElement(ET.SubElement(task, "labels"), "label")
    ET.SubElement(label, "name").text = CVAT_PERSON_LABEL
    attributes = ET.SubElement(label, "attributes")
    for _, name in CUSTOM_CLASSES.values():
        attribute = ET.SubElement(attributes, "attribute")
        for key, value in (
            ("name", name),
            ("mutable", "False"),
            ("input_type", "checkbox"),
            ("default_value", "false"),
            ("values", "false"),
        ):
            ET.SubElement(attribute, key).text = value
    size = ET.SubElement(task, "original_size")
    ET.SubElement(size, "width").text = str(info.width)
    ET.SubElement(size, "height").text = str(info.height)
    ET.SubElement(meta, "source").text = f"{video_id}.mp4"
    for actor in actors:
        doing = set(_custom_names(actor))
        track = ET.SubElement(
            root,
            "track",
            {"id": str(actor.person_id), "label": CVAT_PERSON_LABEL, "source": "manual"},
        )
        for frame in range(num_frames):
            xtl, ytl, xbr, ybr = _pixel_box(actor, frame, info)
            box = ET.SubElement(
                track,
                "box",
                {
                    "frame": str(frame),
                    "keyframe": str(int(frame % FPS == 0)),
                    "outside": "0",
                    "occluded": "0",
                    "xtl": f"{xtl:.2f}",
                    "ytl": f"{ytl:.2f}",
                    "xbr": f"{xbr:.2f}",
                    "ybr": f"{ybr:.2f}",
                    "z_order": "0",
                },
            )
            for _, name in CUSTOM_CLASSES.values():
                flag = ET.SubElement(box, "attribute", {"name": name})
                flag.text = "true" if name in doing else "false"
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _via_project(scenes: dict[str, list[Actor]], info: SyntheticAva) -> dict:
    """A VIA 3 project (``data_format_version`` 3.1.1) of all `scenes`: file type 4 (video),
    a rectangle ``[2, x, y, w, h]`` (pixels, top-left corner) per actor at every whole second
    ``z = [t]``, attribute "person_id" (text) and "action" (checkbox; the value is the chosen
    option ids, comma-separated)."""
    option_of = {name: str(k) for k, (_, name) in enumerate(CUSTOM_CLASSES.values())}
    files, views, metadata = {}, {}, {}
    for fid, (vid, actors) in enumerate(scenes.items(), start=1):
        files[str(fid)] = {"fid": str(fid), "fname": f"{vid}.mp4", "type": 4, "loc": 1, "src": ""}
        views[str(fid)] = {"fid_list": [str(fid)]}
        for sec in range(info.seconds):
            for actor in actors:
                x1, y1, x2, y2 = (round(v, 3) for v in _pixel_box(actor, sec * FPS, info))
                chosen = sorted(option_of[n] for n in _custom_names(actor))
                metadata[f"{fid}_{sec}s_p{actor.person_id}"] = {
                    "vid": str(fid),
                    "flg": 0,
                    "z": [float(sec)],
                    "xy": [2, x1, y1, round(x2 - x1, 3), round(y2 - y1, 3)],
                    "av": {"1": str(actor.person_id), "2": ",".join(chosen)},
                }
    return {
        "project": {
            "pid": "__VIA_PROJECT_ID__",
            "rev": "__VIA_PROJECT_REV_ID__",
            "rev_timestamp": "__VIA_PROJECT_REV_TIMESTAMP__",
            "pname": "synthetic actions",
            "creator": "VGG Image Annotator (http://www.robots.ox.ac.uk/~vgg/software/via)",
            "created": 0,
            "data_format_version": "3.1.1",
            "vid_list": list(views),
        },
        "config": {"file": {"loc_prefix": {"1": "", "2": "", "3": "", "4": ""}}, "ui": {}},
        "attribute": {
            "1": {
                "aname": "person_id",
                "anchor_id": "FILE1_Z1_XY1",
                "type": 1,
                "desc": "the person's id within the video",
                "options": {},
                "default_option_id": "",
            },
            "2": {
                "aname": "action",
                "anchor_id": "FILE1_Z1_XY1",
                "type": 2,
                "desc": "what the person does",
                "options": {oid: name for name, oid in option_of.items()},
                "default_option_id": "",
            },
        },
        "file": files,
        "view": views,
        "metadata": metadata,
    }


# --- Crossing people: known identities that cross and occlude, for tracking. -----------------

CROSSING_ACTIONS = {1: "wave", 2: "talk", 3: "phone"}
"""Actions of the crossing-people scenes (each person does each on and off over time)."""


@dataclass(frozen=True)
class Walker:
    """One person of a crossing scene: a figure walking a straight line at constant speed.

    Positions are of the figure's bottom centre (its feet), in pixels; the box is
    (x - width / 2, y - height, x + width / 2, y). Nearer people (larger y) are drawn over
    farther ones.
    """

    person_id: int
    width: float
    height: float
    color: tuple[int, int, int]
    start: tuple[float, float]  # feet at `start_s`
    velocity: tuple[float, float]  # px per second
    start_s: float
    end_s: float
    # (start_s, end_s, action id) of what the person does, from `CROSSING_ACTIONS`.
    actions: tuple[tuple[float, float, int], ...]

    def present(self, time_s: float) -> bool:
        return self.start_s <= time_s < self.end_s

    def feet(self, time_s: float) -> tuple[float, float]:
        dt = time_s - self.start_s
        return self.start[0] + self.velocity[0] * dt, self.start[1] + self.velocity[1] * dt

    def box(self, time_s: float) -> tuple[float, float, float, float]:
        """(x1, y1, x2, y2) in pixels, not clipped to the frame."""
        x, y = self.feet(time_s)
        return (x - self.width / 2, y - self.height, x + self.width / 2, y)

    def doing(self, time_s: float) -> tuple[int, ...]:
        """Action ids the person does at `time_s`, increasing."""
        return tuple(sorted({a for s, e, a in self.actions if s <= time_s < e}))


@dataclass(frozen=True)
class CrossingScene:
    """People walking across a static background, crossing paths and hiding each other.

    Ground truth comes from `boxes_at`: every present person with the fraction of its box
    that is visible (not hidden by nearer people, inside the frame).
    """

    walkers: tuple[Walker, ...]
    width: int
    height: int
    duration_s: float
    fps: int
    seed: int

    def boxes_at(self, time_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Persons present at `time_s`: (ids int64 [N], boxes float32 [N, 4] x1 y1 x2 y2 in
        pixels clipped to the frame, visibility float32 [N] in [0, 1]), by id."""
        here = [w for w in self.walkers if w.present(time_s)]
        if not here:
            return np.zeros(0, np.int64), np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        raw = np.array([w.box(time_s) for w in here], np.float64)
        clipped = raw.copy()
        clipped[:, 0::2] = clipped[:, 0::2].clip(0, self.width)
        clipped[:, 1::2] = clipped[:, 1::2].clip(0, self.height)
        # Paint boxes far to near into an id map; what is left of each is its visible part.
        owner = np.full((self.height, self.width), -1, np.int32)
        for i in np.argsort(raw[:, 3], kind="stable"):
            x1, y1, x2, y2 = np.round(clipped[i]).astype(int)
            owner[y1:y2, x1:x2] = i
        counts = np.bincount(owner.ravel() + 1, minlength=len(here) + 1)[1:]
        areas = np.prod(raw[:, 2:] - raw[:, :2], axis=1)
        return (
            np.array([w.person_id for w in here], np.int64),
            clipped.astype(np.float32),
            (counts / areas).clip(0, 1).astype(np.float32),
        )

    def render(self, time_s: float, background: np.ndarray | None = None) -> np.ndarray:
        """uint8 RGB [height, width, 3] of the scene at `time_s`: each person a striped body
        with a head, far to near."""
        image = (
            _background(np.random.default_rng(self.seed), self.width, self.height)
            if background is None
            else background.copy()
        )
        here = sorted(
            (w for w in self.walkers if w.present(time_s)), key=lambda w: w.feet(time_s)[1]
        )
        for w in here:
            x1, y1, x2, y2 = (int(round(v)) for v in w.box(time_s))
            head = max(2, (x2 - x1) // 3)
            cx = (x1 + x2) // 2
            shade = tuple(int(c * 0.7) for c in w.color)
            cv2.circle(image, (cx, y1 + head), head, w.color, -1)
            body_top = y1 + 2 * head
            stripe = max(2, (y2 - body_top) // 8)
            for k, top in enumerate(range(body_top, y2, stripe)):
                cv2.rectangle(
                    image, (x1, top), (x2 - 1, min(top + stripe, y2) - 1),
                    w.color if k % 2 == 0 else shade, -1,
                )  # fmt: skip
        return image

    def write_video(self, path: str | Path) -> int:
        """Write the scene as an H.264 mp4 at `fps` (lossy, crf 18); returns the frame count."""
        background = _background(np.random.default_rng(self.seed), self.width, self.height)
        num_frames = int(round(self.duration_s * self.fps))
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=self.fps)
            stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
            stream.options = {"crf": "18", "preset": "veryfast", "threads": "1"}
            for index in range(num_frames):
                frame = av.VideoFrame.from_ndarray(
                    self.render(index / self.fps, background), format="rgb24"
                )
                frame.pts = index
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        return num_frames


def make_crossing_scene(
    *,
    num_people: int = 6,
    duration_s: float = 20.0,
    width: int = 320,
    height: int = 180,
    fps: int = 30,
    speed: tuple[float, float] = (0.15, 0.6),
    seed: int = 0,
) -> CrossingScene:
    """A scene of `num_people` walkers, half going right and half left along nearby lanes, so
    paths cross and nearer people hide farther ones.

    Each person is 22-34 px wide and 2.2-2.8 times as tall (larger when nearer, i.e. lower in
    the frame), enters at a random time in the first third and walks at `speed` (a range in
    body widths per second) until leaving the frame or the end of the scene; they may start
    inside the frame. Each person does each of `CROSSING_ACTIONS` on and off in runs of 2-8 s.
    Everything comes from ``numpy.random.default_rng(seed)``.
    """
    if num_people < 1:
        raise ValueError(f"num_people must be >= 1, got {num_people}")
    rng = np.random.default_rng(seed)
    walkers = []
    for pid in range(1, num_people + 1):
        y = float(rng.uniform(0.55, 0.95) * height)
        scale = 0.75 + 0.45 * (y / height)
        w = float(rng.uniform(22, 34)) * scale * width / 320
        h = w * float(rng.uniform(2.2, 2.8))
        y = max(y, h + 2)
        direction = 1 if pid % 2 else -1
        vx = direction * w * float(rng.uniform(*speed))
        vy = float(rng.normal(0, 0.05)) * w
        start_s = float(rng.uniform(0, duration_s / 3))
        # Enter at the frame edge, or (one in three) already inside the frame.
        x0 = -w / 2 if direction > 0 else width + w / 2
        if rng.random() < 1 / 3:
            x0 = float(rng.uniform(0.1, 0.9) * width)
        crossing_s = ((width + w / 2) - x0) / vx if direction > 0 else (-w / 2 - x0) / vx
        end_s = min(duration_s, start_s + crossing_s)
        hue = int(rng.integers(0, 180))
        hsv = np.array(
            [[[hue, int(rng.integers(140, 256)), int(rng.integers(180, 256))]]], np.uint8
        )
        color = tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])
        actions = []
        for action_id in CROSSING_ACTIONS:
            t, on = start_s, bool(rng.random() < 0.5)
            while t < end_s:
                run = float(rng.uniform(2, 8))
                if on:
                    actions.append((t, min(t + run, end_s), action_id))
                t, on = t + run, not on
        walkers.append(
            Walker(
                person_id=pid,
                width=w,
                height=h,
                color=(color[0], color[1], color[2]),
                start=(x0, y),
                velocity=(vx, vy),
                start_s=start_s,
                end_s=end_s,
                actions=tuple(actions),
            )
        )
    return CrossingScene(tuple(walkers), width, height, float(duration_s), fps, seed)


def noisy_detections(
    scene: CrossingScene,
    time_s: float,
    rng: np.random.Generator,
    *,
    jitter: float = 0.05,
    dropout: float = 0.1,
    min_visibility: float = 0.3,
    false_positives: float = 0.2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a person detector might report at `time_s`: the ground-truth boxes jittered by
    `jitter` of their size (normal, per coordinate), persons less than `min_visibility`
    visible never detected and the others missed with probability `dropout`; scores higher
    for more visible persons (0.3-1.0); plus a false positive with probability
    `false_positives`, scoring 0.05-0.5.

    Returns (boxes float32 [N, 4] in pixels, scores float32 [N] decreasing, person ids int64
    [N], 0 for a false positive).
    """
    ids, boxes, visibility = scene.boxes_at(time_s)
    keep = (visibility >= min_visibility) & (rng.random(len(ids)) >= dropout)
    ids, boxes, visibility = ids[keep], boxes[keep].astype(np.float64), visibility[keep]
    size = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
    boxes = boxes + rng.normal(0.0, jitter, boxes.shape) * size
    scores = (0.3 + 0.6 * visibility + rng.uniform(0, 0.1, len(ids))).clip(0, 1)
    if rng.random() < false_positives:
        w = float(rng.uniform(15, 35))
        x1, y1 = float(rng.uniform(0, scene.width - w)), float(rng.uniform(0, scene.height / 2))
        boxes = np.vstack([boxes, [[x1, y1, x1 + w, y1 + 2.4 * w]]])
        scores = np.append(scores, rng.uniform(0.05, 0.5))
        ids = np.append(ids, 0)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, scene.width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, scene.height)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    order = np.argsort(-scores, kind="stable")
    return boxes[order].astype(np.float32), scores[order].astype(np.float32), ids[order]
