import csv
import logging

import numpy as np
import pandas as pd
import pytest

from detection.ava import csv_io
from detection.ava.csv_io import (
    AvaCsvError,
    iter_ava_csv,
    read_ava_csv,
    read_excluded_timestamps,
    write_ava_csv,
    write_detections,
)
from detection.errors import MAX_MESSAGE_CHARS

DETECTION_ROW = "vid_a,0902,0.100,0.200,0.300,0.400,12,0.5"


def write(tmp_path, text, name="file.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_detections_columns_types_and_zero_padded_timestamps(tmp_path):
    path = write(tmp_path, f"{DETECTION_ROW}\nNA,1038,0.0,0.0,1.0,1.0,80,0.25\n")
    frame = read_ava_csv(path, kind="detections")
    assert list(frame.columns) == [
        "video_id",
        "timestamp",
        "x1",
        "y1",
        "x2",
        "y2",
        "action_id",
        "score",
    ]
    assert frame["video_id"].tolist() == ["vid_a", "NA"]  # "NA" is a video id, not a missing value
    assert frame["timestamp"].tolist() == [902, 1038]
    assert frame["timestamp"].dtype == np.int64 and frame["action_id"].dtype == np.int64
    assert frame.loc[0, ["x1", "y1", "x2", "y2"]].tolist() == [0.1, 0.2, 0.3, 0.4]
    assert frame["score"].tolist() == [0.5, 0.25]


def test_groundtruth_with_and_without_person_ids_and_box_less_rows(tmp_path):
    path = write(
        tmp_path,
        (
            "vid_a,0902,0.1,0.2,0.3,0.4,12,3\n"  # with person id
            "vid_a,0903,0.1,0.2,0.3,0.4,5\n"  # without
            "vid_a,0904,0.1,0.2,0.3,0.4,,7\n"  # box without an action
            "vid_a,0905,,,,,,\n"  # box-less row: the frame is annotated, nobody in it
        ),
    )
    frame = read_ava_csv(path, kind="groundtruth")
    assert "score" not in frame
    assert frame["person_id"].tolist() == [3, -1, 7, -1]
    assert frame["action_id"].tolist() == [12, 5, -1, -1]
    assert frame.loc[3, ["x1", "y1", "x2", "y2"]].isna().all()


def test_boxes_files_with_empty_or_minus_one_action_and_optional_score(tmp_path):
    path = write(
        tmp_path,
        (
            "vid_a,0902,0.1,0.2,0.3,0.4,,0.9\n"  # person-detector file: no action, a score
            "vid_a,0903,0.1,0.2,0.3,0.4,-1,0.5\n"
            "vid_a,0904,0.1,0.2,0.3,0.4,17\n"  # ground truth used as boxes: no score
        ),
    )
    frame = read_ava_csv(path, kind="boxes")
    assert frame["action_id"].tolist() == [-1, -1, 17]
    assert frame["score"].tolist()[:2] == [0.9, 0.5] and np.isnan(frame["score"].iloc[2])


@pytest.mark.parametrize(
    ("second_line", "message"),
    [
        ("vid_a,0902,0.1,0.2,0.3,0.4,12", "expected 8 comma-separated fields, got 7"),
        ("vid_a,0902,0.1,0.2,0.3,0.4,12,0.5,9", "expected 8 comma-separated fields, got 9"),
        ("", "got an empty line"),
        ("vid_a,0902,0.1,abc,0.3,0.4,12,0.5", "y1 'abc' is not a number"),
        ("vid_a,0902,0.4,0.2,0.3,0.4,12,0.5", "x1 = 0.4 > x2 = 0.3"),
        ("vid_a,0902,0.1,0.5,0.3,0.4,12,0.5", "y1 = 0.5 > y2 = 0.4"),
        ("vid_a,0902,0.1,0.2,0.3,1.4,12,0.5", "outside [0, 1]"),
        ("vid_a,0902,-0.01,0.2,0.3,0.4,12,0.5", "outside [0, 1]"),
        ("vid_a,0902,0.1,0.2,0.3,0.4,12.5,0.5", "action id 12.5 is not an integer >= 1"),
        ("vid_a,0902,0.1,0.2,0.3,0.4,,0.5", "missing action id"),
        ("vid_a,902.5,0.1,0.2,0.3,0.4,12,0.5", "timestamp 902.5 is not a non-negative integer"),
        ("vid_a,0902,0.1,0.2,0.3,0.4,12,", "missing score"),
        ("vid_a,0902,0.1,0.2,0.3,0.4,12,inf", "score inf is not finite"),
        (",0902,0.1,0.2,0.3,0.4,12,0.5", "empty video id"),
    ],
)
def test_malformed_detection_rows_name_file_line_and_expectation(tmp_path, second_line, message):
    # The good first and third lines make sure the error points at line 2, not at the file.
    path = write(tmp_path, f"{DETECTION_ROW}\n{second_line}\n{DETECTION_ROW}\n")
    with pytest.raises(AvaCsvError) as error:
        read_ava_csv(path, kind="detections")
    assert f"{path}:2:" in str(error.value)
    assert message in str(error.value)
    assert isinstance(error.value, ValueError)


def test_groundtruth_rejects_partial_boxes_and_fractional_person_ids(tmp_path):
    path = write(tmp_path, "vid_a,0902,0.1,,0.3,0.4,12,3\n")
    with pytest.raises(AvaCsvError, match="file.csv:1: box has some coordinates missing"):
        read_ava_csv(path, kind="groundtruth")
    path = write(tmp_path, "vid_a,0902,0.1,0.2,0.3,0.4,12,3.5\n")
    with pytest.raises(AvaCsvError, match="person id 3.5 is not a non-negative integer"):
        read_ava_csv(path, kind="groundtruth")


def test_round_off_just_outside_unit_range_is_kept_as_written(tmp_path):
    path = write(tmp_path, "vid_a,0902,-0.0000001,0.2,1.0000001,0.4,12,0.5\n")
    frame = read_ava_csv(path, kind="detections")
    assert frame.loc[0, "x1"] == -0.0000001 and frame.loc[0, "x2"] == 1.0000001


def test_empty_file_gives_empty_typed_frame(tmp_path):
    frame = read_ava_csv(write(tmp_path, ""), kind="detections")
    assert len(frame) == 0
    assert frame["timestamp"].dtype == np.int64


def test_missing_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(AvaCsvError, match="missing.csv"):
        read_ava_csv(tmp_path / "missing.csv", kind="groundtruth")


def test_unknown_kind_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="kind must be one of"):
        read_ava_csv(write(tmp_path, DETECTION_ROW), kind="predictions")


def test_real_excluded_timestamps_file(shared_dir):
    excluded = read_excluded_timestamps(
        shared_dir / "data/ava/ava_val_excluded_timestamps_v2.2.csv"
    )
    assert ("5BDj0ow5hnA", 1038) in excluded
    assert all(isinstance(t, int) for _, t in excluded)
    test_excluded = read_excluded_timestamps(
        shared_dir / "data/ava/ava_test_excluded_timestamps_v2.2.csv"
    )
    assert ("-FLn0aeA6EU", 913) in test_excluded  # written "0913" in the file


def test_malformed_excluded_timestamps(tmp_path):
    path = write(tmp_path, "vid_a,0902\nvid_a,09x2\n")
    with pytest.raises(AvaCsvError, match=r"file.csv:2: timestamp '09x2'"):
        read_excluded_timestamps(path)
    path = write(tmp_path, "vid_a,0902,1\n")
    with pytest.raises(AvaCsvError, match=r"file.csv:1: expected 'video_id,timestamp'"):
        read_excluded_timestamps(path)


def test_write_detections_round_trip_one_row_per_box_and_class(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_io, "_BOXES_PER_WRITE", 1)  # write box by box: blocks join up
    path = tmp_path / "out" / "detections.csv"
    boxes = np.array([[0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 1.0, 1.0]])
    scores = np.array([[0.5, 0.25, 0.125], [0.0625, 1.0, 0.123456789]])
    write_detections(path, ["vid_a", "vid_b"], [902, 1038], boxes, scores, [1, 12, 80])

    lines = path.read_text().splitlines()
    assert lines[0] == "vid_a,0902,0.100,0.200,0.300,0.400,1,0.500000"
    assert lines[5] == "vid_b,1038,0.000,0.000,1.000,1.000,80,0.123457"
    frame = read_ava_csv(path, kind="detections")
    assert len(frame) == 6
    assert frame["action_id"].tolist() == [1, 12, 80, 1, 12, 80]
    np.testing.assert_allclose(frame["score"].to_numpy(), scores.reshape(-1), atol=5e-7)
    np.testing.assert_allclose(frame[["x1", "y1", "x2", "y2"]].to_numpy()[::3], boxes)
    assert sorted(p.name for p in path.parent.iterdir()) == ["detections.csv"]  # no temp left


def test_write_detections_validates_shapes_and_ranges(tmp_path):
    path = tmp_path / "detections.csv"
    with pytest.raises(ValueError, match="scores must have shape"):
        write_detections(path, ["v"], [902], np.zeros((1, 4)), np.zeros((1, 2)), [1, 2, 3])
    with pytest.raises(ValueError, match="not normalized"):
        write_detections(path, ["v"], [902], np.array([[0, 0, 320, 240]]), np.zeros((1, 1)), [1])
    assert not path.exists()


def test_iter_ava_csv_pieces_match_the_whole_file(tmp_path):
    rows = [f"vid_{i % 3},{902 + i:04d},0.1,0.2,0.3,0.4,{1 + i % 80},0.{i:03d}" for i in range(10)]
    path = write(tmp_path, "\n".join(rows) + "\n")
    pieces = list(iter_ava_csv(path, kind="detections", chunk_rows=4))
    assert [len(p) for p in pieces] == [4, 4, 2]
    whole = read_ava_csv(path, kind="detections")
    joined = pd.concat(pieces)
    assert joined.index.tolist() == list(range(10))
    pd.testing.assert_frame_equal(joined, whole)


def test_iter_ava_csv_error_in_a_later_piece_is_exact(tmp_path):
    rows = [DETECTION_ROW] * 5 + ["vid_a,0902,0.1,0.2,0.3,0.4,12"] + [DETECTION_ROW]
    path = write(tmp_path, "\n".join(rows) + "\n")
    with pytest.raises(AvaCsvError, match=r"file.csv:6: expected 8 comma-separated fields, got 7"):
        list(iter_ava_csv(path, kind="detections", chunk_rows=2))


def test_iter_ava_csv_integral_floats_later_are_read_once(tmp_path):
    # "0903.0" is accepted (leniently) only by the whole-file reader: the rows after the
    # pieces already handed out come from it, none twice.
    rows = [DETECTION_ROW] * 3 + ["vid_a,0903.0,0.1,0.2,0.3,0.4,12.0,0.5"]
    path = write(tmp_path, "\n".join(rows) + "\n")
    pieces = list(iter_ava_csv(path, kind="detections", chunk_rows=2))
    joined = pd.concat(pieces)
    assert joined.index.tolist() == [0, 1, 2, 3]
    assert joined["timestamp"].tolist() == [902, 902, 902, 903]


def test_official_box_check_keeps_what_the_official_evaluator_scores_and_warns_once(
    tmp_path, caplog
):
    rows = [
        DETECTION_ROW,
        "vid_a,0902,0.4,0.2,0.3,0.4,12,0.5",  # x1 > x2
        "vid_a,0902,0.1,0.5,0.3,0.4,12,0.5",  # y1 > y2
        "vid_a,0902,-0.3,0.2,1.7,0.4,12,0.5",  # outside [0, 1]
        "vid_a,0902,0.1,0.2,0.3,480,12,0.5",  # pixels, not normalized: scored all the same
        DETECTION_ROW,
    ]
    path = write(tmp_path, "\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="detection.ava.csv_io"):
        frame = read_ava_csv(path, kind="detections", box_check="official")
    assert frame.loc[1, ["x1", "y1", "x2", "y2"]].tolist() == [0.4, 0.2, 0.3, 0.4]
    assert frame.loc[4, "y2"] == 480.0 and len(frame) == 6
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert f"{path}: 4 rows have a box" in message
    assert "line 2: (0.4, 0.2, 0.3, 0.4); line 3: (0.1, 0.5, 0.3, 0.4); line 4:" in message
    assert "line 5" not in message  # the first three only


def test_official_box_check_still_refuses_malformed_rows(tmp_path):
    for line, message in [
        ("vid_a,0902,0.1,0.2,inf,0.4,12,0.5", "is not finite"),
        ("vid_a,0902,0.1,abc,0.3,0.4,12,0.5", "y1 'abc' is not a number"),
        ("vid_a,0902,0.1,0.2,0.3,0.4,12", "expected 8 comma-separated fields, got 7"),
    ]:
        path = write(tmp_path, f"{DETECTION_ROW}\n{line}\n")
        with pytest.raises(AvaCsvError, match=f"file.csv:2: .*{message}"):
            read_ava_csv(path, kind="detections", box_check="official")


def test_official_box_check_on_groundtruth_refuses_only_inverted_boxes(tmp_path, caplog):
    # The official evaluator stops on an inverted ground-truth box (its BoxList check) but
    # scores one outside [0, 1].
    path = write(tmp_path, "vid_a,0902,0.1,0.2,1.3,0.4,12,3\nvid_a,0902,0.1,0.2,1.3,0.4,,\n")
    frame = read_ava_csv(path, kind="groundtruth", box_check="official")
    assert frame["x2"].tolist() == [1.3, 1.3]
    assert "2 rows have a box" in caplog.text
    path = write(tmp_path, "vid_a,0902,0.1,0.2,0.3,0.4,12,3\nvid_a,0902,0.5,0.2,0.3,0.4,12,4\n")
    with pytest.raises(AvaCsvError, match="file.csv:2: x1 = 0.5 > x2 = 0.3"):
        read_ava_csv(path, kind="groundtruth", box_check="official")


def test_iter_ava_csv_official_box_check_warns_once_over_all_pieces(tmp_path, caplog):
    inverted = "vid_a,0902,0.4,0.2,0.3,0.4,12,0.5"
    rows = [DETECTION_ROW, inverted, DETECTION_ROW, DETECTION_ROW, inverted, inverted]
    path = write(tmp_path, "\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="detection.ava.csv_io"):
        pieces = list(iter_ava_csv(path, kind="detections", chunk_rows=2, box_check="official"))
    assert [len(p) for p in pieces] == [2, 2, 2]
    assert len(caplog.records) == 1
    assert "3 rows have a box" in caplog.records[0].getMessage()
    assert "line 2: " in caplog.records[0].getMessage()
    assert "line 5: " in caplog.records[0].getMessage()


# --- one dialect for every reader and writer ----------------------------------------------------

DIALECT_VARIANTS = {
    "byte-order mark": lambda fields: "\ufeff" + ",".join(fields) + "\n",
    "CRLF": lambda fields: ",".join(fields) + "\r\n",
    "CR only": lambda fields: ",".join(fields) + "\r",
    "quoted fields": lambda fields: ",".join(f'"{f}"' for f in fields) + "\n",
    "integral floats": lambda fields: (
        ",".join(f"{f}.0" if f in ("0902", "12") else f for f in fields) + "\n"
    ),
    "spaces around numbers": lambda fields: (
        ",".join([fields[0], *(f" {f} " for f in fields[1:])]) + "\n"
    ),
}
ROW = ["vid_a", "0902", "0.1", "0.2", "0.3", "0.4", "12"]


@pytest.mark.parametrize("variant", DIALECT_VARIANTS)
def test_every_reader_takes_the_same_dialect(tmp_path, variant):
    line = DIALECT_VARIANTS[variant]
    for kind, fields in [("groundtruth", ROW), ("boxes", ROW), ("detections", [*ROW, "0.5"])]:
        path = write(tmp_path, line(fields), name=f"{kind}.csv")
        frame = read_ava_csv(path, kind=kind)
        assert frame.loc[0, ["video_id", "timestamp", "action_id"]].tolist() == ["vid_a", 902, 12]
        assert frame.loc[0, ["x1", "y1", "x2", "y2"]].tolist() == [0.1, 0.2, 0.3, 0.4]
    path = write(tmp_path, line(ROW[:2]), name="excluded.csv")
    assert read_excluded_timestamps(path) == {("vid_a", 902)}


def test_quoted_commas_and_line_breaks_keep_line_numbers_exact(tmp_path):
    path = write(
        tmp_path,
        '"clip,take2",0902,0.1,0.2,0.3,0.4,12,3\n"two\nlines",0902,0.1,0.2,0.3,0.4,12\n'
        "vid_a,0902,0.1,0.2,0.3,0.4,x\n",
    )
    with pytest.raises(AvaCsvError, match=r"file.csv:4: action_id 'x' is not a number"):
        read_ava_csv(path, kind="groundtruth")


@pytest.mark.parametrize("video_id", [" vid_a", "vid_a ", "vid_a\t"])
def test_video_ids_with_surrounding_whitespace_are_refused_not_made_another_video(
    tmp_path, video_id
):
    for kind, row in [
        ("detections", f"{DETECTION_ROW}\n{video_id},0902,0.1,0.2,0.3,0.4,12,0.5\n"),
        ("groundtruth", f"vid_a,0902,0.1,0.2,0.3,0.4,12\n{video_id},0902,0.1,0.2,0.3,0.4,12\n"),
    ]:
        path = write(tmp_path, row, name=f"{kind}.csv")
        with pytest.raises(AvaCsvError, match=rf"{kind}.csv:2: video id .* leading or trailing"):
            read_ava_csv(path, kind=kind)
    path = write(tmp_path, f"vid_a,0902\n{video_id},0903\n", name="excluded.csv")
    with pytest.raises(AvaCsvError, match=r"excluded.csv:2: video id .* leading or trailing"):
        read_excluded_timestamps(path)


@pytest.mark.parametrize("kind", ["detections", "groundtruth"])
def test_hostile_bytes_give_one_short_line_naming_file_and_line(tmp_path, kind):
    good = DETECTION_ROW if kind == "detections" else "vid_a,0902,0.1,0.2,0.3,0.4,12"
    cases = {
        "not UTF-8": (b"\xff\xfe" + good.encode(), "not UTF-8"),
        "id beyond int64": (good.replace("12", "9" * 25, 1).encode(), "is larger than"),
        "10 MB line": (b"x" * 10_000_000, "comma-separated fields"),
    }
    for name, (line, message) in cases.items():
        path = tmp_path / f"{kind}.csv"
        path.write_bytes(good.encode() + b"\n" + line + b"\n")
        with pytest.raises(AvaCsvError) as error:
            read_ava_csv(path, kind=kind)
        text = str(error.value)
        assert text.startswith(f"{path}:2: ") and message in text, name
        assert "\n" not in text and len(text) <= MAX_MESSAGE_CHARS, name


def test_write_detections_quotes_what_needs_it_and_refuses_what_would_not_read_back(tmp_path):
    path = tmp_path / "detections.csv"
    boxes = np.full((2, 4), 0.5)
    write_detections(path, ["clip,take2", 'say "hi"'], [902, 5], boxes, np.ones((2, 1)), [1])
    assert read_ava_csv(path, kind="detections")["video_id"].tolist() == [
        "clip,take2",
        'say "hi"',
    ]
    with open(path, newline="") as f:  # the official evaluator's reader
        assert [(r[0], int(r[1])) for r in csv.reader(f)] == [("clip,take2", 902), ('say "hi"', 5)]
    for video_id, timestamp, message in [
        ("v", -5, "timestamp -5 is not an integer"),
        (" v", 902, "leading or trailing whitespace"),
        ("", 902, "empty video id"),
    ]:
        with pytest.raises(ValueError, match=message):
            write_detections(tmp_path / "x.csv", [video_id], [timestamp], boxes[:1], [[1.0]], [1])
    assert not (tmp_path / "x.csv").exists()


def test_write_ava_csv_round_trips_every_kind_and_optional_field(tmp_path):
    rows = {
        "groundtruth": "vid_a,0902,0.1,0.2,0.3,0.4,12,3\nvid_a,0903,0.1,0.2,0.3,0.4,\n"
        '"b,c",0905,,,,,\n',
        "boxes": "vid_a,0902,0.1,0.2,0.3,0.4,,0.9\nvid_a,0904,0.1,0.2,0.3,0.4,17\n",
        "detections": f"{DETECTION_ROW}\n",
    }
    for kind, text in rows.items():
        frame = read_ava_csv(write(tmp_path, text, name=f"{kind}.csv"), kind=kind)
        write_ava_csv(tmp_path / "again.csv", frame, kind=kind)
        pd.testing.assert_frame_equal(read_ava_csv(tmp_path / "again.csv", kind=kind), frame)
    assert (tmp_path / "again.csv").read_text() == "vid_a,0902,0.1,0.2,0.3,0.4,12,0.5\n"
