"""The ``.hydra`` files' YAML, written entry by entry and kept, is ``OmegaConf.to_yaml``'s byte for byte."""

from __future__ import annotations

from typing import Any

import pytest
from omegaconf import OmegaConf

from hyperspace_hydra import config_yaml

LONG = "a long value that PyYAML folds at eighty columns, " * 4
TRICKY = {
    "plain": "text",
    "looks like others": ["1", "1.0", "true", "null", "~", "", " padded ", "a: b", "- x", "#not a comment", "${interpolation}"],
    "numbers": [1, 1.0, -0.0, 1e300, float("inf"), True, False, None],
    "long": LONG,
    "long without spaces": "x" * 200,
    "lines": "first\nsecond\n\nfourth\n",
    "unicode": "ünïcødé ✓ 🚀",
    "control": "tab\there bell\a",
    "empty": {"dict": {}, "list": []},
    "nested": {"list of dicts": [{"a": 1, "b": [1, 2]}, {"c": {"d": None}}], "deeper": {"and": {"deeper": LONG}}},
    1: "an int key",
    "quote's": 'and "double"',
}


ODD_KEYS = {
    "true": {"a": 1},
    "": {"b": 2},
    "k" * 200: {"c": 3},
    "two\nlines": {"d": 4},
    "a: b": {"e": {"f": LONG}},
    "ünïcødé": {"g": "✓"},
    1: {"h": {"i": [1, {"j": 2}]}},
    "#": {"k": None},
}
"""Keys whose values are mappings, written by PyYAML in every way a key can be: plain, quoted, as a complex key."""


@pytest.mark.parametrize(
    "document",
    [TRICKY, {"hydra": TRICKY}, {"hydra": {}}, {}, {"only": 1}, {"hydra": {"run": {"dir": "x"}}, "other": 1}, ODD_KEYS, {"hydra": {"deep": ODD_KEYS}}, {"x": {"k": 1}, "a": {"x": {"k": 1}}}],
    ids=str,
)
def test_to_yaml_is_omegaconfs_byte_for_byte_cold_and_with_its_entries_kept(document: dict[Any, Any]) -> None:
    config = OmegaConf.create(document)
    config_yaml._entries.clear()
    assert config_yaml.to_yaml(config) == OmegaConf.to_yaml(config), "cold"
    assert config_yaml.to_yaml(config) == OmegaConf.to_yaml(config), "every entry kept"


@pytest.mark.parametrize("inside", [False, True], ids=["top", "in hydra"])
def test_a_kept_entry_is_never_taken_for_an_equal_value_of_another_type(inside: bool) -> None:
    config_yaml._entries.clear()
    for value in [1, True, 1.0, "1", [1], {"a": 1}, {"a": True}, {1: "a"}, {"1": "a"}]:
        config = OmegaConf.create({"hydra": {"key": value}} if inside else {"key": value})
        assert config_yaml.to_yaml(config) == OmegaConf.to_yaml(config), repr(value)


def test_a_kept_entry_is_never_taken_for_one_under_an_equal_key_of_another_type() -> None:
    config_yaml._entries.clear()
    for key in [1, True, 1.0, "1"]:
        config = OmegaConf.create({"hydra": {key: {"inner": {"value": 1}}}})
        assert config_yaml.to_yaml(config) == OmegaConf.to_yaml(config), repr(key)


def test_a_value_changed_deep_inside_writes_only_the_entries_on_its_way_byte_for_byte() -> None:
    config_yaml._entries.clear()
    config = OmegaConf.create({"seed": 3, "hydra": {"help": {"template": LONG}, "runtime": {"version": "1.3", "output_dir": "/a", "choices": {"db": "x"}}}})
    config_yaml.remember(config)
    kept = dict(config_yaml._entries)
    config.hydra.runtime.output_dir = "/a/much/longer/directory/ünïcødé/" + "x" * 80
    hydra = OmegaConf.masked_copy(config, ["hydra"])
    assert config_yaml.to_yaml(hydra) == OmegaConf.to_yaml(hydra)
    written = sorted(text.lstrip().split(":")[0] for known, text in config_yaml._entries.items() if known not in kept)
    assert written == ["hydra", "output_dir", "runtime"], "help, version and choices were kept"


def test_remember_writes_the_entries_of_both_files_of_a_full_config() -> None:
    config_yaml._entries.clear()
    config = OmegaConf.create({"task": {"lr": 0.1}, "seed": 1, "hydra": {"job": {"name": "x"}, "verbose": False}})
    config_yaml.remember(config)
    kept = dict(config_yaml._entries)
    task = OmegaConf.masked_copy(config, ["task", "seed"])
    assert config_yaml.to_yaml(task) == OmegaConf.to_yaml(task)
    assert config_yaml.to_yaml(OmegaConf.masked_copy(config, ["hydra"])) == OmegaConf.to_yaml(OmegaConf.masked_copy(config, ["hydra"]))
    assert config_yaml._entries == kept, "nothing new to write after remember"
