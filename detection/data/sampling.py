"""Which frames a clip is made of, and how they are split into the Slow and Fast pathways.

PySlowFast's AVA semantics, restated:

- AVA keyframes are whole seconds of the movie. The 15-minute cut starts at second 900
  (``AVA.VIDEO_START_SEC``), so keyframe second ``s`` is frame ``(s - 900) * 30`` of the cut at
  30 fps (``AVA.FPS``).
- A clip of ``NUM_FRAMES`` frames at stride ``SAMPLING_RATE`` is centred on the keyframe with
  ``half = NUM_FRAMES * SAMPLING_RATE // 2`` and takes ``range(c - half, c + half, SAMPLING_RATE)``;
  indices before the first or after the last frame of the video are clamped to it (the clip
  repeats its edge frame rather than getting shorter).
- The Fast pathway gets all ``T`` sampled frames; the Slow pathway gets ``T // ALPHA`` of them at
  positions ``linspace(0, T - 1, T // ALPHA)`` truncated to integers. With T = 16 and ALPHA = 4
  that is positions 0, 5, 10, 15, i.e. source frames 10 apart at SAMPLING_RATE 2 (not every
  ALPHA-th frame).
"""

from __future__ import annotations

import numpy as np
import torch

PATHWAY_ARCHS = ("slowfast", "slow")


def keyframe_index(second: int, *, fps: int = 30, start_second: int = 900) -> int:
    """Frame index of AVA keyframe `second` in the cut that starts at `start_second`."""
    return (second - start_second) * fps


def clip_frame_indices(
    center: int, num_frames: int, sampling_rate: int, num_video_frames: int
) -> np.ndarray:
    """Frame indices of the clip centred on frame `center`, clamped to [0, num_video_frames - 1].

    Returns an int64 array of length ``len(range(-half, half, sampling_rate))`` with
    ``half = num_frames * sampling_rate // 2`` (``num_frames`` whenever that product is even).
    """
    if num_frames < 1 or sampling_rate < 1:
        raise ValueError(
            f"num_frames ({num_frames}) and sampling_rate ({sampling_rate}) must be >= 1"
        )
    if num_video_frames < 1:
        raise ValueError(f"the video has no frames (num_video_frames={num_video_frames})")
    half = num_frames * sampling_rate // 2
    indices = np.arange(center - half, center + half, sampling_rate, dtype=np.int64)
    return np.clip(indices, 0, num_video_frames - 1)


def clip_times(
    center_s: float,
    num_frames: int,
    sampling_rate: int,
    fps: float = 30.0,
    duration_s: float | None = None,
) -> np.ndarray:
    """Times (seconds from the start of the video) of a clip centred on `center_s`.

    The clip is laid out on a virtual `fps` frame grid exactly as `clip_frame_indices` lays it out
    on real frames: the centre is the grid frame nearest `center_s`, and grid frame ``i`` is at
    ``i / fps``. Pass these times to `VideoReader.read_at_times`, which takes the decoded frame
    nearest each time, so a clip from a video of any frame rate matches the 30 fps frame layout.
    With `duration_s`, indices are clamped to the grid frames inside the video; without it only
    negative indices are clamped (the reader clamps past-the-end times to the last frame).

    Returns float64 [N].
    """
    center = int(round(center_s * fps))
    if duration_s is None:
        num_grid_frames = np.iinfo(np.int64).max
    else:
        num_grid_frames = max(1, int(round(duration_s * fps)))
    return clip_frame_indices(center, num_frames, sampling_rate, num_grid_frames) / fps


def slow_indices(num_frames: int, alpha: int) -> torch.Tensor:
    """Positions (into the Fast frames) that the Slow pathway takes: int64 [num_frames // alpha]."""
    if alpha < 1 or num_frames // alpha < 1:
        raise ValueError(
            f"need num_frames >= alpha >= 1, got num_frames={num_frames} alpha={alpha}"
        )
    return torch.linspace(0, num_frames - 1, num_frames // alpha).long()


def pack_pathways(
    frames: torch.Tensor, arch: str, alpha: int, *, slow_out: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """Split a clip (or a batch of clips) into the model's pathway inputs.

    frames: [C, T, H, W] or [B, C, T, H, W]. Returns ``[slow [..., C, T // alpha, H, W], fast
    = frames]`` for ``"slowfast"``, the slow frames written into `slow_out` when given, and
    ``[frames]`` for ``"slow"`` (Slow-only models are fed the clip as sampled).
    """
    if frames.dim() not in (4, 5):
        raise ValueError(
            f"expected frames [C, T, H, W] or [B, C, T, H, W], got shape {tuple(frames.shape)}"
        )
    if arch == "slow":
        return [frames]
    if arch == "slowfast":
        time_dim = frames.dim() - 3
        indices = slow_indices(frames.shape[time_dim], alpha).to(frames.device)
        if slow_out is None:
            return [frames.index_select(time_dim, indices), frames]
        return [torch.index_select(frames, time_dim, indices, out=slow_out), frames]
    raise ValueError(f"unknown MODEL.ARCH {arch!r}; expected one of {PATHWAY_ARCHS}")
