"""From boxes over time to AVA keyframes: which boxes, at which whole seconds.

Rule: keyframes are seconds 0, P, 2P, ... (P = 1 / keyframes-per-second, a whole number of
seconds because AVA timestamps are whole seconds) before the end of each video, counted from
the start of the video file (second 0, not AVA's 900). For each person (track), a keyframe
takes the box of the annotated frame nearest it, at most P / 2 away (the earlier on a tie);
a person with no annotated frame that near has no box at that keyframe. Pixel boxes are
normalized by the frame size the annotation refers to, then clipped to [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from detection.structures.boxes import normalize_boxes

from .common import ImportReport, Track


@dataclass(frozen=True)
class KeyframeBox:
    """One person's box at one keyframe: `box` (x1, y1, x2, y2) normalized to [0, 1] with
    (x1, y1) the top-left corner; `where` names the annotation it came from."""

    video_id: str
    second: int
    box: tuple[float, float, float, float]
    actions: tuple[str, ...]
    person_id: int | None
    where: str


def keyframe_period(keyframes_per_sec: float) -> int:
    """Seconds between keyframes; ValueError unless 1 / `keyframes_per_sec` is a whole number
    of seconds (AVA CSV timestamps are whole seconds)."""
    if not keyframes_per_sec > 0:
        raise ValueError(f"--keyframes-per-sec must be > 0, got {keyframes_per_sec}")
    period = 1.0 / keyframes_per_sec
    if abs(period - round(period)) > 1e-9:
        raise ValueError(
            f"--keyframes-per-sec {keyframes_per_sec}: AVA timestamps are whole seconds, so the "
            "keyframe period 1 / rate must be a whole number of seconds (1, 0.5, 0.25, ...)"
        )
    return int(round(period))


def keyframe_seconds(duration_s: float, period_s: int) -> list[int]:
    """Keyframe seconds 0, P, 2P, ... strictly before `duration_s`."""
    return [s for s in range(0, math.floor(duration_s) + 1, period_s) if s < duration_s]


def sample_keyframes(tracks: list[Track], period_s: int, report: ImportReport) -> list[KeyframeBox]:
    """The keyframe boxes of `tracks` by the module's rule, in track then second order.

    Counted in `report`: boxes clipped to [0, 1]; skipped: boxes empty after clipping, and
    annotated boxes that no keyframe took (not the nearest to any keyframe, more than P / 2
    from every keyframe, or after the end of the video)."""
    tolerance = period_s / 2
    out: list[KeyframeBox] = []
    for track in tracks:
        width, height = track.frame_size
        used: set[int] = set()
        for second in keyframe_seconds(track.video.duration_s, period_s):
            near = track.samples_near(second, tolerance)
            if track.person_id is not None and len(near) > 1:
                for extra in near[1:]:
                    used.add(id(extra))
                    report.bad(extra.where, f"a second box of person {track.person_id} here")
                near = near[:1]
            for sample in near:
                used.add(id(sample))
                box = np.asarray(sample.box, dtype=np.float64)
                if track.units == "pixels":
                    box = normalize_boxes(box, height, width)[0].astype(np.float64)
                clipped = box.clip(0.0, 1.0)
                if not np.array_equal(clipped, box):
                    report.count("boxes clipped to [0, 1]")
                if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
                    report.skip("boxes empty after clipping to the frame", sample.where)
                    continue
                x1, y1, x2, y2 = (float(v) for v in clipped)
                out.append(
                    KeyframeBox(
                        track.video.video_id,
                        second,
                        (x1, y1, x2, y2),
                        sample.actions,
                        track.person_id,
                        sample.where,
                    )
                )
        for sample in track.samples:
            if id(sample) in used:
                continue
            if sample.start_s >= track.video.duration_s:
                report.skip("annotations after the end of the video", sample.where)
            else:
                report.skip(
                    f"annotations no keyframe took (another was nearer, or more than "
                    f"{tolerance:g} s from every keyframe)",
                    sample.where,
                )
    return out
