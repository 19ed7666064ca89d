"""SlowFast R50 detection forward on CPU: ours vs PyTorchVideo's slowfast_r50_detection, and our
ONNX export on ONNX Runtime and OpenVINO, in fp32 and int8.

Builds PyTorchVideo's model (random weights, random BN statistics so that BN folding is not a
no-op), saves its state dict, loads that file into our SLOWFAST_32x2_R50 through
`detection.checkpoint.load_checkpoint` (so all hold the same weights), exports our model with
`detection.export` (ONNX laid out for ONNX Runtime; ONNX of the model's own 3D convolutions, and
OpenVINO IR from it), and times one forward of the same clip and boxes for: PyTorchVideo, our
model as built, our `optimize_for_inference` copy, ONNX Runtime on the first export (and, as
"onnxruntime 3d", on the second), OpenVINO, and both engines on the int8 quantization of the
second (`detection.export.quantize`, calibrated on --calibration-clips random clips, as the
weights are random too: the int8 rows' "max |diff|" is the quantization error of these weights,
not an accuracy figure), at each thread count. Runs are interleaved and the minimum is
reported, as process CPU time (robust on a shared machine) and wall time.

Each row is also given as a share of this CPU's matrix-multiply peak at the same thread count,
measured in the same run: torch float32 matrix products of --gemm-size squared matrices
(2 n^3 flops each), as many in a row as last about --gemm-seconds (a forward's length: the
minimum of single 0.1-0.2 s products is a burst 5-10% above what the CPU sustains for the
seconds a forward takes), timed in every round after the models; a row's share is its rate
against the sgemm's rate of the same round, the median round's shown (the speed of a shared
host drifts over minutes, by 10-20% here, more than between the runs of one round). "% peak"
compares wall-time rates, "% peak cpu" rates per second of process CPU time (all threads),
which other processes' load disturbs less on a shared machine. The model's flops are
fvcore's count x 2 (fvcore counts one multiply-add as one flop; RoIAlign is not counted).

Needs the `bench` extra (pytorchvideo, fvcore) and the `export` extra. Example:
    .venv/bin/python benchmarks/model_forward.py --threads 1 2 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detection.checkpoint import load_checkpoint  # noqa: E402
from detection.config import load_config  # noqa: E402
from detection.export import (  # noqa: E402
    ClipShape,
    ExportedDetector,
    convert_to_openvino,
    export_onnx,
    quantize_onnx,
    random_feeds,
)
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
    """fvcore's count in GFLOPs x 2: flops, one multiply-add being two."""
    from fvcore.nn import FlopCountAnalysis

    count = FlopCountAnalysis(model, inputs)
    count.unsupported_ops_warnings(False)
    count.uncalled_modules_warnings(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return 2 * count.total() / 1e9


def timed_runs(
    runs: dict[str, Callable[[], object]], repeats: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """CPU and wall seconds of each run in each of `repeats` interleaved rounds (after a
    warm-up)."""
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    wall: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run()  # warm-up: oneDNN primitive creation, runtime graph compilation
    for _ in range(repeats):
        for name, run in runs.items():
            c, w = time.process_time(), time.perf_counter()
            run()
            cpu[name].append(time.process_time() - c)
            wall[name].append(time.perf_counter() - w)
    return cpu, wall


def _median_share(
    seconds: list[float], peak_seconds: list[float], gflop: float, peak_gflop: float
) -> float:
    """Median over rounds of the rate gflop / seconds against that round's peak rate."""
    return statistics.median(
        (gflop / s) / (peak_gflop / p) for s, p in zip(seconds, peak_seconds, strict=True)
    )


def _products_lasting(seconds: float, a: torch.Tensor, b: torch.Tensor) -> int:
    """How many products a @ b in a row take about `seconds` on this thread count."""
    torch.mm(a, b)
    start = time.perf_counter()
    torch.mm(a, b)
    return max(1, round(seconds / (time.perf_counter() - start)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts")
    parser.add_argument("--repeats", type=int, default=5, help="timed forwards per model")
    parser.add_argument("--size", type=int, default=224, help="frame height and width")
    parser.add_argument("--boxes", type=int, default=4, help="person boxes in the clip")
    parser.add_argument("--gemm-size", type=int, default=2048, help="peak sgemm matrix size")
    parser.add_argument(
        "--gemm-seconds", type=float, default=1.0, help="length of one timed peak sgemm run"
    )
    parser.add_argument(
        "--calibration-clips", type=int, default=4, help="int8 calibration clips (random)"
    )
    parser.add_argument("--no-int8", action="store_true", help="leave out the int8 rows")
    args = parser.parse_args()
    torch.manual_seed(0)
    load_before = os.getloadavg()

    reference = pytorchvideo_model()
    randomize_bn(reference, seed=1)
    reference.eval()
    cfg = load_config(
        str(ROOT / "configs/AVA/SLOWFAST_32x2_R50.yaml"),
        ["DATA.TEST_CROP_SIZE", str(args.size)],
    )
    ours = build_model(cfg).eval()
    tmp = tempfile.TemporaryDirectory()
    weights = Path(tmp.name) / "slowfast_r50_detection.pyth"
    torch.save({"model_state": reference.state_dict()}, weights)
    report = load_checkpoint(weights, ours)
    optimized = optimize_for_inference(ours)
    t = time.perf_counter()
    onnx_path = export_onnx(cfg, Path(tmp.name) / "model.onnx", model=ours)
    export_s = time.perf_counter() - t
    # The model's own 3D convs: what OpenVINO and the int8 file are made from, as in the export
    # cache, and ONNX Runtime's "3d" row (the file it ran before detection.export.layout).
    conv3d_path = export_onnx(cfg, Path(tmp.name) / "conv3d.onnx", model=ours, layout=False)
    xml_path = convert_to_openvino(conv3d_path, conv3d_path.with_suffix(".xml"))
    int8_path, quantize_s = None, 0.0
    if not args.no_int8:
        t = time.perf_counter()
        clip = ClipShape.from_config(cfg)
        feeds = random_feeds(clip, args.calibration_clips, seed=3)
        int8_path = quantize_onnx(conv3d_path, Path(tmp.name) / "model.int8.onnx", feeds)
        quantize_s = time.perf_counter() - t

    g = torch.Generator().manual_seed(2)
    fast = torch.randn(1, 3, cfg.DATA.NUM_FRAMES, args.size, args.size, generator=g)
    slow = fast[:, :, :: cfg.SLOWFAST.ALPHA].contiguous()
    corners = torch.rand(args.boxes, 2, 2, generator=g).sort(dim=1).values * args.size
    boxes = torch.cat([torch.zeros(args.boxes, 1), corners.flatten(1)[:, [0, 2, 1, 3]]], dim=1)
    n = args.gemm_size
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    model_gflop = gflops(ours, ([slow, fast], boxes))

    print(
        f"SlowFast R50 detection, 1 clip: slow {tuple(slow.shape)}, fast {tuple(fast.shape)}, "
        f"{args.boxes} boxes; times: min of {args.repeats} interleaved rounds, % peak: the "
        f"median round's; weights loaded from "
        f"PyTorchVideo ({report.format}, {len(report.loaded)} tensors); ONNX export "
        f"{export_s:.0f} s wall, int8 quantization {quantize_s:.0f} s"
    )
    print(
        f"model: {model_gflop:.1f} GFLOP (fvcore count x 2); peak: {n}x{n} float32 matmuls "
        f"(torch) in a row for ~{args.gemm_seconds:g} s, in the same run; load average before "
        f"{load_before[0]:.1f} (on {os.cpu_count()} CPUs)"
    )
    print(
        f"{'model':16s} {'threads':>7s} {'cpu s':>7s} {'wall s':>7s} {'wall ratio':>10s} "
        f"{'max |diff|':>10s} {'GFLOP/s':>8s} {'% peak':>7s} {'% peak cpu':>10s}"
    )
    for threads in args.threads:
        torch.set_num_threads(threads)
        ort = ExportedDetector(onnx_path, "onnxruntime", num_threads=threads)
        ort_3d = ExportedDetector(conv3d_path, "onnxruntime", num_threads=threads)
        ov = ExportedDetector(xml_path, "openvino", num_threads=threads)
        # PyTorchVideo's multipathway blocks write into the input list: each call gets a new one.
        runs: dict[str, Callable[[], object]] = {
            "pytorchvideo": lambda: reference([slow, fast], boxes),
            "ours": lambda: ours([slow, fast], boxes),
            "ours optimized": lambda: optimized([slow, fast], boxes),
            "onnxruntime": lambda run=ort: run([slow, fast], boxes),
            "onnxruntime 3d": lambda run=ort_3d: run([slow, fast], boxes),
            "openvino": lambda run=ov: run([slow, fast], boxes),
        }
        if int8_path is not None:
            for engine in ("onnxruntime", "openvino"):
                int8 = ExportedDetector(int8_path, engine, num_threads=threads)
                runs[f"{engine} int8"] = lambda run=int8: run([slow, fast], boxes)
        products = _products_lasting(args.gemm_seconds, a, b)
        runs["peak sgemm"] = lambda k=products: [torch.mm(a, b) for _ in range(k)]
        with torch.inference_mode():
            outputs = {name: run() for name, run in runs.items() if name != "peak sgemm"}
            cpu_rounds, wall_rounds = timed_runs(runs, args.repeats)
        cpu = {name: min(v) for name, v in cpu_rounds.items()}
        wall = {name: min(v) for name, v in wall_rounds.items()}
        gemm_gflop = products * 2 * n**3 / 1e9
        for name in runs:
            gflop = gemm_gflop if name == "peak sgemm" else model_gflop
            # Rates per wall second, and per CPU second (what the load of other processes does
            # not change), each against the sgemm's rate of the same kind.
            rate = gflop / wall[name]
            # The machine's speed drifts over minutes on a shared host: each round's share is
            # taken against the sgemm of the same round, and the median round's is shown.
            share = _median_share(wall_rounds[name], wall_rounds["peak sgemm"], gflop, gemm_gflop)
            share_cpu = _median_share(cpu_rounds[name], cpu_rounds["peak sgemm"], gflop, gemm_gflop)
            if name == "peak sgemm":
                ratio, diff = "", ""
            else:
                ratio = f"{wall[name] / wall['pytorchvideo']:.2f}"
                diff = f"{(outputs[name] - outputs['pytorchvideo']).abs().max().item():.1e}"
            print(
                f"{name:16s} {threads:7d} {cpu[name]:7.3f} {wall[name]:7.3f} {ratio:>10s} "
                f"{diff:>10s} {rate:8.1f} {100 * share:6.1f}% {100 * share_cpu:9.1f}%"
            )
    print(
        f"load average after {os.getloadavg()[0]:.1f}. GFLOP/s and % peak from wall time, "
        "% peak cpu from process CPU time (per CPU second, all threads). onnxruntime runs our "
        "ONNX export laid out for it (3D convs as 2D, detection.export.layout), 'onnxruntime "
        "3d' and openvino the export of the model's own 3D convs (fp32, BN folded); the int8 "
        "rows its QDQ quantization (convolutions int8, head fp32), whose % peak is against the "
        "fp32 peak."
    )
    tmp.cleanup()


if __name__ == "__main__":
    main()
