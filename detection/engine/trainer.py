"""The training loop: one process, or one of N under torchrun with DistributedDataParallel.

Reproducibility contract (what makes a resumed run equal an uninterrupted one on CPU):
- the learning rate is a function of the fractional epoch (`optim.LRSchedule`);
- at the start of every epoch the Python, NumPy and torch generators are reseeded from
  (RNG_SEED, epoch, rank) and the sampler is told the epoch, so data order and dropout in
  epoch e do not depend on what ran before e; the dataset's augmentation seed is set from
  (RNG_SEED, epoch), so clip i gets the same crop and flip however many ranks or workers run;
- a checkpoint holds model, optimizer (momentum buffers) and AMP scaler state after a whole
  epoch, so resuming replays the interrupted epoch from its beginning.

The loss is binary cross-entropy on the head's logits, averaged over all boxes and classes of
the *global* batch: each rank divides its sum by the box count summed over ranks and multiplies
by the world size (DDP averages gradients over ranks), so N processes with batch B / N take the
same steps as one process with batch B even when ranks hold different numbers of boxes.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode

from detection.utils.device import resolve_device

from . import distributed as du
from .checkpoint_io import last_checkpoint, save_checkpoint, unwrap
from .metrics_log import MetricsLogger, progress
from .optim import LRSchedule, build_optimizer, set_lr
from .precision import amp_dtype, autocast, prepare_inputs, use_channels_last
from .tester import evaluate_model

logger = logging.getLogger(__name__)


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


def global_bce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits for [K, C] logits and multi-hot labels, normalized by the global batch.

    Equals the mean over all K*C entries of the global batch after DDP's gradient averaging.
    """
    total = F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="sum")
    count = torch.tensor([float(labels.numel())], device=logits.device)
    global_count = du.all_reduce_sum(count).clamp_min(1.0)
    return total * du.get_world_size() / global_count[0]


def _load_initial_weights(
    cfg: CfgNode, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler
) -> int:
    """Resume from OUTPUT_DIR's newest checkpoint, or fine-tune from TRAIN.CHECKPOINT_FILE_PATH.

    Returns the first epoch to train (0-based).
    """
    from detection.checkpoint import load_checkpoint, read_checkpoint

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
            log.record("resume", checkpoint=str(last), start_epoch=start)
            logger.info("resumed from %s, starting at epoch %d", last, start + 1)
            return start
        if cfg.TRAIN.CHECKPOINT_FILE_PATH:
            # Not strict: a Kinetics or 80-class AVA head may not fit this model's classes;
            # whatever does not fit keeps its random initialization and is reported.
            report = load_checkpoint(cfg.TRAIN.CHECKPOINT_FILE_PATH, model, strict=False)
            log.record(
                "finetune",
                checkpoint=cfg.TRAIN.CHECKPOINT_FILE_PATH,
                loaded=len(report.loaded),
                problems=report.problems(),
            )
            logger.info(
                "initialized %d tensors from %s%s",
                len(report.loaded),
                cfg.TRAIN.CHECKPOINT_FILE_PATH,
                f"\n{report.problems()}" if not report.ok else "",
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
) -> float:
    """One pass over `loader`; returns the mean training loss of the epoch (over ranks)."""
    set_train_mode(model, cfg.BN.FREEZE)
    num_iters = len(loader)
    if num_iters == 0:
        raise RuntimeError(
            "the training loader is empty: check DATA.PATH_TO_DATA_DIR and TRAIN.BATCH_SIZE"
        )
    loss_sum = torch.zeros((), device=device)
    tic = time.perf_counter()
    for it, batch in enumerate(progress(loader, desc=f"epoch {epoch + 1}", total=num_iters)):
        lr = schedule(epoch + it / num_iters)
        set_lr(optimizer, lr)
        inputs, boxes = prepare_inputs(batch, device, channels_last)
        labels = batch["labels"].to(device, non_blocking=True)
        with autocast(device, dtype):
            logits = model(inputs, boxes)
        loss = global_bce_loss(logits, labels)
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
    train_loader = build_loader(cfg, "train", distributed=du.is_distributed(), shuffle=True)
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
                result = evaluate_model(cfg, unwrap(model), test_loader, device, log, epoch, dtype)
        if result is None and cfg.TEST.ENABLE:
            # Nothing was left to train (a finished run restarted): still report its metrics.
            test_loader = build_loader(cfg, "test", distributed=du.is_distributed(), shuffle=False)
            result = evaluate_model(
                cfg, unwrap(model), test_loader, device, log, max_epoch - 1, dtype
            )
        log.record("done", epoch=max_epoch - 1)
    finally:
        log.close()
    return result
