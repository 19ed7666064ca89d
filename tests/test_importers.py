"""Annotation import (CVAT for video 1.1, VIA 3, plain CSV) into an AVA-format dataset, on a
real 4 s, 25 fps, 160x120 video (25 fps, not AVA's 30, so that frame <-> time is tested)."""

import json
from pathlib import Path

import av
import numpy as np
import pytest

from detection.apps.import_annotations import main
from detection.ava.csv_io import read_ava_csv, read_excluded_timestamps
from detection.ava.labelmap import LabelMapError, read_labelmap
from detection.config import load_config
from detection.data.dataset import AvaDataset
from detection.importers import ImportAnnotationError, ImportOptions, import_annotations

FPS, WIDTH, HEIGHT, SECONDS = 25, 160, 120, 4
PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory) -> Path:
    """videos/clip25.mp4: 100 frames at 25 fps, 160x120, H.264; frame i is gray level 2 * i."""
    root = tmp_path_factory.mktemp("videos")
    with av.open(str(root / "clip25.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"threads": "1"}
        for index in range(FPS * SECONDS):
            image = np.full((HEIGHT, WIDTH, 3), 2 * index, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return root


def _norm(x1, y1, x2, y2):
    return (x1 / WIDTH, y1 / HEIGHT, x2 / WIDTH, y2 / HEIGHT)


# --- CVAT -------------------------------------------------------------------------------------


# Track 0, a person with checkbox actions, keyframes only: boxes at frames 10 and 40, outside
# from frame 60 (its box moves on towards (60, 20, 100, 100), as CVAT interpolates), back at 95.
# Track 1, label "walk", a full export (every frame 20..70 listed), moving 2 px per frame from
# x1 = -20 (outside the frame: clipped), outside from 71.
# Track 2 has a malformed box at frame 5; track 3 is a polygon.
def _cvat_xml() -> str:
    walk = []
    for f in range(20, 72):
        x1 = -20 + 2 * (f - 20)
        outside = int(f == 71)
        walk.append(
            f'<box frame="{f}" outside="{outside}" occluded="0" keyframe="{int(f in (20, 71))}" '
            f'xtl="{x1}" ytl="30" xbr="{x1 + 40}" ybr="110" z_order="0"></box>'
        )

    def person_box(frame, box, outside, stand, talk):
        xtl, ytl, xbr, ybr = box
        return (
            f'<box frame="{frame}" outside="{outside}" occluded="0" keyframe="1" xtl="{xtl}" '
            f'ytl="{ytl}" xbr="{xbr}" ybr="{ybr}" z_order="0">'
            f'<attribute name="stand">{stand}</attribute>'
            f'<attribute name="talk">{talk}</attribute></box>'
        )

    person = [
        person_box(10, (10, 20, 50, 100), 0, "true", "false"),
        person_box(40, (40, 20, 80, 100), 0, "true", "true"),
        person_box(60, (60, 20, 100, 100), 1, "true", "true"),
        person_box(95, (100, 10, 140, 90), 0, "false", "true"),
    ]
    checkbox = (
        "<attribute><name>{}</name><mutable>True</mutable><input_type>checkbox</input_type>"
        "<default_value>false</default_value><values>false</values></attribute>"
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>7</id><name>clip task</name><size>100</size><mode>interpolation</mode>
      <overlap>5</overlap><bugtracker></bugtracker><flipped>False</flipped>
      <start_frame>0</start_frame><stop_frame>99</stop_frame><frame_filter></frame_filter>
      <labels>
        <label><name>person</name><attributes>{checkbox.format("stand")}
          {checkbox.format("talk")}</attributes></label>
        <label><name>walk</name><attributes></attributes></label>
      </labels>
      <original_size><width>{WIDTH}</width><height>{HEIGHT}</height></original_size>
    </task>
    <dumped>2026-11-29 12:00:00+00:00</dumped>
    <source>clip25.mp4</source>
  </meta>
  <track id="0" label="person" source="manual">{"".join(person)}</track>
  <track id="1" label="walk" source="manual">{"".join(walk)}</track>
  <track id="2" label="walk" source="manual">
    <box frame="5" outside="0" occluded="0" keyframe="1" xtl="abc" ytl="1" xbr="9" ybr="9"
      z_order="0"></box>
  </track>
  <track id="3" label="walk" source="manual">
    <polygon frame="3" outside="0" occluded="0" keyframe="1" points="1,1;5,5;1,9"
      z_order="0"></polygon>
  </track>
</annotations>
"""


@pytest.fixture
def cvat_file(tmp_path) -> Path:
    path = tmp_path / "clip25_annotations.xml"
    path.write_text(_cvat_xml())
    return path


def _boxes(table, person):
    rows = table[table["person_id"] == person]
    out = {}
    for second, group in rows.groupby("timestamp"):
        first = group.iloc[0]
        out[int(second)] = (
            (first.x1, first.y1, first.x2, first.y2),
            sorted(group["action_id"].tolist()),
        )
    return out


def test_cvat_interpolates_between_keyframes_and_respects_outside(cvat_file, video_dir, tmp_path):
    result = import_annotations("cvat", [cvat_file], video_dir, tmp_path / "ds")
    gt = read_ava_csv(tmp_path / "ds/annotations/ava_train_v2.2.csv", kind="groundtruth")
    labelmap = read_labelmap(
        tmp_path / "ds/annotations/ava_action_list_v2.2_for_activitynet_2019.pbtxt"
    )
    assert labelmap.names == {1: "stand", 2: "talk", 3: "walk"}  # sorted names -> 1..N

    person = _boxes(gt, 0)
    # Second 0 = frame 0: the track starts at frame 10 (0.4 s, within half a period).
    assert person[0][0] == pytest.approx(_norm(10, 20, 50, 100), abs=6e-4)
    # Second 1 = frame 25 (25 fps): halfway between the boxes of frames 10 and 40.
    assert person[1][0] == pytest.approx(_norm(25, 20, 65, 100), abs=6e-4)
    assert person[1][1] == [1]  # stand; talk is false at frame 10
    # Second 2 = frame 50: halfway from frame 40 towards the outside box of frame 60.
    assert person[2][0] == pytest.approx(_norm(50, 20, 90, 100), abs=6e-4)
    assert person[2][1] == [1, 2]
    # Second 3 = frame 75 lies in the outside span 60..94, and frames 59 and 95 are > 0.5 s away.
    assert 3 not in person

    walk = _boxes(gt, 1)
    assert 0 not in walk  # the track starts at frame 20, 0.8 s after second 0
    assert walk[1][0] == pytest.approx(_norm(0, 30, 30, 110), abs=6e-4)  # x1 = -10 clipped
    assert walk[2][0] == pytest.approx(_norm(40, 30, 80, 110), abs=6e-4)
    assert walk[3][0] == pytest.approx(_norm(80, 30, 120, 110), abs=6e-4)  # frame 70
    assert {a for _, ids in walk.values() for a in ids} == {3}

    report = result.report
    assert report.counts["boxes clipped to [0, 1]"] == 1
    assert report.counts["train: boxes written"] == 6
    assert report.counts["train: keyframes written"] == 4
    assert report.skipped["non-box shapes (<polygon>...)"] == 1
    assert len(report.malformed) == 1
    assert "clip25_annotations.xml: track 2 frame 5" in report.malformed[0]


def test_cvat_frame_filter_step_maps_task_frames_to_video_frames(video_dir, tmp_path):
    # Every 10th frame annotated (step=10): frame 20 and 30 are task frames; keyframe 1 s =
    # frame 25 is no task frame, so the nearest one, frame 20 (the earlier of a tie), is used.
    xml = _cvat_xml().replace(
        "<frame_filter></frame_filter>", "<frame_filter>step=10</frame_filter>"
    )
    path = tmp_path / "step.xml"
    path.write_text(xml)
    import_annotations("cvat", [path], video_dir, tmp_path / "ds")
    gt = read_ava_csv(tmp_path / "ds/annotations/ava_train_v2.2.csv", kind="groundtruth")
    assert _boxes(gt, 0)[1][0] == pytest.approx(_norm(20, 20, 60, 100), abs=6e-4)


def test_strict_stops_at_the_first_malformed_element(cvat_file, video_dir, tmp_path):
    with pytest.raises(ImportAnnotationError, match=r"track 2 frame 5: box coordinates"):
        import_annotations(
            "cvat", [cvat_file], video_dir, tmp_path / "ds", ImportOptions(strict=True)
        )
    assert not (tmp_path / "ds").exists()


# --- VIA --------------------------------------------------------------------------------------


def _via_project() -> dict:
    def rect(x, y, w, h):
        return [2, x, y, w, h]

    return {
        "project": {"pid": "__VIA_PROJECT_ID__", "pname": "clips", "data_format_version": "3.1.1"},
        "config": {"file": {"loc_prefix": {"1": "", "2": "", "3": "", "4": ""}}, "ui": {}},
        "attribute": {
            "1": {
                "aname": "person_id",
                "anchor_id": "FILE1_Z1_XY1",
                "type": 1,
                "desc": "",
                "options": {},
                "default_option_id": "",
            },
            "2": {
                "aname": "action",
                "anchor_id": "FILE1_Z1_XY1",
                "type": 2,
                "desc": "",
                "options": {"0": "stand", "1": "talk", "2": "walk"},
                "default_option_id": "",
            },
        },  # fmt: skip
        "file": {"1": {"fid": "1", "fname": "clip25.mp4", "type": 4, "loc": 1, "src": ""}},
        "view": {"1": {"fid_list": ["1"]}},
        "metadata": {
            "1_a": {
                "vid": "1",
                "flg": 0,
                "z": [0.96],
                "xy": rect(10, 20, 40, 80),
                "av": {"1": "0", "2": "0,1"},
            },
            "1_b": {
                "vid": "1",
                "flg": 0,
                "z": [1.2],
                "xy": rect(12, 20, 40, 80),
                "av": {"1": "0", "2": "0"},
            },
            "1_c": {
                "vid": "1",
                "flg": 0,
                "z": [2.0, 3.0],
                "xy": rect(60, 10, 30, 50),
                "av": {"1": "1", "2": "2"},
            },
            "1_d": {"vid": "1", "flg": 0, "z": [1.5], "xy": [7, 1, 1, 5, 5, 1, 9], "av": {}},
            "1_e": {"vid": "1", "flg": 0, "z": [0.5, 2.5], "xy": [], "av": {"2": "1"}},
            "1_f": {
                "vid": "1",
                "flg": 0,
                "z": [3.1],
                "xy": rect(0, 0, 10, 10),
                "av": {"1": "x", "2": "0"},
            },
            "1_g": {
                "vid": "1",
                "flg": 0,
                "z": [3.2],
                "xy": rect(0, 0, 10, 10),
                "av": {"1": "2", "2": "9"},
            },
        },  # fmt: skip
    }


def _write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data, indent=1))
    return path


def test_via_boxes_segments_and_checkbox_actions(video_dir, tmp_path):
    via = _write_json(tmp_path / "project.json", _via_project())
    result = import_annotations("via", [via], video_dir, tmp_path / "ds")
    gt = read_ava_csv(tmp_path / "ds/annotations/ava_train_v2.2.csv", kind="groundtruth")

    person0 = _boxes(gt, 0)
    assert list(person0) == [1]  # 0.96 s is the box nearest second 1; 1.2 s is not taken
    assert person0[1] == (pytest.approx(_norm(10, 20, 50, 100), abs=6e-4), [1, 2])
    person1 = _boxes(gt, 1)
    assert list(person1) == [2, 3]  # a box held over the segment 2.0 .. 3.0 s
    assert person1[3] == (pytest.approx(_norm(60, 10, 90, 60), abs=6e-4), [3])

    report = result.report
    assert report.skipped["VIA regions that are not rectangles (shape id 7)"] == 1
    assert report.skipped["VIA temporal segments without a rectangle"] == 1
    assert sum(n for r, n in report.skipped.items() if r.startswith("annotations no keyframe")) == 1
    assert any("metadata '1_b'" in e for ex in report.skip_examples.values() for e in ex)
    assert [m.split(": ")[1] for m in report.malformed] == ["metadata '1_f'", "metadata '1_g'"]
    assert "option id '9'" in report.malformed[1]


def test_labelmap_keeps_non_contiguous_ids_and_unknown_names_are_errors(video_dir, tmp_path):
    via = _write_json(tmp_path / "project.json", _via_project())
    labelmap = tmp_path / "custom.pbtxt"
    entries = [("stand", 3), ("talk", 7), ("walk", 12), ("sit", 20)]
    labelmap.write_text("".join(f'item {{\n  name: "{n}"\n  id: {i}\n}}\n' for n, i in entries))
    result = import_annotations(
        "via", [via], video_dir, tmp_path / "ds", ImportOptions(labelmap=labelmap)
    )
    gt = read_ava_csv(tmp_path / "ds/annotations/ava_train_v2.2.csv", kind="groundtruth")
    assert sorted(set(gt["action_id"])) == [3, 7, 12]
    assert _boxes(gt, 0)[1][1] == [3, 7]
    written = read_labelmap(
        tmp_path / "ds/annotations/ava_action_list_v2.2_for_activitynet_2019.pbtxt"
    )
    assert written.names == {3: "stand", 7: "talk", 12: "walk", 20: "sit"}
    assert "MODEL.NUM_CLASSES" in result.config_overrides
    assert result.config_overrides[result.config_overrides.index("MODEL.NUM_CLASSES") + 1] == "20"

    labelmap.write_text('item {\n  name: "stand"\n  id: 3\n}\nitem {\n  name: "talk"\n  id: 7\n}\n')
    with pytest.raises(ImportAnnotationError, match=r"project.json: metadata '1_c': action 'walk'"):
        import_annotations(
            "via", [via], video_dir, tmp_path / "ds2", ImportOptions(labelmap=labelmap)
        )
    assert not (tmp_path / "ds2").exists()


# --- CSV and the command line ------------------------------------------------------------------

CSV_ROWS = """\
video,time_s,x1_norm,y1_norm,x2_norm,y2_norm,actions,person_id
clip25,0.0,0.1,0.1,0.5,0.9,stand|talk,4
clip25.mp4,1.0,0.2,0.1,0.6,0.9,stand,4
clip25,1.0,0.2,0.1,0.6,0.9,walk,4
clip25,2.0,0.7,0.1,1.2,0.9,,5
clip25,3.0,0.5,0.5,0.4,0.9,stand,5
clip25,9.0,0.1,0.1,0.2,0.2,stand,5
"""


def test_cli_imports_a_csv_and_prints_the_summary(video_dir, tmp_path, capsys):
    path = tmp_path / "boxes.csv"
    path.write_text(CSV_ROWS)
    out = tmp_path / "ds"
    main(["--format", "csv", str(path), "--videos", str(video_dir), "--output", str(out), "--link"])
    printed = capsys.readouterr().out

    gt = read_ava_csv(out / "annotations/ava_train_v2.2.csv", kind="groundtruth")
    assert _boxes(gt, 4) == {
        0: (pytest.approx((0.1, 0.1, 0.5, 0.9)), [1, 2]),
        1: (pytest.approx((0.2, 0.1, 0.6, 0.9)), [1, 3]),  # two rows, one box
    }
    assert _boxes(gt, 5) == {2: (pytest.approx((0.7, 0.1, 1.0, 0.9)), [-1])}  # clipped, no action
    assert (out / "videos/clip25.mp4").is_symlink()
    assert (
        read_excluded_timestamps(out / "annotations/ava_val_excluded_timestamps_v2.2.csv") == set()
    )
    assert json.loads((out / "dataset.json").read_text())["video_start_sec"] == 0

    assert "train: boxes written: 3" in printed
    assert "boxes clipped to [0, 1]: 1" in printed
    assert "1 annotations after the end of the video" in printed
    assert f"{path}:6: box (0.5, 0.5, 0.4, 0.9) must have x1 <= x2" in printed
    assert "AVA.VIDEO_START_SEC 0" in printed


def test_cli_errors_are_one_line_naming_the_file(video_dir, tmp_path, capsys):
    path = tmp_path / "boxes.csv"
    path.write_text("video,time_s,x1,y1,x2,y2,actions\nclip25,0,1,1,9,9,stand\n")
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--format",
                "csv",
                str(path),
                "--videos",
                str(video_dir),
                "--output",
                str(tmp_path / "ds"),
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}:1: say whether x1,y1,x2,y2 are pixels or normalized")

    path.write_text("video,time_s,x1,y1,x2,y2,actions\nnope,0,1,1,9,9,stand\n")
    with pytest.raises(SystemExit):
        main(["--format", "csv", str(path), "--videos", str(video_dir), "--output",
              str(tmp_path / "ds"), "--box-units", "pixels"])  # fmt: skip
    assert f"error: {path}:2: no video for 'nope'" in capsys.readouterr().err


def test_val_split_and_overwrite(cvat_file, video_dir, tmp_path):
    out = tmp_path / "ds"
    import_annotations("cvat", [cvat_file], video_dir, out)
    with pytest.raises(ImportAnnotationError, match="exists; pass --overwrite"):
        import_annotations("cvat", [cvat_file], video_dir, out)
    options = ImportOptions(val_videos=("clip25",), overwrite=True)
    import_annotations("cvat", [cvat_file], video_dir, out, options)
    assert read_ava_csv(out / "annotations/ava_train_v2.2.csv", kind="groundtruth").empty
    val = read_ava_csv(out / "annotations/ava_val_v2.2.csv", kind="groundtruth")
    boxes = read_ava_csv(out / "annotations/ava_val_groundtruth_boxes.csv", kind="boxes")
    assert len(boxes) == len(val.drop_duplicates(["timestamp", "x1", "y1", "x2", "y2"])) == 6
    assert (boxes["score"] == 1.0).all()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ds")] == []


# --- the loader reads the result ---------------------------------------------------------------


def test_the_dataset_loads_with_the_printed_config_overrides(cvat_file, video_dir, tmp_path):
    out = tmp_path / "ds"
    result = import_annotations(
        "cvat", [cvat_file], video_dir, out, ImportOptions(val_videos=("clip25",))
    )
    # Train reads the train ground truth: point it at the val file to see every keyframe.
    overrides = [*result.config_overrides, "AVA.TRAIN_GT_BOX_LISTS", "['ava_val_v2.2.csv']"]
    cfg = load_config(str(PROJECT_ROOT / "configs/test/SLOWFAST_TINY.yaml"), overrides)
    train = AvaDataset(cfg, "train")
    assert [(k.video_id, k.second) for k in train.keyframes] == [("clip25", s) for s in range(4)]
    assert train.keyframes[1].multi_hot(3).tolist() == [[1, 0, 0], [0, 0, 1]]  # stand; walk
    item = train[1]  # a random crop may leave out boxes, so only shapes are fixed
    assert item["labels"].shape[1] == 3
    assert item["orig_size"] == (HEIGHT, WIDTH)

    test = AvaDataset(cfg, "test")
    first = test[0]  # second 0: the clip centred on the first frame (clamped at the start)
    assert first["second"] == 0
    assert first["boxes_norm"].numpy() == pytest.approx(
        np.array([_norm(10, 20, 50, 100)]), abs=6e-4
    )
    frames = test.read_frames(3)  # second 3 = 25 fps frame 75, gray level 150 (lossy coding)
    center = frames[len(frames) // 2]
    assert abs(float(center.mean()) - 150) < 4


def test_files_of_the_same_video_merge_by_person_but_cvat_track_ids_must_be_unique(
    cvat_file, video_dir, tmp_path
):
    lines = CSV_ROWS.splitlines()
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("\n".join(lines[:3]) + "\n")
    second.write_text("\n".join([lines[0], *lines[3:5]]) + "\n")
    import_annotations("csv", [first, second], video_dir, tmp_path / "ds")
    gt = read_ava_csv(tmp_path / "ds/annotations/ava_train_v2.2.csv", kind="groundtruth")
    assert _boxes(gt, 4)[1][1] == [1, 3]  # stand from a.csv and walk from b.csv, one box

    with pytest.raises(ImportAnnotationError, match="the same track id for video 'clip25'"):
        import_annotations("cvat", [cvat_file, cvat_file], video_dir, tmp_path / "ds2")


# --- Files the synthetic generator writes, and the AVA-layer writers ----------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """3 generated videos of 5 s (30 fps) with their CVAT and VIA exports (custom ids 3..15)."""
    from detection.data.synthetic import generate_synthetic_ava

    root = tmp_path_factory.mktemp("generated")
    return generate_synthetic_ava(
        root,
        num_videos=3,
        num_val=1,
        seconds=5,
        seed=11,
        annotation_formats=("cvat", "via"),
        progress=False,
    )


def _by_person(table) -> dict[tuple[str, int, int], tuple[tuple[float, ...], set[int]]]:
    out: dict = {}
    for row in table.itertuples():
        key = (row.video_id, int(row.timestamp), int(row.person_id))
        box, actions = out.setdefault(key, ((row.x1, row.y1, row.x2, row.y2), set()))
        actions.add(int(row.action_id))
    return out


@pytest.mark.parametrize("fmt", ["cvat", "via"])
def test_generator_exports_import_back_to_its_ground_truth(generated, fmt, tmp_path):
    from detection.data.synthetic import CUSTOM_CLASSES

    custom = generated.root / "custom"
    inputs = (
        sorted((custom / "cvat").glob("*.xml")) if fmt == "cvat" else [custom / "via/project.json"]
    )
    assert len(inputs) == (3 if fmt == "cvat" else 1)
    options = ImportOptions(
        labelmap=custom / "labelmap.pbtxt", val_videos=generated.val_videos, link=True
    )
    result = import_annotations(fmt, inputs, generated.root / "videos", tmp_path / "ds", options)
    assert not result.report.malformed and not result.report.skipped
    overrides = dict(zip(result.config_overrides[::2], result.config_overrides[1::2], strict=True))
    assert overrides["MODEL.NUM_CLASSES"] == "15"
    assert overrides["AVA.VALID_FRAMES_END_SEC"] == str(generated.seconds - 1)
    labelmap = read_labelmap(
        tmp_path / "ds/annotations/ava_action_list_v2.2_for_activitynet_2019.pbtxt"
    )
    assert labelmap.names == dict(CUSTOM_CLASSES.values())

    to_custom = {generated_id: custom_id for generated_id, (custom_id, _) in CUSTOM_CLASSES.items()}
    for split in ("train", "val"):
        imported = _by_person(
            read_ava_csv(tmp_path / f"ds/annotations/ava_{split}_v2.2.csv", kind="groundtruth")
        )
        original = _by_person(
            read_ava_csv(generated.root / f"annotations/ava_{split}_v2.2.csv", kind="groundtruth")
        )
        excluded = read_excluded_timestamps(
            generated.root / f"annotations/ava_{split}_excluded_timestamps_v2.2.csv"
        )
        # Every person at every second 0..4 of the file; AVA's 902..903 are seconds 2..3.
        people = {(v, p) for v, _, p in original}
        assert set(imported) == {(v, s, p) for v, p in people for s in range(generated.seconds)}
        assert {v for v, _ in people} == set(
            generated.train_videos if split == "train" else generated.val_videos
        )
        for (video, second, person), (box, actions) in original.items():
            assert (video, second) not in excluded
            got_box, got_actions = imported[(video, second - 900, person)]
            assert got_box == pytest.approx(box, abs=1.1e-3)  # 3 decimals, pixels at 2 or 3
            assert got_actions == {to_custom[a] for a in actions}


def test_ava_dataset_files_read_back(tmp_path):
    from detection.ava.dataset_files import (
        GroundTruthBox,
        format_labelmap,
        write_groundtruth,
        write_labelmap,
        write_person_boxes,
    )

    names = {12: "say hi, wave (2 hands)", 3: "stand", 40: "ünïcode"}
    for dialect in ("item", "label"):
        write_labelmap(tmp_path / f"{dialect}.pbtxt", names, dialect=dialect)
        read = read_labelmap(tmp_path / f"{dialect}.pbtxt")
        assert read.names == names and list(read.names) == [3, 12, 40]
        assert set(read.groups.values()) == ({"PERSON_MOVEMENT"} if dialect == "label" else set())
    # What the reader would not read back as written is refused, as a user error.
    for bad in ("two\nlines", 'say "hi"', "back\\slash", ""):
        with pytest.raises(LabelMapError, match="cannot be written in a label map"):
            format_labelmap({1: bad})
    with pytest.raises(LabelMapError, match="used by ids 1 and 2"):
        format_labelmap({1: "a", 2: "a"})

    boxes = [
        GroundTruthBox("clip,take 2", 7, (0.5, 0.25, 0.75, 1.0), (12, 3), None),
        GroundTruthBox("clip,take 2", 7, (0.5, 0.25, 0.75, 1.0), (40,), 1),
        GroundTruthBox("a", 0, (0.0, 0.0, 0.1, 0.2), (), 5),
    ]
    write_groundtruth(tmp_path / "gt.csv", boxes)
    gt = read_ava_csv(tmp_path / "gt.csv", kind="groundtruth")
    assert gt["video_id"].tolist() == ["a", "clip,take 2", "clip,take 2", "clip,take 2"]
    assert gt["action_id"].fillna(-1).astype(int).tolist() == [-1, 40, 3, 12]
    assert gt["person_id"].fillna(-1).astype(int).tolist() == [5, 1, -1, -1]
    write_person_boxes(tmp_path / "boxes.csv", boxes)
    proposals = read_ava_csv(tmp_path / "boxes.csv", kind="boxes")
    assert len(proposals) == 2 and proposals["score"].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="inside \\[0, 1\\]"):
        write_groundtruth(tmp_path / "bad.csv", [GroundTruthBox("a", 1, (0.5, 0, 0.4, 1), ())])
    assert not (tmp_path / "bad.csv").exists()
