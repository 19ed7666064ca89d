"""Detectron2 model-zoo detectors (default: COCO Faster R-CNN R50-FPN 3x), person = COCO class 0.

Detectron2 is an optional extra (`make detectron2`, see README) and is imported only here.

Weights are read without running code from the file: detectron2's `DetectionCheckpointer`
unpickles model-zoo ``.pkl`` files with the full pickle machinery, so instead the file goes
through `detection.checkpoint.read_checkpoint` (numpy arrays only for pickles, ``weights_only``
for torch files) and the state dict is loaded strictly: a missing, unexpected or mis-shaped key
is an error, where detectron2's checkpointer would only log it and go on.
Only checkpoints with detectron2's own parameter names are accepted (the model zoo's, or
those written by detectron2 training); Caffe2-era Detectron names are refused.

The inference steps are those of detectron2's ``DefaultPredictor``: the frame in the config's
channel order (BGR for the model zoo), ``ResizeShortestEdge(INPUT.MIN_SIZE_TEST,
INPUT.MAX_SIZE_TEST)``, and boxes scaled back to the frame by the model's postprocessing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from detection.checkpoint import CheckpointError, read_checkpoint
from detection.person.base import BatchedPersonDetector, PersonDetectorError

DEFAULT_CONFIG = "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml"
_MODEL_ZOO_URL = "https://dl.fbaipublicfiles.com/detectron2/"
# Official weights of the default config (detectron2's MODEL_ZOO.md lists the others).
_DEFAULT_WEIGHTS_URL = (
    _MODEL_ZOO_URL + "COCO-Detection/faster_rcnn_R_50_FPN_3x/137849458/model_final_280758.pkl"
)
COCO_PERSON_CLASS = 0

INSTALL_HELP = (
    "the detectron2 person detector needs the optional detectron2 package: run `make detectron2` "
    "(or `pip install -e '.[detectron2]' && bash tools/install_detectron2.sh`), or install "
    "detectron2 from its official source"
)


def _import_detectron2():
    try:
        import detectron2  # noqa: F401
    except ImportError as e:
        raise PersonDetectorError(f"{INSTALL_HELP} ({e})") from e
    from detectron2.config import get_cfg
    from detectron2.data import transforms
    from detectron2.modeling import build_model

    return get_cfg, build_model, transforms


def resolve_config(config: str | Path) -> Path:
    """A YAML path as given, or a model-zoo name such as
    "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml" looked up in the installed detectron2
    (without ``detectron2.model_zoo``, whose import needs the removed ``pkg_resources``)."""
    path = Path(config)
    if path.is_file():
        return path
    import detectron2

    zoo = Path(detectron2.__file__).parent / "model_zoo" / "configs"
    if (zoo / config).is_file():
        return zoo / config
    raise PersonDetectorError(
        f"detectron2 config {config!r} (DEMO.DETECTRON2_CFG) is neither a file nor a model-zoo "
        f"config under {zoo}"
    )


def weights_help(config: str | Path) -> str:
    if str(config) == DEFAULT_CONFIG:
        return f"the official file for {DEFAULT_CONFIG} is {_DEFAULT_WEIGHTS_URL}"
    return f"detectron2's MODEL_ZOO.md gives each config's model_final_*.pkl under {_MODEL_ZOO_URL}"


def load_detectron2_state_dict(path: str | Path, config: str | Path) -> dict[str, torch.Tensor]:
    """The "model" state dict of a detectron2 checkpoint (model-zoo .pkl of numpy arrays, or a
    torch file from detectron2 training), read safely."""
    path = Path(path)
    if not path.is_file():
        raise PersonDetectorError(
            f"detectron2 weights {path} not found (DEMO.DETECTRON2_WEIGHTS); download them and "
            f"pass the local path: {weights_help(config)}"
        )
    try:
        checkpoint = read_checkpoint(path)
    except CheckpointError as e:
        raise PersonDetectorError(str(e)) from e
    if checkpoint.get("matching_heuristics"):
        raise PersonDetectorError(
            f"{path} is a Caffe2-era Detectron checkpoint (matching_heuristics); only checkpoints "
            "with detectron2 parameter names are supported"
        )
    state = checkpoint.get("model", checkpoint)
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise PersonDetectorError(f"{path}: expected {{'model': {{name: array}}}}")
    return state


def _check_keys(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    mis_shaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = [
        f"{label} ({len(keys)}): {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch", mis_shaped),
        )
        if keys
    ]
    if problems:
        raise PersonDetectorError(
            f"{path} does not fit the detectron2 config's model: " + "; ".join(problems)
        )


class Detectron2PersonDetector(BatchedPersonDetector):
    """A detectron2 detector keeping the COCO "person" class.

    Args:
        config: model-zoo config name or YAML path (`DEMO.DETECTRON2_CFG`).
        weights: local weights file (`DEMO.DETECTRON2_WEIGHTS`), e.g. model_final_280758.pkl.
        score_thresh: minimum person score.
        device: torch device.
        min_size_test: override of INPUT.MIN_SIZE_TEST (800): 480 is about 2.5x faster on CPU
            for 480p video at some cost in small people.
        person_class: class index of "person" (0 in the COCO model zoo).
    """

    name = "detectron2"

    def __init__(
        self,
        config: str | Path = DEFAULT_CONFIG,
        weights: str | Path = "",
        score_thresh: float = 0.8,
        *,
        device: str | torch.device = "cpu",
        min_size_test: int | None = None,
        person_class: int = COCO_PERSON_CLASS,
    ):
        get_cfg, build_model, transforms = _import_detectron2()
        if not weights:
            raise PersonDetectorError(
                f"the detectron2 person detector needs a weights file (DEMO.DETECTRON2_WEIGHTS); "
                f"{weights_help(config)}"
            )
        config_path = resolve_config(config)
        path = Path(weights)
        state = load_detectron2_state_dict(path, config)
        cfg = get_cfg()
        cfg.merge_from_file(str(config_path))
        cfg.MODEL.DEVICE = str(device)
        cfg.MODEL.WEIGHTS = ""
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = float(score_thresh)
        cfg.MODEL.RETINANET.SCORE_THRESH_TEST = float(score_thresh)
        if min_size_test is not None:
            cfg.INPUT.MIN_SIZE_TEST = int(min_size_test)
        cfg.freeze()
        model = build_model(cfg).eval()
        _check_keys(model, state, path)
        model.load_state_dict(state, strict=True)
        self.cfg = cfg
        self.model = model
        self.score_thresh = float(score_thresh)
        self.person_class = int(person_class)
        self._resize = transforms.ResizeShortestEdge(
            [cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST
        )

    @torch.inference_mode()
    def _detect_same_size(
        self, frames_rgb: list[np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        found = []
        for output in self.model([self._input_of(frame) for frame in frames_rgb]):
            instances = output["instances"].to("cpu")
            person = instances.pred_classes == self.person_class
            found.append(
                (instances.pred_boxes.tensor[person].numpy(), instances.scores[person].numpy())
            )
        return found

    def _input_of(self, frame_rgb: np.ndarray) -> dict[str, torch.Tensor | int]:
        """The model's input dict of one frame: resized, in the config's channel order, float32
        [3, H', W'], with the frame's size for the postprocessing back to its pixels."""
        height, width = frame_rgb.shape[:2]
        image = frame_rgb[:, :, ::-1] if self.cfg.INPUT.FORMAT == "BGR" else frame_rgb
        image = self._resize.get_transform(image).apply_image(image)
        tensor = torch.as_tensor(image.astype(np.float32).transpose(2, 0, 1))
        return {"image": tensor, "height": height, "width": width}
