"""The test loop: score every keyframe box, gather over ranks, write the AVA CSV, run frame-mAP.

Outputs in OUTPUT_DIR (rank 0 only): `detections.csv` (official AVA detections format, one row
per box and evaluated action: the label map's ids in ascending order, as PySlowFast writes them;
the head's other columns are not written) and `metrics.json`: frame-mAP under both protocols of
`detection.evaluation.frame_map`, ``{"official": {"mAP", "per_class"}, "pyslowfast": {"mAP",
"per_class"}}`` (per_class keyed by class name, unique in a label map), both computed from
detections.csv, so that ``tools/eval_ava.py --protocol P`` on that file gives the same numbers.

The two files are one result set. The label map, ground truth and excluded timestamps are read
and checked (`check_evaluation_inputs`) before the model runs, so a bad input costs no
inference and leaves the previous set alone; both files are then written as hidden
temporaries (named as `detection.utils.atomic` names them) and renamed into place at the end,
old metrics.json first removed, so that a run killed at any point leaves either the old pair,
the new pair, or new detections without metrics, never new detections beside old metrics.
Temporaries left by killed runs are removed at the start of the next run.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn
from yacs.config import CfgNode

from detection.ava.csv_io import read_ava_csv, read_excluded_timestamps, write_detections
from detection.ava.labelmap import LabelMap, read_labelmap
from detection.errors import UserError
from detection.evaluation.frame_map import (
    check_groundtruth,
    evaluate_protocols,
    write_results_json,
)
from detection.utils.device import resolve_device

from . import distributed as du
from .checkpoint_io import last_checkpoint
from .metrics_log import MetricsLogger, progress
from .precision import InputStager, amp_dtype, autocast, use_channels_last

if TYPE_CHECKING:
    from .predictor import ActionModel

logger = logging.getLogger(__name__)

DETECTIONS_FILE = "detections.csv"
METRICS_FILE = "metrics.json"


@dataclass
class Predictions:
    """Scores of K boxes.

    Attributes:
        video_ids: K video ids.
        timestamps: K keyframe seconds.
        boxes: [K, 4] float (x1, y1, x2, y2) normalized to [0, 1] in the original frame.
        scores: [K, C] float, class c = action id c + 1.
    """

    video_ids: list[str]
    timestamps: list[int]
    boxes: np.ndarray
    scores: np.ndarray

    @staticmethod
    def concatenate(parts: list[Predictions], num_classes: int) -> Predictions:
        return Predictions(
            video_ids=[v for p in parts for v in p.video_ids],
            timestamps=[t for p in parts for t in p.timestamps],
            boxes=np.concatenate([p.boxes for p in parts])
            if parts
            else np.zeros((0, 4), np.float32),
            scores=(
                np.concatenate([p.scores for p in parts])
                if parts
                else np.zeros((0, num_classes), np.float32)
            ),
        )

    def unique_sorted(self) -> Predictions:
        """One row per (video, timestamp, box), sorted by them.

        A DistributedSampler pads the last shard with repeated samples, so after gathering a
        keyframe can appear twice with identical scores; the copy would count as a false
        positive. Sorting makes the CSV independent of how samples were split over ranks.
        """
        seen: dict[tuple, int] = {}
        for i, key in enumerate(
            zip(
                self.video_ids,
                self.timestamps,
                map(tuple, np.round(self.boxes, 4).tolist()),
                strict=True,
            )
        ):
            seen.setdefault(key, i)
        order = [i for _, i in sorted(seen.items())]
        return Predictions(
            video_ids=[self.video_ids[i] for i in order],
            timestamps=[self.timestamps[i] for i in order],
            boxes=self.boxes[order],
            scores=self.scores[order],
        )


@torch.no_grad()
def predict(
    model: ActionModel,
    loader: torch.utils.data.DataLoader,
    device: torch.device,
    dtype: torch.dtype | None = None,
) -> Predictions:
    """Scores (the model's eval-mode output, sigmoid probabilities) for this rank's share.
    `model` is a module (put in eval mode) or an exported runtime (`detection.export`)."""
    if isinstance(model, nn.Module):
        model.eval()
    stage = InputStager(device, use_channels_last(device, dtype))
    video_ids: list[str] = []
    timestamps: list[int] = []
    boxes: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for batch in progress(loader, desc="test", total=len(loader)):
        inputs, roi_boxes = stage(batch)
        with autocast(device, dtype):
            out = model(inputs, roi_boxes)
        scores.append(out.float().cpu().numpy())
        boxes.append(batch["boxes_norm"].float().cpu().numpy())
        for video_id, timestamp in batch["metadata"]:
            video_ids.append(str(video_id))
            timestamps.append(int(timestamp))
    num_classes = scores[0].shape[1] if scores else 0
    return Predictions(
        video_ids,
        timestamps,
        np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32),
        np.concatenate(scores) if scores else np.zeros((0, num_classes), np.float32),
    )


class EvaluationInputError(UserError, ValueError):
    """The evaluation inputs do not fit the model; the message names the file and the key."""


@dataclass(frozen=True)
class EvaluationInputs:
    """What the test split is scored against, read and checked once.

    Attributes:
        labelmap: the evaluated classes (AVA.LABEL_MAP_FILE), every id within the model's
            1..MODEL.NUM_CLASSES.
        groundtruth: AVA.GROUNDTRUTH_FILE as ``read_ava_csv(kind="groundtruth")`` gives it (with
            the reference evaluators' box rules, as `evaluate_protocols` reads it).
        excluded: (video_id, timestamp) pairs of AVA.EXCLUSION_FILE (empty when unset).
    """

    labelmap: LabelMap
    groundtruth: pd.DataFrame
    excluded: frozenset[tuple[str, int]]


def check_evaluation_inputs(cfg: CfgNode) -> EvaluationInputs:
    """Read and check the label map, ground truth and excluded timestamps of `cfg`.

    Raises a `UserError` naming the file: unreadable or malformed files, a label-map id above
    MODEL.NUM_CLASSES (the model has no score for it; e.g. the 80-class map with a 5-class
    model), or nothing left to evaluate (`frame_map.EvaluationError`). Meant to run before any
    inference or training, so such a mistake costs nothing.
    """
    labelmap_path = annotation_file(cfg, cfg.AVA.LABEL_MAP_FILE)
    labelmap = read_labelmap(labelmap_path)
    num_classes = cfg.MODEL.NUM_CLASSES
    beyond = [i for i in labelmap.ids if i > num_classes]
    if beyond:
        raise EvaluationInputError(
            f"{labelmap_path} (AVA.LABEL_MAP_FILE): action id {beyond[0]} "
            f"({labelmap.names[beyond[0]]!r}) is above MODEL.NUM_CLASSES = {num_classes}, and "
            f"the model scores only ids 1..{num_classes} ({len(beyond)} of its {len(labelmap)} "
            "classes are beyond); use the label map of the model's classes"
        )
    groundtruth_path = annotation_file(cfg, cfg.AVA.GROUNDTRUTH_FILE)
    groundtruth = read_ava_csv(groundtruth_path, kind="groundtruth", box_check="official")
    excluded: frozenset[tuple[str, int]] = frozenset()
    if cfg.AVA.EXCLUSION_FILE:
        excluded = frozenset(read_excluded_timestamps(annotation_file(cfg, cfg.AVA.EXCLUSION_FILE)))
    check_groundtruth(labelmap, groundtruth, excluded, source=str(groundtruth_path))
    return EvaluationInputs(labelmap, groundtruth, excluded)


def annotation_file(cfg: CfgNode, name: str) -> Path:
    """`name` under DATA.PATH_TO_DATA_DIR/AVA.ANNOTATION_DIR (absolute paths are kept)."""
    path = Path(name)
    if path.is_absolute():
        return path
    return Path(cfg.DATA.PATH_TO_DATA_DIR) / cfg.AVA.ANNOTATION_DIR / path


def evaluate_model(
    cfg: CfgNode,
    model: ActionModel,
    loader: torch.utils.data.DataLoader,
    device: torch.device,
    log: MetricsLogger | None = None,
    epoch: int | None = None,
    dtype: torch.dtype | None = None,
    inputs: EvaluationInputs | None = None,
) -> dict:
    """Score the test split on every rank, then on rank 0 write the CSV and the metrics.

    Every rank returns the same {protocol: {"mAP": float, "per_class": {name: AP}}} for the
    protocols "official" and "pyslowfast" (the layout of metrics.json). Rank 0 also logs an
    "eval" record with both and the TensorBoard scalars eval/mAP_official and
    eval/mAP_pyslowfast. The evaluation inputs are checked first, on every rank (so that all
    ranks stop together), before any inference, unless the caller passes the `inputs` it has
    just checked; see the module docstring for how the two files are written.
    """
    if inputs is None:
        inputs = check_evaluation_inputs(cfg)
    out = Path(cfg.OUTPUT_DIR)
    if du.is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out)
    local = predict(model, loader, device, dtype)
    gathered = du.all_gather_objects(local)
    summary = None
    if du.is_main_process():
        num_classes = cfg.MODEL.NUM_CLASSES
        preds = Predictions.concatenate(gathered, num_classes).unique_sorted()
        detections, metrics = _temporary(out, DETECTIONS_FILE), _temporary(out, METRICS_FILE)
        evaluated_ids = sorted(inputs.labelmap.ids)
        try:
            write_detections(
                detections,
                preds.video_ids,
                preds.timestamps,
                preds.boxes,
                preds.scores[:, np.asarray(evaluated_ids) - 1],
                evaluated_ids,
            )
            results = evaluate_protocols(
                inputs.labelmap, inputs.groundtruth, detections, inputs.excluded
            )
            write_results_json(metrics, results)
            replace_together([(detections, out / DETECTIONS_FILE), (metrics, out / METRICS_FILE)])
        finally:
            for path in (detections, metrics):
                path.unlink(missing_ok=True)
        summary = {name: r.summary() for name, r in results.items()}
        logger.info(
            "frame-mAP on %d boxes: %s",
            len(preds.video_ids),
            ", ".join(f"{r.mAP:.4f} ({name} protocol)" for name, r in results.items()),
        )
        if log is not None:
            log.record("eval", epoch=epoch, **summary)
            if epoch is not None:
                for name, r in results.items():
                    log.scalar(f"eval/mAP_{name}", r.mAP, epoch + 1)
    return du.broadcast_object(summary)


def _temporary(folder: Path, name: str) -> Path:
    """A new empty hidden file beside `folder / name`, named as `atomic_write` names its
    temporaries (``.{name}.XXXX.tmp``), so that `remove_stale_temporaries` knows it."""
    fd, path = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    os.close(fd)
    return Path(path)


def replace_together(moves: list[tuple[Path, Path]]) -> None:
    """Rename each (temporary, final) pair, as one result set: every final file is removed
    first, then the temporaries renamed in order, so that an interruption leaves a subset of
    the new files and none of the old ones (each rename is atomic; the set is not). Put the file
    that describes the others (metrics.json) last."""
    for _, final in moves:
        final.unlink(missing_ok=True)
    for temporary, final in moves:
        os.replace(temporary, final)


def remove_stale_temporaries(
    folder: Path, names: tuple[str, ...] = (DETECTIONS_FILE, METRICS_FILE)
) -> list[Path]:
    """Remove the hidden temporaries of `names` in `folder` that killed runs left (``.NAME.*.tmp``,
    and the atomic writer's own temporaries of those, ``..NAME.*.tmp``); returns them. Two runs
    must not share an OUTPUT_DIR at the same time (each would remove the other's)."""
    pattern = re.compile(r"\.\.?(?:" + "|".join(re.escape(n) for n in names) + r")\..+\.tmp")
    stale = [p for p in folder.iterdir() if pattern.fullmatch(p.name) and p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        logger.info("removed %d temporaries left by an interrupted run in %s", len(stale), folder)
    return stale


def weights_to_test(cfg: CfgNode) -> str:
    """MODEL.EXPORT_FILE when an exported runtime runs it (MODEL.RUNTIME not "torch"), else
    TEST.CHECKPOINT_FILE_PATH, else MODEL.WEIGHTS, else the newest checkpoint in OUTPUT_DIR."""
    if cfg.MODEL.RUNTIME != "torch" and cfg.MODEL.EXPORT_FILE:
        return cfg.MODEL.EXPORT_FILE
    for key in ("TEST.CHECKPOINT_FILE_PATH", "MODEL.WEIGHTS"):
        section, name = key.split(".")
        if cfg[section][name]:
            return cfg[section][name]
    last = last_checkpoint(cfg.OUTPUT_DIR)
    if last is None:
        raise FileNotFoundError(
            "no weights to test: set TEST.CHECKPOINT_FILE_PATH or MODEL.WEIGHTS, or point "
            f"OUTPUT_DIR at a training run (nothing in {Path(cfg.OUTPUT_DIR) / 'checkpoints'})"
        )
    return str(last)


def evaluate_checkpoint(cfg: CfgNode) -> dict:
    """Load the weights (see `weights_to_test`) and evaluate the test split; alone or under
    torchrun. Writes OUTPUT_DIR/detections.csv and OUTPUT_DIR/metrics.json; returns what
    `evaluate_model` returns. MODEL.RUNTIME other than "torch" scores with the export of those
    weights (or MODEL.EXPORT_FILE) on the CPU (`detection.export.runtime_from_config`).

    The label map, ground truth and exclusions are read and checked first, before the model is
    built or anything is written."""
    from detection.data.dataset import build_loader
    from detection.export.runtime import check_runtime

    exported = check_runtime(cfg.MODEL.RUNTIME) != "torch"
    if exported and cfg.DEVICE == "cuda":
        raise EvaluationInputError(
            f"MODEL.RUNTIME {cfg.MODEL.RUNTIME} runs on the CPU, but DEVICE is 'cuda': use "
            "MODEL.RUNTIME torch on a GPU, or DEVICE cpu"
        )
    inputs = check_evaluation_inputs(cfg)
    device = torch.device("cpu") if exported else resolve_device(cfg.DEVICE, set_current=True)
    du.init_distributed(device)
    try:
        model, path = _load_for_test(cfg, device)
        dtype = None if exported else amp_dtype(cfg, device)
        if isinstance(model, nn.Module) and use_channels_last(device, dtype):
            model = model.to(memory_format=torch.channels_last_3d)
        loader = build_loader(cfg, "test", distributed=du.is_distributed(), shuffle=False)
        log = MetricsLogger(cfg.OUTPUT_DIR, tensorboard=False)
        try:
            log.record("test", checkpoint=path)
            result = evaluate_model(cfg, model, loader, device, log=log, dtype=dtype, inputs=inputs)
        finally:
            log.close()
    except BaseException:
        du.shutdown_distributed(wait_for_others=False)
        raise
    du.shutdown_distributed()
    return result


def _load_for_test(cfg: CfgNode, device: torch.device) -> tuple[ActionModel, str]:
    """The model to test and where its weights come from (see `evaluate_checkpoint`)."""
    path = weights_to_test(cfg)
    if cfg.MODEL.RUNTIME != "torch":
        from detection.export import runtime_from_config

        return runtime_from_config(cfg, path, torch.get_num_threads()), path
    from detection.checkpoint import load_checkpoint
    from detection.models import build_model

    model = build_model(cfg)
    load_checkpoint(path, model, strict=True)
    return model.to(device), path
