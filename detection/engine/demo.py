"""Action detection on a user's video: person boxes on keyframes, SlowFast action scores, an
annotated H.264 video, and the AVA-format CSV and JSON of the scores.

The video is streamed twice and never held in memory: pass 1 seeks to each keyframe and decodes
only its clip (detector + action model), pass 2 decodes the span frame by frame, draws the
predictions of the nearest keyframe (so labels stay on screen between keyframes) and encodes.
Peak memory is one clip plus the per-keyframe predictions, whatever the length of the video.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from yacs.config import CfgNode

from detection.ava.csv_io import write_detections
from detection.ava.labelmap import LabelMap, read_labelmap
from detection.ava.packaged import packaged_labelmap_path
from detection.checkpoint import load_checkpoint
from detection.config import load_config
from detection.data.sampling import clip_times, pack_pathways
from detection.data.transforms import test_transform
from detection.data.video import VideoReader
from detection.errors import UserError
from detection.models import build_model
from detection.models.optimize import optimize_for_inference
from detection.person import PersonDetections, build_detector_from_cfg
from detection.utils.atomic import atomic_write
from detection.visualization import Mp4Writer, draw_banner, draw_detections

UNTRAINED_NOTICE = "UNTRAINED action model: scores are meaningless"


class DemoError(UserError, RuntimeError):
    """A user mistake the demo reports in one line (bad span, label map that does not fit...)."""


@dataclass
class KeyframePrediction:
    """Everything predicted on one keyframe.

    boxes: float32 [N, 4] (x1, y1, x2, y2) in original pixels; person_scores: [N];
    action_scores: float32 [N, C], column i = action id i + 1.
    """

    time_s: float
    frame_size: tuple[int, int]
    boxes: np.ndarray
    person_scores: np.ndarray
    action_scores: np.ndarray

    @property
    def normalized_boxes(self) -> np.ndarray:
        """boxes divided by the keyframe's width and height: float32 [N, 4] in [0, 1]."""
        height, width = self.frame_size
        return self.boxes / np.array([width, height, width, height], np.float32)


@dataclass
class StageTimes:
    """Wall seconds per pipeline stage, summed over the run."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


@dataclass
class DemoResult:
    predictions: list[KeyframePrediction]
    frames_written: int
    fps: float
    span_s: tuple[float, float]
    times: StageTimes
    untrained: bool


def keyframe_times(start_s: float, end_s: float, per_second: float) -> np.ndarray:
    """Keyframes every ``1 / per_second`` s from the first whole multiple of that period at or
    after `start_s`, strictly before `end_s`: float64 [N]. With 1 per second they are the whole
    seconds of the span, as AVA's keyframes are."""
    if per_second <= 0:
        raise DemoError(f"DEMO.KEYFRAMES_PER_SEC must be > 0, got {per_second}")
    first = math.ceil(start_s * per_second - 1e-9)
    last = math.ceil(end_s * per_second - 1e-9)
    return np.arange(first, last, dtype=np.float64) / per_second


def nearest_keyframe(keyframes: np.ndarray, t: float) -> int:
    """Index of the keyframe nearest time `t` (the earlier one on a tie)."""
    i = int(np.searchsorted(keyframes, t))
    if i == 0:
        return 0
    if i == len(keyframes) or t - keyframes[i - 1] <= keyframes[i] - t:
        return i - 1
    return i


def top_actions(
    scores: np.ndarray, labelmap: LabelMap, threshold: float, top_k: int
) -> list[tuple[int, str, float]]:
    """The `top_k` best (action id, name, score) of one person with score >= `threshold`, among
    the classes the label map names. scores: [C], column i = action id i + 1."""
    ranked = [
        (action_id, labelmap.names[action_id], float(scores[action_id - 1]))
        for action_id in labelmap.ids
        if scores[action_id - 1] >= threshold
    ]
    ranked.sort(key=lambda item: -item[2])
    return ranked[:top_k]


def load_action_model(cfg: CfgNode, device: torch.device) -> tuple[torch.nn.Module, bool]:
    """The action model in eval mode and whether it is untrained (no MODEL.WEIGHTS given).

    On CPU it is the `optimize_for_inference` copy (BN folded, channels-last matrix products):
    the same scores up to float rounding, in about 0.7x the time (benchmarks/model_forward.py).
    """
    model = build_model(cfg)
    weights = cfg.MODEL.WEIGHTS
    if weights:
        load_checkpoint(weights, model)
    model = model.to(device).eval()
    if device.type == "cpu":
        model = optimize_for_inference(model)
    return model, not weights


def _label_map_for(cfg: CfgNode) -> LabelMap:
    labelmap = read_labelmap(cfg.DEMO.LABEL_FILE_PATH or packaged_labelmap_path())
    too_big = [i for i in labelmap.ids if i > cfg.MODEL.NUM_CLASSES]
    if too_big:
        raise DemoError(
            f"label map {cfg.DEMO.LABEL_FILE_PATH or packaged_labelmap_path()} names action ids "
            f"{too_big[:5]} but the model scores only MODEL.NUM_CLASSES={cfg.MODEL.NUM_CLASSES}"
        )
    return labelmap


def _resolve_span(reader: VideoReader, start_s: float, end_s: float | None) -> tuple[float, float]:
    end = reader.duration if end_s is None else min(end_s, reader.duration)
    if start_s < 0 or start_s >= end:
        raise DemoError(
            f"{reader.path}: span --start {start_s} --end {end_s} is empty; the video lasts "
            f"{reader.duration:.2f} s"
        )
    return start_s, end


@torch.inference_mode()
def predict_keyframe(
    cfg: CfgNode,
    model: torch.nn.Module,
    detector,
    reader: VideoReader,
    time_s: float,
    video_id: str,
    ava_timestamp: int,
    device: torch.device,
    times: StageTimes,
) -> KeyframePrediction:
    """Detect persons on the keyframe at `time_s` and score their actions on the clip around it."""
    sample_times = clip_times(
        time_s,
        cfg.DATA.NUM_FRAMES,
        cfg.DATA.SAMPLING_RATE,
        fps=cfg.AVA.FPS,
        duration_s=reader.duration,
    )
    with times.measure("decode"):
        frames = reader.read_at_times(sample_times)
    # The clip is centred on the keyframe: its middle sample is the frame nearest `time_s`.
    keyframe = frames[len(frames) // 2]
    height, width = keyframe.shape[:2]
    with times.measure("detect"):
        persons: PersonDetections = detector.detect(
            keyframe, video_id=video_id, timestamp=ava_timestamp
        )
    num_classes = cfg.MODEL.NUM_CLASSES
    if len(persons.boxes) == 0:
        return KeyframePrediction(
            time_s,
            (height, width),
            persons.boxes,
            persons.scores,
            np.zeros((0, num_classes), np.float32),
        )
    with times.measure("preprocess"):
        boxes_norm = persons.boxes / np.array([width, height, width, height], np.float32)
        clip, boxes_px = test_transform(
            frames,
            boxes_norm,
            short_side=cfg.DATA.TEST_CROP_SIZE,
            mean=cfg.DATA.MEAN,
            std=cfg.DATA.STD,
            bgr=cfg.AVA.BGR,
        )
        inputs = [
            p.unsqueeze(0).to(device)
            for p in pack_pathways(clip, cfg.MODEL.ARCH, cfg.SLOWFAST.ALPHA)
        ]
        rois = torch.cat([torch.zeros(len(boxes_px), 1), boxes_px], dim=1).to(device)
    with times.measure("action_model"):
        scores = model(inputs, rois).float().cpu().numpy()
    return KeyframePrediction(time_s, (height, width), persons.boxes, persons.scores, scores)


def run_demo(
    cfg: CfgNode,
    input_path: str | Path,
    output_video: str | Path,
    *,
    output_csv: str | Path | None = None,
    output_json: str | Path | None = None,
    start_s: float = 0.0,
    end_s: float | None = None,
    ava_second_offset: int = 0,
    show_progress: bool = True,
) -> DemoResult:
    """Run the whole demo on `input_path[start_s, end_s)` and write the requested outputs.

    The CSV holds one row per (keyframe at a whole second, person, action) in the official AVA
    format, with timestamp = keyframe second + `ava_second_offset` (900 for AVA's 15-minute cuts),
    so `tools/eval_ava.py` reads it; keyframes between whole seconds are in the JSON only.
    """
    input_path = Path(input_path)
    device = torch.device(
        "cuda" if cfg.DEVICE in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    )
    labelmap = _label_map_for(cfg)
    model, untrained = load_action_model(cfg, device)
    detector = build_detector_from_cfg(cfg)
    times = StageTimes()
    video_id = input_path.stem

    with VideoReader(input_path) as reader:
        span = _resolve_span(reader, start_s, end_s)
        keyframes = keyframe_times(*span, cfg.DEMO.KEYFRAMES_PER_SEC)
        if len(keyframes) == 0:
            keyframes = np.array([span[0]])
        predictions = [
            predict_keyframe(
                cfg,
                model,
                detector,
                reader,
                float(t),
                video_id,
                int(round(t)) + ava_second_offset,
                device,
                times,
            )
            for t in tqdm(keyframes, desc="keyframes", unit="kf", disable=not show_progress)
        ]
        frames_written = _write_video(
            cfg,
            reader,
            span,
            keyframes,
            predictions,
            labelmap,
            untrained,
            output_video,
            times,
            show_progress,
        )
        fps = reader.fps

    if output_csv is not None:
        with times.measure("write_results"):
            _write_csv(output_csv, predictions, video_id, ava_second_offset)
    if output_json is not None:
        with times.measure("write_results"):
            _write_json(output_json, cfg, predictions, labelmap, input_path, untrained)
    return DemoResult(predictions, frames_written, fps, span, times, untrained)


def _write_video(
    cfg,
    reader,
    span,
    keyframes,
    predictions,
    labelmap,
    untrained,
    output_video,
    times,
    show_progress,
) -> int:
    labels_per_keyframe = [
        [
            top_actions(scores, labelmap, cfg.DEMO.ACTION_SCORE_THRESH, cfg.DEMO.TOP_K)
            for scores in prediction.action_scores
        ]
        for prediction in predictions
    ]
    expected = max(1, round((span[1] - span[0]) * reader.fps))
    count = 0
    frames = reader.iter_frames(*span)
    with (
        Mp4Writer(output_video, fps=reader.fps) as writer,
        tqdm(total=expected, desc="video", unit="frame", disable=not show_progress) as bar,
    ):
        while True:
            with times.measure("decode"):
                item = next(frames, None)
            if item is None:
                break
            frame, t = item
            with times.measure("draw"):
                k = nearest_keyframe(keyframes, t)
                prediction = predictions[k]
                frame = draw_detections(
                    frame,
                    prediction.boxes,
                    labels_per_keyframe[k],
                    person_scores=prediction.person_scores,
                )
                if untrained:
                    frame = draw_banner(frame, UNTRAINED_NOTICE)
            with times.measure("encode"):
                writer.write(frame)
            count += 1
            bar.update()
        with times.measure("encode"):
            writer.close()
    return count


def _write_csv(path, predictions: list[KeyframePrediction], video_id: str, offset: int) -> None:
    whole_seconds = [p for p in predictions if float(p.time_s).is_integer()]
    num_classes = predictions[0].action_scores.shape[1]
    timestamps = [int(p.time_s) + offset for p in whole_seconds for _ in range(len(p.boxes))]
    boxes = np.concatenate([p.normalized_boxes for p in whole_seconds] or [np.zeros((0, 4))])
    scores = np.concatenate(
        [p.action_scores for p in whole_seconds] or [np.zeros((0, num_classes))]
    )
    action_ids = list(range(1, num_classes + 1))
    write_detections(path, [video_id] * len(timestamps), timestamps, boxes, scores, action_ids)


def _write_json(path, cfg, predictions, labelmap, input_path, untrained) -> None:
    doc = {
        "video": str(input_path),
        "untrained_action_model": untrained,
        "action_weights": cfg.MODEL.WEIGHTS or None,
        "keyframes": [
            {
                "time_s": p.time_s,
                "persons": [
                    {
                        "box_xyxy_px": [round(float(v), 2) for v in p.boxes[i]],
                        "person_score": float(p.person_scores[i]),
                        "actions": [
                            {"id": a, "name": n, "score": round(s, 5)}
                            for a, n, s in top_actions(
                                p.action_scores[i],
                                labelmap,
                                cfg.DEMO.ACTION_SCORE_THRESH,
                                cfg.DEMO.TOP_K,
                            )
                        ],
                    }
                    for i in range(len(p.boxes))
                ],
            }
            for p in predictions
        ],
    }
    with atomic_write(path) as f:
        json.dump(doc, f, indent=1)


def run_demo_from_args(args) -> DemoResult:
    """`tools/demo_net.py`'s arguments -> outputs on disk and a summary on stdout."""
    opts = list(args.opts)
    if args.detector:
        opts += ["DEMO.DETECTOR", args.detector]
    cfg = load_config(args.config, opts)
    input_path = Path(args.input)
    output = (
        Path(args.output) if args.output else Path("demo_output") / f"{input_path.stem}_actions.mp4"
    )
    csv_path = Path(args.csv) if args.csv else output.with_suffix(".csv")
    json_path = Path(args.json) if args.json else output.with_suffix(".json")
    if not cfg.MODEL.WEIGHTS:
        print(
            f"note: no MODEL.WEIGHTS given, {UNTRAINED_NOTICE}. "
            "README shows how to use the official AVA checkpoint."
        )
    result = run_demo(
        cfg,
        input_path,
        output,
        output_csv=csv_path,
        output_json=json_path,
        start_s=args.start,
        end_s=args.end,
        ava_second_offset=args.ava_second_offset,
        show_progress=not args.quiet,
    )
    persons = sum(len(p.boxes) for p in result.predictions)
    print(
        f"{len(result.predictions)} keyframes, {persons} person boxes, {result.frames_written} "
        f"frames at {result.fps:g} fps\nwrote {output}\nwrote {csv_path}\nwrote {json_path}"
    )
    return result
