"""The base configs of a search, and the parameters it may search or fix, checked before anything runs.

The sweeper composes the config that the sweep's fixed overrides give (one per
combination of the options of searched config groups) and checks every parameter the
search names, searched or fixed:

- a path of the composed config is set as Hydra sets it (``name=value``);
- a path that exists only as the default of a ``_target_``'s parameter (signature or
  dataclass field, filled in as recording does) is written ``++name=value``, so that no
  ``+`` is needed to search or fix it;
- anything else is refused in one line naming the nearest valid paths.

A parameter the user gives with ``+`` or ``++`` is their own addition and is taken as it
is. The bases, completed and flattened, are what past runs are compared with (see
:mod:`hyperspace_hydra.hpo.history`).
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from optuna.distributions import CategoricalDistribution

from hyperspace_hydra.composer import Compose
from hyperspace_hydra.config import flatten
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.hpo.history import base_key, comparable_config, left_out_paths
from hyperspace_hydra.hpo.space import Space, parameter_name
from hyperspace_hydra.identity import given_and_complete
from hyperspace_hydra.overrides import format_override, override_text

MAX_BASES = 256
"""How many combinations of searched config groups' options a search may have (each is composed)."""


@dataclass(frozen=True)
class SearchBases:
    """What :func:`search_bases` found: the fixed overrides as the jobs will carry them, the searched
    config groups, the searched parameters to write with ``++``, and the flattened base per group combination."""

    fixed: list[str]
    groups: list[str]
    added: list[str]
    bases: dict[str, dict[str, Any]]


def search_bases(
    space: Space, given: Sequence[str], fixed: Sequence[str], compose: Compose, is_group: Callable[[str], bool], history_ignore: Sequence[str]
) -> SearchBases:
    """Check the search's parameters and compose its bases (see the module docstring).

    ``given`` are the search's overrides as the user wrote them (to tell which parameters
    carry ``+``/``++``), ``history_ignore`` the study's own paths that compatibility does not compare.
    Raises :class:`HyperspaceError` for a parameter that is neither a config path nor a
    target's parameter, and for too many group combinations.
    """
    groups = [name for name in space if is_group(name)]
    parsed_fixed = OverridesParser.create().parse_overrides(list(fixed))
    values = [override for override in parsed_fixed if _sets_a_value(override, is_group)]
    structure = [override_text(override) for override in parsed_fixed if override not in values]
    user_added = {parameter_name(override) for override in OverridesParser.create().parse_overrides(list(given)) if override.is_add() or override.is_force_add()}
    checked = [*(name for name in space if name not in groups and name not in user_added), *(override.key_or_group for override in values)]
    added: set[str] = set()
    combinations = _group_combinations(space, groups)
    for choices in combinations:
        added |= _defaults_only(checked, compose([*structure, *_choosing(choices)]), choices if groups else {})
    fixed_as_run = [f"++{override_text(override)}" if override.key_or_group in added else override_text(override) for override in parsed_fixed]
    bases = {}
    for choices in combinations:
        _, complete = given_and_complete(compose([*fixed_as_run, *_choosing(choices)]))
        bases[base_key(choices)] = comparable_config(complete, left_out_paths(space, groups, history_ignore))
    return SearchBases(fixed_as_run, groups, [name for name in space if name in added], bases)


def _sets_a_value(override: Override, is_group: Callable[[str], bool]) -> bool:
    """Whether a fixed override plainly sets the value of a config path (not a group, not ``hydra``)."""
    key = override.key_or_group
    return override.type == OverrideType.CHANGE and override.package is None and not key.startswith("hydra.") and not is_group(key)


def _group_combinations(space: Space, groups: Sequence[str]) -> list[dict[str, Any]]:
    options = [distribution.choices if isinstance(distribution := space[group], CategoricalDistribution) else () for group in groups]
    count = 1
    for choices in options:
        count *= len(choices)
    if count > MAX_BASES:
        raise HyperspaceError(f"the searched config groups {', '.join(groups)} have {count} combinations of options, more than {MAX_BASES}: search fewer of them at once")
    return [dict(zip(groups, combination)) for combination in itertools.product(*options)]


def _choosing(choices: Mapping[str, Any]) -> list[str]:
    return [format_override(group, option) for group, option in choices.items()]


def _defaults_only(paths: Sequence[str], composed: Any, choices: Mapping[str, Any]) -> set[str]:
    """Which ``paths`` exist in the composed config only as target defaults; refuses paths that exist nowhere."""
    given, complete = given_and_complete(composed)
    given_paths, complete_paths = flatten(given, into_lists=True), flatten(complete, into_lists=True)
    defaults_only = set()
    for path in paths:
        if _has(given_paths, path):
            continue
        if not _has(complete_paths, path):
            raise _unknown_parameter(path, complete_paths, choices)
        defaults_only.add(path)
    return defaults_only


def _has(flat: Mapping[str, Any], path: str) -> bool:
    """Whether ``path`` is a value or a node of a flattened config."""
    return path in flat or any(key.startswith(path + ".") for key in flat)


def _unknown_parameter(path: str, flat: Mapping[str, Any], choices: Mapping[str, Any]) -> HyperspaceError:
    nearest = difflib.get_close_matches(path, list(flat), n=3, cutoff=0.5)
    where = f" (with {' '.join(_choosing(choices))})" if choices else ""
    hint = f"nearest: {', '.join(nearest)}" if nearest else "see the paths of python -m <app> --cfg job"
    return HyperspaceError(f"cannot search or fix {path!r}: it is neither in the config{where} nor a parameter of a _target_ ({hint})")
