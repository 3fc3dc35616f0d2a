"""Complete configs: target defaults at depth, plain data, hashing, flattening."""

from __future__ import annotations

import dataclasses
import sys
import types

import omegaconf.base
import pytest
from omegaconf import OmegaConf

from hyperspace_hydra import backfill
from hyperspace_hydra.config import (
    REPR_MARKER,
    config_hash,
    fill_defaults,
    flatten,
    keep_interpolation_parses,
    parse_interpolations,
    target_defaults,
    to_plain,
)


@dataclasses.dataclass
class Inner:
    width: int = 3
    tags: list = dataclasses.field(default_factory=lambda: ["a"])


def outer(depth: int, inner: object = None, rate: float = 0.5, *args: object, strict: bool = True, **kwargs: object) -> None:
    """A target with every kind of parameter."""


def with_unstorable_default(callback: object = print, thing: object = object()) -> None:
    """A target whose defaults are not plain data."""


def test_target_defaults_skip_required_and_variadic_parameters() -> None:
    assert target_defaults(outer) == {"inner": None, "rate": 0.5, "strict": True}
    assert target_defaults(Inner) == {"width": 3, "tags": ["a"]}


def test_defaults_are_filled_at_depth_in_dicts_and_lists() -> None:
    config = {
        "model": {
            "_target_": f"{__name__}.outer",
            "depth": 2,
            "inner": {"_target_": f"{__name__}.Inner", "width": 5},
            "blocks": [{"_target_": f"{__name__}.Inner"}],
        },
        "seed": 1,
    }
    filled = fill_defaults(config)
    assert filled["model"]["rate"] == 0.5 and filled["model"]["strict"] is True
    assert filled["model"]["inner"] == {"_target_": f"{__name__}.Inner", "width": 5, "tags": ["a"]}
    assert filled["model"]["blocks"] == [{"_target_": f"{__name__}.Inner", "width": 3, "tags": ["a"]}]
    assert config["model"]["inner"] == {"_target_": f"{__name__}.Inner", "width": 5}, "the input is not modified"


def test_given_values_win_over_defaults() -> None:
    filled = fill_defaults({"_target_": f"{__name__}.outer", "depth": 1, "rate": 0.9, "strict": False})
    assert filled["rate"] == 0.9 and filled["strict"] is False


def test_unimportable_target_is_left_as_given() -> None:
    config = {"_target_": "no_such_module.Thing", "x": 1}
    assert fill_defaults(config) == config


def test_a_new_parameter_with_a_default_appears_in_the_complete_config(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("evolving_module")

    def model(depth: int = 1) -> None: ...

    module.model = model
    monkeypatch.setitem(sys.modules, "evolving_module", module)
    before = fill_defaults({"_target_": "evolving_module.model"})

    def model_with_new_parameter(depth: int = 1, dropout: float = 0.0) -> None: ...

    module.model = model_with_new_parameter
    after = fill_defaults({"_target_": "evolving_module.model"})
    assert before == {"_target_": "evolving_module.model", "depth": 1}
    assert after == {"_target_": "evolving_module.model", "depth": 1, "dropout": 0.0}


def test_values_that_are_not_plain_data_become_stable_repr_markers() -> None:
    first = fill_defaults({"_target_": f"{__name__}.with_unstorable_default"})
    second = fill_defaults({"_target_": f"{__name__}.with_unstorable_default"})
    assert first["callback"] == {REPR_MARKER: "<built-in function print>"}
    assert first["thing"] == {REPR_MARKER: "<object object>"}, "memory addresses are removed"
    assert config_hash(first) == config_hash(second)


def test_to_plain_handles_common_python_values() -> None:
    import enum
    import pathlib

    import numpy

    class Color(enum.Enum):
        red = 1

    assert to_plain({"a": (1, 2), 3: pathlib.Path("/x"), "c": Color.red, "n": numpy.float64(0.5), "inf": float("inf")}) == {
        "a": [1, 2],
        "3": "/x",
        "c": "red",
        "n": 0.5,
        "inf": "inf",
    }
    assert to_plain(Inner()) == {"width": 3, "tags": ["a"]}


def test_hash_ignores_the_hyperspace_settings_node_and_key_order() -> None:
    base = {"a": 1, "b": {"c": [1, 2]}}
    assert config_hash(base) == config_hash({"b": {"c": [1, 2]}, "a": 1, "hyperspace": {"store": "sqlite:///x.db"}})
    assert config_hash(base) != config_hash({"a": 2, "b": {"c": [1, 2]}})


def test_flatten_names_a_target_by_its_node() -> None:
    assert flatten({"agg": {"_target_": "m.Mean", "k": {"j": 1}}, "seed": 2, "l": [1]}) == {
        "agg": "m.Mean",
        "agg.k.j": 1,
        "seed": 2,
        "l": [1],
    }


def test_flatten_into_lists_keys_each_item_by_its_index() -> None:
    config = {"blocks": [{"_target_": "m.Block", "width": 3}, 7], "empty": [], "seed": 2}
    assert flatten(config, into_lists=True) == {"blocks.0": "m.Block", "blocks.0.width": 3, "blocks.1": 7, "empty": [], "seed": 2}


def test_backfill_adds_a_new_parameter_of_a_target_inside_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("evolving_blocks")

    def block(width: int = 3) -> None: ...

    module.block = block
    monkeypatch.setitem(sys.modules, "evolving_blocks", module)
    given = {"blocks": [{"_target_": "evolving_blocks.block"}, {"_target_": "evolving_blocks.block", "width": 5}]}
    run = {"_id": 1, "config_given": given, "config": fill_defaults(given)}

    def block_with_new_parameter(width: int = 4, gated: bool = False) -> None: ...

    module.block = block_with_new_parameter
    [item] = backfill.plan([run])
    assert item.added == {"blocks.0.gated": False, "blocks.1.gated": False}
    assert item.changed_defaults == {"blocks.0.width": (3, 4)}, "reported, not applied: the run ran with 3"
    assert [block["width"] for block in item.config["blocks"]] == [3, 5]


def test_a_kept_parse_resolves_each_config_to_its_own_values() -> None:
    keep_interpolation_parses()
    text = "${a}/${oc.env:NO_SUCH_VARIABLE,${b.c}}.log"
    parse_interpolations({"x": [text], "plain": "no interpolation"})
    kept = omegaconf.base.parse.cache_info().hits  # type: ignore[attr-defined]
    first, second = (OmegaConf.create({"a": a, "b": {"c": c}, "x": text}) for a, c in (("one", 1), ("two", 2)))
    assert (first.x, second.x, first.x) == ("one/1.log", "two/2.log", "one/1.log")
    assert omegaconf.base.parse.cache_info().hits == kept + 3, "each resolution found the parse kept"  # type: ignore[attr-defined]
