"""ffmpeg's ``-r 30`` frame choice and the JPEG colours PySlowFast's weights saw, reproduced by
`VideoReader` (frame_rule="ffmpeg", color="jpeg_bt601"); the ffmpeg-marked tests compare with the
real command-line tool on short clips re-encoded from the bundled real video."""

import shutil
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from ffmpeg_reference import extract_at_30fps, reference_frames, run_ffmpeg

from detection.data.video import (
    VideoReader,
    ffmpeg_cfr_frames,
    ffmpeg_durations,
    ffmpeg_positions,
    iter_layout_frames,
    jpeg_rgb,
)

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "vtest_walking_6s.mp4"
FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(
    FFMPEG is None, reason="the ffmpeg command-line tool is not installed"
)


def _ticks(fps: Fraction, count: int, start_s: float = 0.0) -> tuple[list[float], list[float]]:
    """Positions and durations (in 30 fps ticks) of `count` frames of a `fps` stream in a
    1/90000 time base starting at `start_s`."""
    tb = Fraction(1, 90000)
    pts = [round((start_s + Fraction(k) / fps) / tb) for k in range(count)]
    durations = ffmpeg_durations([round(1 / fps / tb)] * count, tb, Fraction(30), fps)
    return ffmpeg_positions(pts, tb, 0, Fraction(30)), durations


def test_cfr_rule_upsamples_25fps_by_repeating_every_fifth_frame_and_keeps_30fps():
    chosen = ffmpeg_cfr_frames(*_ticks(Fraction(25), 50), single_stream=True)
    assert len(chosen) == 60
    assert np.all(np.diff(chosen) >= 0) and set(chosen.tolist()) == set(range(50))
    repeated = [k for k in range(50) if np.count_nonzero(chosen == k) == 2]
    assert np.all(np.diff(repeated) == 5)
    same = ffmpeg_cfr_frames(*_ticks(Fraction(30), 40), single_stream=True)
    np.testing.assert_array_equal(same, np.arange(40))


def test_cfr_rule_drops_half_of_60fps_but_lets_59_94fps_frames_last_a_tick():
    # 60 fps packets last exactly half a tick, which ffmpeg rounds to 0 (half to even) and
    # replaces by 30/60; 59.94 fps packets round to a whole tick and lag behind instead.
    sixty = ffmpeg_cfr_frames(*_ticks(Fraction(60), 120), single_stream=True)
    ntsc = ffmpeg_cfr_frames(*_ticks(Fraction(60000, 1001), 120), single_stream=True)
    assert len(sixty) in (60, 61, 62) and len(ntsc) in (60, 61, 62)
    assert not np.array_equal(sixty[:60], ntsc[:60])


def test_late_start_repeats_the_first_frame_unless_the_video_is_the_only_stream():
    positions, durations = _ticks(Fraction(30), 10, start_s=0.1)  # 3 ticks after the file start
    with_audio = ffmpeg_cfr_frames(positions, durations, single_stream=False)
    alone = ffmpeg_cfr_frames(positions, durations, single_stream=True)
    assert with_audio[:4].tolist() == [0, 0, 0, 0] and len(with_audio) == 13
    np.testing.assert_array_equal(alone, np.arange(10))


def test_jpeg_colours_match_opencv_reading_a_jpeg_of_the_frame(tmp_path):
    """A frame written as JPEG (yuvj420p, near-lossless) and read by OpenCV equals `jpeg_rgb` of
    the same samples up to the JPEG codecs' own rounding; swscale's BT.709 conversion does not."""
    with av.open(str(DEMO)) as container:
        frame = next(container.decode(video=0))
    full = frame.reformat(format="yuvj420p", src_color_range=1, dst_color_range=2)
    path = tmp_path / "frame.jpg"
    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream("mjpeg", rate=1)
        stream.width, stream.height, stream.pix_fmt = frame.width, frame.height, "yuvj420p"
        # ffmpeg's -q:v 1: fixed quantizer scale 1 (global_quality is in lambda units, 118).
        stream.codec_context.qscale = True
        stream.codec_context.global_quality = 118
        stream.codec_context.qmin = stream.codec_context.qmax = 1
        for packet in [*stream.encode(full), *stream.encode()]:
            out.mux(packet)
    with av.open(str(path)) as container:
        decoded = next(container.decode(video=0))
    opencv = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(int)
    ours = np.abs(jpeg_rgb(decoded).astype(int) - opencv).mean()
    bt709 = decoded.reformat(format="rgb24", src_colorspace="ITU709", src_color_range=2)
    assert ours < 0.25
    assert np.abs(bt709.to_ndarray().astype(int) - opencv).mean() > 4 * ours


def _clip(out: Path, fps: str, matrix: str, full: bool, extra: tuple[str, ...] = ()) -> Path:
    """0.8 s of the demo clip at `fps`, 96x72, with per-frame noise so that every frame differs."""
    vf = (
        f"fps={fps},scale=96:72:out_range={'full' if full else 'limited'},"
        "noise=alls=12:allf=t,format=yuv420p"
    )
    run_ffmpeg(
        "-i",
        str(DEMO),
        "-t",
        "0.8",
        "-vf",
        vf,
        "-c:v",
        "libx264",
        "-crf",
        "20",
        "-g",
        "8",
        "-colorspace",
        matrix,
        "-color_range",
        "pc" if full else "tv",
        *extra,
        str(out),
    )
    return out


def _derived(tmp: Path, name: str, make) -> Path:
    out = tmp / name
    make(out)
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("clips")
    c = {
        "25 bt601 limited": _clip(tmp / "a.mp4", "25", "bt470bg", False),
        "29.97 bt709 full": _clip(tmp / "b.mp4", "30000/1001", "bt709", True),
        "50 bt709 limited": _clip(tmp / "c.mp4", "50", "bt709", False),
        "60 bt601 limited": _clip(tmp / "d.mp4", "60", "bt470bg", False),
        "23.976 bt709 limited": _clip(tmp / "e.mp4", "24000/1001", "bt709", False),
    }
    vf = "scale=96:72,noise=alls=12:allf=t,setpts='(N/20+0.03*random(0))/TB',format=yuv420p"
    c["vfr"] = _derived(
        tmp,
        "vfr.mp4",
        lambda out: run_ffmpeg(
            "-i",
            str(DEMO),
            "-t",
            "0.8",
            "-vf",
            vf,
            "-fps_mode",
            "passthrough",
            "-video_track_timescale",
            "90000",
            "-c:v",
            "libx264",
            "-bf",
            "0",
            str(out),
        ),
    )
    c["start 0.37 s"] = _derived(
        tmp,
        "start.mp4",
        lambda out: run_ffmpeg(
            "-i", str(c["25 bt601 limited"]), "-c", "copy", "-output_ts_offset", "0.3713", str(out)
        ),
    )
    c["video 0.35 s after audio"] = _derived(
        tmp,
        "late.mkv",
        lambda out: run_ffmpeg(
            "-f",
            "lavfi",
            "-i",
            "sine=d=1.5",
            "-itsoffset",
            "0.3537",
            "-i",
            str(c["25 bt601 limited"]),
            "-map",
            "1:v",
            "-map",
            "0:a",
            "-c:v",
            "copy",
            "-c:a",
            "libvorbis",
            str(out),
        ),
    )
    return c


CASES = [
    "25 bt601 limited",
    "29.97 bt709 full",
    "50 bt709 limited",
    "60 bt601 limited",
    "23.976 bt709 limited",
    "vfr",
    "start 0.37 s",
    "video 0.35 s after audio",
]


@pytest.mark.ffmpeg
@needs_ffmpeg
@pytest.mark.parametrize("case", CASES)
def test_frames_equal_ffmpeg_extraction_read_as_jpeg(clips, case, tmp_path):
    """Every frame of ``ffmpeg -r 30`` is the same source frame with the same full-range samples
    (compared exactly through ffmpeg's own yuvj420p output), and its JPEG differs from ours by
    JPEG's quantization only, less than the stream-matrix conversion does."""
    video = clips[case]
    raws = extract_at_30fps(video, tmp_path)
    with VideoReader(video) as reader:
        ours = [image for _, image in iter_layout_frames(reader)]
    assert len(ours) == len(raws)
    with VideoReader(video, frame_rule="nearest", color="stream") as reader:
        # The old rule counts time from the video's own start; the clips' frames span 0.8 s.
        old = reader.read_at_times(np.minimum(np.arange(len(raws)) / 30, 0.75))
    ours_diff, old_diff = [], []
    for i, (expected, jpeg) in enumerate(reference_frames(raws, ours[0].shape[1])):
        np.testing.assert_array_equal(ours[i], expected, err_msg=f"{case}: frame {i + 1}")
        ours_diff.append(np.abs(ours[i].astype(int) - jpeg).mean())
        old_diff.append(np.abs(old[i].astype(int) - jpeg).mean())
    assert np.mean(ours_diff) < np.mean(old_diff)


def _write_video(path: Path, fps: int, count: int) -> None:
    """A lossless H.264 video whose frame k is solid gray 20 + 9 k with a bright corner."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"crf": "0"}
        for k in range(count):
            image = np.full((48, 64, 3), 20 + 9 * k, dtype=np.uint8)
            image[:8, :8] = 250
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


@pytest.fixture
def video_root(tmp_path) -> Path:
    (tmp_path / "videos").mkdir()
    _write_video(tmp_path / "videos" / "vid_a.mp4", fps=25, count=20)
    _write_video(tmp_path / "videos" / "vid_b.mp4", fps=30, count=10)
    (tmp_path / "val_ids.txt").write_text("vid_b\n")
    return tmp_path


def test_extract_frames_writes_pyslowfast_layout_and_frame_lists(video_root):
    from detection.apps.extract_frames import main
    from detection.data.annotations import read_frame_lists

    main(["--output", str(video_root), "--val-ids", str(video_root / "val_ids.txt"),
          "--workers", "2", "--quality", "100"])  # fmt: skip
    lists = video_root / "frame_lists"
    train = read_frame_lists([lists / "train.csv"], video_root / "frames")
    val = read_frame_lists([lists / "val.csv"], video_root / "frames")
    assert set(train) == {"vid_a"} and set(val) == {"vid_b"}
    for video_id, paths in [*train.items(), *val.items()]:
        with VideoReader(video_root / "videos" / f"{video_id}.mp4") as reader:
            assert len(paths) == reader.num_layout_frames
            expected = reader.read_at_times(np.arange(len(paths)) / 30)
        assert paths[0].name == f"{video_id}_000001.jpg"
        assert sorted(p.name for p in paths[0].parent.iterdir()) == [p.name for p in paths]
        for path, want in zip(paths, expected, strict=True):
            image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            assert np.abs(image.astype(int) - want).mean() < 1.5, path


def test_extract_frames_skips_finished_videos_and_redoes_interrupted_ones(video_root):
    from detection.apps.extract_frames import main

    frames = video_root / "frames"
    (frames / "vid_b").mkdir(parents=True)
    (frames / "vid_b" / "vid_b_000001.jpg").write_bytes(b"kept")  # a finished video: skipped
    stale = frames / ".vid_a.partial-99999"
    stale.mkdir()
    (stale / "vid_a_000001.jpg").write_bytes(b"half")
    main(["--output", str(video_root), "--workers", "1"])
    assert (frames / "vid_b" / "vid_b_000001.jpg").read_bytes() == b"kept"
    assert not stale.exists()
    with VideoReader(video_root / "videos" / "vid_a.mp4") as reader:
        assert len(list((frames / "vid_a").glob("*.jpg"))) == reader.num_layout_frames
    rows = (video_root / "frame_lists" / "train.csv").read_text().splitlines()
    assert rows[1] == 'vid_a 0 0 vid_a/vid_a_000001.jpg ""'
    assert rows[-1] == 'vid_b 1 0 vid_b/vid_b_000001.jpg ""'


def test_extract_frames_reports_a_missing_video_folder_in_one_line(tmp_path, capsys):
    from detection.apps.extract_frames import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--output", str(tmp_path), "--videos", str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr().err.strip() == f"error: {tmp_path / 'nowhere'}: not a folder of videos"
    )
