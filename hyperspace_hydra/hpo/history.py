"""Past runs as trials: which completed runs lie in a search space, and where.

A run counts when it COMPLETED with an objective, belongs to the same task, sets
every fixed override of the sweep to the same value, and has a value inside the
space for every searched parameter. A parameter is a config group (read from the
run's ``choices``) or a dotted config path (read from its complete config, with the
defaults of today's code filled in, so runs made before a parameter existed count
with its default).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hyperspace_hydra.config import SETTINGS_KEY, fill_defaults, flatten
from hyperspace_hydra.hpo.space import Space, contains
from hyperspace_hydra.overrides import fixed_override_values
from hyperspace_hydra.store import COMPLETED
from hyperspace_hydra.tracking import objective_value

_MISSING = object()


def run_objective(run: Mapping[str, Any], metric: str | None) -> float | None:
    """The value a run scores: ``result[metric]`` when a metric is named, else its recorded objective."""
    return objective_value(run.get("result"), metric) if metric else run.get("objective")


def parameter_values(run: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The run's value of each named parameter (group choice or config path); absent ones are left out."""
    choices = run.get("choices") or {}
    flat: dict[str, Any] | None = None
    values = {}
    for name in names:
        if name in choices:
            values[name] = choices[name]
            continue
        if flat is None:
            flat = flatten(fill_defaults(run.get("config") or {}))
        if flat.get(name, _MISSING) is not _MISSING:
            values[name] = flat[name]
    return values


def pinned_values(fixed: Sequence[str]) -> dict[str, Any]:
    """The value each fixed override sets; tool settings (``hyperspace.*``) are left out."""
    return {key: value for key, value in fixed_override_values(fixed).items() if not key.startswith(f"{SETTINGS_KEY}.")}


HISTORY_FIELDS = ("status", "task", "objective", "result", "choices", "config")
"""The run fields that decide whether and where a run lies in a space."""


def past_trials(
    runs: Iterable[Mapping[str, Any]], space: Space, fixed: Sequence[str], task: str | None, metric: str | None
) -> list[tuple[dict[str, Any], float]]:
    """``(params, value)`` of every run that lies in ``space`` (see the module docstring)."""
    pinned = pinned_values(fixed)
    return [trial for run in runs if (trial := past_trial(run, space, pinned, task, metric)) is not None]


def past_trial(
    run: Mapping[str, Any], space: Space, pinned: Mapping[str, Any], task: str | None, metric: str | None
) -> tuple[dict[str, Any], float] | None:
    """``(params, value)`` of the run if it lies in ``space`` with the ``pinned`` values (:func:`pinned_values`), else None."""
    value = run_objective(run, metric)
    if run.get("status") != COMPLETED or value is None or run.get("task") != task:
        return None
    if parameter_values(run, pinned) != pinned:
        return None
    params = parameter_values(run, space)
    if len(params) == len(space) and all(contains(space[name], value) for name, value in params.items()):
        return params, value
    return None
