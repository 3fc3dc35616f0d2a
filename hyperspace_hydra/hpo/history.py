"""Past runs as trials: which completed runs are compatible with a search, and where they lie.

A past run is history for a search when it COMPLETED with an objective, belongs to the
search's task, has a value inside the space for every searched parameter, and its
complete config equals the search's *base* config at every path outside the searched
parameters and the ignore list. Both sides have today's target defaults filled in, so
a run made before a parameter existed counts with its default, and a parameter a run
set with ``+``, ``++``, plainly or not at all (its default) is read the same way.

The base is the complete config that the sweep's fixed overrides compose to; a search
over config groups has one base per combination of their options. Ignored are the
top-level ``seed``, this tool's ``hyperspace`` settings (the ``hydra`` node is never
part of a run's config) and the paths a study lists in ``hydra.sweeper.history_ignore``
(each with everything under it). A run that is not compatible is counted by its first
reason, e.g. ``optimizer.momentum differs``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hyperspace_hydra.config import SETTINGS_KEY, fill_defaults, flatten
from hyperspace_hydra.hpo.space import Space, contains
from hyperspace_hydra.hpo.tuner import SearchSpec, Trial
from hyperspace_hydra.identity import objective_value

ALWAYS_IGNORED = ("seed", SETTINGS_KEY)
"""Config paths that never make a past run incompatible: replicates with other seeds are history."""
HISTORY_FIELDS = ("task", "objective", "result", "choices", "config")
"""The run fields that decide whether and where a run lies in a search."""
_ABSENT = object()
"""A path a flattened config does not have."""


def run_objective(run: Mapping[str, Any], metric: str | None) -> float | None:
    """The value a run scores: ``result[metric]`` when a metric is named, else its recorded objective."""
    return objective_value(run.get("result"), metric) if metric else run.get("objective")


def left_out_paths(space: Space, groups: Sequence[str], history_ignore: Sequence[str]) -> list[str]:
    """The config paths that compatibility does not compare: ignored ones and searched parameters (not groups)."""
    return [*ALWAYS_IGNORED, *history_ignore, *(name for name in space if name not in groups)]


def comparable_config(complete: Mapping[str, Any], left_out: Sequence[str]) -> dict[str, Any]:
    """A complete config flattened to dotted paths (list items too), without ``left_out`` paths and what lies under them."""
    return {path: value for path, value in flatten(complete, into_lists=True).items() if not _under(path, left_out)}


def _under(path: str, prefixes: Iterable[str]) -> bool:
    return any(path == prefix or path.startswith(prefix + ".") for prefix in prefixes)


def base_key(choices: Mapping[str, Any]) -> str:
    """Which base applies to the searched config groups' ``choices`` (group -> option)."""
    return json.dumps(sorted(choices.items()))


@dataclass(frozen=True)
class Verdict:
    """What a past run is to a search: a trial of its history, or the reason it is not."""

    trial: Trial | None = None
    reason: str | None = None


def judge(run: Mapping[str, Any], spec: SearchSpec) -> Verdict:
    """Whether ``run`` (a COMPLETED run of the spec's task, with :data:`HISTORY_FIELDS`) is history, see the module docstring."""
    value = run_objective(run, spec.metric)
    if value is None:
        return Verdict(reason="no objective")
    complete = fill_defaults(run.get("config") or {})
    params = searched_params(run, spec, complete)
    for name, distribution in spec.space.items():
        if name not in params:
            return Verdict(reason=f"{name} missing")
        if not contains(distribution, params[name]):
            return Verdict(reason=f"{name} outside the space")
    choices = run.get("choices") or {}
    base = spec.bases.get(base_key({group: choices.get(group) for group in spec.groups}))
    if base is None:
        return Verdict(reason="recorded before this search")
    differing = first_difference(base, comparable_config(complete, left_out_paths(spec.space, spec.groups, spec.history_ignore)))
    return Verdict(reason=f"{differing} differs") if differing else Verdict(trial=Trial(params, value))


def searched_params(run: Mapping[str, Any], spec: SearchSpec, complete: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The run's value of each searched parameter (a group's option, else the value at the path in its
    ``complete`` config, by default its config with today's defaults filled in); missing ones are left out."""
    choices = run.get("choices") or {}
    flat = flatten(fill_defaults(run.get("config") or {}) if complete is None else complete)
    found = {name: choices.get(name) if name in spec.groups else flat.get(name) for name in spec.space}
    return {name: value for name, value in found.items() if value is not None}


def first_difference(base: Mapping[str, Any], other: Mapping[str, Any]) -> str | None:
    """The first path (in the base's order, then the other's) whose values differ or that only one side has."""
    for path, value in base.items():
        if not same_value(value, other.get(path, _ABSENT)):
            return path
    return next((path for path in other if path not in base), None)


def same_value(first: Any, second: Any) -> bool:
    """Equal as configs mean it: ``1`` equals ``1.0``, but a boolean is never a number."""
    if isinstance(first, bool) or isinstance(second, bool):
        return type(first) is type(second) and first == second
    return first == second
