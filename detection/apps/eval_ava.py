"""`tools/eval_ava.py`: AVA frame-mAP of a detections CSV under the official or PySlowFast's
protocol, with a per-class table, mAP per label group, and optional JSON, CSV and plot."""

from __future__ import annotations

import argparse
import ctypes
import logging
from pathlib import Path

from detection.apps.cli import run_tool
from detection.ava.constants import MAX_DETECTIONS_PER_FRAME
from detection.ava.labelmap import read_labelmap
from detection.ava.packaged import ALL_CLASSES, packaged_labelmap_path
from detection.evaluation.frame_map import PROTOCOLS, evaluate
from detection.evaluation.report import group_map, per_class_markdown, plot_per_class
from detection.utils.paths import check_outputs

GROUP_LABELMAP = packaged_labelmap_path(ALL_CLASSES)

DESCRIPTION = f"""\
Frame-mAP@0.5 IoU of AVA action detections (PASCAL VOC all-point AP, mean over classes with
ground truth), under one of two protocols:
  official    the ActivityNet evaluator (get_ava_performance.py): at most
              {MAX_DETECTIONS_PER_FRAME} detections per frame, each frame's detections matched
              by descending score;
  pyslowfast  PySlowFast's in-memory evaluation, which its model-zoo numbers use: no cap, each
              frame's detections matched in file order (box by box, as PySlowFast appends them).

Rows with a box outside [0, 1] or inverted are scored as the official evaluator scores them
(a warning gives their count and first lines); --strict makes them errors.

Reads: the label map (-l, either pbtxt dialect; its classes are evaluated), the ground truth (-g,
video_id,timestamp,x1,y1,x2,y2,action_id[,person_id]), the detections (-d,
video_id,timestamp,x1,y1,x2,y2,action_id,score), optionally excluded timestamps (-e,
video_id,timestamp) and a label map with label_type groups (--group-labelmap).
Prints: mAP, the per-class table (markdown, highest AP first) and mAP per label group.
Writes: --output-json {{"protocol": str, "mAP": float, "per_class": {{name: AP}}}}, --table-csv
the per-class table, --plot a PNG bar chart of per-class AP. An output that is one of the
inputs, or another output, is refused before anything is read.
"""


def build_parser() -> argparse.ArgumentParser:
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
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="official",
        help="official (ActivityNet, the default) or pyslowfast (PySlowFast's model zoo)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse rows with a box outside [0, 1] or inverted instead of scoring them",
    )
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
        "them as false positives (both reference evaluators count them)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    _reuse_freed_memory()
    _no_huge_pages()
    run_tool(lambda: _run(args))


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def _reuse_freed_memory() -> None:
    """Have glibc's malloc keep freed memory for the next array instead of unmapping it.

    The evaluation makes one array after another of a few to tens of MB; by default glibc maps
    each from the kernel and unmaps it when freed (always above 32 MB), so the next one comes
    back as fresh pages, each a page fault: measured on 1.6 M rows, 43k faults and 0.3-1.2 s of
    system time against 25k and 0.1-0.2 s this way. The process exits when done, so memory
    kept is not a cost. Other C libraries keep their defaults.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 1 << 30)
    mallopt(_M_TRIM_THRESHOLD, 1 << 30)


def _no_huge_pages() -> None:
    """Stop NumPy advising the kernel to back its large arrays with 2 MB pages.

    NumPy does so by default (``NUMPY_MADVISE_HUGEPAGE``); each such page is zeroed in one
    piece on first touch, which here cost more than the evaluation's 4 KB faults: on 1.6 M
    rows, system time 0.9-1.9 s with the advice against 0.4-0.6 s without it (user time the
    same, 1.7-1.8 s), alternating runs on one machine. The process exits when done; other
    processes keep NumPy's default.
    """
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]

    set_advice = getattr(multiarray, "_set_madvise_hugepage", None)
    if set_advice is not None:
        set_advice(False)


def _run(args: argparse.Namespace) -> None:
    # Before anything is read: an output that names an input would destroy it.
    check_outputs(
        {
            "--labelmap": args.labelmap,
            "--groundtruth": args.groundtruth,
            "--detections": args.detections,
            "--exclusions": args.exclusions,
            "--group-labelmap": args.group_labelmap,
        },
        {"--output-json": args.output_json, "--table-csv": args.table_csv, "--plot": args.plot},
    )
    result = evaluate(
        args.labelmap,
        args.groundtruth,
        args.detections,
        args.exclusions,
        protocol=args.protocol,
        frames_without_groundtruth="ignore" if args.ignore_frames_without_gt else "false_positive",
        strict=args.strict,
    )
    groups = read_labelmap(args.group_labelmap)
    if args.output_json:
        result.to_json(args.output_json)
    if args.table_csv:
        # pandas only here: imported, it would cost more than evaluating a small file.
        from detection.evaluation.report import per_class_table, write_table_csv

        write_table_csv(per_class_table(result, groups), args.table_csv)
    if args.plot:
        title = f"{args.detections.name}: mAP {result.mAP:.4f} ({result.protocol})"
        plot_per_class(result, args.plot, title=title)

    cap = (
        f"; {result.num_dropped_by_cap} detections over the cap"
        if args.protocol == "official"
        else ""
    )
    print(
        f"mAP@0.5IOU: {result.mAP:.6f} over {len(result.per_class)} classes with ground truth "
        f"({result.protocol} protocol; {result.num_frames} frames{cap}; "
        f"{result.num_on_frames_without_groundtruth} detections on frames without ground truth)"
    )
    print()
    print(per_class_markdown(result, groups))
    print()
    for group, value in group_map(result, groups).items():
        print(f"{group}: {value:.6f}")
