"""Contact sheets: many frames tiled into one PNG, each with a caption."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from detection.visualization.draw import caption_strip


def contact_sheet(
    frames: Sequence[np.ndarray],
    captions: Sequence[str] | None = None,
    *,
    columns: int = 4,
    tile_width: int = 480,
    gap: int = 4,
) -> np.ndarray:
    """Tile uint8 RGB frames [H_i, W_i, 3] (sizes may differ) into one RGB image.

    Each frame is resized to `tile_width` keeping its aspect ratio, captioned above, and
    placed row by row, `columns` per row, on a dark background with `gap` pixels between tiles.
    """
    if not frames:
        raise ValueError("contact_sheet needs at least one frame")
    if captions is not None and len(captions) != len(frames):
        raise ValueError(f"{len(captions)} captions for {len(frames)} frames")
    tiles = []
    for i, frame in enumerate(frames):
        h, w = frame.shape[:2]
        tile_h = max(1, round(h * tile_width / w))
        tile = cv2.resize(frame, (tile_width, tile_h), interpolation=cv2.INTER_AREA)
        if captions is not None:
            # A strip of its own above the frame, so the caption hides none of the boxes.
            strip = caption_strip(captions[i], tile_width)
            tile = np.concatenate([strip, tile])
        tiles.append(tile)
    columns = max(1, min(columns, len(tiles)))
    rows = [tiles[i : i + columns] for i in range(0, len(tiles), columns)]
    row_heights = [max(t.shape[0] for t in row) for row in rows]
    sheet_w = columns * tile_width + (columns + 1) * gap
    sheet_h = sum(row_heights) + (len(rows) + 1) * gap
    sheet = np.full((sheet_h, sheet_w, 3), 32, np.uint8)
    y = gap
    for row, row_h in zip(rows, row_heights, strict=True):
        for j, tile in enumerate(row):
            x = gap + j * (tile_width + gap)
            sheet[y : y + tile.shape[0], x : x + tile_width] = tile
        y += row_h + gap
    return sheet


def save_png(path: str | Path, image_rgb: np.ndarray) -> Path:
    """Write a uint8 RGB image [H, W, 3] as PNG (parent folders are created)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: expected a .png path")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write PNG {path}")
    return path
