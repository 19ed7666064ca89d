import pytest

from detection.data.labelmap import LabelMapError, read_labelmap


def test_full_v22_map_has_80_classes_with_groups(shared_dir):
    labelmap = read_labelmap(shared_dir / "data/ava/ava_action_list_v2.2.pbtxt")
    assert len(labelmap) == 80
    assert labelmap.ids == list(range(1, 81))
    assert labelmap.names[1] == "bend/bow (at the waist)"
    assert set(labelmap.groups.values()) == {
        "PERSON_MOVEMENT", "OBJECT_MANIPULATION", "PERSON_INTERACTION"
    }
    assert len(labelmap.groups) == 80


def test_evaluation_map_is_the_60_class_subset(shared_dir):
    full = read_labelmap(shared_dir / "data/ava/ava_action_list_v2.2.pbtxt")
    evaluated = read_labelmap(
        shared_dir / "data/ava/ava_action_list_v2.2_for_activitynet_2019.pbtxt"
    )
    assert len(evaluated) == 60
    assert not evaluated.groups
    assert 2 not in evaluated  # "crawl" is not evaluated
    for action_id, name in evaluated.names.items():
        assert full.names[action_id] == name


def test_shipped_copies_match_shared(shared_dir, project_root):
    for name in ("ava_action_list_v2.2.pbtxt", "ava_action_list_v2.2_for_activitynet_2019.pbtxt"):
        assert (project_root / "data/ava" / name).read_bytes() == (
            shared_dir / "data/ava" / name
        ).read_bytes()


def test_escaped_quotes_in_names(tmp_path):
    path = tmp_path / "map.pbtxt"
    path.write_text('item {\n  name: "say \\"hi\\""\n  id: 7\n}\n')
    assert read_labelmap(path).names == {7: 'say \\"hi\\"'}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('item {\n  name: "a"\n  id: 1\n}\nitem {\n  name: "b"\n  id: 1\n}\n', r":5: action id 1 defined twice"),
        ('item {\n  name: "a"\n}\n', r":1: entry needs 'name'"),
        ('item {\n  name: "a"\n  id: x\n}\n', r"id 'x' is not an integer"),
        ('item {\n  name: "a"\n  id: 1\n', r"not closed"),
        ('garbage\n', r":1: expected 'label \{'"),
        ('', r"no label entries"),
    ],
)
def test_malformed_maps_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.pbtxt"
    path.write_text(text)
    with pytest.raises(LabelMapError, match=message):
        read_labelmap(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(LabelMapError, match="nope.pbtxt"):
        read_labelmap(tmp_path / "nope.pbtxt")
