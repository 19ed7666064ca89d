import re
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from detection.apps.visualize import main as visualize_main
from detection.ava.labelmap import read_labelmap
from detection.ava.packaged import packaged_labelmap_path
from detection.data.synthetic import CrossingScene, Walker
from detection.data.video import VideoReader
from detection.visualization import (
    Mp4Writer,
    class_color,
    contact_sheet,
    draw_banner,
    draw_detections,
    layout_labels,
    save_png,
    text_color,
)
from detection.visualization.draw import banner_height, leader_line
from detection.visualization.keyframes import render_ava

GREY = 128


def _grey(height: int = 241, width: int = 427) -> np.ndarray:
    return np.full((height, width, 3), GREY, np.uint8)


def _decode(path: Path) -> tuple[int, int, int]:
    """(frame count, width, height) of a video, decoded with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f for f in container.decode(stream)]
        return len(frames), frames[0].width, frames[0].height


def test_class_colours_are_stable_and_distinct():
    assert class_color(12) == class_color(12)
    assert len({class_color(i) for i in range(1, 21)}) == 20
    assert text_color((255, 255, 0)) == (0, 0, 0) and text_color((0, 0, 128)) == (255, 255, 255)


def test_box_edges_and_label_box_have_the_class_colour():
    img = draw_detections(_grey(), np.array([[100, 80, 200, 200]]), [[(12, "stand", 0.87)]])
    color = np.array(class_color(12))
    assert (img[150, 100] == color).all() and (img[150, 200] == color).all()
    assert (img[200, 150] == color).all()
    # The filled label box sits above the top edge.
    label_area = img[72:79, 102:130].reshape(-1, 3)
    assert (label_area == color).all(axis=1).mean() > 0.3
    # The inside of the box is untouched.
    assert (img[120:190, 110:190] == GREY).all()


def test_ground_truth_is_dashed_with_labels_below():
    img = draw_detections(
        _grey(), np.array([[100, 40, 300, 140]]), [[(3, "carry", None)]], style="ground_truth"
    )
    color = np.array(class_color(3))
    top_edge = (img[40, 100:301] == color).all(axis=1)
    assert 0.3 < top_edge.mean() < 0.9  # dashes and gaps
    below = img[143:150, 102:130].reshape(-1, 3)
    assert (below == color).all(axis=1).mean() > 0.3
    assert (img[20:39, 100:300] == GREY).all()  # nothing above


def test_boxes_partly_or_fully_outside_the_frame():
    boxes = np.array([[-50, -40, 60, 90], [400, 200, 600, 400], [500, 300, 600, 400]])
    labels = [[(1, "bend/bow (at the waist)", 0.5)], [(2, "crawl", 0.99)], [(4, "dance", 0.9)]]
    img = draw_detections(_grey(), boxes, labels, person_scores=[0.9, 0.8, 0.7])
    assert (img[60, 60] == class_color(1)).all()  # right edge of the clipped first box
    assert (img[220, 426] == class_color(2)).all()  # the clipped second box's right edge
    assert img.shape == (241, 427, 3)
    assert not (img == class_color(4)).all(axis=2).any()  # the third box is not in the frame


def test_zero_boxes_and_bad_inputs():
    frame = _grey()
    np.testing.assert_array_equal(draw_detections(frame, np.zeros((0, 4))), frame)
    with pytest.raises(ValueError, match="1 label lists for 2 boxes"):
        draw_detections(frame, np.zeros((2, 4)), [[]])
    with pytest.raises(ValueError, match="style"):
        draw_detections(frame, np.zeros((0, 4)), style="dotted")


def _crowd(width: int = 320, height: int = 180) -> tuple[np.ndarray, np.ndarray]:
    """A generated frame of 8 people side by side and their boxes [8, 4]."""
    walkers = tuple(
        Walker(i + 1, width / 8 - 6, height * 0.6, (200, 40 + 25 * i, 90),
               (width / 16 + i * width / 8, height * 0.92), (0.0, 0.0), 0.0, 5.0, ())
        for i in range(8)
    )  # fmt: skip
    scene = CrossingScene(walkers, width, height, 5.0, 30, 0)
    return scene.render(1.0), scene.boxes_at(1.0)[1]


AVA_NAMES = [
    (17, "carry/hold (an object)"),
    (79, "talk to (e.g., self, a person, a group)"),
    (80, "watch (a person)"),
    (12, "stand"),
    (11, "sit"),
]


def _rects_are_apart_and_inside(stacks, height: int, width: int) -> None:
    rects = [(i, r) for i, st in enumerate(stacks) if st is not None for r in st.rects]
    for _, (x1, y1, x2, y2) in rects:
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
    for a, (i, ra) in enumerate(rects):
        for j, rb in rects[a + 1 :]:
            overlap = ra[0] < rb[2] and rb[0] < ra[2] and ra[1] < rb[3] and rb[1] < ra[3]
            assert not overlap, (i, ra, j, rb)


@pytest.mark.parametrize(("width", "height"), [(320, 180), (640, 360), (1280, 720)])
@pytest.mark.parametrize("style", ["prediction", "ground_truth"])
def test_crowded_label_stacks_never_overlap_nor_leave_the_frame(width, height, style):
    frame, boxes = _crowd(width, height)
    labels = [
        [(AVA_NAMES[(i + k) % 5][0], AVA_NAMES[(i + k) % 5][1], 0.9 - 0.2 * k) for k in range(3)]
        for i in range(8)
    ]
    track_ids = np.arange(1, 9)
    stacks = layout_labels(height, width, boxes, labels, track_ids=track_ids, style=style)
    # Every person keeps at least a one-row label naming its track and best action.
    for i, stack in enumerate(stacks):
        assert stack is not None and stack.texts[0].startswith(f"#{i + 1} ")
        assert AVA_NAMES[i % 5][1].split(" (")[0] in stack.texts[0]
    _rects_are_apart_and_inside(stacks, height, width)
    img = draw_detections(frame, boxes, labels, track_ids=track_ids, style=style)
    assert img.shape == frame.shape and not np.array_equal(img, frame)


def test_labels_keep_their_side_when_there_is_room_and_move_when_not():
    height, width = 241, 427
    boxes = np.array([[100, 80, 200, 200], [250, 0, 350, 100]])
    labels = [[(12, "stand", 0.87), (80, "watch (a person)", 0.6)], [(11, "sit", 0.7)]]
    free, at_top = layout_labels(height, width, boxes, labels, track_ids=[3, 4])
    assert free.texts == ("#3 stand 0.87", "watch (a person) 0.60")
    assert free.bounds[3] == 80  # the stack ends right above the box's top edge
    assert at_top.bounds[1] >= 0 and at_top.texts == ("#4 sit 0.70",)
    gt = layout_labels(height, width, boxes[:1], labels[:1], style="ground_truth")[0]
    assert gt.bounds[1] == 201 and gt.texts == ("stand", "watch (a person)")


def test_a_stack_with_no_room_collapses_to_one_row():
    # A strip of a frame holds one row: a three-label stack can only show its summary.
    boxes = np.array([[10, 2, 60, 27], [70, 2, 120, 27]])
    labels = [[(12, "stand", 0.9), (80, "watch (a person)", 0.8), (11, "sit", 0.5)]] * 2
    stacks = layout_labels(30, 400, boxes, labels, track_ids=[1, 2])
    assert [st.texts for st in stacks] == [("#1 stand +2",), ("#2 stand +2",)]
    _rects_are_apart_and_inside(stacks, 30, 400)


@pytest.mark.parametrize("at", ["top", "bottom"])
@pytest.mark.parametrize("style", ["prediction", "ground_truth"])
def test_no_label_is_placed_under_a_banner(at, style):
    """People along the banner's edge of the frame: their labels (which would go above the
    top boxes or under the bottom ones) all stay out of the reserved strip, still apart and
    inside the frame."""
    height, width = 241, 427
    notice = "UNTRAINED action model: scores are meaningless"
    strip = banner_height(height, width, notice)
    y = 0 if at == "top" else height - 60
    boxes = np.array([[x, y, x + 60, y + 59] for x in range(10, 400, 70)], np.float64)
    labels = [[(12, "stand", 0.9), (80, "watch (a person)", 0.8)]] * len(boxes)
    reserve = {"reserve_top_px": strip} if at == "top" else {"reserve_bottom_px": strip}
    stacks = layout_labels(
        height, width, boxes, labels, track_ids=range(1, len(boxes) + 1), style=style, **reserve
    )
    assert all(stack is not None for stack in stacks)
    _rects_are_apart_and_inside(stacks, height, width)
    for stack in stacks:
        for _, y1, _, y2 in stack.rects:
            assert (y1 >= strip) if at == "top" else (y2 <= height - strip)
    # Without the reservation, some label lies in the strip: the test would catch a regression.
    free = layout_labels(
        height, width, boxes, labels, track_ids=range(1, len(boxes) + 1), style=style
    )
    in_strip = [
        (y1 < strip) if at == "top" else (y2 > height - strip)
        for stack in free
        for _, y1, _, y2 in stack.rects
    ]
    assert any(in_strip)


def test_banner_and_contact_sheet(tmp_path):
    frames = [_grey(), _grey(576, 768), _grey(240, 426)]
    banner = draw_banner(frames[0], "untrained action model")
    assert banner[:5].mean() < GREY and (banner[100:] == GREY).all()
    bottom = draw_banner(frames[0], "untrained action model", at="bottom")
    assert bottom[-5:].mean() < GREY and (bottom[:-100] == GREY).all()
    sheet = contact_sheet(frames, ["a", "b", "c"], columns=2, tile_width=200)
    assert sheet.shape[1] == 2 * 200 + 3 * 4
    path = save_png(tmp_path / "sheet.png", sheet)
    np.testing.assert_array_equal(cv2.imread(str(path))[..., ::-1], sheet)


@pytest.mark.parametrize(("width", "height"), [(426, 240), (427, 241)])
def test_mp4_streams_frames_and_pads_odd_sizes(tmp_path, width, height):
    path = tmp_path / "out.mp4"
    with Mp4Writer(path, fps=29.97) as writer:
        for i in range(12):
            writer.write(np.full((height, width, 3), 20 * i, np.uint8))
        with pytest.raises(ValueError, match="frame 12 is 10x10"):
            writer.write(np.zeros((10, 10, 3), np.uint8))
    assert writer.frames_written == 12
    assert _decode(path) == (12, width + width % 2, height + height % 2)


def test_mp4_without_frames_writes_no_file(tmp_path):
    Mp4Writer(tmp_path / "empty.mp4", fps=25).close()
    assert list(tmp_path.iterdir()) == [], "neither the video nor its temporary file"
    with pytest.raises(ValueError, match="fps must be positive"):
        Mp4Writer(tmp_path / "x.mp4", fps=0)


def test_mp4_failure_keeps_the_previous_video_and_leaves_no_partial_file(tmp_path):
    path = tmp_path / "out.mp4"
    frame = np.full((48, 64, 3), 200, np.uint8)
    with Mp4Writer(path, fps=10) as writer:
        writer.write(frame)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="is 32x48"):
        with Mp4Writer(path, fps=10) as writer:
            writer.write(frame)
            writer.write(frame[:, :32])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


# --- AVA CSVs on a real clip ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ava_clip(shared_dir: Path, tmp_path_factory) -> tuple[Path, Path, Path]:
    """A 4-second, 427x241 cut of vtest.avi as an AVA-style video starting at AVA second 900,
    with ground-truth and detection CSVs for keyframes 901-903 (and rows of another video)."""
    root = tmp_path_factory.mktemp("ava_clip")
    video = root / "clip.mp4"
    with VideoReader(shared_dir / "media" / "vtest.avi") as reader, Mp4Writer(video, 10) as out:
        for frame, _ in reader.iter_frames(10.0, 14.0):
            out.write(cv2.resize(frame, (427, 241), interpolation=cv2.INTER_AREA))
    gt = root / "gt.csv"
    gt.write_text(
        "clip,0901,0.1,0.2,0.3,0.9,12,1\n"
        "clip,0901,0.1,0.2,0.3,0.9,80,1\n"
        "clip,0902,0.5,0.3,0.7,0.95,14,2\n"
        "other,0902,0.5,0.3,0.7,0.95,14,2\n"
    )
    pred = root / "pred.csv"
    pred.write_text(
        "clip,0901,0.12,0.2,0.31,0.9,12,0.91\n"
        "clip,0901,0.12,0.2,0.31,0.9,80,0.45\n"
        "clip,0901,0.12,0.2,0.31,0.9,17,0.05\n"
        "clip,0903,0.6,0.1,1.0,0.5,14,0.8\n"
    )
    return video, gt, pred


def test_render_contact_sheet(ava_clip, tmp_path, project_root):
    video, gt, pred = ava_clip
    labelmap = read_labelmap(packaged_labelmap_path("ava_action_list_v2.2.pbtxt"))
    summary = render_ava(
        video, tmp_path / "sheet.png", ground_truth=gt, predictions=pred, labelmap=labelmap
    )
    assert (summary.keyframes, summary.ground_truth_boxes, summary.predicted_boxes) == (3, 2, 2)
    sheet = cv2.imread(str(summary.output))[..., ::-1]
    for action_id in (12, 80, 14):
        assert (sheet == class_color(action_id)).all(axis=2).sum() > 50, action_id
    gt_only = render_ava(video, tmp_path / "gt.png", ground_truth=gt, labelmap=labelmap)
    sheet = cv2.imread(str(gt_only.output))[..., ::-1]
    for action_id in (12, 80, 14):
        assert (sheet == class_color(action_id)).all(axis=2).sum() > 50, action_id


def test_render_mp4_covers_the_keyframes(ava_clip, tmp_path):
    video, gt, pred = ava_clip
    summary = render_ava(video, tmp_path / "out.mp4", ground_truth=gt, predictions=pred)
    # Keyframes at 1-3 s of the clip, half a second either side, at 10 fps.
    assert summary.frames == 30
    assert _decode(summary.output) == (30, 428, 242)


def test_visualize_cli_reports_user_mistakes(ava_clip, tmp_path, capsys):
    video, gt, pred = ava_clip
    out = tmp_path / "x.png"
    visualize_main(["--video", str(video), "--gt", str(gt), "--out", str(out), "--times", "902"])
    assert out.is_file() and "1 keyframes" in capsys.readouterr().out
    mistakes = [
        (["--video-id", "nope"], "no rows for video 'nope'.*clip, other"),
        (["--video-start-sec", "0"], "lasts 4.0 s.*900"),
        (["--out", str(tmp_path / "x.gif")], r"\.png .* or \.mp4"),
        (["--video", str(tmp_path / "missing.mp4")], "not found"),
    ]
    for extra, message in mistakes:
        argv = ["--video", str(video), "--gt", str(gt), "--out", str(out), *extra]
        with pytest.raises(SystemExit) as exit_info:
            visualize_main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert re.search(message, err), err


def test_a_label_stack_away_from_its_box_is_tied_to_it_by_a_line():
    box = (100, 100, 140, 200)
    assert leader_line((100, 80, 180, 100), box) is None  # right above the box: touching
    start, end = leader_line((10, 10, 60, 40), box)
    assert (start, end) == ((59, 39), (100, 100))  # stack corner nearest the box -> box corner
    start, end = leader_line((300, 140, 380, 160), box)
    assert start == (300, 150) and end == (140, 150)  # beside it: a horizontal line
