"""Boxes and action labels drawn on frames; contact sheets (PNG), streamed MP4 videos and
per-person action timelines (PNG)."""

from detection.visualization.draw import (
    PALETTE,
    Label,
    LabelStack,
    caption_strip,
    class_color,
    draw_banner,
    draw_detections,
    layout_labels,
    text_color,
)
from detection.visualization.mp4 import Mp4Writer
from detection.visualization.sheet import contact_sheet, save_png
from detection.visualization.timeline import draw_timeline

__all__ = [
    "PALETTE",
    "Label",
    "LabelStack",
    "Mp4Writer",
    "caption_strip",
    "class_color",
    "contact_sheet",
    "draw_banner",
    "draw_detections",
    "draw_timeline",
    "layout_labels",
    "save_png",
    "text_color",
]
