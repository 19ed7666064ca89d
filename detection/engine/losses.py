"""Training losses on the RoI head's logits, normalized by the *global* batch (MODEL.LOSS_FUNC).

Every loss takes logits [K, C] (the head in training mode: no activation) and multi-hot labels
[K, C] (column c = action id c + 1, as the dataset writes them) and returns a scalar:

- "bce": sigmoid binary cross-entropy, mean over the K * C entries (multi-label, AVA);
- "focal": sigmoid focal loss (`torchvision.ops.sigmoid_focal_loss`, MODEL.FOCAL_ALPHA and
  MODEL.FOCAL_GAMMA), mean over the K * C entries like "bce", which it equals with alpha -1 and
  gamma 0;
- "softmax": cross-entropy over the C classes, mean over the K boxes; every box must carry
  exactly one label (mutually exclusive classes), else `LabelError` naming the box.

"Global batch": each process divides its sum by the count (entries or boxes) summed over all
processes and multiplies by the world size, so that after DistributedDataParallel averages the
gradients, N processes with B clips each take the same step as one process with N x B clips,
even when the processes hold different numbers of boxes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss
from yacs.config import CfgNode

from detection.errors import UserError

from . import distributed as du

LOSSES = ("bce", "softmax", "focal")

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class LabelError(UserError, ValueError):
    """Labels that the configured loss cannot use (e.g. a box with two labels under softmax)."""


def _global_mean(total: torch.Tensor, count: int, device: torch.device) -> torch.Tensor:
    """`total` (this process's sum over `count` items) divided by the global count, times the
    world size (DDP's gradient averaging divides by it again)."""
    local = torch.tensor([float(count)], device=device)
    global_count = du.all_reduce_sum(local).clamp_min(1.0)
    return total * du.get_world_size() / global_count[0]


def global_bce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits for [K, C] logits and multi-hot labels, normalized by the global batch.

    Equals the mean over all K*C entries of the global batch after DDP's gradient averaging.
    """
    total = F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="sum")
    return _global_mean(total, labels.numel(), logits.device)


def global_focal_loss(
    logits: torch.Tensor, labels: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Sigmoid focal loss for [K, C] logits and multi-hot labels: per entry
    ``-alpha_t (1 - p_t)^gamma log(p_t)`` (alpha < 0: no alpha weighting), averaged over the
    K*C entries of the global batch like `global_bce_loss`."""
    total = sigmoid_focal_loss(
        logits.float(), labels.float(), alpha=alpha, gamma=gamma, reduction="sum"
    )
    return _global_mean(total, labels.numel(), logits.device)


def single_label_targets(labels: torch.Tensor) -> torch.Tensor:
    """Class indices int64 [K] of multi-hot labels [K, C] that have exactly one 1 per row.

    A row with no label (a negative box) or several is a `LabelError` naming the row and its
    action ids (column c = id c + 1).
    """
    counts = (labels > 0).sum(dim=1)
    bad = torch.nonzero(counts != 1).flatten()
    if bad.numel():
        row = int(bad[0])
        ids = [int(c) + 1 for c in torch.nonzero(labels[row] > 0).flatten()]
        raise LabelError(
            f"MODEL.LOSS_FUNC 'softmax' needs exactly one action per box; box {row} of the batch "
            f"has {len(ids)} ({ids}), and {bad.numel()} boxes of the batch are like it"
        )
    return labels.argmax(dim=1)


def global_softmax_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for [K, C] logits of mutually exclusive classes, one-hot labels [K, C]
    (anything else: `LabelError`), averaged over the K boxes of the global batch."""
    targets = single_label_targets(labels)
    total = F.cross_entropy(logits.float(), targets, reduction="sum")
    return _global_mean(total, labels.shape[0], logits.device)


def build_loss(cfg: CfgNode) -> LossFn:
    """The loss of MODEL.LOSS_FUNC (one of `LOSSES`) as ``loss(logits, labels) -> scalar``."""
    name = cfg.MODEL.LOSS_FUNC
    if name == "bce":
        return global_bce_loss
    if name == "softmax":
        return global_softmax_loss
    if name == "focal":
        alpha, gamma = float(cfg.MODEL.FOCAL_ALPHA), float(cfg.MODEL.FOCAL_GAMMA)
        return lambda logits, labels: global_focal_loss(logits, labels, alpha, gamma)
    raise ValueError(f"MODEL.LOSS_FUNC must be one of {LOSSES}, got {name!r}")
