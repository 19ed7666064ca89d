"""The `tools/make_synthetic_ava.py` command: a small generated AVA-format dataset."""

from __future__ import annotations

import argparse

from detection.apps.cli import run_tool, tool_parser
from detection.data.synthetic import (
    ANNOTATION_FORMATS,
    CUSTOM_CLASSES,
    SyntheticAva,
    generate_synthetic_ava,
)

_CUSTOM_IDS = ", ".join(str(i) for i, _ in CUSTOM_CLASSES.values())
DESCRIPTION = f"""\
Generate a small AVA-format dataset (mp4 videos, CSVs, label maps, frame lists).

Reads nothing. Writes under --output: videos/*.mp4, annotations/ (ground truth, predicted
boxes, excluded timestamps, label maps), frame_lists/{{train,val}}.csv, synthetic_ava.json and,
with --frames, frames/{{video}}/{{video}}_%06d.jpg. With --annotation-formats cvat,via, also the
same people and actions as CVAT and VIA would export them, under custom class ids and names
(ids {_CUSTOM_IDS}), in the time of the video file: custom/cvat/{{video}}.xml (CVAT for
video 1.1), custom/via/project.json (VIA 3), custom/labelmap.pbtxt and
custom/person_boxes.csv (person detector boxes at every second), the input of
tools/import_annotations.py. The design (classes, periods, sizes) is in
detection/data/synthetic.py.
"""

MIN_SECONDS = 4
"""Shortest video that holds one keyframe with a clip around it."""


def _parser() -> argparse.ArgumentParser:
    parser = tool_parser(DESCRIPTION)
    parser.add_argument(
        "--output", required=True, help="dataset root to write (DATA.PATH_TO_DATA_DIR)"
    )
    parser.add_argument("--num-videos", type=int, default=16, help="videos in total (default 16)")
    parser.add_argument(
        "--num-val", type=int, default=None, help="of which val (default num-videos // 4)"
    )
    parser.add_argument(
        "--seconds",
        type=int,
        default=12,
        help=f"length of each video in seconds, at least {MIN_SECONDS} (default 12)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed; a seed gives identical files"
    )
    parser.add_argument(
        "--frames", action="store_true", help="also extract JPEG frames (frames backend)"
    )
    parser.add_argument(
        "--annotation-formats",
        default="",
        metavar="LIST",
        help=f"comma-separated, of {','.join(ANNOTATION_FORMATS)}: also write the annotations "
        "in these tools' export formats under custom/ (default none)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # Checked here, before any file is written, in the words of the options.
    if args.seconds < MIN_SECONDS:
        parser.error(f"--seconds must be at least {MIN_SECONDS}, got {args.seconds}")
    formats = [f.strip() for f in args.annotation_formats.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(ANNOTATION_FORMATS))
    if unknown:
        parser.error(
            f"--annotation-formats: {', '.join(unknown)} unknown; choose from "
            f"{','.join(ANNOTATION_FORMATS)}"
        )
    num_val = max(1, args.num_videos // 4) if args.num_val is None else args.num_val
    if not 1 <= num_val < args.num_videos:
        parser.error(
            f"need 1 <= --num-val < --num-videos (a train and a val split), got --num-val "
            f"{num_val} and --num-videos {args.num_videos}"
        )

    def generate() -> SyntheticAva:
        return generate_synthetic_ava(
            args.output,
            num_videos=args.num_videos,
            num_val=num_val,
            seconds=args.seconds,
            seed=args.seed,
            write_frames=args.frames,
            annotation_formats=formats,
        )

    info = run_tool(generate)
    print(
        f"wrote {len(info.train_videos)} train + {len(info.val_videos)} val videos to {info.root}"
    )
    return 0
