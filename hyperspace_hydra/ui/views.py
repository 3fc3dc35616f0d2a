"""What each page of ``hyperspace ui`` shows, asked of the store through the queries the CLI uses.

Every function takes an open :class:`~hyperspace_hydra.store.Store` and returns plain data
(dicts, lists, scalars) that a template renders and that the JSON answers send as they are.
Filtering, sorting and paging are done by the store (:meth:`Store.list_runs`), never in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from hyperspace_hydra.bounds import MAX_COUNT
from hyperspace_hydra.cli.output import cell
from hyperspace_hydra.cli.queue import STATE_CHANGES, end_growing_sweep, job_row
from hyperspace_hydra.cli.queue import worker_row as listed_worker
from hyperspace_hydra.cli.runs import output_tail
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.filters import parse_condition, parse_sort, resolve_paths
from hyperspace_hydra.hpo import SEARCH
from hyperspace_hydra.reproduce import reproduce_commands
from hyperspace_hydra.results import RUN_COLUMNS, flat_config, run_rows, run_table, sweep_progress, varying_keys
from hyperspace_hydra.settings import redact_credentials
from hyperspace_hydra.store import DIED, FAILED, PAUSED, QUEUED, RUNNING, TIMEOUT, Store
from hyperspace_hydra.store.base import RUN_STATUSES, Condition, JobNotFoundError, known_ids

PAGE_SIZE = 50
"""Runs per page of the Runs table."""
MAX_PAGE = MAX_COUNT // PAGE_SIZE
"""The last page number the Runs page asks for (a larger one shows this one, empty): its runs' offset must be a count."""
DEFAULT_SORT = "-id"
"""The Runs table's order when none is chosen: newest first."""
CONDITION_SEPARATOR = ";"
"""Separates the conditions typed into the filter box (all must hold, as repeated ``--where``)."""
ACTIONS = ("pause", "resume", "retry", "cancel")
"""The queue commands that the Queue and Sweeps pages offer per sweep (the Queue page also per job) with ``--allow-actions``."""
FAILED_JOBS_SHOWN = 50
"""How many of the newest failed, timed-out and died jobs the Queue page lists."""
WAITING_JOBS_SHOWN = 50
"""How many of the oldest queued and paused jobs the Queue page lists."""

_TABLE_FIELDS = ["status", "task", "sweep_id", "config", "objective", "result", "start_time", "stop_time", "job_id"]
_LIVE_FIELDS = ["status", "objective", "result", "start_time", "stop_time"]


@dataclasses.dataclass(frozen=True)
class RunsQuery:
    """What the Runs page lists: its filter box (``--where`` conditions separated by ``;``), sort, status, task, sweep and page."""

    where: str = ""
    sort: str = DEFAULT_SORT
    status: str | None = None
    task: str | None = None
    sweep: int | None = None
    page: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> RunsQuery:
        """The query of a page's URL parameters; a missing or malformed page number is the first page, one beyond
        :data:`MAX_PAGE` that page."""
        page, sweep = params.get("page", "1"), params.get("sweep", "")
        return cls(
            where=params.get("where", "").strip(),
            sort=params.get("sort", "").strip() or DEFAULT_SORT,
            status=params.get("status") or None,
            task=params.get("task") or None,
            sweep=int(sweep) if sweep.isdigit() else None,
            page=min(max(int(page), 1), MAX_PAGE) if page.isdigit() else 1,
        )

    def conditions(self) -> list[str]:
        """The conditions of the filter box, each as ``--where`` takes it."""
        return [text.strip() for text in self.where.split(CONDITION_SEPARATOR) if text.strip()]

    def url(self, **changes: Any) -> str:
        """The Runs page's URL for this query with ``changes``; a new filter, sort or status starts again at page 1."""
        if changes.keys() - {"page"}:
            changes.setdefault("page", 1)
        query = dataclasses.replace(self, **changes)
        params = {"where": query.where, "sort": "" if query.sort == DEFAULT_SORT else query.sort, "status": query.status or "", "task": query.task or "", "sweep": query.sweep, "page": query.page}
        return "/runs?" + urlencode({key: value for key, value in params.items() if value not in ("", None, 1)})

    def sort_url(self, column: str) -> str:
        """The URL that sorts by ``column``: ascending first, descending when it is already sorted ascending by it."""
        return self.url(sort=f"-{column}" if self.sort == column else column)


def runs_table(store: Store, query: RunsQuery) -> dict[str, Any]:
    """One page of the Runs table, as ``runs ls`` prints it: ``header`` and ``cells`` from
    :func:`~hyperspace_hydra.results.run_table` (so a config key named like a run column shows as ``config.NAME``),
    ``columns`` (the config columns that vary on the page), ``rows`` as ``runs ls --json`` has them, ``unsortable``
    (the headers the store cannot sort by: a config key named like a run field, as ``--sort`` cannot name it),
    ``has_next``, and ``error``, the one-line message of a bad filter or sort (then no rows)."""
    try:
        if query.status is not None and query.status not in RUN_STATUSES:
            raise HyperspaceError(f"unknown status {query.status!r}: expected one of {', '.join(RUN_STATUSES)}")
        where = [parse_condition(text) for text in query.conditions()]
        selection: dict[str, Any] = {"status": query.status, "task": query.task, "sweep_id": query.sweep}
        where, sort = resolve_paths(store, where, parse_sort(query.sort), **selection)
    except HyperspaceError as error:
        return {"error": str(error), "header": [], "cells": [], "columns": [], "rows": [], "unsortable": [], "has_next": False}
    offset = (query.page - 1) * PAGE_SIZE
    runs = store.list_runs(PAGE_SIZE + 1, where=where, sort=sort, fields=_TABLE_FIELDS, offset=offset, **selection)
    columns, rows = run_rows(runs[:PAGE_SIZE])
    header, cells = run_table(rows, columns)
    unsortable = [f"config.{name}" for name in columns if name in RUN_COLUMNS]
    return {"error": None, "header": header, "cells": cells, "columns": columns, "rows": rows, "unsortable": unsortable, "has_next": len(runs) > PAGE_SIZE}


TASKS_SAMPLE = 1000
"""The Runs page offers as facets the tasks of this many newest runs (as :func:`resolve_paths` learns paths from them)."""


def recent_tasks(store: Store) -> list[str]:
    """The tasks of the newest :data:`TASKS_SAMPLE` runs, sorted (one query reading only their task)."""
    return sorted({run["task"] for run in store.list_runs(TASKS_SAMPLE, fields=["task"]) if run["task"]})


def latest_run_id(store: Store) -> int | None:
    """The id of the newest run (None in an empty store): a page that shows runs asks it to learn cheaply whether one was added."""
    newest = store.list_runs(1, fields=[])
    return newest[0]["_id"] if newest else None


def run_states(store: Store, run_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Status, result and duration of the given runs (at most a page of them), by id, as the Runs table shows them."""
    ids = known_ids(run_ids)[:PAGE_SIZE]
    if not ids:
        return {}
    _, rows = run_rows(store.list_runs(where=[Condition("id", "in", ids)], fields=_LIVE_FIELDS))
    return {row["id"]: {"status": row["status"], "result": cell(row["result"]), "duration": cell(row["duration"])} for row in rows}


def run_page(store: Store, run_id: int) -> dict[str, Any]:
    """Everything the Run page shows of one run (raises :class:`RunNotFoundError` for an unknown id)."""
    run = store.get_run(run_id)
    return {
        "run": run,
        "config_tree": config_tree(run.get("config") or {}, run.get("config_given") or {}),
        "reproduce": "\n".join(reproduce_commands(run)),
        **_live_part(run),
    }


def run_live(store: Store, run_id: int) -> dict[str, Any]:
    """What changes on the Run page while the run runs: status, result, duration, output tail and metric series."""
    live = _live_part(store.get_run(run_id))
    live["metrics"] = {name: {"steps": series["steps"], "values": series["values"]} for name, series in store.get_metrics(run_id).items()}
    return live


def _live_part(run: Mapping[str, Any]) -> dict[str, Any]:
    _, [row] = run_rows([run])
    return {
        "status": row["status"],
        "result": cell(row["result"]),
        "duration": cell(row["duration"]),
        "output": output_tail(run.get("captured_out") or ""),
        "fail_trace": trace_text(run.get("fail_trace")),
    }


def config_tree(config: Mapping[str, Any], given: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The config as nested nodes ``{"key", "value"}`` or ``{"key", "children"}``; ``default`` marks what
    the config as given (``config_given``) lacks: values filled in from the code's defaults."""
    nodes = []
    for key, value in config.items():
        node: dict[str, Any] = {"key": key, "default": key not in given}
        if isinstance(value, Mapping) and value:
            given_value = given.get(key)
            node["children"] = config_tree(value, given_value if isinstance(given_value, Mapping) else {})
        else:
            node["value"] = value
        nodes.append(node)
    return nodes


def queue_overview(store: Store) -> dict[str, Any]:
    """The Queue page: sweeps with their jobs counted by state, the oldest queued and paused jobs (``waiting``, of
    ``waiting_total``), the newest failed jobs with their error, and the registered workers (:func:`worker_row`), idle,
    stopped and gone ones too."""
    server_now = store.server_time()
    running = {job["id"]: job for job in store.list_jobs(states=[RUNNING])}
    failed = store.list_jobs(states=[FAILED, TIMEOUT, DIED])[-FAILED_JOBS_SHOWN:][::-1]
    waiting = store.list_jobs(states=[QUEUED, PAUSED], limit=WAITING_JOBS_SHOWN)
    sweeps = store.list_sweeps()
    return {
        "sweeps": [sweep_row(store, sweep) for sweep in reversed(sweeps)],
        "waiting": [job_actions_row(job) for job in waiting],
        "waiting_total": sum(sweep["counts"].get(state, 0) for sweep in sweeps for state in (QUEUED, PAUSED)),
        "failed": [job_actions_row(job) for job in failed],
        "workers": [worker_row(worker, running, server_now) for worker in store.list_workers()],
    }


def job_actions_row(job: Mapping[str, Any]) -> dict[str, Any]:
    """A job as ``queue ls`` shows it (:func:`job_row`) plus ``actions``: the queue commands that would move it from its state."""
    return {**job_row(dict(job)), "actions": [action for action in ACTIONS if job["state"] in STATE_CHANGES[action][0]]}


def trace_text(fail_trace: Sequence[str] | str | None) -> str:
    """A run's ``fail_trace`` (Sacred's list of lines) as one text; empty when it has none."""
    return fail_trace if isinstance(fail_trace, str) else "".join(fail_trace or [])


def sweep_row(store: Store, sweep: Mapping[str, Any]) -> dict[str, Any]:
    """A sweep as the Queue and Sweeps pages list it: its fields, its progress (:func:`sweep_progress`: ``of``, ``counts``,
    ``ended``, ``total``; a sweep run without the queue counts its runs), and which actions apply to its jobs."""
    jobs = sweep["counts"]
    return {
        "id": sweep["id"],
        "study": sweep["study"],
        "kind": sweep["kind"],
        "state": sweep["state"],
        "created": sweep["created_at"],
        **sweep_progress(store, sweep),
        "actions": [
            action for action in ACTIONS
            if any(jobs.get(state) for state in STATE_CHANGES[action][0]) or (action == "cancel" and sweep["state"] == RUNNING and jobs)
        ],  # fmt: skip
    }


def worker_row(worker: Mapping[str, Any], running: Mapping[int, Mapping[str, Any]], server_now: Any) -> dict[str, Any]:
    """A registered worker as the Queue page shows it: what ``queue workers`` shows of it
    (:func:`~hyperspace_hydra.cli.queue.worker_row`: host, pid, SLURM job, state, seconds since it was last seen by
    the store's clock) and ``held``, per job it held at its last beat, that job's sweep and run and the seconds its
    lease has left by the store's clock (``server_now``), read from ``running`` (the RUNNING jobs by id; a job that
    ended since shows without them)."""
    return {**listed_worker(dict(worker)), "held": [_held_job(job_id, running.get(job_id), server_now) for job_id in worker["job_ids"]]}


def _held_job(job_id: int, job: Mapping[str, Any] | None, server_now: Any) -> dict[str, Any]:
    lease_until = job["lease_expires_at"] if job else None
    return {"job": job_id, "sweep": job["sweep_id"] if job else None, "run": job["run_id"] if job else None,
            "lease_left": None if lease_until is None else round((lease_until - server_now).total_seconds(), 1)}  # fmt: skip


def change_jobs(store: Store, action: str, *, sweep_id: int | None = None, job_id: int | None = None) -> str:
    """Apply the queue command ``action`` (one of :data:`ACTIONS`) to a sweep's jobs or to one job, as ``hyperspace
    queue ACTION --sweep ID`` (or ``JOB``) does: cancelling a sweep also ends a search, so that it gets no more trials.
    Returns what was done. Raises :class:`HyperspaceError` for an unknown action, sweep or job.
    """
    if action not in ACTIONS:
        raise HyperspaceError(f"unknown action {action!r}: expected one of {', '.join(ACTIONS)}")
    if sweep_id is not None:
        store.get_sweep(sweep_id)  # raises for an unknown sweep
    if job_id is not None and not store.list_jobs(job_ids=[job_id]):
        raise JobNotFoundError(f"no job with id {job_id} in store {redact_credentials(store.uri)}")
    from_states, to_state, done = STATE_CHANGES[action]
    moved = store.change_jobs(from_states, to_state, sweep_id=sweep_id, job_ids=None if job_id is None else [job_id])
    stopped = action == "cancel" and sweep_id is not None and end_growing_sweep(store, sweep_id)
    selected = f"sweep {sweep_id}" if job_id is None else f"job {job_id}"
    return f"{selected}: {moved} job(s) {done}" + ("; the search gets no more trials" if stopped else "")


def redacted(value: Any) -> Any:
    """``value`` with the password of every URI in its strings replaced (see :func:`redact_credentials`), at any depth."""
    if isinstance(value, str):
        return redact_credentials(value)
    if isinstance(value, Mapping):
        return {key: redacted(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redacted(item) for item in value]
    return value


def sweeps_list(store: Store) -> dict[str, Any]:
    """The Sweeps page: every sweep, newest first, as :func:`sweep_row` gives it."""
    return {"sweeps": [sweep_row(store, sweep) for sweep in reversed(store.list_sweeps())]}


def sweep_page(store: Store, sweep_id: int) -> dict[str, Any]:
    """One sweep: its row and, for a search, ``search`` as ``hyperspace sweep show --json`` gives it plus
    ``history`` (described) and ``figures``, the plotly figures as JSON-ready dicts (see :func:`search_figures`)."""
    sweep = sweep_row(store, store.get_sweep(sweep_id))
    if sweep["kind"] != SEARCH:
        return {"sweep": sweep, "search": None, "figures": {}}
    from hyperspace_hydra.hpo.report import search_state  # Optuna loads only here

    state = search_state(store, sweep_id)
    return {"sweep": sweep, "search": state.summary(), "history": state.history.describe(), "figures": search_figures(state)}


def search_figures(state: Any) -> dict[str, Any]:
    """Optuna's plots of a search (history first, then the sweep's trials): objective per trial with the best so far,
    objective against each parameter (log axes where the space is log), parallel coordinates and, once at least two
    trials have a value, parameter importance (Optuna's default evaluator). Each as a dict that Plotly.react takes."""
    import json

    from optuna.visualization import plot_optimization_history, plot_parallel_coordinate, plot_param_importances, plot_slice

    from hyperspace_hydra.hpo.report import shown_as_text
    from hyperspace_hydra.hpo.tuner import build_study

    study = build_study(state.spec, state.history.trials + state.trials)
    plots: dict[str, Callable[[Any], Any]] = {"history": plot_optimization_history, "slice": plot_slice, "parallel": plot_parallel_coordinate}
    scored = [trial for trial in study.trials if trial.value is not None]
    if len(scored) >= 2 and len(state.spec.space) >= 1:
        plots["importance"] = plot_param_importances
    if not scored:
        return {}
    return {name: shown_as_text(json.loads(plot(study).to_json())) for name, plot in plots.items()}


MAX_COMPARED = 20
"""How many runs the Compare page takes at most."""


def compare_runs(store: Store, run_ids: Sequence[int]) -> dict[str, Any]:
    """The Compare page: per config path whose value differs between the runs (the tool's settings left out, as
    ``runs diff``) the value of each run (``present`` False where a run lacks the path), their results side by side,
    and each metric as one series per run. Raises :class:`HyperspaceError` for fewer than two runs or an unknown id."""
    ids = list(dict.fromkeys(known_ids(run_ids)))[:MAX_COMPARED]
    if len(ids) < 2:
        raise HyperspaceError("compare needs two or more run ids: choose runs on the Runs page")
    runs = [store.get_run(run_id) for run_id in ids]
    flat = [flat_config(run) for run in runs]
    metrics: dict[str, list[dict[str, Any]]] = {}
    for run_id in ids:
        for name, series in store.get_metrics(run_id).items():
            metrics.setdefault(name, []).append({"run": run_id, "steps": series["steps"], "values": series["values"]})
    _, rows = run_rows(runs)
    return {
        "ids": ids,
        "config": [
            {"path": key, "values": [config.get(key) for config in flat], "present": [key in config for config in flat]} for key in varying_keys(flat)
        ],
        "results": {
            "status": [row["status"] for row in rows],
            "result": [row["result"] for row in rows],
            "duration": [row["duration"] for row in rows],
            "commit": [(run.get("code_version") or {}).get("commit") for run in runs],
        },
        "metrics": metrics,
    }
