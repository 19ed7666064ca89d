"""Reading and writing AVA CSV files in the official format, with strict validation.

Row layouts (no header, one row per (box, action)):

- detections:  ``video_id,timestamp,x1,y1,x2,y2,action_id,score``
- groundtruth: ``video_id,timestamp,x1,y1,x2,y2,action_id[,person_id]``; the action id may be
  empty for a box without an action, and the four box fields may all be empty for a row that
  only marks the frame as annotated;
- boxes (person-detector or ground-truth boxes used as proposals):
  ``video_id,timestamp,x1,y1,x2,y2,[action_id][,score]``; an empty action id or -1 means none;
- excluded timestamps: ``video_id,timestamp``.

Timestamps are whole seconds (the official files write them zero-padded, ``0902``); box
coordinates are normalized to [0, 1] with (x1, y1) the top-left corner. Coordinates may exceed
[0, 1] by at most `BOX_TOLERANCE` (float round-off in files written by other tools); they are kept
as written, because the official evaluator does not clip either.

The dialect, the same for every kind (one reader, `read_ava_csv` / `read_ava_columns` /
`read_excluded_timestamps`, and one writer, `write_ava_csv` / `write_detections` /
`write_excluded_timestamps`):

- text is UTF-8; a byte-order mark at the start is skipped; other bytes are an error naming the
  file and line;
- lines end with ``\\n``, ``\\r\\n`` or ``\\r``; a blank line is an error, not a skipped row;
- fields may be quoted as in RFC 4180 (``"clip,take2"``, ``""`` for a quote inside), and a quoted
  field may hold line breaks; line numbers in errors count physical lines, the line a row
  starts on;
- an empty field is a missing value (allowed only where the layouts above say so);
- whitespace: numeric fields may have spaces around them (the official reader's ``int()`` and
  ``float()`` accept them), a field of only spaces is not a number; the video id is kept
  exactly as written, and one with leading or trailing whitespace is an error, because the
  official reader would silently take ``" v"`` for a video other than ``"v"``;
- integer fields (timestamp, action id, person id) accept integral floats (``0902.0``, ``12.0``),
  although the official reader's ``int()`` rejects them, and must be at most `MAX_INTEGER`.

The writers quote what needs quoting (a video id with a comma, a quote or a line break), refuse
what the reader would refuse (an empty video id, one with surrounding whitespace, a negative
timestamp), and write numbers that Python's ``int()`` / ``float()`` read, so that everything
written reads back here and in the official evaluator (Python's ``csv.reader``).

Two parsers read it. pandas' C parser is the reference: it reads every file the dialect allows
and words every error. pyarrow's multi-threaded CSV parser reads plain files (no quotes, no lone
``\\r``) several times faster and without importing pandas, and hands a file to the reference
whenever it does not take it or a row breaks a rule; it never accepts a file the reference
refuses, and reads the same values (tests/test_csv_fuzz.py checks both on hostile files).

Box rules (`BoxCheck`). ``"strict"`` (the default) rejects a box outside [0, 1] (beyond the
tolerance) or inverted (x1 > x2 or y1 > y2). ``"official"`` accepts every row the official
ActivityNet evaluator scores: any finite coordinates, and inverted boxes in detections and boxes
files (the evaluator drops them after its per-frame cap); such rows are kept as written and
reported by one ``logging.warning`` per file with their count and first lines. An inverted
ground-truth box stays an error there too: the official evaluator stops with a ValueError on it
as soon as a detection of its class is on its frame.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import mmap
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from detection.errors import UserError, shorten
from detection.utils.atomic import atomic_write

if TYPE_CHECKING:
    import pandas as pd

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

MAX_INTEGER = 2**31 - 1
"""Largest timestamp, action id or person id accepted (a 32-bit int: no real file comes near,
and a larger id would make per-class lookups by id huge)."""


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

    Raises `AvaCsvError` at the first malformed row: bytes that are not UTF-8, wrong column
    count, empty line, a video id that is empty or has surrounding whitespace, a timestamp,
    action id or person id that is not a non-negative integer up to `MAX_INTEGER`, a missing
    value, a non-finite coordinate or score, and under ``box_check="strict"`` a coordinate outside
    [0, 1] (beyond `BOX_TOLERANCE`), x1 > x2 or y1 > y2 (see the module's "Box rules" for
    ``"official"``, which keeps those rows and warns once).
    """
    return read_ava_columns(path, kind=kind, box_check=box_check).to_frame()


@dataclass
class AvaColumns:
    """An AVA CSV file as arrays, rows in file order, without a Python string per row.

    videos: the distinct video ids, in order of first appearance; video: [N] int64, each row's
    index into `videos`; columns: ``timestamp`` [N] int64, ``x1, y1, x2, y2`` [N] float64
    (normalized, NaN only for box-less ground-truth rows), ``action_id`` [N] int64 (-1 where
    none), then ``score`` [N] float64 (detections, boxes; NaN where a boxes file has none) or
    ``person_id`` [N] int64 (ground truth; -1 where absent): the columns of `read_ava_csv`.
    """

    videos: list[str]
    video: np.ndarray
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.video)

    def to_frame(self) -> pd.DataFrame:
        """The DataFrame `read_ava_csv` returns."""
        import pandas as pd

        video_id = pd.Series(np.array(self.videos, dtype=object)[self.video], dtype=str)
        return pd.DataFrame({"video_id": video_id, **self.columns})

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> AvaColumns:
        """From a frame in `read_ava_csv`'s layout (as read, or built by the caller)."""
        import pandas as pd

        codes, videos = pd.factorize(frame["video_id"].to_numpy(object))
        return cls([str(v) for v in videos], codes.astype(np.int64), _numeric_columns(frame))


def read_ava_columns(path: str | Path, *, kind: Kind, box_check: BoxCheck = "strict") -> AvaColumns:
    """`read_ava_csv` as arrays (`AvaColumns`): the same rules, errors and warning, without
    pandas on well-formed files.

    Files without quotes or lone \\r line ends are parsed by pyarrow's multi-threaded CSV
    reader and checked with array operations; anything it does not take, and every file with a
    problem, goes through the pandas reader, which is the dialect's reference and words the
    error (the fast path only ever accepts files that reader accepts, with the same values).
    """
    _check_arguments(kind, box_check)
    path = Path(path)
    table = _read_fast(path, kind, box_check)
    if table is None:
        table = AvaColumns.from_frame(_read_checked(path, kind, box_check))
    if box_check == "official":
        warnings = _BoxWarnings()
        warnings.add(table.columns, kind)
        warnings.emit(path)
    return table


def _check_arguments(kind: str, box_check: str) -> None:
    if kind not in _COLUMN_COUNTS:
        raise ValueError(f"kind must be one of {sorted(_COLUMN_COUNTS)}, got {kind!r}")
    if box_check not in _BOX_CHECKS:
        raise ValueError(f"box_check must be one of {list(_BOX_CHECKS)}, got {box_check!r}")


_BOM = b"\xef\xbb\xbf"


def _read_fast(path: Path, kind: Kind, box_check: BoxCheck) -> AvaColumns | None:
    """The file by pyarrow, or None when the pandas reader must decide (a problem to report,
    quotes, lone \\r, NUL bytes, mixed field counts, or anything pyarrow refuses).

    Numeric fields, integers included, are parsed as float64: pyarrow's integer parser takes
    hexadecimal ("0x10"), which pandas does not, while its float parser takes a subset of what
    pandas' does, ``nan`` aside, which is sent to pandas. Integral floats then pass as integers
    exactly as in the pandas reader's float pass.
    """
    try:
        with path.open("rb") as f:
            # Mapped, not read: the checks below and pyarrow's parse read the page cache. The
            # map is closed when the last reference goes (pyarrow may hold one until then).
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # unreadable (the pandas reader words it) or empty
        return None
    return _parse_fast(data, kind, box_check)


def _parse_fast(data: mmap.mmap, kind: Kind, box_check: BoxCheck) -> AvaColumns | None:
    """`_read_fast` of the file's bytes."""
    start = len(_BOM) if data[: len(_BOM)] == _BOM else 0
    if start == len(data) or data.find(b'"') >= 0 or data.find(b"\0") >= 0:
        return None
    if data.find(b"\r") >= 0:
        whole = data[:]
        if whole.count(b"\r") != whole.count(b"\r\n"):
            return None
    end = data.find(b"\n")
    num_fields = data[start : len(data) if end < 0 else end].count(b",") + 1
    if num_fields not in _COLUMN_COUNTS[kind]:
        return None
    names = ["video_id", *_NUMERIC_COLUMNS, _LAST_COLUMN[kind]][:num_fields]

    import pyarrow as pa
    import pyarrow.csv as pa_csv

    types = {name: pa.float64() for name in names[1:]}
    types["video_id"] = pa.dictionary(pa.int32(), pa.string())
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(pa.py_buffer(data).slice(start)),
            read_options=pa_csv.ReadOptions(column_names=names, block_size=_BLOCK_BYTES),
            parse_options=pa_csv.ParseOptions(
                quote_char=False, escape_char=False, ignore_empty_lines=False
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=types, null_values=[""], strings_can_be_null=False
            ),
        )
    except pa.ArrowException:
        return None
    videos, video = _dictionary_codes(table.column("video_id").chunks)
    columns = {}
    for name in names[1:]:
        values = _float_column(table.column(name).chunks)
        if values is None:
            return None
        columns[name] = values
    if len(names) == len(_NUMERIC_COLUMNS) + 1:  # the optional last column is absent
        columns[_LAST_COLUMN[kind]] = np.full(len(video), np.nan)
    if _first_problem(columns, videos, video, kind, box_check) is not None:
        return None
    for name in ("timestamp", "action_id", "person_id"):
        if name in columns:
            values = columns[name]
            columns[name] = np.where(np.isnan(values), -1, values).astype(np.int64)
    return AvaColumns(videos, video, columns)


_BLOCK_BYTES = 1 << 22
"""pyarrow's parse block (its threads take a block each): large enough that per-block costs
vanish, small enough that a 70k-row file still splits across threads."""


def _float_column(chunks: Sequence[Any]) -> np.ndarray | None:
    """[N] float64 from pyarrow float64 chunks, NaN where null (an empty field); None if a field
    was written as a NaN (``nan``), which pandas refuses. Read from the buffers, because
    pyarrow's own ``to_numpy`` imports pandas, which costs more than a small file's parse."""
    parts = [np.zeros(0)]
    for chunk in chunks:
        if not len(chunk):
            continue
        size = chunk.offset + len(chunk)
        validity, values = chunk.buffers()
        array = np.frombuffer(values, dtype=np.float64, count=size)[chunk.offset :]
        written_nan = np.isnan(array)
        if chunk.null_count:
            bits = np.frombuffer(validity, dtype=np.uint8)
            valid = np.unpackbits(bits, count=size, bitorder="little")[chunk.offset :]
            written_nan &= valid.astype(bool)
            array = np.where(valid.astype(bool), array, np.nan)
        if written_nan.any():
            return None
        parts.append(array)
    return np.concatenate(parts)


def _dictionary_codes(chunks: Sequence[Any]) -> tuple[list[str], np.ndarray]:
    """(distinct strings in order of first appearance, [N] int64 codes) from pyarrow
    dictionary chunks (each with its own dictionary)."""
    table: dict[str, int] = {}
    parts = [np.zeros(0, dtype=np.int64)]
    for chunk in chunks:
        if not len(chunk):
            continue
        size = chunk.offset + len(chunk)
        indices = np.frombuffer(chunk.indices.buffers()[1], dtype=np.int32, count=size)
        local = np.array(
            [table.setdefault(v, len(table)) for v in chunk.dictionary.to_pylist()],
            dtype=np.int64,
        )
        parts.append(local[indices[chunk.offset :]])
    return list(table), np.concatenate(parts)


def _read_checked(path: str | Path, kind: Kind, box_check: BoxCheck) -> pd.DataFrame:
    """`read_ava_csv` by pandas' C parser, without the warning: the dialect's reference, which
    words every error."""
    _check_arguments(kind, box_check)
    import pandas as pd  # here, not at the top: importing this module (a tool's --help) is quick

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
    except (ValueError, OverflowError):
        # Also a UnicodeDecodeError, or an integer beyond int64 (OverflowError).
        if isinstance(source, io.BytesIO):
            source.seek(0)
        try:
            frame = _parse(source, names, integers=False)
        except (ValueError, OverflowError):
            data = _read_bytes(path) if data is None else data
            starts = _check_column_counts(data, path, allowed)
            raise _first_non_numeric(data, path, names, starts) from None
    problem = _frame_problem(frame, kind, box_check)
    if problem is not None:
        data = _read_bytes(path) if data is None else data
        starts = _check_column_counts(data, path, allowed)
        row, message = problem
        raise AvaCsvError(f"{path}:{_line_of_row(row, starts)}: {message}")

    frame = frame.drop(columns=_EXTRA)
    for name in ("timestamp", "action_id", "person_id"):
        if name in frame and frame[name].dtype != np.int64:
            frame[name] = frame[name].fillna(-1).astype(np.int64)
    return frame


def _parse(source: io.BytesIO | Path, names: list[str], *, integers: bool) -> pd.DataFrame:
    """pandas' C parser with our column names plus `_EXTRA`, which catches rows with one field
    too many (more make pandas raise). Only "" counts as missing, so a video id such as "NA"
    stays a string."""
    import pandas as pd

    with warnings.catch_warnings():
        # pandas warns when it casts "inf" towards an int64 column; that row is reported by
        # the checks, as one error naming its line.
        warnings.simplefilter("ignore", RuntimeWarning)
        return pd.read_csv(source, **_parser_options(names, integers))


def _parse_pieces(path: Path, names: list[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    """`_parse` (integer columns as integers) in pieces of `chunk_rows` rows."""
    import pandas as pd

    with pd.read_csv(path, chunksize=chunk_rows, **_parser_options(names, True)) as reader:
        while True:
            # As in `_parse`, only around pandas: the caller's own warnings stay on between
            # pieces.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                piece = next(reader, None)
            if piece is None:
                return
            yield piece


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
    import pandas as pd

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
            if _frame_problem(piece, kind, box_check) is not None:
                break
            piece = piece.drop(columns=_EXTRA)
            if box_check == "official":
                warnings.add(_numeric_columns(piece), kind, int(piece.index[0]))
            yield piece
            rows_done += len(piece)
        else:
            finished = True
    except pd.errors.EmptyDataError:
        finished = True
    except (ValueError, OverflowError):
        pass
    if not finished:
        # The fast piecewise parse failed: the whole-file reader raises the exact error, or,
        # for integral floats such as "0902.0" that only it accepts, reads the rest.
        rest = _read_checked(path, kind, box_check).iloc[rows_done:]
        if box_check == "official":
            warnings.add(_numeric_columns(rest), kind, rows_done)
        yield rest
    warnings.emit(path)


class _BoxWarnings:
    """Counts the rows that only ``box_check="official"`` accepts and keeps the first few, to
    report them in one warning per file."""

    def __init__(self) -> None:
        self.count = 0
        self.lines: list[str] = []

    def add(self, columns: dict[str, np.ndarray], kind: Kind, first_row: int = 0) -> None:
        """`columns`: [N] arrays by name, of consecutive rows from 0-based file row
        `first_row`."""
        rows = np.flatnonzero(_unnormalized_rows(columns, kind))
        self.count += len(rows)
        for row in rows[: _LINES_IN_WARNING - len(self.lines)].tolist():
            x1, y1, x2, y2 = (columns[c][row].item() for c in BOX_COLUMNS)
            self.lines.append(f"line {first_row + row + 1}: ({x1}, {y1}, {x2}, {y2})")

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


def _unnormalized_rows(columns: dict[str, np.ndarray], kind: Kind) -> np.ndarray:
    """[N] bool: rows whose box breaks a rule that only ``box_check="strict"`` enforces."""
    x1, y1, x2, y2 = (columns[c] for c in BOX_COLUMNS)
    with np.errstate(invalid="ignore"):
        low = np.minimum(np.minimum(x1, y1), np.minimum(x2, y2))
        high = np.maximum(np.maximum(x1, y1), np.maximum(x2, y2))
        unusual = (low < -BOX_TOLERANCE) | (high > 1 + BOX_TOLERANCE)
        if kind != "groundtruth":
            unusual |= (x1 > x2) | (y1 > y2)
    return unusual


def read_excluded_timestamps(path: str | Path) -> set[tuple[str, int]]:
    """Read an excluded-timestamps CSV (``video_id,timestamp`` per line, e.g. ``5BDj0ow5hnA,1038``)
    into a set of (video_id, timestamp) pairs, in the dialect of the module's docstring."""
    path = Path(path)
    excluded: set[tuple[str, int]] = set()
    for line, fields in _csv_records(_read_bytes(path), path):
        if len(fields) != 2:
            got = "an empty line" if not fields else repr(shorten(",".join(fields)))
            raise AvaCsvError(f"{path}:{line}: expected 'video_id,timestamp', got {got}")
        video_id, text = fields
        problem = _video_id_problem(video_id)
        if problem is not None:
            raise AvaCsvError(f"{path}:{line}: {problem}")
        timestamp = _parse_integer(text)
        if timestamp is None:
            raise AvaCsvError(
                f"{path}:{line}: timestamp {shorten(text)!r} is not a non-negative integer "
                f"(at most {MAX_INTEGER})"
            )
        excluded.add((video_id, timestamp))
    return excluded


def write_excluded_timestamps(path: str | Path, excluded: Iterable[tuple[str, int]]) -> None:
    """Write (video_id, timestamp) pairs as an excluded-timestamps CSV, sorted, atomically."""
    lines = [f"{_csv_video_id(v)},{_csv_timestamp(t)}\n" for v, t in sorted(excluded)]
    with atomic_write(path, newline="") as f:
        f.write("".join(lines))


def write_ava_csv(
    path: str | Path, frame: pd.DataFrame, *, kind: Kind, box_check: BoxCheck = "strict"
) -> None:
    """Write `frame`, in `read_ava_csv`'s layout for `kind`, as an AVA CSV file, atomically.

    Reading the file back with ``read_ava_csv(path, kind=kind, box_check=box_check)`` gives an
    equal frame: floats are written with Python's shortest exact repr, timestamps zero-padded to
    4 digits; an action id of -1 is an empty field (ground truth, boxes); a person id of -1 (ground
    truth) or a NaN score (boxes) leaves the 8th field out; a ground-truth row whose four box
    coordinates are NaN gets four empty fields. A row the reader would refuse raises
    ValueError naming it, and nothing is written.
    """
    if kind not in _COLUMN_COUNTS:
        raise ValueError(f"kind must be one of {sorted(_COLUMN_COUNTS)}, got {kind!r}")
    names = ["video_id", *_NUMERIC_COLUMNS, _LAST_COLUMN[kind]]
    missing = [n for n in names if n not in frame]
    if missing:
        raise ValueError(f"frame has no column {missing[0]!r} (a {kind} file needs {names})")
    checked = frame[names].reset_index(drop=True)
    checked[_EXTRA] = np.nan
    if kind != "detections":
        # The reader's "missing" is NaN, not -1.
        checked["action_id"] = checked["action_id"].where(checked["action_id"] != -1)
    if kind == "groundtruth":
        checked["person_id"] = checked["person_id"].where(checked["person_id"] != -1)
    problem = _frame_problem(checked, kind, box_check)
    if problem is not None:
        row, message = problem
        raise ValueError(f"row {row} cannot be written as a {kind} row: {message}")

    lines = []
    for video_id, timestamp, x1, y1, x2, y2, action, last in frame[names].itertuples(index=False):
        box = ",".join("" if math.isnan(c) else repr(float(c)) for c in (x1, y1, x2, y2))
        action_text = "" if action == -1 else str(int(action))
        line = f"{_csv_video_id(video_id)},{_csv_timestamp(timestamp)},{box},{action_text}"
        if kind == "detections":
            line += f",{float(last)!r}"
        elif kind == "groundtruth" and last != -1:
            line += f",{int(last)}"
        elif kind == "boxes" and not math.isnan(last):
            line += f",{float(last)!r}"
        lines.append(line + "\n")
    with atomic_write(path, newline="") as f:
        f.write("".join(lines))


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
    arbitrary order, see `frame_map`). A video id with a comma, quote or line break is quoted;
    an empty one, one with surrounding whitespace, or a timestamp outside 0..`MAX_INTEGER` (which
    the reader would refuse) raises ValueError before anything is written.
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
    if ((action_array < 1) | (action_array > MAX_INTEGER)).any():
        raise ValueError(f"action ids must lie in 1..{MAX_INTEGER}, got {action_array.tolist()}")
    # Checked (and quoted) once per video, and every timestamp, before the file is opened.
    written_ids = {v: _csv_video_id(v) for v in dict.fromkeys(video_ids)}
    written_timestamps = [_csv_timestamp(t) for t in timestamps]

    with atomic_write(path, newline="") as f:
        # A block of boxes at a time: the text of a whole test split (tens of millions of
        # rows) would not fit in memory.
        for start in range(0, num_boxes, _BOXES_PER_WRITE):
            block = slice(start, start + _BOXES_PER_WRITE)
            f.write(
                _detection_rows(
                    [written_ids[v] for v in video_ids[block]],
                    written_timestamps[block],
                    boxes[block],
                    scores[block],
                    action_array,
                )
            )


_BOXES_PER_WRITE = 10_000


def _detection_rows(
    video_ids: Sequence[str],
    timestamps: Sequence[str],
    boxes: np.ndarray,
    scores: np.ndarray,
    action_ids: np.ndarray,
) -> str:
    """CSV text for [K] boxes x [C] classes, box by box (video ids and timestamps as written)."""
    actions = [f",{a}," for a in action_ids.tolist()]
    lines: list[str] = []
    for video, timestamp, (x1, y1, x2, y2), box_scores in zip(
        video_ids, timestamps, boxes.tolist(), scores.tolist(), strict=True
    ):
        prefix = f"{video},{timestamp},{x1:.3f},{y1:.3f},{x2:.3f},{y2:.3f}"
        lines.extend(f"{prefix}{a}{s:.6f}\n" for a, s in zip(actions, box_scores, strict=True))
    return "".join(lines)


_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def _csv_video_id(video_id: str) -> str:
    """`video_id` as a CSV field (quoted as Python's csv module quotes it, when it must be);
    ValueError for one the reader refuses."""
    problem = _video_id_problem(video_id)
    if problem is not None:
        raise ValueError(f"cannot write {problem}")
    if _NEEDS_QUOTES.search(video_id):
        return '"' + video_id.replace('"', '""') + '"'
    return video_id


def _csv_timestamp(timestamp: int) -> str:
    """A timestamp zero-padded to 4 digits; ValueError outside 0..MAX_INTEGER (``-005`` would
    not read back)."""
    value = int(timestamp)
    if value != timestamp or not 0 <= value <= MAX_INTEGER:
        raise ValueError(f"timestamp {timestamp!r} is not an integer in 0..{MAX_INTEGER}")
    return f"{value:04d}"


def _video_id_problem(video_id: object) -> str | None:
    """What is wrong with a video id as read or to be written, or None."""
    if not isinstance(video_id, str) or not video_id:
        return "empty video id"
    if video_id != video_id.strip():
        return (
            f"video id {shorten(video_id)!r} has leading or trailing whitespace (it would "
            "silently name another video)"
        )
    return None


def _parse_integer(text: str) -> int | None:
    """An integer field as the CSV reader takes it (surrounding whitespace and integral floats
    such as "0902.0" accepted), or None unless it is an integer in 0..MAX_INTEGER."""
    if "_" in text:  # Python's float() reads "1_000"; the CSV reader (pandas) does not.
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or value != math.floor(value) or not 0 <= value <= MAX_INTEGER:
        return None
    return int(value)


def read_ava_text(path: str | Path) -> str:
    """The text of an AVA annotation file in this module's dialect: UTF-8 with any byte-order
    mark removed (for the space-separated frame lists, which share the encoding rules);
    `AvaCsvError` naming the file, and the line of the first byte that is not UTF-8."""
    path = Path(path)
    return _decode(_read_bytes(path), path)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise AvaCsvError(f"cannot read {path}: {e.strerror}") from e


def _decode(data: bytes, path: Path) -> str:
    """`data` as text without its byte-order mark; AvaCsvError naming the line of the first
    byte that is not UTF-8."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise AvaCsvError(
            f"{path}:{_line_at(data, e.start)}: not UTF-8 text (byte 0x{data[e.start]:02x}); "
            "AVA CSV files are UTF-8"
        ) from None


def _line_at(data: bytes, offset: int) -> int:
    """1-based physical line of byte `offset` (lines end with \\n, \\r\\n or \\r)."""
    head = data[:offset]
    return head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1


def _csv_records(data: bytes, path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, fields) of every row, by Python's csv module: the dialect's
    definition, used for small files and to find lines in files with quotes or lone \\r."""
    reader = csv.reader(io.StringIO(_decode(data, path), newline=""))
    previous = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:  # an unterminated quote, a field over the csv module's limit
            raise AvaCsvError(f"{path}:{previous + 1}: {e}") from None
        yield previous + 1, fields
        previous = reader.line_num


def _empty_frame(names: list[str]) -> pd.DataFrame:
    import pandas as pd

    dtypes = {
        "video_id": str,
        "timestamp": np.int64,
        "action_id": np.int64,
        "person_id": np.int64,
        "score": np.float64,
    }
    return pd.DataFrame({n: pd.Series(dtype=dtypes.get(n, np.float64)) for n in names})


def _line_of_row(row: int, starts: np.ndarray | None) -> int:
    """The physical line of 0-based row `row` (`starts` from `_check_column_counts`)."""
    return int(starts[row]) if starts is not None and row < len(starts) else row + 1


def _check_column_counts(data: bytes, path: Path, allowed: tuple[int, ...]) -> np.ndarray | None:
    """Check the field count of every row, so that a short row is told apart from a row with
    empty fields, and blank lines are caught.

    Returns the first physical line of each row [R], or None when row i is line i + 1. Counted
    from the raw bytes (commas per line) unless the file has quotes or lone \\r line ends; then
    by the csv module, which knows quoted commas and line breaks.
    """
    if b'"' in data or data.count(b"\r") != data.count(b"\r\n"):
        starts = []
        for start, record in _csv_records(data, path):
            if len(record) not in allowed:
                _raise_column_count(path, start, len(record), ",".join(record), allowed)
            starts.append(start)
        return np.array(starts, dtype=np.int64)
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
        _raise_column_count(path, line + 1, int(fields[line]), text, allowed)
    return None


def _raise_column_count(
    path: Path, line: int, count: int, text: str, allowed: tuple[int, ...]
) -> None:
    expected = " or ".join(str(n) for n in allowed)
    got = "an empty line" if not text.strip() else f"{count} in {shorten(text)!r}"
    raise AvaCsvError(f"{path}:{line}: expected {expected} comma-separated fields, got {got}")


def _first_non_numeric(
    data: bytes, path: Path, names: list[str], starts: np.ndarray | None
) -> AvaCsvError:
    """The error for the first field that is not a number (looked for once the fast parse
    failed, which does not say where)."""
    import pandas as pd

    _decode(data, path)  # bytes that are not UTF-8 are named first
    try:
        text = pd.read_csv(
            io.BytesIO(data),
            header=None,
            names=names,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
        )
    except ValueError as e:
        return AvaCsvError(f"{path}: could not be parsed as an AVA CSV file ({shorten(str(e))})")
    first: tuple[int, str, str] | None = None
    for name in names[1:]:
        values = text[name]
        bad = np.flatnonzero(pd.to_numeric(values, errors="coerce").isna() & (values != ""))
        if bad.size and (first is None or bad[0] < first[0]):
            first = (int(bad[0]), name, values.iloc[bad[0]])
    if first is None:
        return AvaCsvError(f"{path}: could not be parsed as an AVA CSV file")
    row, name, value = first
    return AvaCsvError(
        f"{path}:{_line_of_row(row, starts)}: {name} {shorten(value)!r} is not a number"
    )


def _numeric_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Every column of `frame` but the video id, by name, as arrays."""
    return {str(k): frame[k].to_numpy() for k in frame if k != "video_id"}


def _frame_problem(
    frame: pd.DataFrame, kind: Kind, box_check: BoxCheck = "strict"
) -> tuple[int, str] | None:
    """`_first_problem` of a frame from the pandas reader (with its `_EXTRA` column)."""
    import pandas as pd

    # Checked once per distinct video id (a few hundred), not per row (millions).
    codes, videos = pd.factorize(frame["video_id"].to_numpy(object))
    return _first_problem(_numeric_columns(frame), list(videos), codes, kind, box_check)


def _first_problem(
    columns: dict[str, np.ndarray],
    videos: Sequence[object],
    video: np.ndarray,
    kind: Kind,
    box_check: BoxCheck = "strict",
) -> tuple[int, str] | None:
    """The first (lowest) row that breaks a rule, with what is wrong, or None.

    columns: [N] arrays by name (numeric fields as read, NaN where empty; `_EXTRA` when the
    reader can see a field too many); videos: the distinct video ids; video: [N] each row's
    index into `videos`, -1 where the field is empty.
    """
    problems: list[tuple[int, str]] = []

    def check(bad: np.ndarray, message: str) -> None:
        rows = np.flatnonzero(bad)
        if rows.size:
            row = int(rows[0])
            problems.append((row, message.format(**{k: v[row] for k, v in columns.items()})))

    if _EXTRA in columns:
        check(~np.isnan(columns[_EXTRA]), "too many fields")
    check(video < 0, "empty video id")
    padded = [i for i, v in enumerate(videos) if _video_id_problem(v) is not None]
    if padded:
        row = int(np.flatnonzero(np.isin(video, padded))[0])
        problems.append((row, str(_video_id_problem(videos[video[row]]))))
    ts = columns["timestamp"]
    check(np.isnan(ts), "missing timestamp")
    check(
        ~np.isnan(ts) & ((ts < 0) | (ts != np.floor(ts))),
        "timestamp {timestamp} is not a non-negative integer",
    )
    check(ts > MAX_INTEGER, f"timestamp {{timestamp}} is larger than {MAX_INTEGER}")

    x1, y1, x2, y2 = (columns[c] for c in BOX_COLUMNS)
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

    action = columns["action_id"]
    if kind == "detections":
        check(np.isnan(action), "missing action id")
    with np.errstate(invalid="ignore"):
        allowed_minimum = -1 if kind == "boxes" else 1
        check(
            ~np.isnan(action) & ((action != np.floor(action)) | (action < allowed_minimum)),
            f"action id {{action_id}} is not an integer >= {allowed_minimum}",
        )
        check(action > MAX_INTEGER, f"action id {{action_id}} is larger than {MAX_INTEGER}")

    if "score" in columns:
        score = columns["score"]
        if kind == "detections":
            check(np.isnan(score), "missing score")
        check(np.isinf(score), "score {score} is not finite")
    else:
        person = columns["person_id"]
        with np.errstate(invalid="ignore"):
            check(
                ~np.isnan(person) & ((person != np.floor(person)) | (person < 0)),
                "person id {person_id} is not a non-negative integer",
            )
            check(person > MAX_INTEGER, f"person id {{person_id}} is larger than {MAX_INTEGER}")

    return min(problems, key=lambda p: p[0]) if problems else None
