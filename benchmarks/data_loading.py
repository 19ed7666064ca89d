"""Clips per second from video files (PyAV) vs extracted JPEG frames, on the generated set.

Generates an AVA-format dataset with JPEG frames (detection/data/synthetic.py) into a temporary
directory (or uses --data DIR if it already holds one with frames/), then times full passes of
`build_loader` over the train split (shuffled, with augmentation) and the test split (in
order) for DATA.DECODING_BACKEND "video" and "frames", with 0 and 2 loader workers. Both
backends read the same keyframes and give the same clips. Prints one table; the ratio column is
video clips/s over frames clips/s measured in the same run. Nothing is written except the
temporary dataset.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detection.config import get_cfg  # noqa: E402
from detection.data.dataset import build_loader  # noqa: E402
from detection.data.synthetic import generate_synthetic_ava  # noqa: E402


def _config(data_dir: Path, backend: str, workers: int, crop: int):
    cfg = get_cfg()
    cfg.DATA.PATH_TO_DATA_DIR = str(data_dir)
    cfg.DATA.DECODING_BACKEND = backend
    cfg.DATA_LOADER.NUM_WORKERS = workers
    # The tiny synthetic setting: 16 frames at rate 2, Slow = 4 frames.
    cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE, cfg.SLOWFAST.ALPHA = 16, 2, 4
    cfg.DATA.TRAIN_JITTER_SCALES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TEST_CROP_SIZE = (
        [crop, crop * 5 // 4],
        crop,
        crop,
    )
    cfg.MODEL.NUM_CLASSES = 5
    cfg.TRAIN.BATCH_SIZE = cfg.TEST.BATCH_SIZE = 8
    return cfg


def _clips_per_second(cfg, split: str, passes: int) -> float:
    """Clips/s over `passes` passes, each timed from its first batch on: starting worker
    processes and opening files is paid once per run, not per clip."""
    loader = build_loader(cfg, split)
    clips, seconds = 0, 0.0
    for _ in range(passes):
        batches = iter(loader)
        next(batches)
        start = time.perf_counter()
        for batch in batches:
            clips += len(batch["orig_sizes"])
        seconds += time.perf_counter() - start
    return clips / seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="generated dataset with frames/ (default: make one)"
    )
    parser.add_argument("--num-videos", type=int, default=16)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--crop", type=int, default=112, help="train crop / test short side")
    parser.add_argument("--passes", type=int, default=2, help="passes over a split per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per cell; best kept")
    args = parser.parse_args(argv)
    # The loader is measured alone: torch's intra-op threads would only contend with workers.
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp)
            generate_synthetic_ava(
                data,
                num_videos=args.num_videos,
                width=args.width,
                height=args.height,
                write_frames=True,
            )
        rows = []
        for split in ("train", "test"):
            for workers in (0, 2):
                best = {"video": 0.0, "frames": 0.0}
                # Alternate the backends and keep each one's best run, so that load from other
                # processes on a shared machine hits both alike and does not set the ratio.
                for _ in range(args.repeats):
                    for backend in best:
                        cfg = _config(data, backend, workers, args.crop)
                        rate = _clips_per_second(cfg, split, args.passes)
                        best[backend] = max(best[backend], rate)
                rows.append((split, workers, best["video"], best["frames"]))
    source = (
        f"AVA set at {args.data}" if args.data else f"{args.width}x{args.height} generated AVA set"
    )
    print(
        f"\n{source}, 16x2 clips, crop {args.crop}, "
        f"best of {args.repeats} x {args.passes} passes, {os.cpu_count()} CPU cores"
    )
    print(
        f"{'split':<6} {'workers':>7} {'video clips/s':>14} {'JPEG clips/s':>13} {'video/JPEG':>11}"
    )
    for split, workers, video, frames in rows:
        print(f"{split:<6} {workers:>7} {video:>14.1f} {frames:>13.1f} {video / frames:>10.2f}x")


if __name__ == "__main__":
    main()
