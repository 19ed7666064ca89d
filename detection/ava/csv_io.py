"""Reading and writing AVA CSV files in the official format, with strict validation.

Row layouts (no header, one row per (box, action)):

- detections:  ``video_id,timestamp,x1,y1,x2,y2,action_id,score``
- groundtruth: ``video_id,timestamp,x1,y1,x2,y2,action_id[,person_id]``; the action id may be
  empty for a box without an action, and the four box fields may all be empty for a row that
  only marks the frame as annotated;
- boxes (person-detector or ground-truth boxes used as proposals):
  ``video_id,timestamp,x1,y1,x2,y2,[action_id][,score]``; an empty action id or -1 means none.

Timestamps are whole seconds (the official files write them zero-padded, ``0902``); box
coordinates are normalized to [0, 1] with (x1, y1) the top-left corner. Coordinates may exceed
[0, 1] by at most `BOX_TOLERANCE` (float round-off in files written by other tools); they are kept
as written, because the official evaluator does not clip either. Integer fields written as
integral floats (``0902.0``, ``12.0``) are accepted, although the official reader's ``int()``
rejects them.

Box rules (`BoxCheck`). ``"strict"`` (the default) rejects a box outside [0, 1] (beyond the
tolerance) or inverted (x1 > x2 or y1 > y2). ``"official"`` accepts every row the official
ActivityNet evaluator scores: any finite coordinates, and inverted boxes in detections and boxes
files (the evaluator drops them after its per-frame cap); such rows are kept as written and
reported by one ``logging.warning`` per file with their count and first lines. An inverted
ground-truth box stays an error there too: the official evaluator stops with a ValueError on it
as soon as a detection of its class is on its frame.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from detection.errors import UserError
from detection.utils.atomic import atomic_write

Kind = Literal["groundtruth", "detections", "boxes"]
BoxCheck = Literal["strict", "official"]

logger = logging.getLogger(__name__)

BOX_TOLERANCE = 1e-3
"""How far outside [0, 1] a normalized coordinate may lie before the row is rejected."""

BOX_COLUMNS = ["x1", "y1", "x2", "y2"]

_COLUMN_COUNTS: dict[str, tuple[int, ...]] = {
    "detections": (8,),
    "groundtruth": (7, 8),
    "boxes": (7, 8),
}
_LAST_COLUMN = {"detections": "score", "groundtruth": "person_id", "boxes": "score"}
_NUMERIC_COLUMNS = ["timestamp", *BOX_COLUMNS, "action_id"]
_EXTRA = "_extra"
_BOX_CHECKS = ("strict", "official")
_LINES_IN_WARNING = 3


class AvaCsvError(UserError, ValueError):
    """A malformed AVA CSV file; the message names the file, the 1-based line and what was
    expected."""


def read_ava_csv(path: str | Path, *, kind: Kind, box_check: BoxCheck = "strict") -> pd.DataFrame:
    """Read an AVA CSV file and validate every row.

    Returns a DataFrame with one row per file row, in file order: ``video_id`` (str),
    ``timestamp`` (int64), ``x1, y1, x2, y2`` (float64, normalized; NaN only for box-less
    ground-truth rows), ``action_id`` (int64, -1 where the file has none), then ``score``
    (float64; NaN where a boxes file has no score) for detections and boxes, or ``person_id``
    (int64, -1 where absent) for ground truth.

    Raises `AvaCsvError` at the first malformed row: wrong column count, empty line, a
    timestamp, action id or person id that is not a non-negative integer, a missing value, a
    non-finite coordinate or score, and under ``box_check="strict"`` a coordinate outside
    [0, 1] (beyond `BOX_TOLERANCE`), x1 > x2 or y1 > y2 (see the module's "Box rules" for
    ``"official"``, which keeps those rows and warns once).
    """
    frame = _read_checked(path, kind, box_check)
    if box_check == "official":
        warnings = _BoxWarnings()
        warnings.add(frame, kind)
        warnings.emit(Path(path))
    return frame


def _read_checked(path: str | Path, kind: Kind, box_check: BoxCheck) -> pd.DataFrame:
    """`read_ava_csv` without its warning."""
    if kind not in _COLUMN_COUNTS:
        raise ValueError(f"kind must be one of {sorted(_COLUMN_COUNTS)}, got {kind!r}")
    if box_check not in _BOX_CHECKS:
        raise ValueError(f"box_check must be one of {list(_BOX_CHECKS)}, got {box_check!r}")
    path = Path(path)
    last = _LAST_COLUMN[kind]
    names = ["video_id", *_NUMERIC_COLUMNS, last]
    allowed = _COLUMN_COUNTS[kind]
    # A short row reads like one with empty trailing fields, which files with optional columns
    # cannot tell apart, so their field counts are checked up front. In detections every field
    # is required, so a short or long row always shows up below; their counts (a pass over
    # every byte) are only checked then, to find the line and say what it holds.
    data = None
    if len(allowed) > 1:
        data = _read_bytes(path)
        if not data:
            return _empty_frame(names)
        _check_column_counts(data, path, allowed)

    source = io.BytesIO(data) if data is not None else path
    # Integer columns are first read as integers, which is faster and is what well-formed
    # files hold; if that fails (an empty or non-integer field), everything numeric is read as
    # float64 instead, so that empty fields become NaN and the checks below can say which row
    # is wrong and why.
    try:
        frame = _parse(source, names, integers=True)
    except pd.errors.EmptyDataError:
        return _empty_frame(names)
    except OSError as e:
        raise AvaCsvError(f"cannot read {path}: {e.strerror}") from e
    except ValueError:
        if isinstance(source, io.BytesIO):
            source.seek(0)
        try:
            frame = _parse(source, names, integers=False)
        except ValueError:
            data = _read_bytes(path) if data is None else data
            _check_column_counts(data, path, allowed)
            raise _first_non_numeric(data, path, names) from None
    problem = _first_problem(frame, kind, box_check)
    if problem is not None:
        _check_column_counts(_read_bytes(path) if data is None else data, path, allowed)
        row, message = problem
        raise AvaCsvError(f"{path}:{row + 1}: {message}")

    frame = frame.drop(columns=_EXTRA)
    for name in ("timestamp", "action_id", "person_id"):
        if name in frame and frame[name].dtype != np.int64:
            frame[name] = frame[name].fillna(-1).astype(np.int64)
    return frame


def _parse(source: io.BytesIO | Path, names: list[str], *, integers: bool) -> pd.DataFrame:
    """pandas' C parser with our column names plus `_EXTRA`, which catches rows with one field
    too many (more make pandas raise). Only "" counts as missing, so a video id such as "NA"
    stays a string."""
    return pd.read_csv(source, **_parser_options(names, integers))


def _parse_pieces(path: Path, names: list[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    """`_parse` (integer columns as integers) in pieces of `chunk_rows` rows."""
    with pd.read_csv(path, chunksize=chunk_rows, **_parser_options(names, True)) as reader:
        yield from reader


def _parser_options(names: list[str], integers: bool) -> dict[str, Any]:
    dtypes: dict[str, Any] = {name: np.float64 for name in [*names[1:], _EXTRA]}
    dtypes["video_id"] = str
    if integers:
        dtypes.update(
            {name: np.int64 for name in ("timestamp", "action_id", "person_id") if name in names}
        )
    return {
        "header": None,
        "names": [*names, _EXTRA],
        "dtype": dtypes,
        "keep_default_na": False,
        "na_values": [""],
        "skip_blank_lines": False,
        "engine": "c",
    }


def iter_ava_csv(
    path: str | Path, *, kind: Kind, chunk_rows: int = 1_000_000, box_check: BoxCheck = "strict"
) -> Iterator[pd.DataFrame]:
    """`read_ava_csv` in pieces of at most `chunk_rows` rows (index = 0-based file row), for
    files too large to hold as one frame with a Python string per video id.

    Every piece is checked as `read_ava_csv` checks a whole file. A malformed row raises the
    same `AvaCsvError` (found by reading the file whole, so the message is exact), possibly
    after earlier pieces were handed out. Files with optional columns (ground truth, boxes)
    come whole, as one piece. With ``box_check="official"`` the warning comes once, after the
    last piece.
    """
    path = Path(path)
    if len(_COLUMN_COUNTS.get(kind, ())) != 1:
        yield read_ava_csv(path, kind=kind, box_check=box_check)
        return
    names = ["video_id", *_NUMERIC_COLUMNS, _LAST_COLUMN[kind]]
    if box_check not in _BOX_CHECKS:
        raise ValueError(f"box_check must be one of {list(_BOX_CHECKS)}, got {box_check!r}")
    warnings = _BoxWarnings()
    rows_done = 0
    finished = False
    try:
        for piece in _parse_pieces(path, names, chunk_rows):
            if _first_problem(piece, kind, box_check) is not None:
                break
            piece = piece.drop(columns=_EXTRA)
            if box_check == "official":
                warnings.add(piece, kind)
            yield piece
            rows_done += len(piece)
        else:
            finished = True
    except pd.errors.EmptyDataError:
        finished = True
    except ValueError:
        pass
    if not finished:
        # The fast piecewise parse failed: the whole-file reader raises the exact error, or,
        # for integral floats such as "0902.0" that only it accepts, reads the rest.
        rest = _read_checked(path, kind, box_check).iloc[rows_done:]
        if box_check == "official":
            warnings.add(rest, kind)
        yield rest
    warnings.emit(path)


class _BoxWarnings:
    """Counts the rows that only ``box_check="official"`` accepts and keeps the first few, to
    report them in one warning per file."""

    def __init__(self) -> None:
        self.count = 0
        self.lines: list[str] = []

    def add(self, frame: pd.DataFrame, kind: Kind) -> None:
        """`frame`: rows as read (index = 0-based file row)."""
        rows = np.flatnonzero(_unnormalized_rows(frame, kind))
        self.count += len(rows)
        for row in rows[: _LINES_IN_WARNING - len(self.lines)].tolist():
            x1, y1, x2, y2 = frame[BOX_COLUMNS].iloc[row].tolist()
            self.lines.append(f"line {int(frame.index[row]) + 1}: ({x1}, {y1}, {x2}, {y2})")

    def emit(self, path: Path) -> None:
        if self.count:
            logger.warning(
                "%s: %d rows have a box that is inverted (x1 > x2 or y1 > y2) or outside "
                "[0, 1]; they are scored as the official evaluator scores them (inverted "
                "detection boxes dropped after the per-frame cap, coordinates as written); "
                "first: %s",
                path,
                self.count,
                "; ".join(self.lines),
            )


def _unnormalized_rows(frame: pd.DataFrame, kind: Kind) -> np.ndarray:
    """[N] bool: rows whose box breaks a rule that only ``box_check="strict"`` enforces."""
    x1, y1, x2, y2 = (frame[c].to_numpy() for c in BOX_COLUMNS)
    with np.errstate(invalid="ignore"):
        low = np.minimum(np.minimum(x1, y1), np.minimum(x2, y2))
        high = np.maximum(np.maximum(x1, y1), np.maximum(x2, y2))
        unusual = (low < -BOX_TOLERANCE) | (high > 1 + BOX_TOLERANCE)
        if kind != "groundtruth":
            unusual |= (x1 > x2) | (y1 > y2)
    return unusual


def read_excluded_timestamps(path: str | Path) -> set[tuple[str, int]]:
    """Read an excluded-timestamps CSV (``video_id,timestamp`` per line, e.g. ``5BDj0ow5hnA,1038``)
    into a set of (video_id, timestamp) pairs."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise AvaCsvError(f"cannot read {path}: {e.strerror}") from e
    excluded: set[tuple[str, int]] = set()
    for line_no, line in enumerate(lines, start=1):
        fields = line.strip().split(",")
        if len(fields) != 2 or not fields[0]:
            raise AvaCsvError(f"{path}:{line_no}: expected 'video_id,timestamp', got {line!r}")
        if not fields[1].isdigit():
            raise AvaCsvError(
                f"{path}:{line_no}: timestamp {fields[1]!r} is not a non-negative integer"
            )
        excluded.add((fields[0], int(fields[1])))
    return excluded


def write_detections(
    path: str | Path,
    video_ids: Sequence[str],
    timestamps: Sequence[int],
    boxes: np.ndarray,
    scores: np.ndarray,
    action_ids: Sequence[int],
) -> None:
    """Write detections in the official format, one row per (box, class), atomically.

    Args:
        path: the CSV file to write (replaced in one step: a temporary file beside it is
            renamed over it, so readers never see a half-written file).
        video_ids, timestamps: [K] the frame of each box.
        boxes: [K, 4] (x1, y1, x2, y2) normalized to [0, 1].
        scores: [K, C] the score of each box for each class.
        action_ids: [C] the AVA action id of each score column.

    Rows go box by box, and for each box class by class, like PySlowFast's writer. Timestamps are
    zero-padded to 4 digits and boxes written with 3 decimals, as in the AVA files; scores get 6
    decimals rather than PySlowFast's 4 so that fewer scores tie (ties make AP depend on an
    arbitrary order, see `frame_map`).
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    action_array = np.asarray(action_ids, dtype=np.int64)
    num_boxes = len(video_ids)
    if boxes.shape != (num_boxes, 4):
        raise ValueError(f"boxes must have shape [{num_boxes}, 4], got {list(boxes.shape)}")
    if len(timestamps) != num_boxes:
        raise ValueError(f"got {num_boxes} video ids but {len(timestamps)} timestamps")
    if scores.shape != (num_boxes, len(action_array)):
        raise ValueError(
            f"scores must have shape [{num_boxes}, {len(action_array)}], got {list(scores.shape)}"
        )
    outside = (boxes < -BOX_TOLERANCE) | (boxes > 1 + BOX_TOLERANCE)
    if outside.any():
        row = int(np.flatnonzero(outside.any(axis=1))[0])
        raise ValueError(f"box {row} = {boxes[row].tolist()} is not normalized to [0, 1]")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")

    with atomic_write(path, newline="") as f:
        # A block of boxes at a time: the text of a whole test split (tens of millions of
        # rows) would not fit in memory.
        for start in range(0, num_boxes, _BOXES_PER_WRITE):
            block = slice(start, start + _BOXES_PER_WRITE)
            f.write(
                _detection_rows(
                    video_ids[block], timestamps[block], boxes[block], scores[block], action_array
                )
            )


_BOXES_PER_WRITE = 10_000


def _detection_rows(
    video_ids: Sequence[str],
    timestamps: Sequence[int],
    boxes: np.ndarray,
    scores: np.ndarray,
    action_ids: np.ndarray,
) -> str:
    """CSV text for [K] boxes x [C] classes, box by box."""
    actions = [f",{a}," for a in action_ids.tolist()]
    lines: list[str] = []
    for video, timestamp, (x1, y1, x2, y2), box_scores in zip(
        video_ids, timestamps, boxes.tolist(), scores.tolist(), strict=True
    ):
        prefix = f"{video},{int(timestamp):04d},{x1:.3f},{y1:.3f},{x2:.3f},{y2:.3f}"
        lines.extend(f"{prefix}{a}{s:.6f}\n" for a, s in zip(actions, box_scores, strict=True))
    return "".join(lines)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise AvaCsvError(f"cannot read {path}: {e.strerror}") from e


def _empty_frame(names: list[str]) -> pd.DataFrame:
    dtypes = {
        "video_id": str,
        "timestamp": np.int64,
        "action_id": np.int64,
        "person_id": np.int64,
        "score": np.float64,
    }
    return pd.DataFrame({n: pd.Series(dtype=dtypes.get(n, np.float64)) for n in names})


def _check_column_counts(data: bytes, path: Path, allowed: tuple[int, ...]) -> None:
    """Count the fields of every line from the raw bytes (commas per line), so that a short
    line is told apart from a line with empty fields, and blank lines are caught."""
    buf = np.frombuffer(data, dtype=np.uint8)
    line_ends = np.flatnonzero(buf == ord("\n"))
    if not data.endswith(b"\n"):
        line_ends = np.append(line_ends, len(buf))
    commas = np.flatnonzero(buf == ord(","))
    fields = np.diff(np.searchsorted(commas, line_ends), prepend=0) + 1
    bad = np.flatnonzero(~np.isin(fields, allowed))
    if bad.size:
        line = int(bad[0])
        start = int(line_ends[line - 1]) + 1 if line else 0
        text = data[start : int(line_ends[line])].decode("utf-8", "replace").rstrip("\r")
        expected = " or ".join(str(n) for n in allowed)
        got = "an empty line" if not text.strip() else f"{fields[line]} in {text!r}"
        raise AvaCsvError(
            f"{path}:{line + 1}: expected {expected} comma-separated fields, got {got}"
        )


def _first_non_numeric(data: bytes, path: Path, names: list[str]) -> AvaCsvError:
    """The error for the first field that is not a number (looked for once the fast parse
    failed, which does not say where)."""
    text = pd.read_csv(
        io.BytesIO(data),
        header=None,
        names=names,
        dtype=str,
        keep_default_na=False,
        skip_blank_lines=False,
    )
    first: tuple[int, str, str] | None = None
    for name in names[1:]:
        values = text[name]
        bad = np.flatnonzero(pd.to_numeric(values, errors="coerce").isna() & (values != ""))
        if bad.size and (first is None or bad[0] < first[0]):
            first = (int(bad[0]), name, values.iloc[bad[0]])
    if first is None:
        return AvaCsvError(f"{path}: could not be parsed as an AVA CSV file")
    row, name, value = first
    return AvaCsvError(f"{path}:{row + 1}: {name} {value!r} is not a number")


def _first_problem(
    frame: pd.DataFrame, kind: Kind, box_check: BoxCheck = "strict"
) -> tuple[int, str] | None:
    """The first (lowest) row that breaks a rule, with what is wrong, or None."""
    problems: list[tuple[int, str]] = []

    def check(bad: np.ndarray, message: str) -> None:
        rows = np.flatnonzero(bad)
        if rows.size:
            row = int(rows[0])
            problems.append((row, message.format(**{str(k): frame[k].iloc[row] for k in frame})))

    check(frame[_EXTRA].notna().to_numpy(), "too many fields")
    check(frame["video_id"].isna().to_numpy(), "empty video id")
    ts = frame["timestamp"].to_numpy()
    check(np.isnan(ts), "missing timestamp")
    check(
        ~np.isnan(ts) & ((ts < 0) | (ts != np.floor(ts))),
        "timestamp {timestamp} is not a non-negative integer",
    )

    x1, y1, x2, y2 = (frame[c].to_numpy() for c in BOX_COLUMNS)
    missing = [np.isnan(c) for c in (x1, y1, x2, y2)]
    any_missing = missing[0] | missing[1] | missing[2] | missing[3]
    if kind == "groundtruth":
        box_less = missing[0] & missing[1] & missing[2] & missing[3]
        check(any_missing & ~box_less, "box has some coordinates missing (give all or none)")
    else:
        check(any_missing, "missing box coordinate")
    with np.errstate(invalid="ignore"):
        # min/max over the box first: two comparisons per row instead of eight.
        low = np.minimum(np.minimum(x1, y1), np.minimum(x2, y2))
        high = np.maximum(np.maximum(x1, y1), np.maximum(x2, y2))
        if box_check == "strict":
            check(
                (low < -BOX_TOLERANCE) | (high > 1 + BOX_TOLERANCE),
                "box ({x1}, {y1}, {x2}, {y2}) is outside [0, 1]: coordinates must be normalized",
            )
        else:
            check(np.isinf(low) | np.isinf(high), "box ({x1}, {y1}, {x2}, {y2}) is not finite")
        if box_check == "strict" or kind == "groundtruth":
            # The official evaluator scores inverted detection boxes (it drops them) but
            # stops on an inverted ground-truth box.
            check(x1 > x2, "x1 = {x1} > x2 = {x2}")
            check(y1 > y2, "y1 = {y1} > y2 = {y2}")

    action = frame["action_id"].to_numpy()
    if kind == "detections":
        check(np.isnan(action), "missing action id")
    with np.errstate(invalid="ignore"):
        allowed_minimum = -1 if kind == "boxes" else 1
        check(
            ~np.isnan(action) & ((action != np.floor(action)) | (action < allowed_minimum)),
            f"action id {{action_id}} is not an integer >= {allowed_minimum}",
        )

    if "score" in frame:
        score = frame["score"].to_numpy()
        if kind == "detections":
            check(np.isnan(score), "missing score")
        check(np.isinf(score), "score {score} is not finite")
    else:
        person = frame["person_id"].to_numpy()
        with np.errstate(invalid="ignore"):
            check(
                ~np.isnan(person) & ((person != np.floor(person)) | (person < 0)),
                "person id {person_id} is not a non-negative integer",
            )

    return min(problems, key=lambda p: p[0]) if problems else None
