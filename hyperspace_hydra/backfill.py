"""Keep old runs comparable as a study grows: write today's defaults of new parameters into past runs.

For each run, the complete config is completed again with the current code: every
parameter that a target has now but the run's config lacks is added with its
default, and the hash is recomputed. The config before the first backfill is kept
in ``info.backfill`` with what was added and when. A default that changed for a
parameter the run has (filled from a default when it ran) is reported, never applied:
the run really ran with the old value. Items of lists count by their index
(``blocks.0.width``), so a target inside a list is back-filled like any other.

A run imported from Sacred without the study's app (no config hash yet) is *adopted* by the
first backfill with an app: completed the same way, hashed, and given the study's name, the
choices its config holds, its task and objective, as an import with the app would have.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from hyperspace_hydra.app import App
from hyperspace_hydra.config import config_hash, fill_defaults, flatten, plain, task_config
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.identity import objective_value
from hyperspace_hydra.store import Store, utcnow
from hyperspace_hydra.store.base import Adoption, Condition


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


# Making a run recorded without the study's app a run of the study


class StudyContext:
    """What a study's app adds to an imported run: its experiment name, objective, and the node of each
    option of its config groups (composed once), to find the run's choices."""

    def __init__(self, app: App) -> None:
        self.module = app.module
        self.objective_key = app.settings().objective
        self._options = list(_group_options(app))

    def choices(self, config: Mapping[str, Any]) -> dict[str, str]:
        """The option of each config group whose node, with today's defaults, is the node ``config`` holds there."""
        chosen: dict[str, str] = {}
        for group, option, node in self._options:
            if group not in chosen and _node_at(config, group.split("/")) == node:
                chosen[group] = option
        return chosen


def _group_options(app: App) -> Iterator[tuple[str, str, Any]]:
    """(group, option, the option's node with today's defaults) for every option of the app's config groups."""
    loader = app.hydra().config_loader
    groups = [group for group in loader.list_groups("") if group != "hydra"]
    while groups:
        group = groups.pop()
        groups.extend(f"{group}/{child}" for child in loader.list_groups(group))
        for option in loader.get_group_options(group):
            try:
                composed = plain(task_config(app.compose([f"{group}={option}"])))
            except HyperspaceError:
                continue  # a group the primary config does not choose from: no run holds its node
            yield group, option, fill_defaults(_node_at(composed, group.split("/")))


def _node_at(config: Any, keys: list[str]) -> Any:
    for key in keys:
        if not isinstance(config, Mapping) or key not in config:
            return None
        config = config[key]
    return config


def as_study_run(document: dict[str, Any], study: StudyContext, task: str | None) -> dict[str, Any]:
    """``document`` as a run of ``study``: completed as backfill completes past runs, hashed, its choices found,
    its objective read as the study says, its task ``task`` or else its choice of the ``task`` group, and
    named after the study's app (the name it had kept in ``info.sacred_experiment``)."""
    item = plan_for(document)
    if item.added:
        document = {**document, "config": item.config, "info": backfilled_info(document, item)}
    choices = study.choices(document["config"])
    experiment = {**(document.get("experiment") or {}), "name": study.module}
    info = {"sacred_experiment": (document.get("experiment") or {}).get("name"), **(document.get("info") or {})}
    return {
        **document, "experiment": experiment, "info": info, "config_hash": config_hash(document["config"]),
        "choices": choices, "task": task if task is not None else choices.get("task"),
        "objective": objective_value(document.get("result"), study.objective_key),
    }  # fmt: skip


IMPORTED = (Condition("info.sacred_id", "exists", True),)
"""The filter of :meth:`Store.list_runs` that selects runs imported from Sacred (among them those :func:`adoptable`)."""


def adoptable(run: Mapping[str, Any]) -> bool:
    """Whether ``run`` was imported from Sacred without a study's app and no backfill has adopted it yet (it has no config hash)."""
    return "sacred_id" in (run.get("info") or {}) and run.get("config_hash") is None


def adopt(store: Store, run: Mapping[str, Any], study: StudyContext) -> dict[str, Any]:
    """Write ``run`` (from ``store``, see :func:`adoptable`) as a run of ``study`` (:func:`as_study_run`) in one write; return it so."""
    adopted = as_study_run(dict(run), study, run.get("task"))
    identity = Adoption(study.module, adopted["task"], adopted["choices"], adopted["objective"])
    store.rewrite_config(run["_id"], adopted["config"], adopted["config_hash"], adopted["info"], adoption=identity)
    return adopted
