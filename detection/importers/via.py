"""VIA (VGG Image Annotator 3.x) project JSON of video annotations.

The file (VIA 3 source, `_via_data.js` / `_via_metadata.js` / `_via_attribute.js`)::

    {"project": {...}, "config": {...},
     "attribute": {aid: {"aname", "anchor_id", "type", "desc", "options": {oid: name},
                         "default_option_id"}},
     "file": {fid: {"fid", "fname", "type", "loc", "src"}},
     "view": {vid: {"fid_list": [fid]}},
     "metadata": {mid: {"vid", "flg", "z": [t] | [t_start, t_end], "xy": [shape, ...],
                        "av": {aid: value}}}}

`z` is the time in seconds of the video (one value: a box on that frame; two: a temporal
segment, here a box held over it), `xy` a region in the video's pixels, ``[2, x, y, w, h]`` for a
rectangle (shape id 2; (x, y) the top-left corner). Attribute types: 1 text, 2 checkbox (the
value is the chosen option ids, comma-separated), 3 radio and 4 select (one option id).

Actions: the option names chosen in the checkbox, radio and select attributes (all of them, or
those named with ``--action-attribute``; text attributes named there give names separated by
``,``, ``;`` or ``|``). Person: an attribute named ``--person-attribute`` (default the first
named person_id, person, track_id, track or id) holding a non-negative integer; without one,
boxes have no person id and a keyframe takes every box of the nearest annotated time.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from .common import (
    ImportAnnotationError,
    ImportReport,
    Sample,
    Track,
    VideoCatalog,
    parse_person_id,
)

_RECTANGLE = 2
_CHECKBOX, _RADIO, _SELECT = 2, 3, 4
_OPTION_TYPES = (_CHECKBOX, _RADIO, _SELECT)
_PERSON_NAMES = ("person_id", "person", "track_id", "track", "id")
_SPLIT_ACTIONS = re.compile(r"[,;|]")


def read_via(
    path: str | Path,
    catalog: VideoCatalog,
    report: ImportReport,
    *,
    person_attribute: str | None = None,
    action_attributes: tuple[str, ...] = (),
) -> list[Track]:
    """The boxes of a VIA 3 project as tracks: one per (video, person id), or one anonymous
    track per video for boxes without a person id."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ImportAnnotationError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from e
    if not isinstance(data, dict):
        raise ImportAnnotationError(f"{path}: expected a JSON object (a VIA 3 project)")
    sections = {}
    for key in ("attribute", "file", "view", "metadata"):
        section = data.get(key)
        if not isinstance(section, dict):
            raise ImportAnnotationError(
                f"{path}: key {key!r} must be an object (is this a VIA 3 project? VIA 2 files "
                "have _via_img_metadata instead)"
            )
        sections[key] = section
    attributes: dict[str, dict[str, Any]] = sections["attribute"]
    person_aid = _person_attribute(attributes, person_attribute, path)
    action_aids = _action_attributes(attributes, action_attributes, person_aid, path)

    tracks: dict[tuple[str, int | None], Track] = {}
    for mid, metadata in sections["metadata"].items():
        where = f"{path}: metadata {mid!r}"
        report.count("VIA metadata read")
        if not isinstance(metadata, dict):
            report.bad(where, "expected an object with vid, z, xy, av")
            continue
        fname = _file_name(metadata.get("vid"), sections["view"], sections["file"])
        if fname is None:
            report.bad(where, f"vid {metadata.get('vid')!r} is not a view of exactly one file")
            continue
        z, xy, av = metadata.get("z"), metadata.get("xy"), metadata.get("av", {})
        if not isinstance(z, list) or not _numbers(z) or len(z) > 2 or not isinstance(av, dict):
            report.bad(where, f"z must be [t] or [t_start, t_end] in seconds, got {z!r}")
            continue
        if not isinstance(xy, list):
            report.bad(where, f"xy must be a list, got {xy!r}")
            continue
        if not z:
            report.skip("VIA metadata without a time (file or image annotations)", where)
            continue
        if not xy:
            report.skip("VIA temporal segments without a rectangle", where)
            continue
        if xy[0] != _RECTANGLE:
            report.skip(f"VIA regions that are not rectangles (shape id {xy[0]})", where)
            continue
        if len(xy) != 5 or not _numbers(xy) or xy[3] < 0 or xy[4] < 0:
            report.bad(where, f"a rectangle is [2, x, y, width, height], got {xy!r}")
            continue
        if z[0] < 0 or z[-1] < z[0]:
            report.bad(where, f"z = {z!r}: times must be >= 0 and in order")
            continue
        person_id = None
        if person_aid is not None and str(av.get(person_aid, "")).strip():
            text = _option_name(attributes[person_aid], str(av[person_aid]).strip())
            person_id = parse_person_id(text or "")
            if person_id is None:
                aname = attributes[person_aid].get("aname")
                report.bad(where, f"person {aname!r} = {av[person_aid]!r} is not an integer >= 0")
                continue
        try:
            actions = _actions(av, attributes, action_aids)
        except ValueError as e:
            report.bad(where, str(e))
            continue
        video = catalog.require(fname, where)
        _, x, y, w, h = xy
        sample = Sample(float(z[0]), float(z[-1]), (x, y, x + w, y + h), actions, where)
        track = tracks.get((video.video_id, person_id))
        if track is None:
            who = f"person {person_id}" if person_id is not None else "boxes without person id"
            track = Track(
                video,
                person_id,
                f"{path}: {video.video_id} {who}",
                "pixels",
                (video.width, video.height),
            )
            tracks[(video.video_id, person_id)] = track
        if person_id is not None and any(
            (s.start_s, s.end_s) == (sample.start_s, sample.end_s) for s in track.samples
        ):
            report.bad(where, f"person {person_id} has a second box at z = {z}")
            continue
        track.samples.append(sample)
        report.count("VIA boxes read")
    return [tracks[k] for k in sorted(tracks, key=lambda k: (k[0], -1 if k[1] is None else k[1]))]


def _person_attribute(
    attributes: dict[str, dict[str, Any]], name: str | None, path: Path
) -> str | None:
    names = {aid: str(a.get("aname", "")) for aid, a in attributes.items() if isinstance(a, dict)}
    if name is not None:
        for aid, aname in names.items():
            if aname == name:
                return aid
        raise ImportAnnotationError(
            f"{path}: no attribute named {name!r} (--person-attribute); attributes are "
            f"{sorted(names.values())}"
        )
    for wanted in _PERSON_NAMES:
        for aid, aname in names.items():
            if aname.lower() == wanted:
                return aid
    return None


def _action_attributes(
    attributes: dict[str, dict[str, Any]],
    names: tuple[str, ...],
    person_aid: str | None,
    path: Path,
) -> list[str]:
    if names:
        by_name = {a.get("aname"): aid for aid, a in attributes.items() if isinstance(a, dict)}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ImportAnnotationError(
                f"{path}: no attribute named {missing} (--action-attribute); attributes are "
                f"{sorted(str(n) for n in by_name)}"
            )
        return [by_name[n] for n in names]
    return [
        aid
        for aid, a in attributes.items()
        if isinstance(a, dict) and a.get("type") in _OPTION_TYPES and aid != person_aid
    ]


def _file_name(vid: Any, views: dict[str, Any], files: dict[str, Any]) -> str | None:
    view = views.get(str(vid))
    fid_list = view.get("fid_list") if isinstance(view, dict) else None
    if not isinstance(fid_list, list) or len(fid_list) != 1:
        return None
    file = files.get(str(fid_list[0]))
    fname = file.get("fname") if isinstance(file, dict) else None
    return fname if isinstance(fname, str) and fname else None


def _numbers(values: Any) -> bool:
    return isinstance(values, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )


def _option_name(attribute: dict[str, Any], value: str) -> str | None:
    """The option name of option id `value` for an option attribute; the text itself for text."""
    if attribute.get("type") in _OPTION_TYPES:
        return attribute.get("options", {}).get(value)
    return value


def _actions(
    av: dict[str, Any], attributes: dict[str, dict[str, Any]], action_aids: list[str]
) -> tuple[str, ...]:
    actions: list[str] = []
    for aid in action_aids:
        attribute = attributes[aid]
        value = str(av.get(aid, "")).strip()
        if not value:
            continue
        if attribute.get("type") in _OPTION_TYPES:
            parts = value.split(",") if attribute.get("type") == _CHECKBOX else [value]
            for oid in (p.strip() for p in parts if p.strip()):
                name = attribute.get("options", {}).get(oid)
                if name is None:
                    raise ValueError(
                        f"attribute {attribute.get('aname')!r}: option id {oid!r} is not one of "
                        f"{sorted(attribute.get('options', {}))}"
                    )
                actions.append(str(name))
        else:
            actions.extend(p.strip() for p in _SPLIT_ACTIONS.split(value) if p.strip())
    return tuple(sorted(set(actions)))
