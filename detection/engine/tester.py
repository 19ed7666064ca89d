"""The test loop: score every keyframe box, gather over ranks, write the AVA CSV, run frame-mAP.

Outputs in OUTPUT_DIR (rank 0 only): `detections.csv` (official AVA detections format, one row
per box and action) and `metrics.json`: frame-mAP under both protocols of
`detection.evaluation.frame_map`, ``{"official": {"mAP", "per_class"}, "pyslowfast": {"mAP",
"per_class"}}``, both computed from detections.csv, so that ``tools/eval_ava.py --protocol P``
on that file gives the same numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode

from detection.utils.device import resolve_device

from . import distributed as du
from .checkpoint_io import last_checkpoint
from .metrics_log import MetricsLogger, progress
from .precision import amp_dtype, autocast, prepare_inputs, use_channels_last

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
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    device: torch.device,
    dtype: torch.dtype | None = None,
) -> Predictions:
    """Scores (the model's eval-mode output, sigmoid probabilities) for this rank's share."""
    model.eval()
    channels_last = use_channels_last(device, dtype)
    video_ids: list[str] = []
    timestamps: list[int] = []
    boxes: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for batch in progress(loader, desc="test", total=len(loader)):
        inputs, roi_boxes = prepare_inputs(batch, device, channels_last)
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


def annotation_file(cfg: CfgNode, name: str) -> Path:
    """`name` under DATA.PATH_TO_DATA_DIR/AVA.ANNOTATION_DIR (absolute paths are kept)."""
    path = Path(name)
    if path.is_absolute():
        return path
    return Path(cfg.DATA.PATH_TO_DATA_DIR) / cfg.AVA.ANNOTATION_DIR / path


def evaluate_model(
    cfg: CfgNode,
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    device: torch.device,
    log: MetricsLogger | None = None,
    epoch: int | None = None,
    dtype: torch.dtype | None = None,
) -> dict:
    """Score the test split on every rank, then on rank 0 write the CSV and the metrics.

    Every rank returns the same {protocol: {"mAP": float | None, "per_class": {name: AP}}}
    for the protocols "official" and "pyslowfast" (the layout of metrics.json). Rank 0 also
    logs an "eval" record with both and the TensorBoard scalars eval/mAP_official and
    eval/mAP_pyslowfast.
    """
    from detection.ava.csv_io import write_detections
    from detection.evaluation.frame_map import evaluate_protocols, write_results_json

    local = predict(model, loader, device, dtype)
    gathered = du.all_gather_objects(local)
    summary = None
    if du.is_main_process():
        num_classes = cfg.MODEL.NUM_CLASSES
        preds = Predictions.concatenate(gathered, num_classes).unique_sorted()
        out = Path(cfg.OUTPUT_DIR)
        out.mkdir(parents=True, exist_ok=True)
        write_detections(
            out / DETECTIONS_FILE,
            preds.video_ids,
            preds.timestamps,
            preds.boxes,
            preds.scores,
            list(range(1, num_classes + 1)),
        )
        excluded = annotation_file(cfg, cfg.AVA.EXCLUSION_FILE) if cfg.AVA.EXCLUSION_FILE else None
        results = evaluate_protocols(
            annotation_file(cfg, cfg.AVA.LABEL_MAP_FILE),
            annotation_file(cfg, cfg.AVA.GROUNDTRUTH_FILE),
            out / DETECTIONS_FILE,
            excluded,
        )
        write_results_json(out / METRICS_FILE, results)
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


def weights_to_test(cfg: CfgNode) -> str:
    """TEST.CHECKPOINT_FILE_PATH, else MODEL.WEIGHTS, else the newest checkpoint in OUTPUT_DIR."""
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
    `evaluate_model` returns."""
    from detection.checkpoint import load_checkpoint
    from detection.data.dataset import build_loader
    from detection.models import build_model

    device = resolve_device(cfg.DEVICE, set_current=True)
    du.init_distributed(device)
    try:
        model = build_model(cfg)
        path = weights_to_test(cfg)
        load_checkpoint(path, model, strict=True)
        model = model.to(device)
        dtype = amp_dtype(cfg, device)
        if use_channels_last(device, dtype):
            model = model.to(memory_format=torch.channels_last_3d)
        loader = build_loader(cfg, "test", distributed=du.is_distributed(), shuffle=False)
        log = MetricsLogger(cfg.OUTPUT_DIR, tensorboard=False)
        try:
            log.record("test", checkpoint=path)
            result = evaluate_model(cfg, model, loader, device, log=log, dtype=dtype)
        finally:
            log.close()
    except BaseException:
        du.shutdown_distributed(wait_for_others=False)
        raise
    du.shutdown_distributed()
    return result
