"""Frame-mAP speed: `tools/eval_ava.py` against ActivityNet's official evaluator, both timed as
whole processes (interpreter start, imports, reading, evaluation, printing) on AVA-val-sized files.

Reads: the official evaluator (``--official``; default ``$AVA_OFFICIAL_EVALUATOR`` or
/work/refs/ActivityNet/Evaluation/get_ava_performance.py), run unchanged through
benchmarks/official_ava_runner.py, and AVA's 80-class label map
(detection/ava/labelmaps/ava_action_list_v2.2.pbtxt). Writes into a temporary folder (or
--workdir): a generated ground truth like AVA v2.2 val (64 videos x 897 keyframes, about
92,000 rows with person ids, long-tailed classes) and detection files of about 70,000, 400,000
and 1.6 M rows (--rows; 4.8 M more with --large), each with unique scores and, for the sizes in
--ties-rows (default all), once more with scores rounded to 2 decimals (many ties). Prints a
table per file: wall-clock and CPU seconds (user + system of that process alone, from wait4) of
each evaluator, their ratios, and the largest per-class AP difference (0: every AP identical;
the run stops if the classes differ).

The official evaluator here is ActivityNet's version without ``-e``: it skips detections on
frames absent from the ground truth file, so ours runs with ``--ignore-frames-without-gt``
(with all 80 classes in the label map those are the same frames) and neither gets exclusions.

Official runs go in worker threads (``--jobs`` at a time, each ``--repeats`` times); ours runs in
rounds over every file meanwhile (at least ``--repeats`` rounds, more while official runs are
still going), so both see the same machine load; medians are reported. On a quiet machine use
``--jobs 1`` and read the wall ratio; on a shared one the CPU ratio is the steadier figure.

    .venv/bin/python benchmarks/eval_speed.py [--rows 70000 400000 1600000] [--large]
        [--ties-rows ...] [--repeats 2] [--jobs 1] [--official PATH] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from official_ava_runner import DEFAULT_OFFICIAL, official_per_class

REPO = Path(__file__).resolve().parents[1]
LABELMAP = REPO / "detection" / "ava" / "labelmaps" / "ava_action_list_v2.2.pbtxt"
RUNNER = REPO / "benchmarks" / "official_ava_runner.py"
DEFAULT_ROWS = (70_000, 400_000, 1_600_000)
LARGE_ROWS = 4_800_000

NUM_VIDEOS = 64
KEYFRAMES = 897  # seconds 902..1798 of each 15-minute cut
FIRST_SECOND = 902
PERSONS_PER_FRAME = 1.0
EXTRA_LABELS_PER_PERSON = 0.6
DETECTED_SHARE = 0.9
FALSE_BOXES_PER_FRAME = 0.3


def _label_ids(labelmap: Path) -> np.ndarray:
    """The label map's ids, read as the official reader reads them (``label_id:`` / ``id:``)."""
    ids = re.findall(r"^\s*(?:label_)?id:\s*(\d+)", labelmap.read_text(), flags=re.M)
    return np.array([int(i) for i in ids], dtype=np.int64)


def _boxes(rng: np.random.Generator, count: int) -> np.ndarray:
    """[count, 4] (x1, y1, x2, y2) normalized boxes on the 0.001 grid AVA files use."""
    corner = rng.uniform(0.0, 0.7, (count, 2))
    size = rng.uniform(0.1, 0.3, (count, 2))
    return np.round(np.clip(np.hstack([corner, corner + size]), 0.0, 1.0), 3)


def _pick_classes(rng: np.random.Generator, weights: np.ndarray, first: np.ndarray, k: int):
    """[P, k] distinct class indices per row, drawn without replacement by `weights` (Gumbel
    top-k), the classes marked in `first` [P, C] always drawn first."""
    keys = np.log(weights)[None, :] + rng.gumbel(size=first.shape)
    keys[first] = np.inf
    return np.argsort(-keys, axis=1, kind="stable")[:, :k]


class Generated:
    """An AVA-like ground truth and the boxes of a detector on it (generated once, seeded);
    `detections` writes files of any size from the same boxes."""

    def __init__(self, labelmap: Path, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.class_ids = _label_ids(labelmap)
        num_classes = len(self.class_ids)
        popularity = 1.0 / np.arange(1, num_classes + 1) ** 1.1  # long-tailed, like AVA
        self.popularity = rng.permutation(popularity / popularity.sum())
        self.videos = [f"vid{v:03d}_{rng.integers(1 << 30):08x}" for v in range(NUM_VIDEOS)]

        frames = NUM_VIDEOS * KEYFRAMES
        persons = rng.poisson(PERSONS_PER_FRAME, frames)
        person_frame = np.repeat(np.arange(frames), persons)
        num_persons = len(person_frame)
        person_box = _boxes(rng, num_persons)
        person_id = np.arange(num_persons) - np.repeat(np.cumsum(persons) - persons, persons)
        num_labels = np.minimum(1 + rng.poisson(EXTRA_LABELS_PER_PERSON, num_persons), 6)
        picked = _pick_classes(
            rng, self.popularity, np.zeros((num_persons, num_classes), bool), int(num_labels.max())
        )
        labelled = np.arange(picked.shape[1])[None, :] < num_labels[:, None]
        self.person_labels = np.zeros((num_persons, num_classes), dtype=bool)
        np.put_along_axis(self.person_labels, picked, labelled, axis=1)
        gt_person, gt_slot = np.nonzero(labelled)
        self.groundtruth = (
            person_frame[gt_person],
            person_box[gt_person],
            picked[gt_person, gt_slot],
            person_id[gt_person],
        )

        # Detected boxes: most persons (box jittered), plus false boxes on any frame.
        found = np.flatnonzero(rng.random(num_persons) < DETECTED_SHARE)
        jittered = np.clip(person_box[found] + rng.normal(0.0, 0.03, (len(found), 4)), 0.0, 1.0)
        jittered = np.round(
            np.hstack(
                [
                    np.minimum(jittered[:, :2], jittered[:, 2:]),
                    np.maximum(jittered[:, :2], jittered[:, 2:]),
                ]
            ),
            3,
        )
        false_count = rng.poisson(FALSE_BOXES_PER_FRAME, frames)
        false_frame = np.repeat(np.arange(frames), false_count)
        box_frame = np.concatenate([person_frame[found], false_frame])
        order = np.argsort(box_frame, kind="stable")  # boxes frame by frame, as a detector writes
        self.box_frame = box_frame[order]
        self.box = np.concatenate([jittered, _boxes(rng, len(false_frame))])[order]
        self.box_labels = np.concatenate(
            [self.person_labels[found], np.zeros((len(false_frame), num_classes), bool)]
        )[order]

    def write_groundtruth(self, path: Path) -> int:
        frame, box, label, person = self.groundtruth
        order = np.lexsort((person, frame))  # frame by frame, person by person
        lines = _lines(
            [self.videos[f // KEYFRAMES] for f in frame[order].tolist()],
            FIRST_SECOND + frame[order] % KEYFRAMES,
            box[order],
            self.class_ids[label[order]],
            [str(p) for p in person[order].tolist()],
        )
        path.write_text(lines)
        return len(frame)

    def write_detections(self, path: Path, rows: int, ties: bool) -> int:
        """About `rows` rows: each box scored for the same number of classes (its true ones
        scored higher); scores with 2 decimals when `ties`, else unique doubles."""
        num_boxes, num_classes = self.box_labels.shape
        per_box = int(np.clip(round(rows / num_boxes), 1, num_classes))
        rng = np.random.default_rng([rows, per_box])  # same rows with and without ties
        picked = np.sort(_pick_classes(rng, self.popularity, self.box_labels, per_box), axis=1)
        true = np.take_along_axis(self.box_labels, picked, axis=1)
        score = np.where(
            true, rng.beta(4.0, 2.0, picked.shape), rng.beta(1.0, 6.0, picked.shape)
        ).ravel()
        text = [f"{s:.2f}" for s in score.tolist()] if ties else [repr(s) for s in score.tolist()]
        frame = np.repeat(self.box_frame, per_box)
        path.write_text(
            _lines(
                [self.videos[f // KEYFRAMES] for f in frame.tolist()],
                FIRST_SECOND + frame % KEYFRAMES,
                np.repeat(self.box, per_box, axis=0),
                self.class_ids[picked.ravel()],
                text,
            )
        )
        return len(score)


def _lines(
    videos: list[str], seconds: np.ndarray, box: np.ndarray, action: np.ndarray, last: list[str]
) -> str:
    coords = [f"{v:.3f}" for v in box.ravel().tolist()]
    return "".join(
        f"{v},{t:04d},{coords[4 * i]},{coords[4 * i + 1]},{coords[4 * i + 2]},"
        f"{coords[4 * i + 3]},{a},{s}\n"
        for i, (v, t, a, s) in enumerate(
            zip(videos, seconds.tolist(), action.tolist(), last, strict=True)
        )
    )


@dataclass
class Timing:
    """Wall-clock and CPU seconds (user + system) of one child process."""

    wall: float
    cpu: float


def _run(command: list[str], stdout: Path) -> Timing:
    """Run `command` from the repository root, its output into `stdout`; its own CPU time comes
    from wait4, so processes running beside it are not counted."""
    start = time.perf_counter()
    with stdout.open("w") as out:
        child = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.PIPE, text=True)
        assert child.stderr is not None
        errors = child.stderr.read()  # drained while it runs (the official logs a lot)
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if child.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{errors[-3000:]}")
    return Timing(wall, usage.ru_utime + usage.ru_stime)


@dataclass
class Case:
    """One detections file, its two commands and their timings."""

    rows: int
    ties: bool
    detections: Path
    official_cmd: list[str]
    ours_cmd: list[str]
    ours_json: Path
    official_out: Path
    official: list[Timing] = field(default_factory=list)
    ours: list[Timing] = field(default_factory=list)


def _commands(groundtruth: Path, detections: Path, official: Path, result: Path):
    ours = [
        sys.executable,
        "tools/eval_ava.py",
        "-l",
        str(LABELMAP),
        "-g",
        str(groundtruth),
        "-d",
        str(detections),
        "--ignore-frames-without-gt",
        "--output-json",
        str(result),
    ]
    official_cmd = [sys.executable, str(RUNNER), str(official), "-l", str(LABELMAP)]
    official_cmd += ["-g", str(groundtruth), "-d", str(detections)]
    return official_cmd, ours


def _run_official(case: Case, repeats: int) -> None:
    for _ in range(repeats):
        case.official.append(_run(case.official_cmd, case.official_out))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--rows", type=int, nargs="+", default=list(DEFAULT_ROWS), help="detection file sizes"
    )
    parser.add_argument("--large", action="store_true", help=f"add {LARGE_ROWS:,} rows")
    parser.add_argument(
        "--ties-rows",
        type=int,
        nargs="*",
        help="sizes that also get a file with tied scores (default: every size)",
    )
    parser.add_argument("--repeats", type=int, default=2, help="official runs per file (2)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="official evaluators run at once (default 1: one at a time, ours between them; "
        "more on a busy machine, where the CPU-time ratio is the one to read)",
    )
    parser.add_argument(
        "--official", type=Path, default=DEFAULT_OFFICIAL, help="get_ava_performance.py"
    )
    parser.add_argument("--workdir", type=Path, help="keep the generated CSVs here")
    args = parser.parse_args()
    if not args.official.is_file():
        raise SystemExit(f"no official evaluator at {args.official} (give --official)")
    sizes = [*args.rows, *([LARGE_ROWS] if args.large else [])]
    ties_sizes = sizes if args.ties_rows is None else args.ties_rows

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        data = Generated(LABELMAP)
        groundtruth = folder / "groundtruth.csv"
        gt_rows = data.write_groundtruth(groundtruth)
        cases = []
        for size in sizes:
            for ties in (False, True) if size in ties_sizes else (False,):
                name = f"detections_{size}_{'ties' if ties else 'unique'}"
                detections = folder / f"{name}.csv"
                rows = data.write_detections(detections, size, ties)
                result = folder / f"{name}_ours.json"
                official_cmd, ours_cmd = _commands(groundtruth, detections, args.official, result)
                cases.append(
                    Case(
                        rows,
                        ties,
                        detections,
                        official_cmd,
                        ours_cmd,
                        result,
                        folder / f"{name}_official.txt",
                    )
                )

        print(
            f"ground truth: {gt_rows} rows, {NUM_VIDEOS} videos x {KEYFRAMES} keyframes; "
            f"label map {LABELMAP.name} ({len(data.class_ids)} classes); official runs "
            f"{args.repeats} per file, {args.jobs} at a time; ours in rounds meanwhile; "
            "medians; CPU = user + system seconds of the process alone"
        )
        print()
        print(
            "|      rows | ties | official wall s | ours wall s | wall ratio "
            "| official CPU s | ours CPU s | CPU ratio | max AP diff | ours runs |"
        )
        print("|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
        # Official runs in worker threads (each waits on its child process); ours run in
        # rounds over the files whose official runs are not finished, so both see the same
        # machine load. A file's row is printed as soon as its official runs are done.
        pool = ThreadPoolExecutor(max_workers=max(1, args.jobs))
        pending = {pool.submit(_run_official, case, args.repeats): case for case in cases}
        while pending:
            for case in pending.values():
                case.ours.append(_run(case.ours_cmd, folder / "ours_stdout.txt"))
            for future in [f for f, case in pending.items() if f.done()]:
                case = pending.pop(future)
                if len(case.ours) < args.repeats:
                    pending[future] = case  # another round first
                    continue
                future.result()
                _print_row(case)
            if pending and all(len(c.ours) >= args.repeats for c in pending.values()):
                wait(pending, timeout=30.0)  # a round every 30 s at most while officials run
        pool.shutdown()


def _print_row(case: Case) -> None:
    official = official_per_class(case.official_out.read_text())
    ours = json.loads(case.ours_json.read_text())["per_class"]
    if ours.keys() != official.keys():
        raise SystemExit(
            f"classes differ: ours only {sorted(ours.keys() - official.keys())}, "
            f"official only {sorted(official.keys() - ours.keys())}"
        )
    worst = max(abs(ours[n] - official[n]) for n in official)
    ow = statistics.median(t.wall for t in case.official)
    uw = statistics.median(t.wall for t in case.ours)
    oc = statistics.median(t.cpu for t in case.official)
    uc = statistics.median(t.cpu for t in case.ours)
    print(
        f"| {case.rows:>9,} | {'yes' if case.ties else 'no':^4} | {ow:15.1f} | "
        f"{uw:11.2f} | {ow / uw:9.0f}x | {oc:14.1f} | {uc:10.2f} | {oc / uc:8.0f}x | "
        f"{worst:11.1e} | {len(case.ours):9d} |",
        flush=True,
    )


if __name__ == "__main__":
    main()
