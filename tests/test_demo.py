"""The demo on real video: the bundled cut of OpenCV's vtest.avi and generated AVA-format clips."""

import json
import subprocess
import sys

import av
import numpy as np
import pytest
import torch

from detection.apps.demo import main as demo_main
from detection.ava.csv_io import read_ava_csv
from detection.config import load_config
from detection.engine.demo import (
    DemoError,
    keyframe_times,
    nearest_keyframe,
    run_demo,
)
from detection.engine.predictor import ActionPredictor
from detection.evaluation.frame_map import evaluate

TINY = "configs/test/SLOWFAST_TINY.yaml"


def _decoded(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return frames, float(stream.average_rate), stream.codec_context.name


def test_keyframes_are_whole_seconds_of_the_span():
    np.testing.assert_allclose(keyframe_times(0.0, 6.0, 1.0), [0, 1, 2, 3, 4, 5])
    np.testing.assert_allclose(keyframe_times(1.2, 3.0, 1.0), [2])
    np.testing.assert_allclose(keyframe_times(0.1, 1.1, 2.0), [0.5, 1.0])
    with pytest.raises(DemoError, match="KEYFRAMES_PER_SEC"):
        keyframe_times(0.0, 1.0, 0.0)


def test_each_frame_shows_its_nearest_keyframe():
    keyframes = np.array([0.0, 1.0, 2.0])
    assert [nearest_keyframe(keyframes, t) for t in (0.0, 0.49, 0.5, 0.51, 1.7, 9.0)] == [
        0,
        0,
        0,
        1,
        2,
        2,
    ]


@pytest.mark.slow
def test_demo_on_real_clip_writes_playable_video_csv_and_json(tmp_path, project_root):
    cfg = load_config(str(project_root / TINY), ["DEMO.DETECTOR", "hog"])
    clip = project_root / "data/demo/vtest_walking_6s.mp4"
    out = tmp_path / "out.mp4"
    result = run_demo(
        cfg,
        clip,
        out,
        output_csv=tmp_path / "out.csv",
        output_json=tmp_path / "out.json",
        start_s=1.0,
        end_s=4.0,
        show_progress=False,
    )
    frames, fps, codec = _decoded(out)
    assert codec == "h264"
    assert fps == 10
    assert len(frames) == result.frames_written == 30
    assert frames[0].shape == (576, 768, 3)
    assert result.untrained
    assert sum(len(p.boxes) for p in result.predictions) > 0, "HOG finds the walkers of vtest"

    detections = read_ava_csv(tmp_path / "out.csv", kind="detections")
    assert set(detections["timestamp"]) <= {1, 2, 3}
    assert len(detections) == cfg.MODEL.NUM_CLASSES * sum(len(p.boxes) for p in result.predictions)
    doc = json.loads((tmp_path / "out.json").read_text())
    assert doc["untrained_action_model"] is True
    assert [k["time_s"] for k in doc["keyframes"]] == [1.0, 2.0, 3.0]


def test_demo_tool_reports_a_corrupt_video_in_one_line(tmp_path, project_root):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    proc = subprocess.run(
        [
            sys.executable,
            str(project_root / "tools/demo_net.py"),
            "--config",
            str(project_root / TINY),
            "--input",
            str(bad),
            "--output",
            str(tmp_path / "o.mp4"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "broken.mp4" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.slow
def test_demo_on_generated_ava_clip_feeds_the_evaluator(tmp_path, project_root, synthetic_ava):
    """With the CSV detector (AVA's predicted boxes) and AVA's 900 s offset, the demo's CSV is a
    valid detections file for the split's ground truth: every ground-truth keyframe is scored."""
    video_id = synthetic_ava.val_videos[0]
    annotations = synthetic_ava.root / "annotations"
    cfg = load_config(
        str(project_root / TINY),
        [
            "MODEL.NUM_CLASSES",
            "5",
            "DEMO.DETECTOR",
            "csv",
            "DEMO.PREDICTED_BOXES_CSV",
            str(annotations / "ava_val_predicted_boxes.csv"),
            "DEMO.LABEL_FILE_PATH",
            str(annotations / "ava_action_list_v2.2.pbtxt"),
        ],
    )
    result = run_demo(
        cfg,
        synthetic_ava.root / "videos" / f"{video_id}.mp4",
        tmp_path / "o.mp4",
        output_csv=tmp_path / "o.csv",
        ava_second_offset=900,
        show_progress=False,
    )
    frames, fps, _ = _decoded(tmp_path / "o.mp4")
    assert fps == 30 and len(frames) == result.frames_written == synthetic_ava.seconds * 30

    metrics = evaluate(
        annotations / "ava_action_list_v2.2.pbtxt",
        annotations / "ava_val_v2.2.csv",
        tmp_path / "o.csv",
        annotations / "ava_val_excluded_timestamps_v2.2.csv",
    )
    detections = read_ava_csv(tmp_path / "o.csv", kind="detections")
    groundtruth = read_ava_csv(annotations / "ava_val_v2.2.csv", kind="groundtruth")
    assert set(groundtruth["timestamp"]) <= set(detections["timestamp"])
    assert 0.0 <= metrics.mAP <= 1.0
    assert set(metrics.per_class) <= {
        "static",
        "slow drift",
        "bounce",
        "fast oscillation",
        "fast flicker",
    }


def _write_plain_video(path, width, height, seconds, fps=10):
    """A featureless grey clip (nothing for a person detector to find) in a lossless codec that
    allows odd sizes."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        frame = np.full((height, width, 3), 128, np.uint8)
        for _ in range(seconds * fps):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_no_person_and_odd_size_still_give_a_full_video(tmp_path, project_root):
    video = tmp_path / "empty_427x241.mkv"
    _write_plain_video(video, 427, 241, seconds=2)
    cfg = load_config(str(project_root / TINY), ["DEMO.DETECTOR", "hog"])
    result = run_demo(
        cfg,
        video,
        tmp_path / "o.mp4",
        output_csv=tmp_path / "o.csv",
        show_progress=False,
        predictor=ActionPredictor.from_config(cfg),
    )
    assert [len(p.boxes) for p in result.predictions] == [0, 0]
    assert all(p.action_scores.shape == (0, cfg.MODEL.NUM_CLASSES) for p in result.predictions)
    frames, fps, _ = _decoded(tmp_path / "o.mp4")
    assert len(frames) == 20 and fps == 10
    # H.264 in yuv420p needs even sides: the writer pads rather than failing or rescaling.
    assert frames[0].shape[0] >= 241 and frames[0].shape[1] >= 427
    assert read_ava_csv(tmp_path / "o.csv", kind="detections").empty


def test_span_outside_the_video_is_a_clear_error(tmp_path, project_root):
    video = tmp_path / "short.mkv"
    _write_plain_video(video, 64, 48, seconds=1)
    cfg = load_config(str(project_root / TINY))
    with pytest.raises(DemoError, match=r"short\.mkv.*lasts 1\.00 s"):
        run_demo(cfg, video, tmp_path / "o.mp4", start_s=5.0, show_progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("detector", ["torchvision", "detectron2"])
def test_demo_with_network_person_detectors_from_local_files(
    tmp_path, project_root, synthetic_ava, detector, save_random_frcnn, write_zoo_pickle, request
):
    """The network backends run inside the demo from a local weights file in the official
    format (random networks whose classifier calls every proposal a person)."""
    if detector == "torchvision":
        weights = tmp_path / "frcnn.pth"
        save_random_frcnn(weights, "fasterrcnn_resnet50_fpn")
        key = "DEMO.TORCHVISION_WEIGHTS"
    else:
        state = request.getfixturevalue("detectron2_zoo_state")  # skips without detectron2
        weights = write_zoo_pickle(tmp_path / "model_final.pkl", state)
        key = "DEMO.DETECTRON2_WEIGHTS"
    video = synthetic_ava.root / "videos" / f"{synthetic_ava.val_videos[0]}.mp4"
    cfg = load_config(
        str(project_root / TINY),
        ["DEMO.DETECTOR", detector, key, str(weights), "DEMO.PERSON_SCORE_THRESH", "0.5"],
    )
    result = run_demo(
        cfg,
        video,
        tmp_path / "o.mp4",
        output_csv=tmp_path / "o.csv",
        start_s=1.5,
        end_s=3.5,
        show_progress=False,
    )
    frames, fps, _ = _decoded(tmp_path / "o.mp4")
    assert fps == 30 and len(frames) == result.frames_written == 60
    assert result.keyframe_times.tolist() == [2.0, 3.0]
    assert all(len(p.boxes) > 0 for p in result.predictions)
    for p in result.predictions:
        assert p.action_scores.shape == (len(p.boxes), cfg.MODEL.NUM_CLASSES)
    assert len(read_ava_csv(tmp_path / "o.csv", kind="detections")) > 0


def _run_demo_tool(project_root, cwd, *args):
    return subprocess.run(
        [sys.executable, str(project_root / "tools/demo_net.py"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_demo_tool_refuses_cuda_without_a_gpu_in_one_line(tmp_path, project_root):
    proc = _run_demo_tool(
        project_root,
        tmp_path,
        *("--config", str(project_root / TINY), "--end", "1", "--quiet"),
        *("--output", str(tmp_path / "o.mp4"), "DEVICE", "cuda"),
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: DEVICE is 'cuda' but no CUDA GPU is available; use DEVICE cpu or auto"
    ]
    assert not (tmp_path / "o.mp4").exists()


def test_demo_app_needs_config_and_input_when_no_defaults_are_given(capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo_main(["--quiet"])
    assert exit_info.value.code == 2
    assert "--config" in capsys.readouterr().err


def test_demo_app_runs_outside_the_checkout_with_default_outputs(
    tmp_path, project_root, monkeypatch, capsys
):
    """`detection.apps.demo.main` as an installed wheel calls it, from another directory:
    explicit config and input, outputs under ./demo_output of the working directory."""
    video = tmp_path / "grey.mkv"
    _write_plain_video(video, 96, 64, seconds=1)
    monkeypatch.chdir(tmp_path)
    assert demo_main(["--config", str(project_root / TINY), "--input", str(video), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "UNTRAINED action model" in out
    assert "1 keyframes, 0 person boxes, 10 frames at 10 fps" in out
    for name in (".mp4", ".csv", ".json", "_segments.csv", "_segments.json", "_timeline.png"):
        assert (tmp_path / "demo_output" / f"grey_actions{name}").is_file()
    doc = json.loads((tmp_path / "demo_output" / "grey_actions.json").read_text())
    assert doc["untrained_action_model"] is True and doc["keyframes"][0]["persons"] == []


def test_demo_app_runs_a_folder_and_skips_videos_already_done(tmp_path, project_root, capsys):
    """A folder of videos in one command: outputs per video in --output, a summary table; run
    again, the videos whose outputs are complete are skipped (a missing output reruns one)."""
    folder = tmp_path / "videos"
    folder.mkdir()
    _write_plain_video(folder / "one.mkv", 64, 48, seconds=1)
    _write_plain_video(folder / "two.mkv", 64, 48, seconds=2)
    args = ["--config", str(project_root / TINY), "--input", str(folder), "--quiet"]
    args += ["--output", str(tmp_path / "out")]
    assert demo_main(args) == 0
    out = capsys.readouterr().out
    assert "| one.mkv | 1.0 | 1 | 0 | 10 |" in out and "| two.mkv | 2.0 | 2 | 0 | 20 |" in out
    assert "| **2 videos** |" in out
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(written) == 12 and "two_actions_timeline.png" in written

    (tmp_path / "out" / "two_actions.json").unlink()
    assert demo_main(args) == 0
    out = capsys.readouterr().out
    assert "skipping 1 of 2 videos" in out
    assert "two.mkv" in out and "one.mkv" not in out.split("skipping")[1]
    assert (tmp_path / "out" / "two_actions.json").is_file()


def test_sequential_option_runs_the_old_demo_loop(tmp_path, project_root, capsys):
    video = tmp_path / "grey.mkv"
    _write_plain_video(video, 64, 48, seconds=1)
    out = tmp_path / "o.mp4"
    args = ["--config", str(project_root / TINY), "--input", str(video), "--output", str(out)]
    assert demo_main([*args, "--quiet", "--sequential"]) == 0
    assert "1 keyframes, 0 person boxes, 10 frames at 10 fps" in capsys.readouterr().out
    assert out.is_file() and not (tmp_path / "o_timeline.png").exists()
