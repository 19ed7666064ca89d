"""The streaming engine on real video: clips equal the reader's, each frame decoded once, the same
AVA CSV as the sequential demo, tracks, segments and timeline beside the video."""

import json
from fractions import Fraction

import av
import numpy as np
import pytest

from detection.ava.csv_io import read_ava_csv
from detection.config import load_config
from detection.data.video import VideoReader
from detection.engine.demo import run_demo
from detection.engine.predictor import ActionPredictor, ClipFormat
from detection.engine.sources import FileSource
from detection.engine.stream import (
    ClipCutter,
    EngineOptions,
    OutputPaths,
    StreamEngine,
    boxes_between_keyframes,
)
from detection.person.hog import HogPersonDetector

TINY = "configs/test/SLOWFAST_TINY.yaml"
CLIP = "data/demo/vtest_walking_6s.mp4"


def _write_numbered_video(path, times_s, size=(48, 32)):
    """Lossless video whose frame i is filled with grey level 10 + 3 i (so a wrong frame
    shows), at the given presentation times (ms precision; irregular = variable frame rate)."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=1000)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        stream.time_base = Fraction(1, 1000)
        for i, t in enumerate(times_s):
            image = np.full((height, width, 3), (10 + 3 * i) % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = int(round(t * 1000))
            frame.time_base = stream.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _cut_all(path, keyframes, fmt):
    source = FileSource(path)
    try:
        cutter = ClipCutter(
            source.layout_times(),
            fmt.fps,
            lambda t: np.rint(fmt.clip_times(t, source.duration) * fmt.fps).astype(np.int64),
        )
        for i, t in enumerate(keyframes):
            cutter.add_keyframe(i, t)
        clips = []
        for rgb, t in source.frames(max(0.0, cutter.first_source_time()), None):
            clips += cutter.push(rgb, t)
        clips += cutter.finish()
        return clips, source.frames_decoded, cutter.max_buffered
    finally:
        source.close()


@pytest.mark.parametrize("kind", ["bundled_10fps", "25fps", "variable_rate"])
def test_clips_cut_from_one_pass_equal_the_readers_clips(tmp_path, project_root, kind):
    """Every clip the engine cuts while decoding once equals what `VideoReader.read_at_times`
    gives for the same clip (ffmpeg's frame rule), including clips clamped at both ends."""
    if kind == "bundled_10fps":
        path = project_root / CLIP
    else:
        rng = np.random.default_rng(0)
        steps = np.full(75, 0.04) if kind == "25fps" else rng.uniform(0.015, 0.07, 75)
        path = tmp_path / f"{kind}.mkv"
        _write_numbered_video(path, np.concatenate([[0.0], np.cumsum(steps)[:-1]]))
    fmt = ClipFormat(num_frames=8, sampling_rate=2)
    with VideoReader(path) as reader:
        duration = reader.duration
        keyframes = [0.0, *np.arange(0.5, duration, 0.5).tolist()]
        expected = [reader.read_at_times(fmt.clip_times(t, duration)) for t in keyframes]
    clips, decoded, max_buffered = _cut_all(path, keyframes, fmt)
    assert [c.time_s for c in clips] == keyframes
    for clip, want in zip(clips, expected, strict=True):
        np.testing.assert_array_equal(clip.frames, want, err_msg=f"clip at {clip.time_s} s")
    with av.open(str(path)) as container:
        total = sum(1 for _ in container.decode(video=0))
    assert decoded == total, "each frame is decoded exactly once"
    # The buffer never holds more than the layout frames from one clip's first to the next
    # clip's last frame.
    window = (fmt.clip_length - 1) * fmt.sampling_rate + 1 + round(0.5 * fmt.fps)
    assert max_buffered <= window


def _csv_rows(path):
    table = read_ava_csv(path, kind="detections")
    return table.sort_values(list(table.columns[:7])).reset_index(drop=True)


@pytest.mark.slow
def test_engine_writes_the_sequential_demos_csv_with_tracks_segments_and_timeline(
    tmp_path, project_root, synthetic_ava
):
    """Threads, batching and the one-pass decoder change nothing in the AVA CSV: it equals the
    old sequential demo's (same boxes, scores up to float rounding); the engine adds track ids,
    segments and a timeline beside the video."""
    video_id = synthetic_ava.val_videos[0]
    annotations = synthetic_ava.root / "annotations"
    cfg = load_config(
        str(project_root / TINY),
        [
            *("MODEL.NUM_CLASSES", "5", "DEMO.DETECTOR", "csv"),
            *("DEMO.PREDICTED_BOXES_CSV", str(annotations / "ava_val_predicted_boxes.csv")),
            *("DEMO.LABEL_FILE_PATH", str(annotations / "ava_action_list_v2.2.pbtxt")),
            *("DEMO.ACTION_SCORE_THRESH", "0.0"),
        ],
    )
    video = synthetic_ava.root / "videos" / f"{video_id}.mp4"
    predictor = ActionPredictor.from_config(cfg)
    run_demo(
        cfg,
        video,
        tmp_path / "old.mp4",
        output_csv=tmp_path / "old.csv",
        ava_second_offset=900,
        show_progress=False,
        predictor=predictor,
    )
    old = _csv_rows(tmp_path / "old.csv")
    assert len(old) > 0

    for name, options in {
        "threads": EngineOptions(),
        "in_turn": EngineOptions(threads=False),
        "batched": EngineOptions(batch_size=3),
    }.items():
        outputs = OutputPaths.beside(tmp_path / name / "out.mp4")
        result = StreamEngine(cfg, predictor, options).run(
            video, outputs, ava_second_offset=900, show_progress=False
        )
        new = _csv_rows(outputs.csv)
        assert new.iloc[:, :7].equals(old.iloc[:, :7]), name
        np.testing.assert_allclose(new["score"], old["score"], atol=2e-3, err_msg=name)

        frames = sum(1 for _ in av.open(str(outputs.video)).decode(video=0))
        assert frames == result.frames_written == synthetic_ava.seconds * 30
        assert result.frames_decoded == result.frames_written, "one decode per video frame"
        doc = json.loads(outputs.json.read_text())
        ids = [p["track_id"] for k in doc["keyframes"] for p in k["persons"]]
        assert ids and all(i is None or i >= 1 for i in ids)
        assert result.num_tracks >= 1
        assert outputs.segments_csv.read_text().startswith("track_id,action_id,action,")
        segments = json.loads(outputs.segments_json.read_text())["segments"]
        assert {s["track_id"] for s in segments} <= {i for i in ids if i is not None}
        assert outputs.timeline.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_engine_on_the_bundled_clip_tracks_the_walkers(tmp_path, project_root):
    """vtest's walkers with HOG: a full-length video of the span, track ids in the JSON and in
    the tracker's boxes drawn between keyframes (`interpolate_track_boxes`)."""
    cfg = load_config(str(project_root / TINY), ["DEMO.DETECTOR", "hog"])
    outputs = OutputPaths.beside(tmp_path / "o.mp4")
    result = StreamEngine(cfg, ActionPredictor.from_config(cfg)).run(
        project_root / CLIP, outputs, start_s=1.0, end_s=3.0, show_progress=False
    )
    assert result.keyframe_times.tolist() == [1.0, 2.0]
    frames = [f.to_ndarray(format="rgb24") for f in av.open(str(outputs.video)).decode(video=0)]
    assert len(frames) == result.frames_written == 20
    assert frames[0].shape == (576, 768, 3)
    assert result.num_tracks >= 1, "HOG finds the walkers of vtest"
    doc = json.loads(outputs.json.read_text())
    assert doc["untrained_action_model"] is True
    assert any(p["track_id"] for k in doc["keyframes"] for p in k["persons"])


class _BatchRecordingHog(HogPersonDetector):
    """HOG that records how many keyframes each `detect_batch` call is given."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_sizes: list[int] = []

    def detect_batch(self, frames_rgb, **kwargs):
        self.batch_sizes.append(len(frames_rgb))
        return super().detect_batch(frames_rgb, **kwargs)


def _persons_of(json_path):
    """Per keyframe: time, and per person its box, person score and track id."""
    doc = json.loads(json_path.read_text())
    return [
        (k["time_s"], [(p["box_xyxy_px"], p["person_score"], p["track_id"]) for p in k["persons"]])
        for k in doc["keyframes"]
    ]


def _action_scores_of(json_path):
    doc = json.loads(json_path.read_text())
    return np.array(
        [a["score"] for k in doc["keyframes"] for p in k["persons"] for a in p["actions"]]
    )


@pytest.mark.slow
def test_batched_detection_gives_the_outputs_of_one_keyframe_at_a_time(tmp_path, project_root):
    """With batch_size 4 the detector is called on several keyframes at once (in turn: full
    batches; threads: the clips already waiting, at most 4) and the engine writes the same
    persons, boxes, track ids and AVA CSV rows as with batch_size 1 (action scores up to float
    rounding of the batched action model)."""
    cfg = load_config(str(project_root / TINY), ["DEMO.DETECTOR", "hog"])
    predictor = ActionPredictor.from_config(cfg)
    detector = _BatchRecordingHog()
    predictor.detector = detector
    runs = {}
    for name, options in {
        "one": EngineOptions(batch_size=1),
        "threads_4": EngineOptions(batch_size=4),
        "in_turn_4": EngineOptions(batch_size=4, threads=False),
    }.items():
        detector.batch_sizes.clear()
        outputs = OutputPaths.beside(tmp_path / name / "out.mp4")
        result = StreamEngine(cfg, predictor, options).run(
            project_root / CLIP, outputs, show_progress=False
        )
        runs[name] = (outputs, list(detector.batch_sizes), len(result.results))
    keyframes = runs["one"][2]
    assert keyframes >= 5
    assert runs["one"][1] == [1] * keyframes
    assert runs["in_turn_4"][1] == [4] * (keyframes // 4) + [keyframes % 4] * (keyframes % 4 > 0)
    threaded = runs["threads_4"][1]
    assert sum(threaded) == keyframes and max(threaded) <= 4

    base, _, _ = runs["one"]
    want_persons = _persons_of(base.json)
    assert any(track_id for _, persons in want_persons for _, _, track_id in persons)
    want_csv = _csv_rows(base.csv)
    assert len(want_csv) > 0
    for name in ("threads_4", "in_turn_4"):
        outputs = runs[name][0]
        assert _persons_of(outputs.json) == want_persons, name
        np.testing.assert_allclose(
            _action_scores_of(outputs.json), _action_scores_of(base.json), atol=1e-4, err_msg=name
        )
        got_csv = _csv_rows(outputs.csv)
        assert got_csv.iloc[:, :7].equals(want_csv.iloc[:, :7]), name
        np.testing.assert_allclose(got_csv["score"], want_csv["score"], atol=1e-4, err_msg=name)


def test_boxes_between_keyframes_follow_detected_tracks_only():
    """Between two keyframes a person seen at both moves along the line between its boxes; one
    seen at one keyframe only shows in the half of the interval nearer to it; a track the
    tracker kept without a detection (detection_index -1) is never drawn."""
    from detection.person.tracking import TrackedPersons

    first = TrackedPersons.build(
        [[0, 0, 10, 20], [50, 50, 60, 70], [80, 0, 90, 10]], [0.9, 0.8, 0.7], [1, 2, 3], [0, 1, -1]
    )
    second = TrackedPersons.build([[20, 10, 30, 30]], [0.9], [1], [0])
    quarter = boxes_between_keyframes([1.0, 2.0], [first, second], 1.25)
    assert quarter.track_ids.tolist() == [1, 2]
    np.testing.assert_allclose(quarter.boxes[0], [5, 2.5, 15, 22.5])
    np.testing.assert_allclose(quarter.boxes[1], [50, 50, 60, 70])
    late = boxes_between_keyframes([1.0, 2.0], [first, second], 1.75)
    assert late.track_ids.tolist() == [1]
    np.testing.assert_allclose(late.boxes[0], [15, 7.5, 25, 27.5])
    only = boxes_between_keyframes([1.0], [first], 3.0)
    assert only.track_ids.tolist() == [1, 2]


def test_variable_frame_rate_input_keeps_its_timing_in_the_output_video(tmp_path, project_root):
    """Frames 20-100 ms apart (about 16 fps on average): the output's frames keep the input's
    times (from the first frame of the span), not i / average fps."""
    rng = np.random.default_rng(3)
    gaps = rng.choice([0.02, 0.033, 0.05, 0.1], size=70)
    times = np.round(np.concatenate([[0.0], np.cumsum(gaps)]), 3)
    video = tmp_path / "vfr.mkv"
    _write_numbered_video(video, times)
    cfg = load_config(str(project_root / TINY), ["DEMO.DETECTOR", "hog"])
    out = tmp_path / "o.mp4"
    result = StreamEngine(cfg, ActionPredictor.from_config(cfg)).run(
        video, OutputPaths(out), start_s=0.5, end_s=3.5, show_progress=False
    )
    shown = times[(times >= 0.5 - 1e-9) & (times < 3.5)]
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        frames = [frame.time for frame in container.decode(stream)]
        duration = float(stream.duration * stream.time_base)
    tick = 1e-3  # the input's time base
    assert result.frames_written == len(frames) == len(shown)
    out_times = np.array(frames)
    assert np.abs(out_times - (shown - shown[0])).max() <= tick
    # The last frame lasts one nominal frame: the video spans the input's frames, not
    # frames / average fps.
    assert abs(duration - (shown[-1] - shown[0] + 1 / result.fps)) <= tick
