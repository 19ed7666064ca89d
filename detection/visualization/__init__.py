"""Boxes and action labels drawn on frames; contact sheets (PNG) and streamed MP4 videos."""

from detection.visualization.draw import (
    PALETTE,
    Label,
    caption_strip,
    class_color,
    draw_banner,
    draw_detections,
    text_color,
)
from detection.visualization.mp4 import Mp4Writer
from detection.visualization.sheet import contact_sheet, save_png

__all__ = [
    "PALETTE",
    "Label",
    "Mp4Writer",
    "caption_strip",
    "class_color",
    "contact_sheet",
    "draw_banner",
    "draw_detections",
    "save_png",
    "text_color",
]
