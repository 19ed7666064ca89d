"""Training and testing loops, alone or under torchrun; checkpoints; run logs.

`train(cfg)` trains and evaluates; `evaluate_checkpoint(cfg)` tests saved weights. Both write
into cfg.OUTPUT_DIR (see `checkpoint_io`, `metrics_log` and `inference` for the files).
"""

from .tester import evaluate_checkpoint
from .trainer import train

__all__ = ["evaluate_checkpoint", "train"]
