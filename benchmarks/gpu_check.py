"""The GPU path, checked and timed in one run (a few minutes on one GPU); prints one table.

0. A test batch's uint8 frames made model inputs on the GPU (what test_net does): the same
   bits as the CPU's normalization, and the time against copying float32 inputs.
1. Inference of SlowFast R101 32x2 (configs/AVA/SLOWFAST_32x2_R101_50_50.yaml, random weights
   whose scores spread over (0, 1)) on --batch clips of 256 px with 4 boxes each: float32 (the
   default, TF32 convolutions), bf16 and fp16 autocast with channels_last_3d (what
   TRAIN.MIXED_PRECISION does in test_net), each with and without cudnn.benchmark, and bf16 +
   torch.compile; clips/s and the largest score difference from strict float32 (TF32 off).
2. Training steps of the same network (SGD + BCE on random labels, fp16 with a GradScaler, as
   the trainer does): float32 vs bf16 vs fp16, clips/s, loss finite.
3. tools/train_net.py under `torchrun --standalone --nproc_per_node 1` on a generated set
   (tools/make_synthetic_ava.py; configs/synthetic/SLOWFAST_TINY.yaml, 1 epoch, bf16): NCCL
   process group, AMP, checkpoint written.
4. tools/test_net.py of that checkpoint on the generated set's held-out videos, fp32 and bf16:
   frame-mAP of both (equal up to a few hundredths at this tiny scale) and wall time.
5. tools/demo_net.py on the bundled clip (R101 untrained, --batch-size 4; persons from a
   torchvision Faster R-CNN on the GPU with random weights biased to "person", HOG on the CPU
   with --tiny): wall time, the annotated video written.

Without CUDA it stops at once with exit code 2, unless `--device cpu`: with `--tiny` too it runs
every step on the tiny test configs on the CPU (what a machine without a GPU can check: that the
script runs end to end; the timings mean nothing there).

    python benchmarks/gpu_check.py                      # on a GPU machine, ~3-5 minutes
    python benchmarks/gpu_check.py --device cpu --tiny  # smoke run without a GPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detection.config import load_config  # noqa: E402
from detection.models import build_model  # noqa: E402

R101 = ROOT / "configs/AVA/SLOWFAST_32x2_R101_50_50.yaml"
TINY = ROOT / "configs/test/SLOWFAST_TINY.yaml"
SYNTHETIC = ROOT / "configs/synthetic/SLOWFAST_TINY.yaml"
DEMO_CLIP = ROOT / "data/demo/vtest_walking_6s.mp4"


@dataclass
class Row:
    check: str
    setting: str
    result: str
    seconds: float
    ok: bool = True


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(run: Callable[[], object], device: torch.device, warmup: int, iters: int) -> float:
    """Seconds per call of `run`, after `warmup` calls."""
    for _ in range(warmup):
        run()
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        run()
    _sync(device)
    return (time.perf_counter() - start) / iters


def _inputs(cfg, batch: int, size: int, device: torch.device, seed: int = 0):
    """Random clips [slow [B,3,T/alpha,H,W], fast [B,3,T,H,W]] and 4 boxes per clip [4B, 5]."""
    g = torch.Generator().manual_seed(seed)
    fast = torch.randn(batch, 3, cfg.DATA.NUM_FRAMES, size, size, generator=g)
    corners = torch.rand(4 * batch, 2, 2, generator=g).sort(dim=1).values * (size - 1)
    index = torch.arange(batch).repeat_interleave(4).float()[:, None]
    boxes = torch.cat([index, corners.flatten(1)[:, [0, 2, 1, 3]]], dim=1)
    clips = [fast[:, :, :: cfg.SLOWFAST.ALPHA].contiguous(), fast]
    return [c.to(device) for c in clips], boxes.to(device)


def _spread_scores(model: torch.nn.Module, clips, boxes) -> None:
    """Scale the projection so logits have std 2, as a trained head's: scores then cover (0, 1)
    and a precision error shows in them instead of hiding at the sigmoid's 0.5."""
    with torch.no_grad():
        features = model.head.pool(model.features(clips), boxes)
        weight = model.head.projection.weight
        weight.normal_()
        weight.mul_(2 / (features @ weight.T).std())


def _as_layout(clips: list[torch.Tensor], channels_last: bool) -> list[torch.Tensor]:
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    return [c.contiguous(memory_format=fmt) for c in clips]


def inference_rows(args, device: torch.device) -> list[Row]:
    cfg = load_config(str(TINY if args.tiny else R101))
    size = 64 if args.tiny else 256
    torch.manual_seed(0)
    model = build_model(cfg).to(device).eval()
    clips, boxes = _inputs(cfg, args.batch, size, device)
    _spread_scores(model, clips, boxes)
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    with torch.inference_mode():
        exact = model(clips, boxes).float()
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    name = "SlowFast tiny 64px" if args.tiny else "SlowFast R101 32x2 256px"
    rows = []
    # (setting, autocast dtype, channels_last_3d, cudnn.benchmark, torch.compile)
    modes: list[tuple[str, torch.dtype | None, bool, bool, bool]] = [
        ("fp32 (default TF32 convs)", None, False, False, False),
        ("fp32 + cudnn.benchmark", None, False, True, False),
        ("bf16 autocast + channels_last_3d", torch.bfloat16, True, False, False),
        ("bf16 + channels_last_3d + cudnn.benchmark", torch.bfloat16, True, True, False),
        ("fp16 + channels_last_3d + cudnn.benchmark", torch.float16, True, True, False),
    ]
    if args.compile:
        modes.append(("bf16 + cl3d + cudnn.benchmark + compile", torch.bfloat16, True, True, True))
    base = None
    for setting, dtype, channels_last, autotune, compiled in modes:
        torch.backends.cudnn.benchmark = autotune
        net = model.to(
            memory_format=torch.channels_last_3d if channels_last else torch.preserve_format
        )
        inputs = _as_layout(clips, channels_last)
        compile_s = 0.0
        if compiled:
            t = time.perf_counter()
            net = torch.compile(net)

        def run(net=net, inputs=inputs, dtype=dtype) -> torch.Tensor:
            with (
                torch.inference_mode(),
                torch.autocast(device.type, dtype=dtype, enabled=dtype is not None),
            ):
                return net(inputs, boxes)

        try:
            if compiled:
                run()
                _sync(device)
                compile_s = time.perf_counter() - t
            seconds = _timed(run, device, warmup=2, iters=args.iters)
            diff = (run().float() - exact).abs().max().item()
        except Exception as error:
            # one setting failing (torch.compile, say) must not hide the others
            rows.append(Row(f"inference {name}", setting, _failure(error), 0.0, ok=False))
            continue
        rate = args.batch / seconds
        base = base or rate
        extra = f", compile {compile_s:.0f} s" if compiled else ""
        rows.append(
            Row(
                f"inference {name}",
                setting,
                f"{rate:.1f} clips/s ({rate / base:.2f}x), max |score diff| {diff:.1e}{extra}",
                seconds * args.iters,
                ok=diff < 0.05,
            )
        )
    model.to(memory_format=torch.contiguous_format)
    torch.backends.cudnn.benchmark = False
    return rows


def staging_rows(args, device: torch.device) -> list[Row]:
    """A test batch of uint8 frames (8 32x2 clips at 256x455) made inputs on `device` as
    test_net does (`InputStager`: copied as uint8, normalized there): same bits as the CPU's
    normalization? Timed against moving the float32 inputs the CPU would have made."""
    from detection.data.transforms import InputFormat
    from detection.engine.precision import InputStager

    shape = (2, 8, 64, 96, 3) if args.tiny else (args.batch, 32, 256, 455, 3)
    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    fmt = InputFormat((0.45, 0.4, 0.5), (0.225, 0.25, 0.2), False, "slowfast", 4)
    on_cpu = [x.clone() for x in fmt.inputs(frames)]
    pinned = device.type == "cuda"
    batch = {"frames": frames.pin_memory() if pinned else frames, "input_format": fmt}
    batch["boxes"] = torch.zeros((1, 5))
    stage = InputStager(device)
    staged = _timed(lambda: stage(batch), device, 2, args.iters)
    same = all(torch.equal(a.cpu(), b) for a, b in zip(stage(batch)[0], on_cpu, strict=True))
    floats = [x.pin_memory() if pinned else x for x in on_cpu]
    moved = _timed(lambda: [x.to(device, non_blocking=True) for x in floats], device, 2, args.iters)
    return [
        Row(
            "test batch staging (uint8 -> inputs)",
            f"{tuple(shape)} on {device.type}",
            f"{'same bits as' if same else 'DIFFERENT from'} the CPU's normalization"
            + (f"; {moved / staged:.1f}x the speed of moving float32 inputs" if pinned else ""),
            staged,
            ok=same,
        )
    ]


def _train_steps(
    cfg, device: torch.device, batch: int, size: int, dtype: torch.dtype | None, iters: int
) -> tuple[float, list[float]]:
    """Seconds per training step (after one warm-up step) and the losses of all steps."""
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = device.type == "cuda"  # as the trainer sets it
    model = build_model(cfg).to(device).train()
    channels_last = dtype is not None and device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    clips, boxes = _inputs(cfg, batch, size, device, seed=1)
    clips = _as_layout(clips, channels_last)
    labels = (torch.rand(len(boxes), cfg.MODEL.NUM_CLASSES, device=device) < 0.1).float()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    losses: list[torch.Tensor] = []

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(clips, boxes)
        loss = F.binary_cross_entropy_with_logits(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.detach())

    seconds = _timed(step, device, warmup=1, iters=iters)
    return seconds, [v.item() for v in losses]


def training_rows(args, device: torch.device) -> list[Row]:
    cfg = load_config(str(TINY if args.tiny else R101))
    size = 64 if args.tiny else 224
    batch = args.batch if args.tiny else max(1, args.batch // 2)
    rows = []
    base = None
    settings = (
        ("fp32", None),
        ("bf16 autocast", torch.bfloat16),
        ("fp16 + GradScaler", torch.float16),
    )
    for setting, dtype in settings:
        seconds, losses = _train_steps(cfg, device, batch, size, dtype, args.iters)
        rate = batch / seconds
        base = base or rate
        rows.append(
            Row(
                f"training steps, batch {batch}",
                setting,
                f"{rate:.1f} clips/s ({rate / base:.2f}x), loss {losses[0]:.3f} -> "
                f"{losses[-1]:.3f}",
                seconds * args.iters,
                ok=all(map(math.isfinite, losses)),
            )
        )
    return rows


def _run(cmd: list[str], log: Path, timeout: int) -> tuple[bool, float]:
    # the tools import `detection` from this checkout, installed or not
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    start = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout
        )
    return proc.returncode == 0, time.perf_counter() - start


def _tail(log: Path, lines: int = 5) -> str:
    return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])


def end_to_end_rows(args, device: torch.device, work: Path) -> Iterator[Row]:
    """The command-line tools on `device`, each row yielded as its step ends."""
    python = sys.executable
    dev = ["DEVICE", device.type]
    data = work / "synthetic"
    ok, seconds = _run(
        [python, "tools/make_synthetic_ava.py", "--output", str(data), "--num-videos", "12"]
        + ["--seconds", "6"],
        work / "make_synthetic.log",
        600,
    )
    yield Row(
        "generated set",
        "12 videos x 6 s",
        "written" if ok else _tail(work / "make_synthetic.log"),
        seconds,
        ok,
    )
    if not ok:
        return
    small = ["DATA.PATH_TO_DATA_DIR", str(data), "DATA_LOADER.NUM_WORKERS", "2"]
    if args.tiny:
        small += ["DATA.TEST_CROP_SIZE", "64", "DATA.TRAIN_CROP_SIZE", "64"]
        small += ["DATA.TRAIN_JITTER_SCALES", "[64, 80]"]
    run_dir = work / "train"
    torchrun = [python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"]
    ok, seconds = _run(
        [*torchrun, "tools/train_net.py", "--config", str(SYNTHETIC), *small, *dev]
        + ["OUTPUT_DIR", str(run_dir), "SOLVER.MAX_EPOCH", "1", "TEST.ENABLE", "False"]
        + ["TRAIN.MIXED_PRECISION", "bf16", "LOG_PERIOD", "1"],
        work / "train.log",
        900,
    )
    checkpoints = sorted((run_dir / "checkpoints").glob("*.pyth")) if ok else []
    backend = "nccl" if device.type == "cuda" else "gloo"
    result = _tail(work / "train.log")
    if checkpoints:
        records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
        train = [r for r in records if r["event"] == "train"]
        result = (
            f"{backend}, {len(train)} steps, {train[-1]['sec_per_iter']:.2f} s/step, "
            f"loss {train[0]['loss']:.3f} -> {train[-1]['loss']:.3f}, {checkpoints[-1].name}"
        )
    yield Row(
        "train_net under torchrun, 1 process",
        f"bf16 AMP, {backend}",
        result,
        seconds,
        bool(checkpoints),
    )
    if not checkpoints:
        return
    for precision in ("none", "bf16"):
        out = work / f"test_{precision}"
        ok, seconds = _run(
            [python, "tools/test_net.py", "--config", str(SYNTHETIC), *small, *dev]
            + ["OUTPUT_DIR", str(out), "TEST.CHECKPOINT_FILE_PATH", str(checkpoints[-1])]
            + ["TRAIN.MIXED_PRECISION", precision],
            work / f"test_{precision}.log",
            600,
        )
        metrics = out / "metrics.json"
        result = (
            f"frame-mAP {json.loads(metrics.read_text())['official']['mAP']:.4f}"
            if ok and metrics.is_file()
            else _tail(work / f"test_{precision}.log")
        )
        yield Row(
            "test_net, generated set",
            "fp32" if precision == "none" else precision,
            result,
            seconds,
            ok,
        )
    demo_cfg = TINY if args.tiny else R101
    video = work / "demo" / "vtest_actions.mp4"
    if args.tiny:
        detector, detector_name = ["--detector", "hog"], "HOG"
    else:  # the network detector on the GPU
        weights = _person_rcnn_weights(work / "fasterrcnn_random_persons.pth")
        detector = ["--detector", "torchvision", "DEMO.TORCHVISION_WEIGHTS", str(weights)]
        detector_name = "R-CNN on GPU"
    ok, seconds = _run(
        [python, "tools/demo_net.py", "--config", str(demo_cfg), "--input", str(DEMO_CLIP)]
        + ["--output", str(video), "--batch-size", "4", "--quiet", *detector, *dev],
        work / "demo.log",
        600,
    )
    ok = ok and video.is_file()
    result = f"{video.name} {video.stat().st_size // 1024} KB" if ok else _tail(work / "demo.log")
    setting = f"{demo_cfg.stem}, {detector_name}"
    yield Row("demo_net, bundled clip", setting, result, seconds, ok)


def _person_rcnn_weights(path: Path) -> Path:
    """A torchvision fasterrcnn_resnet50_fpn state dict with random weights whose class logits
    favour COCO "person" (index 1), so that every frame has person boxes for the action model
    (no official weights can be downloaded here)."""
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    torch.manual_seed(0)
    model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.bias[1] = 10.0
    torch.save(model.state_dict(), path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="default: cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny configs (a CPU smoke run)")
    parser.add_argument("--batch", type=int, default=8, help="clips per inference batch")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations per setting")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add a torch.compile row (default: on CUDA only)",
    )
    parser.add_argument("--keep", type=Path, help="keep the generated files in this folder")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "error: no CUDA device (torch.cuda.is_available() is False); this script checks the "
            "GPU path. For a smoke run on the CPU: --device cpu --tiny",
            file=sys.stderr,
        )
        return 2
    if args.compile is None:
        args.compile = args.device == "cuda"
    if args.tiny:
        args.batch, args.iters = min(args.batch, 2), min(args.iters, 2)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; cuDNN {torch.backends.cudnn.version()}")
    work = args.keep or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    try:
        for section in (staging_rows, inference_rows, training_rows):
            try:
                new = section(args, device)
            except Exception as error:  # report it and go on to the next section
                new = [Row(section.__name__, "", _failure(error), 0.0, ok=False)]
            _print(new, header=not rows)  # progress, before the slower end-to-end steps
            rows += new
        for row in end_to_end_rows(args, device, work):
            _print([row], header=False)
            rows.append(row)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print()
    _print(rows, header=True)
    failed = [r for r in rows if not r.ok]
    print(
        f"{len(rows) - len(failed)} of {len(rows)} checks passed"
        + (f"; logs in {work}" if failed and args.keep else "")
    )
    return 1 if failed else 0


def _failure(error: Exception) -> str:
    """One line naming the error: its type and the first line of its message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def _print(rows: list[Row], header: bool) -> None:
    if header:
        print(f"{'check':38s} {'setting':40s} {'s':>7s}  result")
    for r in rows:
        flag = "" if r.ok else "FAILED "
        print(f"{r.check:38s} {r.setting:40s} {r.seconds:7.1f}  {flag}{r.result}")


if __name__ == "__main__":
    sys.exit(main())
