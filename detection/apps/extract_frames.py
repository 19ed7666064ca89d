"""Command-line logic of tools/extract_frames.py: PySlowFast's JPEG frame layout from videos."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tqdm import tqdm

from detection.apps.cli import run_tool, tool_parser
from detection.data.extract import extract_videos, find_videos, write_frame_list
from detection.errors import UserError
from detection.utils.paths import check_outputs, check_writable_dir

DESCRIPTION = """Extract PySlowFast's frame layout from videos, without ffmpeg.

Reads VIDEOS/*.mp4|mkv|webm|avi (AVA's 15-minute cuts; the file name is the video id). Writes
OUTPUT/frames/{id}/{id}_%06d.jpg (every frame of the 30 fps layout, numbered from 1) and
OUTPUT/frame_lists/{train,val}.csv. Frames are the ones `ffmpeg -i VIDEO -r 30 -q:v 1` picks,
with the colours OpenCV reads from its JPEGs (detection/data/video.py). Resumable: finished
videos are skipped, unfinished ones start again. A video goes to val.csv if --val-ids lists it,
to train.csv if --train-ids lists it (without --train-ids: every video not in val).
"""


class IdListError(UserError, ValueError):
    """A video id list cannot be used; names the file."""


def read_ids(path: Path) -> set[str]:
    """Video ids of a list: the first comma-separated field of each line, so a plain list of
    ids and an AVA annotation CSV (``video_id,second,...``) both work."""
    ids = {line.split(",")[0].strip() for line in path.read_text().splitlines()}
    ids.discard("")
    if not ids:
        raise IdListError(f"{path}: no video ids")
    return ids


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = tool_parser(DESCRIPTION)
    parser.add_argument("--output", required=True, type=Path, help="dataset root to write")
    parser.add_argument(
        "--videos", type=Path, default=None, help="folder of videos (default OUTPUT/videos)"
    )
    parser.add_argument("--train-ids", type=Path, help="ids (or AVA CSV) of training videos")
    parser.add_argument("--val-ids", type=Path, help="ids (or AVA CSV) of validation videos")
    parser.add_argument(
        "--workers",
        type=int,
        default=max(1, min(8, os.cpu_count() or 1)),
        help="videos extracted at once, one process each (default: CPUs, at most 8)",
    )
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    return parser.parse_args(argv)


def extract(args: argparse.Namespace) -> None:
    lists = args.output / "frame_lists"
    check_outputs(
        inputs={"--train-ids": args.train_ids, "--val-ids": args.val_ids},
        outputs={"train frame list": lists / "train.csv", "val frame list": lists / "val.csv"},
    )
    check_writable_dir(args.output / "frames", "--output")
    videos = find_videos(args.videos or args.output / "videos")
    val = read_ids(args.val_ids) if args.val_ids else set()
    train = read_ids(args.train_ids) if args.train_ids else None
    counts: dict[str, int] = {}
    written = 0
    results = extract_videos(
        videos, args.output / "frames", workers=args.workers, quality=args.quality
    )
    for result in tqdm(results, total=len(videos), desc="videos", unit="video"):
        counts[result.video_id] = result.num_frames
        written += result.written
    ids = sorted(counts)
    train_ids = [v for v in ids if v not in val and (train is None or v in train)]
    val_ids = [v for v in ids if v in val]
    write_frame_list(lists / "train.csv", train_ids, counts)
    write_frame_list(lists / "val.csv", val_ids, counts)
    missing = sorted((val | (train or set())) - set(ids))
    print(
        f"{written} videos extracted, {len(ids) - written} already done; "
        f"{len(train_ids)} train + {len(val_ids)} val videos in {lists}"
        + (f"; {len(missing)} listed ids have no video (e.g. {missing[0]})" if missing else "")
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run_tool(lambda: extract(args))
