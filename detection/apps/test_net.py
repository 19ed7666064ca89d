"""The `tools/test_net.py` command: evaluate saved weights on the test split, alone or under
torchrun."""

from __future__ import annotations

from pathlib import Path

from yacs.config import CfgNode

from detection.apps.cli import run_config_tool
from detection.utils.paths import PathArg, check_outputs, check_writable_dir

DESCRIPTION = """\
Score every predicted person box of the test split and compute AVA frame-mAP.

Reads: the config file and KEY VALUE overrides; the weights in TEST.CHECKPOINT_FILE_PATH, else
MODEL.WEIGHTS, else the newest OUTPUT_DIR/checkpoints/checkpoint_epoch_NNNNN.pyth; the videos,
AVA.TEST_PREDICT_BOX_LISTS, AVA.GROUNDTRUTH_FILE, AVA.LABEL_MAP_FILE and AVA.EXCLUSION_FILE
under DATA.PATH_TO_DATA_DIR.
Writes (rank 0) into OUTPUT_DIR: detections.csv (official AVA detections format),
metrics.json ({"official": {"mAP", "per_class"}, "pyslowfast": {"mAP", "per_class"}}: the
official ActivityNet protocol and PySlowFast's, see README "Evaluation") and a "test"
record in log.jsonl. Before the model is built, the tool refuses an OUTPUT_DIR it cannot write
and a file it would write that it also reads, and reads and checks the label map, ground truth
and excluded timestamps.

Several processes:  torchrun --nproc_per_node N tools/test_net.py --config CFG ...
"""


def print_map_per_protocol(result: dict) -> None:
    """One line per protocol of a metrics.json-shaped result."""
    for protocol, summary in result.items():
        print(f"mAP ({protocol} protocol) {summary['mAP']:.4f}")


def check_run_paths(cfg: CfgNode, *, training: bool) -> None:
    """Refuse a run whose OUTPUT_DIR cannot be written, or that would write over a file it
    reads (e.g. AVA.TEST_PREDICT_BOX_LISTS naming an earlier run's OUTPUT_DIR/detections.csv,
    or fine-tuning weights a checkpoint of this run replaces), before any model is built.
    `training`: the inputs and outputs of train_net, else those of test_net."""
    from detection.engine.checkpoint_io import checkpoint_path
    from detection.engine.metrics_log import LOG_FILE
    from detection.engine.tester import (
        DETECTIONS_FILE,
        METRICS_FILE,
        annotation_file,
        weights_to_test,
    )

    out = Path(cfg.OUTPUT_DIR)
    check_writable_dir(out, "OUTPUT_DIR")
    ava = cfg.AVA
    inputs: dict[str, PathArg] = {
        "AVA.LABEL_MAP_FILE": annotation_file(cfg, ava.LABEL_MAP_FILE),
        "AVA.GROUNDTRUTH_FILE": annotation_file(cfg, ava.GROUNDTRUTH_FILE),
        "AVA.EXCLUSION_FILE": annotation_file(cfg, ava.EXCLUSION_FILE)
        if ava.EXCLUSION_FILE
        else None,
    }
    box_lists = ["TEST_PREDICT_BOX_LISTS"]
    frame_lists = ["TEST_LISTS"]
    if training:
        box_lists += ["TRAIN_GT_BOX_LISTS", "TRAIN_PREDICT_BOX_LISTS"]
        frame_lists += ["TRAIN_LISTS"]
        inputs["TRAIN.CHECKPOINT_FILE_PATH"] = cfg.TRAIN.CHECKPOINT_FILE_PATH or None
    else:
        inputs["weights to test"] = weights_to_test(cfg)
    for key in box_lists:
        inputs.update({f"AVA.{key}[{i}]": annotation_file(cfg, p) for i, p in enumerate(ava[key])})
    list_dir = Path(cfg.DATA.PATH_TO_DATA_DIR) / ava.FRAME_LIST_DIR
    for key in frame_lists:
        inputs.update({f"AVA.{key}[{i}]": list_dir / p for i, p in enumerate(ava[key])})

    outputs: dict[str, PathArg] = {f"OUTPUT_DIR/{LOG_FILE}": out / LOG_FILE}
    if not training or cfg.TEST.ENABLE or cfg.TRAIN.EVAL_PERIOD > 0:
        outputs.update({f"OUTPUT_DIR/{n}": out / n for n in (DETECTIONS_FILE, METRICS_FILE)})
    if training and not cfg.TRAIN.AUTO_RESUME:
        # A fresh run writes these names; with AUTO_RESUME it continues after the newest
        # existing checkpoint, so it replaces none.
        last = cfg.SOLVER.MAX_EPOCH - 1
        outputs.update(
            {
                f"checkpoint of epoch {epoch + 1}": checkpoint_path(out, epoch)
                for epoch in range(cfg.SOLVER.MAX_EPOCH)
                if (epoch + 1) % cfg.TRAIN.CHECKPOINT_PERIOD == 0 or epoch == last
            }
        )
    check_outputs(inputs, outputs)


def _test(cfg: CfgNode) -> dict:
    # The engine (torch) is imported once the config has been read and checked, so that --help
    # and a bad config answer at once.
    from detection.engine import evaluate_checkpoint

    check_run_paths(cfg, training=False)
    # evaluate_checkpoint reads and checks the label map, ground truth and exclusions before
    # it builds the model or writes log.jsonl.
    return evaluate_checkpoint(cfg)


def main(argv: list[str] | None = None) -> int:
    print_map_per_protocol(run_config_tool(DESCRIPTION, _test, argv))
    return 0
