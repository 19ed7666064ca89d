"""`ActionPredictor`: the action model, the person detector and the label map, loaded once, then
called per clip (detectron2's `DefaultPredictor` idea). Apps, the demo loop and the streaming
engine call it; it knows nothing of files, videos or command lines.

A clip is what `ClipFormat.clip_times` asks for: uint8 RGB frames [T, H, W, 3] on the 30 fps
time grid, the keyframe in the middle (index T // 2). Person boxes are x1, y1, x2, y2 in the
clip's pixels; given none, the predictor detects persons on the keyframe.

    predictor = ActionPredictor.from_config(cfg)
    frames = reader.read_at_times(predictor.clip_format.clip_times(12.0, reader.duration))
    result = predictor(frames)                     # ClipPrediction
    result.action_scores                           # float32 [N, C], column i = action id i + 1
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode

from detection.ava.labelmap import LabelMap, read_labelmap
from detection.ava.packaged import packaged_labelmap_path
from detection.checkpoint import load_checkpoint
from detection.data.sampling import clip_frame_indices, clip_times, pack_pathways
from detection.data.transforms import test_transform
from detection.errors import UserError
from detection.models import build_model
from detection.models.optimize import optimize_for_inference
from detection.person import PersonDetections, PersonDetector, build_detector_from_cfg
from detection.structures.boxes import normalize_boxes
from detection.utils.device import resolve_device

PersonBoxes = PersonDetections | np.ndarray
"""Persons of one clip: detections with scores, or pixel boxes [N, 4] alone (scored 1.0)."""


class ExportedModel(Protocol):
    """An exported-model runtime of `detection.export`: called like the PyTorch model, runs on
    the CPU, knows its number of classes."""

    @property
    def num_classes(self) -> int: ...

    def __call__(self, inputs: Sequence[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor: ...


ActionModel = nn.Module | ExportedModel
"""The action network, `model(pathways, boxes [K, 5]) -> scores [K, C]`."""


class PredictorError(UserError, ValueError):
    """The parts given to the predictor do not fit together (a label map naming more actions
    than the model scores)."""


@dataclass
class StageTimes:
    """Wall seconds per pipeline stage ("detect", "preprocess", "action_model", ...), summed."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


@dataclass(frozen=True)
class ClipPrediction:
    """Persons and their action scores on one clip's keyframe.

    boxes: float32 [N, 4], x1, y1, x2, y2 in the keyframe's pixels; person_scores: float32 [N]
    (1.0 for boxes given without scores); action_scores: float32 [N, C], column i = AVA action
    id i + 1; frame_size: (height, width) of the keyframe.
    """

    boxes: np.ndarray
    person_scores: np.ndarray
    action_scores: np.ndarray
    frame_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def normalized_boxes(self) -> np.ndarray:
        """boxes as fractions of the keyframe's width and height: float32 [N, 4]."""
        return normalize_boxes(self.boxes, *self.frame_size)


@dataclass(frozen=True)
class ClipFormat:
    """Which frames make a clip and how they become the model's input (defaults: SlowFast
    32x2 R50 on AVA, as PySlowFast publishes it).

    num_frames, sampling_rate, fps: the clip is `num_frames` frames `sampling_rate` apart on an
    `fps` time grid (AVA: 30), centred on the keyframe. short_side, mean, std, bgr: test-time
    scaling and normalization. arch, alpha: "slowfast" (Slow takes num_frames // alpha frames)
    or "slow".
    """

    num_frames: int = 32
    sampling_rate: int = 2
    fps: float = 30.0
    short_side: int = 256
    mean: tuple[float, ...] = (0.45, 0.45, 0.45)
    std: tuple[float, ...] = (0.225, 0.225, 0.225)
    bgr: bool = False
    arch: str = "slowfast"
    alpha: int = 4

    @classmethod
    def from_config(cls, cfg: CfgNode) -> ClipFormat:
        """DATA.NUM_FRAMES, DATA.SAMPLING_RATE, AVA.FPS, DATA.TEST_CROP_SIZE, DATA.MEAN/STD,
        AVA.BGR, MODEL.ARCH, SLOWFAST.ALPHA."""
        return cls(
            num_frames=cfg.DATA.NUM_FRAMES,
            sampling_rate=cfg.DATA.SAMPLING_RATE,
            fps=cfg.AVA.FPS,
            short_side=cfg.DATA.TEST_CROP_SIZE,
            mean=tuple(cfg.DATA.MEAN),
            std=tuple(cfg.DATA.STD),
            bgr=cfg.AVA.BGR,
            arch=cfg.MODEL.ARCH,
            alpha=cfg.SLOWFAST.ALPHA,
        )

    @property
    def clip_length(self) -> int:
        """T, the number of frames of a clip."""
        return len(clip_frame_indices(0, self.num_frames, self.sampling_rate, 1))

    def clip_times(self, keyframe_s: float, duration_s: float | None = None) -> np.ndarray:
        """Times (s from the start of the video) of the clip centred on `keyframe_s`: float64
        [T], clamped to the video when its `duration_s` is given. `VideoReader.read_at_times`
        turns them into the frames the predictor takes."""
        return clip_times(
            keyframe_s, self.num_frames, self.sampling_rate, fps=self.fps, duration_s=duration_s
        )

    def preprocess(
        self, frames: np.ndarray, boxes_px: np.ndarray
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """One clip (uint8 RGB [T, H, W, 3]) and its pixel boxes [N, 4] -> the pathway inputs
        (SlowFast: [slow [3, T // alpha, H', W'], fast [3, T, H', W']]) and the boxes in the
        scaled clip's pixels, float32 [N, 4]."""
        height, width = frames.shape[1:3]
        clip, boxes = test_transform(
            frames,
            normalize_boxes(boxes_px, height, width),
            short_side=self.short_side,
            mean=self.mean,
            std=self.std,
            bgr=self.bgr,
        )
        return pack_pathways(clip, self.arch, self.alpha), boxes


def read_labelmap_for(path: str, num_classes: int) -> LabelMap:
    """The label map at `path` (the packaged 80-class AVA map when empty), checked against the
    model's `num_classes`: a map naming a larger action id is a `PredictorError` naming both."""
    source = path or packaged_labelmap_path()
    labelmap = read_labelmap(source)
    _check_labelmap(
        labelmap, num_classes, f"label map {source}", f"MODEL.NUM_CLASSES={num_classes}"
    )
    return labelmap


def _check_labelmap(labelmap: LabelMap, num_classes: int, source: str, classes: str) -> None:
    too_big = [i for i in labelmap.ids if i > num_classes]
    if too_big:
        raise PredictorError(
            f"{source} names action ids {too_big[:5]} but the model scores only {classes}"
        )


def load_action_model(cfg: CfgNode, device: torch.device) -> ActionModel:
    """The action model of MODEL.RUNTIME. "torch": `build_model(cfg)` with the MODEL.WEIGHTS
    checkpoint (random weights when empty), in eval mode on `device`; on CPU the
    `optimize_for_inference` copy (BN folded, channels-last matrix products): the same scores
    up to float rounding, in about 0.7x the time (benchmarks/model_forward.py). Otherwise the
    exported runtime of `detection.export.runtime_from_config` (CPU only: `device` must be the
    CPU), with torch's intra-op thread count."""
    if cfg.MODEL.RUNTIME != "torch":
        from detection.export import runtime_from_config

        _check_runtime_device(cfg, device)
        return runtime_from_config(cfg, cfg.MODEL.WEIGHTS or None, torch.get_num_threads())
    model: nn.Module = build_model(cfg)
    if cfg.MODEL.WEIGHTS:
        load_checkpoint(cfg.MODEL.WEIGHTS, model)
    model = model.to(device).eval()
    if device.type == "cpu":
        model = optimize_for_inference(model)
    return model


def runtime_device(cfg: CfgNode) -> torch.device:
    """Where the action model of `cfg` runs: `resolve_device(cfg.DEVICE)` for MODEL.RUNTIME
    torch; the CPU for the exported runtimes (DEVICE "cuda" with one is a `PredictorError`).
    An unknown MODEL.RUNTIME is a `RuntimeConfigError`."""
    from detection.export.runtime import check_runtime

    if check_runtime(cfg.MODEL.RUNTIME) == "torch":
        return resolve_device(cfg.DEVICE)
    _check_runtime_device(cfg, torch.device("cuda" if cfg.DEVICE == "cuda" else "cpu"))
    return torch.device("cpu")


def _check_runtime_device(cfg: CfgNode, device: torch.device) -> None:
    if device.type != "cpu":
        raise PredictorError(
            f"MODEL.RUNTIME {cfg.MODEL.RUNTIME} runs on the CPU, but DEVICE is {cfg.DEVICE!r}: "
            "use MODEL.RUNTIME torch on a GPU, or DEVICE cpu"
        )


def _num_classes_of(model: ActionModel) -> int:
    if not isinstance(model, nn.Module):
        return model.num_classes
    projection = getattr(getattr(model, "head", None), "projection", None)
    if not isinstance(projection, nn.Linear):
        raise TypeError(
            f"cannot tell how many classes {type(model).__name__} scores: pass num_classes"
        )
    return projection.out_features


def _device_of(model: ActionModel) -> torch.device:
    if not isinstance(model, nn.Module):
        return torch.device("cpu")
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


class ActionPredictor:
    """Person boxes and AVA action scores for clips, with every part loaded once.

    Args:
        model: the action network, called as ``model(pathways, boxes [K, 5])`` -> [K, C]
            scores (the `detection.models` contract); a module is put in eval mode here, an
            exported runtime (`detection.export`) runs on the CPU.
        detector: finds persons on keyframes; None when every call gives the boxes.
        labelmap: names of the action ids (the apps draw and print them); every id must be
            at most C.
        clip_format: clip sampling and preprocessing the model was trained with.
        num_classes: C; None reads it from the model's RoI head.
        device: where the model runs; None keeps the device of its parameters.
        weights: the checkpoint the model's weights came from (reported by the apps);
            untrained: True when the weights are random (the apps say so on every frame).
    """

    def __init__(
        self,
        model: ActionModel,
        detector: PersonDetector | None,
        labelmap: LabelMap,
        *,
        clip_format: ClipFormat | None = None,
        num_classes: int | None = None,
        device: torch.device | str | None = None,
        weights: str | None = None,
        untrained: bool = False,
    ) -> None:
        self.device = _device_of(model) if device is None else torch.device(device)
        self.model = model.to(self.device).eval() if isinstance(model, nn.Module) else model
        self.detector = detector
        self.num_classes = _num_classes_of(model) if num_classes is None else num_classes
        _check_labelmap(labelmap, self.num_classes, "the label map", f"{self.num_classes} classes")
        self.labelmap = labelmap
        self.clip_format = clip_format or ClipFormat()
        self.weights = weights
        self.untrained = untrained

    @classmethod
    def from_config(cls, cfg: CfgNode) -> ActionPredictor:
        """Everything from one config: DEVICE (`resolve_device`: "cuda" without a GPU is an
        error), DEMO.LABEL_FILE_PATH (the packaged 80-class map when empty), the model of
        MODEL.* with MODEL.WEIGHTS (random when empty: `untrained`) run by MODEL.RUNTIME
        (`load_action_model`; the exported runtimes on the CPU, the person detector still on
        DEVICE), the detector of DEMO.DETECTOR and the clip format of DATA.*/AVA.*."""
        device = resolve_device(cfg.DEVICE)
        model_device = runtime_device(cfg)
        labelmap = read_labelmap_for(cfg.DEMO.LABEL_FILE_PATH, cfg.MODEL.NUM_CLASSES)
        model = load_action_model(cfg, model_device)
        detector = build_detector_from_cfg(cfg, device=str(device))
        return cls(
            model,
            detector,
            labelmap,
            clip_format=ClipFormat.from_config(cfg),
            num_classes=cfg.MODEL.NUM_CLASSES,
            device=model_device,
            weights=cfg.MODEL.WEIGHTS or cfg.MODEL.EXPORT_FILE or None,
            untrained=not (cfg.MODEL.WEIGHTS or cfg.MODEL.EXPORT_FILE),
        )

    def __call__(
        self,
        frames: np.ndarray,
        persons: PersonBoxes | None = None,
        *,
        video_id: str | None = None,
        timestamp: float | None = None,
        times: StageTimes | None = None,
    ) -> ClipPrediction:
        """Score one clip, uint8 RGB [T, H, W, 3] with the keyframe at T // 2. `persons` in the
        clip's pixels, or None to detect them on the keyframe (`video_id` and `timestamp` are
        passed to the detector: the csv backend looks boxes up by them). `times` collects the
        seconds spent in "detect", "preprocess" and "action_model"."""
        return self.predict_batch(
            [frames], [persons], video_id=video_id, timestamps=[timestamp], times=times
        )[0]

    def detect(
        self,
        keyframe: np.ndarray,
        *,
        video_id: str | None = None,
        timestamp: float | None = None,
    ) -> PersonDetections:
        """Persons on one keyframe, uint8 RGB [H, W, 3], in its pixels."""
        if self.detector is None:
            raise ValueError("this predictor has no person detector: pass the person boxes")
        return self.detector.detect(keyframe, video_id=video_id, timestamp=timestamp)

    def detect_batch(
        self,
        keyframes: Sequence[np.ndarray],
        *,
        video_id: str | None = None,
        timestamps: Sequence[float | None] | None = None,
    ) -> list[PersonDetections]:
        """Persons on several keyframes (each uint8 RGB [H, W, 3]), one `PersonDetections` per
        keyframe in its pixels, equal to `detect` on each; `timestamps[i]` belongs to
        `keyframes[i]`. The batched backends run one forward pass per keyframe size."""
        if self.detector is None:
            raise ValueError("this predictor has no person detector: pass the person boxes")
        return self.detector.detect_batch(keyframes, video_id=video_id, timestamps=timestamps)

    @torch.inference_mode()
    def predict_batch(
        self,
        clips: Sequence[np.ndarray],
        persons: Sequence[PersonBoxes | None] | None = None,
        *,
        video_id: str | None = None,
        timestamps: Sequence[float | None] | None = None,
        times: StageTimes | None = None,
    ) -> list[ClipPrediction]:
        """Score several clips (each as in `__call__`) with one forward pass per clip size:
        clips of the same [T, H, W] are stacked into one batch; clips without persons are left
        out of it. `persons[i]` (None: detect) and `timestamps[i]` belong to `clips[i]`.
        Returns one `ClipPrediction` per clip, in order; scores equal those of one-by-one
        calls up to float rounding."""
        persons = [None] * len(clips) if persons is None else list(persons)
        timestamps = [None] * len(clips) if timestamps is None else list(timestamps)
        if not len(clips) == len(persons) == len(timestamps):
            raise ValueError(
                f"{len(clips)} clips but {len(persons)} person entries and "
                f"{len(timestamps)} timestamps"
            )
        for frames in clips:
            self._check_clip(frames)
        found = [
            self._persons_of(frames, given, video_id, timestamp, times)
            for frames, given, timestamp in zip(clips, persons, timestamps, strict=True)
        ]
        scores = [np.zeros((0, self.num_classes), np.float32) for _ in clips]
        by_size: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, frames in enumerate(clips):
            if len(found[i]) > 0:
                by_size[frames.shape].append(i)
        for members in by_size.values():
            batch_scores = self._forward(
                [clips[i] for i in members], [found[i] for i in members], times
            )
            for i, clip_scores in zip(members, batch_scores, strict=True):
                scores[i] = clip_scores
        return [
            ClipPrediction(p.boxes, p.scores, s, (int(f.shape[1]), int(f.shape[2])))
            for f, p, s in zip(clips, found, scores, strict=True)
        ]

    def _check_clip(self, frames: np.ndarray) -> None:
        expected = self.clip_format.clip_length
        if (
            not isinstance(frames, np.ndarray)
            or frames.dtype != np.uint8
            or frames.ndim != 4
            or frames.shape[0] != expected
            or frames.shape[3] != 3
        ):
            got = f"{frames.dtype} {list(frames.shape)}" if isinstance(frames, np.ndarray) else ""
            raise ValueError(
                f"a clip must be uint8 RGB [{expected}, H, W, 3] (clip_format.clip_times), "
                f"got {got or type(frames).__name__}"
            )

    def _persons_of(
        self,
        frames: np.ndarray,
        given: PersonBoxes | None,
        video_id: str | None,
        timestamp: float | None,
        times: StageTimes | None,
    ) -> PersonDetections:
        if isinstance(given, PersonDetections):
            return given
        if given is not None:
            boxes = np.asarray(given, dtype=np.float32)
            if boxes.ndim != 2 or boxes.shape[1] != 4:
                raise ValueError(f"person boxes must be [N, 4] pixels, got {list(boxes.shape)}")
            return PersonDetections(boxes, np.ones(len(boxes), np.float32))
        with _measure(times, "detect"):
            return self.detect(frames[len(frames) // 2], video_id=video_id, timestamp=timestamp)

    def _forward(
        self, clips: list[np.ndarray], persons: list[PersonDetections], times: StageTimes | None
    ) -> list[np.ndarray]:
        """One forward over clips of one size, each with at least one person: per clip float32
        [N_i, C]."""
        with _measure(times, "preprocess"):
            pathways: list[list[torch.Tensor]] = []
            rois = []
            for index, (frames, found) in enumerate(zip(clips, persons, strict=True)):
                inputs, boxes = self.clip_format.preprocess(frames, found.boxes)
                pathways.append(inputs)
                rois.append(torch.cat([torch.full((len(boxes), 1), float(index)), boxes], dim=1))
            batch = [torch.stack(p).to(self.device) for p in zip(*pathways, strict=True)]
            boxes_k5 = torch.cat(rois).to(self.device)
        with _measure(times, "action_model"):
            scores = self.model(batch, boxes_k5).float().cpu().numpy()
        counts = np.cumsum([len(found) for found in persons])[:-1]
        return np.split(scores, counts)


def _measure(times: StageTimes | None, stage: str) -> AbstractContextManager[None]:
    return times.measure(stage) if times is not None else nullcontext()
