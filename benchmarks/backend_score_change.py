"""How much the video backend's frame and colour rules move a model's scores.

Scores the same keyframes and person boxes of a real clip with a narrow SlowFast (the
SLOWFAST_32x2_R50 layout at RESNET.WIDTH_PER_GROUP 8, seeded weights with random BatchNorm
statistics so that scores spread) read three ways:

- ``old``: the decoded frame nearest i / 30 s and the stream's own colour matrix (the backend
  before ffmpeg's rules: ``frame_rule="nearest", color="stream"``);
- ``frames only``: ffmpeg's frame choice with the stream's colours;
- ``new``: ffmpeg's frame choice and the colours OpenCV reads from ffmpeg's JPEGs (the default).

The default clip is OpenCV's vtest.avi re-encoded by the ffmpeg CLI as 1280x720 H.264 at 25 fps
tagged BT.709 (the case where both rules matter); give ``--video`` for another.

    .venv/bin/python benchmarks/backend_score_change.py [--video CLIP] [--seconds 1 2 3]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from model_helpers import randomize_batchnorm  # noqa: E402

from detection.ava.labelmap import read_labelmap  # noqa: E402
from detection.ava.packaged import packaged_labelmap_path  # noqa: E402
from detection.config import load_config  # noqa: E402
from detection.data.video import VideoReader  # noqa: E402
from detection.engine.predictor import ActionPredictor, ClipFormat  # noqa: E402
from detection.models import build_model  # noqa: E402
from detection.person import build_detector  # noqa: E402

SOURCE = REPO.parent / "shared" / "media" / "vtest.avi"
READERS = {
    "old": {"frame_rule": "nearest", "color": "stream"},
    "frames only": {"frame_rule": "ffmpeg", "color": "stream"},
    "new": {"frame_rule": "ffmpeg", "color": "jpeg_bt601"},
}


def make_hd_clip(directory: Path) -> Path:
    if shutil.which("ffmpeg") is None or not SOURCE.is_file():
        sys.exit(f"needs the ffmpeg CLI and {SOURCE}, or give --video")
    out = directory / "vtest_720p25_bt709.mp4"
    tags = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"]
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(SOURCE),
            "-t",
            "4.5",
            "-vf",
            "scale=1280:720",
            "-r",
            "25",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-crf",
            "18",
            *tags,
            str(out),
        ],
        check=True,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, help="clip to score (default: see above)")
    parser.add_argument("--seconds", type=float, nargs="+", default=[1.5, 2.0, 2.5, 3.0])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        video = args.video or make_hd_clip(Path(tmp))
        cfg = load_config(
            str(REPO / "configs/AVA/SLOWFAST_32x2_R50.yaml"),
            ["RESNET.WIDTH_PER_GROUP", "8", "DEVICE", "cpu"],
        )
        torch.manual_seed(0)
        model = randomize_batchnorm(build_model(cfg))
        predictor = ActionPredictor(
            model,
            build_detector("hog"),
            read_labelmap(packaged_labelmap_path()),
            clip_format=ClipFormat.from_config(cfg),
        )
        scores: dict[str, list[np.ndarray]] = {name: [] for name in READERS}
        boxes_per_second = []
        with VideoReader(video) as reader:
            for t in args.seconds:
                keyframe = reader.read_at_times([t])[0]
                boxes_per_second.append(predictor.detect(keyframe).boxes)
        for name, options in READERS.items():
            with VideoReader(video, **options) as reader:
                for t, boxes in zip(args.seconds, boxes_per_second, strict=True):
                    clip = reader.read_at_times(
                        predictor.clip_format.clip_times(t, reader.duration)
                    )
                    scores[name].append(predictor(clip, boxes).action_scores)

    new = np.concatenate(scores["new"])
    print(
        f"video: {video}; keyframes {args.seconds}; "
        f"{len(new)} person boxes x {new.shape[1]} classes"
    )
    print(f"{'reader':<14}{'max |score - new|':>20}{'mean |score - new|':>20}")
    for name in READERS:
        diff = np.abs(np.concatenate(scores[name]) - new)
        print(f"{name:<14}{diff.max():>20.2e}{diff.mean():>20.2e}")


if __name__ == "__main__":
    main()
