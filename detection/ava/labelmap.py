"""AVA label maps in both pbtxt dialects.

AVA ships two dialects of the same protobuf text format:

- ``label { name: "..." label_id: N label_type: PERSON_MOVEMENT }`` (``ava_action_list_v2.2.pbtxt``,
  all 80 classes with their group);
- ``item { name: "..." id: N }`` (``..._for_activitynet_2019.pbtxt``, the 60 evaluated classes).

Files are UTF-8 (a byte-order mark is skipped). Ids are integers in 1..`MAX_ACTION_ID`, and
both ids and names are unique: results are reported per class name, so two classes of one name
would merge silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from detection.errors import UserError, shorten

_ENTRY_START = re.compile(r"^(label|item)\s*\{\s*$")
_FIELD = re.compile(r'^(\w+)\s*:\s*(?:"((?:[^"\\]|\\.)*)"|(\S+))\s*$')
_ID_FIELDS = ("label_id", "id")

MAX_ACTION_ID = 2**31 - 1
"""Largest action id (the largest integer an AVA CSV file may hold, `csv_io.MAX_INTEGER`)."""


class LabelMapError(UserError, ValueError):
    """A label map file is malformed; the message names the file and line."""


@dataclass(frozen=True)
class LabelMap:
    """Action ids (1-based, as in AVA) with their names and, where given, their group."""

    names: dict[int, str]
    groups: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen: dict[str, int] = {}
        for action_id, name in self.names.items():
            if name in seen:
                raise LabelMapError(
                    f"class name {shorten(name)!r} is used by ids {seen[name]} and {action_id}"
                )
            seen[name] = action_id

    @property
    def ids(self) -> list[int]:
        """Action ids in file order."""
        return list(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, action_id: object) -> bool:
        return action_id in self.names


def read_labelmap(path: str | Path) -> LabelMap:
    """Parse a label map in either dialect; duplicate ids or names, missing fields or stray lines
    raise `LabelMapError` naming the file and line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise LabelMapError(f"cannot read label map {path}: {e.strerror}") from e
    try:
        lines = data.decode("utf-8").removeprefix("\ufeff").splitlines()
    except UnicodeDecodeError as e:
        head = data[: e.start]
        bad_line = head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1
        raise LabelMapError(
            f"{path}:{bad_line}: not UTF-8 text (byte 0x{data[e.start]:02x}); label maps are UTF-8"
        ) from None

    names: dict[int, str] = {}
    groups: dict[int, str] = {}
    lines_of_names: dict[str, int] = {}
    lines_of_ids: dict[int, int] = {}
    entry: dict[str, str] | None = None
    entry_line = 0
    for line_no, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if entry is None:
            if not _ENTRY_START.match(line):
                raise LabelMapError(
                    f"{path}:{line_no}: expected 'label {{' or 'item {{', got {shorten(raw)!r}"
                )
            entry, entry_line = {}, line_no
            continue
        if line == "}":
            action_id, name, group = _finish_entry(entry, path, entry_line)
            if action_id in names:
                raise LabelMapError(
                    f"{path}:{entry_line}: action id {action_id} defined twice (first on line "
                    f"{lines_of_ids[action_id]})"
                )
            if name in lines_of_names:
                raise LabelMapError(
                    f"{path}:{entry_line}: class name {shorten(name)!r} defined twice (first on "
                    f"line {lines_of_names[name]}); per-class results are reported by name"
                )
            names[action_id] = name
            lines_of_ids[action_id] = lines_of_names[name] = entry_line
            if group is not None:
                groups[action_id] = group
            entry = None
            continue
        match = _FIELD.match(line)
        if match is None:
            raise LabelMapError(f"{path}:{line_no}: expected 'key: value', got {shorten(raw)!r}")
        key, quoted, bare = match.groups()
        entry[key] = quoted if quoted is not None else bare
    if entry is not None:
        raise LabelMapError(f"{path}:{entry_line}: entry is not closed with '}}'")
    if not names:
        raise LabelMapError(f"{path}: no label entries found")
    return LabelMap(names=names, groups=groups)


def _finish_entry(entry: dict[str, str], path: Path, line_no: int) -> tuple[int, str, str | None]:
    id_text = next((entry[k] for k in _ID_FIELDS if k in entry), None)
    if id_text is None or "name" not in entry:
        raise LabelMapError(f"{path}:{line_no}: entry needs 'name' and 'label_id' (or 'id')")
    try:
        action_id = int(id_text)
    except ValueError as e:
        raise LabelMapError(f"{path}:{line_no}: id {shorten(id_text)!r} is not an integer") from e
    if not 1 <= action_id <= MAX_ACTION_ID:
        raise LabelMapError(f"{path}:{line_no}: id {shorten(id_text)} is not in 1..{MAX_ACTION_ID}")
    return action_id, entry["name"], entry.get("label_type")
