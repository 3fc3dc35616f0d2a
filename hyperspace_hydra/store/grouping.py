"""Runs grouped by their config outside some paths (:meth:`Store.group_runs`): how a search judges
thousands of past runs by judging each distinct config once.

A search compares a past run's config with its own at every path but the searched and
ignored ones; runs that differ only at those paths get the same answer. The SQL backends
group in the database (the config without those paths is a JSON value it can group by),
so a store of 100,000 runs in a few dozen distinct settings returns a few dozen groups
with, per run, only its id, sweep, objective, result and searched values.
:func:`group_by_config` does the same in Python for a backend that reads the runs instead.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

GROUPED_RUN_FIELDS = ("config", "choices", "sweep_id", "status", "objective", "result", "info")
"""The run fields :func:`group_by_config` reads (of ``info`` only ``info.pruned`` is kept)."""


@dataclass(frozen=True)
class GroupedRun:
    """A run of a :class:`ConfigGroup`: what places it in a search, and its values at the paths asked for."""

    run_id: int
    sweep_id: int | None
    status: str
    objective: float | None
    result: Any
    pruned: dict[str, Any] | None
    """Where its pruner stopped a PRUNED run (``info.pruned``)."""
    values: dict[str, Any]
    """Each path asked for that the run's config has, with its value there (None for a null)."""


@dataclass(frozen=True)
class ConfigGroup:
    """Runs with equal choices whose configs are equal outside some paths (see :meth:`Store.group_runs`)."""

    config: dict[str, Any]
    """Their config without those paths (an empty one for runs without a config)."""
    choices: dict[str, Any] | None
    runs: list[GroupedRun] = field(default_factory=list)
    """Oldest first."""


def group_by_config(runs: Iterable[Mapping[str, Any]], without: Sequence[str], values: Sequence[str]) -> list[ConfigGroup]:
    """Group ``runs`` (documents with ``_id`` and :data:`GROUPED_RUN_FIELDS`) as :meth:`Store.group_runs` does."""
    groups: dict[str, ConfigGroup] = {}
    for run in sorted(runs, key=lambda run: run["_id"]):
        config = run.get("config") or {}
        rest = _config_without(config, without)
        key = json.dumps([rest, run.get("choices")], sort_keys=True, default=repr)
        group = groups.setdefault(key, ConfigGroup(rest, run.get("choices")))
        found = {path: value for path in values if (value := _value_at(config, path)) is not _ABSENT}
        pruned = (run.get("info") or {}).get("pruned")
        group.runs.append(GroupedRun(run["_id"], run.get("sweep_id"), run["status"], run.get("objective"), run.get("result"), pruned, found))
    return list(groups.values())


def _config_without(config: Mapping[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """A copy of ``config`` without the dotted ``paths`` (each a chain of mapping keys) and what lies under them."""
    rest = copy.deepcopy(dict(config))
    for path in paths:
        *parents, last = path.split(".")
        node: Any = rest
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return rest


_ABSENT = object()


def _value_at(config: Mapping[str, Any], path: str) -> Any:
    """The value at the dotted ``path`` (a chain of mapping keys) of ``config``, or ``_ABSENT``."""
    node: Any = config
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return _ABSENT
        node = node[key]
    return node
