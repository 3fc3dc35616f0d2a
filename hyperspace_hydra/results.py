"""Tables of runs: the columns that tell the listed runs apart, named as briefly as possible; two runs side by side; how far a sweep is."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hyperspace_hydra.config import flatten, identity_part
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.hpo import SEARCH, pruned_apart, prunes
from hyperspace_hydra.store.base import FINAL_STATUSES, JOB_FINAL_STATES, PRUNED, Store, utcnow

_MISSING = object()


def varying_keys(flat_configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Dotted keys whose value is not the same in every config (absent counts as a value).

    Keys keep the order in which they first appear.
    """
    return [key for key in all_keys(flat_configs) if len({_canonical(config.get(key, _MISSING)) for config in flat_configs}) > 1]


def all_keys(flat_configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every dotted key of the configs, in the order in which they first appear."""
    ordered: dict[str, None] = {}
    for config in flat_configs:
        ordered.update(dict.fromkeys(config))
    return list(ordered)


def chosen_keys(flat_configs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[str]:
    """The dotted keys that ``names`` choose: each name is a whole key, or else a suffix of whole parts of one key.

    Raises :class:`HyperspaceError` for a name that no key, or more than one key, ends with.
    """
    if not flat_configs:
        return []  # no runs listed: nothing to show, and no name is wrong for it
    keys = all_keys(flat_configs)
    chosen = []
    for name in names:
        matches = keys_named(keys, name)
        if len(matches) != 1:
            found = f"it names {', '.join(matches)}: use a longer dotted suffix" if matches else "no listed run has it"
            raise HyperspaceError(f"cannot show config column {name!r}: {found}")
        chosen.append(matches[0])
    return chosen


def keys_named(keys: Iterable[str], name: str) -> list[str]:
    """The keys that ``name`` names: the key equal to it, else every key that ends with it as a suffix of whole parts."""
    keys = list(keys)
    return [key for key in keys if key == name] or [key for key in keys if key.endswith("." + name)]


def _canonical(value: Any) -> str:
    return "<absent>" if value is _MISSING else json.dumps(value, sort_keys=True, default=str)


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """Name each dotted key by its shortest suffix of whole parts that no other key ends with.

    ``["a.lr", "b.lr", "b.epochs"]`` gives ``{"a.lr": "a.lr", "b.lr": "b.lr", "b.epochs": "epochs"}``.
    """
    names = {}
    for key in keys:
        parts = key.split(".")
        for length in range(1, len(parts) + 1):
            suffix = ".".join(parts[-length:])
            if not any(other != key and (other == suffix or other.endswith("." + suffix)) for other in keys):
                break
        names[key] = suffix
    return names


def duration_seconds(run: Mapping[str, Any], now: dt.datetime | None = None) -> float | None:
    """Seconds from start to stop; for a run without a stop time, to ``now`` (default: the current UTC time)."""
    start = run.get("start_time")
    if start is None:
        return None
    stop = run.get("stop_time") or now or utcnow()
    return round((stop - start).total_seconds(), 3)


def flat_config(run: Mapping[str, Any]) -> dict[str, Any]:
    """The run's complete config without the tool's own settings, flattened to dotted keys."""
    return flatten(identity_part(run.get("config") or {}))


def config_columns(
    runs: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, every: bool = False
) -> tuple[list[str], list[dict[str, Any]]]:
    """The config columns of a runs table: their names and, per run, its values in them.

    Configs are flattened as :func:`flat_config` does. By default the columns are the
    keys whose values vary, each named by its shortest unique suffix (:func:`short_names`);
    ``columns`` chooses keys instead (see :func:`chosen_keys`), named the same way; ``every``
    keeps every key under its full dotted name.
    """
    flat = [flat_config(run) for run in runs]
    if every:
        keys = all_keys(flat)
        names = {key: key for key in keys}
    else:
        keys = chosen_keys(flat, columns) if columns else varying_keys(flat)
        names = short_names(keys)
    return [names[key] for key in keys], [{names[key]: config.get(key) for key in keys} for config in flat]


def run_rows(
    runs: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None, every: bool = False
) -> tuple[list[str], list[dict[str, Any]]]:
    """One row per run: id, status, task, sweep (the run's ``sweep_id``), config values, result, duration.

    Returns the names of the config columns (:func:`config_columns`: the varying ones,
    ``columns``, or with ``every`` all of them) and the rows. ``result`` is the run's objective
    when it has one, else its whole result.
    """
    runs = list(runs)
    names, configs = config_columns(runs, columns, every)
    rows = [
        {
            "id": run["_id"],
            "status": run["status"],
            "task": run.get("task"),
            "sweep": run.get("sweep_id"),
            "config": config,
            "result": run["objective"] if run.get("objective") is not None else run.get("result"),
            "duration": duration_seconds(run),
            "job_id": run.get("job_id"),
        }
        for run, config in zip(runs, configs)
    ]
    return names, rows


RUN_COLUMNS = ("id", "status", "task", "sweep", "result", "duration")
"""The columns of a runs table besides the config columns, which come between ``sweep`` and ``result``."""


def run_table(rows: Sequence[Mapping[str, Any]], config_names: Sequence[str]) -> tuple[list[str], list[list[Any]]]:
    """The header and cells of the runs table of :func:`run_rows`' output, as ``runs ls`` prints it and
    :func:`~hyperspace_hydra.analysis.runs` returns it; a config column named like a run column gets ``config.`` in front."""
    shown = [f"config.{name}" if name in RUN_COLUMNS else name for name in config_names]
    header = ["id", "status", "task", "sweep", *shown, "result", "duration"]
    cells = [[row["id"], row["status"], row["task"], row["sweep"], *row["config"].values(), row["result"], row["duration"]] for row in rows]
    return header, cells


def run_diff(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    """What differs between two runs, each pair of values in the order of the runs.

    ``config``: one entry per dotted path whose value differs (the tool's own settings left
    out), with ``values`` and ``present`` (False where a run does not have the path at all);
    ``code``: ``commit``, ``dirty`` and ``has_diff`` (a diff against HEAD was recorded) of each
    run and ``diffs_differ``, whether those diffs differ; ``results``: ``result``, ``objective``, ``status`` and ``duration``.
    """
    runs = (first, second)
    flat = [flat_config(run) for run in runs]
    code = [run.get("code_version") or {} for run in runs]
    return {
        "runs": [run["_id"] for run in runs],
        "config": [
            {"path": key, "values": [config.get(key) for config in flat], "present": [key in config for config in flat]}
            for key in varying_keys(flat)
        ],
        "code": {
            "commit": [version.get("commit") for version in code],
            "dirty": [version.get("dirty") for version in code],
            "has_diff": [bool(version.get("diff")) for version in code],
            "diffs_differ": code[0].get("diff") != code[1].get("diff"),
        },
        "results": {
            "result": [run.get("result") for run in runs],
            "objective": [run.get("objective") for run in runs],
            "status": [run.get("status") for run in runs],
            "duration": [duration_seconds(run) for run in runs],
        },
    }


def short_target(value: Any) -> Any:
    """A ``_target_`` path shown by its last part (``study.aggregation.MeanAggregation`` as ``MeanAggregation``); other values as they are."""
    if isinstance(value, str) and "." in value and value.replace(".", "").replace("_", "").isalnum():
        return value.rsplit(".", 1)[-1]
    return value


def sweep_progress(store: Store, sweep: Mapping[str, Any]) -> dict[str, Any]:
    """How far a sweep (as :meth:`Store.list_sweeps` gives it) is: ``of`` says what is counted, ``counts`` those by state,
    ``ended`` how many of them ended, ``total`` how many there will be.

    A sweep run through the queue counts its jobs, a search with a pruner its pruned trials apart
    (``PRUNED``, ended; their jobs COMPLETED), as ``sweep show`` does. A sweep run without it (a search run in the
    ``--multirun`` process itself) has runs but no jobs: its runs are counted by status (one query
    reading only their status). ``total`` is a search's trial budget (or its count, once larger),
    else the count.
    """
    counts, of, final = dict(sweep["counts"]), "jobs", JOB_FINAL_STATES | {PRUNED}
    if counts and prunes(sweep):
        counts = pruned_apart(counts, store.count_runs(sweep_id=sweep["id"], status=PRUNED))
    if not counts:
        counts = dict(Counter(run["status"] for run in store.list_runs(sweep_id=sweep["id"], fields=["status"])))
        of, final = ("runs", FINAL_STATUSES) if counts else ("jobs", final)
    count = sum(counts.values())
    budget = int((sweep.get("spec") or {}).get("n_trials") or 0) if sweep["kind"] == SEARCH else 0
    ended = sum(number for state, number in counts.items() if state in final)
    return {"of": of, "counts": dict(sorted(counts.items())), "ended": ended, "total": max(budget, count)}
