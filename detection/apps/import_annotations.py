"""The `tools/import_annotations.py` command: CVAT / VIA / CSV annotations -> AVA-format dataset."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from detection.apps.cli import run_tool, tool_parser
from detection.importers import FORMATS, ImportOptions, ImportResult, import_annotations
from detection.utils.paths import OutputPathError, check_writable_dir, same_file

DESCRIPTION = """\
Import person boxes and their actions, annotated on videos, into a dataset in the AVA layout
that training and testing read (data/ava/README.md).

Reads (--format):
  cvat  CVAT "for video 1.1" XML exports (tracks of boxes; frames between keyframes are
        interpolated as CVAT does; outside="1" hides the object until the next box). A track
        labelled --person-label has as actions its checkbox attributes that are true; a track
        with any other label has that label as its one action. Track id = person id.
  via   VIA 3 video project JSON: rectangles (xy = [2, x, y, w, h]) at a time z = [t] (or held
        over z = [t1, t2]); actions are the chosen options of checkbox/radio/select attributes
        (or of --action-attribute); person id from --person-attribute (default: an attribute
        named person_id, person, track_id, track or id).
  csv   a CSV with header video,time_s,x1,y1,x2,y2,actions[,person_id]; boxes in pixels or
        normalized (--box-units, or columns named x1_px.. / x1_norm..); actions separated by
        ';' or '|'.
  and the videos in --videos (fps, duration and size read with PyAV), and --labelmap if given.

Keyframes: seconds 0, P, 2P, ... of each video (P = 1 / --keyframes-per-sec, whole seconds); a
person's box at a keyframe is that of its annotated frame nearest the keyframe, at most P / 2
away. Boxes are normalized by the frame size and clipped to [0, 1].

Writes DATASET_DIR (atomically: built beside it, then renamed): videos/ (copies, or symlinks
with --link), annotations/ava_{train,val}_v2.2.csv (ground truth with person ids),
annotations/ava_val_groundtruth_boxes.csv (val boxes as proposals),
annotations/ava_action_list_v2.2_for_activitynet_2019.pbtxt (ids: --labelmap's, else sorted
names -> 1..N), empty excluded-timestamp files, video_list.csv, dataset.json, README.md.
Prints a summary (what was written, what was skipped and why, malformed elements) and the
config overrides that point the loader at the dataset.
"""


def _parser() -> argparse.ArgumentParser:
    p = tool_parser(DESCRIPTION)
    p.add_argument("--format", required=True, choices=FORMATS, help="format of the INPUT files")
    p.add_argument("inputs", nargs="+", metavar="INPUT", type=Path, help="annotation files")
    p.add_argument("--videos", required=True, type=Path, help="folder of the annotated videos")
    p.add_argument("--output", required=True, type=Path, help="DATASET_DIR to write")
    p.add_argument(
        "--labelmap", type=Path, help="keep this label map's ids (.pbtxt, either dialect)"
    )
    p.add_argument(
        "--keyframes-per-sec", type=float, default=1.0, help="keyframe rate (default 1, as AVA)"
    )
    split = p.add_mutually_exclusive_group()
    split.add_argument("--val-videos", nargs="+", default=[], metavar="ID", help="val video ids")
    split.add_argument(
        "--val-fraction", type=float, default=0.0, help="share of videos for val (by id hash)"
    )
    p.add_argument("--link", action="store_true", help="symlink the videos instead of copying")
    p.add_argument("--overwrite", action="store_true", help="replace an existing DATASET_DIR")
    p.add_argument(
        "--strict", action="store_true", help="stop at the first malformed element (else skip it)"
    )
    p.add_argument(
        "--box-units", choices=("pixels", "normalized"), help="csv: units of x1,y1,x2,y2"
    )
    p.add_argument(
        "--person-label", default="person", help="cvat: label of tracks with checkbox actions"
    )
    p.add_argument("--person-attribute", help="via: attribute holding the person id")
    p.add_argument(
        "--action-attribute",
        action="append",
        default=[],
        help="via: attribute holding actions (repeatable; default every option attribute)",
    )
    return p


def check_dataset_output(output: Path, inputs: list[tuple[str, Path | None]]) -> None:
    """Refuse a DATASET_DIR whose replacement would destroy an input: one that is an input
    file or folder (also by a link) or holds one, e.g. ``--output ds`` for ``ds/ann.xml``;
    and one whose folder cannot be written. `inputs`: (option, path) pairs, None skipped."""
    real_output = Path(os.path.realpath(output))
    for name, path in inputs:
        if path is None:
            continue
        if same_file(output, path) or real_output in Path(os.path.realpath(path)).parents:
            raise OutputPathError(
                f"replacing --output {output} would destroy the input {name} {path}; "
                "choose another DATASET_DIR"
            )
    check_writable_dir(output.parent, f"folder of --output {output}")


def _run(args: argparse.Namespace) -> ImportResult:
    check_dataset_output(
        args.output,
        [("INPUT", path) for path in args.inputs]
        + [("--videos", args.videos), ("--labelmap", args.labelmap)],
    )
    options = ImportOptions(
        keyframes_per_sec=args.keyframes_per_sec,
        labelmap=args.labelmap,
        val_videos=tuple(args.val_videos),
        val_fraction=args.val_fraction,
        link=args.link,
        overwrite=args.overwrite,
        strict=args.strict,
        box_units=args.box_units,
        person_label=args.person_label,
        person_attribute=args.person_attribute,
        action_attributes=tuple(args.action_attribute),
    )
    return import_annotations(args.format, args.inputs, args.videos, args.output, options)


def main(argv: list[str] | None = None) -> ImportResult:
    args = _parser().parse_args(argv)
    result = run_tool(lambda: _run(args))
    print(f"wrote {result.output}")
    for line in result.report.lines():
        print(line)
    pairs = zip(result.config_overrides[::2], result.config_overrides[1::2], strict=True)
    print("config overrides for the loader:")
    print("  " + " ".join(f'{k} "{v}"' if "[" in v else f"{k} {v}" for k, v in pairs))
    sys.stdout.flush()
    return result
