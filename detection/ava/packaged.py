"""AVA v2.2's label maps, shipped inside the package (found with `importlib.resources`, so a
wheel install finds them as an editable checkout does)."""

from __future__ import annotations

from contextlib import ExitStack
from importlib import resources
from pathlib import Path

ALL_CLASSES = "ava_action_list_v2.2.pbtxt"
"""All 80 action classes with their groups (``label { name label_id label_type }``)."""

EVALUATED_CLASSES = "ava_action_list_v2.2_for_activitynet_2019.pbtxt"
"""The 60 classes the official evaluation scores (``item { name id }``)."""

_files = ExitStack()


def packaged_labelmap_path(name: str = ALL_CLASSES) -> Path:
    """A filesystem path of one of the shipped label maps (`ALL_CLASSES`, `EVALUATED_CLASSES`)."""
    if name not in (ALL_CLASSES, EVALUATED_CLASSES):
        raise ValueError(
            f"no packaged label map {name!r}; expected {ALL_CLASSES} or {EVALUATED_CLASSES}"
        )
    resource = resources.files("detection.ava") / "labelmaps" / name
    # Zip-imported packages have no real path: as_file extracts once for the process.
    return Path(_files.enter_context(resources.as_file(resource)))
