from pathlib import Path

import pytest
import yaml

from detection.config import ConfigError, get_cfg, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_are_a_fresh_copy():
    cfg = get_cfg()
    cfg.SLOWFAST.ALPHA = 2
    assert get_cfg().SLOWFAST.ALPHA == 8


def test_base_inheritance_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("SLOWFAST:\n  ALPHA: 4\nRESNET:\n  DEPTH: 101\n")
    (tmp_path / "child.yaml").write_text("_BASE_: base.yaml\nRESNET:\n  DEPTH: 50\n")
    cfg = load_config(str(tmp_path / "child.yaml"), ["RESNET.WIDTH_PER_GROUP", "8"])
    assert cfg.SLOWFAST.ALPHA == 4
    assert cfg.RESNET.DEPTH == 50
    assert cfg.RESNET.WIDTH_PER_GROUP == 8
    assert cfg.is_frozen()


def test_unknown_key_in_file_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("SLOWFAST:\n  ALPHAA: 4\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*SLOWFAST\.ALPHAA"):
        load_config(str(path))


def test_unknown_override_is_named():
    with pytest.raises(ConfigError, match="MODEL.NUM_CLASS"):
        load_config(None, ["MODEL.NUM_CLASS", "3"])


def test_odd_override_list_is_rejected():
    with pytest.raises(ConfigError, match="KEY VALUE"):
        load_config(None, ["MODEL.NUM_CLASSES"])


def test_base_cycle_is_reported(tmp_path):
    (tmp_path / "a.yaml").write_text("_BASE_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_BASE_: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(str(tmp_path / "a.yaml"))


def test_published_configs_set_the_values_that_differ_from_the_defaults():
    # PySlowFast's AVA models use alpha 4 and unaligned RoIAlign where the defaults (its own)
    # say 8 and aligned: the files must say so themselves, and load (LOSS_FUNC bce).
    for path in sorted((CONFIGS / "AVA").glob("*.yaml")):
        written = yaml.safe_load(path.read_text())
        assert written["DETECTION"]["ALIGNED"] is False
        assert written["MODEL"]["LOSS_FUNC"] == "bce"
        if written["MODEL"]["ARCH"] == "slowfast":
            assert written["SLOWFAST"]["ALPHA"] == 4
            assert written["SLOWFAST"]["FUSION_KERNEL_SZ"] in (5, 7)
        assert load_config(str(path)).MODEL.LOSS_FUNC == "bce"


def test_unimplemented_loss_in_a_file_is_refused_with_the_choices(tmp_path):
    path = tmp_path / "hinge.yaml"
    path.write_text("MODEL:\n  LOSS_FUNC: hinge\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    message = str(err.value)
    assert "hinge.yaml" in message and "MODEL.LOSS_FUNC" in message and "'hinge'" in message
    assert "'bce'" in message and "'focal'" in message and "'softmax'" in message
    assert "multi-label" in message and "one action per box" in message


def test_unimplemented_loss_override_is_refused_and_can_be_undone(tmp_path):
    with pytest.raises(ConfigError, match=r"command-line override: MODEL\.LOSS_FUNC.*'ce'"):
        load_config(None, ["MODEL.LOSS_FUNC", "ce"])
    path = tmp_path / "hinge.yaml"
    path.write_text("MODEL:\n  LOSS_FUNC: hinge\n")
    assert load_config(str(path), ["MODEL.LOSS_FUNC", "bce"]).MODEL.LOSS_FUNC == "bce"


@pytest.mark.parametrize(
    ("loss", "act"), [("bce", "sigmoid"), ("focal", "none"), ("softmax", "softmax")]
)
def test_losses_load_with_a_head_activation_that_fits(loss, act):
    cfg = load_config(None, ["MODEL.LOSS_FUNC", loss, "MODEL.HEAD_ACT", act])
    assert (cfg.MODEL.LOSS_FUNC, cfg.MODEL.HEAD_ACT) == (loss, act)


def test_softmax_loss_with_a_sigmoid_head_is_refused_naming_both_keys(tmp_path):
    path = tmp_path / "softmax.yaml"
    path.write_text("MODEL:\n  LOSS_FUNC: softmax\n")
    with pytest.raises(
        ConfigError,
        match=r"softmax\.yaml: MODEL\.LOSS_FUNC 'softmax'.*"
        r"MODEL\.HEAD_ACT 'sigmoid'.*'softmax'",
    ):
        load_config(str(path))
    with pytest.raises(ConfigError, match=r"command-line override: .*'bce'.*HEAD_ACT 'softmax'"):
        load_config(None, ["MODEL.HEAD_ACT", "softmax"])


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        (["MODEL.FOCAL_ALPHA", "1.5"], r"MODEL\.FOCAL_ALPHA must be in \[0, 1\] or -1"),
        (["MODEL.FOCAL_GAMMA", "-1.0"], r"MODEL\.FOCAL_GAMMA must be >= 0"),
    ],
)
def test_focal_parameters_out_of_range_are_refused(opts, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(None, opts)
    assert load_config(None, ["MODEL.FOCAL_ALPHA", "-1.0", "MODEL.FOCAL_GAMMA", "0.0"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[[1, 12], [1, 11]]", "new id 1 is mapped twice"),
        ("[[4, 12]]", r"new id 4 in \[4, 12\] is not in 1\.\.3 \(MODEL\.NUM_CLASSES\)"),
        ("[[1, 0]]", r"expected \[new_id, checkpoint_id\] pairs of ids >= 1, got \[1, 0\]"),
        ("[[1, 2, 3]]", r"expected \[new_id, checkpoint_id\] pairs of ids >= 1, got \[1, 2, 3\]"),
    ],
)
def test_malformed_class_maps_are_refused_naming_the_key(value, expected):
    opts = ["MODEL.NUM_CLASSES", "3", "TRAIN.CHECKPOINT_FILE_PATH", "ava.pyth"]
    with pytest.raises(ConfigError, match=r"TRAIN\.CHECKPOINT_CLASS_MAP: " + expected):
        load_config(None, [*opts, "TRAIN.CHECKPOINT_CLASS_MAP", value])
    ok = load_config(None, [*opts, "TRAIN.CHECKPOINT_CLASS_MAP", "[[1, 12], [3, 80]]"])
    assert ok.TRAIN.CHECKPOINT_CLASS_MAP == [[1, 12], [3, 80]]


def test_a_class_map_needs_a_checkpoint():
    with pytest.raises(ConfigError, match=r"CHECKPOINT_CLASS_MAP is set but .*FILE_PATH is empty"):
        load_config(None, ["TRAIN.CHECKPOINT_CLASS_MAP", "[[1, 12]]"])


def test_train_enable_is_not_a_key():
    # train_net always trains (test_net tests); a key that nothing reads would be ignored.
    with pytest.raises(ConfigError, match=r"TRAIN\.ENABLE"):
        load_config(None, ["TRAIN.ENABLE", "False"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "MODEL:\n  NUM_CLASSES: 5\n  ARCH: slow\n  NUM_CLASSES: 7\n",
            r"dup\.yaml:4: MODEL\.NUM_CLASSES given twice \(first on line 2\)",
        ),
        (
            "SOLVER:\n  BASE_LR: 0.1\nMODEL:\n  ARCH: slow\nSOLVER:\n  MAX_EPOCH: 3\n",
            r"dup\.yaml:5: SOLVER given twice \(first on line 1\)",
        ),
        (
            "MODEL: {NUM_CLASSES: 3, NUM_CLASSES: 4}\n",
            r"dup\.yaml:1: MODEL\.NUM_CLASSES given twice",
        ),
    ],
)
def test_a_key_given_twice_is_refused_naming_file_line_and_key(tmp_path, text, expected):
    # YAML itself would keep the last value silently.
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_config(str(path))


def test_a_key_given_twice_in_a_base_file_names_the_base(tmp_path):
    (tmp_path / "base.yaml").write_text("RESNET:\n  DEPTH: 101\n  DEPTH: 50\n")
    (tmp_path / "child.yaml").write_text("_BASE_: base.yaml\nRESNET:\n  DEPTH: 50\n")
    with pytest.raises(ConfigError, match=r"base\.yaml:3: RESNET\.DEPTH given twice"):
        load_config(str(tmp_path / "child.yaml"))


def test_a_child_overriding_its_base_and_yaml_merge_keys_are_not_duplicates(tmp_path):
    (tmp_path / "base.yaml").write_text("RESNET:\n  DEPTH: 101\n")
    # TEST takes TRAIN's values with a merge key (<<) and overrides one of them.
    (tmp_path / "child.yaml").write_text(
        "_BASE_: base.yaml\nRESNET:\n  DEPTH: 50\n"
        "TRAIN: &shared\n  BATCH_SIZE: 4\n  CHECKPOINT_FILE_PATH: w.pyth\n"
        "TEST:\n  <<: *shared\n  BATCH_SIZE: 2\n"
    )
    cfg = load_config(str(tmp_path / "child.yaml"))
    assert cfg.RESNET.DEPTH == 50
    assert (cfg.TRAIN.BATCH_SIZE, cfg.TEST.BATCH_SIZE) == (4, 2)
    assert cfg.TEST.CHECKPOINT_FILE_PATH == "w.pyth"
