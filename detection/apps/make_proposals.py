"""The `tools/make_proposals.py` command: person boxes for AVA keyframes (`engine.proposals`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from yacs.config import CfgNode

from detection.apps.cli import run_tool, tool_parser
from detection.config import load_config
from detection.utils.paths import PathArg, check_outputs

DESCRIPTION = """\
Run a person detector on the keyframes of a set of videos and write the boxes as an AVA
predicted-box CSV, the file AVA.TRAIN_PREDICT_BOX_LISTS / AVA.TEST_PREDICT_BOX_LISTS name.

Reads, one of:
  --config CFG [KEY VALUE ...]   the dataset in DATA.PATH_TO_DATA_DIR: for each --split, the
        videos its ground truth names (train: AVA.TRAIN_GT_BOX_LISTS, val: AVA.GROUNDTRUTH_FILE)
        at its annotated seconds (--keyframes annotated, default) or at every whole second of
        the video in AVA.VALID_FRAMES_START_SEC..END_SEC (--keyframes all);
  --videos DIR --output CSV      every video file in DIR (id = file name without extension)
        at every whole second in the valid range; --config optional (offset and range come from
        it and the KEY VALUE overrides, e.g. AVA.VIDEO_START_SEC 0 AVA.VALID_FRAMES_START_SEC 0
        AVA.VALID_FRAMES_END_SEC 100000 for videos that are not AVA 15-minute cuts);
  and the detector's files: DEMO.DETECTOR (or --detector hog|torchvision|detectron2|csv) with
  its DEMO.* settings (DEMO.TORCHVISION_WEIGHTS, DEMO.DETECTRON2_WEIGHTS, ...).
Second s is frame (s - AVA.VIDEO_START_SEC) * AVA.FPS, the frame the training clips centre on.

Writes: --output, or with --config ANNOTATION_DIR/ava_{split}_predicted_boxes.csv per split,
rows video_id,second,x1,y1,x2,y2,,score (normalized; boxes scoring below
DEMO.PERSON_SCORE_THRESH left out, AVA.DETECTION_SCORE_THRESH filters again at loading).
Resumable: finished videos are kept in .NAME.parts/ beside the output and skipped by a rerun
with the same settings; the CSV appears only when every video is done.
Several processes: torchrun --nproc_per_node N tools/make_proposals.py ... (each rank takes
whole videos; rank 0 writes the CSV).
"""

SPLITS = ("train", "val")


def _parser() -> argparse.ArgumentParser:
    parser = tool_parser(DESCRIPTION)
    parser.add_argument("--config", help="YAML config (required unless --videos)")
    parser.add_argument("--videos", type=Path, help="folder of videos (instead of a dataset)")
    parser.add_argument("--output", type=Path, help="CSV to write")
    parser.add_argument(
        "--split", choices=[*SPLITS, "both"], default="both", help="with --config (default both)"
    )
    parser.add_argument(
        "--keyframes",
        choices=["annotated", "all"],
        default="annotated",
        help="with --config: the ground truth's seconds, or every second (default annotated)",
    )
    parser.add_argument(
        "--detector",
        choices=["hog", "torchvision", "detectron2", "csv"],
        help="person detector (overrides DEMO.DETECTOR)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("opts", nargs="*", metavar="KEY VALUE", help="config overrides")
    return parser


def _under(root: Path, path: str) -> Path:
    return Path(path) if os.path.isabs(path) else root / path


def _jobs(cfg: CfgNode, args: argparse.Namespace) -> list[tuple[Path, list, dict[str, Path]]]:
    """(output CSV, [VideoKeyframes], {config key: ground-truth file read}) per file to write."""
    from detection.ava.csv_io import read_ava_csv
    from detection.data.video import VIDEO_EXTENSIONS, find_video
    from detection.engine.proposals import VideoKeyframes

    if args.videos is not None:
        if not args.videos.is_dir():
            raise NotADirectoryError(f"--videos {args.videos} is not a folder")
        files = sorted(p for p in args.videos.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
        if not files:
            raise FileNotFoundError(
                f"no video files ({', '.join(VIDEO_EXTENSIONS)}) in {args.videos}"
            )
        return [(args.output, [VideoKeyframes(p.stem, p) for p in files], {})]

    root = Path(cfg.DATA.PATH_TO_DATA_DIR)
    ann_dir = _under(root, cfg.AVA.ANNOTATION_DIR)
    video_dir = _under(root, cfg.AVA.VIDEO_DIR)
    valid = range(cfg.AVA.VALID_FRAMES_START_SEC, cfg.AVA.VALID_FRAMES_END_SEC + 1)
    jobs = []
    for split in SPLITS if args.split == "both" else (args.split,):
        if split == "train":
            gt_files = {
                f"AVA.TRAIN_GT_BOX_LISTS[{i}]": name
                for i, name in enumerate(cfg.AVA.TRAIN_GT_BOX_LISTS)
            }
        else:
            gt_files = {"AVA.GROUNDTRUTH_FILE": cfg.AVA.GROUNDTRUTH_FILE}
        gt_paths = {key: _under(ann_dir, name) for key, name in gt_files.items()}
        seconds: dict[str, set[int]] = {}
        for path in gt_paths.values():
            rows = read_ava_csv(path, kind="groundtruth")
            rows = rows[rows["timestamp"].isin(valid)]
            for video_id, group in rows.groupby("video_id"):
                seconds.setdefault(str(video_id), set()).update(group["timestamp"].tolist())
        videos = [
            VideoKeyframes(
                v,
                find_video(video_dir, v),
                tuple(sorted(s)) if args.keyframes == "annotated" else None,
            )
            for v, s in sorted(seconds.items())
        ]
        output = args.output or ann_dir / f"ava_{split}_predicted_boxes.csv"
        jobs.append((output, videos, gt_paths))
    return jobs


def _check_outputs(cfg: CfgNode, args: argparse.Namespace, jobs: list) -> None:
    """Refuse an output CSV that is a file the run reads, or that another split writes."""
    demo = cfg.DEMO
    inputs: dict[str, PathArg] = {
        "--config": args.config,
        "DEMO.PREDICTED_BOXES_CSV": demo.PREDICTED_BOXES_CSV if demo.DETECTOR == "csv" else None,
        "DEMO.TORCHVISION_WEIGHTS": demo.TORCHVISION_WEIGHTS or None,
        "DEMO.DETECTRON2_WEIGHTS": demo.DETECTRON2_WEIGHTS or None,
    }
    outputs: dict[str, PathArg] = {}
    for output, videos, gt_paths in jobs:
        inputs.update(gt_paths)
        inputs.update({f"video {v.video_id}": v.path for v in videos})
        outputs["--output" if args.output else f"output {output.name}"] = output
    check_outputs(inputs, outputs)


def _run(args: argparse.Namespace) -> list[str]:
    opts = list(args.opts) + (["DEMO.DETECTOR", args.detector] if args.detector else [])
    cfg = load_config(args.config, opts)
    # torch and the detectors are imported once the arguments and config are known good.
    from detection.engine import distributed as du
    from detection.engine.proposals import KeyframeRule, make_proposals
    from detection.person import build_detector_from_cfg
    from detection.utils.device import resolve_device

    jobs = _jobs(cfg, args)
    _check_outputs(cfg, args, jobs)
    device = resolve_device(cfg.DEVICE, set_current=True)
    du.init_distributed(device)
    demo = cfg.DEMO
    settings = {
        "detector": demo.DETECTOR,
        "score_thresh": demo.PERSON_SCORE_THRESH,
        "weights": {"torchvision": demo.TORCHVISION_WEIGHTS,
                    "detectron2": f"{demo.DETECTRON2_CFG} {demo.DETECTRON2_WEIGHTS}",
                    "csv": demo.PREDICTED_BOXES_CSV}.get(demo.DETECTOR, ""),
    }  # fmt: skip
    rule = KeyframeRule(
        fps=int(cfg.AVA.FPS),
        video_start_sec=int(cfg.AVA.VIDEO_START_SEC),
        valid=range(cfg.AVA.VALID_FRAMES_START_SEC, cfg.AVA.VALID_FRAMES_END_SEC + 1),
    )
    lines = []
    try:
        detector = build_detector_from_cfg(cfg, device=str(device))
        for output, videos, _ in jobs:
            result = make_proposals(
                videos, detector, output, rule, settings=settings, show_progress=not args.quiet
            )
            if result.output is not None:
                lines.append(
                    f"wrote {result.output}: {result.rows} boxes on {result.keyframes_with_boxes} "
                    f"keyframes of {len(videos)} videos ({result.videos_skipped} done by an "
                    "earlier run)"
                )
    finally:
        du.shutdown_distributed()
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # Intermixed: options may follow the KEY VALUE pairs.
    args = parser.parse_intermixed_args(argv)
    if args.videos is None and args.config is None:
        parser.error("give --config CFG (a dataset) or --videos DIR --output CSV")
    if args.videos is not None and args.output is None:
        parser.error("--videos needs --output CSV")
    if args.output is not None and args.videos is None and args.split == "both":
        parser.error("--output with --config needs --split train or --split val")
    if len(args.opts) % 2:
        parser.error(f"overrides must be KEY VALUE pairs, got {args.opts}")
    for line in run_tool(lambda: _run(args)):
        print(line)
    return 0
