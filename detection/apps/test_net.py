"""The `tools/test_net.py` command: evaluate saved weights on the test split, alone or under
torchrun."""

from __future__ import annotations

from yacs.config import CfgNode

from detection.apps.cli import run_config_tool

DESCRIPTION = """\
Score every predicted person box of the test split and compute AVA frame-mAP.

Reads: the config file and KEY VALUE overrides; the weights in TEST.CHECKPOINT_FILE_PATH, else
MODEL.WEIGHTS, else the newest OUTPUT_DIR/checkpoints/checkpoint_epoch_NNNNN.pyth; the videos,
AVA.TEST_PREDICT_BOX_LISTS, AVA.GROUNDTRUTH_FILE, AVA.LABEL_MAP_FILE and AVA.EXCLUSION_FILE
under DATA.PATH_TO_DATA_DIR.
Writes (rank 0) into OUTPUT_DIR: detections.csv (official AVA detections format),
metrics.json ({"official": {"mAP", "per_class"}, "pyslowfast": {"mAP", "per_class"}}: the
official ActivityNet protocol and PySlowFast's, see README "Evaluation") and a "test"
record in log.jsonl.

Several processes:  torchrun --nproc_per_node N tools/test_net.py --config CFG ...
"""


def print_map_per_protocol(result: dict) -> None:
    """One line per protocol of a metrics.json-shaped result."""
    for protocol, summary in result.items():
        print(f"mAP ({protocol} protocol) {summary['mAP']:.4f}")


def _test(cfg: CfgNode) -> dict:
    # The engine (torch) is imported once the config has been read and checked, so that --help
    # and a bad config answer at once.
    from detection.engine import evaluate_checkpoint

    # The tester reads and checks the label map, ground truth and exclusions before scoring.
    return evaluate_checkpoint(cfg)


def main(argv: list[str] | None = None) -> int:
    print_map_per_protocol(run_config_tool(DESCRIPTION, _test, argv))
    return 0
