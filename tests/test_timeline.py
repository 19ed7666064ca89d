import numpy as np
import pytest
from PIL import Image

from detection.ava.labelmap import LabelMap
from detection.engine.segments import ActionSegment, ActionSegmenter
from detection.visualization import class_color, draw_timeline

LABELS = LabelMap({3: "stand", 7: "talk to (e.g., self, a person, a group)", 11: "sit"})


def _segments(num_people: int, seconds: int = 40) -> list[ActionSegment]:
    """Segments from the real segmenter: person i stands, then sits, talking now and then."""
    segmenter = ActionSegmenter(
        LABELS, on_threshold=0.5, off_threshold=0.4, keyframe_period_s=1.0, duration_s=seconds
    )
    for t in range(seconds):
        ids = np.arange(1, num_people + 1)
        scores = np.zeros((num_people, 3), np.float32)
        scores[:, 0] = (t + ids) % 20 < 12
        scores[:, 2] = 1 - scores[:, 0]
        scores[:, 1] = np.sin(t / 3 + ids) > 0.2
        segmenter.update(t + 0.5, ids, scores)
    return segmenter.finish()


def _colors(path) -> set[tuple[int, int, int]]:
    rgb = np.asarray(Image.open(path).convert("RGB"))
    return set(map(tuple, rgb.reshape(-1, 3).tolist()))


def test_timeline_draws_every_person_and_action_in_its_video_colour(tmp_path):
    heights = {}
    for n in (1, 30):
        segments = _segments(n)
        assert {s.track_id for s in segments} == set(range(1, n + 1))
        path = tmp_path / f"{n}.png"
        draw_timeline(segments, 40.0, path, title=f"{n} people")
        colors = _colors(path)
        for action_id in LABELS.ids:
            assert class_color(action_id) in colors
        heights[n] = Image.open(path).height
    # One row per person: 30 people need a much taller picture than one.
    assert heights[30] > 3 * heights[1]


def test_empty_timelines_still_render(tmp_path):
    draw_timeline([], 10.0, tmp_path / "empty.png")
    assert Image.open(tmp_path / "empty.png").width > 100
    with pytest.raises(ValueError, match="duration_s"):
        draw_timeline([], 0.0, tmp_path / "bad.png")
