"""PySlowFast's extracted-frame layout from videos, with the reader's frame and colour rules.

``frames/{video_id}/{video_id}_%06d.jpg`` (numbered from 1, as ``ffmpeg -r 30 -q:v 1`` names
them) holds every frame of the 30 fps layout, and ``frame_lists/{train,val}.csv`` lists them in
PySlowFast's space-separated ``original_vido_id video_id frame_id path labels`` format (the
``video_id`` column is the video's index in its list, ``labels`` is ``""``). Frames come from
`VideoReader` (ffmpeg's ``-r`` frame choice, the colours OpenCV reads from ffmpeg's JPEGs), so no
ffmpeg process is needed; the JPEGs are written by OpenCV.

Resumable: a video's frames are written into a hidden temporary folder that is renamed to
``frames/{video_id}`` only when complete, so an existing folder is a finished video and is
skipped, and an interrupted run leaves nothing that looks finished.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import cv2

from detection.utils.atomic import atomic_write

from .video import VIDEO_EXTENSIONS, VideoReader, VideoReadError, iter_layout_frames

FRAME_LIST_HEADER = "original_vido_id video_id frame_id path labels"


@dataclass(frozen=True)
class ExtractedVideo:
    """One video's result: its id, its number of frames, whether this run wrote them."""

    video_id: str
    num_frames: int
    written: bool


def frame_name(video_id: str, index: int) -> str:
    """Relative path of layout frame `index` (from 0): ``{id}/{id}_{index + 1:06d}.jpg``."""
    return f"{video_id}/{video_id}_{index + 1:06d}.jpg"


def _count_frames(folder: Path, video_id: str) -> int:
    return len(list(folder.glob(f"{video_id}_*.jpg")))


def extract_video(
    video: str | Path, frame_dir: str | Path, *, quality: int = 95, fps: float = 30.0
) -> ExtractedVideo:
    """Write every layout frame of `video` to ``frame_dir/{stem}/{stem}_%06d.jpg`` (JPEG
    `quality`), unless that folder exists already. Returns what was done."""
    video, frame_dir = Path(video), Path(frame_dir)
    video_id = video.stem
    final = frame_dir / video_id
    if final.is_dir():
        return ExtractedVideo(video_id, _count_frames(final, video_id), written=False)
    partial = frame_dir / f".{video_id}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    count = 0
    try:
        with VideoReader(video, layout_fps=fps) as reader:
            for index, image in iter_layout_frames(reader):
                path = partial / Path(frame_name(video_id, index)).name
                bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
                if not cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, quality]):
                    raise OSError(f"{path}: cannot write the frame")
                count = index + 1
        partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return ExtractedVideo(video_id, count, written=True)


def find_videos(video_dir: str | Path) -> list[Path]:
    """Videos (`VIDEO_EXTENSIONS`) directly in `video_dir`, sorted by name; one per id."""
    video_dir = Path(video_dir)
    if not video_dir.is_dir():
        raise VideoReadError(f"{video_dir}: not a folder of videos")
    videos = sorted(p for p in video_dir.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
    stems = [p.stem for p in videos]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise VideoReadError(f"{video_dir}: several videos share the id {twice[0]!r}")
    return videos


def extract_videos(
    videos: Sequence[Path], frame_dir: str | Path, *, workers: int = 1, quality: int = 95
) -> Iterator[ExtractedVideo]:
    """`extract_video` for each of `videos`, over `workers` processes; results in completion
    order. Stale temporary folders of interrupted runs are removed first."""
    frame_dir = Path(frame_dir)
    frame_dir.mkdir(parents=True, exist_ok=True)
    for stale in frame_dir.glob(".*.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    if workers <= 1:
        for video in videos:
            yield extract_video(video, frame_dir, quality=quality)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(extract_video, v, frame_dir, quality=quality) for v in videos]
        for future in as_completed(futures):
            yield future.result()


def write_frame_list(
    path: str | Path, video_ids: Sequence[str], num_frames: dict[str, int]
) -> None:
    """PySlowFast frame list for `video_ids` (in this order), written atomically."""
    with atomic_write(path) as f:
        f.write(FRAME_LIST_HEADER + "\n")
        for video_index, video_id in enumerate(video_ids):
            for i in range(num_frames[video_id]):
                f.write(f'{video_id} {video_index} {i} {frame_name(video_id, i)} ""\n')
