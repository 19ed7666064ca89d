"""SGD with PySlowFast's parameter groups and learning-rate schedule.

The learning rate is a pure function of the (fractional) epoch, so a resumed run computes the
same rate at the same step as an uninterrupted one without storing any scheduler state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from yacs.config import CfgNode

_NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


@dataclass(frozen=True)
class LRSchedule:
    """Linear warm-up, then cosine decay or piecewise-constant steps (PySlowFast semantics).

    Attributes:
        base_lr: peak learning rate.
        policy: "cosine" or "steps_with_relative_lrs".
        max_epoch: length of the schedule in epochs.
        warmup_epochs: epochs of linear warm-up (fractional allowed, 0 = none).
        warmup_start_lr: rate at epoch 0 when warming up.
        cosine_end_lr: rate reached at `max_epoch` by the cosine policy.
        cosine_after_warmup: start the cosine at the end of warm-up instead of at epoch 0.
        steps: epochs at which the step policy moves to the next entry of `lrs`
            (PySlowFast writes them starting with 0, e.g. [0, 10, 15, 20]).
        lrs: rates relative to `base_lr`, one per entry of `steps`.
    """

    base_lr: float
    policy: str = "cosine"
    max_epoch: float = 1.0
    warmup_epochs: float = 0.0
    warmup_start_lr: float = 0.0
    cosine_end_lr: float = 0.0
    cosine_after_warmup: bool = False
    steps: Sequence[float] = ()
    lrs: Sequence[float] = ()

    def __post_init__(self) -> None:
        if self.policy not in ("cosine", "steps_with_relative_lrs"):
            raise ValueError(
                "SOLVER.LR_POLICY: expected 'cosine' or 'steps_with_relative_lrs', "
                f"got {self.policy!r}"
            )
        if self.max_epoch <= 0:
            raise ValueError(f"SOLVER.MAX_EPOCH must be positive, got {self.max_epoch}")
        if self.policy == "steps_with_relative_lrs":
            if not self.steps or len(self.steps) != len(self.lrs):
                raise ValueError(
                    "SOLVER.STEPS and SOLVER.LRS must be non-empty and of equal length for "
                    f"steps_with_relative_lrs, got STEPS={list(self.steps)} LRS={list(self.lrs)}"
                )
            if list(self.steps) != sorted(self.steps) or self.steps[0] != 0:
                raise ValueError(
                    f"SOLVER.STEPS must be increasing and start at 0, got {list(self.steps)}"
                )
        elif self.cosine_end_lr > self.base_lr:
            raise ValueError(
                f"SOLVER.COSINE_END_LR ({self.cosine_end_lr}) exceeds "
                f"SOLVER.BASE_LR ({self.base_lr})"
            )

    @classmethod
    def from_config(cls, cfg: CfgNode) -> LRSchedule:
        s = cfg.SOLVER
        return cls(
            base_lr=s.BASE_LR,
            policy=s.LR_POLICY,
            max_epoch=s.MAX_EPOCH,
            warmup_epochs=s.WARMUP_EPOCHS,
            warmup_start_lr=s.WARMUP_START_LR,
            cosine_end_lr=s.COSINE_END_LR,
            cosine_after_warmup=s.COSINE_AFTER_WARMUP,
            steps=tuple(s.STEPS),
            lrs=tuple(s.LRS),
        )

    def _policy_lr(self, epoch: float) -> float:
        if self.policy == "cosine":
            offset = self.warmup_epochs if self.cosine_after_warmup else 0.0
            progress = (epoch - offset) / (self.max_epoch - offset)
            return self.cosine_end_lr + (self.base_lr - self.cosine_end_lr) * 0.5 * (
                1.0 + math.cos(math.pi * progress)
            )
        index = sum(1 for step in self.steps if step <= epoch) - 1
        return self.base_lr * self.lrs[max(index, 0)]

    def __call__(self, epoch: float) -> float:
        """Learning rate at fractional `epoch` (e.g. 2.5 = half-way through the third epoch)."""
        if epoch < self.warmup_epochs:
            # Straight line from the start rate to where the policy is when warm-up ends.
            end = self._policy_lr(self.warmup_epochs)
            return self.warmup_start_lr + (end - self.warmup_start_lr) * epoch / self.warmup_epochs
        return self._policy_lr(epoch)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Give every parameter group the rate `lr`."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def parameter_groups(model: nn.Module, weight_decay: float, norm_weight_decay: float) -> list[dict]:
    """Split trainable parameters into normalization-layer parameters and the rest.

    Normalization layers get their own decay (BN.WEIGHT_DECAY, 0 in the AVA recipe) because
    decaying a BN scale towards zero shrinks activations rather than regularizing weights.
    Frozen parameters (requires_grad False) are left out.
    """
    norm_params: list[nn.Parameter] = []
    other_params: list[nn.Parameter] = []
    for module in model.modules():
        is_norm = isinstance(module, _NORM_TYPES)
        for param in module.parameters(recurse=False):
            if param.requires_grad:
                (norm_params if is_norm else other_params).append(param)
    groups = [
        {"params": other_params, "weight_decay": weight_decay},
        {"params": norm_params, "weight_decay": norm_weight_decay},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: CfgNode) -> torch.optim.Optimizer:
    """SGD (momentum, optional Nesterov) over `parameter_groups`; the rate is set per step."""
    s = cfg.SOLVER
    if s.OPTIMIZING_METHOD != "sgd":
        raise ValueError(
            f"SOLVER.OPTIMIZING_METHOD: only 'sgd' is supported, got {s.OPTIMIZING_METHOD!r}"
        )
    groups = parameter_groups(model, s.WEIGHT_DECAY, cfg.BN.WEIGHT_DECAY)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return torch.optim.SGD(
        groups,
        lr=LRSchedule.from_config(cfg)(0.0),
        momentum=s.MOMENTUM,
        nesterov=s.NESTEROV and s.MOMENTUM > 0,
    )
