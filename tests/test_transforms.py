import numpy as np
import pytest
import torch

from detection.data.transforms import (
    boxes_to_pixels,
    horizontal_flip,
    normalize,
    train_transform,
)
from detection.data.transforms import (
    test_transform as run_test_transform,
)


def _clip_with_white_box(t=4, h=120, w=160, box=(40, 30, 80, 90)) -> np.ndarray:
    """uint8 [T, H, W, 3]: black frames with a white rectangle at `box` (pixels, x1 y1 x2 y2)."""
    frames = np.zeros((t, h, w, 3), dtype=np.uint8)
    x1, y1, x2, y2 = box
    frames[:, y1:y2, x1:x2] = 255
    return frames


def _white_extent(clip: torch.Tensor) -> tuple[int, int, int, int]:
    """Pixel extent (x1, y1, x2, y2) of the bright region of a normalized clip [3, T, H, W]."""
    ys, xs = np.nonzero((clip[0, 0] > 1.0).numpy())
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def test_boxes_to_pixels_scales_and_clips_like_pyslowfast():
    boxes = boxes_to_pixels(
        np.array([[0.25, 0.5, 1.0, 1.0], [-0.1, 0.0, 0.5, 0.5]]), height=100, width=200
    )
    np.testing.assert_allclose(boxes, [[50, 50, 199, 99], [0, 0, 100, 50]])


def test_test_transform_scales_short_side_and_boxes_follow_pixels():
    frames = _clip_with_white_box()
    clip, boxes = run_test_transform(
        frames, np.array([[40 / 160, 30 / 120, 80 / 160, 90 / 120]]), short_side=96
    )
    assert clip.shape == (3, 4, 96, 128) and clip.dtype == torch.float32
    np.testing.assert_allclose(boxes.numpy(), [[32, 24, 64, 72]], atol=1e-4)
    x1, y1, x2, y2 = _white_extent(clip)
    assert abs(x1 - 32) <= 1 and abs(x2 - 64) <= 1 and abs(y1 - 24) <= 1 and abs(y2 - 72) <= 1
    # /255, mean 0.45, std 0.225: black -> -2, white -> (1 - 0.45) / 0.225.
    assert clip.min().item() == pytest.approx(-2.0)
    assert clip.max().item() == pytest.approx(0.55 / 0.225, rel=1e-5)


def test_normalize_switches_to_bgr():
    rgb = np.zeros((3, 1, 1, 1), dtype=np.float32)
    rgb[0] = 1.0  # pure red
    out = normalize(rgb, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), bgr=True)
    assert isinstance(out, torch.Tensor)
    assert out[:, 0, 0, 0].tolist() == [0.0, 0.0, 1.0]


def test_flip_moves_boxes_with_the_pixels():
    frames = _clip_with_white_box(box=(10, 20, 50, 60))
    flipped, boxes = horizontal_flip(frames, np.array([[10.0, 20.0, 50.0, 60.0]], dtype=np.float32))
    np.testing.assert_allclose(boxes, [[110, 20, 150, 60]])
    cols = np.nonzero(flipped[0, 40, :, 0])[0]
    assert cols.min() == 110 and cols.max() + 1 == 150


def test_train_transform_crops_flips_and_keeps_boxes_on_their_pixels():
    frames = _clip_with_white_box()
    box = np.array([[40 / 160, 30 / 120, 80 / 160, 90 / 120]])
    seen_flip_sides = set()
    for seed in range(12):
        clip, boxes, kept = train_transform(
            frames, box, np.random.default_rng(seed), jitter_scales=(112, 140), crop_size=112
        )
        assert clip.shape == (3, 4, 112, 112)
        assert kept.tolist() == [0]
        x1, y1, x2, y2 = _white_extent(clip)
        bx1, by1, bx2, by2 = boxes[0].tolist()
        # The box stays on the white rectangle (up to bilinear edges and the W-1 clip).
        assert abs(x1 - bx1) <= 1.5 and abs(y1 - by1) <= 1.5
        assert abs(min(x2, 111) - bx2) <= 1.5 and abs(min(y2, 111) - by2) <= 1.5
        seen_flip_sides.add(bx1 + bx2 > 112)
    assert seen_flip_sides == {True, False}  # both flipped and unflipped crops occurred


def test_train_transform_drops_boxes_cropped_out_with_their_indices():
    frames = _clip_with_white_box(w=400, h=100)
    # A box on the far left and one on the far right: a 100 px crop can never hold both.
    boxes = np.array([[0.0, 0.1, 0.05, 0.9], [0.95, 0.1, 1.0, 0.9]])
    kept_sets = set()
    for seed in range(30):
        _, out, kept = train_transform(
            frames,
            boxes,
            np.random.default_rng(seed),
            jitter_scales=(100, 100),
            crop_size=100,
            flip=False,
        )
        assert len(out) == len(kept) <= 1
        kept_sets.add(tuple(kept.tolist()))
    assert {(), (0,), (1,)} >= kept_sets and len(kept_sets) >= 2


def test_color_jitter_changes_colors_but_not_geometry():
    frames = _clip_with_white_box()
    box = np.array([[0.25, 0.25, 0.5, 0.75]])
    plain, b1, _ = train_transform(
        frames, box, np.random.default_rng(3), jitter_scales=(120, 120), crop_size=112
    )
    jittered, b2, _ = train_transform(
        frames,
        box,
        np.random.default_rng(3),
        jitter_scales=(120, 120),
        crop_size=112,
        use_color_jitter=True,
    )
    torch.testing.assert_close(b1, b2)
    assert not torch.allclose(plain, jittered)
