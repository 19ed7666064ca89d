"""Reports on frame-mAP results: per-class tables (markdown, CSV), mAP per label group, a bar
chart, and two results side by side.

Results come as a `FrameMapResult` or as the JSON it writes (``{"mAP", "per_class"}``), so
that results saved earlier can be compared without the files they came from.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from detection.ava.labelmap import LabelMap
from detection.errors import UserError, shorten
from detection.evaluation.frame_map import FrameMapResult

if TYPE_CHECKING:
    import pandas as pd

NO_GROUP = "(no group)"

_EXPECTED_RESULT = (
    'expected a JSON object {"mAP": number, "per_class": {name: number}}, '
    "as eval_ava.py --output-json writes (or a run's metrics.json, keyed by protocol)"
)


class ResultFileError(UserError, ValueError):
    """A result JSON cannot be read, is not JSON, or does not hold ``{"mAP": number,
    "per_class": {name: number}}``; the message names the file and the line or key."""


@dataclass(frozen=True)
class SavedResult:
    """mAP and per-class AP, as saved by `FrameMapResult.to_json`."""

    mAP: float  # noqa: N815 (the name users know)
    per_class: dict[str, float]


def load_result(path: str | Path, protocol: str = "official") -> SavedResult:
    """Read a result JSON written by `FrameMapResult.to_json` (or ``eval_ava.py --output-json``),
    or a run's ``metrics.json`` (``{protocol: {"mAP", "per_class"}}``), taking `protocol` there.

    Raises `ResultFileError` naming the file and the line (JSON syntax) or key (content) when
    it cannot be read or does not hold ``{"mAP": number, "per_class": {name: number}}``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ResultFileError(f"cannot read result {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise ResultFileError(f"{path}: not UTF-8 text (byte {e.start}); {_EXPECTED_RESULT}") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ResultFileError(
            f"{path}:{e.lineno}: not valid JSON ({e.msg}, column {e.colno}); {_EXPECTED_RESULT}"
        ) from e
    if not isinstance(data, dict):
        raise ResultFileError(f"{path}: {_EXPECTED_RESULT}, got a JSON {_json_kind(data)}")
    if "mAP" not in data and isinstance(data.get(protocol), dict):
        data = data[protocol]
    for key in ("mAP", "per_class"):
        if key not in data:
            raise ResultFileError(f"{path}: no key {key!r}; {_EXPECTED_RESULT}")
    if not isinstance(data["per_class"], dict):
        raise ResultFileError(
            f"{path}: 'per_class' is a JSON {_json_kind(data['per_class'])}; {_EXPECTED_RESULT}"
        )
    return SavedResult(
        mAP=_number(data["mAP"], path, "'mAP'"),
        per_class={
            name: _number(ap, path, f"per_class[{name!r}]")
            for name, ap in data["per_class"].items()
        },
    )


def _json_kind(value: object) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number")


def _number(value: object, path: Path, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultFileError(
            f"{path}: {key} is {shorten(json.dumps(value), 40)}, expected a number"
        )
    return float(value)


def per_class_rows(
    result: FrameMapResult | SavedResult, groups: LabelMap | None = None
) -> tuple[list[str], list[list[object]]]:
    """(columns, rows) of `per_class_table`, without pandas (whose import costs more than
    evaluating a small file): one row per class with ground truth, highest AP first, ties in
    the result's class order."""
    group_of = _group_of(groups) if groups is not None else None
    rows = []
    for name, ap in sorted(result.per_class.items(), key=lambda item: -item[1]):
        row: list[object] = [name, ap]
        if group_of is not None:
            row.append(group_of.get(name, NO_GROUP))
        if isinstance(result, FrameMapResult):
            row += [
                result.class_ids[name],
                result.num_groundtruth[name],
                result.num_detections[name],
                result.num_true_positives[name],
            ]
        rows.append(row)
    return _columns(result, groups), rows


def per_class_table(
    result: FrameMapResult | SavedResult, groups: LabelMap | None = None
) -> pd.DataFrame:
    """One row per class with ground truth, sorted by AP (highest first): ``class``, ``ap``,
    then ``group`` when a label map with groups is given (matched by class name), and for a
    `FrameMapResult` ``action_id``, ``groundtruth``, ``detections``, ``true_positives``."""
    # pandas is imported where a table is built, not at the top: a tool's --help need not wait.
    import pandas as pd

    columns, rows = per_class_rows(result, groups)
    return pd.DataFrame(rows, columns=columns)


def per_class_markdown(result: FrameMapResult | SavedResult, groups: LabelMap | None = None) -> str:
    """``to_markdown(per_class_table(result, groups))``, without pandas."""
    columns, rows = per_class_rows(result, groups)
    numeric = [c not in ("class", "group") for c in columns]
    return markdown_table(columns, rows, numeric)


def group_map(result: FrameMapResult | SavedResult, groups: LabelMap) -> dict[str, float]:
    """mAP over the classes (with ground truth) of each label group, e.g. PERSON_MOVEMENT,
    OBJECT_MANIPULATION, PERSON_INTERACTION for the AVA v2.2 label map; in first-seen order."""
    group_of = _group_of(groups)
    members: dict[str, list[float]] = {}
    for name, ap in result.per_class.items():
        members.setdefault(group_of.get(name, NO_GROUP), []).append(ap)
    return {group: sum(aps) / len(aps) for group, aps in members.items()}


def to_markdown(table: pd.DataFrame) -> str:
    """A markdown table; AP columns with 4 decimals."""
    import pandas as pd

    numeric = [pd.api.types.is_numeric_dtype(table[c]) for c in table.columns]
    rows = [list(row) for row in table.itertuples(index=False)]
    return markdown_table([str(c) for c in table.columns], rows, numeric)


def markdown_table(columns: list[str], rows: list[list[object]], numeric: list[bool]) -> str:
    """A markdown table of `rows` under `columns`, `numeric` ones right-aligned; floats with 4
    decimals (NaN empty), ``|`` in text escaped."""
    align = "|" + "|".join("---:" if n else "---" for n in numeric) + "|"
    lines = ["| " + " | ".join(columns) + " |", align]
    lines.extend("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows)
    return "\n".join(lines)


def write_table_csv(table: pd.DataFrame, path: str | Path) -> None:
    """Write the table as CSV with a header row."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, float_format="%.6f")


def plot_per_class(
    result: FrameMapResult | SavedResult, path: str | Path, *, title: str | None = None
) -> None:
    """Horizontal bar chart of per-class AP, highest at the top, written as PNG."""
    # Imported here: matplotlib costs every tool that imports this module a second at start-up.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    table = per_class_table(result)
    # A Figure on the Agg canvas directly, not pyplot: no global backend switch, no window.
    fig = Figure(figsize=(8.0, max(3.0, 0.22 * len(table) + 1.0)))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.barh(table["class"][::-1], table["ap"][::-1], color="#4c72b0")
    ax.axvline(result.mAP, color="#c44e52", linestyle="--", label=f"mAP {result.mAP:.4f}")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("AP@0.5 IoU")
    ax.set_title(title or "Frame AP per class")
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def compare(
    first: FrameMapResult | SavedResult,
    second: FrameMapResult | SavedResult,
    names: tuple[str, str] = ("A", "B"),
) -> pd.DataFrame:
    """Per-class AP of two results side by side with their difference (second - first),
    sorted by difference, largest gain first, then an ``mAP`` row. A class present in only
    one result has NaN on the other side."""
    import pandas as pd

    classes = list(dict.fromkeys([*first.per_class, *second.per_class]))
    a, b = names
    table = pd.DataFrame(
        {
            "class": classes,
            a: [first.per_class.get(c, math.nan) for c in classes],
            b: [second.per_class.get(c, math.nan) for c in classes],
        }
    )
    table[f"{b} - {a}"] = table[b] - table[a]
    table = table.sort_values(f"{b} - {a}", ascending=False, kind="stable", na_position="last")
    overall = pd.DataFrame(
        {"class": ["mAP"], a: [first.mAP], b: [second.mAP], f"{b} - {a}": [second.mAP - first.mAP]}
    )
    return pd.concat([table, overall], ignore_index=True)


def _group_of(groups: LabelMap) -> Mapping[str, str]:
    return {
        name: groups.groups.get(action_id, NO_GROUP) for action_id, name in groups.names.items()
    }


def _columns(result: FrameMapResult | SavedResult, groups: LabelMap | None) -> list[str]:
    columns = ["class", "ap"]
    if groups is not None:
        columns.append("group")
    if isinstance(result, FrameMapResult):
        columns += ["action_id", "groundtruth", "detections", "true_positives"]
    return columns


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}"
    return str(value).replace("|", "\\|")
