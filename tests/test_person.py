from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from detection.config import get_cfg
from detection.data.video import VideoReader
from detection.person import (
    PersonDetections,
    PersonDetectorError,
    build_detector,
    build_detector_from_cfg,
    make_detections,
)
from detection.person.csv_boxes import CsvPersonDetector
from detection.person.hog import HogPersonDetector
from detection.person.torchvision_rcnn import TorchvisionPersonDetector


@pytest.fixture(scope="module")
def vtest_frames(shared_dir: Path) -> np.ndarray:
    """Three real frames (768x576) of OpenCV's vtest.avi: people walking across a courtyard."""
    with VideoReader(shared_dir / "media" / "vtest.avi") as reader:
        return reader.read_at_times([10.0, 30.0, 60.0])


def _assert_valid(dets: PersonDetections, height: int, width: int) -> None:
    assert dets.boxes.dtype == np.float32 and dets.scores.dtype == np.float32
    assert dets.boxes.shape == (len(dets), 4)
    assert (dets.boxes[:, 0] >= 0).all() and (dets.boxes[:, 2] <= width).all()
    assert (dets.boxes[:, 1] >= 0).all() and (dets.boxes[:, 3] <= height).all()
    assert (dets.boxes[:, 2] > dets.boxes[:, 0]).all() and (
        dets.boxes[:, 3] > dets.boxes[:, 1]
    ).all()
    assert (np.diff(dets.scores) <= 0).all()


# --- shared helpers ---------------------------------------------------------------------------


def test_make_detections_clips_boxes_partly_outside_and_drops_boxes_fully_outside():
    boxes = np.array(
        [[-10, -5, 50, 60], [400, 200, 500, 300], [500, 10, 600, 50], [10, 10, 20, np.nan]],
        np.float32,
    )
    dets = make_detections(boxes, np.array([0.9, 0.95, 0.99, 0.9]), 240, 426, score_thresh=0.5)
    # The third box starts right of the 426-pixel-wide frame, the fourth is not finite.
    np.testing.assert_array_equal(dets.boxes, [[400, 200, 426, 240], [0, 0, 50, 60]])
    np.testing.assert_allclose(dets.scores, [0.95, 0.9])


def test_make_detections_applies_threshold():
    dets = make_detections(np.array([[0, 0, 10, 10]]), np.array([0.3]), 20, 20, score_thresh=0.5)
    assert len(dets) == 0 and dets.boxes.shape == (0, 4)


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((240, 426), np.uint8),
        np.zeros((240, 426, 3), np.float32),
        np.zeros((0, 5, 3), np.uint8),
    ],
)
def test_detectors_reject_frames_outside_the_contract(frame):
    with pytest.raises(ValueError, match="uint8 RGB|empty"):
        HogPersonDetector().detect(frame)


# --- hog --------------------------------------------------------------------------------------


def test_hog_finds_the_walkers_of_vtest(vtest_frames):
    detector = HogPersonDetector()
    for frame in vtest_frames:
        dets = detector.detect(frame)
        _assert_valid(dets, 576, 768)
        # Each of these frames shows 4-8 walkers; HOG should find most of them.
        assert len(dets) >= 3
        assert dets.scores.min() >= 0.8
        heights = dets.boxes[:, 3] - dets.boxes[:, 1]
        widths = dets.boxes[:, 2] - dets.boxes[:, 0]
        # Standing people: boxes about twice as tall as wide, 60-200 px tall in this view.
        assert np.median(heights / widths) > 1.5
        assert 60 < np.median(heights) < 200


def test_hog_finds_no_one_on_a_blank_frame_and_handles_odd_and_tiny_sizes(vtest_frames):
    detector = HogPersonDetector()
    assert len(detector.detect(np.full((576, 768, 3), 128, np.uint8))) == 0
    odd = cv2.resize(vtest_frames[1], (427, 241), interpolation=cv2.INTER_AREA)
    _assert_valid(detector.detect(odd), 241, 427)
    assert len(detector.detect(np.zeros((7, 5, 3), np.uint8))) == 0


# --- csv --------------------------------------------------------------------------------------

CSV_ROWS = """\
vid_a,0902,0.1,0.2,0.5,0.9,12,0.95
vid_a,0902,0.1,0.2,0.5,0.9,14,0.95
vid_a,902,0.6,0.1,1.0,0.5,,0.85
vid_a,0903,0.0,0.0,0.2,0.2,-1,0.5
vid_b,0902,0.25,0.25,0.75,0.75,
"""


def test_csv_boxes_in_original_pixels_with_repeats_merged(tmp_path):
    path = tmp_path / "boxes.csv"
    path.write_text(CSV_ROWS)
    detector = CsvPersonDetector(path, score_thresh=0.8)
    frame = np.zeros((240, 426, 3), np.uint8)
    dets = detector.detect(frame, video_id="vid_a", timestamp=902.0)
    # Two rows (actions 12 and 14) of one box are one person; "902" and "0902" are one second.
    np.testing.assert_allclose(dets.boxes, [[42.6, 48, 213, 216], [255.6, 24, 426, 120]], rtol=1e-5)
    np.testing.assert_allclose(dets.scores, [0.95, 0.85])
    # No score column means 1.0.
    dets_b = detector.detect(frame, video_id="vid_b", timestamp=902)
    np.testing.assert_allclose(dets_b.scores, [1.0])
    # Below threshold (0.5 < 0.8) and a second without rows: zero persons, not an error.
    assert len(detector.detect(frame, video_id="vid_a", timestamp=903)) == 0
    assert len(detector.detect(frame, video_id="vid_a", timestamp=904)) == 0
    assert detector.video_ids == {"vid_a", "vid_b"}


def test_csv_batch_looks_each_frame_up_at_its_own_timestamp(tmp_path):
    """The default `detect_batch` (one `detect` per frame) pairs timestamps with frames."""
    path = tmp_path / "boxes.csv"
    path.write_text(CSV_ROWS)
    detector = CsvPersonDetector(path, score_thresh=0.4)
    frames = [np.zeros((240, 426, 3), np.uint8), np.zeros((24, 42, 3), np.uint8)]
    batch = detector.detect_batch(frames, video_id="vid_a", timestamps=[903, 902])
    for frame, t, dets in zip(frames, [903, 902], batch, strict=True):
        one = detector.detect(frame, video_id="vid_a", timestamp=t)
        np.testing.assert_array_equal(dets.boxes, one.boxes)
        np.testing.assert_array_equal(dets.scores, one.scores)
    assert [len(d) for d in batch] == [1, 2]
    with pytest.raises(ValueError, match="2 frames but 1 timestamps"):
        detector.detect_batch(frames, video_id="vid_a", timestamps=[902])


def test_csv_unknown_video_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "boxes.csv"
    path.write_text(CSV_ROWS)
    detector = build_detector("csv", path=path)
    with pytest.raises(PersonDetectorError, match=r"'vid_c'.*boxes\.csv.*vid_a"):
        detector.detect(np.zeros((4, 4, 3), np.uint8), video_id="vid_c", timestamp=902)
    with pytest.raises(ValueError, match="needs video_id and timestamp"):
        detector.detect(np.zeros((4, 4, 3), np.uint8))


def test_csv_malformed_row_names_file_and_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("vid_a,0902,0.1,0.2,0.5,0.9,12,0.9\nvid_a,0902,10,20,50,90,12,0.9\n")
    with pytest.raises(ValueError, match=r"bad\.csv:2: .*normalized"):
        CsvPersonDetector(path)


def test_csv_non_whole_second_has_no_boxes(tmp_path):
    path = tmp_path / "boxes.csv"
    path.write_text(CSV_ROWS)
    detector = CsvPersonDetector(path)
    frame = np.zeros((24, 42, 3), np.uint8)
    assert len(detector.detect(frame, video_id="vid_a", timestamp=902.5)) == 0
    assert len(detector.detect(frame, video_id="vid_a", timestamp=902.0004)) == 2


def test_csv_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        CsvPersonDetector(tmp_path / "nope.csv")


# --- torchvision ------------------------------------------------------------------------------


def test_torchvision_missing_weights_names_the_official_download(tmp_path):
    with pytest.raises(PersonDetectorError, match=r"not found.*download\.pytorch\.org/models/"):
        TorchvisionPersonDetector(tmp_path / "missing.pth")


def test_torchvision_rejects_a_foreign_state_dict(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(PersonDetectorError, match="not a fasterrcnn_resnet50_fpn"):
        TorchvisionPersonDetector(path)
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(PersonDetectorError, match="cannot load"):
        TorchvisionPersonDetector(tmp_path / "garbage.pth")


@pytest.mark.slow
def test_torchvision_loads_a_local_state_dict_and_detects(
    tmp_path, vtest_frames, save_random_frcnn
):
    path = tmp_path / "frcnn.pth"
    state = save_random_frcnn(path, "fasterrcnn_resnet50_fpn")
    detector = build_detector("torchvision", weights=path, score_thresh=0.5, min_size=320)
    assert detector.arch == "fasterrcnn_resnet50_fpn"
    loaded = detector.model.state_dict()
    assert loaded.keys() == state.keys()
    for name, value in state.items():
        torch.testing.assert_close(loaded[name], value, msg=name)
    odd = cv2.resize(vtest_frames[0], (427, 241), interpolation=cv2.INTER_AREA)
    dets = detector.detect(odd)
    _assert_valid(dets, 241, 427)
    assert len(dets) > 0
    np.testing.assert_allclose(dets.scores, 0.8176, atol=1e-3)


@pytest.mark.slow
def test_torchvision_batch_equals_one_frame_at_a_time(tmp_path, vtest_frames, save_random_frcnn):
    """One forward pass over several keyframes gives each frame the boxes and scores of its own
    pass; a frame of another size (its own forward) keeps its place in the output."""
    path = tmp_path / "frcnn.pth"
    save_random_frcnn(path, "fasterrcnn_resnet50_fpn")
    detector = build_detector("torchvision", weights=path, score_thresh=0.5, min_size=320)
    _assert_batch_equals_one_at_a_time(detector, vtest_frames, box_rtol=0, box_atol=1e-5)


def _assert_batch_equals_one_at_a_time(detector, vtest_frames, box_rtol: float, box_atol: float):
    """`detect_batch` on three real frames and one of another size (427 x 241) gives each frame
    what `detect` gives it, within the box tolerance (scores within 1e-5)."""
    odd = cv2.resize(vtest_frames[0], (427, 241), interpolation=cv2.INTER_AREA)
    frames = [vtest_frames[0], odd, vtest_frames[1], vtest_frames[2]]
    batch = detector.detect_batch(frames)
    assert len(batch) == len(frames)
    for frame, dets in zip(frames, batch, strict=True):
        one = detector.detect(frame)
        _assert_valid(dets, *frame.shape[:2])
        assert len(dets) == len(one) > 0
        np.testing.assert_allclose(dets.boxes, one.boxes, rtol=box_rtol, atol=box_atol)
        np.testing.assert_allclose(dets.scores, one.scores, rtol=0, atol=1e-5)
    # Different content, different boxes: a batch mix-up would show.
    assert not np.array_equal(batch[0].boxes, batch[2].boxes)
    assert batch[1].boxes[:, 2].max() <= 427


@pytest.mark.slow
def test_torchvision_tells_v2_from_its_keys(tmp_path, save_random_frcnn):
    path = tmp_path / "frcnn_v2.pth"
    save_random_frcnn(path, "fasterrcnn_resnet50_fpn_v2")
    assert build_detector("torchvision", weights=path).arch == "fasterrcnn_resnet50_fpn_v2"


# --- config -----------------------------------------------------------------------------------


def test_build_from_cfg(tmp_path):
    cfg = get_cfg()
    assert isinstance(build_detector_from_cfg(cfg), HogPersonDetector)
    cfg.DEMO.DETECTOR = "csv"
    with pytest.raises(PersonDetectorError, match="DEMO.PREDICTED_BOXES_CSV"):
        build_detector_from_cfg(cfg)
    cfg.DEMO.PREDICTED_BOXES_CSV = str(tmp_path / "b.csv")
    (tmp_path / "b.csv").write_text(CSV_ROWS)
    assert build_detector_from_cfg(cfg).score_thresh == cfg.DEMO.PERSON_SCORE_THRESH
    cfg.DEMO.DETECTOR = "torchvision"
    with pytest.raises(PersonDetectorError, match="DEMO.TORCHVISION_WEIGHTS"):
        build_detector_from_cfg(cfg)
    cfg.DEMO.DETECTOR = "yolo"
    with pytest.raises(PersonDetectorError, match="unknown DEMO.DETECTOR 'yolo'"):
        build_detector_from_cfg(cfg)


# --- detectron2 (optional extra) ----------------------------------------------------------------


def test_detectron2_missing_package_says_how_to_install(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "detectron2", None)  # what an environment without it gives
    with pytest.raises(PersonDetectorError, match="make detectron2"):
        build_detector("detectron2", weights=tmp_path / "w.pkl")


@pytest.mark.detectron2
def test_detectron2_missing_weights_names_the_official_file(tmp_path):
    pytest.importorskip("detectron2")
    with pytest.raises(PersonDetectorError, match=r"not found.*model_final_280758\.pkl"):
        build_detector("detectron2", weights=tmp_path / "model_final_280758.pkl")
    with pytest.raises(PersonDetectorError, match="neither a file nor a model-zoo config"):
        build_detector("detectron2", config="COCO-Detection/nope.yaml", weights=__file__)


@pytest.mark.detectron2
def test_detectron2_refuses_a_pickle_that_runs_code(tmp_path):
    pytest.importorskip("detectron2")
    import pickle

    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "model_final_evil.pkl"
    path.write_bytes(pickle.dumps({"model": Exploit()}))
    with pytest.raises(PersonDetectorError, match="refused to load"):
        build_detector("detectron2", weights=path)


@pytest.mark.slow
@pytest.mark.detectron2
def test_detectron2_loads_every_key_of_a_zoo_pickle_and_detects(
    tmp_path, detectron2_zoo_state, write_zoo_pickle, vtest_frames
):
    state = detectron2_zoo_state
    assert len(state) == 295
    path = write_zoo_pickle(tmp_path / "model_final.pkl", state)
    detector = build_detector("detectron2", weights=path, score_thresh=0.5, min_size_test=320)
    loaded = detector.model.state_dict()
    assert loaded.keys() == state.keys()
    for name, value in state.items():
        np.testing.assert_array_equal(loaded[name].numpy(), value, err_msg=name)
    odd = cv2.resize(vtest_frames[0], (427, 241), interpolation=cv2.INTER_AREA)
    dets = detector.detect(odd)
    _assert_valid(dets, 241, 427)
    assert len(dets) > 0
    np.testing.assert_allclose(dets.scores, 0.8345, atol=1e-3)
    path.unlink()

    # A checkpoint that does not fit is an error naming the keys, never a partial load.
    broken = dict(state)
    del broken["backbone.fpn_output2.weight"]
    broken["roi_heads.box_predictor.cls_score.bias"] = np.zeros(91, np.float32)
    broken["roi_heads.box_head.fc9.weight"] = np.zeros(1, np.float32)
    path = write_zoo_pickle(tmp_path / "broken.pkl", broken)
    with pytest.raises(
        PersonDetectorError,
        match=(
            "missing \\(1\\).*fpn_output2.*unexpected \\(1\\).*fc9"
            ".*shape mismatch \\(1\\).*cls_score"
        ),
    ):
        build_detector("detectron2", weights=path)


@pytest.mark.slow
@pytest.mark.detectron2
def test_detectron2_batch_equals_one_frame_at_a_time(
    tmp_path, detectron2_zoo_state, write_zoo_pickle, vtest_frames
):
    """As for torchvision, up to float rounding: detectron2's batched convolutions round
    differently on the CPU (seen: 0.012 px on a 576 px box coordinate)."""
    path = write_zoo_pickle(tmp_path / "model_final.pkl", detectron2_zoo_state)
    detector = build_detector("detectron2", weights=path, score_thresh=0.5, min_size_test=320)
    _assert_batch_equals_one_at_a_time(detector, vtest_frames, box_rtol=1e-4, box_atol=1e-3)
