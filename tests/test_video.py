import hashlib
import itertools
import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from detection.data.sampling import clip_frame_indices, clip_times
from detection.data.video import (
    VideoReader,
    VideoReadError,
    find_video,
    jpeg_rgb,
    read_frame_files,
)


@pytest.fixture(scope="module")
def vtest(shared_dir) -> Path:
    return shared_dir / "media" / "vtest.avi"


def _digest(image: np.ndarray) -> str:
    return hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest()


@pytest.fixture(scope="module")
def vtest_frames(vtest) -> list[str]:
    """Digests of every frame of vtest.avi decoded front to back (the reference for seeking;
    digests rather than the 1 GB of pixels)."""
    with VideoReader(vtest) as reader:
        return [_digest(image) for image, _ in reader.iter_frames()]


def _write_gray_video(
    path: Path, pts_ms: list[int], size=(64, 48), rotation: int | None = None
) -> None:
    """An H.264 mp4 whose frame k is solid gray 20 + 10 k, shown at pts_ms[k] milliseconds."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        # Millisecond pts: the encoder's time base must be set too, or pts are read in 1/30 s.
        stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        stream.options = {"crf": "0"}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for k, pts in enumerate(pts_ms):
            image = np.full((size[1], size[0], 3), 20 + 10 * k, dtype=np.uint8)
            if rotation is not None:
                image[:8, :8] = 255  # a marker in the stored top-left corner
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = pts
            frame.time_base = Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def _gray_index(frame: np.ndarray) -> int:
    return int(round((float(frame[..., 1].mean()) - 20) / 10))


def test_vtest_properties(vtest, vtest_frames):
    with VideoReader(vtest) as reader:
        assert reader.fps == pytest.approx(10.0)
        assert reader.duration == pytest.approx(79.5)
        assert reader.size == (768, 576)
        assert reader.num_frames_at(30) == 2385
    assert len(vtest_frames) == 795


def test_vtest_30fps_grid_maps_to_nearest_10fps_frame_after_seeking(vtest, vtest_frames):
    # A clip around 40 s forces a seek into the middle of an MS-MPEG4 AVI.
    times = clip_times(40.0, num_frames=8, sampling_rate=4, fps=30)
    grid = np.round(times * 30).astype(int)
    with VideoReader(vtest, frame_rule="nearest") as reader:
        clip = reader.read_at_times(times)
    # Grid frame i (time i/30) is nearest to 10 fps frame round(i / 3); no ties on this grid.
    for i, image in zip(grid, clip, strict=True):
        assert _digest(image) == vtest_frames[int(round(i / 3))]
    # Sampling faster than the video repeats frames, as it should.
    with VideoReader(vtest, frame_rule="nearest") as reader:
        dense = reader.read_at_times(np.arange(1200, 1206) / 30)
    for got, want in zip(dense, [400, 400, 401, 401, 401, 402], strict=True):
        assert _digest(got) == vtest_frames[want]


def test_vtest_ties_go_to_the_earlier_frame_and_order_is_kept(vtest, vtest_frames):
    times = [60.05, 0.0, 60.05, 79.5, 120.0, 0.05]
    with VideoReader(vtest, frame_rule="nearest") as reader:
        got = reader.read_at_times(times)
    for image, want in zip(got, [600, 0, 600, 794, 794, 0], strict=True):
        assert _digest(image) == vtest_frames[want]


def test_ffmpeg_rule_writes_each_10fps_frame_three_times_from_its_own_tick(vtest, vtest_frames):
    """ffmpeg -r 30 places 10 fps frame k at output frames 3k, 3k+1, 3k+2 (its packet lasts 3
    ticks), where the nearest-time rule would already take frame k + 1 at 3k + 2."""
    grid = np.concatenate([np.arange(1200, 1206), clip_frame_indices(60, 8, 4, 2385)])
    with VideoReader(vtest) as reader:
        assert reader.num_layout_frames == 2385
        got = reader.read_at_times(grid / 30)
    for i, image in zip(grid, got, strict=True):
        assert _digest(image) == vtest_frames[i // 3]


def test_iter_frames_streams_a_time_range(vtest, vtest_frames):
    with VideoReader(vtest) as reader:
        pairs = list(reader.iter_frames(10.0, 11.0))
    assert [round(t, 3) for _, t in pairs] == [round(10 + k / 10, 3) for k in range(10)]
    assert pairs[3][0].shape == (576, 768, 3) and pairs[3][0].dtype == np.uint8
    assert _digest(pairs[3][0]) == vtest_frames[103]


def test_variable_frame_rate_uses_pts(tmp_path):
    pts = [0, 40, 50, 120, 300, 310, 400]  # ms; gaps from 10 to 180 ms
    path = tmp_path / "vfr.mp4"
    _write_gray_video(path, pts)
    wanted = [0.0, 0.021, 0.045, 0.046, 0.1, 0.2, 0.21, 0.305, 0.36, 1.0]
    # 0.045 is a tie between 40 and 50 ms: the earlier frame wins. 0.21 = tie of 120 and 300.
    expected = [0, 1, 1, 2, 3, 3, 3, 4, 6, 6]
    with VideoReader(path, frame_rule="nearest") as reader:
        got = reader.read_at_times(wanted)
    assert [_gray_index(f) for f in got] == expected


def test_rotation_metadata_is_applied(tmp_path):
    path = tmp_path / "rotated.mp4"
    _write_gray_video(path, [0, 33, 67], size=(64, 32), rotation=90)
    with VideoReader(path) as reader:
        assert reader.size == (32, 64)
        (image,) = reader.read_at_times([0.0])
    assert image.shape == (64, 32, 3)
    marker = np.argwhere(image[..., 0] > 200)
    # Turned 90 degrees counterclockwise for display, the stored top-left is the bottom-left.
    assert marker[:, 0].min() >= 56 and marker[:, 1].max() < 8


def test_missing_corrupt_and_truncated_videos_raise_naming_the_file(tmp_path, vtest):
    with pytest.raises(VideoReadError, match="nothere.mp4: video file not found"):
        VideoReader(tmp_path / "nothere.mp4")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoReadError, match="garbage.mp4: cannot open video"):
        VideoReader(garbage)
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(vtest.read_bytes()[:3_000_000])
    with VideoReader(truncated) as reader:
        assert reader.read_at_times([5.0]).shape == (1, 576, 768, 3)
        with pytest.raises(
            VideoReadError, match=r"truncated.avi: frames end at .*truncated or corrupt"
        ):
            reader.read_at_times([39.0, 40.0])


def test_find_video_accepts_several_containers(tmp_path):
    (tmp_path / "a.mkv").write_bytes(b"")
    assert find_video(tmp_path, "a") == tmp_path / "a.mkv"
    with pytest.raises(VideoReadError, match="no video for id 'b'"):
        find_video(tmp_path, "b")


def test_mp4_clip_equals_lossless_frame_layout(synthetic_ava, tmp_path):
    """Both backends give identical pixels for the same frames. The frame layout is written as
    PNG here (lossless) from a front-to-back decode, so equality is exact; the JPEG layout that
    the generator writes differs only by JPEG's loss."""
    from detection.data.synthetic import write_frame_layout

    vid = synthetic_ava.val_videos[0]
    video = synthetic_ava.root / "videos" / f"{vid}.mp4"
    count = write_frame_layout(video, tmp_path, vid, ext="png")
    assert count == synthetic_ava.seconds * 30
    for center in (60, 90, 120):  # keyframes 902, 903, 904
        indices = clip_frame_indices(center, num_frames=16, sampling_rate=2, num_video_frames=count)
        from_frames = read_frame_files([tmp_path / vid / f"{vid}_{i + 1:06d}.png" for i in indices])
        with VideoReader(video) as reader:
            from_video = reader.read_at_times(indices / 30.0)
        np.testing.assert_array_equal(from_video, from_frames)
    jpeg = read_frame_files(
        [synthetic_ava.root / "frames" / vid / f"{vid}_{i + 1:06d}.jpg" for i in indices]
    )
    assert np.abs(jpeg.astype(int) - from_video.astype(int)).mean() < 3.0


def test_read_frame_files_names_the_missing_or_broken_file(tmp_path):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.zeros((4, 4, 3), np.uint8))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(VideoReadError, match="missing.jpg: frame file not found"):
        read_frame_files([good, tmp_path / "missing.jpg"])
    with pytest.raises(VideoReadError, match="bad.jpg: frame file cannot be decoded"):
        read_frame_files([good, bad])


def test_consecutive_reads_continue_decoding_and_match_fresh_reads(vtest, vtest_frames):
    """Reads that move forward a little reuse the decoder; reads that jump back or far ahead
    seek. Every read must give the same frames as the front-to-back decode."""
    starts = [40.0, 41.0, 42.5, 41.2, 70.0, 70.1]
    with VideoReader(vtest, frame_rule="nearest") as reader:
        for start in starts:
            times = start + np.arange(8) / 15
            got = reader.read_at_times(times)
            for image, t in zip(got, times, strict=True):
                assert _digest(image) == vtest_frames[int(round(t * 10))]


def _write_noise_video(path: Path, fps: int, seconds: float, size=(96, 64), gop: int = 300) -> None:
    """An H.264 mp4 at `fps` whose frames are all different (noise over a moving ramp), with
    one key frame every `gop` frames and B-frames, as films are encoded."""
    rng = np.random.default_rng(fps)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"crf": "18", "bf": "3", "sc_threshold": "0"}
        ramp = np.linspace(0, 255, size[0])[None, :, None]
        for k in range(int(seconds * fps)):
            image = (ramp + 7 * k + rng.normal(0, 20, (size[1], size[0], 3))) % 256
            frame = av.VideoFrame.from_ndarray(image.astype(np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


@pytest.mark.parametrize("fps", [30, 25])
@pytest.mark.parametrize("frame_rule", ["ffmpeg", "nearest"])
def test_consecutive_keyframe_clips_decode_each_frame_once_and_equal_random_access(
    tmp_path, fps, frame_rule
):
    """Clips of consecutive keyframes (32 frames at rate 2, overlapping by half) read by one
    reader come from its sliding window: every source frame is decoded once, and each clip
    equals the clip a fresh reader seeks for."""
    path = tmp_path / f"gop300_{fps}.mp4"
    _write_noise_video(path, fps, seconds=5.0)
    num_source_frames = int(5.0 * fps)
    centers = list(range(15, 150, 15))  # every half second, clips 64 layout frames long
    with VideoReader(path, frame_rule=frame_rule) as reader:
        clips = [reader.read_at_times(clip_frame_indices(c, 32, 2, 150) / 30.0) for c in centers]
        assert reader.frames_decoded <= num_source_frames
    fresh_decodes = 0
    for center, clip in zip(centers, clips, strict=True):
        with VideoReader(path, frame_rule=frame_rule, keep_frames=False) as reader:
            expected = reader.read_at_times(clip_frame_indices(center, 32, 2, 150) / 30.0)
            fresh_decodes += reader.frames_decoded
        np.testing.assert_array_equal(clip, expected)
    assert fresh_decodes > 3 * num_source_frames  # each seek decodes from the one key frame


def test_reads_that_go_back_or_jump_past_a_key_frame_seek_and_stay_exact(tmp_path):
    path = tmp_path / "gop30.mp4"
    _write_noise_video(path, 30, seconds=4.0, gop=30)
    wanted = [np.arange(40, 56), np.arange(50, 66), np.arange(10, 20), np.arange(100, 104)]
    got = []
    with VideoReader(path) as reader:
        for w in wanted:
            before = reader.frames_decoded
            got.append(reader.read_at_times(w / 30.0))
            if len(got) == 2:  # 50-55 from the window, 56-65 decoded on
                assert reader.frames_decoded == before + 10
    with VideoReader(path) as reader:
        last = reader.read_at_times([115 / 30.0])
        # From the key frame at 90, the run-up's non-reference B-frames are not decoded.
        assert reader.frames_decoded < 115 - 90 + 1
    with VideoReader(path) as reader:
        everything = [image for image, _ in reader.iter_frames()]  # no seek, no skipping
    for w, clip in zip(wanted, got, strict=True):
        np.testing.assert_array_equal(clip, np.stack([everything[i] for i in w]))
    np.testing.assert_array_equal(last[0], everything[115])


@pytest.mark.parametrize(("threads", "convert_in_thread"), [(1, False), (3, False), (2, True)])
def test_clips_skip_unwanted_b_frames_and_equal_every_frame_decoded(
    tmp_path, threads, convert_in_thread
):
    """Stride-2 clips read without a window, or with the next clip's times, decode fewer
    frames than they span (non-reference B-frames between their frames are skipped), with any
    number of decoder threads, colours converted on this thread or the colour thread, into a
    given buffer; every frame equals the front-to-back decode. A read that wants a frame the
    previous read skipped seeks for it."""
    path = tmp_path / "gop300.mp4"
    _write_noise_video(path, 30, seconds=4.0)
    with VideoReader(path) as reader:
        everything = np.stack([image for image, _ in reader.iter_frames()])
    clips = [clip_frame_indices(c, 32, 2, 120) for c in (32, 62, 92)]
    options = {"threads": threads, "convert_in_thread": convert_in_thread}
    with VideoReader(path, **options) as plain:  # keeps a window: only the run-up skips
        plain.read_at_times(clips[0] / 30.0)
    with VideoReader(path, keep_frames=False, **options) as reader:
        buffer = np.zeros((32, 64, 96, 3), np.uint8)
        got = reader.read_at_times(clips[0] / 30.0, out=buffer)
        assert got is buffer
        np.testing.assert_array_equal(got, everything[clips[0]])
        assert reader.frames_decoded < plain.frames_decoded
    with VideoReader(path, **options) as reader:
        for k, clip in enumerate(clips):
            following = clips[k + 1] / 30.0 if k + 1 < len(clips) else None
            got = reader.read_at_times(clip / 30.0, next_times_s=following)
            np.testing.assert_array_equal(got, everything[clip])
        # Consecutive clips came from the window and its decoder: no seek back to frame 0.
        assert reader.frames_decoded < clips[-1][-1] + 1
        before = reader.frames_decoded
        odd = reader.read_at_times(np.arange(60, 64) / 30.0)  # 61 and 63 were skipped
        np.testing.assert_array_equal(odd, everything[60:64])
        assert reader.frames_decoded - before > 20  # sought back to key frame 0


@pytest.mark.parametrize("convert_in_thread", [False, True])
def test_out_must_have_the_clips_shape_and_type(vtest, convert_in_thread):
    """The error reaches the caller also when the colour thread meets it; the reader stays
    usable."""
    with VideoReader(vtest) as reader:
        expected = reader.read_at_times([0.0, 0.1, 0.2])
    with VideoReader(vtest, convert_in_thread=convert_in_thread) as reader:
        with pytest.raises(ValueError, match="out must be uint8"):
            reader.read_at_times([0.0, 0.1], out=np.zeros((2, 10, 10, 3), np.uint8))
        np.testing.assert_array_equal(reader.read_at_times([0.0, 0.1, 0.2]), expected)


def _read_in_child(path: Path, times: list[float], results) -> None:
    with VideoReader(path, convert_in_thread=True) as reader:
        results.put(reader.read_at_times(times).sum(dtype=np.int64))


def test_a_forked_child_gets_its_own_colour_thread(tmp_path):
    """A child forked after the parent used its colour thread (whose thread it does not
    inherit) converts on a thread of its own instead of waiting forever."""
    path = tmp_path / "gop300.mp4"
    _write_noise_video(path, 30, seconds=1.0)
    times = [k / 30 for k in range(0, 30, 2)]
    with VideoReader(path, convert_in_thread=True) as reader:
        expected = reader.read_at_times(times).sum(dtype=np.int64)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_read_in_child, args=(path, times, results))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0
    assert results.get(timeout=5) == expected


def _libjpeg_upsample(plane: np.ndarray, vertical: bool) -> np.ndarray:
    """libjpeg's h2v1 / h2v2 fancy upsampling written out sample by sample (jdsample.c's
    arithmetic): int [h, w] -> int [h or 2h, 2w]."""
    plane = plane.astype(np.int64)
    height, width = plane.shape
    if vertical:
        rows = []
        for r in range(height):
            above, below = plane[max(r - 1, 0)], plane[min(r + 1, height - 1)]
            rows += [3 * plane[r] + above, 3 * plane[r] + below]
        sums, shift, biases = np.array(rows), 4, (8, 7)
    else:
        sums, shift, biases = plane, 2, (1, 2)
    out = np.empty((sums.shape[0], 2 * width), np.int64)
    for c in range(width):
        left, right = sums[:, max(c - 1, 0)], sums[:, min(c + 1, width - 1)]
        out[:, 2 * c] = (3 * sums[:, c] + left + biases[0]) >> shift
        out[:, 2 * c + 1] = (3 * sums[:, c] + right + biases[1]) >> shift
    return out


def _libjpeg_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """libjpeg's JFIF YCbCr -> RGB (jdcolor.c: 16-bit fixed point, tables by Cb and Cr, range
    limited) on full-resolution int planes."""

    def fix(x: float) -> int:
        return int(x * 65536 + 0.5)

    cb, cr = cb.astype(np.int64) - 128, cr.astype(np.int64) - 128
    red = y + ((fix(1.40200) * cr + 32768) >> 16)
    green = y + ((-fix(0.34414) * cb + 32768 - fix(0.71414) * cr) >> 16)
    blue = y + ((fix(1.77200) * cb + 32768) >> 16)
    return np.clip(np.stack([red, green, blue], axis=-1), 0, 255).astype(np.uint8)


def _frame_from_planes(planes: list[np.ndarray], pix_fmt: str) -> av.VideoFrame:
    height, width = planes[0].shape
    frame = av.VideoFrame(width, height, pix_fmt)
    for plane, samples in zip(frame.planes, planes, strict=True):
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
        rows[:, : plane.width] = samples
    return frame


@pytest.mark.parametrize(
    ("pix_fmt", "subsampling"), [("yuvj444p", (1, 1)), ("yuvj422p", (2, 1)), ("yuvj420p", (2, 2))]
)
def test_jpeg_colours_are_libjpegs_arithmetic_for_every_chroma_pair(pix_fmt, subsampling):
    """`jpeg_rgb` equals libjpeg's upsampling and colour conversion written out in plain
    integer arithmetic, on chroma planes holding every (Cb, Cr) pair (and their neighbours'
    differences, extremes included) under random luma."""
    rng = np.random.default_rng(3)
    horizontal, vertical = subsampling
    cb, cr = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    cb = cb.reshape(256 // vertical, -1)[:, ::horizontal].astype(np.uint8)
    cr = rng.permutation(cr.ravel())[: cb.size].reshape(cb.shape).astype(np.uint8)
    y = rng.integers(0, 256, (cb.shape[0] * vertical, cb.shape[1] * horizontal), dtype=np.uint8)
    got = jpeg_rgb(_frame_from_planes([y, cb, cr], pix_fmt))
    if horizontal == 2:
        cb, cr = (_libjpeg_upsample(c, vertical == 2) for c in (cb, cr))
    np.testing.assert_array_equal(got, _libjpeg_rgb(y.astype(np.int64), cb, cr))


def _swscale_full_range(plane: np.ndarray, chroma: bool) -> np.ndarray:
    """swscale's limited -> full range expansion written out (15-bit intermediate): int64."""
    wide = plane.astype(np.int64) << 7
    if chroma:
        wide = (np.minimum(wide, 30775) * 4663 - 9289992) >> 12
    else:
        wide = (np.minimum(wide, 30189) * 19077 - 39057361) >> 14
    return np.clip((wide + 64) >> 7, 0, 255)


def _reference_rgb(frame: av.VideoFrame) -> np.ndarray:
    """What `jpeg_rgb` must give for a planar 8-bit frame, from the plain-integer references:
    range expansion (unless full range), libjpeg's upsampling, cropping, colour conversion."""
    full_range = frame.format.name.startswith("yuvj")
    planes = []
    for index, plane in enumerate(frame.planes[:3]):
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
        samples = rows[:, : plane.width].astype(np.int64)
        planes.append(samples if full_range else _swscale_full_range(samples, index > 0))
    luma, cb, cr = planes
    subsampling = frame.format.name.removeprefix("yuvj").removeprefix("yuv")
    if subsampling in ("420p", "422p"):
        vertical = subsampling == "420p"
        cb, cr = (_libjpeg_upsample(c, vertical)[: frame.height, : frame.width] for c in (cb, cr))
    return _libjpeg_rgb(luma, cb, cr)


@pytest.mark.parametrize("size", [(97, 61), (2, 2), (33, 1)])
def test_jpeg_colours_of_odd_sized_limited_range_frames(size):
    """Odd sizes crop the upsampled chroma; limited range is expanded with swscale's integers
    first."""
    rng = np.random.default_rng(size[0])
    image = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
    np.testing.assert_array_equal(jpeg_rgb(frame), _reference_rgb(frame))


def test_jpeg_colours_saturate_exactly_for_every_chroma_pair_at_every_luma_level():
    """Every (Cb, Cr) pair at luma levels from 0 to 255, those near both clipping ends among
    them: red, green and blue each reach 0 and 255 by libjpeg's range limit, exactly."""
    levels = [0, 1, 2, 17, 64, 128, 191, 238, 253, 254, 255]
    cb, cr = (
        np.tile(c.astype(np.uint8), (len(levels), 1))
        for c in np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    )
    y = np.repeat(np.array(levels, np.uint8), 256)[:, None].repeat(256, axis=1)
    got = jpeg_rgb(_frame_from_planes([y, cb, cr], "yuvj444p"))
    want = _libjpeg_rgb(y.astype(np.int64), cb, cr)
    assert (want == 0).any(axis=(0, 1)).all() and (want == 255).any(axis=(0, 1)).all()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "pix_fmt", ["yuv420p", "yuv422p", "yuv444p", "yuvj420p", "yuvj422p", "yuvj444p"]
)
def test_jpeg_colours_of_real_frames_in_every_layout_and_odd_crops(vtest, pix_fmt):
    """Real vtest.avi frames, whole (768x576) and cropped to odd sizes, equal the plain-integer
    reference in every chroma layout."""
    with av.open(str(vtest)) as container:
        images = [f.to_ndarray(format="rgb24") for f in itertools.islice(container.decode(), 3)]
    crops = [(0, 0, 768, 576), (100, 200, 131, 67), (31, 7, 97, 61)]
    for image, (top, left, width, height) in zip(images, crops, strict=True):
        rgb = np.ascontiguousarray(image[top : top + height, left : left + width])
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
        np.testing.assert_array_equal(jpeg_rgb(frame), _reference_rgb(frame))


def test_jpeg_rgb_gives_independent_images_across_sizes_formats_and_threads():
    """Each call returns a new image: later calls (other sizes and layouts, which reuse the
    conversion's scratch memory) leave earlier results untouched, and threads converting at
    the same time get the same images as one thread."""
    rng = np.random.default_rng(7)
    frames = [
        av.VideoFrame.from_ndarray(
            rng.integers(0, 256, (height, width, 3), dtype=np.uint8), format="rgb24"
        ).reformat(format=pix_fmt)
        for (width, height), pix_fmt in [
            ((160, 130), "yuv420p"),
            ((75, 33), "yuvj422p"),
            ((160, 130), "yuv444p"),
            ((320, 200), "yuvj420p"),
        ]
    ]
    expected = [_reference_rgb(frame) for frame in frames]
    results = [jpeg_rgb(frame) for frame in frames * 2]
    for got, want in zip(results, expected * 2, strict=True):
        np.testing.assert_array_equal(got, want)
    jobs = frames * 20
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(jpeg_rgb, jobs))
    for got, want in zip(threaded, expected * 20, strict=True):
        np.testing.assert_array_equal(got, want)


def test_jpeg_rgb_writes_into_a_given_image_and_refuses_a_wrong_one():
    frame = av.VideoFrame.from_ndarray(
        np.random.default_rng(8).integers(0, 256, (61, 97, 3), dtype=np.uint8), format="rgb24"
    ).reformat(format="yuv420p")
    out = np.zeros((61, 97, 3), np.uint8)
    assert jpeg_rgb(frame, out=out) is out
    np.testing.assert_array_equal(out, _reference_rgb(frame))
    for wrong in (np.zeros((97, 61, 3), np.uint8), np.zeros((61, 97, 3), np.int16)):
        with pytest.raises(ValueError, match=r"out must be contiguous uint8 \(61, 97, 3\)"):
            jpeg_rgb(frame, out=wrong)
