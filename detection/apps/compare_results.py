"""The `tools/compare_results.py` command: two AVA results side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

from detection.apps.cli import run_tool, tool_parser
from detection.evaluation.frame_map import PROTOCOLS, FrameMapResult, evaluate
from detection.evaluation.report import (
    SavedResult,
    compare,
    load_result,
    to_markdown,
    write_table_csv,
)
from detection.utils.paths import check_outputs

DESCRIPTION = """\
Per-class AP of two results side by side, sorted by the difference (second - first), then mAP.

Reads: two results, each either a result JSON ({"mAP", "per_class"}, as eval_ava.py
--output-json writes) or a detections CSV, which is then evaluated against -g (and -e) with the
classes of -l. Prints a markdown table. Writes: --table-csv the same table as CSV.
"""


def _parser() -> argparse.ArgumentParser:
    parser = tool_parser(DESCRIPTION)
    parser.add_argument("first", type=Path, help="result JSON or detections CSV")
    parser.add_argument("second", type=Path, help="result JSON or detections CSV")
    parser.add_argument("-l", "--labelmap", type=Path, help="label map, for detections CSVs")
    parser.add_argument("-g", "--groundtruth", type=Path, help="ground truth, for detections CSVs")
    parser.add_argument("-e", "--exclusions", type=Path, help="excluded timestamps CSV")
    parser.add_argument(
        "--names",
        nargs=2,
        metavar=("FIRST", "SECOND"),
        help="column names (default: the file names)",
    )
    parser.add_argument("--table-csv", type=Path, help="write the table here")
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="official",
        help="evaluation protocol for CSVs, and the one read from a run's metrics.json "
        "(default: %(default)s)",
    )
    return parser


def _is_json(path: Path) -> bool:
    return path.suffix.lower() == ".json"


def _compare(args: argparse.Namespace) -> str:
    check_outputs(
        inputs={
            "FIRST": args.first,
            "SECOND": args.second,
            "--labelmap": args.labelmap,
            "--groundtruth": args.groundtruth,
            "--exclusions": args.exclusions,
        },
        outputs={"--table-csv": args.table_csv},
    )

    def load(path: Path) -> FrameMapResult | SavedResult:
        if _is_json(path):
            return load_result(path, args.protocol)
        return evaluate(
            args.labelmap, args.groundtruth, path, args.exclusions, protocol=args.protocol
        )

    first, second = args.names or (args.first.name, args.second.name)
    if first == second:
        first, second = f"1: {first}", f"2: {second}"
    table = compare(load(args.first), load(args.second), names=(first, second))
    if args.table_csv:
        write_table_csv(table, args.table_csv)
    return to_markdown(table)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    for path in (args.first, args.second):
        if not _is_json(path) and (args.labelmap is None or args.groundtruth is None):
            parser.error(f"{path} is not a .json result: -l and -g are needed to evaluate it")
    print(run_tool(lambda: _compare(args)))
    return 0
