"""Write values as Hydra command-line overrides, so that every job is stored as plain overrides.

Notebook forms (``submit(task="x", conf={...})``, grids) become override strings
that compose to the same config; the worker rebuilds every job from them.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from hydra.core.override_parser.types import Override

from hyperspace_hydra.errors import HyperspaceError

_UNQUOTED = re.compile(r"[A-Za-z_/][\w./:-]*\Z")
_KEYWORDS = frozenset({"null", "true", "false", "inf", "nan"})


def format_value(value: Any) -> str:
    """``value`` in Hydra's override grammar: null, bools, numbers, quoted strings, ``[...]``, ``{k:v}``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _format_float(value)
    if isinstance(value, str):
        return _format_string(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{key}:{format_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} value {value!r} as a Hydra override")


def _format_float(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


def _format_string(value: str) -> str:
    if _UNQUOTED.match(value) and value.lower() not in _KEYWORDS:
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def format_override(key: str, value: Any, prefix: str = "") -> str:
    """One override ``<prefix><key>=<value>``; ``prefix`` ``++`` sets or adds the key."""
    return f"{prefix}{key}={format_value(value)}"


def merge_overrides(conf: Mapping[str, Any], path: str = "") -> list[str]:
    """Overrides that merge the nested dict ``conf`` over a composed config (``key=value`` per leaf).

    Dicts merge key by key; any other value (lists included) replaces what is there, as
    ``OmegaConf.merge`` does into a Hydra config (struct mode): a key the config lacks is an
    error, as on the command line, so that a misspelt key is never kept beside the value it
    meant to change. A parameter a ``_target_`` takes from its code defaults is not lacking
    (:mod:`~hyperspace_hydra.target_overrides`); a new key is added by a ``+key=value`` override.
    """
    overrides = []
    for key, value in conf.items():
        dotted = f"{path}.{key}" if path else str(key)
        if isinstance(value, Mapping) and value:
            overrides += merge_overrides(value, dotted)
        else:
            overrides.append(format_override(dotted, value))
    return overrides


def choice_overrides(choices: Mapping[str, Any]) -> list[str]:
    """``key=value`` overrides for keyword arguments such as ``task="imdb_1k"`` or ``seed=3``."""
    return [format_override(key, value) for key, value in choices.items()]


def grid_overrides(grid: Mapping[str, Sequence[Any]]) -> Iterator[list[str]]:
    """Every combination of the grid's values, as override lists (the last key varies fastest).

    A value that is not a list or tuple is a single option. An empty list is a
    :class:`HyperspaceError` (it would make a grid of no job, and an enqueue of nothing).
    """
    keys = list(grid)
    options = [value if isinstance(value, (list, tuple)) else [value] for value in grid.values()]
    empty = [key for key, values in zip(keys, options) if not values]
    if empty:
        raise HyperspaceError(f"the grid gives {empty[0]} no value: a grid of no job enqueues nothing; list at least one value")
    for combination in itertools.product(*options):
        yield [format_override(key, value) for key, value in zip(keys, combination)]


def fixed_override_values(overrides: Sequence[str]) -> dict[str, Any]:
    """The value each ``key=value`` override sets, as Hydra parses it, by key without a ``+``/``++``
    prefix (sweeps and deletions are left out)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return {
        override.get_key_element().lstrip("+"): override.value()
        for override in parsed
        if not override.is_delete() and not override.is_sweep_override()
    }


def override_text(override: Override) -> str:
    """The text ``override`` was parsed from (Hydra types it optional; an override parsed from a string has it)."""
    if override.input_line is None:
        raise ValueError(f"the override {override} was not parsed from text")
    return override.input_line
