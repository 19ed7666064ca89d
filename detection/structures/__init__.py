"""Small shared vocabularies: boxes (`boxes`)."""

from .boxes import (
    BoxConvention,
    check_frame,
    clip_boxes,
    denormalize_boxes,
    nonempty_box_mask,
    normalize_boxes,
    paired_iou,
    pairwise_iou,
)

__all__ = [
    "BoxConvention",
    "check_frame",
    "clip_boxes",
    "denormalize_boxes",
    "nonempty_box_mask",
    "normalize_boxes",
    "paired_iou",
    "pairwise_iou",
]
