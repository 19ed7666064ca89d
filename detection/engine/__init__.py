"""Training and testing loops, alone or under torchrun; checkpoints; run logs; the action
predictor and the demo loop.

`train(cfg)` trains and evaluates; `evaluate_checkpoint(cfg)` tests saved weights. Both write
into cfg.OUTPUT_DIR (see `checkpoint_io`, `metrics_log` and `inference` for the files).
`ActionPredictor` loads the action model, person detector and label map once and scores clips
(`predictor`); `demo.run_demo` runs it over a video.
"""

from .predictor import ActionPredictor, ClipFormat, ClipPrediction
from .tester import evaluate_checkpoint
from .trainer import train

__all__ = ["ActionPredictor", "ClipFormat", "ClipPrediction", "evaluate_checkpoint", "train"]
