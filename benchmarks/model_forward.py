"""SlowFast R50 detection forward on CPU: ours vs PyTorchVideo's slowfast_r50_detection.

Builds PyTorchVideo's model (random weights, random BN statistics so that BN folding is not a
no-op), saves its state dict, loads that file into our SLOWFAST_32x2_R50 through
`detection.checkpoint.load_checkpoint` (so both hold the same weights), and times one forward of
the same clip and boxes in inference mode for: PyTorchVideo, our model as built, and our
`optimize_for_inference` copy. Runs are interleaved and the minimum is reported, both as process
CPU time (robust on a shared machine) and wall time. Also prints fvcore's GFLOPs per model.

Needs the `bench` extra (pytorchvideo, fvcore). Example:
    .venv/bin/python benchmarks/model_forward.py --threads 1 --repeats 5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detection.checkpoint import load_checkpoint  # noqa: E402
from detection.config import load_config  # noqa: E402
from detection.models import build_model  # noqa: E402
from detection.models.optimize import optimize_for_inference  # noqa: E402


def pytorchvideo_model() -> torch.nn.Module:
    """slowfast_r50_detection(pretrained=False); the hub module is tried first, and the model
    builder directly if the hub package fails to import (its transforms need torchvision APIs
    that newer releases removed)."""
    try:
        from pytorchvideo.models.hub import slowfast_r50_detection

        return slowfast_r50_detection(pretrained=False)
    except ImportError:
        from pytorchvideo.models.slowfast import create_slowfast_with_roi_head

        return create_slowfast_with_roi_head()


def randomize_bn(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                n = m.num_features
                m.weight.copy_(1 + 0.1 * torch.randn(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))


def gflops(model: torch.nn.Module, inputs: tuple) -> float:
    from fvcore.nn import FlopCountAnalysis

    count = FlopCountAnalysis(model, inputs)
    count.unsupported_ops_warnings(False)
    count.uncalled_modules_warnings(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return count.total() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=5, help="timed forwards per model")
    parser.add_argument("--size", type=int, default=224, help="frame height and width")
    parser.add_argument("--boxes", type=int, default=4, help="person boxes in the clip")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    reference = pytorchvideo_model()
    randomize_bn(reference, seed=1)
    reference.eval()
    cfg = load_config(str(ROOT / "configs/AVA/SLOWFAST_32x2_R50.yaml"))
    ours = build_model(cfg).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "slowfast_r50_detection.pyth"
        torch.save({"model_state": reference.state_dict()}, path)
        report = load_checkpoint(path, ours)
    optimized = optimize_for_inference(ours)

    g = torch.Generator().manual_seed(2)
    fast = torch.randn(1, 3, cfg.DATA.NUM_FRAMES, args.size, args.size, generator=g)
    slow = fast[:, :, :: cfg.SLOWFAST.ALPHA].contiguous()
    corners = torch.rand(args.boxes, 2, 2, generator=g).sort(dim=1).values * args.size
    boxes = torch.cat([torch.zeros(args.boxes, 1), corners.flatten(1)[:, [0, 2, 1, 3]]], dim=1)

    # PyTorchVideo's multipathway blocks write into the input list, so each call gets a new one.
    runs = {
        "pytorchvideo": lambda: reference([slow, fast], boxes),
        "ours": lambda: ours([slow, fast], boxes),
        "ours optimized": lambda: optimized([slow, fast], boxes),
    }
    cpu = {name: [] for name in runs}
    wall = {name: [] for name in runs}
    outputs = {}
    with torch.inference_mode():
        for name, run in runs.items():
            outputs[name] = run()  # warm-up (oneDNN primitive creation)
        for _ in range(args.repeats):
            for name, run in runs.items():
                c, w = time.process_time(), time.perf_counter()
                run()
                cpu[name].append(time.process_time() - c)
                wall[name].append(time.perf_counter() - w)
    flops = {
        "pytorchvideo": gflops(reference, ([slow, fast], boxes)),
        "ours": gflops(ours, ([slow, fast], boxes)),
    }

    print(
        f"SlowFast R50 detection, 1 clip: slow {tuple(slow.shape)}, fast {tuple(fast.shape)}, "
        f"{args.boxes} boxes; {args.threads} thread(s), min of {args.repeats} interleaved runs; "
        f"weights loaded from PyTorchVideo ({report.format}, {len(report.loaded)} tensors)"
    )
    print(
        f"{'model':16s} {'cpu s':>7s} {'wall s':>7s} {'cpu ratio':>9s} {'wall ratio':>10s} "
        f"{'max |diff|':>10s} {'GFLOPs':>7s}"
    )
    base_cpu, base_wall = min(cpu["pytorchvideo"]), min(wall["pytorchvideo"])
    for name in runs:
        diff = (outputs[name] - outputs["pytorchvideo"]).abs().max().item()
        flop = f"{flops[name]:7.1f}" if name in flops else f"{'(same)':>7s}"
        print(
            f"{name:16s} {min(cpu[name]):7.3f} {min(wall[name]):7.3f} "
            f"{min(cpu[name]) / base_cpu:9.2f} {min(wall[name]) / base_wall:10.2f} "
            f"{diff:10.1e} {flop}"
        )
    print("GFLOPs: fvcore's count (one multiply-add = one flop); RoIAlign is not counted.")


if __name__ == "__main__":
    main()
