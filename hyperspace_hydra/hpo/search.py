"""Drive a search sweep through the queue: ask, enqueue, repeat as trials end.

A search sweep is a sweep of kind ``search`` whose ``spec`` is a :class:`SearchSpec`.
:func:`advance` tops it up: it counts the sweep's trials, asks the sampler for as
many new points as free slots allow (``n_jobs`` at a time, ``n_trials`` in all) and
adds them with :meth:`Store.add_jobs`, which succeeds for one caller only when
several advance the same sweep at once; the others read again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.hpo.history import Verdict, grouping_paths, judge_groups, pruned_trial, run_objective, searched_paths
from hyperspace_hydra.hpo.space import Space, space_to_json, trial_overrides
from hyperspace_hydra.hpo.tuner import SearchSpec, Trial, ask, pruning_metric
from hyperspace_hydra.identity import missing_objective
from hyperspace_hydra.overrides import fixed_override_values
from hyperspace_hydra.store import COMPLETED, PAUSED, QUEUED, RUNNING, Condition, NewJob, Store
from hyperspace_hydra.store.base import EXHAUSTED, INTERRUPTED, PRUNED, STUDY, SWEEP_FINAL_STATES

MakeJob = Callable[[list[str], str], NewJob]
"""Builds the job of a trial from its overrides and its output directory."""
_ACTIVE = (QUEUED, PAUSED, RUNNING)
_SCORE_FIELDS = {COMPLETED: ("result", "objective", "status"), PRUNED: ("status", "info")}
"""What scores a finished trial's run, by its status."""
_ADVANCE_ATTEMPTS = 10
_FINISHED = Condition("status", "in", [COMPLETED, PRUNED])
"""The runs that may be history: completed, or pruned (see :mod:`hyperspace_hydra.hpo.history`)."""


@dataclass
class History:
    """The compatible past runs of a search as trials (oldest first), and how many runs were left out, by reason."""

    trials: list[Trial] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """``N past run(s) as history`` (``(M pruned)`` among them) and, when runs were left out, how many for each of the most common reasons."""
        pruned = sum(trial.pruned for trial in self.trials)
        text = f"{len(self.trials)} past run(s) as history" + (f" ({pruned} pruned)" if pruned else "")
        if not self.excluded:
            return text
        reasons = sorted(self.excluded.items(), key=lambda item: -item[1])
        shown = "; ".join(f"{count}: {reason}" for reason, count in reasons[:3])
        more = f"; {sum(count for _, count in reasons[3:])} for other reasons" if len(reasons) > 3 else ""
        return f"{text}, {sum(self.excluded.values())} excluded ({shown}{more})"


def history(store: Store, spec: SearchSpec, sweep_id: int | None = None) -> History:
    """The completed and pruned runs of the spec's task anywhere in the store that are compatible with the search
    (none unless ``warm_start``; see :mod:`hyperspace_hydra.hpo.history`), the runs of sweep ``sweep_id`` left out.

    A finished run does not change, so a process judges each one once per search (the
    store's URI and the spec's task, metrics, space, bases and ignore list), reading only the
    fields that decide where it lies. A later call counts the task's finished runs in the
    database and reads only the runs after the newest one it judged; only when the count
    says that is not all (a run with a smaller id committed late, or runs imported with
    older ids) does it read the ids of all of them, then the runs it has not judged.
    """
    found = History()
    for _, verdict in _past_verdicts(store, spec, sweep_id):
        if verdict.trial is not None:
            found.trials.append(verdict.trial)
        elif verdict.reason is not None:
            found.excluded[verdict.reason] = found.excluded.get(verdict.reason, 0) + 1
    return found


def history_runs(store: Store, spec: SearchSpec, sweep_id: int | None = None) -> list[tuple[int, str]]:
    """The id and status (COMPLETED or PRUNED) of each run that :func:`history` counts as history, oldest first
    (their series are a pruner's history too)."""
    return [(run_id, PRUNED if verdict.trial.pruned else COMPLETED) for run_id, verdict in _past_verdicts(store, spec, sweep_id) if verdict.trial is not None]


def _past_verdicts(store: Store, spec: SearchSpec, sweep_id: int | None) -> list[tuple[int, Verdict]]:
    """Each completed or pruned run of the spec's task outside sweep ``sweep_id`` with its verdict, oldest first (none without ``warm_start``)."""
    if not spec.warm_start:
        return []
    judged = _judged_runs.setdefault((store.uri, _selection_key(spec)), {})
    finished = store.count_runs(where=_past_runs(spec))
    if finished > len(judged):
        judged.update(_read_verdicts(store, spec, [Condition("id", ">", next(reversed(judged)))] if judged else []))
    if finished != len(judged):
        _catch_up(store, spec, judged)
    return [(run_id, verdict) for run_id, (run_sweep, verdict) in judged.items() if sweep_id is None or run_sweep != sweep_id]


_judged_runs: dict[tuple[str, str], dict[int, tuple[int | None, Verdict]]] = {}
"""Per search, the finished runs this process has judged, oldest first: run id -> (its sweep, its verdict)."""
_LONGEST_ID_LIST = 100


def _selection_key(spec: SearchSpec) -> str:
    """What decides which runs are a search's history, and where they lie."""
    return json.dumps([spec.study, spec.task, spec.metric, pruning_metric(spec), space_to_json(spec.space), spec.groups, spec.history_ignore, spec.bases], sort_keys=True)


def _catch_up(store: Store, spec: SearchSpec, judged: dict[int, tuple[int | None, Verdict]]) -> None:
    """Make ``judged`` hold exactly the task's finished runs: read their ids, then judge the ones it lacks."""
    finished = {run["_id"] for run in store.list_runs(where=_past_runs(spec), fields=[])}
    unread = sorted(finished - set(judged))
    if len(unread) > _LONGEST_ID_LIST:
        judged.update(_read_verdicts(store, spec, []))
    elif unread:
        judged.update(_read_verdicts(store, spec, [Condition("id", "in", unread)]))
    kept = {run_id: judged[run_id] for run_id in sorted(finished)}
    judged.clear()
    judged.update(kept)


def _past_runs(spec: SearchSpec) -> list[Condition]:
    """The runs that may be a search's history: finished, of its study (the app that recorded them) and of its task
    (in a study without tasks, every run of the study)."""
    same_study = [Condition(STUDY, "=", spec.study)] if spec.study is not None else []
    same_task = [Condition("task", "=", spec.task)] if spec.task is not None else []
    return [*same_study, *same_task, _FINISHED]


def _read_verdicts(store: Store, spec: SearchSpec, where: Sequence[Condition]) -> dict[int, tuple[int | None, Verdict]]:
    """The task's finished runs that match ``where``, each with its sweep and judged against the search, oldest first;
    the store groups them by their config outside the paths compatibility does not compare, so that what a group
    shares is judged once."""
    groups = store.group_runs([*_past_runs(spec), *where], grouping_paths(spec), searched_paths(spec))
    return dict(sorted(judge_groups(groups, spec).items()))


def sweep_trials(store: Store, jobs: Sequence[dict[str, Any]], spec: SearchSpec) -> list[Trial]:
    """The sweep's own trials, read back from its jobs: completed with a value, pruned, failed, or pending."""
    runs = _completed_runs(store, jobs)
    return [_trial(store, job, spec, runs) for job in jobs]


def _completed_runs(store: Store, jobs: Sequence[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The completed and pruned runs of the jobs' sweeps by id, with the fields that score them: two reads per sweep."""
    sweeps = {job["sweep_id"] for job in jobs if job["state"] == COMPLETED and job["run_id"] is not None}
    return {
        run["_id"]: run for sweep_id in sweeps for status, fields in _SCORE_FIELDS.items() for run in store.list_runs(sweep_id=sweep_id, status=status, fields=fields)
    }  # fmt: skip


def _trial(store: Store, job: dict[str, Any], spec: SearchSpec, runs: Mapping[int, dict[str, Any]]) -> Trial:
    params = searched_values(job["overrides"], spec.space)
    if job["state"] in _ACTIVE:
        return Trial(params)
    if job["state"] == COMPLETED and job["run_id"] is not None:
        return scored_trial(params, runs.get(job["run_id"]) or store.get_run(job["run_id"]), spec.metric)
    return Trial(params, failed=True)


def scored_trial(params: dict[str, Any], run: Mapping[str, Any], metric: str | None) -> Trial:
    """The trial that a finished run of a search is: pruned where its pruner stopped it, else scored by its objective."""
    if run["status"] == PRUNED:
        return pruned_trial(params, (run.get("info") or {}).get("pruned") or {})
    value = run_objective(run, metric)
    return Trial(params, value, failed=value is None)


def trial_job_overrides(spec: SearchSpec, point: Mapping[str, Any]) -> list[str]:
    """The overrides of a trial's job: the fixed ones, then the point's values."""
    return [*spec.fixed, *trial_overrides(point, spec.added)]


def searched_values(overrides: Sequence[str], space: Space) -> dict[str, Any]:
    """The value each searched parameter has in a trial's overrides."""
    values = fixed_override_values(overrides)
    return {name: values[name] for name in space if name in values}


def advance(store: Store, sweep_id: int, make_job: MakeJob) -> list[int]:
    """Enqueue the next trials of a search sweep while it has free slots and budget; return the new job ids.

    When nothing of the sweep is active any more, the sweep ends: COMPLETED once its budget
    is spent, EXHAUSTED when its space has no untried point left. An ended sweep (also a
    cancelled one) gets no more trials.
    """
    for _ in range(_ADVANCE_ATTEMPTS):
        sweep = store.get_sweep(sweep_id)
        if sweep["state"] in SWEEP_FINAL_STATES:
            return []
        spec = SearchSpec.from_json(sweep["spec"])
        jobs = store.list_jobs(sweep_id=sweep_id)
        active = sum(job["state"] in _ACTIVE for job in jobs)
        free = min(spec.n_jobs - active, spec.n_trials - len(jobs))
        if free <= 0:
            _end_when_idle(store, sweep_id, active, COMPLETED if len(jobs) >= spec.n_trials else None)
            return []
        runs = _completed_runs(store, jobs)
        _stop_unless_scored(store, sweep_id, runs, spec)
        trials = [_trial(store, job, spec, runs) for job in jobs]
        points = ask(spec, history(store, spec, sweep_id).trials, trials, free)
        if not points:
            _end_when_idle(store, sweep_id, active, EXHAUSTED)
            return []
        new_jobs = [make_job(trial_job_overrides(spec, point), f"{spec.output_dir}/{len(jobs) + index}") for index, point in enumerate(points)]
        added = store.add_jobs(sweep_id, new_jobs, expected_jobs=len(jobs))
        if added is not None:
            return added
    return []


def objective_missing(runs: Iterable[Mapping[str, Any]], metric: str | None) -> str | None:
    """Why the completed runs of a search cannot score it (the first whose result has no place for the objective,
    see :func:`~hyperspace_hydra.identity.missing_objective`), or None when each can."""
    for run in runs:
        missing = missing_objective(run.get("result"), metric) if run["status"] == COMPLETED else None
        if missing is not None:
            return f"run {run['_id']} completed, but {missing}"
    return None


class ObjectiveMissingError(HyperspaceError):
    """A search stopped because a trial completed with a result that has no place for its objective: every other trial
    would too, and be told as failed, so the budget would be spent learning nothing."""

    def __init__(self, sweep_id: int, missing: str) -> None:
        super().__init__(
            f"search sweep {sweep_id} stopped: {missing}; set hydra.sweeper.metric, or hyperspace.objective in the study's config, to a number the task returns"
        )


def _stop_unless_scored(store: Store, sweep_id: int, runs: Mapping[int, dict[str, Any]], spec: SearchSpec) -> None:
    """End the sweep INTERRUPTED and raise :class:`ObjectiveMissingError` when one of its completed runs cannot score it."""
    missing = objective_missing(runs.values(), spec.metric)
    if missing is not None:
        store.end_sweep(sweep_id, INTERRUPTED)
        raise ObjectiveMissingError(sweep_id, missing)


def _end_when_idle(store: Store, sweep_id: int, active: int, state: str | None) -> None:
    """End the sweep in ``state`` if none of its jobs is active (else the last of them to end does it)."""
    if state is not None and not active:
        store.end_sweep(sweep_id, state)
