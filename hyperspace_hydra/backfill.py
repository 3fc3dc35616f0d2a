"""Keep old runs comparable as a study grows: write today's defaults of new parameters into past runs.

For each run, the complete config is completed again with the current code: every
parameter that a target has now but the run's config lacks is added with its
default, and the hash is recomputed. The config before the first backfill is kept
in ``info.backfill`` with what was added and when. A default that changed for a
parameter the run has (filled from a default when it ran) is reported, never applied:
the run really ran with the old value. Items of lists count by their index
(``blocks.0.width``), so a target inside a list is back-filled like any other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hyperspace_hydra.config import config_hash, fill_defaults, flatten
from hyperspace_hydra.store import Store, utcnow


@dataclass
class BackfillPlan:
    """What backfill would do to one run."""

    run_id: int | None
    """None for a run not yet in a store (one being imported)."""
    config: dict[str, Any]
    added: dict[str, Any] = field(default_factory=dict)
    changed_defaults: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def plan(runs: Iterable[Mapping[str, Any]]) -> list[BackfillPlan]:
    """The plan for every run that gains parameters or has a changed default (others are left out)."""
    plans = (plan_for(run) for run in runs)
    return [item for item in plans if item.added or item.changed_defaults]


def plan_for(run: Mapping[str, Any]) -> BackfillPlan:
    """What backfill would do to one run (nothing, when both ``added`` and ``changed_defaults`` are empty)."""
    recorded = run.get("config") or {}
    completed = fill_defaults(recorded)
    before, after = _flat(recorded), _flat(completed)
    given = _flat(run.get("config_given") or {})
    todays = _flat(fill_defaults(run.get("config_given") or {}))
    return BackfillPlan(
        run.get("_id"),
        completed,
        added={key: value for key, value in after.items() if key not in before},
        changed_defaults={
            key: (value, todays[key]) for key, value in before.items() if key not in given and key in todays and todays[key] != value
        },
    )


def _flat(config: Mapping[str, Any]) -> dict[str, Any]:
    return flatten(config, into_lists=True)


def apply(store: Store, run: Mapping[str, Any], item: BackfillPlan) -> None:
    """Write the added parameters of ``item`` into ``run``, keeping its first original config in ``info.backfill``."""
    if item.run_id is None:
        raise ValueError("a backfill plan of a run that is in no store cannot be applied to one")
    store.rewrite_config(item.run_id, item.config, config_hash(item.config), backfilled_info(run, item))


def backfilled_info(run: Mapping[str, Any], item: BackfillPlan) -> dict[str, Any]:
    """The run's ``info`` once ``item`` is applied: ``info.backfill`` gains an entry saying what was added and when
    (the first entry also keeps the config as it was)."""
    info = dict(run.get("info") or {})
    history = list(info.get("backfill") or [])
    entry: dict[str, Any] = {"at": utcnow().isoformat(), "added": item.added}
    if not history:
        entry["original_config"] = run.get("config")
    info["backfill"] = [*history, entry]
    return info
