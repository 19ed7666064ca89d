"""Clips per second: the video loader (PyAV) vs extracted JPEG frames, at the sizes AVA has.

For each size (default 160x120, 640x360 and 1280x720): an AVA-format set whose videos are the
bundled real clip (../shared/media/vtest.avi, 10 fps) re-encoded with libx264 at that size and
30 fps, light per-frame noise (film grain; without it the repeated frames would cost nothing
to decode), B-frames and one key frame every --gop frames (300: films' long GOPs), whose JPEG
frames are extracted from those videos by tools/extract_frames.py's library, and whose
annotations are the generated set's (detection/data/synthetic.py; boxes are normalized, so
any size fits them). Then, interleaved (each repetition measures every cell, video then
JPEG, so that load from other processes hits both alike), full passes of `build_loader` over
the test split (keyframes in order: the video loader's sliding window) and the train split
(shuffled, augmented: random access) at 0 and 2 workers. Clips are AVA's 32 frames at rate
2 (SLOWFAST_32x2), test short side 256, train crops 224 from short sides 256-320.

The loaders are measured as `build_loader` makes them: the video loader's decoder gets the
cores its process may use (all of them with 0 workers, one each with 2 workers on 2 cores;
`detection.data.dataset`), the JPEG loader reads with one thread per process. Every batch is
made the model's CPU inputs as test_net makes them (`InputStager`: test batches carry uint8
frames, normalized in the main process into reused tensors), so that clips/s counts all the
work between the files and the model, wherever it is done.

A second table times random access alone on the largest size's first video (the cost of one
training clip): seek to the key frame before the clip and decode forward, with the reader
(which skips non-reference frames it does not return: the run-up's and the B-frames between
a stride-2 clip's frames) on 1 and 2 threads, with plain PyAV on one thread (no skipping) and
with its frame/slice threads, and torchcodec when it is importable; "same" says whether its
frames equal the reader's (torchcodec converts to RGB itself: it is compared with the reader's
``color="stream"`` frames, the JPEG colours need the YUV planes).

Prints the tables (the loader table after every repetition, so a long run shows figures
early); nothing is written except the sets, in a temporary folder or, with --keep DIR, in DIR,
where a later run finds and reuses them (one folder per size and set options). Making the sets
takes minutes (about 3 at 640x360 and 18 at 1280x720 on 2 busy cores); each repetition of the
loader table at those two sizes about 5 more. The default set's videos are short (24 s, about
20 test keyframes each), so the cost of starting each video (reading its packet times, the
first whole clip) weighs more than in AVA's 15-minute cuts (897 keyframes each); --num-videos 2
--seconds 60 is closer:

    .venv/bin/python benchmarks/data_loading.py --sizes 640x360 1280x720 --keep DIR --repeats 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detection.config import get_cfg  # noqa: E402
from detection.data.dataset import build_loader  # noqa: E402
from detection.data.extract import extract_videos, write_frame_list  # noqa: E402
from detection.data.sampling import clip_frame_indices  # noqa: E402
from detection.data.synthetic import generate_synthetic_ava  # noqa: E402
from detection.data.video import VideoReader, jpeg_rgb  # noqa: E402
from detection.engine.precision import InputStager  # noqa: E402

VTEST = Path(__file__).resolve().parents[2] / "shared" / "media" / "vtest.avi"
_REFERENCE_ROW = "reader (PyAV, 1 thread, skips NONREF)"


def _encode(
    source: Path, output: Path, size: tuple[int, int], start_s: float, seconds: int, gop: int
):
    """`seconds` s of `source` from `start_s` (wrapping around), each frame shown 3 times at
    30 fps with fresh noise, H.264 (crf 20, 3 B-frames), one key frame every `gop` frames."""
    rng = np.random.default_rng(int(start_s))
    grain = rng.normal(0, 2.0, (7, size[1], size[0], 3)).astype(np.int16)
    with av.open(str(source)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    first = int(start_s * 10)
    with av.open(str(output), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"crf": "20", "bf": "3", "sc_threshold": "0", "preset": "fast"}
        for k in range(seconds * 30):
            image = frames[(first + k // 3) % len(frames)]
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(
                width=size[0], height=size[1]
            )
            rgb = frame.to_ndarray(format="rgb24").astype(np.int16)
            rgb += grain[k % len(grain)]
            noisy = av.VideoFrame.from_ndarray(np.clip(rgb, 0, 255).astype(np.uint8), "rgb24")
            out.mux(stream.encode(noisy))
        out.mux(stream.encode())


def _make_set(root: Path, size: tuple[int, int], args) -> Path:
    info = generate_synthetic_ava(
        root, num_videos=args.num_videos, num_val=args.num_videos // 2, seconds=args.seconds,
        seed=0, progress=False,
    )  # fmt: skip
    videos = sorted((root / "videos").glob("*.mp4"))
    for i, video in enumerate(videos):
        _encode(VTEST, video, size, start_s=17.0 * i, seconds=args.seconds, gop=args.gop)
    counts = {
        r.video_id: r.num_frames
        for r in extract_videos(videos, root / "frames", workers=min(2, os.cpu_count() or 1))
    }
    write_frame_list(root / "frame_lists" / "train.csv", info.train_videos, counts)
    write_frame_list(root / "frame_lists" / "val.csv", info.val_videos, counts)
    return root


def _set_name(size: tuple[int, int], args, parser: argparse.ArgumentParser) -> str:
    """The set's folder: the size, plus the set's options where they differ from the defaults
    (so that --keep never reuses a set made with other options)."""
    name = f"{size[0]}x{size[1]}"
    options = ("num_videos", "seconds", "gop")
    if any(getattr(args, o) != parser.get_default(o) for o in options):
        name += f"_{args.num_videos}x{args.seconds}s_gop{args.gop}"
    return name


def _config(data_dir: Path, backend: str, workers: int, args):
    cfg = get_cfg()
    cfg.DATA.PATH_TO_DATA_DIR = str(data_dir)
    cfg.DATA.DECODING_BACKEND = backend
    cfg.DATA_LOADER.NUM_WORKERS = workers
    cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE, cfg.SLOWFAST.ALPHA = args.frames, args.rate, 4
    cfg.DATA.TRAIN_JITTER_SCALES = [args.crop * 8 // 7, args.crop * 10 // 7]
    cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TEST_CROP_SIZE = args.crop, args.crop * 8 // 7
    cfg.MODEL.NUM_CLASSES = 5
    cfg.TRAIN.BATCH_SIZE = cfg.TEST.BATCH_SIZE = args.batch
    return cfg


def _clips_per_second(cfg, split: str) -> float:
    """Clips/s delivered as model inputs on the CPU (each batch staged as `test_net` stages
    it) over one pass, timed from its first batch on: starting worker processes and opening
    files is paid once per run, not per clip."""
    batches = iter(build_loader(cfg, split))
    stage = InputStager(torch.device("cpu"))
    stage(next(batches))
    clips, start = 0, time.perf_counter()
    for batch in batches:
        stage(batch)
        clips += len(batch["orig_sizes"])
    return clips / (time.perf_counter() - start)


def _random_clips(video: Path, count: int, args) -> list[np.ndarray]:
    with VideoReader(video) as reader:
        total = reader.num_layout_frames
    rng = np.random.default_rng(0)
    centers = rng.integers(0, total, count)
    return [clip_frame_indices(int(c), args.frames, args.rate, total) for c in centers]


def _pyav_clip(video: Path, indices: np.ndarray, table: np.ndarray, thread_type: str | None):
    """One clip by a fresh seek with plain PyAV (no run-up skipping): JPEG-colour frames."""
    wanted = {float(t) for t in table[indices]}
    got: dict[float, np.ndarray] = {}
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        if thread_type is None:
            stream.codec_context.thread_count = 1
        else:
            stream.thread_type, stream.codec_context.thread_count = thread_type, 2
        base, start = stream.time_base, stream.start_time or 0
        container.seek(start + int(min(wanted) / base), stream=stream, backward=True)
        for frame in container.decode(stream):
            t = float((frame.pts - start) * base)
            if any(abs(t - w) < 1e-6 for w in wanted):
                got[min(wanted, key=lambda w: abs(w - t))] = jpeg_rgb(frame)
            if t >= max(wanted) - 1e-6:
                break
    return np.stack([got[float(t)] for t in table[indices]])


def _access_table(video: Path, args) -> list[tuple[str, float, str]]:
    """Per decoder: mean over the clips of each clip's fastest read (the decoders take turns
    clip by clip, so that load from other processes hits them alike); whether its frames are
    the reader's."""
    clips = _random_clips(video, args.access_clips, args)
    with VideoReader(video) as reader:
        table = reader.layout_frame_times()

    def reader_clip(indices, color="jpeg_bt601", threads=1):
        with VideoReader(video, color=color, keep_frames=False, threads=threads) as reader:
            return reader.read_at_times(indices / 30.0)

    try:
        from torchcodec.decoders import VideoDecoder
    except (ImportError, RuntimeError, OSError) as e:
        print(f"torchcodec not measured: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
        VideoDecoder = None  # noqa: N806

    def torchcodec_clip(indices):
        decoder = VideoDecoder(str(video), seek_mode="exact", num_ffmpeg_threads=1)
        batch = decoder.get_frames_played_at((table[indices] + 1e-4).tolist())
        return batch.data.permute(0, 2, 3, 1).numpy()

    decoders = {
        _REFERENCE_ROW: reader_clip,
        "reader, 2 threads": lambda c: reader_clip(c, threads=2),
        "PyAV, 1 thread, full run-up": lambda c: _pyav_clip(video, c, table, None),
        "PyAV, 2 threads FRAME": lambda c: _pyav_clip(video, c, table, "FRAME"),
        "PyAV, 2 threads SLICE": lambda c: _pyav_clip(video, c, table, "SLICE"),
    }
    if VideoDecoder is not None:
        decoders["torchcodec (1 thread)"] = torchcodec_clip
    reference = [reader_clip(c) for c in clips]
    # torchcodec converts to RGB with FFmpeg: compared with the reader's "stream" colours.
    stream_colours = [reader_clip(c, "stream") for c in clips] if VideoDecoder else []
    expected = {n: stream_colours if "torchcodec" in n else reference for n in decoders}
    fastest = {name: np.full(len(clips), np.inf) for name in decoders}
    same = dict.fromkeys(decoders, True)
    for _ in range(args.repeats):
        for k, clip in enumerate(clips):
            for name, read in decoders.items():
                start = time.perf_counter()
                frames = read(clip)
                fastest[name][k] = min(fastest[name][k], time.perf_counter() - start)
                same[name] &= bool(np.array_equal(frames, expected[name][k]))
    return [(name, float(fastest[name].mean()), "yes" if same[name] else "NO") for name in decoders]


def _print_table(cells, best, args, repeats_done: int) -> None:
    print(
        f"\nvtest.avi re-encoded (30 fps, GOP {args.gop}, B-frames), {args.num_videos} videos x "
        f"{args.seconds} s, {args.frames}x{args.rate} clips, batch {args.batch}, best of "
        f"{repeats_done} interleaved passes, {os.cpu_count()} CPU cores"
    )
    print(
        f"{'size':>9} {'split':<6} {'workers':>7} {'video clips/s':>14} {'JPEG clips/s':>13} "
        f"{'video/JPEG':>11}"
    )
    for cell in cells:
        (w, h), split, workers = cell
        video, frames = best[(cell, "video")], best[(cell, "frames")]
        print(
            f"{f'{w}x{h}':>9} {split:<6} {workers:>7} {video:>14.2f} {frames:>13.2f} "
            f"{video / frames:>10.2f}x",
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", default=["160x120", "640x360", "1280x720"])
    parser.add_argument("--num-videos", type=int, default=4, help="half train, half val")
    parser.add_argument("--seconds", type=int, default=24, help="length of each video")
    parser.add_argument("--gop", type=int, default=300, help="frames between key frames")
    parser.add_argument("--frames", type=int, default=32, help="DATA.NUM_FRAMES")
    parser.add_argument("--rate", type=int, default=2, help="DATA.SAMPLING_RATE")
    parser.add_argument("--crop", type=int, default=224, help="train crop (test: x 8/7)")
    parser.add_argument("--batch", type=int, default=8, help="train and test batch size")
    parser.add_argument("--repeats", type=int, default=2, help="measurements per cell; best kept")
    parser.add_argument(
        "--access-clips", type=int, default=12, help="clips per access row (0: no access table)"
    )
    parser.add_argument("--keep", type=Path, default=None, help="make or reuse the sets here")
    args = parser.parse_args(argv)
    # The loader is measured alone: torch's intra-op threads would only contend with workers.
    torch.set_num_threads(1)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    cells = [(s, split, w) for s in sizes for split in ("test", "train") for w in (0, 2)]
    best = {(cell, backend): 0.0 for cell in cells for backend in ("video", "frames")}
    with tempfile.TemporaryDirectory() as tmp:
        roots = {}
        for size in sizes:
            start = time.perf_counter()
            root = (args.keep or Path(tmp)) / _set_name(size, args, parser)
            if not (root / "frame_lists" / "val.csv").is_file():
                _make_set(root, size, args)
            roots[size] = root
            print(f"{size[0]}x{size[1]}: set ready in {time.perf_counter() - start:.0f} s")
        if args.access_clips:
            access = _access_table(sorted((roots[sizes[-1]] / "videos").glob("*.mp4"))[0], args)
            _print_access(access, sizes[-1], args)
        for repeat in range(args.repeats):
            for cell in cells:
                size, split, workers = cell
                for backend in ("video", "frames"):
                    rate = _clips_per_second(_config(roots[size], backend, workers, args), split)
                    best[(cell, backend)] = max(best[(cell, backend)], rate)
            _print_table(cells, best, args, repeat + 1)


def _print_access(access, size, args) -> None:
    w, h = size
    print(f"\nrandom access at {w}x{h}: one {args.frames}x{args.rate} clip by a fresh seek")
    print(f"{'decoder':<42} {'ms/clip':>8} {'same frames':>12}")
    for name, seconds, same in access:
        print(f"{name:<42} {seconds * 1e3:>8.0f} {same:>12}", flush=True)


if __name__ == "__main__":
    main()
