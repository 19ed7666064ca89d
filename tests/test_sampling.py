import numpy as np
import pytest
import torch

from detection.data.sampling import clip_frame_indices, clip_times, keyframe_index, pack_pathways


def test_keyframe_index_is_offset_from_second_900_at_30fps():
    assert keyframe_index(900) == 0
    assert keyframe_index(902) == 60
    assert keyframe_index(1798) == 898 * 30


def test_clip_is_centred_with_half_length_num_frames_times_rate_over_two():
    idx = clip_frame_indices(center=100, num_frames=16, sampling_rate=2, num_video_frames=1000)
    np.testing.assert_array_equal(idx, np.arange(84, 116, 2))
    idx = clip_frame_indices(center=100, num_frames=4, sampling_rate=10, num_video_frames=1000)
    np.testing.assert_array_equal(idx, [80, 90, 100, 110])
    # Odd product: half = 9 * 3 // 2 = 13, range(87, 113, 3) has 9 entries.
    idx = clip_frame_indices(center=100, num_frames=9, sampling_rate=3, num_video_frames=1000)
    np.testing.assert_array_equal(idx, np.arange(87, 113, 3))


def test_clip_indices_are_clamped_to_the_video_not_shortened():
    start = clip_frame_indices(center=4, num_frames=8, sampling_rate=2, num_video_frames=50)
    np.testing.assert_array_equal(start, [0, 0, 0, 2, 4, 6, 8, 10])
    end = clip_frame_indices(center=48, num_frames=8, sampling_rate=2, num_video_frames=50)
    np.testing.assert_array_equal(end, [40, 42, 44, 46, 48, 49, 49, 49])


def test_clip_times_lie_on_the_30fps_grid_of_the_frame_layout():
    times = clip_times(2.0, num_frames=16, sampling_rate=2)
    expected = clip_frame_indices(60, 16, 2, 10**9) / 30.0
    np.testing.assert_allclose(times, expected)
    assert clip_times(0.1, 4, 10).min() == 0.0  # before the start: clamped, not negative
    late = clip_times(9.9, 4, 10, duration_s=10.0)
    assert late.max() == pytest.approx(299 / 30)


def test_slow_pathway_takes_linspace_positions_of_the_fast_frames():
    frames = torch.arange(16, dtype=torch.float32).view(1, 16, 1, 1).expand(3, 16, 2, 2)
    slow, fast = pack_pathways(frames, "slowfast", alpha=4)
    assert fast.shape == (3, 16, 2, 2)
    assert slow[0, :, 0, 0].tolist() == [0, 5, 10, 15]
    frames32 = torch.arange(32, dtype=torch.float32).view(1, 32, 1, 1).expand(3, 32, 2, 2)
    slow32, _ = pack_pathways(frames32, "slowfast", alpha=8)
    assert slow32[0, :, 0, 0].tolist() == [0, 10, 20, 31]  # truncated, not rounded
    (only,) = pack_pathways(frames, "slow", alpha=4)
    assert only is frames
    batch = torch.stack([frames, frames + 100])  # [B, C, T, H, W]: the same positions per clip
    slow_out = torch.empty(2, 3, 4, 2, 2)
    batch_slow, _ = pack_pathways(batch, "slowfast", alpha=4, slow_out=slow_out)
    assert batch_slow.data_ptr() == slow_out.data_ptr()
    assert batch_slow[1, 0, :, 0, 0].tolist() == [100, 105, 110, 115]
    with pytest.raises(ValueError, match="unknown MODEL.ARCH"):
        pack_pathways(frames, "x3d", 4)
