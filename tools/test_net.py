"""Test an action detector on the test split; alone or under torchrun."""

from __future__ import annotations

from detection.apps.cli import run_config_tool
from detection.engine import evaluate_checkpoint

DESCRIPTION = """\
Score every predicted person box of the test split and compute AVA frame-mAP.

Reads: the config file and KEY VALUE overrides; the weights in TEST.CHECKPOINT_FILE_PATH, else
MODEL.WEIGHTS, else the newest OUTPUT_DIR/checkpoints/checkpoint_epoch_NNNNN.pyth; the videos,
AVA.TEST_PREDICT_BOX_LISTS, AVA.GROUNDTRUTH_FILE, AVA.LABEL_MAP_FILE and AVA.EXCLUSION_FILE
under DATA.PATH_TO_DATA_DIR.
Writes (rank 0) into OUTPUT_DIR: detections.csv (official AVA detections format),
metrics.json ({"mAP", "per_class"}) and a "test" record in log.jsonl.

Several processes:  torchrun --nproc_per_node N tools/test_net.py --config CFG ...
"""


def main(argv: list[str] | None = None) -> None:
    result = run_config_tool(DESCRIPTION, evaluate_checkpoint, argv)
    print(f"mAP {result['mAP']:.4f}")


if __name__ == "__main__":
    main()
