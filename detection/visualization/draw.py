"""Boxes with action labels drawn on RGB frames (OpenCV).

Styles: predictions are solid boxes with label boxes ("name 0.87") above their top edge;
ground truth is dashed with its labels under the bottom edge, so both can share a frame.
Label stacks are laid out together (`layout_labels`) so neighbours' labels never overlap
and never leave the frame.
A class's colour depends only on its id, so it is the same in every frame and every run.
Box edges are drawn without anti-aliasing, so they carry their class colour exactly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

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
    # 0.4 is the smallest size whose digits stay legible; grows with the frame, to ~3.5% of
    # its short side per row, so that several people's stacks fit beside their boxes.
    return max(0.4, min(height, width) / 900)


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


# (x1, y1, x2, y2) in pixels, ends exclusive: the pixels [x1, x2) x [y1, y2).
Rect = tuple[int, int, int, int]
# One label row: its text and background colour.
Row = tuple[str, tuple[int, int, int]]


@dataclass(frozen=True)
class LabelStack:
    """Where the label rows of one box go: one rectangle per row (ends exclusive, inside the
    frame), the text drawn in it, its background colour, and the font scale used."""

    rects: tuple[Rect, ...]
    texts: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    scale: float

    @property
    def bounds(self) -> Rect:
        """The rectangle around all rows."""
        return (
            min(r[0] for r in self.rects),
            min(r[1] for r in self.rects),
            max(r[2] for r in self.rects),
            max(r[3] for r in self.rects),
        )


def _thickness(scale: float) -> int:
    return max(1, round(scale * 1.5))


def _pad(scale: float) -> int:
    return max(2, round(3 * scale))


def _row_sizes(rows: Sequence[Row], scale: float) -> tuple[list[int], int]:
    """(width of each row's rectangle, height of one row) at `scale`."""
    sizes = [cv2.getTextSize(text, _FONT, scale, _thickness(scale)) for text, _ in rows]
    pad = _pad(scale)
    row_h = max(h + baseline for (_, h), baseline in sizes) + 2 * pad
    return [w + 2 * pad for (w, _), _ in sizes], row_h


def _scales(scale: float) -> list[float]:
    # Shrink in two steps, not below 0.35: smaller Hershey digits blur into each other.
    return [scale] + [s for s in (scale * 0.8, scale * 0.65) if s >= 0.35]


_PARENTHESIS = re.compile(r"\s*\([^)]*\)")


def _short(rows: Sequence[Row]) -> list[Row]:
    """Rows without AVA's parenthesised explanations ("talk to (e.g., self, ...)" -> "talk
    to")."""
    return [(_PARENTHESIS.sub("", text), color) for text, color in rows]


def _forms(rows: Sequence[Row], summary: Row | None, scale: float) -> list[tuple[list[Row], float]]:
    """A box's label forms from the most to the least complete: full rows, short rows, short
    rows at smaller fonts, then the one-row summary at each font."""
    forms = [(list(rows), scale)]
    forms += [(_short(rows), s) for s in _scales(scale)]
    if summary is not None and (len(rows) > 1 or summary != rows[0]):
        forms += [(_short([summary]), s) for s in _scales(scale)]
    return forms


def layout_label_stacks(
    boxes: Sequence[tuple[int, int, int, int]],
    rows: Sequence[Sequence[Row]],
    summaries: Sequence[Row | None],
    height: int,
    width: int,
    *,
    below: bool = False,
    scale: float | None = None,
    reserve_top_px: int = 0,
    reserve_bottom_px: int = 0,
) -> list[LabelStack | None]:
    """Place each box's label rows so that no two stacks overlap and all stay in the frame.

    Args:
        boxes: per box (x1, y1, x2, y2), the drawn edges (last pixel inclusive), inside the
            frame.
        rows: per box, its label rows top to bottom (may be empty: nothing placed).
        summaries: per box, the single row shown when the full stack fits nowhere ("stand +2").
        height, width: the frame's size.
        below: the preferred side: above the box's top edge (predictions) or under its bottom
            edge (ground truth).
        scale: the font scale to start from (default: from the frame size).
        reserve_top_px, reserve_bottom_px: strips across the top and bottom of the frame that
            no label may cover (where a banner such as `draw_banner`'s goes: `banner_height`).
    Returns:
        Per box, its `LabelStack`, or None when it has no rows or not even its summary fits.

    Each box has label forms from the most to the least complete: its rows; the rows without
    parenthesised explanations; those at 0.8 and 0.65 of the font; its summary row at each
    font. Positions, in order: the preferred side, the other side, inside the box's top and
    bottom edges, one and two rows further out, then against the stacks already placed; each
    aligned with the box's left edge, right edge or centre, or beside a placed stack where
    that still spans part of the box's width, and pulled inside the frame. First every box
    takes the first form at which all of them fit (boxes served left to right, first free
    position), so one crowded group of boxes cannot take all the room; then each box in turn
    moves to a more complete form where one fits around the other stacks without covering
    another box.
    Where even the summaries do not all fit, the boxes that find no room get None.
    """
    if not len(boxes) == len(rows) == len(summaries):
        raise ValueError(f"{len(boxes)} boxes, {len(rows)} row lists, {len(summaries)} summaries")
    scale = _font_scale(height, width) if scale is None else scale
    reserve = (max(0, int(reserve_top_px)), max(0, int(reserve_bottom_px)))
    order = sorted(
        (i for i in range(len(boxes)) if rows[i]), key=lambda i: (boxes[i][0], boxes[i][1], i)
    )
    forms = {i: _forms(rows[i], summaries[i], scale) for i in order}
    levels = max((len(f) for f in forms.values()), default=0)
    out: list[LabelStack | None] = [None] * len(boxes)
    level_of: dict[int, int] = {}
    for level in range(levels):
        placed: list[Rect] = []
        trial: dict[int, LabelStack | None] = {}
        for i in order:
            form_rows, s = forms[i][min(level, len(forms[i]) - 1)]
            stack = _fit(boxes[i], form_rows, s, height, width, below, placed, reserve)
            trial[i] = stack
            if stack is not None:
                placed.append(stack.bounds)
            elif level < levels - 1:
                break  # this level cannot hold everyone: try the next one
        if all(trial.get(i) is not None for i in order) or level == levels - 1:
            for i in order:
                out[i] = trial.get(i)
                level_of[i] = min(level, len(forms[i]) - 1)
            break
    # Upgrade where there is room left: each box, the others fixed, takes its most complete
    # form that fits without covering another box (a long stack over the neighbours would
    # make the frame harder to read than a uniformly compact one).
    for i in order:
        if out[i] is None:
            continue
        others = [st.bounds for j, st in enumerate(out) if j != i and st is not None]
        others += [(b[0], b[1], b[2] + 1, b[3] + 1) for j, b in enumerate(boxes) if j != i]
        for form_rows, s in forms[i][: level_of[i]]:
            better = _fit(boxes[i], form_rows, s, height, width, below, others, reserve)
            if better is not None:
                out[i] = better
                break
    return out


def _fit(
    box: tuple[int, int, int, int],
    rows: list[Row],
    scale: float,
    height: int,
    width: int,
    below: bool,
    placed: list[Rect],
    reserve: tuple[int, int] = (0, 0),
) -> LabelStack | None:
    """The stack of `rows` at the first free position around `box` within the rows
    ``reserve[0] .. height - reserve[1]``, or None."""
    widths, row_h = _row_sizes(rows, scale)
    stack_w, stack_h = max(widths), row_h * len(rows)
    low, high = reserve[0], height - reserve[1]
    if stack_w > width or stack_h > high - low:
        return None
    x1, y1, x2, y2 = box
    above, under = y1 - stack_h, y2 + 1
    inside_top, inside_bottom = y1 + 1, y2 - stack_h
    if below:
        tops = [under, above, inside_bottom, inside_top, under + row_h, under + 2 * row_h]
    else:
        tops = [above, under, inside_top, inside_bottom, above - row_h, above - 2 * row_h]
    lefts = [x1, x2 + 1 - stack_w, (x1 + x2 + 1 - stack_w) // 2]
    taken = np.array(placed, np.int64).reshape(-1, 4)
    # Then against the stacks already placed nearby: beside them (if still over this box),
    # or just under or over them.
    near = taken[
        (taken[:, 0] < x2 + 1 + stack_w)
        & (taken[:, 2] > x1 - stack_w)
        & (taken[:, 1] < y2 + 4 * stack_h)
        & (taken[:, 3] > y1 - 4 * stack_h)
    ]
    # The 6 nearest are enough, and keep crowded frames fast (candidates grow as their square).
    centre = np.array([x1 + x2, y1 + y2]) / 2
    near = near[np.argsort(np.abs((near[:, :2] + near[:, 2:]) / 2 - centre).sum(axis=1))[:6]]
    lefts += [int(r[2]) for r in near if r[2] <= x2] + [
        int(r[0]) - stack_w for r in near if r[0] > x1
    ]
    tops += [int(r[3]) for r in near] + [int(r[1]) - stack_h for r in near]
    # Every candidate in order of preference, pulled inside the frame, tested at once.
    cand_top = np.repeat(np.clip(tops, low, high - stack_h), len(lefts))
    cand_left = np.tile(np.clip(lefts, 0, width - stack_w), len(tops))
    clash = (
        (cand_left[:, None] < taken[None, :, 2])
        & (taken[None, :, 0] < cand_left[:, None] + stack_w)
        & (cand_top[:, None] < taken[None, :, 3])
        & (taken[None, :, 1] < cand_top[:, None] + stack_h)
    ).any(axis=1)
    free = np.flatnonzero(~clash)
    if not len(free):
        return None
    left, top = int(cand_left[free[0]]), int(cand_top[free[0]])
    return LabelStack(
        rects=tuple(
            (left, top + k * row_h, left + w, top + (k + 1) * row_h) for k, w in enumerate(widths)
        ),
        texts=tuple(text for text, _ in rows),
        colors=tuple(color for _, color in rows),
        scale=scale,
    )


def _draw_stack(img: np.ndarray, stack: LabelStack) -> None:
    thickness, pad = _thickness(stack.scale), _pad(stack.scale)
    for (x1, y1, x2, y2), text, color in zip(stack.rects, stack.texts, stack.colors, strict=True):
        cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), color, -1)
        (_, h), _ = cv2.getTextSize(text, _FONT, stack.scale, thickness)
        cv2.putText(
            img,
            text,
            (x1 + pad, y1 + pad + h),
            _FONT,
            stack.scale,
            text_color(color),
            thickness,
            cv2.LINE_AA,
        )


def _check_inputs(n: int, labels, person_scores, track_ids, style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} label lists for {n} boxes")
    if person_scores is not None and len(person_scores) != n:
        raise ValueError(f"{len(person_scores)} person scores for {n} boxes")
    if track_ids is not None and len(track_ids) != n:
        raise ValueError(f"{len(track_ids)} track ids for {n} boxes")


def _drawn_box(box: np.ndarray, height: int, width: int) -> tuple[int, int, int, int] | None:
    """The box's edges as drawn (last pixel inclusive), or None when nothing of it shows."""
    if not np.isfinite(box).all():
        return None
    x1, y1, x2, y2 = clip_boxes(box, height, width, convention="edges")[0].round().astype(int)
    if x2 <= x1 or y2 <= y1:
        return None
    # Keep the far edges on-screen: pixel `width` itself is one past the image.
    return int(x1), int(y1), min(int(x2), width - 1), min(int(y2), height - 1)


def _box_rows(
    box_labels: list[Label], person_score: float | None, track_id: int | None, with_score: bool
) -> tuple[list[Row], Row | None]:
    """(label rows, one-row summary) of one box."""
    rows: list[Row] = []
    if person_score is not None:
        rows.append((f"person {person_score:.2f}", PERSON_COLOR))
    rows += [(_label_text(lab, with_score), class_color(lab[0])) for lab in box_labels]
    prefix = f"#{track_id}" if track_id is not None else ""
    if prefix:
        rows = (
            [(f"{prefix} {rows[0][0]}", rows[0][1]), *rows[1:]]
            if rows
            else [(prefix, PERSON_COLOR)]
        )
    if not box_labels:
        return rows, rows[0] if rows else None
    head = " ".join(t for t in (prefix, box_labels[0][1]) if t)
    more = len(rows) - 1
    return rows, (f"{head} +{more}" if more else head, class_color(box_labels[0][0]))


def layout_labels(
    height: int,
    width: int,
    boxes: np.ndarray,
    labels: Sequence[Sequence[Label]] | None = None,
    *,
    person_scores: Sequence[float] | np.ndarray | None = None,
    track_ids: Sequence[int] | np.ndarray | None = None,
    style: str = "prediction",
    reserve_top_px: int = 0,
    reserve_bottom_px: int = 0,
) -> list[LabelStack | None]:
    """The label stacks `draw_detections` draws for these arguments, one per box (None for a
    box not drawn or without labels); geometry only, nothing is drawn. No stack covers the
    top `reserve_top_px` or bottom `reserve_bottom_px` rows of the frame (a banner's strip)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    _check_inputs(len(boxes), labels, person_scores, track_ids, style)
    kept, drawn, stacks, summaries = [], [], [], []
    for i, box in enumerate(boxes):
        edges = _drawn_box(box, height, width)
        if edges is None:
            continue
        rows, summary = _box_rows(
            list(labels[i]) if labels is not None else [],
            float(person_scores[i]) if person_scores is not None else None,
            int(track_ids[i]) if track_ids is not None else None,
            with_score=style != "ground_truth",
        )
        kept.append(i)
        drawn.append(edges)
        stacks.append(rows)
        summaries.append(summary)
    placed = layout_label_stacks(
        drawn,
        stacks,
        summaries,
        height,
        width,
        below=style == "ground_truth",
        reserve_top_px=reserve_top_px,
        reserve_bottom_px=reserve_bottom_px,
    )
    out: list[LabelStack | None] = [None] * len(boxes)
    for i, stack in zip(kept, placed, strict=True):
        out[i] = stack
    return out


def draw_detections(
    frame_rgb: np.ndarray,
    boxes: np.ndarray,
    labels: Sequence[Sequence[Label]] | None = None,
    *,
    person_scores: Sequence[float] | np.ndarray | None = None,
    track_ids: Sequence[int] | np.ndarray | None = None,
    style: str = "prediction",
    thickness: int | None = None,
    reserve_top_px: int = 0,
    reserve_bottom_px: int = 0,
) -> np.ndarray:
    """A copy of `frame_rgb` with boxes and their labels drawn.

    Label stacks never overlap each other nor leave the frame (`layout_labels`): a stack
    that does not fit on its preferred side moves to the other side or inside the box, drops
    AVA's parenthesised explanations, shrinks, then collapses to one row ("#3 stand +2": the
    best label and how many rows are hidden); a box with no room even for that keeps only its
    edges.

    Args:
        frame_rgb: uint8 RGB [H, W, 3].
        boxes: [N, 4] (x1, y1, x2, y2) in the frame's pixels; parts outside the frame are
            clipped and boxes entirely outside (or empty, or not finite) are skipped.
        labels: for each box, its labels as (class id, name, score or None), best first;
            the box takes the colour of its first label's class.
        person_scores: [N] person-detector scores, drawn as "person 0.93" before the labels.
        track_ids: [N] track ids, shown as "#3" at the start of the box's first label row.
        style: "prediction" (solid, labels above) or "ground_truth" (dashed, labels below,
            scores not shown).
        thickness: line width in pixels (default scales with the frame).
        reserve_top_px, reserve_bottom_px: rows at the top and bottom no label covers, for a
            banner drawn afterwards (`banner_height`).
    Returns:
        uint8 RGB [H, W, 3].
    """
    if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
        raise ValueError(
            f"frame must be uint8 RGB [H, W, 3], got {frame_rgb.dtype} {frame_rgb.shape}"
        )
    img = np.ascontiguousarray(frame_rgb).copy()
    height, width = img.shape[:2]
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    stacks = layout_labels(
        height,
        width,
        boxes,
        labels,
        person_scores=person_scores,
        track_ids=track_ids,
        style=style,
        reserve_top_px=reserve_top_px,
        reserve_bottom_px=reserve_bottom_px,
    )
    thickness = thickness or max(1, round(min(height, width) / 240))
    for i, box in enumerate(boxes):
        edges = _drawn_box(box, height, width)
        if edges is None:
            continue
        x1, y1, x2, y2 = edges
        color = class_color(labels[i][0][0]) if labels is not None and labels[i] else PERSON_COLOR
        if style == "ground_truth":
            _dashed_rectangle(img, (x1, y1), (x2, y2), color, thickness, dash=4 * thickness + 4)
        else:
            cv2.rectangle(img, (x1, y1), (x2, y2), color, thickness)
        stack = stacks[i] if i < len(stacks) else None
        leader = None if stack is None else leader_line(stack.bounds, edges)
        if leader is not None:
            # A stack moved away from its box (no room beside it) stays tied to it by a line.
            cv2.line(img, leader[0], leader[1], color, thickness, cv2.LINE_AA)
    for stack in stacks:
        if stack is not None:
            _draw_stack(img, stack)
    return img


def leader_line(
    stack: Rect, box: tuple[int, int, int, int]
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The segment tying a label stack (x1, y1, x2, y2, ends exclusive) to its box (x1, y1, x2,
    y2 in pixels) when they do not touch: from the stack's point nearest the box's centre to the
    box's point nearest that; None when they are at most 2 pixels apart."""
    sx1, sy1, sx2, sy2 = (int(v) for v in stack)
    bx1, by1, bx2, by2 = (int(v) for v in box)
    px = min(max((bx1 + bx2) // 2, sx1), sx2 - 1)
    py = min(max((by1 + by2) // 2, sy1), sy2 - 1)
    qx, qy = min(max(px, bx1), bx2), min(max(py, by1), by2)
    if abs(px - qx) + abs(py - qy) <= 2:
        return None
    return (px, py), (qx, qy)


def _banner_metrics(text: str, scale: float) -> tuple[int, int, int, int]:
    """(text height, strip height, padding, thickness) of a banner line."""
    thickness = max(1, round(scale * 1.5))
    (_, h), baseline = cv2.getTextSize(text or "Ag", _FONT, scale, thickness)
    pad = max(2, round(4 * scale))
    return h, h + baseline + 2 * pad, pad, thickness


def banner_height(height: int, width: int, text: str) -> int:
    """Rows of the strip `draw_banner` draws `text` in on a frame of this size."""
    return _banner_metrics(text, _font_scale(height, width))[1]


def draw_banner(frame_rgb: np.ndarray, text: str, *, at: str = "top") -> np.ndarray:
    """A copy of `frame_rgb` with `text` on a darkened strip across the top or the bottom
    (`at`), for notices such as "untrained model". Over annotated frames put it at the bottom:
    prediction labels sit above their boxes, so the top strip is where they go first."""
    if at not in ("top", "bottom"):
        raise ValueError(f"at must be 'top' or 'bottom', got {at!r}")
    img = np.ascontiguousarray(frame_rgb).copy()
    scale = _font_scale(*img.shape[:2])
    h, strip, pad, thickness = _banner_metrics(text, scale)
    top = 0 if at == "top" else img.shape[0] - strip
    img[top : top + strip] = (img[top : top + strip] * 0.3).astype(np.uint8)
    cv2.putText(
        img, text, (pad, top + pad + h), _FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA
    )
    return img


def caption_strip(text: str, width: int) -> np.ndarray:
    """A black uint8 RGB strip [h, width, 3] holding `text` in white, sized for the width."""
    scale = max(0.4, width / 960)
    h, strip, pad, thickness = _banner_metrics(text, scale)
    img = np.zeros((strip, width, 3), np.uint8)
    cv2.putText(img, text, (pad, pad + h), _FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return img
