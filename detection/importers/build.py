"""One import: read annotation files, sample their boxes at keyframes, map actions to ids,
split the videos and write the AVA-format dataset."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from detection.ava.labelmap import LabelMap, read_labelmap

from .common import BoxUnits, ImportAnnotationError, ImportReport, Track, VideoCatalog
from .cvat import CvatTrack, read_cvat
from .dataset_writer import (
    LABEL_MAP,
    TRAIN_GT,
    VAL_BOXES,
    VAL_GT,
    write_dataset,
)
from .keyframes import KeyframeBox, keyframe_period, sample_keyframes
from .plain_csv import read_plain_csv
from .via import read_via

Format = Literal["cvat", "via", "csv"]
FORMATS: tuple[Format, ...] = ("cvat", "via", "csv")


@dataclass(frozen=True)
class ImportOptions:
    """Everything an import can be told (the command line's options)."""

    keyframes_per_sec: float = 1.0
    labelmap: Path | None = None
    val_videos: tuple[str, ...] = ()
    val_fraction: float = 0.0
    link: bool = False
    overwrite: bool = False
    strict: bool = False
    box_units: BoxUnits | None = None
    person_label: str = "person"
    person_attribute: str | None = None
    action_attributes: tuple[str, ...] = ()


@dataclass
class ImportResult:
    """What was written: the dataset folder, the config overrides the loader needs, and the
    report (counts, skipped, malformed)."""

    output: Path
    config_overrides: list[str]
    report: ImportReport
    splits: dict[str, str] = field(default_factory=dict)


def import_annotations(
    fmt: Format,
    inputs: Sequence[str | Path],
    video_dir: str | Path,
    output: str | Path,
    options: ImportOptions = ImportOptions(),
) -> ImportResult:
    """Import `inputs` (files of format `fmt`) about the videos in `video_dir` into an AVA-format
    dataset at `output` (see `detection.importers.dataset_writer` for the layout)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    output = Path(output)
    if output.exists() and not options.overwrite:
        raise ImportAnnotationError(f"--output {output} exists; pass --overwrite to replace it")
    try:
        period = keyframe_period(options.keyframes_per_sec)
    except ValueError as e:
        raise ImportAnnotationError(str(e)) from e
    labelmap = read_labelmap(options.labelmap) if options.labelmap is not None else None
    report = ImportReport(strict=options.strict)
    catalog = VideoCatalog(video_dir)

    tracks: list[Track] = []
    for path in inputs:
        report.count("input files read")
        tracks.extend(_read(fmt, Path(path), catalog, report, options))
    tracks = _merge_across_files(tracks)
    report.count("tracks (persons, or videos' boxes without person id)", len(tracks))
    boxes = sample_keyframes(tracks, period, report)
    if not boxes:
        raise ImportAnnotationError(
            f"no box lies within {period / 2:g} s of a keyframe in {[str(p) for p in inputs]}; "
            "nothing to write (see the skipped counts above)"
        )
    names, action_ids = _action_ids(boxes, labelmap, options.labelmap)
    videos = catalog.used
    splits = _split([v.video_id for v in videos], options.val_videos, options.val_fraction)

    last_second = max(b.second for b in boxes)
    num_classes = max(names)
    overrides = [
        "DATA.PATH_TO_DATA_DIR", str(output.resolve()),
        "AVA.VIDEO_START_SEC", "0",
        "AVA.VALID_FRAMES_START_SEC", "0",
        "AVA.VALID_FRAMES_END_SEC", str(last_second),
        "MODEL.NUM_CLASSES", str(num_classes),
        "AVA.TEST_PREDICT_BOX_LISTS", f"['{VAL_BOXES}']",
    ]  # fmt: skip
    _count_written(boxes, splits, report)
    metadata = {
        "source_format": fmt,
        "inputs": [str(p) for p in inputs],
        "video_start_sec": 0,
        "keyframes_per_sec": options.keyframes_per_sec,
        "keyframe_rule": (
            f"keyframes at seconds 0, {period}, {2 * period}, ... of each video file (not an AVA "
            f"15-minute cut: second 0 is the first frame, not 900); each person's box and actions "
            f"come from its annotated frame nearest the keyframe, at most {period / 2:g} s away"
        ),
        "videos": {
            v.video_id: {
                "split": splits[v.video_id],
                "source": str(v.path),
                "fps": v.fps,
                "width": v.width,
                "height": v.height,
                "duration_s": v.duration_s,
            }
            for v in videos
        },
        "labelmap": {str(k): names[k] for k in sorted(names)},
        "config_overrides": overrides,
        "summary": dict(report.counts),
        "skipped": dict(report.skipped),
        "malformed": report.malformed,
    }
    write_dataset(
        output,
        boxes=boxes,
        videos=videos,
        splits=splits,
        labelmap=names,
        action_ids=action_ids,
        metadata=metadata,
        readme=_readme(fmt, period, overrides),
        link=options.link,
        overwrite=options.overwrite,
    )
    return ImportResult(output, overrides, report, splits)


def _read(
    fmt: Format, path: Path, catalog: VideoCatalog, report: ImportReport, options: ImportOptions
) -> list[Track]:
    if not path.is_file():
        raise ImportAnnotationError(f"{path}: no such annotation file")
    if fmt == "cvat":
        return read_cvat(path, catalog, report, person_label=options.person_label)
    if fmt == "via":
        return read_via(
            path,
            catalog,
            report,
            person_attribute=options.person_attribute,
            action_attributes=options.action_attributes,
        )
    return read_plain_csv(path, catalog, report, box_units=options.box_units)


def _merge_across_files(tracks: list[Track]) -> list[Track]:
    """One track per (video, person id): boxes of the same person (or of no person id) in
    several VIA or CSV files are merged (the same box at the same time is one box with the
    actions of both); CVAT track ids are only unique within one export, so
    a repeated one is an error."""
    merged: dict[tuple[str, int | None], Track] = {}
    for track in tracks:
        key = (track.video.video_id, track.person_id)
        first = merged.get(key)
        if first is None:
            merged[key] = track
            continue
        if isinstance(track, CvatTrack) or isinstance(first, CvatTrack):
            raise ImportAnnotationError(
                f"{track.where} and {first.where}: the same track id for video "
                f"{key[0]!r}; person ids must be unique per video (export the task once, "
                "not job by job)"
            )
        if (track.units, track.frame_size) != (first.units, first.frame_size):
            raise ImportAnnotationError(
                f"{track.where}: boxes in {track.units} but {first.where} in {first.units}"
            )
        index = {(s.start_s, s.end_s, s.box): i for i, s in enumerate(first.samples)}
        for sample in track.samples:
            i = index.get((sample.start_s, sample.end_s, sample.box))
            if i is None:
                index[(sample.start_s, sample.end_s, sample.box)] = len(first.samples)
                first.samples.append(sample)
            else:  # the same box in two files, e.g. one file per action: one box
                kept = first.samples[i]
                actions = tuple(sorted(set(kept.actions + sample.actions)))
                first.samples[i] = replace(kept, actions=actions)
    return list(merged.values())


def _action_ids(
    boxes: list[KeyframeBox], labelmap: LabelMap | None, labelmap_path: Path | None
) -> tuple[dict[int, str], dict[str, int]]:
    """(id -> name for the label map to write, name -> id): the given label map's ids, or
    the sorted action names numbered 1..N. An action missing from a given label map is an
    error naming the element it came from."""
    if labelmap is None:
        used = sorted({a for b in boxes for a in b.actions})
        if not used:
            raise ImportAnnotationError(
                "no box has an action: nothing to build a label map from (give --labelmap)"
            )
        names = {i: name for i, name in enumerate(used, start=1)}
        return names, {name: i for i, name in names.items()}
    ids: dict[str, int] = {}
    for action_id, name in labelmap.names.items():
        if name in ids:
            raise ImportAnnotationError(
                f"{labelmap_path}: name {name!r} has two ids, {ids[name]} and {action_id}"
            )
        ids[name] = action_id
    for box in boxes:
        for action in box.actions:
            if action not in ids:
                raise ImportAnnotationError(
                    f"{box.where}: action {action!r} is not in the label map {labelmap_path} "
                    f"(names: {sorted(ids)[:10]}{' ...' if len(ids) > 10 else ''})"
                )
    return dict(labelmap.names), ids


def _split(video_ids: list[str], val_videos: Sequence[str], val_fraction: float) -> dict[str, str]:
    """Video id -> "train" or "val": the ids in `val_videos`, else a `val_fraction` share chosen
    by a hash of the id (stable whatever other videos there are), at least one when the
    fraction is positive and there are two or more videos."""
    if val_videos and val_fraction:
        raise ImportAnnotationError("give --val-videos or --val-fraction, not both")
    if not 0.0 <= val_fraction < 1.0:
        raise ImportAnnotationError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    unknown = sorted(set(val_videos) - set(video_ids))
    if unknown:
        raise ImportAnnotationError(
            f"--val-videos {unknown} are not annotated videos; annotated: {video_ids}"
        )
    val = set(val_videos)
    if val_fraction and len(video_ids) > 1:
        count = min(len(video_ids) - 1, max(1, round(val_fraction * len(video_ids))))
        ranked = sorted(video_ids, key=lambda v: hashlib.sha1(v.encode()).hexdigest())
        val = set(ranked[:count])
    return {v: "val" if v in val else "train" for v in video_ids}


def _count_written(boxes: list[KeyframeBox], splits: dict[str, str], report: ImportReport) -> None:
    for split in ("train", "val"):
        here = [b for b in boxes if splits[b.video_id] == split]
        report.count(f"{split}: videos", sum(1 for s in splits.values() if s == split))
        report.count(f"{split}: keyframes written", len({(b.video_id, b.second) for b in here}))
        report.count(f"{split}: boxes written", len(here))
        report.count(f"{split}: rows written", sum(max(1, len(b.actions)) for b in here))
        report.count(f"{split}: boxes without action", sum(1 for b in here if not b.actions))
    actions = Counter(a for b in boxes for a in b.actions)
    for name, n in sorted(actions.items()):
        report.count(f"action {name!r}", n)


def _readme(fmt: Format, period: int, overrides: list[str]) -> str:
    pairs = " \\\n    ".join(f"{k} {v!r}" if "[" in v else f"{k} {v}" for k, v in _pairs(overrides))
    return f"""# Imported action-detection dataset ({fmt})

Written by `tools/import_annotations.py` in the AVA layout of `data/ava/README.md`.

This is not an AVA 15-minute cut: times count from the first frame of each video file
(second 0, not 900). Keyframes are seconds 0, {period}, {2 * period}, ...; each person's box
and actions come from the annotated frame nearest the keyframe (at most {period / 2:g} s away).
Boxes are normalized to [0, 1] by the annotated frame size and clipped.

- `annotations/{TRAIN_GT}`, `annotations/{VAL_GT}`: ground truth with person ids
- `annotations/{VAL_BOXES}`: the val boxes as person boxes (score 1), for testing on them
- `annotations/{LABEL_MAP}`: the label map
- `video_list.csv`, `videos/`, `dataset.json` (how it was made, what was skipped)

Config overrides the loader needs:

    {pairs}
"""


def _pairs(overrides: list[str]) -> list[tuple[str, str]]:
    return list(zip(overrides[::2], overrides[1::2], strict=True))
