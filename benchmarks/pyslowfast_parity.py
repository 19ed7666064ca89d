"""Scores of our `tools/test_net.py` against PySlowFast's own AVA test, on the same data.

Builds a small AVA-layout dataset from real frames (OpenCV's vtest.avi: the first 14 s as
they are, 768x576 at 10 fps, and the same seconds re-encoded by the ffmpeg CLI as 426x240 H.264
at 25 fps tagged BT.709), laid out as AVA (video time 0 = second 900, keyframes 902..913):
``frames/`` and ``frame_lists/val.csv`` written by our `tools/extract_frames.py` logic,
person boxes from our HOG detector (the same normalized boxes in both videos, one box below
the 0.8 threshold and one exactly at it), a ground truth made from them (jittered boxes, one or
two actions each, some boxes without ground truth and one person without a box), a label map of
eight AVA classes and one excluded timestamp.

PySlowFast (a checkout given by ``--pyslowfast``, run by ``--pyslowfast-python``) then

1. builds its own SlowFast from ``configs/AVA/c2/SLOWFAST_32x2_R50.yaml`` at
   RESNET.WIDTH_PER_GROUP 8, gives it seeded random weights and BatchNorm statistics and a
   head scaled so that scores spread over (0, 1) without saturating, and saves it with its own
   ``slowfast.utils.checkpoint.save_checkpoint``;
2. tests that checkpoint with its own ``tools/run_net.py`` (TEST.ENABLE True, TRAIN.ENABLE
   False, NUM_GPUS 0, TEST.BATCH_SIZE 1) on the frames; its raw scores are kept as well as its
   ``detections_latest.csv`` (4 decimals).

Our ``tools/test_net.py`` tests the same checkpoint with ``configs/AVA/SLOWFAST_32x2_R50.yaml``
at the same width, once on the JPEG frames (DATA.DECODING_BACKEND frames) and once on the
videos the JPEGs were made from (DATA.DECODING_BACKEND video, VIDEO_FRAME_RULE ffmpeg,
VIDEO_COLOR jpeg_bt601; this one differs from PySlowFast by JPEG quantization only). The rows
of the detection CSVs are matched by (video, second, box, action) and compared; mAP is given
under both protocols for each.

PySlowFast imports from its internal package name ``vision.fair.slowfast``; a shim package of
that name pointing at the checkout is written into the work folder (nothing in the checkout
is changed). It also needs pytorchvideo's main branch (0.1.5 on PyPI lacks what it imports),
detectron2 (``detectron2.layers.ROIAlign``), fvcore, iopath, simplejson, psutil, scikit-learn,
av, opencv: give folders that hold what its python lacks with ``--pyslowfast-pythonpath``.

    .venv/bin/python benchmarks/pyslowfast_parity.py --pyslowfast /path/to/SlowFast \\
        [--pyslowfast-python PYTHON] [--pyslowfast-pythonpath DIR ...] [--work DIR]

Measured (PySlowFast at its public head, pytorchvideo main, torch 2.14.1 on CPU): 784 rows;
frames backend max |ours - PySlowFast raw| 8.6e-7 (ours is written with 6 decimals), no row
beyond the CSV rounding, mAP 0.195708 under both protocols = PySlowFast's own 0.195708; video
backend 5.5e-3 / 7.6e-3 (the JPEGs' quantization: the same source frames, mean |pixel
difference| 1.0-1.6 levels).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "media" / "vtest.avi"
CLIP_SECONDS = 14
KEYFRAME_SECONDS = range(902, 914)
EXCLUDED = ("vtest_768x576", 906)
# Eight AVA v2.2 classes of the ActivityNet list (ids as in AVA).
CLASSES = (1, 8, 11, 12, 14, 17, 59, 80)
SCORE_THRESH = 0.8
WIDTH = "8"
SEED = 7
PYSLOWFAST_CONFIG = "configs/AVA/c2/SLOWFAST_32x2_R50.yaml"
OUR_CONFIG = REPO / "configs" / "AVA" / "SLOWFAST_32x2_R50.yaml"
# Half a unit of the last decimal of each writer: PySlowFast's 4, ours 6.
CSV_ROUNDING = 0.5e-4 + 0.5e-6

# ---------------------------------------------------------------------------------------------
# Run by PySlowFast's python (nothing of ours is imported here).
# ---------------------------------------------------------------------------------------------


def _pyslowfast_cfg(root: str, opts: list[str]):
    from slowfast.config.defaults import assert_and_infer_cfg, get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(root, PYSLOWFAST_CONFIG))
    cfg.merge_from_list(opts)
    return assert_and_infer_cfg(cfg)


def _pyslowfast_make_checkpoint(root: str, job_dir: str, opts: list[str]) -> None:
    """A seeded SlowFast of PySlowFast's own builder, written by its own checkpoint saver."""
    import slowfast.utils.checkpoint as cu
    import torch
    from slowfast.datasets import loader
    from slowfast.models import build_model

    cfg = _pyslowfast_cfg(root, opts)
    torch.manual_seed(SEED)
    model = build_model(cfg)
    with torch.no_grad():
        for m in model.modules():
            # Not the identity of a fresh BN (ZERO_INIT_FINAL_BN would switch blocks off).
            if isinstance(m, torch.nn.BatchNorm3d):
                m.weight.normal_(1.0, 0.2)
                m.bias.normal_(0.0, 0.2)
                m.running_mean.normal_(0.0, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    # A head that spreads scores over (0, 1), so that AP depends on their order and no score is
    # saturated: random projection rows scaled so that the logits of the first test clip's
    # boxes have standard deviation 2 (the random BN statistics make features large).
    features = []
    hook = model.head.projection.register_forward_hook(lambda m, i, o: features.append(i[0]))
    inputs, _, _, _, meta = next(iter(loader.construct_loader(cfg, "test")))
    with torch.no_grad():
        model.eval()(inputs, meta["boxes"])
        hook.remove()
        head = model.head.projection
        weight = torch.randn_like(head.weight)
        logits = features[0].reshape(-1, head.in_features) @ weight.T
        head.weight.copy_(weight * (2.0 / logits.std()))
        head.bias.normal_(-0.5, 0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    path = cu.save_checkpoint(job_dir, model, optimizer, 0, cfg)
    print(path)


def _pyslowfast_test(root: str, out: str, argv: list[str]) -> None:
    """PySlowFast's `tools/run_net.py` with `argv`, its test scores kept in `out` (JSON).

    Its `test()` runs as it is (config, model builder, checkpoint loader, data loader, AVA
    dataset and transforms, `AVAMeter`, `evaluate_ava`), except the loop of `perform_test`: at
    this PySlowFast the detection case falls through into the classification bookkeeping and
    stops on a second `iter_toc` (SlowFast#599, open). The loop below is the detection case
    alone: each batch's scores of its boxes into the meter, then the meter's evaluation.
    """
    import runpy

    import torch
    import vision.fair.slowfast.tools.test_net as test_net

    kept: dict = {}

    @torch.no_grad()
    def detection_test(test_loader, model, test_meter, cfg, writer=None):
        model.eval()
        for inputs, _, _, _, meta in test_loader:
            preds = model(inputs, meta["boxes"])
            test_meter.update_stats(preds.detach(), meta["ori_boxes"], meta["metadata"])
        test_meter.finalize_metrics()
        ckpt = torch.load(cfg.TEST.CHECKPOINT_FILE_PATH, map_location="cpu")["model_state"]
        state = model.state_dict()
        kept.update(
            preds=torch.cat(test_meter.all_preds).tolist(),
            boxes=torch.cat(test_meter.all_ori_boxes).tolist(),
            metadata=torch.cat(test_meter.all_metadata).tolist(),
            video_names=list(test_meter.video_idx_to_name),
            map=float(test_meter.full_map),
            # Every model tensor equal to the checkpoint's: nothing was left at its init.
            weights_not_loaded=sorted(
                k
                for k, v in state.items()
                if "num_batches_tracked" not in k
                and (k not in ckpt or not torch.equal(ckpt[k].to(v.dtype), v))
            ),
            batches=len(test_meter.all_preds),
        )
        return test_meter

    test_net.perform_test = detection_test
    sys.argv = [os.path.join(root, "tools", "run_net.py"), *argv]
    runpy.run_path(sys.argv[0], run_name="__main__")
    Path(out).write_text(json.dumps(kept))


# ---------------------------------------------------------------------------------------------
# Run by our python.
# ---------------------------------------------------------------------------------------------


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True)


def make_videos(video_dir: Path) -> list[Path]:
    """The two clips (see the module docstring)."""
    if shutil.which("ffmpeg") is None or not SOURCE.is_file():
        sys.exit(f"needs the ffmpeg CLI and {SOURCE}")
    video_dir.mkdir(parents=True, exist_ok=True)
    first = video_dir / "vtest_768x576.avi"
    _ffmpeg("-i", str(SOURCE), "-t", str(CLIP_SECONDS), "-c", "copy", str(first))
    second = video_dir / "vtest_426x240.mp4"
    tags = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"]
    _ffmpeg(
        *("-i", str(SOURCE), "-t", str(CLIP_SECONDS), "-vf", "scale=426:240", "-r", "25"),
        *("-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18", *tags, str(second)),
    )
    return [first, second]


def make_dataset(root: Path) -> dict[str, tuple[int, int]]:
    """Videos, frames, frame list and annotations under `root`; returns {video id: (w, h)}."""
    import numpy as np

    from detection.ava.csv_io import write_excluded_timestamps
    from detection.ava.labelmap import read_labelmap
    from detection.ava.packaged import packaged_labelmap_path
    from detection.data.extract import extract_videos, write_frame_list
    from detection.data.video import VideoReader
    from detection.person import build_detector

    videos = make_videos(root / "videos")
    done = {e.video_id: e.num_frames for e in extract_videos(videos, root / "frames")}
    ids = [v.stem for v in videos]
    (root / "frame_lists").mkdir(exist_ok=True)
    write_frame_list(root / "frame_lists" / "val.csv", ids, done)

    sizes = {}
    for video in videos:
        with VideoReader(video) as reader:
            frame = reader.read_at_times([0.0])[0]
            sizes[video.stem] = (frame.shape[1], frame.shape[0])

    # Person boxes of the 768x576 clip; normalized, the same boxes fit the other clip.
    detector = build_detector("hog")
    boxes: dict[int, list[tuple[list[float], float]]] = {}
    with VideoReader(videos[0]) as reader:
        for sec in KEYFRAME_SECONDS:
            image = reader.read_at_times([float(sec - 900)])[0]
            found = detector.detect(image)
            h, w = image.shape[:2]
            boxes[sec] = [
                ([round(float(v), 3) for v in b / np.array([w, h, w, h])], round(float(s), 6))
                for b, s in zip(found.boxes, found.scores, strict=True)
            ]
    rng = np.random.default_rng(SEED)
    pred_rows, gt_rows = [], []
    for video_id in ids:
        for sec, people in boxes.items():
            for person_id, (box, score) in enumerate(people):
                coords = ",".join(f"{v:.3f}" for v in box)
                if sec == 903 and person_id == 0:
                    score = SCORE_THRESH  # exactly at the threshold: kept by both
                pred_rows.append(f"{video_id},{sec},{coords},,{score:.6f}")
                if rng.random() < 0.2:
                    continue  # a detection without ground truth
                jitter = np.clip(np.array(box) + rng.normal(0, 0.01, 4), 0, 1)
                x1, y1, x2, y2 = jitter
                gt = f"{min(x1, x2):.3f},{min(y1, y2):.3f},{max(x1, x2):.3f},{max(y1, y2):.3f}"
                for action in rng.choice(CLASSES, size=rng.integers(1, 3), replace=False):
                    gt_rows.append(f"{video_id},{sec},{gt},{action},{person_id}")
            # Below the threshold: dropped by both.
            pred_rows.append(f"{video_id},{sec},0.100,0.100,0.300,0.600,,0.500000")
        gt_rows.append(f"{video_id},905,0.400,0.200,0.500,0.700,{CLASSES[0]},99")
    annotations = root / "annotations"
    annotations.mkdir(exist_ok=True)
    (annotations / "ava_val_predicted_boxes.csv").write_text("\n".join(pred_rows) + "\n")
    (annotations / "ava_val_v2.2.csv").write_text("\n".join(gt_rows) + "\n")
    write_excluded_timestamps(annotations / "ava_val_excluded_timestamps_v2.2.csv", [EXCLUDED])
    names = read_labelmap(packaged_labelmap_path()).names
    # PySlowFast's label-map reader wants exactly this indentation.
    (annotations / "ava_action_list_v2.2_for_activitynet_2019.pbtxt").write_text(
        "".join(f'item {{\n  name: "{names[c]}"\n  id: {c}\n}}\n' for c in CLASSES)
    )
    return sizes


def common_opts(root: Path) -> list[str]:
    """Config values both test runs share (data, boxes, width)."""
    return [
        *("RESNET.WIDTH_PER_GROUP", WIDTH),
        *("AVA.DETECTION_SCORE_THRESH", str(SCORE_THRESH)),
        *("AVA.TEST_PREDICT_BOX_LISTS", '["ava_val_predicted_boxes.csv"]'),
        *("AVA.FRAME_DIR", str(root / "frames")),
        *("AVA.FRAME_LIST_DIR", str(root / "frame_lists")),
        *("AVA.ANNOTATION_DIR", str(root / "annotations")),
        *("DATA_LOADER.NUM_WORKERS", "0"),
    ]


def pyslowfast_env(args: argparse.Namespace, shim: Path) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(args.pyslowfast), str(shim), *map(str, args.pyslowfast_pythonpath)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def write_shim(shim: Path, checkout: Path) -> None:
    """``vision.fair.slowfast`` = the checkout (its internal import name)."""
    package = shim / "vision" / "fair" / "slowfast"
    package.mkdir(parents=True, exist_ok=True)
    (shim / "vision" / "__init__.py").write_text("")
    (shim / "vision" / "fair" / "__init__.py").write_text("")
    (package / "__init__.py").write_text(f"__path__.append({str(checkout)!r})\n")


def run_logged(cmd: list[str], log: Path, **kwargs) -> None:
    with log.open("w") as f:
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, **kwargs)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} ... failed (exit {done.returncode}); see {log}")


def read_rows(path: Path) -> dict[tuple, float]:
    """{(video, second, x1, y1, x2, y2, action): score} of a detections CSV."""
    rows = {}
    for line in path.read_text().splitlines():
        v, s, x1, y1, x2, y2, a, score = line.split(",")
        key = (v, int(s), *(f"{float(c):.3f}" for c in (x1, y1, x2, y2)), int(a))
        if key in rows:
            sys.exit(f"{path}: row {key} appears twice")
        rows[key] = float(score)
    return rows


def raw_pyslowfast_rows(kept: dict) -> dict[tuple, float]:
    """Same keys as `read_rows`, with PySlowFast's scores at full precision."""
    rows = {}
    for pred, box, (video_idx, sec) in zip(
        kept["preds"], kept["boxes"], kept["metadata"], strict=True
    ):
        video = kept["video_names"][round(video_idx)]
        coords = tuple(f"{c:.3f}" for c in box[1:])
        for i, score in enumerate(pred):
            if i + 1 in CLASSES:
                rows[(video, round(sec), *coords, i + 1)] = score
    return rows


def compare(ours: dict, theirs: dict, video: str) -> tuple[int, float, int]:
    keys = sorted(k for k in theirs if k[0] == video)
    mine = sorted(k for k in ours if k[0] == video)
    if keys != mine:
        sys.exit(f"{video}: the two CSVs score different rows ({len(mine)} vs {len(keys)})")
    diffs = [abs(ours[k] - theirs[k]) for k in keys]
    return len(keys), max(diffs), sum(d > CSV_ROUNDING for d in diffs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pyslowfast", type=Path, required=True, help="PySlowFast checkout")
    parser.add_argument(
        "--pyslowfast-python", default=sys.executable, help="python that can import PySlowFast"
    )
    parser.add_argument(
        "--pyslowfast-pythonpath",
        type=Path,
        nargs="*",
        default=[],
        help="folders added to PySlowFast's PYTHONPATH (after the checkout)",
    )
    parser.add_argument("--work", type=Path, help="work folder, kept (default: a temporary one)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the dataset and checkpoint a previous run left in --work",
    )
    args = parser.parse_args()
    args.pyslowfast = args.pyslowfast.resolve()
    if not (args.pyslowfast / "tools" / "run_net.py").is_file():
        sys.exit(f"{args.pyslowfast}: not a PySlowFast checkout (no tools/run_net.py)")

    with tempfile.TemporaryDirectory() as tmp:
        work = (args.work or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        root = work / "ava"
        print(f"work folder: {work}", flush=True)
        done = root / "sizes.json"
        if args.reuse and done.is_file():
            sizes = json.loads(done.read_text())
        else:
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            sizes = make_dataset(root)
            done.write_text(json.dumps(sizes))
        write_shim(work / "shim", args.pyslowfast)
        env = pyslowfast_env(args, work / "shim")
        me = str(Path(__file__).resolve())
        opts = common_opts(root)

        job = work / "pyslowfast_job"
        checkpoint = job / "checkpoints" / "checkpoint_epoch_00001.pyth"
        if not (args.reuse and checkpoint.is_file()):
            print("PySlowFast: checkpoint", flush=True)
            run_logged(
                [
                    *(args.pyslowfast_python, me, "_make_checkpoint", str(args.pyslowfast)),
                    *(str(job), *opts, "NUM_GPUS", "0", "TEST.BATCH_SIZE", "1"),
                ],
                work / "make_checkpoint.log",
                env=env,
            )

        print("PySlowFast: test", flush=True)
        theirs_dir = work / "pyslowfast_test"
        theirs_dir.mkdir(exist_ok=True)
        test_opts = [
            *opts,
            *("TRAIN.ENABLE", "False", "TEST.ENABLE", "True", "NUM_GPUS", "0"),
            *("TEST.BATCH_SIZE", "1", "LOG_MODEL_INFO", "False"),
            *("TEST.CHECKPOINT_FILE_PATH", str(checkpoint), "OUTPUT_DIR", str(theirs_dir)),
        ]
        kept_path = work / "pyslowfast_scores.json"
        run_logged(
            [
                *(args.pyslowfast_python, me, "_test", str(args.pyslowfast), str(kept_path)),
                *("--cfg", str(args.pyslowfast / PYSLOWFAST_CONFIG), "--opts", *test_opts),
            ],
            work / "pyslowfast_test.log",
            env=env,
            cwd=theirs_dir,
        )
        kept = json.loads(kept_path.read_text())
        if kept["weights_not_loaded"]:
            sys.exit(f"PySlowFast left weights at their init: {kept['weights_not_loaded'][:5]}")

        ours = {}
        for backend in ("frames", "video"):
            print(f"ours: test ({backend})", flush=True)
            out = work / f"ours_{backend}"
            run_logged(
                [
                    *(sys.executable, str(REPO / "tools" / "test_net.py")),
                    *("--config", str(OUR_CONFIG), *opts),
                    *("DATA.PATH_TO_DATA_DIR", str(root), "DATA.DECODING_BACKEND", backend),
                    *("DATA.VIDEO_FRAME_RULE", "ffmpeg", "DATA.VIDEO_COLOR", "jpeg_bt601"),
                    *("AVA.VIDEO_DIR", str(root / "videos"), "DEVICE", "cpu"),
                    *("TEST.CHECKPOINT_FILE_PATH", str(checkpoint), "OUTPUT_DIR", str(out)),
                ],
                work / f"ours_{backend}.log",
            )
            # We write every class of the model, PySlowFast only those of the label map.
            rows = read_rows(out / "detections.csv")
            ours[backend] = (
                {k: v for k, v in rows.items() if k[-1] in CLASSES},
                json.loads((out / "metrics.json").read_text()),
            )

        report(root, theirs_dir, kept, ours, sizes)


def report(root: Path, theirs_dir: Path, kept: dict, ours: dict, sizes: dict) -> None:
    from detection.evaluation.frame_map import evaluate_protocols

    theirs_csv = read_rows(theirs_dir / "detections_latest.csv")
    theirs_raw = raw_pyslowfast_rows(kept)
    annotations = root / "annotations"
    theirs_map = evaluate_protocols(
        annotations / "ava_action_list_v2.2_for_activitynet_2019.pbtxt",
        annotations / "ava_val_v2.2.csv",
        theirs_dir / "detections_latest.csv",
        annotations / "ava_val_excluded_timestamps_v2.2.csv",
    )

    print(
        f"\nPySlowFast test: {len(theirs_raw)} rows in {kept['batches']} batches; "
        f"rows beyond the CSV rounding: |diff| > {CSV_ROUNDING:.2e}"
    )
    header = (
        f"{'ours':<8}{'video':<16}{'size':>9}{'rows':>7}"
        f"{'max |d| CSV':>13}{'max |d| raw':>13}{'rows > rounding':>17}"
    )
    print(header)
    for backend, (rows, _) in ours.items():
        for video, (w, h) in sizes.items():
            n, d_csv, beyond = compare(rows, theirs_csv, video)
            _, d_raw, _ = compare(rows, theirs_raw, video)
            print(
                f"{backend:<8}{video:<16}{f'{w}x{h}':>9}{n:>7}"
                f"{d_csv:>13.2e}{d_raw:>13.2e}{beyond:>17}"
            )
    print(f"\n{'mAP':<12}{'ours frames':>13}{'ours video':>12}{'PySlowFast':>12}")
    for protocol in ("pyslowfast", "official"):
        values = [ours[b][1][protocol]["mAP"] for b in ("frames", "video")]
        theirs = theirs_map[protocol].mAP
        print(f"{protocol:<12}{values[0]:>13.6f}{values[1]:>12.6f}{theirs:>12.6f}")
    print(
        f"(PySlowFast column: our evaluator on its detections_latest.csv; its own in-memory "
        f"evaluation logged {kept['map']:.6f})"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_make_checkpoint":
        sys.path.insert(0, sys.argv[2])
        _pyslowfast_make_checkpoint(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif len(sys.argv) > 1 and sys.argv[1] == "_test":
        _pyslowfast_test(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        main()
