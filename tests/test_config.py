import pytest

from detection.config import ConfigError, get_cfg, load_config


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
