"""Run records: a JSON-lines file, TensorBoard scalars and tqdm bars, all on rank 0 only.

`OUTPUT_DIR/log.jsonl` gets one JSON object per line, each with an "event" field:
"train" (epoch, iter, step, loss, lr, sec_per_iter), "epoch" (epoch, loss, seconds),
"resume" (checkpoint, start_epoch), "eval" (epoch, official, pyslowfast: each {"mAP",
"per_class"}) and "done". TensorBoard scalars go to `OUTPUT_DIR/tensorboard` under train/loss,
train/lr, eval/mAP_official and eval/mAP_pyslowfast.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from detection.utils.atomic import atomic_write

from .distributed import is_main_process

T = TypeVar("T")

LOG_FILE = "log.jsonl"
TENSORBOARD_DIR = "tensorboard"


class MetricsLogger:
    """Appends records to `output_dir/log.jsonl` and TensorBoard; a no-op on ranks other than 0.

    The file is opened in append mode so that a resumed run continues the same log.
    """

    def __init__(self, output_dir: str | os.PathLike, tensorboard: bool = True) -> None:
        self.enabled = is_main_process()
        self._file = None
        self._writer = None
        if not self.enabled:
            return
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        self._file = open(out / LOG_FILE, "a", encoding="utf-8")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(out / TENSORBOARD_DIR))

    def record(self, event: str, **fields: Any) -> None:
        """Write one JSON line {"event": event, "time": unix seconds, **fields} and flush it.

        Flushed at once so that a killed run leaves a log that says how far it got.
        """
        if self._file is None:
            return
        self._file.write(json.dumps({"event": event, "time": time.time(), **fields}) + "\n")
        self._file.flush()

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self._writer is not None:
            self._writer.add_scalar(tag, value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._file is not None:
            self._file.close()
            self._file = None


def drop_records_from_epoch(output_dir: str | os.PathLike, start_epoch: int) -> int:
    """Remove the records of epochs >= `start_epoch` from `output_dir/log.jsonl` (rank 0 only).

    A run resumed at `start_epoch` replays that epoch from its start, so the killed run's
    records of it would otherwise appear twice. The file is rewritten atomically; records
    without an epoch (e.g. "finetune") stay. Returns how many records were dropped.
    """
    path = Path(output_dir) / LOG_FILE
    if not is_main_process() or not path.exists():
        return 0
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    kept = [line for line in lines if json.loads(line).get("epoch", -1) < start_epoch]
    if len(kept) < len(lines):
        with atomic_write(path) as out:
            out.writelines(kept)
    return len(lines) - len(kept)


def progress(iterable: Iterable[T], desc: str, total: int | None = None) -> Iterable[T]:
    """A tqdm bar on rank 0 when stderr is a terminal; otherwise `iterable` as is."""
    if not is_main_process():
        return iterable
    # disable=None: tqdm turns itself off on non-terminals (CI logs, redirected output).
    return tqdm(iterable, desc=desc, total=total, dynamic_ncols=True, leave=False, disable=None)


def read_log(output_dir: str | os.PathLike) -> list[dict]:
    """All records of `output_dir/log.jsonl` (for tests and reports)."""
    path = Path(output_dir) / LOG_FILE
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
