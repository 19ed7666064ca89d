"""AVA frame-mAP of a detections CSV, with the official protocol."""

from __future__ import annotations

import argparse
from pathlib import Path

from detection.ava.constants import MAX_DETECTIONS_PER_FRAME
from detection.ava.labelmap import read_labelmap
from detection.ava.packaged import ALL_CLASSES, packaged_labelmap_path
from detection.evaluation.frame_map import evaluate
from detection.evaluation.report import (
    group_map,
    per_class_table,
    plot_per_class,
    to_markdown,
    write_table_csv,
)

GROUP_LABELMAP = packaged_labelmap_path(ALL_CLASSES)

DESCRIPTION = f"""\
Frame-mAP@0.5 IoU of AVA action detections, as the official ActivityNet evaluator computes it
(at most {MAX_DETECTIONS_PER_FRAME} detections per frame, PASCAL VOC all-point AP, mean over
classes with ground truth).

Reads: the label map (-l, either pbtxt dialect; its classes are evaluated), the ground truth (-g,
video_id,timestamp,x1,y1,x2,y2,action_id[,person_id]), the detections (-d,
video_id,timestamp,x1,y1,x2,y2,action_id,score), optionally excluded timestamps (-e,
video_id,timestamp) and a label map with label_type groups (--group-labelmap).
Prints: mAP, the per-class table (markdown, highest AP first) and mAP per label group.
Writes: --output-json {{"mAP": float, "per_class": {{name: AP}}}}, --table-csv the per-class
table, --plot a PNG bar chart of per-class AP.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "-l",
        "--labelmap",
        required=True,
        type=Path,
        help="label map of the evaluated classes (.pbtxt)",
    )
    parser.add_argument("-g", "--groundtruth", required=True, type=Path, help="ground-truth CSV")
    parser.add_argument("-d", "--detections", required=True, type=Path, help="detections CSV")
    parser.add_argument("-e", "--exclusions", type=Path, help="excluded timestamps CSV")
    parser.add_argument("--output-json", type=Path, help="write mAP and per-class AP here")
    parser.add_argument("--table-csv", type=Path, help="write the per-class table here")
    parser.add_argument("--plot", type=Path, help="write a per-class AP bar chart (PNG) here")
    parser.add_argument(
        "--group-labelmap",
        type=Path,
        default=GROUP_LABELMAP,
        help=f"label map with label_type, for mAP per group (default: {GROUP_LABELMAP.name})",
    )
    parser.add_argument(
        "--ignore-frames-without-gt",
        action="store_true",
        help="drop detections on frames with no ground truth instead of counting "
        "them as false positives (the official evaluator counts them)",
    )
    args = parser.parse_args(argv)

    result = evaluate(
        args.labelmap,
        args.groundtruth,
        args.detections,
        args.exclusions,
        frames_without_groundtruth="ignore" if args.ignore_frames_without_gt else "false_positive",
    )
    groups = read_labelmap(args.group_labelmap)
    table = per_class_table(result, groups)
    if args.output_json:
        result.to_json(args.output_json)
    if args.table_csv:
        write_table_csv(table, args.table_csv)
    if args.plot:
        plot_per_class(result, args.plot, title=f"{args.detections.name}: mAP {result.mAP:.4f}")

    print(
        f"mAP@0.5IOU: {result.mAP:.6f} over {len(result.per_class)} classes with ground truth "
        f"({result.num_frames} frames; {result.num_dropped_by_cap} detections over the cap; "
        f"{result.num_on_frames_without_groundtruth} on frames without ground truth)"
    )
    print()
    print(to_markdown(table))
    print()
    for group, value in group_map(result, groups).items():
        print(f"{group}: {value:.6f}")


if __name__ == "__main__":
    main()
