"""Writing an imported dataset in the AVA layout `detection.data` reads, in one step.

Layout (file names are the defaults of the ``AVA.*`` config keys, so only the keyframe window,
the time offset and the class count need overrides; `DatasetLayout.config_overrides`)::

    DATASET_DIR/
      videos/{video_id}.mp4                 copies of (or, with link, symlinks to) the videos
      annotations/
        ava_train_v2.2.csv                  ground truth video,second,x1,y1,x2,y2,action,person
        ava_val_v2.2.csv                    (AVA.TRAIN_GT_BOX_LISTS / AVA.GROUNDTRUTH_FILE)
        ava_val_groundtruth_boxes.csv       the val boxes as proposals: video,second,x1..y2,,1.0
        ava_action_list_v2.2_for_activitynet_2019.pbtxt     item { name: "..." id: N }
        ava_{train,val}_excluded_timestamps_v2.2.csv        empty: nothing is excluded
      video_list.csv                        video_id,split,file,fps,width,height,duration_s
      dataset.json                          how it was made: offset 0, keyframe rule, overrides
      README.md

The whole folder is written under a temporary name beside DATASET_DIR and renamed into place,
so a reader never sees half a dataset (an existing DATASET_DIR is replaced only with
`overwrite`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from detection.ava.dataset_files import (
    GroundTruthBox,
    write_groundtruth,
    write_labelmap,
    write_person_boxes,
)

from .common import ImportAnnotationError, VideoInfo
from .keyframes import KeyframeBox

TRAIN_GT = "ava_train_v2.2.csv"
VAL_GT = "ava_val_v2.2.csv"
VAL_BOXES = "ava_val_groundtruth_boxes.csv"
LABEL_MAP = "ava_action_list_v2.2_for_activitynet_2019.pbtxt"
EXCLUDED = "ava_{split}_excluded_timestamps_v2.2.csv"
SPLITS = ("train", "val")


def _groundtruth_boxes(
    boxes: Sequence[KeyframeBox], action_ids: dict[str, int]
) -> list[GroundTruthBox]:
    """The keyframe boxes with their action names mapped to ids."""
    return [
        GroundTruthBox(
            b.video_id, b.second, b.box, tuple(action_ids[a] for a in b.actions), b.person_id
        )
        for b in boxes
    ]


def write_dataset(
    output: str | Path,
    *,
    boxes: Sequence[KeyframeBox],
    videos: Sequence[VideoInfo],
    splits: dict[str, str],
    labelmap: dict[int, str],
    action_ids: dict[str, int],
    metadata: dict,
    readme: str,
    link: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write the layout of the module docstring to `output` atomically; returns `output`.

    `splits` maps every video id to "train" or "val"; `metadata` is written as dataset.json."""
    output = Path(output)
    if output.exists() and not overwrite:
        raise ImportAnnotationError(f"--output {output} exists; pass --overwrite to replace it")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp"))
    try:
        _write_tree(tmp, boxes, videos, splits, labelmap, action_ids, metadata, readme, link)
        _swap_into_place(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output


def _write_tree(
    root: Path,
    boxes: Sequence[KeyframeBox],
    videos: Sequence[VideoInfo],
    splits: dict[str, str],
    labelmap: dict[int, str],
    action_ids: dict[str, int],
    metadata: dict,
    readme: str,
    link: bool,
) -> None:
    annotations = root / "annotations"
    video_dir = root / "videos"
    annotations.mkdir()
    video_dir.mkdir()
    by_split = {
        s: _groundtruth_boxes([b for b in boxes if splits[b.video_id] == s], action_ids)
        for s in SPLITS
    }
    write_groundtruth(annotations / TRAIN_GT, by_split["train"])
    write_groundtruth(annotations / VAL_GT, by_split["val"])
    write_person_boxes(annotations / VAL_BOXES, by_split["val"])
    write_labelmap(annotations / LABEL_MAP, labelmap)
    for split in SPLITS:
        (annotations / EXCLUDED.format(split=split)).write_text("")
    rows = ["video_id,split,file,fps,width,height,duration_s"]
    for video in videos:
        target = video_dir / f"{video.video_id}{video.path.suffix.lower()}"
        if link:
            target.symlink_to(video.path.resolve())
        else:
            shutil.copy2(video.path, target)
        rows.append(
            f"{video.video_id},{splits[video.video_id]},videos/{target.name},{video.fps:g},"
            f"{video.width},{video.height},{video.duration_s:.3f}"
        )
    (root / "video_list.csv").write_text("\n".join(rows) + "\n")
    (root / "dataset.json").write_text(json.dumps(metadata, indent=2) + "\n")
    (root / "README.md").write_text(readme)


def _swap_into_place(tmp: Path, output: Path) -> None:
    """Rename `tmp` to `output`; an existing `output` is first renamed aside, then removed."""
    old = None
    if output.exists() or output.is_symlink():
        old = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.", suffix=".old"))
        os.rmdir(old)
        os.replace(output, old)
    try:
        os.replace(tmp, output)
    except BaseException:
        if old is not None:
            os.replace(old, output)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink()
