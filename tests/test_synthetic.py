import csv
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from detection.ava.labelmap import read_labelmap
from detection.data.sampling import clip_frame_indices, slow_indices
from detection.data.synthetic import (
    ACTION_NAMES,
    CROSSING_ACTIONS,
    FAST_CLASSES,
    CrossingScene,
    Walker,
    generate_synthetic_ava,
    make_crossing_scene,
    noisy_detections,
)
from detection.data.video import VideoReader

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _gt_actors(
    root: Path, split: str
) -> dict[tuple[str, int, str], tuple[tuple[float, ...], set[int]]]:
    actors: dict = defaultdict(lambda: [None, set()])
    with open(root / "annotations" / f"ava_{split}_v2.2.csv") as f:
        for vid, sec, x1, y1, x2, y2, action, person in csv.reader(f):
            entry = actors[(vid, int(sec), person)]
            entry[0] = tuple(map(float, (x1, y1, x2, y2)))
            entry[1].add(int(action))
    return {k: (v[0], v[1]) for k, v in actors.items()}


def test_layout_matches_real_ava(synthetic_ava):
    root = synthetic_ava.root
    for name in (
        "ava_train_v2.2.csv",
        "ava_val_v2.2.csv",
        "ava_train_predicted_boxes.csv",
        "ava_val_predicted_boxes.csv",
        "ava_train_excluded_timestamps_v2.2.csv",
        "ava_val_excluded_timestamps_v2.2.csv",
    ):
        assert (root / "annotations" / name).stat().st_size > 0, name
    for vid in synthetic_ava.train_videos + synthetic_ava.val_videos:
        with VideoReader(root / "videos" / f"{vid}.mp4") as reader:
            assert reader.fps == 30 and reader.size == (160, 120)
            assert reader.num_frames_at(30) == synthetic_ava.seconds * 30
        assert len(list((root / "frames" / vid).glob(f"{vid}_*.jpg"))) == synthetic_ava.seconds * 30
    lines = (root / "frame_lists" / "val.csv").read_text().splitlines()
    assert lines[0] == "original_vido_id video_id frame_id path labels"
    vid = synthetic_ava.val_videos[0]
    assert lines[1] == f'{vid} 0 0 {vid}/{vid}_000001.jpg ""'
    assert len(lines) == 1 + synthetic_ava.seconds * 30


def test_fixture_keyframe_counts_that_other_tests_rely_on(synthetic_ava):
    ann = synthetic_ava.root / "annotations"
    for split, count in (("train", 4), ("val", 2)):
        with open(ann / f"ava_{split}_v2.2.csv") as f:
            assert len({(r[0], r[1]) for r in csv.reader(f)}) == count, split


def test_label_maps_in_both_dialects(synthetic_ava):
    ann = synthetic_ava.root / "annotations"
    full = read_labelmap(ann / "ava_action_list_v2.2.pbtxt")
    items = read_labelmap(ann / "ava_action_list_v2.2_for_activitynet_2019.pbtxt")
    assert full.names == items.names == ACTION_NAMES
    assert set(full.groups.values()) == {"PERSON_MOVEMENT"} and not items.groups


def test_keyframes_boxes_and_scores(synthetic_ava):
    root = synthetic_ava.root
    gt = _gt_actors(root, "train")
    assert {sec for _, sec, _ in gt} <= set(synthetic_ava.keyframe_seconds) == {902, 903, 904}
    for box, labels in gt.values():
        x1, y1, x2, y2 = box
        assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
        assert len(labels & {1, 2, 3, 4}) == 1 and labels <= {1, 2, 3, 4, 5}
    excluded = {
        tuple(r)
        for r in csv.reader(open(root / "annotations" / "ava_train_excluded_timestamps_v2.2.csv"))
    }
    assert excluded and not any(
        (vid, int(sec)) == (k[0], k[1]) for vid, sec in excluded for k in gt
    )
    with open(root / "annotations" / "ava_val_predicted_boxes.csv") as f:
        rows = list(csv.reader(f))
    assert all(r[6] == "" for r in rows)
    scores = np.array([float(r[7]) for r in rows])
    n_val_gt = len(_gt_actors(root, "val"))
    assert (scores >= 0.9).sum() >= n_val_gt  # every actor detected (excluded keyframes too)
    assert (scores < 0.9).sum() >= 1  # some false positives for the threshold to remove


def test_fast_classes_look_static_in_the_slow_frames(synthetic_ava):
    """The design promise: with 16 frames at rate 2 and alpha 4, Slow's frames (10 apart) show an
    oscillating or flickering actor in one phase; Fast's frames (2 apart) show it changing."""
    root = synthetic_ava.root
    changes: dict[str, list[float]] = defaultdict(list)
    slow_pos = slow_indices(16, 4).numpy()
    for split in ("train", "val"):
        for (vid, sec, _), (box, labels) in _gt_actors(root, split).items():
            if not labels <= set(FAST_CLASSES):
                continue  # drift and bounce change in every pathway
            center = (sec - 900) * 30
            with VideoReader(root / "videos" / f"{vid}.mp4") as reader:
                clip = reader.read_at_times(clip_frame_indices(center, 16, 2, 10**6) / 30).astype(
                    np.float32
                )
            x1, y1, x2, y2 = (np.array(box) * [160, 120, 160, 120]).round().astype(int)
            crops = clip[:, y1:y2, x1:x2]
            slow_change = np.abs(crops[slow_pos] - crops[slow_pos[0]]).mean(axis=(1, 2, 3)).max()
            fast_change = np.abs(crops - crops[0]).mean(axis=(1, 2, 3)).max()
            kind = "fast" if labels & {4, 5} else "static"
            changes[f"{kind}_slow"].append(slow_change)
            changes[f"{kind}_fast"].append(fast_change)
    assert changes["fast_slow"] and changes["static_slow"], "the fixture should hold both kinds"
    # Identical pixels, for every actor, in Slow's frames (lossless coding: no compression noise
    # that would differ between a still actor and one back at the same phase)...
    assert max(changes["fast_slow"] + changes["static_slow"] + changes["static_fast"]) == 0.0
    # ...while Fast's frames see every oscillating or flickering actor change a lot.
    assert min(changes["fast_fast"]) > 15.0


def test_generation_is_deterministic_per_seed(tmp_path):
    cli = PROJECT_ROOT / "tools" / "make_synthetic_ava.py"
    args = ["--num-videos", "2", "--seconds", "4", "--seed", "7"]
    subprocess.run(
        [sys.executable, str(cli), "--output", str(tmp_path / "a"), *args],
        check=True,
        capture_output=True,
    )
    generate_synthetic_ava(tmp_path / "b", num_videos=2, seconds=4, seed=7, progress=False)
    generate_synthetic_ava(tmp_path / "c", num_videos=2, seconds=4, seed=8, progress=False)
    files_a = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    assert files_a == sorted(
        p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file()
    )
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    gt = "annotations/ava_train_v2.2.csv"
    assert (tmp_path / "a" / gt).read_bytes() != (tmp_path / "c" / gt).read_bytes()


def test_crossing_scene_people_cross_hide_each_other_and_repeat_per_seed():
    scene = make_crossing_scene(num_people=6, duration_s=20, seed=3)
    assert scene == make_crossing_scene(num_people=6, duration_s=20, seed=3)
    assert scene != make_crossing_scene(num_people=6, duration_s=20, seed=4)
    directions = {np.sign(w.velocity[0]) for w in scene.walkers}
    assert directions == {-1.0, 1.0}
    hidden = []
    for t in np.arange(0.0, 20.0, 0.5):
        ids, boxes, visibility = scene.boxes_at(float(t))
        assert ids.tolist() == sorted(ids.tolist())
        assert (boxes[:, 2:] > boxes[:, :2]).all() and (boxes >= 0).all()
        assert (boxes[:, 2] <= scene.width).all() and (boxes[:, 3] <= scene.height).all()
        hidden += visibility[(visibility < 0.3)].tolist()
    assert hidden, "some people should be mostly hidden at times"
    for walker in scene.walkers:
        assert set(walker.doing(walker.start_s + 1.0)) <= set(CROSSING_ACTIONS)


def test_crossing_visibility_and_noisy_detections():
    far = Walker(1, 30.0, 70.0, (200, 0, 0), (100.0, 100.0), (0.0, 0.0), 0.0, 5.0, ())
    near = Walker(2, 40.0, 90.0, (0, 200, 0), (100.0, 120.0), (0.0, 0.0), 0.0, 5.0, ())
    scene = CrossingScene((far, near), 200, 150, 5.0, 10, 0)
    ids, _, visibility = scene.boxes_at(1.0)
    # The nearer (lower) person covers the farther one entirely.
    assert ids.tolist() == [1, 2] and visibility.tolist() == [0.0, 1.0]
    rng = np.random.default_rng(0)
    for _ in range(20):
        boxes, scores, person = noisy_detections(scene, 1.0, rng, dropout=0.0)
        assert 1 not in person.tolist() and 2 in person.tolist()
        assert (np.diff(scores) <= 0).all() and boxes.dtype == np.float32


def test_crossing_video_has_the_scene_frames(tmp_path):
    scene = make_crossing_scene(num_people=3, duration_s=1.0, width=160, height=90, fps=10)
    assert scene.write_video(tmp_path / "cross.mp4") == 10
    with VideoReader(tmp_path / "cross.mp4") as reader:
        frames = [image for image, _ in reader.iter_frames()]
    assert len(frames) == 10 and frames[0].shape == (90, 160, 3)
    # Lossy but close: mean absolute difference of a few grey levels.
    assert np.abs(frames[5].astype(int) - scene.render(0.5)).mean() < 4


def test_annotation_exports_in_cvat_and_via_leave_the_dataset_unchanged(tmp_path):
    import json
    import xml.etree.ElementTree as ET

    from detection.data.synthetic import CUSTOM_CLASSES

    plain = generate_synthetic_ava(
        tmp_path / "plain", num_videos=2, seconds=4, seed=2, progress=False
    )
    generate_synthetic_ava(
        tmp_path / "exports",
        num_videos=2,
        seconds=4,
        seed=2,
        annotation_formats=("cvat", "via"),
        progress=False,
    )
    files = sorted(p.relative_to(plain.root) for p in plain.root.rglob("*") if p.is_file())
    for rel in files:
        if rel.name != "synthetic_ava.json":
            assert (tmp_path / "exports" / rel).read_bytes() == (plain.root / rel).read_bytes(), rel
    custom = tmp_path / "exports" / "custom"
    labelmap = read_labelmap(custom / "labelmap.pbtxt")
    assert labelmap.names == dict(CUSTOM_CLASSES.values()) and labelmap.ids == [3, 7, 8, 12, 15]

    # CVAT: one task per video, a person track per actor with a box on every frame and the
    # actor's classes as true checkboxes; the box at frame 60 is the ground truth's at 902.
    gt = _gt_actors(plain.root, "train")
    root = ET.parse(custom / "cvat" / "syn_000.xml").getroot()
    assert root.findtext("version") == "1.1" and root.findtext("meta/source") == "syn_000.mp4"
    assert root.findtext("meta/task/size") == str(4 * 30)
    declared = [a.findtext("name") for a in root.iter("attribute") if a.findtext("input_type")]
    assert declared == [name for _, name in CUSTOM_CLASSES.values()]
    tracks = root.findall("track")
    assert {t.get("id") for t in tracks} == {p for v, _, p in gt if v == "syn_000"}
    for track in tracks:
        boxes = track.findall("box")
        assert [int(b.get("frame")) for b in boxes] == list(range(4 * 30))
        box, labels = gt[("syn_000", 902, track.get("id"))]
        at_902 = boxes[60]
        pixels = [float(at_902.get(k)) for k in ("xtl", "ytl", "xbr", "ybr")]
        assert np.allclose(np.array(pixels) / [160, 120, 160, 120], box, atol=6e-4)
        true = {a.get("name") for a in at_902.findall("attribute") if a.text == "true"}
        assert true == {CUSTOM_CLASSES[a][1] for a in labels}

    # VIA 3: a rectangle per actor at every whole second, checkbox option ids per action.
    project = json.loads((custom / "via" / "project.json").read_text())
    assert [f["fname"] for f in project["file"].values()] == ["syn_000.mp4", "syn_001.mp4"]
    options = project["attribute"]["2"]["options"]
    assert project["attribute"]["2"]["type"] == 2 and sorted(options.values()) == sorted(
        name for _, name in CUSTOM_CLASSES.values()
    )
    regions = [m for m in project["metadata"].values() if m["vid"] == "1"]
    assert sorted({m["z"][0] for m in regions}) == [0.0, 1.0, 2.0, 3.0]
    for m in regions:
        if m["z"] == [2.0]:
            box, labels = gt[("syn_000", 902, m["av"]["1"])]
            _, x, y, w, h = m["xy"]
            assert np.allclose(
                np.array([x, y, x + w, y + h]) / [160, 120, 160, 120], box, atol=6e-4
            )
            chosen = {options[o] for o in m["av"]["2"].split(",")}
            assert chosen == {CUSTOM_CLASSES[a][1] for a in labels}

    boxes = list(csv.reader(open(custom / "person_boxes.csv")))
    assert {(r[0], int(r[1])) for r in boxes} == {
        (v, s) for v in ("syn_000", "syn_001") for s in range(4)
    }


def test_unknown_annotation_format_is_a_usage_error(tmp_path):
    cli = PROJECT_ROOT / "tools" / "make_synthetic_ava.py"
    proc = subprocess.run(
        [
            sys.executable,
            str(cli),
            "--output",
            str(tmp_path / "x"),
            "--annotation-formats",
            "cvat,coco",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "--annotation-formats: coco unknown" in proc.stderr
    assert not (tmp_path / "x").exists()
