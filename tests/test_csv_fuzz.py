"""Property tests of the one AVA CSV dialect (`detection.ava.csv_io`): what the writers write,
the reader and the official evaluator's reader (``csv.reader`` + ``int()``/``float()``) read back
exactly; whatever bytes a file holds, the reader returns a frame or raises a one-line
`AvaCsvError` naming the file, and never anything else."""

from __future__ import annotations

import csv
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detection.ava import csv_io
from detection.ava.csv_io import (
    MAX_INTEGER,
    AvaCsvError,
    read_ava_csv,
    read_excluded_timestamps,
    write_ava_csv,
    write_excluded_timestamps,
)
from detection.errors import MAX_MESSAGE_CHARS, UserError

FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
KINDS = ("detections", "groundtruth", "boxes")

# Video ids: any text without surrounding whitespace, including commas, quotes and line breaks.
video_ids = st.text(
    alphabet=st.one_of(st.sampled_from(',"\r\n \t\ufeffé_-'), st.characters(codec="utf-8")),
    min_size=1,
    max_size=10,
).filter(lambda v: v == v.strip())
timestamps = st.integers(0, MAX_INTEGER)
unit = st.floats(0.0, 1.0, allow_subnormal=True)
scores = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def boxes(draw: st.DrawFn) -> tuple[float, float, float, float]:
    x1, x2 = sorted((draw(unit), draw(unit)))
    y1, y2 = sorted((draw(unit), draw(unit)))
    return x1, y1, x2, y2


@st.composite
def rows(draw: st.DrawFn, kind: str) -> dict[str, object]:
    row: dict[str, object] = {"video_id": draw(video_ids), "timestamp": draw(timestamps)}
    box = draw(boxes())
    if kind == "groundtruth" and draw(st.booleans()) and draw(st.booleans()):
        box = (np.nan,) * 4  # a row that only marks its frame as annotated
    row.update(zip(("x1", "y1", "x2", "y2"), box, strict=True))
    lowest = {"detections": 1, "groundtruth": -1, "boxes": -1}[kind]
    action = draw(st.integers(lowest, MAX_INTEGER))
    row["action_id"] = -1 if kind == "groundtruth" and action == 0 else action
    if kind == "groundtruth":
        row["person_id"] = draw(st.one_of(st.just(-1), st.integers(0, MAX_INTEGER)))
    elif kind == "boxes":
        row["score"] = draw(st.one_of(st.just(np.nan), scores))
    else:
        row["score"] = draw(scores)
    return row


def as_frame(kind: str, table: list[dict[str, object]]) -> pd.DataFrame:
    """The frame `read_ava_csv` returns for these rows (its column order and dtypes)."""
    last = {"detections": "score", "groundtruth": "person_id", "boxes": "score"}[kind]
    columns = ["video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id", last]
    frame = pd.DataFrame(table, columns=columns)
    for name in ("timestamp", "action_id", "person_id"):
        if name in frame:
            frame[name] = frame[name].astype(np.int64)
    for name in ("x1", "y1", "x2", "y2", "score"):
        if name in frame:
            frame[name] = frame[name].astype(np.float64)
    frame["video_id"] = frame["video_id"].astype(object)
    return frame


def read_as_object(path: Path, kind: str) -> pd.DataFrame:
    """`read_ava_csv` with video ids as Python strings (pandas' string dtype aside)."""
    frame = read_ava_csv(path, kind=kind)
    frame["video_id"] = frame["video_id"].astype(object)
    return frame


@pytest.mark.parametrize("kind", KINDS)
def test_written_rows_read_back_exactly(kind):
    @FUZZ
    @given(st.lists(rows(kind), min_size=1, max_size=8))
    def check(table):
        expected = as_frame(kind, table)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{kind}.csv"
            write_ava_csv(path, expected, kind=kind)
            pd.testing.assert_frame_equal(read_as_object(path, kind), expected)
            if kind == "detections":
                # The official evaluator's reader gets the same values.
                with open(path, newline="", encoding="utf-8") as f:
                    official = [
                        (r[0], int(r[1]), *map(float, r[2:6]), int(r[6]), float(r[7]))
                        for r in csv.reader(f)
                    ]
                assert official == list(expected.itertuples(index=False, name=None))

    check()


@FUZZ
@given(st.sets(st.tuples(video_ids, timestamps), max_size=8))
def test_written_exclusions_read_back_exactly(excluded):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "excluded.csv"
        write_excluded_timestamps(path, excluded)
        assert read_excluded_timestamps(path) == excluded


# Bytes that break files in the ways the issue found: separators, quotes, line ends, a BOM,
# whitespace, signs, exponents, integral floats, bytes that are not UTF-8, huge numbers.
HOSTILE = [
    b",",
    b'"',
    b"\r",
    b"\n",
    b"\r\n",
    b"\xef\xbb\xbf",
    b" ",
    b"\t",
    b"-",
    b"e",
    b".0",
    b"0902.0",
    b"\xff",
    b"\xc3",
    b"99999999999999999999999",
    b"nan",
    b"inf",
    b"",
]


@st.composite
def mutated_files(draw: st.DrawFn, kind: str) -> bytes:
    """A valid file with a few random edits: hostile bytes inserted, spans deleted."""
    table = draw(st.lists(rows(kind), min_size=1, max_size=4))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "seed.csv"
        write_ava_csv(path, as_frame(kind, table), kind=kind)
        data = path.read_bytes()
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        if draw(st.booleans()):
            data = data[:at] + draw(st.sampled_from(HOSTILE)) + data[at:]
        else:
            data = data[:at] + data[at + draw(st.integers(1, 6)) :]
    return data


@pytest.mark.parametrize("kind", KINDS)
def test_any_bytes_give_a_frame_or_one_line_naming_the_file(kind):
    @FUZZ
    @given(mutated_files(kind))
    def check(data):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "hostile.csv"
            path.write_bytes(data)
            try:
                frame = read_ava_csv(path, kind=kind)
            except AvaCsvError as error:
                assert isinstance(error, UserError)
                message = str(error)
                assert "\n" not in message and len(message) <= MAX_MESSAGE_CHARS
                assert re.match(rf"{re.escape(str(path))}(:\d+)?: ", message), message
                return
            # Whatever is read can be written, and reads back the same.
            again = Path(folder) / "again.csv"
            write_ava_csv(again, frame, kind=kind)
            pd.testing.assert_frame_equal(read_ava_csv(again, kind=kind), frame)

    check()


@FUZZ
@given(
    st.lists(st.tuples(video_ids, timestamps), min_size=1, max_size=4),
    st.lists(st.tuples(st.integers(0, 40), st.sampled_from(HOSTILE)), max_size=4),
)
def test_any_exclusions_file_gives_pairs_or_one_line_naming_the_file(pairs, edits):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "excluded.csv"
        write_excluded_timestamps(path, pairs)
        data = path.read_bytes()
        for at, piece in edits:
            data = data[:at] + piece + data[at:]
        path.write_bytes(data)
        try:
            excluded = read_excluded_timestamps(path)
        except AvaCsvError as error:
            message = str(error)
            assert "\n" not in message and len(message) <= MAX_MESSAGE_CHARS
            assert re.match(rf"{re.escape(str(path))}:\d+: ", message), message
            return
        assert all(v == v.strip() and 0 <= t <= MAX_INTEGER for v, t in excluded)


# Whole fields the two parsers may read differently: signs, spaces, hexadecimal, exponents,
# integral floats, the words pandas and pyarrow know, empty and huge values.
FIELDS = [
    "+5",
    "-0",
    " 7",
    "7 ",
    "\t7",
    "7\x0b",
    "0x10",
    "1e2",
    "5.0",
    "05",
    ".5",
    "5.",
    "+.5",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1_0",
    "1d5",
    "",
    " ",
    "0.5",
    "1",
    "902",
    "1.7976931348623159e308",
    "4.9e-325",
    "99999999999999999999",
    "2147483648",
    "v",
]
plain_ids = st.text(alphabet="abcXYZ019_-.", min_size=1, max_size=6)


@st.composite
def edited_fields(draw: st.DrawFn, kind: str) -> bytes:
    """A valid file without quotes (what the fast reader parses), with a few of its fields
    replaced by `FIELDS`, lines possibly ending with \\r\\n or a BOM in front."""
    table = draw(st.lists(rows(kind), min_size=1, max_size=5))
    for row in table:
        row["video_id"] = draw(plain_ids)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "seed.csv"
        write_ava_csv(path, as_frame(kind, table), kind=kind)
        lines = [line.split(",") for line in path.read_text().splitlines()]
    for _ in range(draw(st.integers(0, 3))):
        line = draw(st.sampled_from(lines))
        line[draw(st.integers(0, len(line) - 1))] = draw(st.sampled_from(FIELDS))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    text = "".join(",".join(line) + end for line in lines)
    return (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + text.encode()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("box_check", ["strict", "official"])
def test_fast_reader_takes_only_what_the_reference_reader_takes_with_its_values(kind, box_check):
    """pyarrow's parse (`_read_fast`) never accepts a file that the pandas reader, the
    dialect's reference, refuses, and reads the same values where it accepts one."""

    @FUZZ
    @given(st.one_of(edited_fields(kind), mutated_files(kind)))
    def check(data):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "file.csv"
            path.write_bytes(data)
            fast = csv_io._read_fast(path, kind, box_check)
            try:
                frame = csv_io._read_checked(path, kind, box_check)
            except AvaCsvError:
                assert fast is None
                return
            if fast is None:
                return
            reference = csv_io.AvaColumns.from_frame(frame)
            assert fast.videos == reference.videos
            np.testing.assert_array_equal(fast.video, reference.video)
            assert list(fast.columns) == list(reference.columns)
            for name, values in reference.columns.items():
                assert fast.columns[name].dtype == values.dtype, name
                np.testing.assert_array_equal(fast.columns[name], values)

    check()


def test_fast_reader_parses_well_formed_files(tmp_path):
    """The fast path is taken for plain files of every kind (not silently left to pandas)."""
    for kind, text in [
        ("detections", "v1,0902,0.1,0.2,0.3,0.4,12,0.75\r\nv2,0903,0,0,1,1,3,1e-3\r\n"),
        ("groundtruth", "v1,0902,0.1,0.2,0.3,0.4,12,0\nv1,0902,0.1,0.2,0.3,0.4,,1\n"),
        ("groundtruth", "v1,0902,0.1,0.2,0.3,0.4,12\nv1,0902,,,,,\n"),
        ("boxes", "\ufeffv1,0902,0.1,0.2,0.3,0.4,-1,0.9\n"),
    ]:
        path = tmp_path / f"{kind}.csv"
        path.write_text(text, encoding="utf-8", newline="")
        fast = csv_io._read_fast(path, kind, "strict")
        assert fast is not None, text
        expected = csv_io.AvaColumns.from_frame(csv_io._read_checked(path, kind, "strict"))
        for name, values in expected.columns.items():
            np.testing.assert_array_equal(fast.columns[name], values)
