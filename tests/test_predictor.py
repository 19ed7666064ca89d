"""ActionPredictor with a real tiny SlowFast, the real HOG detector and real frames of the bundled
clip (OpenCV's vtest.avi people walking)."""

import numpy as np
import pytest
import torch

from detection.ava.labelmap import read_labelmap
from detection.ava.packaged import packaged_labelmap_path
from detection.config import load_config
from detection.data.video import VideoReader
from detection.engine.predictor import ActionPredictor, ClipFormat, PredictorError
from detection.models import build_model
from detection.person import PersonDetections

TINY = "configs/test/SLOWFAST_TINY.yaml"
KEYFRAMES_S = (1.0, 2.0, 3.0)


def _tiny(project_root, *opts):
    return load_config(str(project_root / TINY), ["DEMO.DETECTOR", "hog", "DEVICE", "cpu", *opts])


@pytest.fixture(scope="module")
def tiny_cfg(project_root):
    return _tiny(project_root)


@pytest.fixture(scope="module")
def predictor(tiny_cfg):
    return ActionPredictor.from_config(tiny_cfg)


@pytest.fixture(scope="module")
def clips(predictor, project_root):
    """Clips of the bundled clip centred on KEYFRAMES_S: uint8 [T, 576, 768, 3] each."""
    with VideoReader(project_root / "data/demo/vtest_walking_6s.mp4") as reader:
        return [
            reader.read_at_times(predictor.clip_format.clip_times(t, reader.duration))
            for t in KEYFRAMES_S
        ]


def test_one_predictor_scores_several_clips(predictor, clips, tiny_cfg):
    model, detector = predictor.model, predictor.detector
    results = [predictor(frames) for frames in clips]
    num_classes = tiny_cfg.MODEL.NUM_CLASSES
    assert predictor.model is model and predictor.detector is detector
    assert sum(len(r) for r in results) > 0, "HOG finds the walkers of vtest"
    for frames, result in zip(clips, results, strict=True):
        n = len(result)
        assert result.boxes.shape == (n, 4) and result.boxes.dtype == np.float32
        assert result.person_scores.shape == (n,)
        assert result.action_scores.shape == (n, num_classes)
        assert result.action_scores.dtype == np.float32
        assert ((result.action_scores >= 0) & (result.action_scores <= 1)).all()
        assert result.frame_size == frames.shape[1:3] == (576, 768)
        np.testing.assert_allclose(
            result.normalized_boxes, result.boxes / np.float32([768, 576, 768, 576])
        )
        assert (result.normalized_boxes >= 0).all() and (result.normalized_boxes <= 1).all()
    # Nothing carries over from one call to the next (eval mode, no state).
    again = predictor(clips[0])
    np.testing.assert_array_equal(again.action_scores, results[0].action_scores)


def test_the_clip_is_the_configured_frames_around_the_keyframe(predictor, tiny_cfg):
    fmt = predictor.clip_format
    assert fmt == ClipFormat.from_config(tiny_cfg)
    assert fmt.clip_length == tiny_cfg.DATA.NUM_FRAMES == 8
    times = fmt.clip_times(2.0, duration_s=6.0)
    np.testing.assert_allclose(times, (60 + np.arange(-8, 8, 2)) / 30)
    assert times[len(times) // 2] == 2.0


def test_batched_scores_equal_one_by_one(predictor, clips):
    # A smaller copy of one clip (another size: its own forward), and a clip without persons.
    small = np.ascontiguousarray(clips[1][:, ::2, ::2])
    empty = np.zeros((0, 4), np.float32)
    boxes = [np.float32([[100, 50, 300, 500], [400, 100, 600, 560]]), None, empty, None]
    batch_clips = [clips[0], clips[2], clips[1], small]
    batched = predictor.predict_batch(batch_clips, boxes)
    single = [predictor(frames, b) for frames, b in zip(batch_clips, boxes, strict=True)]
    assert [len(r) for r in batched] == [len(r) for r in single]
    assert len(batched[0]) == 2 and len(batched[2]) == 0
    for b, s in zip(batched, single, strict=True):
        np.testing.assert_array_equal(b.boxes, s.boxes)
        np.testing.assert_allclose(b.action_scores, s.action_scores, rtol=0, atol=1e-5)
    assert batched[3].frame_size == (288, 384)


def test_given_boxes_are_scored_like_detected_ones(predictor, clips):
    detected = predictor(clips[0])
    assert len(detected) > 0
    as_array = predictor(clips[0], detected.boxes)
    as_detections = predictor(clips[0], PersonDetections(detected.boxes, detected.person_scores))
    np.testing.assert_allclose(as_array.action_scores, detected.action_scores, atol=1e-6)
    np.testing.assert_array_equal(as_array.person_scores, np.ones(len(detected), np.float32))
    np.testing.assert_array_equal(as_detections.person_scores, detected.person_scores)
    # A box elsewhere gets other scores: the boxes given are the ones scored.
    moved = predictor(clips[0], detected.boxes[:1] * np.float32([0.5, 0.5, 0.5, 0.5]))
    assert not np.allclose(moved.action_scores[0], detected.action_scores[0], atol=1e-6)


def test_nobody_in_the_clip_gives_empty_scores(predictor, tiny_cfg):
    grey = np.full((8, 120, 160, 3), 128, np.uint8)
    result = predictor(grey)
    assert len(result) == 0
    assert result.action_scores.shape == (0, tiny_cfg.MODEL.NUM_CLASSES)
    assert result.normalized_boxes.shape == (0, 4)


def test_plain_constructor_without_config_or_detector(tiny_cfg, clips, tmp_path, project_root):
    """A model built in code scores like `from_config` with the same weights (which also runs
    the CPU-optimized copy); without a detector the boxes must be given."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg)
    weights = tmp_path / "tiny.pyth"
    torch.save({"model_state": model.state_dict()}, weights)
    from_cfg = ActionPredictor.from_config(_tiny(project_root, "MODEL.WEIGHTS", str(weights)))
    plain = ActionPredictor(
        model,
        None,
        read_labelmap(packaged_labelmap_path()),
        clip_format=ClipFormat(num_frames=8, short_side=64, alpha=4),
    )
    assert not from_cfg.untrained and from_cfg.weights == str(weights)
    assert plain.num_classes == tiny_cfg.MODEL.NUM_CLASSES
    boxes = np.float32([[100, 50, 300, 500]])
    np.testing.assert_allclose(
        plain(clips[0], boxes).action_scores,
        from_cfg(clips[0], boxes).action_scores,
        atol=1e-5,
    )
    with pytest.raises(ValueError, match="no person detector"):
        plain(clips[0])


def test_label_map_naming_more_actions_than_the_model_scores_is_an_error(project_root):
    cfg = _tiny(project_root, "MODEL.NUM_CLASSES", "10")
    with pytest.raises(PredictorError, match=r"ava_action_list_v2\.2\.pbtxt.*NUM_CLASSES=10"):
        ActionPredictor.from_config(cfg)
    with pytest.raises(PredictorError, match=r"action ids \[11, 12.*only 10 classes"):
        ActionPredictor(build_model(cfg), None, read_labelmap(packaged_labelmap_path()))


def test_a_clip_of_the_wrong_length_is_refused(predictor, clips):
    with pytest.raises(ValueError, match=r"uint8 RGB \[8, H, W, 3\]"):
        predictor(clips[0][:4])
