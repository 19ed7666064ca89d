"""A plain CSV of person boxes with their actions, one box (or one box and action) per row.

Header (column order free; ``person_id`` optional)::

    video,time_s,x1,y1,x2,y2,actions,person_id
    clip01.mp4,1.0,12,30,60,118,stand;talk,0

- ``video``: the video's file name (or name without extension) in ``--videos``;
- ``time_s``: seconds from the start of the video;
- ``x1,y1,x2,y2``: the box, (x1, y1) the top-left corner, in pixels of the video or normalized
  to [0, 1]: ``--box-units``, or the header says it with ``x1_px ...`` or ``x1_norm ...``;
- ``actions``: action names separated by ``;`` or ``|`` (empty: a person with no action);
- ``person_id``: a non-negative integer (empty or absent: the box has no person id).

Rows of the same person, time and box are one box with all their actions.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

from .common import (
    BoxUnits,
    ImportAnnotationError,
    ImportReport,
    Sample,
    Track,
    VideoCatalog,
    parse_person_id,
)

_SPLIT_ACTIONS = re.compile(r"[;|]")
_BOX = ("x1", "y1", "x2", "y2")
_UNIT_SUFFIXES: dict[str, BoxUnits | None] = {"": None, "_px": "pixels", "_norm": "normalized"}


def read_plain_csv(
    path: str | Path,
    catalog: VideoCatalog,
    report: ImportReport,
    *,
    box_units: BoxUnits | None = None,
) -> list[Track]:
    """The rows of a plain CSV as tracks: one per (video, person id), or one anonymous track
    per video for rows without a person id."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ImportAnnotationError(f"{path}: not UTF-8 text: {e}") from e
    reader = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(reader, [])]
    columns, units = _columns(header, box_units, path)

    tracks: dict[tuple[str, int | None], Track] = {}
    # (video, person, time, box) -> index of its sample in its track, to merge action rows.
    merged: dict[tuple, int] = {}
    for fields in reader:
        line = reader.line_num
        where = f"{path}:{line}"
        if not any(f.strip() for f in fields):
            continue
        report.count("CSV rows read")
        if len(fields) != len(header):
            report.bad(where, f"expected {len(header)} fields as in the header, got {len(fields)}")
            continue
        row = {name: fields[i].strip() for name, i in columns.items()}
        try:
            time_s = float(row["time_s"])
            x1, y1, x2, y2 = (float(row[k]) for k in _BOX)
        except ValueError:
            report.bad(where, "time_s, x1, y1, x2, y2 must be numbers")
            continue
        box = (x1, y1, x2, y2)
        if not all(math.isfinite(v) for v in (time_s, *box)) or time_s < 0:
            report.bad(where, "time_s must be >= 0 and the box finite")
            continue
        if box[0] > box[2] or box[1] > box[3]:
            report.bad(where, f"box {box} must have x1 <= x2 and y1 <= y2")
            continue
        person_id = None
        if row.get("person_id"):
            person_id = parse_person_id(row["person_id"])
            if person_id is None:
                report.bad(where, f"person_id {row['person_id']!r} is not an integer >= 0")
                continue
        if not row["video"]:
            report.bad(where, "empty video")
            continue
        video = catalog.require(row["video"], where)
        actions = tuple(a.strip() for a in _SPLIT_ACTIONS.split(row["actions"]) if a.strip())
        key = (video.video_id, person_id)
        track = tracks.get(key)
        if track is None:
            who = f"person {person_id}" if person_id is not None else "boxes without person id"
            track = Track(
                video,
                person_id,
                f"{path}: {video.video_id} {who}",
                units,
                (video.width, video.height),
            )
            tracks[key] = track
        same = (*key, time_s, box)
        if same in merged:
            previous = track.samples[merged[same]]
            track.samples[merged[same]] = Sample(
                time_s,
                time_s,
                previous.box,
                tuple(sorted(set(previous.actions + actions))),
                previous.where,
            )
            report.count("CSV rows merged into the box of an earlier row")
            continue
        if person_id is not None and any(s.start_s == time_s for s in track.samples):
            report.bad(where, f"person {person_id} has a second, different box at {time_s} s")
            continue
        merged[same] = len(track.samples)
        track.samples.append(Sample(time_s, time_s, box, tuple(sorted(set(actions))), where))
        report.count("CSV boxes read")
    return [tracks[k] for k in sorted(tracks, key=lambda k: (k[0], -1 if k[1] is None else k[1]))]


def _columns(
    header: list[str], box_units: BoxUnits | None, path: Path
) -> tuple[dict[str, int], BoxUnits]:
    """Column index of each field, and the box units (from the flag or the header)."""
    if not header:
        raise ImportAnnotationError(f"{path}:1: empty file; expected a header line")
    index = {name: i for i, name in enumerate(header)}
    columns: dict[str, int] = {}
    for name, aliases in (("video", ("video", "video_id")), ("time_s", ("time_s", "time"))):
        found = next((index[a] for a in aliases if a in index), None)
        if found is None:
            raise ImportAnnotationError(
                f"{path}:1: header has no {name!r} column; expected "
                "video,time_s,x1,y1,x2,y2,actions[,person_id]"
            )
        columns[name] = found
    header_units = None
    for suffix, suffix_units in _UNIT_SUFFIXES.items():
        if all(f"{k}{suffix}" in index for k in _BOX):
            columns.update({k: index[f"{k}{suffix}"] for k in _BOX})
            header_units = suffix_units
            break
    else:
        raise ImportAnnotationError(
            f"{path}:1: header needs x1,y1,x2,y2 (or x1_px.., or x1_norm..) columns, got {header}"
        )
    if "actions" not in index:
        raise ImportAnnotationError(f"{path}:1: header has no 'actions' column")
    columns["actions"] = index["actions"]
    if "person_id" in index:
        columns["person_id"] = index["person_id"]
    if header_units is not None and box_units is not None and header_units != box_units:
        raise ImportAnnotationError(
            f"{path}:1: the header says {header_units} boxes but --box-units is {box_units}"
        )
    units = header_units or box_units
    if units is None:
        raise ImportAnnotationError(
            f"{path}:1: say whether x1,y1,x2,y2 are pixels or normalized: --box-units "
            "pixels|normalized, or name the columns x1_px.. or x1_norm.."
        )
    return columns, units
