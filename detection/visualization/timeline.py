"""A per-person action timeline (PNG): one row per track, a coloured bar per action segment.

Bar colours are `class_color` of the action id, the colours of the boxes in the annotated
video, so a viewer can match the two. Actions one person does at the same time are stacked in
lanes of that person's row, so overlapping segments stay visible.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

from detection.visualization.draw import class_color, text_color


class Segment(Protocol):
    """What the timeline reads of a segment (`detection.engine.segments.ActionSegment`)."""

    @property
    def track_id(self) -> int: ...
    @property
    def action_id(self) -> int: ...
    @property
    def action_name(self) -> str: ...
    @property
    def start_s(self) -> float: ...
    @property
    def end_s(self) -> float: ...


def _rgb(class_id: int) -> tuple[float, float, float]:
    r, g, b = class_color(class_id)
    return (r / 255, g / 255, b / 255)


def _lanes(segments: list[Segment]) -> tuple[list[int], int]:
    """Lane of each segment (first lane free at its start, by start time) and the lane count:
    as many lanes as the person does actions at once, so a row stays low."""
    ends: list[float] = []
    lanes = [0] * len(segments)
    for i in sorted(
        range(len(segments)), key=lambda i: (segments[i].start_s, segments[i].action_id)
    ):
        seg = segments[i]
        free = [k for k, end in enumerate(ends) if end <= seg.start_s]
        lane = free[0] if free else len(ends)
        if lane == len(ends):
            ends.append(seg.end_s)
        else:
            ends[lane] = seg.end_s
        lanes[i] = lane
    return lanes, max(len(ends), 1)


def draw_timeline(
    segments: Sequence[Segment],
    duration_s: float,
    path: str | os.PathLike,
    *,
    title: str = "",
) -> None:
    """Write a PNG timeline of `segments` over [0, duration_s] seconds to `path`.

    Rows: one per track id, in increasing order from the top ("#3"), as tall as the most
    actions that person does at once (one lane each). Bars are wide enough carry the action's
    name (the 20 colours repeat across AVA's 80 classes); the legend lists the actions present
    in action-id order.
    """
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    # A bare Figure (no pyplot): no global backend switch, nothing left open between calls.
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    track_ids = sorted({int(s.track_id) for s in segments})
    names = {int(s.action_id): s.action_name for s in segments}
    rows = []  # (track id, its segments, their lanes, lane count)
    for track_id in track_ids:
        mine = [s for s in segments if int(s.track_id) == track_id]
        lanes, count = _lanes(mine)
        rows.append((track_id, mine, lanes, count))
    total_lanes = sum(r[3] for r in rows) or 1
    lane_in = 0.22 if total_lanes <= 40 else max(0.08, 9.0 / total_lanes)
    gap = 0.5  # lanes of space between two persons
    height_lanes = total_lanes + gap * max(len(rows) - 1, 0)
    fig_w = 11.0
    fig_h = max(1.2 + lane_in * height_lanes, 0.8 + 0.2 * len(names), 2.0)
    fig = Figure(figsize=(fig_w, fig_h), dpi=110)
    ax = fig.subplots()
    plot_w_in = fig_w * 0.72  # about the axes' share once the legend is beside it
    fontsize = 7 if lane_in >= 0.15 else 5
    ticks, tick_labels = [], []
    # All bars in one collection: thousands of separate artists take seconds to draw.
    bars, bar_colors = [], []
    y = 0.0
    for row_index, (track_id, mine, lanes, count) in enumerate(rows):
        if row_index:
            ax.axhline(y - gap / 2, color="0.85", linewidth=0.6, zorder=0)
        for seg, lane in zip(mine, lanes, strict=True):
            top, bottom = y + lane + 0.08, y + lane + 0.92
            bars.append(
                [(seg.start_s, top), (seg.end_s, top), (seg.end_s, bottom), (seg.start_s, bottom)]
            )
            bar_colors.append(_rgb(int(seg.action_id)))
            # Name inside the bar when it fits (about 0.55 em per character).
            bar_in = (seg.end_s - seg.start_s) / duration_s * plot_w_in
            if lane_in >= 0.15 and bar_in > len(seg.action_name) * fontsize * 0.55 / 72 + 0.05:
                ax.text(
                    seg.start_s + duration_s * 0.004,
                    y + lane + 0.5,
                    seg.action_name,
                    va="center",
                    ha="left",
                    fontsize=fontsize,
                    color=[c / 255 for c in text_color(class_color(int(seg.action_id)))],
                    clip_on=True,
                )
        ticks.append(y + count / 2)
        tick_labels.append(f"#{track_id}")
        y += count + gap
    ax.add_collection(
        PolyCollection(bars, facecolors=bar_colors, edgecolors="black", linewidths=0.4)
    )
    ax.set_yticks(ticks, tick_labels, fontsize=8 if len(rows) <= 40 else 6)
    ax.set_ylim(max(height_lanes, 1.0), 0.0)
    ax.set_xlim(0, duration_s)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("person (track)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    if not segments:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no actions", ha="center", va="center", color="0.4",
                transform=ax.transAxes)  # fmt: skip
    if title:
        ax.set_title(title)
    if names:
        handles = [
            Patch(facecolor=_rgb(a), edgecolor="black", linewidth=0.4, label=names[a])
            for a in sorted(names)
        ]
        ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            title="action",
            frameon=False,
            fontsize=8,
        )
    fig.savefig(os.fspath(path), bbox_inches="tight")
