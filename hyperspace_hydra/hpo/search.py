"""Drive a search sweep through the queue: ask, enqueue, repeat as trials end.

A search sweep is a sweep of kind ``search`` whose ``spec`` is a :class:`SearchSpec`.
:func:`advance` tops it up: it counts the sweep's trials, asks the sampler for as
many new points as free slots allow (``n_jobs`` at a time, ``n_trials`` in all) and
adds them with :meth:`Store.add_jobs`, which succeeds for one caller only when
several advance the same sweep at once; the others read again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hyperspace_hydra.hpo.history import HISTORY_FIELDS, past_trial, pinned_values, run_objective
from hyperspace_hydra.hpo.space import Space, space_to_json, trial_overrides
from hyperspace_hydra.hpo.tuner import SearchSpec, Trial, ask
from hyperspace_hydra.overrides import fixed_override_values
from hyperspace_hydra.store import COMPLETED, PAUSED, QUEUED, RUNNING, Condition, NewJob, Store

MakeJob = Callable[[list[str], str], NewJob]
"""Builds the job of a trial from its overrides and its output directory."""
_ACTIVE = (QUEUED, PAUSED, RUNNING)
_SCORE_FIELDS = ("result", "objective")
_ADVANCE_ATTEMPTS = 10


def history(store: Store, spec: SearchSpec, exclude_jobs: Sequence[int] = ()) -> list[Trial]:
    """Completed runs anywhere in the store that lie in the spec's space (none unless ``warm_start``), oldest first.

    A completed run does not change, so a process reads each one once per search (the
    store's URI and the spec's task, metric, space and fixed overrides): each call reads
    the ids of the task's completed runs, then only the runs it has not read yet, and
    only the fields that decide where they lie.
    """
    if not spec.warm_start:
        return []
    known = _known_runs.setdefault((store.uri, _selection_key(spec)), {})
    completed = {run["_id"]: run["job_id"] for run in store.list_runs(task=spec.task, status=COMPLETED, fields=["job_id"])}
    unread = sorted(set(completed) - set(known))
    if unread:
        known.update(_read_trials(store, spec, _selecting(unread, known)))
    excluded = set(exclude_jobs)
    return [trial for run_id, job_id in sorted(completed.items()) if job_id not in excluded and (trial := known.get(run_id)) is not None]


_known_runs: dict[tuple[str, str], dict[int, Trial | None]] = {}
"""Per search, the completed runs this process has read: run id -> its trial, None if it is not in the space."""
_LONGEST_ID_LIST = 100


def _selection_key(spec: SearchSpec) -> str:
    """What decides which runs are a search's history, and where they lie."""
    return json.dumps([spec.task, spec.metric, space_to_json(spec.space), spec.fixed], sort_keys=True)


def _selecting(unread: Sequence[int], known: Mapping[int, Any]) -> list[Condition]:
    """Conditions on the run id that select at least the ``unread`` runs (ascending ids), and few others."""
    if known and unread[0] > max(known):
        return [Condition("id", ">", max(known))]
    if known and len(unread) <= _LONGEST_ID_LIST:
        return [Condition("id", "in", list(unread))]
    return []


def _read_trials(store: Store, spec: SearchSpec, where: Sequence[Condition]) -> dict[int, Trial | None]:
    """The task's completed runs that match ``where``, each as its trial (None when it is not in the space)."""
    pinned = pinned_values(spec.fixed)
    runs = store.list_runs(task=spec.task, status=COMPLETED, where=where, fields=HISTORY_FIELDS)
    return {run["_id"]: _trial_of(past_trial(run, spec.space, pinned, spec.task, spec.metric)) for run in runs}


def _trial_of(found: tuple[dict[str, Any], float] | None) -> Trial | None:
    return Trial(*found) if found is not None else None


def sweep_trials(store: Store, jobs: Sequence[dict[str, Any]], spec: SearchSpec) -> list[Trial]:
    """The sweep's own trials, read back from its jobs: completed with a value, failed, or pending."""
    runs = _completed_runs(store, jobs)
    return [_trial(store, job, spec, runs) for job in jobs]


def _completed_runs(store: Store, jobs: Sequence[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The completed runs of the jobs' sweeps by id, with the fields that score them: one read per sweep."""
    sweeps = {job["sweep_id"] for job in jobs if job["state"] == COMPLETED and job["run_id"] is not None}
    return {run["_id"]: run for sweep_id in sweeps for run in store.list_runs(sweep_id=sweep_id, status=COMPLETED, fields=_SCORE_FIELDS)}


def _trial(store: Store, job: dict[str, Any], spec: SearchSpec, runs: Mapping[int, dict[str, Any]]) -> Trial:
    params = searched_values(job["overrides"], spec.space)
    if job["state"] in _ACTIVE:
        return Trial(params)
    if job["state"] == COMPLETED and job["run_id"] is not None:
        value = run_objective(runs.get(job["run_id"]) or store.get_run(job["run_id"]), spec.metric)
        return Trial(params, value, failed=value is None)
    return Trial(params, failed=True)


def searched_values(overrides: Sequence[str], space: Space) -> dict[str, Any]:
    """The value each searched parameter has in a trial's overrides."""
    values = fixed_override_values(overrides)
    return {name: values[name] for name in space if name in values}


def advance(store: Store, sweep_id: int, make_job: MakeJob) -> list[int]:
    """Enqueue the next trials of a search sweep while it has free slots and budget; return the new job ids."""
    for _ in range(_ADVANCE_ATTEMPTS):
        spec = SearchSpec.from_json(store.get_sweep(sweep_id)["spec"])
        jobs = store.list_jobs(sweep_id=sweep_id)
        free = min(spec.n_jobs - sum(job["state"] in _ACTIVE for job in jobs), spec.n_trials - len(jobs))
        if free <= 0:
            return []
        trials = sweep_trials(store, jobs, spec)
        points = ask(spec, history(store, spec, [job["id"] for job in jobs]) + trials, free)
        new_jobs = [make_job([*spec.fixed, *trial_overrides(point)], f"{spec.output_dir}/{len(jobs) + index}") for index, point in enumerate(points)]
        added = store.add_jobs(sweep_id, new_jobs, expected_jobs=len(jobs))
        if added is not None:
            return added
    return []
