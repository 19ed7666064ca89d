"""The `tools/train_net.py` command: train an action detector, alone or under torchrun."""

from __future__ import annotations

from yacs.config import CfgNode

from detection.apps.cli import run_config_tool
from detection.apps.test_net import check_run_paths, print_map_per_protocol

DESCRIPTION = """\
Train MODEL.ARCH on the train split of the AVA-layout dataset in DATA.PATH_TO_DATA_DIR.

Reads: the config file and KEY VALUE overrides; videos and annotations under
DATA.PATH_TO_DATA_DIR; TRAIN.CHECKPOINT_FILE_PATH (initial weights for fine-tuning, any format
detection.checkpoint reads) unless OUTPUT_DIR already holds a checkpoint to resume from
(TRAIN.AUTO_RESUME).
Writes (rank 0) into OUTPUT_DIR: checkpoints/checkpoint_epoch_NNNNN.pyth after every
TRAIN.CHECKPOINT_PERIOD epochs, log.jsonl (JSON lines), tensorboard/, and after evaluation on
the test split (every TRAIN.EVAL_PERIOD epochs and at the end if TEST.ENABLE) detections.csv
(AVA format) and metrics.json ({"official": {"mAP", "per_class"}, "pyslowfast": {"mAP",
"per_class"}}: the official ActivityNet protocol and PySlowFast's, see README "Evaluation").
The dataset is checked first (tools/check_dataset.py): its errors stop the run. So are an
OUTPUT_DIR that cannot be written and a file the run would write that it also reads (e.g.
TRAIN.CHECKPOINT_FILE_PATH naming a checkpoint a run without TRAIN.AUTO_RESUME replaces).

Several processes:  torchrun --nproc_per_node N tools/train_net.py --config CFG ...
"""


def _train(cfg: CfgNode) -> dict | None:
    # The engine (torch) is imported once the config has been read and checked, so that --help
    # and a bad config answer at once.
    from detection.data.doctor import require_healthy_dataset
    from detection.engine import train

    check_run_paths(cfg, training=True)
    # Errors only: the trainer states what matters of the warnings (rare classes, a schedule
    # too long for the data) itself; tools/check_dataset.py lists them all.
    require_healthy_dataset(cfg, log_warnings=False)
    return train(cfg)


def main(argv: list[str] | None = None) -> int:
    result = run_config_tool(DESCRIPTION, _train, argv)
    if result is not None:
        print_map_per_protocol(result)
    return 0
