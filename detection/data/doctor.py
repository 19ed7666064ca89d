"""The dataset doctor: checks an AVA-layout dataset before hours of training find its mistakes.

`check_dataset(cfg)` reads what ``DATA.PATH_TO_DATA_DIR`` and the ``AVA.*`` keys name (the
files `detection.data.dataset` and the tester read) and returns a `DoctorReport`: facts (counts,
durations) and findings, each an error (training or testing would fail, or silently learn or
score the wrong thing) or a warning (worth a look), with a count and the first offending rows as
``file:line``. Checks:

- files: every ground-truth, predicted-box, label-map and exclusion file the config names
  exists and parses (a missing test predicted-box file is a warning: an imported set has none
  until ``tools/make_proposals.py`` runs);
- videos: each video an annotation names exists, opens and decodes a frame at its start and at
  its end (a seek each); its duration and frame rate;
- timestamps: every row's second lies inside its video (second ``s`` is at
  ``s - AVA.VIDEO_START_SEC`` seconds of the file: the keyframe convention), and inside
  ``AVA.VALID_FRAMES_START_SEC .. AVA.VALID_FRAMES_END_SEC`` (the loader skips rows outside);
  a ``dataset.json`` written by ``tools/import_annotations.py`` must agree on the offset;
- boxes: normalized coordinates inside [0, 1], not inverted (errors), not empty (a warning);
- classes: action ids in 1 .. ``MODEL.NUM_CLASSES`` (else the loader stops) and in the label
  map (else never evaluated); label-map classes never annotated, or with fewer than
  `min_boxes` distinct training boxes;
- splits: no video in both the training and the evaluation ground truth;
- proposals: the share of annotated keyframes that have a predicted box scoring at least
  ``AVA.DETECTION_SCORE_THRESH``, and the share of predicted scores above it.

Tables are checked with vectorized pandas/numpy (an AVA-size file of a million rows takes a
second or two); each video costs two seeks.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from yacs.config import CfgNode

from detection.ava.csv_io import (
    BOX_COLUMNS,
    BOX_TOLERANCE,
    AvaCsvError,
    read_ava_csv,
    read_excluded_timestamps,
)
from detection.ava.labelmap import LabelMap, LabelMapError, read_labelmap
from detection.errors import UserError, shorten

from .video import VideoReader, VideoReadError, find_video

logger = logging.getLogger(__name__)

Level = Literal["error", "warning"]
MAX_EXAMPLES = 3
"""Offending rows quoted per finding."""

DEFAULT_MIN_BOXES = 10
SPLITS = ("train", "val")
PROPOSALS_HINT = "freshly imported set without proposals yet: run tools/make_proposals.py"


class DatasetCheckError(UserError, ValueError):
    """The dataset doctor found errors; the message lists them (``tools/check_dataset.py`` prints
    the full report)."""


@dataclass(frozen=True)
class Finding:
    """One problem: `count` rows (or videos, classes) break rule `check`; `examples` are the
    first of them, as ``file:line: what`` (or ``video: what``)."""

    level: Level
    check: str
    message: str
    count: int = 1
    examples: tuple[str, ...] = ()

    def format(self) -> str:
        lines = [f"{self.level.upper():7s} [{self.check}] {self.message}"]
        lines += [f"          {e}" for e in self.examples]
        return "\n".join(lines)


@dataclass
class DoctorReport:
    """What `check_dataset` found: `facts` (one line each) and `findings`."""

    root: Path
    facts: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    @property
    def ok(self) -> bool:
        """True when nothing would make training or testing fail or go wrong."""
        return not self.errors

    def add(
        self, level: Level, check: str, message: str, count: int = 1, examples: Iterable[str] = ()
    ) -> None:
        self.findings.append(Finding(level, check, message, count, tuple(examples)))

    def summary(self) -> str:
        errors, warnings = len(self.errors), len(self.warnings)
        return f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"

    def format(self) -> str:
        """The readable report: facts, then errors, then warnings, then the summary line."""
        lines = [f"dataset {self.root}"]
        lines += [f"  {fact}" for fact in self.facts]
        lines += [f.format() for f in self.errors + self.warnings]
        lines.append(f"{self.summary()}: {'FAILED' if self.errors else 'ok'}")
        return "\n".join(lines)


@dataclass
class _Table:
    """One annotation file as read: rows indexed by 0-based file row (index + 1 = line)."""

    path: Path
    role: str  # "train ground truth", "val predicted boxes", ...
    split: str  # "train" or "val"
    kind: Literal["groundtruth", "boxes"]
    rows: pd.DataFrame

    def where(self, rows: pd.DataFrame, what: pd.Series) -> list[str]:
        """``file:line: what`` for the first `MAX_EXAMPLES` of `rows` (a slice of `self.rows`)."""
        head = rows.index[:MAX_EXAMPLES]
        return [f"{self.path}:{int(i) + 1}: {what.loc[i]}" for i in head]


def _count(n: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith(("s", "x")) else "s")
    return f"{n} {noun if n == 1 else plural}"


def _under(root: Path, path: str) -> Path:
    return Path(path) if os.path.isabs(path) else root / path


def check_dataset(
    cfg: CfgNode,
    *,
    min_boxes: int = DEFAULT_MIN_BOXES,
    decode_videos: bool = True,
    splits: Sequence[str] = SPLITS,
) -> DoctorReport:
    """Check the dataset that `cfg` describes (see the module docstring for what is checked).

    `min_boxes`: classes with fewer distinct training boxes get a warning. `decode_videos`:
    also decode each video's last frame (a seek; catches truncated files); without it videos
    are only opened. `splits`: the files of "train" (ground truth and predicted boxes) and
    "val" (evaluation ground truth, predicted boxes, exclusions) to check; a test run needs only
    "val". Never raises for a problem of the dataset: every problem is a finding.
    """
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise ValueError(f"splits must be among {SPLITS}, got {sorted(unknown)}")
    root = Path(cfg.DATA.PATH_TO_DATA_DIR)
    report = DoctorReport(root)
    ava = cfg.AVA
    ann_dir = _under(root, ava.ANNOTATION_DIR)
    start, fps = int(ava.VIDEO_START_SEC), float(ava.FPS)
    valid = range(int(ava.VALID_FRAMES_START_SEC), int(ava.VALID_FRAMES_END_SEC) + 1)
    report.facts.append(
        f"keyframe convention: second s is at (s - {start}) s of its video file, frame "
        f"(s - {start}) * {fps:g}; valid keyframes {valid.start}..{valid.stop - 1} "
        "(AVA.VIDEO_START_SEC, AVA.FPS, AVA.VALID_FRAMES_START_SEC/END_SEC)"
    )
    _check_import_metadata(root, start, report)

    tables = _read_tables(cfg, ann_dir, splits, report)
    labelmap = _read_labelmap_file(ann_dir, ava.LABEL_MAP_FILE, report)
    if ava.EXCLUSION_FILE and "val" in splits:
        exclusion = _under(ann_dir, ava.EXCLUSION_FILE)
        try:
            read_excluded_timestamps(exclusion)
        except AvaCsvError as e:
            report.add("error", "files", f"{e} (AVA.EXCLUSION_FILE; testing reads it)")

    for table in tables:
        _check_boxes(table, report)
    durations = _check_videos(cfg, root, tables, report, decode_videos)
    for table in tables:
        _check_timestamps(table, durations, start, fps, valid, report)
    _check_classes(tables, labelmap, int(cfg.MODEL.NUM_CLASSES), min_boxes, report)
    _check_splits(tables, report)
    _check_proposals(cfg, tables, valid, report)
    return report


def require_healthy_dataset(
    cfg: CfgNode,
    *,
    decode_videos: bool = True,
    splits: Sequence[str] = SPLITS,
    log_warnings: bool = True,
) -> DoctorReport:
    """`check_dataset` for the start of a training or test run: raises `DatasetCheckError`
    naming the errors, if any (run ``tools/check_dataset.py`` for the full report), and logs
    the warnings when `log_warnings` and there is no error."""
    report = check_dataset(cfg, decode_videos=decode_videos, splits=splits)
    if report.errors:
        first = report.errors[0]
        where = f" ({first.examples[0]})" if first.examples else ""
        raise DatasetCheckError(
            f"dataset {report.root}: {report.summary()}; first: [{first.check}] "
            f"{first.message}{where}; run tools/check_dataset.py {report.root} for the report"
        )
    if log_warnings:
        for finding in report.warnings:
            logger.warning("dataset check: %s", finding.format())
    return report


# --- files ------------------------------------------------------------------------------------


def _check_import_metadata(root: Path, start: int, report: DoctorReport) -> None:
    """A set written by tools/import_annotations.py records its offset: the config must agree."""
    path = root / "dataset.json"
    if not path.is_file():
        return
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        report.add("warning", "keyframes", f"{path}: cannot read ({shorten(str(e))})")
        return
    recorded = metadata.get("video_start_sec") if isinstance(metadata, dict) else None
    if recorded is not None and int(recorded) != start:
        overrides = " ".join(metadata.get("config_overrides", []))
        report.add(
            "error",
            "keyframes",
            f"{path} says second 0 is the first frame (video_start_sec {recorded}) but the "
            f"config has AVA.VIDEO_START_SEC {start}; pass the overrides it lists: "
            f"{shorten(overrides, 300)}",
        )


def _read_tables(
    cfg: CfgNode, ann_dir: Path, splits: Sequence[str], report: DoctorReport
) -> list[_Table]:
    ava = cfg.AVA
    wanted: list[tuple[str, str, str, Literal["groundtruth", "boxes"], str]] = []
    wanted += [(p, "train ground truth", "train", "groundtruth", "AVA.TRAIN_GT_BOX_LISTS")
               for p in ava.TRAIN_GT_BOX_LISTS]  # fmt: skip
    wanted += [(p, "train predicted boxes", "train", "boxes", "AVA.TRAIN_PREDICT_BOX_LISTS")
               for p in ava.TRAIN_PREDICT_BOX_LISTS]  # fmt: skip
    if ava.GROUNDTRUTH_FILE:
        wanted.append((ava.GROUNDTRUTH_FILE, "val ground truth", "val", "groundtruth",
                       "AVA.GROUNDTRUTH_FILE"))  # fmt: skip
    wanted += [(p, "val predicted boxes", "val", "boxes", "AVA.TEST_PREDICT_BOX_LISTS")
               for p in ava.TEST_PREDICT_BOX_LISTS]  # fmt: skip
    tables = []
    for name, role, split, kind, key in wanted:
        if split not in splits:
            continue
        path = _under(ann_dir, name)
        if not path.is_file():
            if role == "val predicted boxes":
                report.add("warning", "proposals", f"{path} ({key}) not found: {PROPOSALS_HINT}")
            else:
                report.add("error", "files", f"{path} ({key}, the {role}) not found")
            continue
        rows = _read_rows(path, kind, report)
        if rows is not None:
            tables.append(_Table(path, role, split, kind, rows))
            report.facts.append(_table_fact(tables[-1]))
    return tables


def _table_fact(table: _Table) -> str:
    rows = table.rows
    boxed = rows.dropna(subset=BOX_COLUMNS)
    keyframes = len(boxed.drop_duplicates(["video_id", "timestamp"]))
    boxes = len(boxed.drop_duplicates(["video_id", "timestamp", *BOX_COLUMNS]))
    return (
        f"{table.role}: {table.path.name}: {len(rows)} rows, {boxes} boxes, {keyframes} "
        f"keyframes, {rows['video_id'].nunique()} videos"
    )


def _read_rows(
    path: Path, kind: Literal["groundtruth", "boxes"], report: DoctorReport
) -> pd.DataFrame | None:
    """The rows of `path`: first with the strict reader the loader uses (fast, and what a good
    file passes); if that fails, leniently, so that the box checks can count every bad row.
    A file not even the lenient parse reads is one error with the strict reader's message."""
    try:
        return read_ava_csv(path, kind=kind)
    except AvaCsvError as e:
        strict_error = str(e)
    rows = _read_lenient(path, kind)
    if rows is None or not np.any(np.logical_or(*_box_masks(rows)[:2])):
        report.add("error", "format", strict_error)
        return None
    return rows


def _read_lenient(path: Path, kind: str) -> pd.DataFrame | None:
    """Every row with numeric fields as float64 (NaN where empty); None if a field is not a
    number or a row has a wrong field count (the strict reader names those)."""
    last = "score" if kind == "boxes" else "person_id"
    names = ["video_id", "timestamp", *BOX_COLUMNS, "action_id", last]
    try:
        rows = pd.read_csv(
            path,
            header=None,
            names=names,
            dtype={"video_id": str, **{n: np.float64 for n in names[1:]}},
            keep_default_na=False,
            na_values=[""],
            engine="c",
        )
    except (ValueError, pd.errors.ParserError):
        return None
    if rows["timestamp"].isna().any() or rows["video_id"].isna().any():
        return None
    rows["timestamp"] = rows["timestamp"].astype(np.int64)
    rows["action_id"] = rows["action_id"].fillna(-1).astype(np.int64)
    return rows


def _box_masks(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bool [N] each: box outside [0, 1] (beyond the reader's tolerance), inverted (x1 > x2 or
    y1 > y2), empty (zero width or height). Box-less rows are none of them."""
    x1, y1, x2, y2 = (rows[c].to_numpy(np.float64) for c in BOX_COLUMNS)
    with np.errstate(invalid="ignore"):
        low = np.minimum(np.minimum(x1, y1), np.minimum(x2, y2))
        high = np.maximum(np.maximum(x1, y1), np.maximum(x2, y2))
        outside = (low < -BOX_TOLERANCE) | (high > 1 + BOX_TOLERANCE)
        inverted = (x1 > x2) | (y1 > y2)
        empty = ~inverted & ((x1 == x2) | (y1 == y2))
    return outside, inverted, empty


def _read_labelmap_file(ann_dir: Path, name: str, report: DoctorReport) -> LabelMap | None:
    path = _under(ann_dir, name)
    if not path.is_file():
        report.add("error", "files", f"{path} (AVA.LABEL_MAP_FILE) not found")
        return None
    try:
        labelmap = read_labelmap(path)
    except LabelMapError as e:
        report.add("error", "format", str(e))
        return None
    report.facts.append(f"label map: {path.name}: {len(labelmap)} classes")
    return labelmap


# --- boxes, videos, timestamps ------------------------------------------------------------------


def _box_text(rows: pd.DataFrame) -> pd.Series:
    return (
        "(" + rows["x1"].astype(str) + ", " + rows["y1"].astype(str) + ", "
        + rows["x2"].astype(str) + ", " + rows["y2"].astype(str) + ")"
    )  # fmt: skip


def _check_boxes(table: _Table, report: DoctorReport) -> None:
    outside, inverted, empty = _box_masks(table.rows)
    for mask, level, what in (
        (outside, "error", "outside [0, 1] (coordinates must be normalized by the frame size)"),
        (inverted, "error", "inverted (x1 > x2 or y1 > y2)"),
        (empty, "warning", "empty (zero width or height)"),
    ):
        if mask.any():
            bad = table.rows[mask]
            report.add(
                level,  # type: ignore[arg-type]
                "boxes",
                f"{table.path.name}: {_count(len(bad), 'box')} {what}",
                len(bad),
                table.where(bad, _box_text(bad.iloc[:MAX_EXAMPLES])),
            )


def _first_use(tables: list[_Table]) -> dict[str, str]:
    """video id -> ``file:line`` of the first row that names it."""
    first: dict[str, str] = {}
    for table in tables:
        heads = table.rows["video_id"].drop_duplicates()
        for row, video_id in zip(heads.index.tolist(), heads.tolist(), strict=True):
            first.setdefault(str(video_id), f"{table.path}:{row + 1}")
    return first


def _check_videos(
    cfg: CfgNode, root: Path, tables: list[_Table], report: DoctorReport, decode: bool
) -> dict[str, float]:
    """Open (and decode the first and last frame of) every video the tables name; returns the
    duration in seconds of each video that passed."""
    used = _first_use(tables)
    if not used:
        return {}
    video_dir = _under(root, cfg.AVA.VIDEO_DIR)
    if not video_dir.is_dir():
        if cfg.DATA.DECODING_BACKEND == "frames":
            report.facts.append(f"videos: {video_dir} absent (frames backend): not checked")
        else:
            report.add("error", "videos", f"{video_dir} (AVA.VIDEO_DIR) not found")
        return {}
    durations: dict[str, float] = {}
    rates: dict[float, int] = {}
    bad: list[str] = []
    for video_id, where in sorted(used.items()):
        try:
            path = find_video(video_dir, video_id)
            # "nearest": the ffmpeg frame rule reads every packet's timestamp first, a whole
            # pass over the file that a decode check does not need.
            with VideoReader(path, frame_rule="nearest") as reader:
                if decode:
                    last = max(0.0, reader.duration - 1.0 / reader.fps)
                    reader.read_at_times([0.0])
                    reader.read_at_times([last])
                durations[video_id] = reader.duration
                rates[round(reader.fps, 3)] = rates.get(round(reader.fps, 3), 0) + 1
        except VideoReadError as e:
            bad.append(f"{shorten(str(e), 200)} (first named at {where})")
    if bad:
        report.add(
            "error",
            "videos",
            f"{len(bad)} of {len(used)} videos are missing or do not decode",
            len(bad),
            bad[:MAX_EXAMPLES],
        )
    if durations:
        lengths = np.array(list(durations.values()))
        fps_text = ", ".join(f"{r:g} fps x {n}" for r, n in sorted(rates.items()))
        checked = "open and decode at start and end" if decode else "open"
        report.facts.append(
            f"videos: {len(durations)} of {len(used)} {checked}; duration "
            f"{lengths.min():.2f}..{lengths.max():.2f} s; {fps_text}"
        )
    return durations


def _check_timestamps(
    table: _Table,
    durations: dict[str, float],
    start: int,
    fps: float,
    valid: range,
    report: DoctorReport,
) -> None:
    rows = table.rows
    seconds = rows["timestamp"].to_numpy()
    known = rows["video_id"].map(durations)
    # A keyframe is inside its video when the frame the clip centres on exists: frame
    # (s - start) * fps of round(duration * fps) frames (the dataset's rule).
    frame = (seconds - start) * fps
    num_frames = np.maximum(1, np.round(known.to_numpy(np.float64) * fps))
    with np.errstate(invalid="ignore"):
        outside = known.notna().to_numpy() & ((frame < 0) | (frame >= num_frames))
    if outside.any():
        bad = rows[outside]
        offset = bad["timestamp"] - start
        what = (
            bad["video_id"] + " second " + bad["timestamp"].astype(str) + " is at "
            + offset.astype(str) + " s of a "
            + bad["video_id"].map(durations).map("{:.2f}".format) + " s video"
        )  # fmt: skip
        hint = ""
        if (bad["timestamp"] < start).any():
            hint = (
                f"; seconds before AVA.VIDEO_START_SEC {start}: if they count from the first "
                "frame, set AVA.VIDEO_START_SEC 0 (and the valid range)"
            )
        report.add(
            "error",
            "timestamps",
            f"{table.path.name}: {_count(len(bad), 'row')} at seconds outside their video "
            f"(AVA.VIDEO_START_SEC {start}){hint}",
            len(bad),
            table.where(bad, what.iloc[:MAX_EXAMPLES]),
        )
    boxed = rows[rows[BOX_COLUMNS].notna().all(axis=1)]
    skipped = (boxed["timestamp"] < valid.start) | (boxed["timestamp"] >= valid.stop)
    if skipped.any():
        bad = boxed[skipped]
        all_skipped = bool(skipped.all())
        what = bad["video_id"] + " second " + bad["timestamp"].astype(str)
        report.add(
            "error" if all_skipped and table.kind == "groundtruth" else "warning",
            "keyframes",
            f"{table.path.name}: {'all ' if all_skipped else ''}"
            f"{_count(len(bad), 'box row')} outside "
            f"the valid keyframes {valid.start}..{valid.stop - 1} (AVA.VALID_FRAMES_START_SEC/"
            "END_SEC); the loader skips them",
            len(bad),
            table.where(bad, what.iloc[:MAX_EXAMPLES]),
        )


# --- classes, splits, proposals -------------------------------------------------------------------


def _id_text(rows: pd.DataFrame) -> pd.Series:
    return (
        rows["video_id"] + " second " + rows["timestamp"].astype(str) + ": id "
        + rows["action_id"].astype(str)
    )  # fmt: skip


def _check_classes(
    tables: list[_Table],
    labelmap: LabelMap | None,
    num_classes: int,
    min_boxes: int,
    report: DoctorReport,
) -> None:
    for table in tables:
        actions = table.rows["action_id"]
        labelled = table.rows[actions != -1]
        ids = labelled["action_id"]
        out_of_range = (ids < 1) | (ids > num_classes)
        if out_of_range.any():
            bad = labelled[out_of_range]
            report.add(
                "error",
                "classes",
                f"{table.path.name}: {_count(len(bad), 'row')} with action ids outside "
                f"1..{num_classes} "
                "(MODEL.NUM_CLASSES): the loader stops on them",
                len(bad),
                table.where(bad, _id_text(bad.iloc[:MAX_EXAMPLES])),
            )
        if labelmap is not None:
            unknown = ~ids.isin(labelmap.ids) & ~out_of_range
            if unknown.any():
                bad = labelled[unknown]
                listed = ", ".join(str(i) for i in sorted(bad["action_id"].unique())[:10])
                report.add(
                    "warning",
                    "classes",
                    f"{table.path.name}: {_count(len(bad), 'row')} with action ids not in the "
                    "label map "
                    f"(ids {listed}): trained on, never evaluated",
                    len(bad),
                    table.where(bad, _id_text(bad.iloc[:MAX_EXAMPLES])),
                )
    if labelmap is None:
        return
    too_high = [i for i in labelmap.ids if i > num_classes]
    if too_high:
        report.add(
            "error",
            "classes",
            f"label map ids {too_high[:10]} exceed MODEL.NUM_CLASSES {num_classes}: the model "
            "has no score for them",
            len(too_high),
        )
    train = [t.rows for t in tables if t.role == "train ground truth"]
    if not train:
        return
    rows = pd.concat(train, ignore_index=True)
    rows = rows[rows["action_id"] != -1].dropna(subset=BOX_COLUMNS)
    boxes = rows.drop_duplicates(["video_id", "timestamp", *BOX_COLUMNS, "action_id"])
    counts = boxes["action_id"].value_counts()
    per_class = {i: int(counts.get(i, 0)) for i in labelmap.ids}
    report.facts.append(
        "training boxes per class: "
        + shorten(", ".join(f"{labelmap.names[i]} ({i}): {n}" for i, n in per_class.items()), 400)
    )
    never = [i for i, n in per_class.items() if n == 0]
    if never:
        report.add(
            "warning",
            "classes",
            f"{_count(len(never), 'label-map class')} never annotated in the training "
            "ground truth: " + shorten(", ".join(f"{labelmap.names[i]} ({i})" for i in never), 300),
            len(never),
        )
    few = [i for i, n in per_class.items() if 0 < n < min_boxes]
    if few:
        report.add(
            "warning",
            "classes",
            f"{_count(len(few), 'class')} with fewer than {min_boxes} training boxes "
            "(--min-boxes): "
            + shorten(", ".join(f"{labelmap.names[i]} ({i}): {per_class[i]}" for i in few), 300),
            len(few),
        )


def _check_splits(tables: list[_Table], report: DoctorReport) -> None:
    firsts: dict[str, dict[str, str]] = {}
    for split in ("train", "val"):
        gt = [t for t in tables if t.split == split and t.kind == "groundtruth"]
        firsts[split] = _first_use(gt)
    both = sorted(set(firsts["train"]) & set(firsts["val"]))
    if both:
        report.add(
            "error",
            "splits",
            f"{_count(len(both), 'video')} in both the training and the evaluation ground truth: "
            "evaluation would score frames the model was trained on",
            len(both),
            [f"{v}: train {firsts['train'][v]}, val {firsts['val'][v]}" for v in both[:3]],
        )


def _check_proposals(
    cfg: CfgNode, tables: list[_Table], valid: range, report: DoctorReport
) -> None:
    thresh = float(cfg.AVA.DETECTION_SCORE_THRESH)
    if not cfg.AVA.TEST_PREDICT_BOX_LISTS and any(t.split == "val" for t in tables):
        report.add("warning", "proposals", f"AVA.TEST_PREDICT_BOX_LISTS is empty: {PROPOSALS_HINT}")
    for split in ("train", "val"):
        predicted = [t for t in tables if t.split == split and t.kind == "boxes"]
        truth = [t for t in tables if t.split == split and t.kind == "groundtruth"]
        if not predicted or not truth:
            continue
        boxes = pd.concat([t.rows for t in predicted], ignore_index=True)
        scores = boxes["score"].fillna(1.0)
        kept = boxes[scores.to_numpy() >= thresh]
        above = float((scores >= thresh).mean()) if len(scores) else 0.0
        covered_keys = pd.MultiIndex.from_frame(kept[["video_id", "timestamp"]].drop_duplicates())
        uncovered_rows: list[str] = []
        total = uncovered = 0
        for table in truth:
            gt = table.rows.dropna(subset=BOX_COLUMNS)
            gt = gt[(gt["timestamp"] >= valid.start) & (gt["timestamp"] < valid.stop)]
            frames = gt[["video_id", "timestamp"]].drop_duplicates()
            missing = ~pd.MultiIndex.from_frame(frames).isin(covered_keys)
            total += len(frames)
            uncovered += int(missing.sum())
            lost = frames[missing]
            what = lost["video_id"] + " second " + lost["timestamp"].astype(str)
            uncovered_rows += table.where(lost, what)
        names = ", ".join(t.path.name for t in predicted)
        report.facts.append(
            f"{split} proposals: {names}: cover {total - uncovered} of {total} annotated "
            f"keyframes; {100 * above:.1f}% of {len(scores)} scores >= {thresh:g} "
            "(AVA.DETECTION_SCORE_THRESH)"
        )
        _check_oracle(split, boxes, truth, names, report)
        if uncovered:
            report.add(
                "warning",
                "proposals",
                f"{uncovered} of {total} annotated {split} keyframes have no predicted box "
                f"scoring >= {thresh:g} in {names}: "
                + ("they are never tested" if split == "val" else "they add no predicted boxes"),
                uncovered,
                uncovered_rows[:MAX_EXAMPLES],
            )


def _check_oracle(
    split: str, boxes: pd.DataFrame, truth: list[_Table], names: str, report: DoctorReport
) -> None:
    """Predicted boxes that are all ground-truth boxes (what tools/import_annotations.py writes
    for val) make the test an oracle-box test."""
    keys = ["video_id", "timestamp", *BOX_COLUMNS]
    gt = pd.concat([t.rows[keys] for t in truth], ignore_index=True).dropna()
    predicted = boxes[keys].drop_duplicates()
    if predicted.empty:
        return
    rounded = [gt.assign(**{c: gt[c].round(3) for c in BOX_COLUMNS}).drop_duplicates(),
               predicted.assign(**{c: predicted[c].round(3) for c in BOX_COLUMNS})]  # fmt: skip
    matched = rounded[1].merge(rounded[0], on=keys, how="left", indicator=True)
    if (matched["_merge"] == "both").all():
        report.add(
            "warning",
            "proposals",
            f"the {split} predicted boxes ({names}) are the ground-truth boxes: testing scores "
            "actions on perfect person boxes, not the detector a deployment would use; "
            "run tools/make_proposals.py for detector boxes",
        )
