"""Tables of runs: the columns that tell the listed runs apart, named as briefly as possible."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hyperspace_hydra.config import flatten, identity_part
from hyperspace_hydra.store.base import utcnow

_MISSING = object()


def varying_keys(flat_configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Dotted keys whose value is not the same in every config (absent counts as a value).

    Keys keep the order in which they first appear.
    """
    ordered: dict[str, None] = {}
    for config in flat_configs:
        ordered.update(dict.fromkeys(config))
    return [key for key in ordered if len({_canonical(config.get(key, _MISSING)) for config in flat_configs}) > 1]


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


def run_rows(runs: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """One row per run: id, status, task, the varying config values, result, duration.

    Returns the names of the varying config columns and the rows. ``result`` is the
    run's objective when it has one, else its whole result.
    """
    runs = list(runs)
    flat = [flatten(identity_part(run.get("config") or {})) for run in runs]
    keys = varying_keys(flat)
    names = short_names(keys)
    rows = [
        {
            "id": run["_id"],
            "status": run["status"],
            "task": run.get("task"),
            "config": {names[key]: config.get(key) for key in keys},
            "result": run["objective"] if run.get("objective") is not None else run.get("result"),
            "duration": duration_seconds(run),
            "job_id": run.get("job_id"),
        }
        for run, config in zip(runs, flat)
    ]
    return [names[key] for key in keys], rows
