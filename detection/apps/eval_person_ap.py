"""The `tools/eval_person_ap.py` command: person-box AP of a person detector on AVA keyframes."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from detection.apps.cli import run_tool, tool_parser
from detection.evaluation.frame_map import EvaluationError
from detection.evaluation.person_ap import SCORE_THRESHOLD, PersonApResult, evaluate_person_boxes
from detection.utils.atomic import atomic_write
from detection.utils.paths import check_outputs

DESCRIPTION = """\
AP@0.5, AP@[.5:.95] and recall at a score threshold of person boxes against the unique
ground-truth person boxes of each AVA keyframe (COCOeval, 101-point AP).

Reads: the ground truth (-g, video_id,timestamp,x1,y1,x2,y2,action_id[,person_id]), the person
boxes (-d, video_id,timestamp,x1,y1,x2,y2,[action_id],score, e.g. ava_val_predicted_boxes.csv;
rows repeated per action count once) and optionally excluded timestamps (-e).
Prints the figures. Writes: --output-json {"ap50", "ap", "recall50_at_threshold",
"score_threshold", "num_groundtruth", "num_detections", "num_frames"}.
"""


def _parser() -> argparse.ArgumentParser:
    parser = tool_parser(DESCRIPTION)
    parser.add_argument("-g", "--groundtruth", required=True, type=Path, help="ground-truth CSV")
    parser.add_argument("-d", "--detections", required=True, type=Path, help="person boxes CSV")
    parser.add_argument("-e", "--exclusions", type=Path, help="excluded timestamps CSV")
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=SCORE_THRESHOLD,
        help=f"score cut for the recall figure (default {SCORE_THRESHOLD})",
    )
    parser.add_argument("--output-json", type=Path, help="write the figures here")
    return parser


def _evaluate(args: argparse.Namespace) -> PersonApResult:
    check_outputs(
        inputs={
            "--groundtruth": args.groundtruth,
            "--detections": args.detections,
            "--exclusions": args.exclusions,
        },
        outputs={"--output-json": args.output_json},
    )
    result = evaluate_person_boxes(
        args.groundtruth, args.detections, args.exclusions, score_threshold=args.score_threshold
    )
    if result.num_groundtruth == 0:
        # AP over no person is undefined, not 0: a wrong file must not pass for a bad detector.
        left = f" outside the excluded timestamps of {args.exclusions}" if args.exclusions else ""
        raise EvaluationError(
            f"{args.groundtruth} has no ground-truth person box{left}: nothing to evaluate"
        )
    if args.output_json:
        with atomic_write(args.output_json) as f:
            f.write(json.dumps(dataclasses.asdict(result), indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    result = run_tool(lambda: _evaluate(args))
    print(
        f"person AP@0.5: {100 * result.ap50:.1f}  AP@[.5:.95]: {100 * result.ap:.1f}  "
        f"recall@0.5 at score >= {result.score_threshold}: "
        f"{100 * result.recall50_at_threshold:.1f}"
    )
    print(
        f"{result.num_groundtruth} ground-truth persons, {result.num_detections} boxes, "
        f"{result.num_frames} keyframes"
    )
    return 0
