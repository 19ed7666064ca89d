import numpy as np
import pytest
import torch

from detection.data.sampling import slow_indices
from detection.data.transforms import (
    InputFormat,
    boxes_to_pixels,
    color_jitter,
    horizontal_flip,
    jitter_short_side,
    normalize,
    random_crop_offsets,
    scale_frames,
    scale_short_side,
    to_chw_float,
    to_normalized_chw,
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


def test_mean_and_std_are_indexed_in_bgr_order_like_pyslowfast():
    # PySlowFast's AVA loader normalizes the BGR image OpenCV read, then switches to RGB: its
    # DATA.MEAN[0] and DATA.STD[0] belong to blue.
    rgb = np.ones((3, 1, 1, 1), dtype=np.float32)
    out = normalize(rgb, mean=(0.1, 0.2, 0.3), std=(1.0, 2.0, 4.0), bgr=False)
    np.testing.assert_allclose(out[:, 0, 0, 0].numpy(), [0.7 / 4.0, 0.8 / 2.0, 0.9 / 1.0])


@pytest.mark.parametrize("bgr", [False, True])
def test_one_pass_normalization_equals_the_whole_clip_expressions(bgr):
    """`to_normalized_chw` and `normalize(..., in_place=True)` give, bit for bit, what the
    whole-clip float32 expressions ((x / 255 - mean) / std, channels reversed for BGR) give."""
    # Every byte value in every channel, each channel's at different positions.
    values = np.stack([np.roll(np.arange(256, dtype=np.uint8), 37 * c) for c in range(3)], -1)
    frames = np.concatenate([values, values[:59]]).reshape(5, 7, 9, 3)
    mean, std = (0.1, 0.45, 0.3), (0.225, 0.5, 0.125)
    rgb = np.ascontiguousarray(frames.transpose(3, 0, 1, 2), dtype=np.float32) / np.float32(255)
    expected = (rgb - np.float32(mean)[::-1].reshape(3, 1, 1, 1)) / np.float32(std)[::-1].reshape(
        3, 1, 1, 1
    )
    expected = expected[::-1] if bgr else expected
    np.testing.assert_array_equal(to_chw_float(frames), rgb)
    np.testing.assert_array_equal(to_normalized_chw(frames, mean, std, bgr).numpy(), expected)
    flipped_crop = frames[:, ::-1, 2:]  # read with strides, as after `crop` and a flip
    np.testing.assert_array_equal(
        to_normalized_chw(flipped_crop, mean, std, bgr).numpy(), expected[:, :, ::-1, 2:]
    )
    in_place = to_chw_float(frames)
    np.testing.assert_array_equal(normalize(in_place, mean, std, bgr, in_place=True), expected)
    untouched = to_chw_float(frames)
    normalize(untouched, mean, std, bgr)
    np.testing.assert_array_equal(untouched, rgb)
    batch = torch.full((2, 3, 5, 7, 9), float("nan"))
    written = to_normalized_chw(frames, mean, std, bgr, out=batch[1])
    assert written.data_ptr() == batch[1].data_ptr()
    np.testing.assert_array_equal(batch[1].numpy(), expected)
    assert batch[0].isnan().all()
    with pytest.raises(ValueError, match=r"out must be contiguous float32 \(3, 5, 7, 9\)"):
        to_normalized_chw(frames, mean, std, bgr, out=batch[1].transpose(0, 1))


def _every_byte_frames(shape=(2, 8, 4, 9, 3)) -> torch.Tensor:
    """uint8 frames in which every channel holds every byte value, at different positions."""
    count = int(np.prod(shape[:-1]))
    values = np.stack([np.roll(np.arange(count) % 256, 37 * c) for c in range(3)], -1)
    return torch.from_numpy(values.astype(np.uint8).reshape(shape))


@pytest.mark.parametrize("bgr", [False, True])
def test_input_format_gives_to_normalized_chw_of_each_clip_on_cpu_and_by_torch(bgr):
    """`InputFormat.inputs` of a uint8 batch is `to_normalized_chw` of each clip, split into
    pathways; torch's float32 operations (what a GPU runs) give the same bits."""
    frames = _every_byte_frames()
    fmt = InputFormat((0.1, 0.45, 0.3), (0.225, 0.5, 0.125), bgr, "slowfast", 4)
    fast = torch.stack([to_normalized_chw(clip.numpy(), fmt.mean, fmt.std, bgr) for clip in frames])
    expected = [fast[:, :, slow_indices(8, 4)], fast]
    for ours, theirs in zip(fmt.inputs(frames), expected, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    torch.testing.assert_close(fmt._normalized_by_torch(frames), fast, rtol=0, atol=0)

    buffers = fmt.buffers(frames.shape)
    written = fmt.inputs(frames, out=buffers)
    assert [x.data_ptr() for x in written] == [x.data_ptr() for x in buffers]
    torch.testing.assert_close(written[0], expected[0], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"out must be tensors of shapes \[\(2, 3, 2, 4, 9\), "):
        fmt.inputs(frames, out=fmt.buffers((1, 8, 4, 9, 3)))
    with pytest.raises(ValueError, match=r"expected uint8 frames \[B, T, H, W, 3\]"):
        fmt.inputs(frames.float())
    (only,) = InputFormat(fmt.mean, fmt.std, bgr, "slow", 4).inputs(frames)
    torch.testing.assert_close(only, fast, rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown MODEL.ARCH 'x3d'"):
        InputFormat(fmt.mean, fmt.std, bgr, "x3d", 4)


@pytest.mark.parametrize("size", [40, 60])  # scaled, and already at the size
def test_scale_frames_writes_into_out_what_it_returns(size):
    frames = np.random.default_rng(1).integers(0, 256, (3, 60, 80, 3), dtype=np.uint8)
    expected = scale_frames(frames, size)
    assert (expected is frames) == (size == 60)
    batch = np.zeros((2, *expected.shape), np.uint8)
    target = batch[1]
    assert scale_frames(frames, size, out=target) is target
    np.testing.assert_array_equal(batch[1], expected)
    assert not batch[0].any()
    with pytest.raises(ValueError, match="out must be contiguous"):
        scale_frames(frames, size, out=np.zeros((3, *expected.shape[1:3], 4), np.uint8)[..., :3])
    with pytest.raises(ValueError, match=r"out must be uint8 \(3, "):
        scale_frames(frames, size, out=batch)


def test_flip_maps_pixel_x_to_w_minus_1_minus_x_with_its_boxes():
    frames = np.zeros((1, 8, 160, 3), dtype=np.uint8)
    frames[:, :, 10] = 255  # marker columns at the box's x1 and x2
    frames[:, :, 50] = 255
    flipped, boxes = horizontal_flip(frames, np.array([[10.0, 2.0, 50.0, 6.0]]))
    # PySlowFast's flip_boxes: x' = W - 1 - x, so a box edge stays on its pixel column.
    np.testing.assert_array_equal(boxes, [[109.0, 2.0, 149.0, 6.0]])
    assert np.flatnonzero(flipped[0, 0, :, 0]).tolist() == [109, 149]


@pytest.mark.parametrize("portrait", [False, True])
def test_scaling_multiplies_both_box_axes_by_the_long_sides_factor(portrait):
    """640x480 -> 341x256 (341 = floor(640 * 256 / 480)): PySlowFast's scale_boxes multiplies
    the whole box by 341 / 640 (not y by 256 / 480), at test and at train time alike."""
    h, w = (640, 480) if portrait else (480, 640)
    frames = np.zeros((1, h, w, 3), dtype=np.uint8)
    # Box (0.1, 0.2, 0.7, 0.9) of a 640x480 frame is (64, 96, 448, 432) px; times 0.5328125.
    norm = np.array([[0.2, 0.1, 0.9, 0.7]]) if portrait else np.array([[0.1, 0.2, 0.7, 0.9]])
    expected = np.array([[34.1, 51.15, 238.7, 230.175]], dtype=np.float32)
    if portrait:
        expected = expected[:, [1, 0, 3, 2]]
    clip, boxes = run_test_transform(frames, norm, short_side=256)
    assert clip.shape[2:] == ((341, 256) if portrait else (256, 341))
    assert boxes.dtype == torch.float32
    np.testing.assert_allclose(boxes.numpy(), expected, rtol=0, atol=2e-5)
    pixels = boxes_to_pixels(norm, h, w)
    _, train_boxes = scale_short_side(frames, pixels, 256)
    np.testing.assert_allclose(train_boxes, expected, rtol=0, atol=2e-5)


def test_test_boxes_are_rounded_to_float32_once_like_pyslowfasts_collate():
    frames = np.zeros((1, 240, 426, 3), dtype=np.uint8)
    norm = np.array([[0.123, 0.456, 0.789, 0.987]])
    _, boxes = run_test_transform(frames, norm, short_side=256)
    # float64 all the way, one factor (454 / 426), one rounding to float32 at the end.
    pixels = np.minimum(norm * [426, 240, 426, 240], [425, 239, 425, 239]) * (454 / 426)
    np.testing.assert_array_equal(boxes.numpy(), pixels.astype(np.float32))


def test_scale_jitter_draws_the_inverse_size_uniformly():
    rng = np.random.default_rng(0)
    sizes = np.array([jitter_short_side(rng, 256, 320) for _ in range(20000)])
    assert sizes.min() == 256 and sizes.max() == 320
    # 1 / size uniform in [1/320, 1/256]: mean of 1 / U is ln(320 / 256) / (1/256 - 1/320)
    # = 285.6 (a uniform size would average 288); P(size <= 288) = P(U >= 1 / 288.5) = 0.563.
    assert abs(sizes.mean() - np.log(320 / 256) / (1 / 256 - 1 / 320)) < 0.5
    p_small = (1 / 256 - 1 / 288.5) / (1 / 256 - 1 / 320)
    assert abs((sizes <= 288).mean() - p_small) < 0.015


def test_crop_offsets_never_reach_the_last_position_like_pyslowfast():
    rng = np.random.default_rng(1)
    offsets = [random_crop_offsets(rng, 257, 300, 256) for _ in range(2000)]
    xs, ys = {x for x, _ in offsets}, {y for _, y in offsets}
    # np.random.randint(0, W - size): offsets 0 .. W - size - 1; a side equal to size gives 0.
    assert ys == {0} and xs == set(range(44))
    assert random_crop_offsets(rng, 256, 256, 256) == (0, 0)


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


def test_color_augmentation_is_pca_lighting_by_default_and_keeps_geometry():
    """PySlowFast's AVA.TRAIN_USE_COLOR_AUGMENTATION with TRAIN_PCA_JITTER_ONLY (its default)
    adds one PCA lighting shift per channel to the whole clip; boxes do not move."""
    frames = _clip_with_white_box()
    box = np.array([[0.25, 0.25, 0.5, 0.75]])
    kwargs = {"jitter_scales": (120, 120), "crop_size": 112}
    plain, b1, _ = train_transform(frames, box, np.random.default_rng(3), **kwargs)
    lit, b2, _ = train_transform(
        frames, box, np.random.default_rng(3), use_color_augmentation=True, **kwargs
    )
    torch.testing.assert_close(b1, b2)
    shift = (lit - plain) * 0.225  # back to [0, 1] units
    per_channel = shift.flatten(1)
    torch.testing.assert_close(per_channel, per_channel[:, :1].expand_as(per_channel))
    assert len({round(v, 6) for v in per_channel[:, 0].tolist()}) == 3
    jittered, b3, _ = train_transform(
        frames,
        box,
        np.random.default_rng(3),
        use_color_augmentation=True,
        pca_jitter_only=False,
        **kwargs,
    )
    torch.testing.assert_close(b1, b3)
    assert not torch.allclose(jittered, lit)


def test_contrast_blends_each_frame_with_its_own_mean_gray():
    # Two flat gray frames: saturation and per-frame contrast leave a flat frame as it is, so
    # only brightness scales them, by the same factor. A clip-wide mean would pull both
    # towards one gray and change their ratio.
    clip = np.empty((3, 2, 4, 4), dtype=np.float32)
    clip[:, 0], clip[:, 1] = 0.2, 0.8
    for seed in range(5):
        out = color_jitter(clip, np.random.default_rng(seed))
        ratio = out[:, 1] / out[:, 0]
        np.testing.assert_allclose(ratio, 4.0, rtol=1e-5)
