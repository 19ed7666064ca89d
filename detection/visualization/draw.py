"""Boxes with action labels drawn on RGB frames (OpenCV).

Styles: predictions are solid boxes with label boxes ("name 0.87") above their top edge;
ground truth is dashed with its labels under the bottom edge, so both can share a frame.
A class's colour depends only on its id, so it is the same in every frame and every run.
Box edges are drawn without anti-aliasing, so they carry their class colour exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from detection.structures.boxes import clip_boxes

# (class id, name, score or None): one label drawn for one box.
Label = tuple[int, str, float | None]

STYLES = ("prediction", "ground_truth")

# 20 well-separated colours (RGB); class ids index them in order so neighbours differ.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
)  # fmt: skip
# Boxes without any label (a person with no action above threshold).
PERSON_COLOR = (255, 255, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_color(class_id: int) -> tuple[int, int, int]:
    """The RGB colour of a class id: fixed, so stable across frames, videos and runs."""
    return PALETTE[int(class_id) % len(PALETTE)]


def text_color(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on `background` (ITU-R BT.601 luma)."""
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def _font_scale(height: int, width: int) -> float:
    # 0.4 is the smallest size whose digits stay legible; grows with the frame.
    return max(0.4, min(height, width) / 720)


def _dashed_rectangle(img, p1, p2, color, thickness: int, dash: int) -> None:
    x1, y1 = p1
    x2, y2 = p2
    for xa, ya, xb, yb in ((x1, y1, x2, y1), (x2, y1, x2, y2), (x2, y2, x1, y2), (x1, y2, x1, y1)):
        length = max(abs(xb - xa), abs(yb - ya))
        for start in range(0, length, 2 * dash):
            end = min(start + dash, length)
            t0, t1 = start / max(length, 1), end / max(length, 1)
            a = (round(xa + (xb - xa) * t0), round(ya + (yb - ya) * t0))
            b = (round(xa + (xb - xa) * t1), round(ya + (yb - ya) * t1))
            cv2.line(img, a, b, color, thickness)


def _label_text(label: Label, with_score: bool) -> str:
    _, name, score = label
    return f"{name} {score:.2f}" if with_score and score is not None else name


def _draw_label_stack(img, texts_colors, x: int, y: int, below: bool, scale: float) -> None:
    """Filled label boxes stacked upwards from `y` (or downwards when `below`), kept inside
    the image so they stay readable for boxes touching an edge."""
    height, width = img.shape[:2]
    thickness = max(1, round(scale * 1.5))
    pad = max(2, round(3 * scale))
    sizes = [cv2.getTextSize(text, _FONT, scale, thickness) for text, _ in texts_colors]
    row_h = max(h + baseline for (_, h), baseline in sizes) + 2 * pad
    total = row_h * len(texts_colors)
    top = y if below else y - total
    # Out of room on that side: flip inside the box (top edge) or pull back in (bottom).
    top = min(max(top, 0), max(height - total, 0))
    for i, ((text, color), ((w, h), _)) in enumerate(zip(texts_colors, sizes, strict=True)):
        row_top = top + i * row_h
        left = min(max(x, 0), max(width - (w + 2 * pad), 0))
        cv2.rectangle(img, (left, row_top), (left + w + 2 * pad, row_top + row_h - 1), color, -1)
        cv2.putText(
            img,
            text,
            (left + pad, row_top + pad + h),
            _FONT,
            scale,
            text_color(color),
            thickness,
            cv2.LINE_AA,
        )


def draw_detections(
    frame_rgb: np.ndarray,
    boxes: np.ndarray,
    labels: Sequence[Sequence[Label]] | None = None,
    *,
    person_scores: Sequence[float] | np.ndarray | None = None,
    style: str = "prediction",
    thickness: int | None = None,
) -> np.ndarray:
    """A copy of `frame_rgb` with boxes and their labels drawn.

    Args:
        frame_rgb: uint8 RGB [H, W, 3].
        boxes: [N, 4] (x1, y1, x2, y2) in the frame's pixels; parts outside the frame are
            clipped and boxes entirely outside (or empty, or not finite) are skipped.
        labels: for each box, its labels as (class id, name, score or None), best first;
            the box takes the colour of its first label's class.
        person_scores: [N] person-detector scores, drawn as "person 0.93" before the labels.
        style: "prediction" (solid, labels above) or "ground_truth" (dashed, labels below,
            scores not shown).
        thickness: line width in pixels (default scales with the frame).
    Returns:
        uint8 RGB [H, W, 3].
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
        raise ValueError(
            f"frame must be uint8 RGB [H, W, 3], got {frame_rgb.dtype} {frame_rgb.shape}"
        )
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = len(boxes)
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} label lists for {n} boxes")
    if person_scores is not None and len(person_scores) != n:
        raise ValueError(f"{len(person_scores)} person scores for {n} boxes")
    img = np.ascontiguousarray(frame_rgb).copy()
    height, width = img.shape[:2]
    scale = _font_scale(height, width)
    thickness = thickness or max(1, round(min(height, width) / 240))
    ground_truth = style == "ground_truth"
    for i, box in enumerate(boxes):
        if not np.isfinite(box).all():
            continue
        x1, y1, x2, y2 = clip_boxes(box, height, width, convention="edges")[0].round().astype(int)
        if x2 <= x1 or y2 <= y1:
            continue
        # Keep the far edges on-screen: pixel `width` itself is one past the image.
        x2, y2 = min(x2, width - 1), min(y2, height - 1)
        box_labels = list(labels[i]) if labels is not None else []
        color = class_color(box_labels[0][0]) if box_labels else PERSON_COLOR
        if ground_truth:
            _dashed_rectangle(img, (x1, y1), (x2, y2), color, thickness, dash=4 * thickness + 4)
        else:
            cv2.rectangle(img, (x1, y1), (x2, y2), color, thickness)
        rows = []
        if person_scores is not None:
            rows.append((f"person {float(person_scores[i]):.2f}", PERSON_COLOR))
        rows += [(_label_text(lab, not ground_truth), class_color(lab[0])) for lab in box_labels]
        if rows:
            _draw_label_stack(
                img, rows, x1, y2 + 1 if ground_truth else y1, below=ground_truth, scale=scale
            )
    return img


def _banner_metrics(text: str, scale: float) -> tuple[int, int, int, int]:
    """(text height, strip height, padding, thickness) of a banner line."""
    thickness = max(1, round(scale * 1.5))
    (_, h), baseline = cv2.getTextSize(text or "Ag", _FONT, scale, thickness)
    pad = max(2, round(4 * scale))
    return h, h + baseline + 2 * pad, pad, thickness


def draw_banner(frame_rgb: np.ndarray, text: str) -> np.ndarray:
    """A copy of `frame_rgb` with `text` on a darkened strip across the top (notices such as
    "untrained model")."""
    img = np.ascontiguousarray(frame_rgb).copy()
    scale = _font_scale(*img.shape[:2])
    h, strip, pad, thickness = _banner_metrics(text, scale)
    img[:strip] = (img[:strip] * 0.3).astype(np.uint8)
    cv2.putText(img, text, (pad, pad + h), _FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return img


def caption_strip(text: str, width: int) -> np.ndarray:
    """A black uint8 RGB strip [h, width, 3] holding `text` in white, sized for the width."""
    scale = max(0.4, width / 960)
    h, strip, pad, thickness = _banner_metrics(text, scale)
    img = np.zeros((strip, width, 3), np.uint8)
    cv2.putText(img, text, (pad, pad + h), _FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return img
