"""Sources of the streaming engine: folders and lists of videos, and live streams for real: an
MPEG-TS sender on the loopback interface (UDP) and a pipe on stdin, decoded by PyAV."""

import http.server
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import pytest

from detection.config import load_config
from detection.engine.predictor import ActionPredictor
from detection.engine.sources import LiveSource, SourceError, expand_sources, is_live
from detection.engine.stream import EngineOptions, OutputPaths, StreamEngine

TINY = "configs/test/SLOWFAST_TINY.yaml"
CLIP = "data/demo/vtest_walking_6s.mp4"

# Streams the bundled clip (halved in size, looped) as MPEG-TS to argv[1] in real time for
# argv[2] seconds: a live camera as a network sees it.
SENDER = """
import sys, time
import av, numpy as np
clip, url, seconds = sys.argv[3], sys.argv[1], float(sys.argv[2])
source = av.open(clip)
frames = [f.to_ndarray(format="rgb24")[::2, ::2].copy() for f in source.decode(video=0)]
out = av.open(url, "w", format="mpegts")
stream = out.add_stream("mpeg2video", rate=10)
stream.width, stream.height, stream.pix_fmt = 384, 288, "yuv420p"
start = time.monotonic()
for n in range(int(seconds * 10)):
    frame = av.VideoFrame.from_ndarray(frames[n % len(frames)], format="rgb24")
    frame.pts = n
    for packet in stream.encode(frame):
        out.mux(packet)
    time.sleep(max(0.0, start + (n + 1) / 10 - time.monotonic()))
for packet in stream.encode():
    out.mux(packet)
out.close()
"""


def _touch_video(path):
    path.write_bytes(b"")
    return path


def test_folders_and_lists_expand_to_their_videos(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("b.mp4", "a.mkv", "notes.txt", "c.AVI"):
        _touch_video(folder / name)
    assert [p.split("/")[-1] for p in expand_sources([str(folder)])] == ["a.mkv", "b.mp4", "c.AVI"]

    listing = tmp_path / "list.txt"
    listing.write_text("# my videos\nvideos/b.mp4\n\nudp://127.0.0.1:5000\n")
    assert expand_sources([str(listing)]) == [str(folder / "b.mp4"), "udp://127.0.0.1:5000"]

    listing.write_text("videos/a.mkv\nvideos/gone.mp4\n")
    with pytest.raises(SourceError, match=r"list\.txt:2: video videos/gone\.mp4 not found"):
        expand_sources([str(listing)])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match=r"empty: no videos"):
        expand_sources([str(empty)])


def test_live_sources_are_told_from_files():
    assert all(is_live(s) for s in ("-", "/dev/video0", "rtsp://cam/1", "udp://127.0.0.1:5"))
    assert not any(is_live(s) for s in ("clip.mp4", "dir/", "list.txt"))


def _free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_live_udp_stream_is_scored_in_real_time_and_ends_by_itself(tmp_path, project_root):
    """A real MPEG-TS stream over UDP on 127.0.0.1: the engine decodes it as it arrives, scores
    the keyframes it can keep up with (5 per second asked of HOG on CPU: some are skipped and
    counted), draws every frame it receives and stops once the sender has gone quiet."""
    port = _free_udp_port()
    url = f"udp://127.0.0.1:{port}"
    sender = subprocess.Popen(
        [sys.executable, "-c", SENDER, f"{url}?pkt_size=1316", "8", str(project_root / CLIP)]
    )
    try:
        cfg = load_config(
            str(project_root / TINY), ["DEMO.DETECTOR", "hog", "DEMO.KEYFRAMES_PER_SEC", "5.0"]
        )
        engine = StreamEngine(cfg, ActionPredictor.from_config(cfg), EngineOptions(batch_size=2))
        source = LiveSource(url, timeout_s=15)
        outputs = OutputPaths.beside(tmp_path / "live.mp4")
        try:
            result = engine.run(source, outputs, show_progress=False)
        finally:
            source.close()
        assert sender.wait(timeout=60) == 0
    finally:
        sender.kill()
    assert result.frames_written > 10
    with av.open(str(outputs.video)) as container:
        assert sum(1 for _ in container.decode(video=0)) == result.frames_written
    assert result.keyframes_cut >= 2
    assert len(result.results) + result.skipped_keyframes == result.keyframes_cut
    times = result.keyframe_times
    assert (times[1:] > times[:-1]).all()
    doc = json.loads(outputs.json.read_text())
    assert doc["skipped_keyframes"] == result.skipped_keyframes
    assert outputs.timeline.is_file() and outputs.segments_csv.is_file()


@pytest.mark.slow
def test_demo_tool_reads_a_stream_piped_on_stdin(tmp_path, project_root):
    """``demo_net.py --input -`` with an MPEG-TS stream on stdin (as from ``ffmpeg ... -f
    mpegts -``): every frame of the stream comes out drawn."""
    stream_file = tmp_path / "camera.ts"
    subprocess.run(
        [sys.executable, "-c", SENDER, str(stream_file), "1.5", str(project_root / CLIP)],
        check=True,
    )
    with av.open(str(stream_file)) as container:
        sent = sum(1 for _ in container.decode(video=0))
    out = tmp_path / "o.mp4"
    with stream_file.open("rb") as stdin:
        proc = subprocess.run(
            [sys.executable, str(project_root / "tools/demo_net.py")]
            + ["--config", str(project_root / TINY), "--input", "-", "--output", str(out)]
            + ["--quiet", "--live-timeout", "5"],
            stdin=stdin,
            capture_output=True,
            text=True,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "frames at 10 fps" in proc.stdout
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == sent
    assert (tmp_path / "o_timeline.png").is_file()


class _GrowingFileHandler(http.server.BaseHTTPRequestHandler):
    """Serves the file the sender is writing as one HTTP/1.0 response with no length, the way
    an HTTP camera or ``ffmpeg -listen 1`` does: bytes go out as they are written, and the
    response ends when the sender has finished and everything was sent."""

    path_to_serve: Path
    sender_done: threading.Event

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "video/mp2t")
        self.end_headers()
        with self.path_to_serve.open("rb") as stream:
            while True:
                done = self.sender_done.is_set()
                chunk = stream.read(65536)
                if chunk:
                    self.wfile.write(chunk)
                elif done:
                    return
                else:
                    time.sleep(0.02)

    def log_message(self, *args) -> None:
        pass


@pytest.mark.slow
def test_live_http_stream_on_loopback_is_scored_as_it_arrives(tmp_path, project_root):
    """An MPEG-TS stream served over HTTP on 127.0.0.1 while a real-time sender produces it:
    the engine reads it through FFmpeg's http protocol, draws every frame and ends with it."""
    growing = tmp_path / "camera.ts"
    growing.write_bytes(b"")
    done = threading.Event()
    handler = type(
        "Handler", (_GrowingFileHandler,), {"path_to_serve": growing, "sender_done": done}
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sender = subprocess.Popen(
        [sys.executable, "-c", SENDER, str(growing), "4", str(project_root / CLIP)]
    )

    def wait_for_sender() -> None:
        sender.wait(timeout=120)
        done.set()

    threading.Thread(target=wait_for_sender, daemon=True).start()
    try:
        cfg = load_config(str(project_root / TINY), ["DEMO.DETECTOR", "hog"])
        engine = StreamEngine(cfg, ActionPredictor.from_config(cfg))
        source = LiveSource(f"http://127.0.0.1:{server.server_port}/camera.ts", timeout_s=15)
        outputs = OutputPaths.beside(tmp_path / "live.mp4")
        try:
            result = engine.run(source, outputs, show_progress=False)
        finally:
            source.close()
    finally:
        sender.kill()
        server.shutdown()
    assert sender.returncode == 0
    with av.open(str(growing)) as container:
        sent = sum(1 for _ in container.decode(video=0))
    assert result.frames_written == sent == 40
    with av.open(str(outputs.video)) as container:
        assert sum(1 for _ in container.decode(video=0)) == sent
    assert result.keyframes_cut >= 3
    assert len(result.results) + result.skipped_keyframes == result.keyframes_cut
