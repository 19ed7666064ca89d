"""CVAT "for video 1.1" XML: tracks of boxes, interpolated as CVAT interpolates them.

The file (CVAT's XML format documentation, "Interpolation")::

    <annotations><version>1.1</version>
      <meta><task> <size/> <start_frame/> <stop_frame/> <frame_filter>step=N</frame_filter>
        <labels><label><name/><attributes><attribute><name/><input_type/>...</attribute>...
        <original_size><width/><height/></original_size> </task> <source>video.mp4</source></meta>
      <track id label source>
        <box frame outside occluded keyframe xtl ytl xbr ybr z_order>
          <attribute name="...">value</attribute> ...
        </box> ...
      </track> ...

`frame` is the frame number in the video (CVAT exports ``start_frame + i * step`` for task
frame ``i``); boxes are pixels of `original_size` (else of the video file), (xtl, ytl) the
top-left corner.

Interpolation (CVAT's track rule): a track is visible from each box with ``outside="0"`` up to
the next box of the track; between two consecutive boxes the coordinates are interpolated
linearly in the frame number (towards the next box even when that one is ``outside="1"``, as
CVAT does); from an ``outside="1"`` box the object is not visible until the next box; after the
last box, a visible object stays where it is until the task's stop frame. Attributes hold the
value of the box at or before the frame. An export that already lists every frame reads the
same, each frame being its own box.

Actions: a track whose label is the person label (``--person-label``, default ``person``)
has as actions the names of its attributes whose value is ``true`` (CVAT checkboxes); any
other label is itself the one action of its track. Each track is one person; the track id is
the AVA person id.
"""

from __future__ import annotations

import bisect
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from .common import ImportAnnotationError, ImportReport, Sample, Track, VideoCatalog, VideoInfo

_COORDS = ("xtl", "ytl", "xbr", "ybr")
_BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True)
class _Box:
    frame: int
    box: tuple[float, float, float, float]
    outside: bool
    attributes: dict[str, str]


@dataclass(frozen=True)
class _Task:
    start_frame: int
    stop_frame: int | None
    step: int
    frame_size: tuple[int, int] | None
    checkbox_attributes: dict[str, set[str]]  # label -> names declared as checkboxes


class CvatTrack(Track):
    """A CVAT track: the box at any frame from its boxes by CVAT's interpolation rule."""

    def __init__(
        self,
        video: VideoInfo,
        track_id: int,
        where: str,
        frame_size: tuple[int, int],
        boxes: list[_Box],
        task: _Task,
        actions_of: dict[str, tuple[str, ...]],
    ):
        super().__init__(video, track_id, where, "pixels", frame_size)
        self.boxes = boxes
        self.task = task
        self._frames = [b.frame for b in boxes]
        self._actions_of = actions_of  # attribute set key -> actions, computed by the reader
        last_frame = max(0, int(round(video.duration_s * video.fps)) - 1)
        stop = task.stop_frame if task.stop_frame is not None else last_frame
        # Frame ranges (inclusive, disjoint, sorted) where the object is visible; the boxes of
        # a full export (one per frame) make one range.
        self.visible: list[tuple[int, int]] = []
        for i, box in enumerate(boxes):
            if box.outside:
                continue
            end = boxes[i + 1].frame - 1 if i + 1 < len(boxes) else max(stop, box.frame)
            if self.visible and self.visible[-1][1] + 1 >= box.frame:
                self.visible[-1] = (self.visible[-1][0], end)
            else:
                self.visible.append((box.frame, end))
        self._visible_starts = [first for first, _ in self.visible]

    def _snap(self, frame: float, first: int, last: int) -> int:
        """The task frame (start_frame + k * step) in [first, last] nearest `frame` (the
        earlier on a tie)."""
        step, origin = self.task.step, self.task.start_frame
        clamped = min(max(frame, first), last)
        k = math.ceil((clamped - origin) / step - 0.5)
        snapped = origin + k * step
        if snapped < first:
            snapped += step
        if snapped > last:
            snapped -= step
        return snapped

    def samples_near(self, time_s: float, tolerance_s: float) -> list[Sample]:
        fps = self.video.fps
        target = time_s * fps
        best: tuple[float, int] | None = None
        # The nearest visible frame is in the range at or before the target, or the next one.
        i = bisect.bisect_right(self._visible_starts, target) - 1
        for first, last in self.visible[max(0, i) : i + 2]:
            frame = self._snap(target, first, last)
            if not first <= frame <= last:
                continue
            distance = abs(frame / fps - time_s)
            if best is None or (distance, frame) < best:
                best = (distance, frame)
        if best is None or best[0] > tolerance_s:
            return []
        return [self.at(best[1])]

    def at(self, frame: int) -> Sample:
        """The (visible) box at `frame`, interpolated between the boxes around it."""
        i = bisect.bisect_right(self._frames, frame) - 1
        prev = self.boxes[i]
        box = prev.box
        if prev.frame != frame and i + 1 < len(self.boxes):
            nxt = self.boxes[i + 1]
            w = (frame - prev.frame) / (nxt.frame - prev.frame)
            (a1, b1, c1, d1), (a2, b2, c2, d2) = prev.box, nxt.box
            box = (a1 + (a2 - a1) * w, b1 + (b2 - b1) * w, c1 + (c2 - c1) * w, d1 + (d2 - d1) * w)
        time_s = frame / self.video.fps
        actions = self._actions_of[_attribute_key(prev.attributes)]
        return Sample(time_s, time_s, box, actions, f"{self.where} frame {frame}")


def _attribute_key(attributes: dict[str, str]) -> str:
    return "\x00".join(f"{k}\x01{v}" for k, v in sorted(attributes.items()))


def read_cvat(
    path: str | Path,
    catalog: VideoCatalog,
    report: ImportReport,
    *,
    person_label: str = "person",
) -> list[Track]:
    """The tracks of a CVAT for video 1.1 XML file, one `CvatTrack` per ``<track>`` of boxes.

    The video is the one `<meta><source>` names (CVAT writes the uploaded file name there),
    else the task name, else the XML file's own name, looked up in `catalog`. Non-box shapes
    are skipped and counted; a box without numbers, with x1 > x2, a repeated frame or a
    checkbox attribute that is neither true nor false is malformed (`report.bad`).
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ImportAnnotationError(f"{path}: not well-formed XML: {e}") from e
    if root.tag != "annotations":
        raise ImportAnnotationError(f"{path}: root element is <{root.tag}>, expected <annotations>")
    if root.find("image") is not None and root.find("track") is None:
        raise ImportAnnotationError(
            f"{path}: a 'CVAT for images' export (<image> elements); export the task as "
            "'CVAT for video 1.1'"
        )
    task = _read_task(root, path)
    video = catalog.require(_video_name(root, path), str(path))
    frame_size = task.frame_size or (video.width, video.height)

    tracks: list[Track] = []
    seen_ids: set[int] = set()
    for element in root.iter("track"):
        report.count("CVAT tracks read")
        where = f"{path}: track {element.get('id')}"
        track_id = _int(element.get("id"))
        if track_id is None or track_id < 0:
            report.bad(where, f"track id {element.get('id')!r} is not a non-negative integer")
            continue
        if track_id in seen_ids:
            report.bad(where, "track id used twice")
            continue
        seen_ids.add(track_id)
        label = element.get("label", "")
        shapes = list(element)
        others = [s for s in shapes if s.tag != "box"]
        if others:
            report.skip(f"non-box shapes (<{others[0].tag}>...)", where, len(others))
        boxes = _read_boxes(element, where, report)
        report.count("CVAT boxes read", len(boxes))
        if not shapes:
            report.skip("empty tracks", where)
        if not boxes:
            continue
        actions_of = _actions(boxes, label, person_label, task, where, report)
        if actions_of is None:
            continue
        tracks.append(CvatTrack(video, track_id, where, frame_size, boxes, task, actions_of))
    return tracks


def _read_task(root: ET.Element, path: Path) -> _Task:
    meta = root.find("meta")
    task = None
    if meta is not None:
        task = meta.find("task")
        if task is None:
            task = meta.find("job")
    if task is None:
        return _Task(0, None, 1, None, {})
    start = _int(task.findtext("start_frame", "0")) or 0
    stop = _int(task.findtext("stop_frame", ""))
    step = 1
    frame_filter = (task.findtext("frame_filter") or "").strip()
    if frame_filter:
        key, _, value = frame_filter.partition("=")
        step_value = _int(value)
        if key.strip() != "step" or step_value is None or step_value < 1:
            raise ImportAnnotationError(
                f"{path}: <frame_filter>{frame_filter}</frame_filter>: expected 'step=N'"
            )
        step = step_value
    size_frames = _int(task.findtext("size", ""))
    if stop is None and size_frames:
        stop = start + (size_frames - 1) * step
    size = None
    original = task.find("original_size")
    if original is not None:
        width, height = _int(original.findtext("width")), _int(original.findtext("height"))
        if not width or not height or width < 1 or height < 1:
            raise ImportAnnotationError(
                f"{path}: <original_size> needs positive integer <width> and <height>"
            )
        size = (width, height)
    checkboxes: dict[str, set[str]] = {}
    for label in task.iter("label"):
        names = {
            a.findtext("name", "")
            for a in label.iter("attribute")
            if (a.findtext("input_type") or "").strip() == "checkbox"
        }
        checkboxes[label.findtext("name", "")] = names
    return _Task(start, stop, step, size, checkboxes)


def _video_name(root: ET.Element, path: Path) -> str:
    for key in ("meta/source", "meta/task/source", "meta/task/name", "meta/job/name"):
        text = (root.findtext(key) or "").strip()
        if text:
            return text
    return path.stem


def _read_boxes(track: ET.Element, where: str, report: ImportReport) -> list[_Box]:
    boxes: dict[int, _Box] = {}
    for element in track.iter("box"):
        frame = _int(element.get("frame"))
        at = f"{where} frame {element.get('frame')}"
        if frame is None or frame < 0:
            report.bad(at, f"frame {element.get('frame')!r} is not a non-negative integer")
            continue
        try:
            coords = tuple(float(element.get(k, "")) for k in _COORDS)
        except ValueError:
            text = ", ".join(f"{k}={element.get(k)!r}" for k in _COORDS)
            report.bad(at, f"box coordinates must be numbers, got {text}")
            continue
        x1, y1, x2, y2 = coords
        if not all(math.isfinite(c) for c in coords) or x1 > x2 or y1 > y2:
            report.bad(at, f"box (xtl, ytl, xbr, ybr) = {coords} must have xtl <= xbr, ytl <= ybr")
            continue
        outside = element.get("outside", "0").strip()
        if outside not in ("0", "1"):
            report.bad(at, f"outside={outside!r}, expected 0 or 1")
            continue
        if frame in boxes:
            report.bad(at, "a second box at the same frame")
            continue
        attributes = {a.get("name", ""): (a.text or "").strip() for a in element.iter("attribute")}
        boxes[frame] = _Box(frame, (x1, y1, x2, y2), outside == "1", attributes)
    return [boxes[f] for f in sorted(boxes)]


def _actions(
    boxes: list[_Box],
    label: str,
    person_label: str,
    task: _Task,
    where: str,
    report: ImportReport,
) -> dict[str, tuple[str, ...]] | None:
    """Actions for each distinct attribute set of the track's boxes, or None if malformed."""
    declared = task.checkbox_attributes.get(label, set())
    out: dict[str, tuple[str, ...]] = {}
    for box in boxes:
        key = _attribute_key(box.attributes)
        if key in out:
            continue
        if label != person_label:
            out[key] = (label,)
            continue
        actions = []
        for name, value in box.attributes.items():
            flag = _BOOLEANS.get(value.lower())
            if flag is None:
                if name in declared:
                    report.bad(
                        f"{where} frame {box.frame}",
                        f"checkbox attribute {name!r} = {value!r}, expected true or false",
                    )
                    return None
                continue
            if flag:
                actions.append(name)
        out[key] = tuple(sorted(actions))
    return out


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).strip())
    except ValueError:
        return None
