"""Our video backend against the JPEGs PySlowFast's weights saw (ffmpeg -r 30 -q:v 1, OpenCV).

Re-encodes real video (data/demo/vtest_walking_6s.mp4 and, if present, ../shared/media/vtest.avi)
with the ffmpeg command-line tool into short clips at 23.976, 24, 25, 29.97, 30, 50 and 60 fps,
SD (640x480) and HD (1280x720), tagged BT.601 or BT.709, limited or full range, plus a variable
frame rate clip, a clip whose timestamps start at 0.37 s and one whose video starts 0.35 s after
its audio. A light temporal noise (ffmpeg's noise filter) makes every source frame unique, so a
frame can only match the frame it came from. For each clip, ffmpeg extracts frames as PySlowFast
did, and also writes the full-range Y'CbCr samples it hands to the JPEG encoder.

Columns: same-source-frame % = share of the extracted frames whose source frame (and samples)
our reader reproduces exactly, new rules (frame_rule="ffmpeg") and old (frame_rule="nearest");
mean |diff| = mean absolute RGB difference to the JPEGs as OpenCV reads them, new (ffmpeg
frames, color="jpeg_bt601") and old (nearest frames, color="stream"), and the floor: the same
for ffmpeg's own samples converted exactly, i.e. JPEG quantization alone. Needs ffmpeg on PATH;
writes only to a temporary folder.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ffmpeg_reference import extract_at_30fps, reference_frames, run_ffmpeg  # noqa: E402

from detection.data.video import VideoReader, iter_layout_frames  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {
    "walking": ROOT / "data" / "demo" / "vtest_walking_6s.mp4",
    "vtest": ROOT.parent / "shared" / "media" / "vtest.avi",
}
SIZES = {"SD": "640:480", "HD": "1280:720"}
MATRICES = {"bt601": "bt470bg", "bt709": "bt709"}
RATES = {"23.976": "24000/1001", "24": "24", "25": "25", "29.97": "30000/1001", "30": "30",
         "50": "50", "60": "60"}  # fmt: skip
# (fps, size, tag, range): the frame-rate sweep in HD BT.709 limited (AVA's typical case), then
# the colour variants.
CASES = [(fps, "HD", "bt709", "limited") for fps in RATES] + [
    ("25", "SD", "bt601", "limited"),
    ("29.97", "SD", "bt601", "limited"),
    ("30", "SD", "bt709", "full"),
    ("25", "HD", "bt709", "full"),
    ("30", "SD", "bt601", "full"),
]


def make_clip(source: Path, out: Path, fps: str, size: str, tag: str, rng: str, seconds: float):
    vf = f"fps={RATES[fps]},scale={SIZES[size]}:out_range={rng},noise=alls=4:allf=t,format=yuv420p"
    run_ffmpeg("-i", str(source), "-t", str(seconds), "-vf", vf, "-c:v", "libx264", "-crf", "18",
            "-colorspace", MATRICES[tag], "-color_range", "pc" if rng == "full" else "tv",
            str(out))  # fmt: skip


def special_clips(source: Path, tmp: Path, seconds: float) -> dict[str, Path]:
    base = tmp / "base.mp4"
    make_clip(source, base, "25", "SD", "bt601", "limited", seconds)
    vfr, start, late = tmp / "vfr.mp4", tmp / "start.mp4", tmp / "late.mkv"
    vf = "scale=640:480,noise=alls=4:allf=t,setpts='(N/20+0.03*random(0))/TB',format=yuv420p"
    run_ffmpeg("-i", str(source), "-t", str(seconds), "-vf", vf, "-fps_mode", "passthrough",
            "-video_track_timescale", "90000", "-c:v", "libx264", "-bf", "0", str(vfr))  # fmt: skip
    run_ffmpeg("-i", str(base), "-c", "copy", "-output_ts_offset", "0.3713", str(start))
    run_ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"sine=d={seconds}",
        "-itsoffset",
        "0.3537",
        "-i",
        str(base),
        "-map",
        "1:v",
        "-map",
        "0:a",
        "-c:v",
        "copy",
        "-c:a",
        "libvorbis",
        str(late),
    )
    return {"vfr ~20": vfr, "25 start 0.37 s": start, "25 video 0.35 s late": late}


def compare(
    video: Path, out: Path, seconds: float
) -> tuple[float, float, float, float, float, int]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    raws = extract_at_30fps(video, out)
    with VideoReader(video) as reader:
        ours = [image for _, image in iter_layout_frames(reader)]
    times = np.arange(len(raws)) / 30
    with VideoReader(video, frame_rule="nearest") as reader:
        # The old rule counts time from the video's own start, which lasts `seconds`.
        old_times = np.minimum(times, seconds - 1 / reader.fps)
        old_frames = reader.read_at_times(old_times)
    with VideoReader(video, frame_rule="nearest", color="stream") as reader:
        old = reader.read_at_times(old_times)
    same_new = same_old = 0
    diff_new, diff_old, floor = [], [], []
    for i, (expected, jpeg_u8) in enumerate(reference_frames(raws, ours[0].shape[1])):
        jpeg = jpeg_u8.astype(np.int16)
        if i < len(ours):
            same_new += np.array_equal(ours[i], expected)
            diff_new.append(np.abs(ours[i] - jpeg).mean())
        same_old += np.array_equal(old_frames[i], expected)
        diff_old.append(np.abs(old[i] - jpeg).mean())
        floor.append(np.abs(expected - jpeg).mean())
    n = len(raws)
    return (100 * same_new / n, 100 * same_old / n, float(np.mean(diff_new)),
            float(np.mean(diff_old)), float(np.mean(floor)), n - len(ours))  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="clip length (default 2)")
    args = parser.parse_args(argv)
    if shutil.which("ffmpeg") is None:
        sys.exit("error: this benchmark needs the ffmpeg command-line tool")
    header = (
        f"{'video':8} {'fps':>22} {'size':4} {'tag':5} {'range':7} {'frames':>6} "
        f"{'same new %':>10} {'same old %':>10} {'|d| new':>7} {'|d| old':>7} {'floor':>6}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name, source in SOURCES.items():
            if not source.is_file():
                continue
            clips = {}
            for fps, size, tag, rng in CASES:
                clip = tmp / f"{name}_{fps}_{size}_{tag}_{rng}.mp4"
                make_clip(source, clip, fps, size, tag, rng, args.seconds)
                clips[(fps, size, tag, rng)] = clip
            for label, clip in special_clips(source, tmp, args.seconds).items():
                clips[(label, "SD", "bt601", "limited")] = clip
            for (fps, size, tag, rng), clip in clips.items():
                new, old, d_new, d_old, floor, missing = compare(clip, tmp / "out", args.seconds)
                note = f"  ({missing} frames short)" if missing else ""
                with VideoReader(clip) as reader:
                    count = reader.num_layout_frames
                print(
                    f"{name:8} {fps:>22} {size:4} {tag:5} {rng:7} {count:6d} {new:10.1f} "
                    f"{old:10.1f} {d_new:7.3f} {d_old:7.3f} {floor:6.3f}{note}"
                )


if __name__ == "__main__":
    main()
