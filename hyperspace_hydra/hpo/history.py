"""Past runs as trials: which completed and pruned runs are compatible with a search, and where they lie.

A past run is history for a search when it COMPLETED with an objective, or was PRUNED by a
search's pruner watching the metric that this search's pruner watches (the objective's name
unless ``pruning_metric`` says otherwise; a pruned run is told as Optuna's pruned trial, with
its last value at the step it stopped: TPE ranks pruned trials by how far they got and where),
belongs to the search's task, has a value inside the space for every searched parameter, and its
complete config equals the search's *base* config at every path outside the searched
parameters and the ignore list. Both sides have today's target defaults filled in, so
a run made before a parameter existed counts with its default, and a parameter a run
set with ``+``, ``++``, plainly or not at all (its default) is read the same way.

The base is the complete config that the sweep's fixed overrides compose to; a search
over config groups has one base per combination of their options. Ignored are the
top-level ``seed``, this tool's ``hyperspace`` settings (the ``hydra`` node is never
part of a run's config) and the paths a study lists in ``hydra.sweeper.history_ignore``
(each with everything under it); a node that is empty, or holds only left-out paths,
holds no value. A run that is not compatible is counted by its first reason, e.g.
``optimizer.momentum differs``.

Runs come grouped by the store (:meth:`Store.group_runs`) by their config without the left-out
paths: all runs of a group are compared with the base at once, and only their objective and
searched values are looked at one by one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hyperspace_hydra.config import SETTINGS_KEY, fill_defaults, flatten
from hyperspace_hydra.hpo.space import Space, contains
from hyperspace_hydra.hpo.tuner import SearchSpec, Trial, pruning_metric
from hyperspace_hydra.identity import objective_value
from hyperspace_hydra.store.base import PRUNED
from hyperspace_hydra.store.grouping import ConfigGroup, GroupedRun

ALWAYS_IGNORED = ("seed", SETTINGS_KEY)
"""Config paths that never make a past run incompatible: replicates with other seeds are history."""
HISTORY_FIELDS = ("task", "objective", "result", "choices", "config")
"""The run fields that decide where a run of a search lies."""
_ABSENT = object()
"""A path a flattened config does not have."""


def run_objective(run: Mapping[str, Any], metric: str | None) -> float | None:
    """The value a run scores: ``result[metric]`` when a metric is named, else its recorded objective."""
    return objective_value(run.get("result"), metric) if metric else run.get("objective")


def left_out_paths(space: Space, groups: Sequence[str], history_ignore: Sequence[str]) -> list[str]:
    """The config paths that compatibility does not compare: ignored ones and searched parameters (not groups)."""
    return [*ALWAYS_IGNORED, *history_ignore, *(name for name in space if name not in groups)]


def comparable_config(complete: Mapping[str, Any], left_out: Sequence[str]) -> dict[str, Any]:
    """A complete config flattened to dotted paths (list items too), without ``left_out`` paths and what lies under
    them, and without empty mappings: a node holds no value of its own, so a node that holds only left-out paths
    is the same whether it still has them or not."""
    flat = flatten(complete, into_lists=True)
    return {path: value for path, value in flat.items() if not _under(path, left_out) and not _empty_mapping(value)}


def _empty_mapping(value: Any) -> bool:
    return isinstance(value, Mapping) and not value


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


def judge_groups(groups: Iterable[ConfigGroup], spec: SearchSpec) -> dict[int, tuple[int | None, Verdict]]:
    """Each run of ``groups`` (completed and pruned runs of the spec's task, grouped by :func:`grouping_paths`) with its sweep and
    its verdict, see the module docstring: what the runs of a group share is judged once, for all of them."""
    verdicts = {}
    for group in groups:
        shared = _judge_shared(group, spec)
        for run in group.runs:
            verdicts[run.run_id] = (run.sweep_id, _judge_run(run, shared, spec))
    return verdicts


def grouping_paths(spec: SearchSpec) -> list[str]:
    """The paths a store may leave out when it groups runs for :func:`judge_groups`: those compatibility does not
    compare, except a ``_target_`` (the defaults filled in beside it depend on it)."""
    return [path for path in left_out_paths(spec.space, spec.groups, spec.history_ignore) if path.rsplit(".", 1)[-1] != "_target_"]


def searched_paths(spec: SearchSpec) -> list[str]:
    """The config paths of the searched parameters (a searched group's option is in a run's choices instead)."""
    return [name for name in spec.space if name not in spec.groups]


@dataclass(frozen=True)
class _Shared:
    """What the runs of a group share: why none of them is history (None: each may be), and each searched
    parameter's value for a run that does not set it (its group's option, or its default)."""

    reason: str | None
    unset: dict[str, Any]


def _judge_shared(group: ConfigGroup, spec: SearchSpec) -> _Shared:
    complete = fill_defaults(group.config)
    choices = group.choices or {}
    flat = flatten(complete)
    unset = {name: choices.get(name) if name in spec.groups else flat.get(name) for name in spec.space}
    base = spec.bases.get(base_key({name: choices.get(name) for name in spec.groups}))
    if base is None:
        return _Shared("recorded before this search", unset)
    differing = first_difference(base, comparable_config(complete, left_out_paths(spec.space, spec.groups, spec.history_ignore)))
    return _Shared(f"{differing} differs" if differing else None, unset)


def _judge_run(run: GroupedRun, shared: _Shared, spec: SearchSpec) -> Verdict:
    unusable = _unusable(run, spec)
    if unusable is not None:
        return Verdict(reason=unusable)
    params = {name: _leaf(run.values[name]) if name in run.values else shared.unset[name] for name in spec.space}
    for name, distribution in spec.space.items():
        if params[name] is None:
            return Verdict(reason=f"{name} missing")
        if not contains(distribution, params[name]):
            return Verdict(reason=f"{name} outside the space")
    if shared.reason:
        return Verdict(reason=shared.reason)
    return Verdict(trial=pruned_trial(params, run.pruned or {}) if run.status == PRUNED else Trial(params, _value(run, spec)))


def _value(run: GroupedRun, spec: SearchSpec) -> float | None:
    return objective_value(run.result, spec.metric) if spec.metric else run.objective


def _unusable(run: GroupedRun, spec: SearchSpec) -> str | None:
    """Why a finished run tells the search nothing (None when it does): a completed run needs an objective, a pruned
    one the value it stopped at, of the metric the search's pruner watches (so its step and value mean the same)."""
    if run.status != PRUNED:
        return None if _value(run, spec) is not None else "no objective"
    stopped, watched = run.pruned or {}, pruning_metric(spec)
    if stopped.get("value") is None or stopped.get("step") is None:
        return "pruned, its last value unknown"
    return None if stopped.get("metric") == watched else f"pruned on {stopped.get('metric')}, not {watched or 'the objective'}"


def pruned_trial(params: dict[str, Any], stopped: Mapping[str, Any]) -> Trial:
    """The trial a PRUNED run is: stopped early where its pruner stopped it (``info.pruned``: step and value)."""
    return Trial(params, stopped.get("value"), pruned=True, step=stopped.get("step"))


def _leaf(value: Any) -> Any:
    """A value as :func:`flatten` shows it at its own path: a node by its ``_target_``; another node is no value."""
    return value.get("_target_") if isinstance(value, dict) else value


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
        if not same_value(value, other.get(path, _ABSENT)) and not _empty_mapping(value):  # a search recorded before empty nodes were left out
            return path
    return next((path for path in other if path not in base), None)


def same_value(first: Any, second: Any) -> bool:
    """Equal as configs mean it: ``1`` equals ``1.0``, but a boolean is never a number."""
    if isinstance(first, bool) or isinstance(second, bool):
        return type(first) is type(second) and first == second
    return first == second
