"""Generate a small AVA-format dataset (mp4 videos, CSVs, label maps, frame lists).

Reads nothing. Writes under --output: videos/*.mp4, annotations/ (ground truth, predicted
boxes, excluded timestamps, label maps), frame_lists/{train,val}.csv, synthetic_ava.json and,
with --frames, frames/{video}/{video}_%06d.jpg. The design (classes, periods, sizes) is in
detection/data/synthetic.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detection.data.synthetic import generate_synthetic_ava  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--output", required=True, help="dataset root to write (DATA.PATH_TO_DATA_DIR)"
    )
    parser.add_argument("--num-videos", type=int, default=16, help="videos in total (default 16)")
    parser.add_argument(
        "--num-val", type=int, default=None, help="of which val (default num-videos // 4)"
    )
    parser.add_argument(
        "--seconds", type=int, default=12, help="length of each video in seconds (default 12)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed; a seed gives identical files"
    )
    parser.add_argument(
        "--frames", action="store_true", help="also extract JPEG frames (frames backend)"
    )
    args = parser.parse_args(argv)
    info = generate_synthetic_ava(
        args.output,
        num_videos=args.num_videos,
        num_val=args.num_val,
        seconds=args.seconds,
        seed=args.seed,
        write_frames=args.frames,
    )
    print(
        f"wrote {len(info.train_videos)} train + {len(info.val_videos)} val videos to {info.root}"
    )


if __name__ == "__main__":
    main()
