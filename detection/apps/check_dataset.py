"""The `tools/check_dataset.py` command: the dataset doctor (`detection.data.doctor`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from detection.apps.cli import run_tool, tool_parser
from detection.config import load_config
from detection.data.doctor import DEFAULT_MIN_BOXES, DoctorReport, check_dataset

DESCRIPTION = """\
Check an AVA-layout dataset before training on it and print a report: counts, then errors and
warnings with the first offending rows as file:line.

Reads DATASET_DIR (DATA.PATH_TO_DATA_DIR) as the config describes it: the videos (each opened
and decoded at its start and end), the ground-truth, predicted-box, label-map and
excluded-timestamp files of the AVA.* keys. Without --config, the defaults plus, for a set
written by tools/import_annotations.py, the overrides its dataset.json records. Writes nothing.

Checks: videos decode (duration, fps); rows at seconds inside their video (AVA.VIDEO_START_SEC)
and the valid keyframe range; boxes inside [0, 1], not inverted, not empty; action ids vs
MODEL.NUM_CLASSES and the label map; classes with few training boxes; videos in both splits;
predicted boxes (proposals) covering the annotated keyframes above AVA.DETECTION_SCORE_THRESH.

Exit code: 0 without errors (warnings allowed), 1 with errors, 2 for a bad argument.
"""


def _parser() -> argparse.ArgumentParser:
    parser = tool_parser(DESCRIPTION)
    parser.add_argument("dataset_dir", metavar="DATASET_DIR", type=Path, help="dataset root")
    parser.add_argument("--config", help="YAML config (default: the defaults)")
    parser.add_argument(
        "--min-boxes",
        type=int,
        default=DEFAULT_MIN_BOXES,
        help=f"warn about classes with fewer training boxes (default {DEFAULT_MIN_BOXES})",
    )
    parser.add_argument(
        "--no-decode",
        action="store_true",
        help="only open the videos, do not decode their last frame (faster, misses truncation)",
    )
    parser.add_argument("opts", nargs="*", metavar="KEY VALUE", help="config overrides")
    return parser


def _import_overrides(dataset_dir: Path) -> list[str]:
    """The config overrides a tools/import_annotations.py dataset.json records (or none)."""
    path = dataset_dir / "dataset.json"
    if not path.is_file():
        return []
    try:
        overrides = json.loads(path.read_text(encoding="utf-8")).get("config_overrides", [])
    except (ValueError, AttributeError):
        return []  # the doctor reports an unreadable dataset.json
    return [str(o) for o in overrides] if isinstance(overrides, list) else []


def _check(args: argparse.Namespace) -> DoctorReport:
    if not args.dataset_dir.is_dir():
        raise FileNotFoundError(f"dataset folder {args.dataset_dir} not found")
    base = [] if args.config else _import_overrides(args.dataset_dir)
    opts = [*base, *args.opts, "DATA.PATH_TO_DATA_DIR", str(args.dataset_dir)]
    cfg = load_config(args.config, opts)
    report = check_dataset(cfg, min_boxes=args.min_boxes, decode_videos=not args.no_decode)
    if base:
        report.facts.insert(
            0, f"config: defaults + the overrides of {args.dataset_dir}/dataset.json"
        )
    return report


def main(argv: list[str] | None = None) -> int:
    """Print the report; 1 if it has errors, else 0 (user errors in the arguments: 2)."""
    parser = _parser()
    # Intermixed: options may follow the KEY VALUE pairs.
    args = parser.parse_intermixed_args(argv)
    if args.min_boxes < 0:
        parser.error(f"--min-boxes must be >= 0, got {args.min_boxes}")
    if len(args.opts) % 2:
        parser.error(f"overrides must be KEY VALUE pairs, got {args.opts}")
    report = run_tool(lambda: _check(args))
    print(report.format())
    return 1 if report.errors else 0
