import csv
import logging
from pathlib import Path

import numpy as np
import pytest

from detection.ava.csv_io import AvaCsvError, read_excluded_timestamps
from detection.ava.labelmap import read_labelmap
from detection.ava.packaged import packaged_labelmap_path
from detection.data.annotations import (
    AnnotationError,
    group_keyframes,
    read_box_files,
    read_frame_lists,
)

VALID = range(902, 1799)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _keyframes(gt=(), pred=(), thresh=0.9, num_classes=80):
    rows = read_box_files(gt, pred, score_thresh=thresh, num_classes=num_classes)
    return {(k.video_id, k.second): k for k in group_keyframes(rows, VALID)}


def test_repeated_box_rows_become_one_multi_hot_box_and_empty_action_is_negative(tmp_path):
    gt = _write(
        tmp_path / "gt.csv",
        "vidA,0902,0.100,0.200,0.300,0.400,12,0\n"
        "vidA,0902,0.500,0.200,0.700,0.900,80,1\n"
        "vidA,0902,0.100,0.200,0.300,0.400,79,0\n"
        "vidA,0902,0.100,0.200,0.300,0.400,12,0\n"  # the same label twice counts once
        "vidA,0903,0.000,0.000,1.000,1.000,,2\n"  # a person with no action: negative box
        "vidA,0904,,,,,,\n"  # annotated frame without anybody: no keyframe
        "vidB,0902,0.1,0.1,0.2,0.2,2,0\n",
    )
    frames = _keyframes([gt])
    assert sorted(frames) == [("vidA", 902), ("vidA", 903), ("vidB", 902)]
    first = frames[("vidA", 902)]
    np.testing.assert_allclose(first.boxes, [[0.1, 0.2, 0.3, 0.4], [0.5, 0.2, 0.7, 0.9]])
    assert first.labels == ((12, 79), (80,))
    hot = first.multi_hot(80)
    assert hot.shape == (2, 80) and hot.dtype == np.float32
    assert np.flatnonzero(hot[0]).tolist() == [11, 78] and np.flatnonzero(hot[1]).tolist() == [79]
    negative = frames[("vidA", 903)]
    assert negative.labels == ((),) and negative.multi_hot(80).sum() == 0


def test_predicted_boxes_below_the_threshold_are_dropped_and_merge_with_gt(tmp_path):
    gt = _write(tmp_path / "gt.csv", "v,0910,0.1,0.1,0.5,0.5,3,0\n")
    pred = _write(
        tmp_path / "pred.csv",
        "v,0910,0.1,0.1,0.5,0.5,,0.990000\n"  # the GT box again: merges, adds no label
        "v,0910,0.6,0.1,0.9,0.5,,0.950000\n"
        "v,0910,0.0,0.0,0.2,0.2,,0.899999\n"  # below 0.9
        "v,0911,0.0,0.0,0.2,0.2,,0.100000\n"  # the only box of 911: no keyframe
        "v,0912,0.2,0.2,0.4,0.4,-1,0.950000\n",  # -1 in a box file: no action
    )
    frames = _keyframes([gt], [pred])
    assert sorted(frames) == [("v", 910), ("v", 912)]
    assert frames[("v", 910)].labels == ((3,), ())
    assert len(frames[("v", 910)].boxes) == 2
    assert frames[("v", 912)].labels == ((),)
    # Test split: predicted boxes only, with a lower threshold everything stays.
    frames = _keyframes(pred=[pred], thresh=0.0)
    assert sorted(frames) == [("v", 910), ("v", 911), ("v", 912)]
    assert len(frames[("v", 910)].boxes) == 3


def test_a_person_score_exactly_at_the_threshold_is_kept(tmp_path):
    # PySlowFast skips a box only when score < DETECTION_SCORE_THRESH.
    pred = _write(
        tmp_path / "pred.csv",
        "v,0910,0.1,0.1,0.2,0.2,,0.8\n"
        "v,0910,0.3,0.1,0.4,0.2,,0.800000\n"
        "v,0910,0.5,0.1,0.6,0.2,,0.7999999\n"
        "v,0910,0.7,0.1,0.8,0.2,,0.8000001\n",
    )
    (frame,) = _keyframes(pred=[pred], thresh=0.8).values()
    np.testing.assert_array_equal(frame.boxes[:, 0], [0.1, 0.3, 0.7])


def test_pyslowfast_boxes_and_labels_file_gives_one_box_per_person_with_its_labels(tmp_path):
    """person_box_67091280_iou*/ava_detection_val_boxes_and_labels.csv rows carry an action
    (the ground truth's, matched by IoU) and the detector's score; one row per action."""
    pred = _write(
        tmp_path / "ava_detection_val_boxes_and_labels.csv",
        "1j20qq1JyX4,0902,0.036,0.098,0.550,0.979,12,0.995518\n"
        "1j20qq1JyX4,0902,0.036,0.098,0.550,0.979,80,0.995518\n"
        "1j20qq1JyX4,0902,0.600,0.100,0.900,0.950,-1,0.85\n",
    )
    (frame,) = _keyframes(pred=[pred], thresh=0.8).values()
    assert frame.labels == ((12, 80), ())
    # Coordinates as written, in float64 as PySlowFast's float() parses them.
    assert frame.boxes.dtype == np.float64
    assert frame.boxes[0].tolist() == [0.036, 0.098, 0.550, 0.979]


def test_seconds_outside_the_valid_range_are_skipped_counted_and_logged(tmp_path, caplog):
    gt = _write(
        tmp_path / "gt.csv",
        "v,0901,0.1,0.1,0.2,0.2,1,0\nv,0902,0.1,0.1,0.2,0.2,1,0\nv,1798,0.1,0.1,0.2,0.2,1,0\nv,1799,0.1,0.1,0.2,0.2,1,0\n",
    )
    with caplog.at_level(logging.WARNING, logger="detection.data.annotations"):
        frames = _keyframes([gt])
    assert sorted(frames) == [("v", 902), ("v", 1798)]
    assert "2 box rows at seconds outside 902..1798 skipped" in caplog.text


def test_bad_rows_name_the_file_and_line(tmp_path):
    ok = "v,0902,0.1,0.1,0.2,0.2,1,0\n"
    unknown = _write(tmp_path / "unknown.csv", ok + "v,0902,0.1,0.1,0.2,0.2,81,0\n")
    with pytest.raises(AnnotationError, match=r"unknown.csv:2: action id 81 is not in 1..80"):
        _keyframes([unknown])
    with pytest.raises(AnnotationError, match=r"unknown.csv:2: action id 6 is not in 1..5"):
        _keyframes(
            [_write(tmp_path / "unknown.csv", ok + "v,0902,0.1,0.1,0.2,0.2,6,0\n")], num_classes=5
        )
    flipped = _write(tmp_path / "flipped.csv", ok + ok + "v,0902,0.5,0.1,0.2,0.2,1,0\n")
    with pytest.raises(AvaCsvError, match=r"flipped.csv:3: x1 = 0.5 > x2 = 0.2"):
        _keyframes([flipped])
    outside = _write(tmp_path / "outside.csv", ok + "v,0902,0.1,0.1,1.2,0.2,,0.99\n")
    with pytest.raises(AvaCsvError, match=r"outside.csv:2: box .* is outside \[0, 1\]"):
        _keyframes(pred=[outside])
    short = _write(tmp_path / "short.csv", ok + "v,0902,0.1,0.1\n")
    with pytest.raises(AvaCsvError, match=r"short.csv:2: expected 7 or 8 comma-separated fields"):
        _keyframes([short])
    with pytest.raises(AvaCsvError, match="cannot read .*missing.csv"):
        _keyframes([tmp_path / "missing.csv"])


def test_label_maps_full_80_and_evaluated_60(project_root):
    full = read_labelmap(packaged_labelmap_path("ava_action_list_v2.2.pbtxt"))
    evaluated = read_labelmap(
        packaged_labelmap_path("ava_action_list_v2.2_for_activitynet_2019.pbtxt")
    )
    assert len(full) == 80 and len(evaluated) == 60
    assert set(evaluated.ids) < set(full.ids)
    assert 2 in full and 2 not in evaluated  # "crawl": trained on (column 1), not evaluated
    assert full.groups[2] == "PERSON_MOVEMENT"


def test_excluded_timestamps_shipped_with_the_repo(project_root, shared_dir):
    ours = project_root / "data" / "ava" / "ava_val_excluded_timestamps_v2.2.csv"
    excluded = read_excluded_timestamps(ours)
    assert ("5BDj0ow5hnA", 1038) in excluded
    assert ours.read_bytes() == (shared_dir / "data" / "ava" / ours.name).read_bytes()


def test_generated_dataset_round_trips_through_the_reader(synthetic_ava):
    ann = synthetic_ava.root / "annotations"
    for split, videos in (("train", synthetic_ava.train_videos), ("val", synthetic_ava.val_videos)):
        expected: dict = {}
        with open(ann / f"ava_{split}_v2.2.csv") as f:
            for vid, sec, x1, y1, x2, y2, action, _ in csv.reader(f):
                box = tuple(float(v) for v in (x1, y1, x2, y2))
                expected.setdefault((vid, int(sec)), {}).setdefault(box, set()).add(int(action))
        frames = _keyframes([ann / f"ava_{split}_v2.2.csv"], num_classes=5)
        assert frames.keys() == expected.keys()
        for key, keyframe in frames.items():
            got = {
                tuple(np.round(b, 3).tolist()): set(labels)
                for b, labels in zip(keyframe.boxes.astype(float), keyframe.labels, strict=True)
            }
            assert got == {tuple(np.round(b, 3)): a for b, a in expected[key].items()}
        excluded = read_excluded_timestamps(ann / f"ava_{split}_excluded_timestamps_v2.2.csv")
        all_seconds = {(v, s) for v in videos for s in synthetic_ava.keyframe_seconds}
        assert excluded and excluded <= all_seconds
        assert frames.keys() == all_seconds - excluded
        # The predicted boxes cover every keyframe, excluded ones too (the evaluator skips those).
        predicted = _keyframes(pred=[ann / f"ava_{split}_predicted_boxes.csv"], num_classes=5)
        assert predicted.keys() == all_seconds


def test_frame_lists(synthetic_ava, tmp_path):
    lists = read_frame_lists(
        [synthetic_ava.root / "frame_lists" / "train.csv"], synthetic_ava.root / "frames"
    )
    assert sorted(lists) == list(synthetic_ava.train_videos)
    vid = synthetic_ava.train_videos[0]
    assert len(lists[vid]) == synthetic_ava.seconds * 30
    assert lists[vid][0] == synthetic_ava.root / "frames" / vid / f"{vid}_000001.jpg"
    assert all(p.is_file() for p in lists[vid][:5])
    bad = _write(
        tmp_path / "bad.csv",
        "original_vido_id video_id frame_id path labels\n"
        'v 0 0 v/v_000001.jpg ""\nv 0 1 v/v_000002.jpg\n',
    )
    with pytest.raises(AnnotationError, match=r"bad.csv:3: expected 5 space-separated fields"):
        read_frame_lists([bad], tmp_path)
    gap = _write(tmp_path / "gap.csv", 'h\nv 0 0 a.jpg ""\nv 0 2 b.jpg ""\n')
    with pytest.raises(AnnotationError, match=r"gap.csv:3: frame_id '2' of v is out of order"):
        read_frame_lists([gap], tmp_path)


def test_frame_lists_share_the_csv_encoding_and_line_end_rules(tmp_path):
    # A byte-order mark, CRLF and CR-only line ends read alike; bytes that are not UTF-8 and
    # digits that int() refuses are one-line errors naming the file and line.
    rows = [
        "original_vido_id video_id frame_id path labels",
        'v 0 0 v/a.jpg ""',
        'v 0 1 v/b.jpg ""',
    ]
    expected = {"v": [tmp_path / "v/a.jpg", tmp_path / "v/b.jpg"]}
    for name, data in [
        ("bom.csv", b"\xef\xbb\xbf" + "\r\n".join(rows).encode()),
        ("cr.csv", "\r".join(rows).encode() + b"\r"),
    ]:
        (tmp_path / name).write_bytes(data)
        assert read_frame_lists([tmp_path / name], tmp_path) == expected
    (tmp_path / "latin1.csv").write_bytes("\n".join([*rows, 'vé 0 0 x.jpg ""']).encode("latin-1"))
    with pytest.raises(AnnotationError, match=r"latin1.csv:4: not UTF-8"):
        read_frame_lists([tmp_path / "latin1.csv"], tmp_path)
    (tmp_path / "digit.csv").write_text("\n".join([*rows, 'v 0 \u00b2 c.jpg ""']))
    with pytest.raises(
        AnnotationError, match=r"digit.csv:4: frame_id '\u00b2' of v is out of order"
    ):
        read_frame_lists([tmp_path / "digit.csv"], tmp_path)
