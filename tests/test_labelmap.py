import pytest

from detection.ava.labelmap import LabelMapError, read_labelmap
from detection.ava.packaged import ALL_CLASSES, EVALUATED_CLASSES, packaged_labelmap_path


def test_full_v22_map_has_80_classes_with_groups():
    labelmap = read_labelmap(packaged_labelmap_path(ALL_CLASSES))
    assert len(labelmap) == 80
    assert labelmap.ids == list(range(1, 81))
    assert labelmap.names[1] == "bend/bow (at the waist)"
    assert set(labelmap.groups.values()) == {
        "PERSON_MOVEMENT",
        "OBJECT_MANIPULATION",
        "PERSON_INTERACTION",
    }
    assert len(labelmap.groups) == 80


def test_evaluation_map_is_the_60_class_subset():
    full = read_labelmap(packaged_labelmap_path(ALL_CLASSES))
    evaluated = read_labelmap(packaged_labelmap_path(EVALUATED_CLASSES))
    assert len(evaluated) == 60
    assert not evaluated.groups
    assert 2 not in evaluated  # "crawl" is not evaluated
    for action_id, name in evaluated.names.items():
        assert full.names[action_id] == name


def test_packaged_copies_match_shared(shared_dir):
    for name in (ALL_CLASSES, EVALUATED_CLASSES):
        assert (
            packaged_labelmap_path(name).read_bytes()
            == (shared_dir / "data/ava" / name).read_bytes()
        )


def test_escaped_quotes_in_names(tmp_path):
    path = tmp_path / "map.pbtxt"
    path.write_text('item {\n  name: "say \\"hi\\""\n  id: 7\n}\n')
    assert read_labelmap(path).names == {7: 'say \\"hi\\"'}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'item {\n  name: "a"\n  id: 1\n}\nitem {\n  name: "b"\n  id: 1\n}\n',
            r":5: action id 1 defined twice",
        ),
        ('item {\n  name: "a"\n}\n', r":1: entry needs 'name'"),
        ('item {\n  name: "a"\n  id: x\n}\n', r"id 'x' is not an integer"),
        ('item {\n  name: "a"\n  id: 1\n', r"not closed"),
        ("garbage\n", r":1: expected 'label \{'"),
        ("", r"no label entries"),
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


def test_duplicate_names_are_an_error_naming_both_lines(tmp_path):
    # Per-class results are keyed by name: a second "stand" would silently drop a class.
    path = tmp_path / "dup.pbtxt"
    path.write_text('item {\n  name: "stand"\n  id: 1\n}\nitem {\n  name: "stand"\n  id: 2\n}\n')
    with pytest.raises(LabelMapError, match=r"dup.pbtxt:5: class name 'stand' defined twice .*1"):
        read_labelmap(path)


def test_encoding_and_huge_ids_are_one_line_errors(tmp_path):
    path = tmp_path / "map.pbtxt"
    path.write_bytes(b'\xef\xbb\xbfitem {\r\n  name: "a"\r\n  id: 1\r\n}\r\n')
    assert read_labelmap(path).names == {1: "a"}  # byte-order mark and CRLF
    path.write_bytes(b'item {\n  name: "\xe9"\n  id: 1\n}\n')
    with pytest.raises(LabelMapError, match=r"map.pbtxt:2: not UTF-8"):
        read_labelmap(path)
    path.write_text(f'item {{\n  name: "a"\n  id: {"9" * 30}\n}}\n')
    with pytest.raises(LabelMapError, match=r"map.pbtxt:1: id 9+ is not in 1\.\.2147483647"):
        read_labelmap(path)
    path.write_text("x" * 10_000_000 + "\n")
    with pytest.raises(LabelMapError) as error:
        read_labelmap(path)
    assert len(str(error.value)) < 200
