"""Writers of a dataset's label map, ground truth and stand-in person boxes, beside their readers
(`labelmap.read_labelmap`, `csv_io.read_ava_csv`): what an imported or generated dataset
writes, in the forms AVA's own files have.

- label maps in either pbtxt dialect: ``item { name: "..." id: N }`` (the evaluated-class file,
  ``..._for_activitynet_2019.pbtxt``) or ``label { name: "..." label_id: N label_type: T }``
  (the full list, ``ava_action_list_v2.2.pbtxt``);
- ground truth ``video_id,timestamp,x1,y1,x2,y2,action_id,person_id``: one row per (box, action);
- person boxes ``video_id,timestamp,x1,y1,x2,y2,,score``: each distinct box once.

Boxes are (x1, y1, x2, y2) normalized to [0, 1] with (x1, y1) the top-left corner, written with
3 decimals and timestamps zero-padded to 4 digits, as in AVA's files; video ids are quoted where
CSV needs it. Everything written reads back with `read_labelmap` / `read_ava_csv`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from detection.errors import shorten
from detection.utils.atomic import atomic_write

from .csv_io import BOX_TOLERANCE, MAX_INTEGER, _csv_timestamp, _csv_video_id
from .labelmap import MAX_ACTION_ID, LabelMapError

Dialect = Literal["item", "label"]
_UNWRITABLE = ('"', "\\", "\n", "\r")


@dataclass(frozen=True)
class GroundTruthBox:
    """One person's box at one keyframe: `box` (x1, y1, x2, y2) normalized to [0, 1], (x1, y1)
    the top-left corner; `action_ids` its actions (none: one row with an empty action id);
    `person_id` None when unknown (the 8th field left empty)."""

    video_id: str
    second: int
    box: tuple[float, float, float, float]
    action_ids: tuple[int, ...]
    person_id: int | None = None


def format_labelmap(
    names: Mapping[int, str],
    *,
    dialect: Dialect = "item",
    label_type: str = "PERSON_MOVEMENT",
) -> str:
    """A label map in `dialect`, ids in increasing order, names in double quotes.

    `LabelMapError` (a `ValueError`) for an id outside 1..`MAX_ACTION_ID`, a repeated name, or a
    name that would not read back as written: one with a line break (the reader takes one field
    per line), a double quote or a backslash (`read_labelmap` keeps escapes as written)."""
    if dialect not in ("item", "label"):
        raise ValueError(f"dialect must be 'item' or 'label', got {dialect!r}")
    seen: dict[str, int] = {}
    lines: list[str] = []
    for action_id in sorted(names):
        name = names[action_id]
        if not 1 <= action_id <= MAX_ACTION_ID:
            raise LabelMapError(f"action id {action_id} is outside 1..{MAX_ACTION_ID}")
        unwritable = sorted(c for c in _UNWRITABLE if c in name)
        if unwritable or not name:
            raise LabelMapError(
                f"class name {shorten(name)!r} (id {action_id}) cannot be written in a label "
                f"map: it is empty or holds {', '.join(map(repr, unwritable))}"
            )
        if name in seen:
            raise LabelMapError(
                f"class name {shorten(name)!r} is used by ids {seen[name]} and {action_id}"
            )
        seen[name] = action_id
        if dialect == "item":
            lines += ["item {", f'  name: "{name}"', f"  id: {action_id}", "}"]
        else:
            lines += [
                "label {",
                f'  name: "{name}"',
                f"  label_id: {action_id}",
                f"  label_type: {label_type}",
                "}",
            ]
    return "\n".join(lines) + "\n"


def write_labelmap(
    path: str | Path,
    names: Mapping[int, str],
    *,
    dialect: Dialect = "item",
    label_type: str = "PERSON_MOVEMENT",
) -> None:
    """`format_labelmap` written to `path` atomically."""
    text = format_labelmap(names, dialect=dialect, label_type=label_type)
    with atomic_write(path, newline="") as f:
        f.write(text)


def format_groundtruth(boxes: Iterable[GroundTruthBox]) -> str:
    """Ground-truth rows ``video,second,x1,y1,x2,y2,action_id,person_id``, sorted by video,
    second, person id (unknown last) and box; one row per action in increasing id order, a box
    without actions on one row with an empty action id. ValueError for a box outside [0, 1] or
    inverted, or an id the reader would refuse."""
    lines: list[str] = []
    for b in _sorted(boxes):
        prefix = _row_prefix(b)
        person = "" if b.person_id is None else _integer(b.person_id, "person id")
        ids = [_integer(a, "action id", low=1) for a in sorted(b.action_ids)] or [""]
        lines.extend(f"{prefix},{a},{person}\n" for a in ids)
    return "".join(lines)


def write_groundtruth(path: str | Path, boxes: Iterable[GroundTruthBox]) -> None:
    """`format_groundtruth` written to `path` atomically."""
    text = format_groundtruth(boxes)
    with atomic_write(path, newline="") as f:
        f.write(text)


def format_person_boxes(boxes: Iterable[GroundTruthBox], score: float = 1.0) -> str:
    """Each distinct (video, second, box) once as a person-box row ``video,second,x1,y1,x2,y2,,
    score`` (the ground-truth boxes as proposals), in `format_groundtruth`'s order."""
    seen: set[str] = set()
    lines: list[str] = []
    for b in _sorted(boxes):
        prefix = _row_prefix(b)
        if prefix not in seen:
            seen.add(prefix)
            lines.append(f"{prefix},,{score!r}\n")
    return "".join(lines)


def write_person_boxes(
    path: str | Path, boxes: Iterable[GroundTruthBox], score: float = 1.0
) -> None:
    """`format_person_boxes` written to `path` atomically."""
    text = format_person_boxes(boxes, score)
    with atomic_write(path, newline="") as f:
        f.write(text)


def _sorted(boxes: Iterable[GroundTruthBox]) -> list[GroundTruthBox]:
    return sorted(
        boxes,
        key=lambda b: (b.video_id, b.second, b.person_id is None, b.person_id or 0, b.box),
    )


def _row_prefix(b: GroundTruthBox) -> str:
    x1, y1, x2, y2 = b.box
    finite = all(math.isfinite(c) for c in b.box)
    inside = all(-BOX_TOLERANCE <= c <= 1 + BOX_TOLERANCE for c in b.box)
    if not finite or not inside or x1 > x2 or y1 > y2:
        raise ValueError(
            f"{b.video_id},{b.second}: box {b.box} is not (x1, y1, x2, y2) inside [0, 1] with "
            "x1 <= x2 and y1 <= y2"
        )
    return f"{_csv_video_id(b.video_id)},{_csv_timestamp(b.second)}," + ",".join(
        f"{c:.3f}" for c in b.box
    )


def _integer(value: int, what: str, low: int = 0) -> str:
    if not low <= value <= MAX_INTEGER:
        raise ValueError(f"{what} {value} is outside {low}..{MAX_INTEGER}")
    return str(int(value))
