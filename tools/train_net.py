"""Train an action detector; alone or under torchrun (one process per GPU, or gloo on CPU)."""

from __future__ import annotations

from detection.apps.cli import run_config_tool
from detection.engine import train

DESCRIPTION = """\
Train MODEL.ARCH on the train split of the AVA-layout dataset in DATA.PATH_TO_DATA_DIR.

Reads: the config file and KEY VALUE overrides; videos and annotations under
DATA.PATH_TO_DATA_DIR; TRAIN.CHECKPOINT_FILE_PATH (initial weights for fine-tuning, any format
detection.checkpoint reads) unless OUTPUT_DIR already holds a checkpoint to resume from
(TRAIN.AUTO_RESUME).
Writes (rank 0) into OUTPUT_DIR: checkpoints/checkpoint_epoch_NNNNN.pyth after every
TRAIN.CHECKPOINT_PERIOD epochs, log.jsonl (JSON lines), tensorboard/, and after evaluation on
the test split (every TRAIN.EVAL_PERIOD epochs and at the end if TEST.ENABLE) detections.csv
(AVA format) and metrics.json ({"mAP", "per_class"}).

Several processes:  torchrun --nproc_per_node N tools/train_net.py --config CFG ...
"""


def main(argv: list[str] | None = None) -> None:
    result = run_config_tool(DESCRIPTION, train, argv)
    if result is not None:
        print(f"mAP {result['mAP']:.4f}")


if __name__ == "__main__":
    main()
