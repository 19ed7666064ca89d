"""Two AVA results side by side: per-class AP, the difference, and mAP."""

from __future__ import annotations

import argparse
from pathlib import Path

from detection.evaluation.frame_map import evaluate
from detection.evaluation.report import compare, load_result, to_markdown, write_table_csv

DESCRIPTION = """\
Per-class AP of two results side by side, sorted by the difference (second - first), then mAP.

Reads: two results, each either a result JSON ({"mAP", "per_class"}, as eval_ava.py
--output-json writes) or a detections CSV, which is then evaluated against -g (and -e) with the
classes of -l. Prints a markdown table. Writes: --table-csv the same table as CSV.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
    args = parser.parse_args(argv)

    def load(path: Path):
        if path.suffix == ".json":
            return load_result(path)
        if args.labelmap is None or args.groundtruth is None:
            parser.error(f"{path} is not a .json result: -l and -g are needed to evaluate it")
        return evaluate(args.labelmap, args.groundtruth, path, args.exclusions)

    names = tuple(args.names) if args.names else (args.first.name, args.second.name)
    if names[0] == names[1]:
        names = (f"1: {names[0]}", f"2: {names[1]}")
    table = compare(load(args.first), load(args.second), names=names)
    if args.table_csv:
        write_table_csv(table, args.table_csv)
    print(to_markdown(table))


if __name__ == "__main__":
    main()
