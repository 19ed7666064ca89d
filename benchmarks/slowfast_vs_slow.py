"""SlowFast vs Slow-only on the generated AVA-format set, with the same training budget.

The paper's claim in miniature: the Fast pathway sees motion that a low frame rate misses, at
a small share of the compute. Both tiny models train for the same epochs on the same clips
(configs/synthetic/SLOWFAST_TINY.yaml and SLOW_TINY.yaml) and are tested on the held-out split
with the real evaluator. Slow-only is SlowFast without its Fast pathway and lateral
connections: the same network, fed exactly the frames SlowFast's Slow pathway sees (4, 10
apart). Classes 1, 4 and 5 (static, fast oscillation, fast flicker: period 10 frames) then look
alike to it, while slow drift and bounce move 5-10 px between its frames; see
detection/data/synthetic.py.

Slow-only is about 3x cheaper per epoch, so a second Slow-only run gets --slow-epochs (default
20: about SlowFast's training time) to show that the gap on the fast classes is not a matter of
training time. A run whose OUTPUT_DIR already holds its last checkpoint is only re-evaluated.

Prints per-class AP of the models with the share of held-out boxes in each class (the AP of a
random ranking), the mean AP over the fast and the slow classes, mAP, training time, and the
GFLOPs of one clip (fvcore, one box) split into Slow pathway, Fast pathway and lateral
connections.

    python benchmarks/slowfast_vs_slow.py --data /tmp/syn --output /tmp/bench
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import torch
from yacs.config import CfgNode

from detection.config import load_config
from detection.data.synthetic import ACTION_NAMES, FAST_CLASSES, generate_synthetic_ava
from detection.engine import train
from detection.engine.metrics_log import read_log
from detection.models import build_model

ROOT = Path(__file__).resolve().parents[1]
SLOWFAST_CFG = ROOT / "configs/synthetic/SLOWFAST_TINY.yaml"
SLOW_CFG = ROOT / "configs/synthetic/SLOW_TINY.yaml"
FAST_ACTIONS = {ACTION_NAMES[c] for c in FAST_CLASSES}


def flops_by_part(cfg: CfgNode, height: int, width: int) -> dict[str, float]:
    """GFLOPs of one test clip with one box, by part: "slow", "fast", "lateral", "head", "total".

    A module belongs to the Fast pathway when its name says `pathway1` (PySlowFast naming);
    `*_fuse` modules are the Fast-to-Slow lateral connections.
    """
    from fvcore.nn import FlopCountAnalysis

    model = build_model(cfg).eval()
    frames = cfg.DATA.NUM_FRAMES
    if cfg.MODEL.ARCH == "slowfast":
        slow_frames = frames // cfg.SLOWFAST.ALPHA
        inputs = [
            torch.zeros(1, 3, slow_frames, height, width),
            torch.zeros(1, 3, frames, height, width),
        ]
    else:
        inputs = [torch.zeros(1, 3, frames, height, width)]
    boxes = torch.tensor([[0.0, 0.25 * width, 0.25 * height, 0.75 * width, 0.75 * height]])
    analysis = FlopCountAnalysis(model, (inputs, boxes))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    per_module = analysis.by_module()
    parts: dict[str, float] = defaultdict(float)
    # Leaf-level attribution: count each parameterized leaf module once.
    for name, module in model.named_modules():
        if list(module.children()):
            continue
        value = per_module.get(name, 0) / 1e9
        if "_fuse" in name:
            parts["lateral"] += value
        elif "pathway1" in name:
            parts["fast"] += value
        elif name.startswith("head"):
            parts["head"] += value
        else:
            parts["slow"] += value
    parts["total"] = analysis.total() / 1e9
    # Ops outside leaf modules (e.g. RoIAlign, concatenation) are booked to the Slow side.
    parts["slow"] += parts["total"] - sum(parts[k] for k in ("slow", "fast", "lateral", "head"))
    return dict(parts)


def class_shares(data: Path, classes: list[str]) -> dict[str, float]:
    """Fraction of held-out ground-truth boxes (keyframe, person) that carry each class: the
    expected AP of a ranking that knows nothing."""
    boxes: dict[tuple[str, ...], set[int]] = defaultdict(set)
    with open(data / "annotations" / "ava_val_v2.2.csv", newline="") as f:
        for video, sec, *_box, action, person in csv.reader(f):
            boxes[(video, sec, person)].add(int(action))
    return {
        name: sum(ACTION_NAMES[a] == name for labels in boxes.values() for a in labels) / len(boxes)
        for name in classes
    }


def run(config: Path, out: Path, opts: list[str]) -> tuple[dict, float, CfgNode]:
    """Train (or, if `out` holds the finished run, only re-evaluate) and return the metrics,
    the summed training seconds of the epochs (from log.jsonl) and the config."""
    cfg = load_config(str(config), ["OUTPUT_DIR", str(out), *opts])
    result = train(cfg)
    seconds = sum(r["seconds"] for r in read_log(out) if r["event"] == "epoch")
    return result, seconds, cfg


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        required=True,
        help="generated dataset (tools/make_synthetic_ava.py); created if missing",
    )
    parser.add_argument(
        "--output", required=True, help="folder for the runs' OUTPUT_DIRs and results.json"
    )
    parser.add_argument(
        "--num-videos", type=int, default=160, help="videos to generate when --data is missing"
    )
    parser.add_argument(
        "--seconds", type=int, default=6, help="seconds per generated video (3 keyframes at 6)"
    )
    parser.add_argument(
        "--slow-epochs",
        type=int,
        default=20,
        help="epochs of the second Slow-only run: about SlowFast's training time (default 20)",
    )
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides applied to every run"
    )
    args = parser.parse_args(argv)

    if not (Path(args.data) / "annotations").is_dir():
        generate_synthetic_ava(args.data, num_videos=args.num_videos, seconds=args.seconds)
    output = Path(args.output)
    common = ["DATA.PATH_TO_DATA_DIR", args.data, *args.opts]
    slow_time = ["SOLVER.MAX_EPOCH", str(args.slow_epochs)]
    runs = {
        "SlowFast": (SLOWFAST_CFG, common),
        "Slow-only": (SLOW_CFG, common),
        f"Slow {args.slow_epochs}ep": (SLOW_CFG, common + slow_time),
    }
    results = {}
    for name, (config, opts) in runs.items():
        result, seconds, cfg = run(config, output / name.replace(" ", "_"), opts)
        size = cfg.DATA.TEST_CROP_SIZE
        # The synthetic frames are 4:3 and the test transform scales the short side to `size`.
        flops = flops_by_part(cfg, size, size * 4 // 3)
        results[name] = {
            "mAP": result["official"]["mAP"],
            "per_class": result["official"]["per_class"],
            "train_seconds": seconds,
            "epochs": cfg.SOLVER.MAX_EPOCH,
            "gflops": flops,
        }

    names = list(runs)
    classes = list(results[names[0]]["per_class"])
    share = class_shares(Path(args.data), classes)

    def row(label: str, values: list[float], extra: str = "", fmt: str = ">12.3f") -> str:
        # Labels span the class, needs and share columns.
        return f"{label:<33}" + "".join(f"{v:{fmt}}" for v in values) + extra

    def delta(values: list[float]) -> str:
        # SlowFast minus the better of the two Slow-only runs.
        return f"{values[0] - max(values[1:]):>+10.3f}"

    print(
        f"\n{'class':<20}{'needs':>6}{'share':>7}"
        + "".join(f"{n:>12}" for n in names)
        + f"{'delta':>10}"
    )
    for cls in classes:
        aps = [results[n]["per_class"][cls] for n in names]
        needs = "Fast" if cls in FAST_ACTIONS else "Slow"
        print(
            f"{cls:<20}{needs:>6}{share[cls]:>7.2f}"
            + "".join(f"{ap:>12.3f}" for ap in aps)
            + delta(aps)
        )
    for label, group in (
        ("mean, Fast classes", FAST_ACTIONS),
        ("mean, Slow classes", set(classes) - FAST_ACTIONS),
    ):
        means = [sum(results[n]["per_class"][c] for c in group) / len(group) for n in names]
        print(row(label, means, delta(means)))
    maps = [results[n]["mAP"] for n in names]
    print(row("mAP", maps, delta(maps)))
    print(row("epochs", [results[n]["epochs"] for n in names], fmt=">12d"))
    print(row("train seconds", [results[n]["train_seconds"] for n in names], fmt=">12.0f"))
    print(row("GFLOPs / clip", [results[n]["gflops"]["total"] for n in names]))
    sf = results[names[0]]["gflops"]
    print(
        f"\nSlowFast GFLOPs: Slow pathway {sf['slow']:.3f}, Fast pathway {sf['fast']:.3f}, "
        f"laterals {sf['lateral']:.3f}, head {sf['head']:.4f}; "
        f"Fast share {sf['fast'] / sf['total']:.1%} "
        f"(with laterals {(sf['fast'] + sf['lateral']) / sf['total']:.1%})"
    )
    output.mkdir(parents=True, exist_ok=True)
    (output / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
