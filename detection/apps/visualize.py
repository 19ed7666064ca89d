"""The `tools/visualize.py` command: AVA ground truth and/or predictions drawn on a video's
keyframes."""

from __future__ import annotations

import argparse
from pathlib import Path

from detection.apps.cli import run_tool, tool_parser
from detection.ava.labelmap import read_labelmap
from detection.ava.packaged import packaged_labelmap_path
from detection.utils.paths import check_outputs
from detection.visualization.keyframes import RenderSummary, render_ava

DEFAULT_LABELMAP = packaged_labelmap_path()

DESCRIPTION = """\
Draw AVA boxes and action labels on the keyframes of one video.

Reads: the video file (any format PyAV decodes); AVA CSVs for it: ground truth
(video_id,timestamp,x1,y1,x2,y2,action_id[,person_id]) drawn dashed with labels under the box,
and/or detections (video_id,timestamp,x1,y1,x2,y2,action_id,score) drawn solid with
"name score" above the box; a label map naming the action ids.
Writes: OUTPUT.png, a contact sheet of up to --max-frames keyframes, or OUTPUT.mp4, every frame
from the first to the last keyframe, each with its nearest keyframe's boxes.

AVA timestamps are seconds of the movie: AVA's 15-minute cuts start at second 900 (the
default --video-start-sec); give 0 for full movies.

Example:
  python tools/visualize.py --video videos/1j20qq1JyX4.mp4 --gt ava_val_v2.2.csv \\
      --pred output/detections.csv --out keyframes.png
"""


def _parser() -> argparse.ArgumentParser:
    parser = tool_parser(DESCRIPTION)
    parser.add_argument("--video", required=True, type=Path, help="video file")
    parser.add_argument("--out", required=True, type=Path, help="output .png or .mp4")
    parser.add_argument("--gt", type=Path, help="ground-truth AVA CSV")
    parser.add_argument("--pred", type=Path, help="AVA detections CSV (with scores)")
    parser.add_argument(
        "--video-id", help="the CSVs' id of this video (default: the video file name's stem)"
    )
    parser.add_argument(
        "--labelmap", type=Path, default=DEFAULT_LABELMAP, help="AVA label map (.pbtxt)"
    )
    parser.add_argument(
        "--times", type=int, nargs="+", help="AVA seconds to draw (default: every keyframe)"
    )
    parser.add_argument("--video-start-sec", type=float, default=900.0)
    parser.add_argument(
        "--thresh", type=float, default=0.3, help="lowest prediction score drawn (0.3)"
    )
    parser.add_argument("--top-k", type=int, default=3, help="labels drawn per predicted box (3)")
    parser.add_argument(
        "--max-frames", type=int, default=24, help="keyframes on a contact sheet (24)"
    )
    return parser


def _render(args: argparse.Namespace) -> RenderSummary:
    check_outputs(
        inputs={
            "--video": args.video,
            "--gt": args.gt,
            "--pred": args.pred,
            "--labelmap": args.labelmap,
        },
        outputs={"--out": args.out},
    )
    return render_ava(
        args.video,
        args.out,
        ground_truth=args.gt,
        predictions=args.pred,
        video_id=args.video_id,
        labelmap=read_labelmap(args.labelmap),
        timestamps=args.times,
        video_start_sec=args.video_start_sec,
        score_thresh=args.thresh,
        top_k=args.top_k,
        max_sheet_frames=args.max_frames,
    )


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.gt is None and args.pred is None:
        parser.error("give --gt, --pred or both")
    summary = run_tool(lambda: _render(args))
    print(
        f"wrote {summary.output}: {summary.keyframes} keyframes, {summary.frames} frames, "
        f"{summary.ground_truth_boxes} ground-truth and {summary.predicted_boxes} predicted boxes"
    )
    return 0
