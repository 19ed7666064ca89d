"""Person boxes for keyframes (`engine.proposals`, tools/make_proposals.py) with real detectors:
OpenCV's HOG and precomputed CSV boxes, on the generated set and on OpenCV's vtest.avi."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from detection.apps.make_proposals import main
from detection.ava.csv_io import BOX_COLUMNS, read_ava_csv
from detection.config import load_config
from detection.data.dataset import AvaDataset
from detection.data.doctor import check_dataset
from detection.data.sampling import keyframe_index
from detection.engine.proposals import (
    KeyframeRule,
    VideoKeyframes,
    iter_keyframes,
    make_proposals,
    parts_dir,
)
from detection.person import PersonDetectorError, build_detector

AVA_RULE = KeyframeRule(fps=30, video_start_sec=900, valid=range(902, 1799))
TINY = "configs/synthetic/SLOWFAST_TINY.yaml"


def box_rows(*paths: Path) -> pd.DataFrame:
    """The person boxes of AVA box files, one row per distinct box, sorted."""
    rows = pd.concat([read_ava_csv(p, kind="boxes") for p in paths], ignore_index=True)
    keys = ["video_id", "timestamp", *BOX_COLUMNS]
    return rows.groupby(keys, as_index=False)["score"].max().sort_values(keys, ignore_index=True)


def annotated_videos(root: Path) -> list[VideoKeyframes]:
    """Every video of the set at the seconds its predicted-box files have rows for."""
    ann = root / "annotations"
    rows = box_rows(ann / "ava_train_predicted_boxes.csv", ann / "ava_val_predicted_boxes.csv")
    return [
        VideoKeyframes(str(v), root / "videos" / f"{v}.mp4", tuple(sorted(set(g["timestamp"]))))
        for v, g in rows.groupby("video_id")
    ]


def test_keyframe_is_the_frame_the_training_clip_centres_on(synthetic_ava):
    cfg = load_config(TINY, ["DATA.PATH_TO_DATA_DIR", str(synthetic_ava.root)])
    dataset = AvaDataset(cfg, "test")
    for index, keyframe in enumerate(dataset.keyframes):
        clip = dataset.read_frames(index)
        centre = keyframe_index(keyframe.second)
        position = int(np.flatnonzero(dataset.clip_indices(index) == centre)[0])
        path = synthetic_ava.root / "videos" / f"{keyframe.video_id}.mp4"
        [(second, frame)] = list(iter_keyframes(path, [keyframe.second], AVA_RULE))
        assert second == keyframe.second
        np.testing.assert_array_equal(frame, clip[position])


def test_every_second_rule_stays_inside_the_video():
    rule = KeyframeRule(fps=30, video_start_sec=900, valid=range(902, 1799))
    assert rule.every_second(num_frames=6 * 30) == [902, 903, 904, 905]
    zero = KeyframeRule(fps=30, video_start_sec=0, valid=range(0, 100))
    assert zero.every_second(num_frames=61) == [0, 1, 2]
    np.testing.assert_allclose(zero.frame_times([0, 2, 5], num_frames=61), [0.0, 2.0, 2.0])


def test_csv_boxes_come_back_as_written(synthetic_ava, tmp_path):
    ann = synthetic_ava.root / "annotations"
    given = [ann / "ava_train_predicted_boxes.csv", ann / "ava_val_predicted_boxes.csv"]
    merged = tmp_path / "boxes.csv"
    merged.write_text("".join(p.read_text() for p in given))
    detector = build_detector("csv", path=merged, score_thresh=0.0)
    output = tmp_path / "out" / "proposals.csv"
    videos = annotated_videos(synthetic_ava.root)
    result = make_proposals(videos, detector, output, AVA_RULE, show_progress=False)
    assert result.videos_run == len(videos) and result.videos_skipped == 0
    got, expected = box_rows(output), box_rows(*given)
    assert result.rows == len(got) == len(expected)
    assert got["video_id"].tolist() == expected["video_id"].tolist()
    assert got["timestamp"].tolist() == expected["timestamp"].tolist()
    np.testing.assert_allclose(got[BOX_COLUMNS], expected[BOX_COLUMNS], atol=1.5e-3)
    np.testing.assert_allclose(got["score"], expected["score"], atol=1e-6)
    assert not parts_dir(output).exists()


def test_interrupted_run_leaves_no_csv_and_a_rerun_skips_finished_videos(synthetic_ava, tmp_path):
    ann = synthetic_ava.root / "annotations"
    complete = "".join((ann / f"ava_{s}_predicted_boxes.csv").read_text() for s in ("train", "val"))
    videos = annotated_videos(synthetic_ava.root)
    last = videos[-1].video_id
    boxes = tmp_path / "boxes.csv"
    # The box file lacks the last video: the csv detector stops there, as a crash would.
    boxes.write_text("".join(r + "\n" for r in complete.splitlines() if not r.startswith(last)))
    output = tmp_path / "proposals.csv"
    settings = {"detector": "csv", "path": str(boxes)}
    with pytest.raises(PersonDetectorError):
        detector = build_detector("csv", path=boxes, score_thresh=0.0)
        make_proposals(videos, detector, output, AVA_RULE, settings=settings, show_progress=False)
    assert not output.exists()
    parts = sorted(p.name for p in parts_dir(output).glob("*.csv"))
    assert parts == [f"{v.video_id}.csv" for v in videos[:-1]]
    stamps = {p: p.stat().st_mtime_ns for p in parts_dir(output).glob("*.csv")}

    boxes.write_text(complete)
    detector = build_detector("csv", path=boxes, score_thresh=0.0)
    result = make_proposals(
        videos, detector, output, AVA_RULE, settings=settings, show_progress=False
    )
    assert (result.videos_run, result.videos_skipped) == (1, len(videos) - 1)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p.exists())
    fresh = tmp_path / "fresh.csv"
    make_proposals(videos, detector, fresh, AVA_RULE, settings=settings, show_progress=False)
    assert output.read_text() == fresh.read_text()


def test_parts_of_other_settings_are_not_reused(synthetic_ava, tmp_path):
    videos = annotated_videos(synthetic_ava.root)[:1]
    output = tmp_path / "proposals.csv"
    parts = parts_dir(output)
    parts.mkdir()
    (parts / "settings.json").write_text('{"detector": "other"}')
    (parts / f"{videos[0].video_id}.csv").write_text("stale,0902,0.1,0.1,0.2,0.2,,0.5\n")
    detector = build_detector("csv", path=synthetic_ava.root / "annotations" /
                              "ava_train_predicted_boxes.csv", score_thresh=0.0)  # fmt: skip
    result = make_proposals(videos, detector, output, AVA_RULE, show_progress=False)
    assert result.videos_run == 1 and "stale" not in output.read_text()


def test_cli_hog_on_a_set_without_proposals(synthetic_ava, tmp_path, capsys):
    root = tmp_path / "set"
    shutil.copytree(synthetic_ava.root / "annotations", root / "annotations")
    (root / "videos").symlink_to(synthetic_ava.root / "videos")
    proposals = root / "annotations" / "ava_val_predicted_boxes.csv"
    proposals.unlink()
    opts = ["DATA.PATH_TO_DATA_DIR", str(root), "DEVICE", "cpu"]
    assert "make_proposals" in check_dataset(load_config(TINY, opts)).format()

    code = main(["--config", TINY, "--detector", "hog", "--split", "val", "--quiet", *opts])
    assert code == 0
    assert f"wrote {proposals}" in capsys.readouterr().out
    rows = read_ava_csv(proposals, kind="boxes")  # HOG finds no people in coloured rectangles
    assert rows["timestamp"].isin(synthetic_ava.keyframe_seconds).all()
    report = check_dataset(load_config(TINY, opts))
    assert "make_proposals" not in report.format() and report.ok


def test_hog_finds_the_walkers_of_vtest(shared_dir, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "walk.avi").symlink_to(shared_dir / "media" / "vtest.avi")
    output = tmp_path / "walk.csv"
    window = ["AVA.VIDEO_START_SEC", "0", "AVA.VALID_FRAMES_START_SEC", "3"]
    window += ["AVA.VALID_FRAMES_END_SEC", "4", "DEVICE", "cpu"]
    code = main(["--videos", str(videos), "--output", str(output), "--quiet", *window])
    assert code == 0
    rows = read_ava_csv(output, kind="boxes")
    assert set(rows["video_id"]) == {"walk"} and set(rows["timestamp"]) == {3, 4}
    assert (rows["score"] >= 0.8).all()  # DEMO.PERSON_SCORE_THRESH
    assert (rows["x2"] > rows["x1"]).all() and (rows["y2"] > rows["y1"]).all()


def test_cli_argument_errors_exit_2(tmp_path, capsys):
    for argv in (
        [],
        ["--videos", str(tmp_path)],
        ["--config", TINY, "--output", "x.csv"],
        ["--videos", str(tmp_path / "absent"), "--output", str(tmp_path / "x.csv")],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.startswith("error: ")
