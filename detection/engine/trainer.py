"""The training loop: one process, or one of N under torchrun with DistributedDataParallel.

Reproducibility contract (what makes a resumed run equal an uninterrupted one on CPU):
- the learning rate is a function of the fractional epoch (`optim.LRSchedule`);
- at the start of every epoch the Python, NumPy and torch generators are reseeded from
  (RNG_SEED, epoch, rank) and the sampler is told the epoch, so data order and dropout in
  epoch e do not depend on what ran before e; the dataset's augmentation seed is set from
  (RNG_SEED, epoch), so clip i gets the same crop and flip however many ranks or workers run;
- a checkpoint holds model, optimizer (momentum buffers) and AMP scaler state after a whole
  epoch, so resuming replays the interrupted epoch from its beginning.

The loss is MODEL.LOSS_FUNC on the head's logits (`losses.build_loss`: binary cross-entropy,
focal or softmax cross-entropy), averaged over the *global* batch: each rank divides its sum by
the count summed over ranks and multiplies by the world size (DDP averages gradients over
ranks), so N processes with batch B / N take the same steps as one process with batch B even
when ranks hold different numbers of boxes.

Checks at the start of training (`check_training_setup`), before any step is taken:
- the training label map (AVA.LABEL_MAP_FILE) names no action id above MODEL.NUM_CLASSES (the
  head's column i is action id i + 1): else a `TrainingSetupError` naming both; a head with more
  than twice as many columns as the label map has classes is logged as a warning (the unused
  columns are trained as always negative: harmless, but a renumbered map would not need them);
- with the "softmax" loss, every training box has exactly one action (`LabelError` naming the
  first keyframe and box that has not);
- the schedule fits the data (`schedule_warning`): one warning line when the run takes fewer
  than `MIN_TRAIN_STEPS` optimizer steps (iterations per epoch x SOLVER.MAX_EPOCH), when
  warm-up (SOLVER.WARMUP_EPOCHS) takes more than half of them, or when a class of the label map
  has fewer than `MIN_BOXES_PER_CLASS` training boxes. Schedules are written in epochs for a
  dataset of AVA's size (about 3,300 iterations per epoch at batch 64); on a small set the same
  epochs are a few dozen steps, the typical cause of a custom run that ends with mAP 0.0.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode

from detection.ava.labelmap import LabelMap, read_labelmap
from detection.errors import UserError
from detection.utils.device import resolve_device

from . import distributed as du
from .checkpoint_io import last_checkpoint, save_checkpoint, unwrap
from .losses import LabelError, LossFn, build_loss, global_bce_loss
from .metrics_log import MetricsLogger, drop_records_from_epoch, progress
from .optim import LRSchedule, build_optimizer, set_lr
from .precision import InputStager, amp_dtype, autocast, use_channels_last
from .tester import annotation_file, check_evaluation_inputs, evaluate_model

if TYPE_CHECKING:
    from detection.checkpoint import LoadReport

logger = logging.getLogger(__name__)

__all__ = [
    "MIN_BOXES_PER_CLASS",
    "MIN_TRAIN_STEPS",
    "TrainingSetupError",
    "check_labelmap_fits_head",
    "check_training_setup",
    "global_bce_loss",
    "initialize_from_checkpoint",
    "read_train_labelmap",
    "schedule_warning",
    "train",
    "train_epoch",
]

# Fewer optimizer steps than this in a whole run is too short a schedule for the data: the tiny
# synthetic SlowFast (configs/synthetic) reached held-out mAP 0.93 in 140 steps (torchrun, 2
# processes, 160 videos x 6 s) and 0.79 in 42 (the generator's default 16 x 12 s).
MIN_TRAIN_STEPS = 100
# A class with fewer training boxes than this can hardly be learned or measured.
MIN_BOXES_PER_CLASS = 10
# Warn when the head has more than this many columns per class of the label map.
_MAX_COLUMNS_PER_CLASS = 2


class TrainingSetupError(UserError, ValueError):
    """The training data and the config do not fit (e.g. a label map id beyond the head)."""


def derive_seed(seed: int, *streams: int) -> int:
    """A 63-bit seed from `seed` and stream ids (e.g. epoch, rank); SeedSequence mixes them so
    that neighbouring ids give unrelated streams."""
    state = np.random.SeedSequence([seed, *streams]).generate_state(2)
    return (int(state[0]) << 31 | int(state[1]) >> 1) & (2**63 - 1)


def seed_everything(seed: int, *streams: int) -> None:
    """Seed Python, NumPy and torch from `seed` and extra stream ids (e.g. epoch, rank)."""
    value = derive_seed(seed, *streams)
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)


def freeze_batchnorm(model: nn.Module) -> None:
    """Freeze every BatchNorm: running statistics (eval mode) and affine parameters.

    Called before the optimizer and DDP are built so frozen parameters are in neither.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
            for param in module.parameters():
                param.requires_grad_(False)


def set_train_mode(model: nn.Module, freeze_bn: bool) -> None:
    """model.train(), keeping frozen BatchNorms in eval mode."""
    model.train()
    if freeze_bn:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def read_train_labelmap(cfg: CfgNode) -> tuple[Path, LabelMap | None]:
    """AVA.LABEL_MAP_FILE (under the annotation folder) and its contents; None if it does not
    exist (training needs no names; the evaluation reports the missing file itself)."""
    path = annotation_file(cfg, cfg.AVA.LABEL_MAP_FILE)
    return path, read_labelmap(path) if path.is_file() else None


def check_labelmap_fits_head(labelmap: LabelMap, num_classes: int, source: str) -> str:
    """Raise `TrainingSetupError` if `labelmap` has an id above `num_classes` (the head's column
    i scores id i + 1); return a warning ("" if none) when more than half of the head's columns
    name no class of the map."""
    too_big = sorted(i for i in labelmap.ids if i > num_classes)
    if too_big:
        raise TrainingSetupError(
            f"label map {source} has action id {too_big[-1]} (of {len(too_big)} ids above the "
            f"head) but MODEL.NUM_CLASSES is {num_classes}: the head's column i scores id i + 1, "
            f"so set MODEL.NUM_CLASSES to at least {too_big[-1]}"
        )
    if num_classes > _MAX_COLUMNS_PER_CLASS * len(labelmap):
        return (
            f"MODEL.NUM_CLASSES {num_classes} gives the head {num_classes} columns, but label map "
            f"{source} has {len(labelmap)} classes: the {num_classes - len(labelmap)} others are "
            "trained as always negative (renumbering the ids from 1 would make the head smaller)"
        )
    return ""


def schedule_warning(
    cfg: CfgNode,
    iters_per_epoch: int,
    boxes_per_class: Mapping[int, int],
    class_ids: Sequence[int],
) -> str:
    """One line saying how the training set is too small for the config's schedule, "" if not.

    Too small: iters_per_epoch x SOLVER.MAX_EPOCH < `MIN_TRAIN_STEPS`; warm-up
    (SOLVER.WARMUP_EPOCHS x iters_per_epoch steps) longer than half the run; a class of
    `class_ids` with fewer than `MIN_BOXES_PER_CLASS` boxes in `boxes_per_class` (id -> count).
    """
    steps = iters_per_epoch * cfg.SOLVER.MAX_EPOCH
    warmup = cfg.SOLVER.WARMUP_EPOCHS * iters_per_epoch
    reasons = []
    if steps < MIN_TRAIN_STEPS or warmup > steps / 2:
        reasons.append(
            f"{iters_per_epoch} iterations per epoch x {cfg.SOLVER.MAX_EPOCH} epochs "
            f"(SOLVER.MAX_EPOCH) = {steps} steps (at least {MIN_TRAIN_STEPS} expected), "
            f"{warmup:g} of them warm-up (SOLVER.WARMUP_EPOCHS {cfg.SOLVER.WARMUP_EPOCHS:g})"
        )
    rare = [(i, boxes_per_class.get(i, 0)) for i in class_ids]
    rare = [(i, n) for i, n in rare if n < MIN_BOXES_PER_CLASS]
    if rare:
        listed = ", ".join(f"id {i}: {n}" for i, n in rare[:10])
        more = f" and {len(rare) - 10} more" if len(rare) > 10 else ""
        reasons.append(
            f"{len(rare)} of {len(class_ids)} classes have fewer than {MIN_BOXES_PER_CLASS} "
            f"training boxes ({listed}{more})"
        )
    if not reasons:
        return ""
    return (
        "the training set is small for this schedule: "
        + "; ".join(reasons)
        + ": raise SOLVER.MAX_EPOCH, lower TRAIN.BATCH_SIZE or SOLVER.WARMUP_EPOCHS, or add data"
    )


def _check_single_labels(keyframes: Sequence) -> None:
    """Every box of `keyframes` (data.annotations.Keyframe) has exactly one action."""
    bad = [(k, j, a) for k in keyframes for j, a in enumerate(k.labels) if len(a) != 1]
    if bad:
        keyframe, box, actions = bad[0]
        raise LabelError(
            f"MODEL.LOSS_FUNC 'softmax' needs exactly one action per box: training keyframe "
            f"{keyframe.video_id},{keyframe.second} box {box} has {len(actions)} "
            f"({list(actions)}), and {len(bad)} training boxes are like it (use 'bce' or "
            "'focal' for multi-label data)"
        )


def check_training_setup(
    cfg: CfgNode, dataset: torch.utils.data.Dataset, iters_per_epoch: int
) -> None:
    """The start-of-training checks of the module docstring, on the training `dataset`
    (its `keyframes`, when it has them) and the loader's `iters_per_epoch`; no iteration at all
    (a set smaller than one batch) is a `TrainingSetupError`."""
    keyframes = getattr(dataset, "keyframes", None)
    if iters_per_epoch == 0:
        # The loader drops the last incomplete batch, so a set smaller than one batch is empty.
        size = f" ({len(keyframes)} keyframes)" if keyframes is not None else ""
        raise TrainingSetupError(
            f"the training set{size} has no full batch of "
            f"TRAIN.BATCH_SIZE {cfg.TRAIN.BATCH_SIZE} per process x {du.get_world_size()} "
            "processes: lower TRAIN.BATCH_SIZE or check DATA.PATH_TO_DATA_DIR"
        )
    source, labelmap = read_train_labelmap(cfg)
    warnings = []
    if labelmap is not None:
        warnings.append(check_labelmap_fits_head(labelmap, cfg.MODEL.NUM_CLASSES, str(source)))
    else:
        warnings.append(f"label map {source} not found: its ids are not checked against the head")
    if keyframes is not None:
        if cfg.MODEL.LOSS_FUNC == "softmax":
            _check_single_labels(keyframes)
        counts = Counter(a for k in keyframes for actions in k.labels for a in actions)
        ids = labelmap.ids if labelmap is not None else list(range(1, cfg.MODEL.NUM_CLASSES + 1))
        warnings.append(schedule_warning(cfg, iters_per_epoch, counts, ids))
    if du.is_main_process():
        for line in filter(None, warnings):
            logger.warning(line)


def initialize_from_checkpoint(cfg: CfgNode, model: nn.Module) -> LoadReport:
    """Load TRAIN.CHECKPOINT_FILE_PATH into `model` for fine-tuning, not strictly: tensors that
    do not fit keep the model's initialization; a head of another class count is re-initialized,
    or given the checkpoint's rows that TRAIN.CHECKPOINT_CLASS_MAP names."""
    from detection.checkpoint import CheckpointError, load_checkpoint

    pairs = [(int(n), int(o)) for n, o in cfg.TRAIN.CHECKPOINT_CLASS_MAP]
    try:
        return load_checkpoint(cfg.TRAIN.CHECKPOINT_FILE_PATH, model, strict=False, class_map=pairs)
    except CheckpointError as e:
        if pairs and str(e).startswith("class map"):
            raise CheckpointError(f"TRAIN.CHECKPOINT_CLASS_MAP: {e}") from e
        raise


def _load_initial_weights(
    cfg: CfgNode, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler
) -> int:
    """Resume from OUTPUT_DIR's newest checkpoint, or fine-tune from TRAIN.CHECKPOINT_FILE_PATH.

    Returns the first epoch to train (0-based).
    """
    from detection.checkpoint import read_checkpoint

    log = MetricsLogger(cfg.OUTPUT_DIR, tensorboard=False)
    try:
        last = last_checkpoint(cfg.OUTPUT_DIR) if cfg.TRAIN.AUTO_RESUME else None
        if last is not None:
            state = read_checkpoint(str(last))
            missing = [k for k in ("epoch", "model_state", "optimizer_state") if k not in state]
            if missing:
                raise ValueError(f"{last}: not a training checkpoint, missing {missing}")
            model.load_state_dict(state["model_state"])
            optimizer.load_state_dict(state["optimizer_state"])
            if "scaler_state" in state and scaler.is_enabled():
                scaler.load_state_dict(state["scaler_state"])
            start = int(state["epoch"]) + 1
            log.close()
            dropped = drop_records_from_epoch(cfg.OUTPUT_DIR, start)
            log = MetricsLogger(cfg.OUTPUT_DIR, tensorboard=False)
            log.record("resume", checkpoint=str(last), start_epoch=start, dropped=dropped)
            logger.info("resumed from %s, starting at epoch %d", last, start + 1)
            return start
        if cfg.TRAIN.CHECKPOINT_FILE_PATH:
            report = initialize_from_checkpoint(cfg, model)
            log.record(
                "finetune",
                checkpoint=cfg.TRAIN.CHECKPOINT_FILE_PATH,
                loaded=len(report.loaded),
                head=report.head,
                problems=report.problems(),
            )
            logger.info(
                "initialized %d tensors from %s%s",
                len(report.loaded),
                cfg.TRAIN.CHECKPOINT_FILE_PATH,
                f"\n{report.problems()}" if report.problems() else "",
            )
        return 0
    finally:
        log.close()


def train_epoch(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    schedule: LRSchedule,
    epoch: int,
    cfg: CfgNode,
    device: torch.device,
    log: MetricsLogger,
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
    loss_fn: LossFn = global_bce_loss,
) -> float:
    """One pass over `loader` minimizing `loss_fn(logits [K, C], labels [K, C])`; returns the
    mean training loss of the epoch (over ranks)."""
    set_train_mode(model, cfg.BN.FREEZE)
    num_iters = len(loader)
    if num_iters == 0:
        raise TrainingSetupError(
            "the training loader is empty: check DATA.PATH_TO_DATA_DIR and TRAIN.BATCH_SIZE"
        )
    loss_sum = torch.zeros((), device=device)
    stage = InputStager(device, channels_last)
    tic = time.perf_counter()
    for it, batch in enumerate(progress(loader, desc=f"epoch {epoch + 1}", total=num_iters)):
        lr = schedule(epoch + it / num_iters)
        set_lr(optimizer, lr)
        inputs, boxes = stage(batch)
        labels = batch["labels"].to(device, non_blocking=True)
        with autocast(device, dtype):
            logits = model(inputs, boxes)
        loss = loss_fn(logits, labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"loss is {loss.item()} at epoch {epoch + 1}, iteration {it + 1}"
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.SOLVER.CLIP_GRAD_L2NORM > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(unwrap(model).parameters(), cfg.SOLVER.CLIP_GRAD_L2NORM)
        scaler.step(optimizer)
        scaler.update()
        loss_sum += loss.detach()
        if (it + 1) % cfg.LOG_PERIOD == 0 or it + 1 == num_iters:
            step = epoch * num_iters + it + 1
            sec = (time.perf_counter() - tic) / (it + 1)
            value = loss.item()
            log.record(
                "train", epoch=epoch, iter=it + 1, step=step, loss=value, lr=lr, sec_per_iter=sec
            )
            log.scalar("train/loss", value, step)
            log.scalar("train/lr", lr, step)
    # The per-step loss is already the global-batch mean on every rank; average over steps.
    return float(loss_sum.item()) / num_iters


def _configure_determinism(device: torch.device) -> None:
    """Deterministic kernels on CPU (where they cost nothing); cuDNN autotuning on GPU."""
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.benchmark = True


def train(cfg: CfgNode) -> dict | None:
    """Train MODEL.ARCH on DATA.PATH_TO_DATA_DIR's train split, checkpointing into OUTPUT_DIR.

    Evaluates the test split every TRAIN.EVAL_PERIOD epochs and, when TEST.ENABLE, after the
    last epoch (writing OUTPUT_DIR/detections.csv and OUTPUT_DIR/metrics.json).
    Works alone or under torchrun. Returns the last evaluation's
    {"official": {"mAP", "per_class"}, "pyslowfast": {"mAP", "per_class"}}
    (`tester.evaluate_model`), or None.
    """
    device = resolve_device(cfg.DEVICE, set_current=True)
    du.init_distributed(device)
    try:
        result = _train(cfg, device)
    except BaseException:
        # No final barrier: the other ranks may be the ones that failed.
        du.shutdown_distributed(wait_for_others=False)
        raise
    du.shutdown_distributed()
    return result


def _train(cfg: CfgNode, device: torch.device) -> dict | None:
    from detection.data.dataset import build_loader
    from detection.models import build_model

    _configure_determinism(device)
    loss_fn = build_loss(cfg)
    # Data first: a label map or labels that do not fit the config fail before a model is built.
    train_loader = build_loader(cfg, "train", distributed=du.is_distributed(), shuffle=True)
    check_training_setup(cfg, train_loader.dataset, len(train_loader))
    # Evaluation inputs are read now, not after the last epoch: a missing ground-truth file
    # must not cost a whole training run; every evaluation then uses what was read here.
    eval_inputs = None
    if cfg.TEST.ENABLE or cfg.TRAIN.EVAL_PERIOD > 0:
        eval_inputs = check_evaluation_inputs(cfg)
    Path(cfg.OUTPUT_DIR).mkdir(parents=True, exist_ok=True)
    # Same initial weights on every rank and in every run (DDP also broadcasts rank 0's).
    seed_everything(cfg.RNG_SEED)
    model: nn.Module = build_model(cfg).to(device)
    if cfg.BN.FREEZE:
        freeze_batchnorm(model)
    dtype = amp_dtype(cfg, device)
    channels_last = use_channels_last(device, dtype)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    optimizer = build_optimizer(model, cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    start_epoch = _load_initial_weights(cfg, model, optimizer, scaler)
    if du.is_distributed():
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    schedule = LRSchedule.from_config(cfg)
    test_loader = None
    max_epoch = cfg.SOLVER.MAX_EPOCH
    result = None
    log = MetricsLogger(cfg.OUTPUT_DIR)
    try:
        for epoch in range(start_epoch, max_epoch):
            seed_everything(cfg.RNG_SEED, epoch, du.get_rank())
            if hasattr(train_loader.dataset, "augmentation_seed"):
                # Rank-independent: clip i gets the same crop and flip however the data is split.
                train_loader.dataset.augmentation_seed = derive_seed(cfg.RNG_SEED, epoch)
            if hasattr(train_loader.sampler, "set_epoch"):
                train_loader.sampler.set_epoch(epoch)
            tic = time.perf_counter()
            loss = train_epoch(
                model,
                train_loader,
                optimizer,
                scaler,
                schedule,
                epoch,
                cfg,
                device,
                log,
                dtype,
                channels_last,
                loss_fn,
            )
            seconds = time.perf_counter() - tic
            log.record("epoch", epoch=epoch, loss=loss, seconds=seconds)
            logger.info("epoch %d/%d: loss %.4f (%.1f s)", epoch + 1, max_epoch, loss, seconds)
            last = epoch + 1 == max_epoch
            if (epoch + 1) % cfg.TRAIN.CHECKPOINT_PERIOD == 0 or last:
                if du.is_main_process():
                    save_checkpoint(cfg.OUTPUT_DIR, model, optimizer, epoch, cfg, scaler)
                du.barrier()
            periodic = cfg.TRAIN.EVAL_PERIOD > 0 and (epoch + 1) % cfg.TRAIN.EVAL_PERIOD == 0
            if periodic or (last and cfg.TEST.ENABLE):
                if test_loader is None:
                    test_loader = build_loader(
                        cfg, "test", distributed=du.is_distributed(), shuffle=False
                    )
                result = evaluate_model(
                    cfg, unwrap(model), test_loader, device, log, epoch, dtype, eval_inputs
                )
        if result is None and cfg.TEST.ENABLE:
            # Nothing was left to train (a finished run restarted): still report its metrics.
            test_loader = build_loader(cfg, "test", distributed=du.is_distributed(), shuffle=False)
            result = evaluate_model(
                cfg, unwrap(model), test_loader, device, log, max_epoch - 1, dtype, eval_inputs
            )
        log.record("done", epoch=max_epoch - 1)
    finally:
        log.close()
    return result
