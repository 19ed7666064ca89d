import json
import math
import subprocess
import sys

import pandas as pd
import pytest

from detection.ava.labelmap import LabelMap, read_labelmap
from detection.ava.packaged import packaged_labelmap_path
from detection.errors import UserError
from detection.evaluation.frame_map import FrameMapResult
from detection.evaluation.report import (
    ResultFileError,
    SavedResult,
    compare,
    group_map,
    load_result,
    per_class_table,
    plot_per_class,
    to_markdown,
    write_table_csv,
)

GROUPS = LabelMap(
    names={11: "sit", 12: "stand", 17: "carry/hold (an object)", 80: "watch (a person)"},
    groups={
        11: "PERSON_MOVEMENT",
        12: "PERSON_MOVEMENT",
        17: "OBJECT_MANIPULATION",
        80: "PERSON_INTERACTION",
    },
)
RESULT = FrameMapResult(
    mAP=0.5,
    per_class={"sit": 0.2, "stand": 0.6, "carry/hold (an object)": 0.9, "watch (a person)": 0.3},
    num_groundtruth={"sit": 4, "stand": 5, "carry/hold (an object)": 6, "watch (a person)": 7},
    num_detections={"sit": 10, "stand": 11, "carry/hold (an object)": 12, "watch (a person)": 13},
    num_true_positives={"sit": 1, "stand": 2, "carry/hold (an object)": 3, "watch (a person)": 4},
    class_ids={"sit": 11, "stand": 12, "carry/hold (an object)": 17, "watch (a person)": 80},
)


def test_per_class_table_sorted_by_ap_with_groups_and_counts():
    table = per_class_table(RESULT, GROUPS)
    assert table["class"].tolist() == ["carry/hold (an object)", "stand", "watch (a person)", "sit"]
    assert table.loc[0].to_dict() == {
        "class": "carry/hold (an object)",
        "ap": 0.9,
        "group": "OBJECT_MANIPULATION",
        "action_id": 17,
        "groundtruth": 6,
        "detections": 12,
        "true_positives": 3,
    }


def test_group_map_is_the_mean_over_each_groups_classes():
    # PERSON_MOVEMENT: (0.2 + 0.6) / 2; the others have one class each.
    assert group_map(RESULT, GROUPS) == {
        "PERSON_MOVEMENT": pytest.approx(0.4),
        "OBJECT_MANIPULATION": 0.9,
        "PERSON_INTERACTION": 0.3,
    }


def test_real_v22_label_map_gives_the_three_ava_groups(shared_dir):
    groups = read_labelmap(packaged_labelmap_path("ava_action_list_v2.2.pbtxt"))
    assert set(group_map(RESULT, groups)) == {
        "PERSON_MOVEMENT",
        "OBJECT_MANIPULATION",
        "PERSON_INTERACTION",
    }


def test_markdown_and_csv(tmp_path):
    table = per_class_table(RESULT, GROUPS)
    lines = to_markdown(table).splitlines()
    assert (
        lines[0] == "| class | ap | group | action_id | groundtruth | detections | true_positives |"
    )
    assert lines[1] == "|---|---:|---|---:|---:|---:|---:|"
    assert lines[2] == "| carry/hold (an object) | 0.9000 | OBJECT_MANIPULATION | 17 | 6 | 12 | 3 |"
    path = tmp_path / "tables" / "per_class.csv"
    write_table_csv(table, path)
    read = pd.read_csv(path)
    assert read["class"].tolist() == table["class"].tolist()
    assert read["ap"].tolist() == pytest.approx(table["ap"].tolist())


def test_markdown_escapes_pipes():
    table = pd.DataFrame({"class": ["a|b"], "ap": [0.5]})
    assert to_markdown(table).splitlines()[2] == "| a\\|b | 0.5000 |"


def test_plot_writes_a_png(tmp_path):
    path = tmp_path / "plots" / "ap.png"
    plot_per_class(RESULT, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_saved_result_round_trip_and_errors(tmp_path):
    path = tmp_path / "result.json"
    RESULT.to_json(path)
    saved = load_result(path)
    assert saved == SavedResult(mAP=0.5, per_class=RESULT.per_class)
    assert per_class_table(saved).columns.tolist() == ["class", "ap"]


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"map": 1}', r"bad\.json: no key 'mAP'"),
        ('{"mAP": 0.5,\n "per_class": {"sit": 0.5,}}', r"bad\.json:2: not valid JSON"),
        ("[0.5]", r"bad\.json: expected a JSON object .* got a JSON array"),
        ('{"mAP": 0.5, "per_class": [0.5]}', r"bad\.json: 'per_class' is a JSON array"),
        ('{"mAP": "0.5", "per_class": {}}', r"bad\.json: 'mAP' is \"0\.5\", expected a number"),
        ('{"mAP": 0.5, "per_class": {"sit": null}}', r"bad\.json: per_class\['sit'\] is null"),
        ('{"mAP": 0.5, "per_class": {"sit": true}}', r"bad\.json: per_class\['sit'\] is true"),
    ],
)
def test_a_malformed_result_json_is_a_user_error_naming_the_file(tmp_path, text, message):
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    with pytest.raises(ResultFileError, match=message) as error:
        load_result(bad)
    assert isinstance(error.value, UserError) and isinstance(error.value, ValueError)


def test_a_missing_result_json_is_a_user_error_naming_the_file(tmp_path):
    with pytest.raises(ResultFileError, match=r"cannot read result \S*missing\.json"):
        load_result(tmp_path / "missing.json")


def test_compare_side_by_side_sorted_by_difference():
    first = SavedResult(mAP=0.4, per_class={"sit": 0.2, "stand": 0.6})
    second = SavedResult(mAP=0.5, per_class={"sit": 0.5, "stand": 0.5, "walk": 0.1})
    table = compare(first, second, names=("old", "new"))
    assert table.columns.tolist() == ["class", "old", "new", "new - old"]
    assert table["class"].tolist() == ["sit", "stand", "walk", "mAP"]
    assert table["new - old"].tolist()[:2] == pytest.approx([0.3, -0.1])
    assert math.isnan(table.loc[2, "old"])  # "walk" has no AP in the first result
    assert table.iloc[-1].tolist()[1:] == pytest.approx([0.4, 0.5, 0.1])


def test_compare_tool_with_a_json_and_a_detections_csv(tmp_path, project_root):
    labelmap = tmp_path / "labelmap.pbtxt"
    labelmap.write_text('item {\n  name: "stand"\n  id: 12\n}\n')
    gt = tmp_path / "gt.csv"
    gt.write_text("v,0902,0.0,0.0,1.0,1.0,12,0\nv,0903,0.0,0.0,1.0,1.0,12,0\n")
    detections = tmp_path / "detections.csv"
    detections.write_text("v,0902,0.0,0.0,1.0,1.0,12,0.9\n")  # finds 1 of 2: AP 0.5
    saved = tmp_path / "old.json"
    saved.write_text(json.dumps({"mAP": 0.25, "per_class": {"stand": 0.25}}))
    completed = subprocess.run(
        [
            sys.executable,
            str(project_root / "tools/compare_results.py"),
            str(saved),
            str(detections),
            "-l",
            str(labelmap),
            "-g",
            str(gt),
            "--table-csv",
            str(tmp_path / "cmp.csv"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = completed.stdout.splitlines()
    assert lines[0] == "| class | old.json | detections.csv | detections.csv - old.json |"
    assert lines[2] == "| stand | 0.2500 | 0.5000 | 0.2500 |"
    assert lines[3] == "| mAP | 0.2500 | 0.5000 | 0.2500 |"
    assert (tmp_path / "cmp.csv").exists()
