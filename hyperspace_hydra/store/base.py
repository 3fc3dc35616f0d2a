"""The store contract: one small interface that every backend fills in.

A *run document* is a dict in the shape Sacred's MongoObserver writes (``_id``,
``experiment``, ``command``, ``host``, ``start_time``, ``heartbeat``, ``stop_time``,
``status``, ``config``, ``result``, ``info``, ``captured_out``, ``fail_trace``,
``meta``, ``artifacts``, ``resources``) plus this project's fields (``task``,
``overrides``, ``config_given``, ``config_hash``, ``objective``, ``code_version``,
``seed``, ``output_dir``, ``choices``, ``job_id``, ``sweep_id``). Times are naive UTC datetimes.

Backends must be safe to use from several processes at once, each with its own
``Store`` object; a ``Store`` object itself is used from one thread at a time.
"""

from __future__ import annotations

import abc
import datetime as dt
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hyperspace_hydra.bounds import MAX_COUNT
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.store.grouping import ConfigGroup

RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
INTERRUPTED = "INTERRUPTED"
TIMEOUT = "TIMEOUT"
DIED = "DIED"
PRUNED = "PRUNED"
FINAL_STATUSES = frozenset({COMPLETED, FAILED, INTERRUPTED, TIMEOUT, DIED, PRUNED})
"""Final statuses of a run. DIED: its worker was lost (lease expired) or its job was taken over. PRUNED: a trial
of a search that its pruner stopped early (``info.pruned`` holds the metric, step and value it stopped at)."""
RUN_STATUSES = (RUNNING, COMPLETED, PRUNED, FAILED, INTERRUPTED, TIMEOUT, DIED)
"""Every status this tool gives a run, running first, then the final ones (the order tables and facets show)."""

QUEUED = "QUEUED"
PAUSED = "PAUSED"
CANCELLED = "CANCELLED"
JOB_STATES = (QUEUED, PAUSED, RUNNING, COMPLETED, FAILED, TIMEOUT, DIED, CANCELLED)
JOB_FINAL_STATES = frozenset({COMPLETED, FAILED, TIMEOUT, DIED, CANCELLED})
DEDUPE_STATES = frozenset({QUEUED, PAUSED, RUNNING, COMPLETED})
"""A new job whose config hash matches a job in one of these states (or a COMPLETED run) is a duplicate."""

RUN_FIELDS = (
    "experiment", "command", "host", "start_time", "heartbeat", "stop_time", "status", "config",
    "result", "info", "captured_out", "fail_trace", "meta", "artifacts", "resources", "format",
    "task", "overrides", "config_given", "config_hash", "objective", "code_version", "seed",
    "output_dir", "choices", "job_id", "sweep_id",
)  # fmt: skip

SWEEP_FIELDS = ("study", "kind", "command", "spec", "state", "created_at", "copied_from")
"""The fields of a sweep besides its ``id`` (see :meth:`Store.get_sweep`)."""
JOB_FIELDS = (
    "study", "sweep_id", "overrides", "config", "config_hash", "output_dir", "priority", "state", "attempts",
    "max_attempts", "worker", "token", "lease_expires_at", "created_at", "claimed_at", "finished_at", "error",
    "run_id", "copied_from",
)  # fmt: skip
"""The fields of a job besides its ``id`` (see :meth:`Store.list_jobs`). ``copied_from``, also a sweep's, names the
original of a copy (``{"store": URI, "id": ID}``, see :mod:`~hyperspace_hydra.store_copy`); None elsewhere."""
WHOLE_JOB_STATES = frozenset({QUEUED, PAUSED, *JOB_FINAL_STATES})
"""The states a job written whole (:meth:`Store.add_whole_jobs`) may have: every one but RUNNING, as a claim stays with its store."""

EXHAUSTED = "EXHAUSTED"
SWEEP_FINAL_STATES = frozenset({COMPLETED, EXHAUSTED, CANCELLED, INTERRUPTED})
"""How a growing sweep (a search, state RUNNING while it may get more trials) ended: its budget was
spent, every point of its space was tried, it was cancelled, or its local loop was stopped."""


STALE_RUN_SECONDS = 120
"""A RUNNING run outside the queue whose last heartbeat is older than this (on the server's clock) died with its
process: four times the longest heartbeat interval a study may set (``settings.MAX_HEARTBEAT_SECONDS``), as long as
Omniboard waits before it shows a run PROBABLY_DEAD."""
STALE_RUN = f"process lost: no heartbeat for {STALE_RUN_SECONDS} s"
"""The trace of a run that :meth:`Store.end_stale_runs` found dead."""
LEASE_EXPIRED = "worker lost: the job's lease expired"
"""The error of a job, and the trace of its run, when its worker's lease expired."""
JOB_STATE_AFTER_RUN = {COMPLETED: COMPLETED, PRUNED: COMPLETED, FAILED: FAILED, TIMEOUT: TIMEOUT, INTERRUPTED: QUEUED, DIED: QUEUED}
"""What a claimed job becomes when its run ends with a status (see :meth:`Store.finish_run`): a pruned trial's
job is done (COMPLETED, never retried); its run says it was pruned."""
RUN_STATUS_AFTER_WORKER_END = {FAILED: FAILED, TIMEOUT: TIMEOUT, QUEUED: INTERRUPTED}
"""What a job's running run becomes when its worker ends the job in a state (see :meth:`Store.end_job`)."""


def expired_job_changes(attempts: int, max_attempts: int, now: dt.datetime) -> dict[str, Any]:
    """The fields of a RUNNING job whose lease expired at ``now`` (see :meth:`Store.requeue_expired`): one more
    attempt; back to QUEUED, or DIED once its attempts reach ``max_attempts``; no owner, no lease."""
    dies = attempts + 1 >= max_attempts
    return {
        "state": DIED if dies else QUEUED, "attempts": attempts + 1, "worker": None, "token": None,
        "lease_expires_at": None, "error": LEASE_EXPIRED, "finished_at": now if dies else None,
    }  # fmt: skip


def lost_attempt_run_changes(now: dt.datetime) -> dict[str, Any]:
    """The changes of the RUNNING run of an attempt whose lease expired, which ends DIED."""
    return {"stop_time": now, "fail_trace": [LEASE_EXPIRED]}


def ended_job_changes(state: str, error: str | None, run_id: int | None) -> dict[str, Any]:
    """The fields of a claimed job that ends in ``state`` (back in the queue for QUEUED: no owner, no finish
    time), with its error and, when given, the run that ended it; its claim is gone."""
    values: dict[str, Any] = {"state": state, "error": error, "token": None, "lease_expires_at": None}
    if state == QUEUED:
        values["worker"] = None
    else:
        values["finished_at"] = utcnow()
    if run_id is not None:
        values["run_id"] = run_id
    return values


def job_error(status: str, changes: Mapping[str, Any]) -> str | None:
    """What a job shows as its error when its run ends with ``status`` and ``changes``: for a FAILED
    run, the last line of its fail trace (``ValueError: lr must be positive``); else none."""
    if status != FAILED:
        return None
    return last_error_line(changes.get("fail_trace") or []) or "failed"


def last_error_line(trace: Sequence[str]) -> str | None:
    """The last non-empty line of a fail trace (the exception and its message), stripped; None for an empty trace."""
    lines = [line.strip() for line in "".join(trace).splitlines() if line.strip()]
    return lines[-1] if lines else None


METRIC_NAME_LENGTH = 256
"""The longest metric name a store keeps (PostgreSQL's column refuses longer ones)."""
STEP_RANGE = range(-(2**63), 2**63)
"""The steps a metric point can have: every store keeps them as 64-bit integers."""
PRIORITY_RANGE = range(-(2**31), 2**31)
"""The priorities a job can have: every backend keeps them as 32-bit integers (PostgreSQL's ``integer``)."""


def check_new_jobs(jobs: Sequence[NewJob], max_attempts: int) -> None:
    """Raise :class:`HyperspaceError` before anything is written when a job's priority or the attempts it may take are
    not whole numbers a store keeps alike on every backend (SQLite would keep ``"high"`` as text, PostgreSQL refuse it)."""
    if not _whole(max_attempts) or not 1 <= max_attempts <= MAX_COUNT:
        raise HyperspaceError(f"max_attempts must be a whole number from 1 to {MAX_COUNT}, not {max_attempts!r}")
    for job in jobs:
        if not _whole(job.priority) or job.priority not in PRIORITY_RANGE:
            raise HyperspaceError(f"a job's priority must be a whole number from {PRIORITY_RANGE.start} to {PRIORITY_RANGE.stop - 1}, not {job.priority!r}")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def new_jobs_of(jobs: Sequence[NewJob], existing_hashes: set[str], dedupe: bool) -> list[NewJob | None]:
    """Per given job, the job to insert, or None for a duplicate: with ``dedupe``, a job whose config hash is
    in ``existing_hashes`` (queued, running or completed work) or repeats an earlier job of ``jobs``."""
    if not dedupe:
        return list(jobs)
    seen = set(existing_hashes)
    kept: list[NewJob | None] = []
    for job in jobs:
        kept.append(None if job.config_hash in seen else job)
        seen.add(job.config_hash)
    return kept


def check_sweep_state(state: str) -> None:
    """ValueError unless ``state`` is one of :data:`SWEEP_FINAL_STATES` (see :meth:`Store.end_sweep`)."""
    if state not in SWEEP_FINAL_STATES:
        raise ValueError(f"{state!r} is not a final sweep state; expected one of {sorted(SWEEP_FINAL_STATES)}")


def claim_lost(claim: Claim) -> ClaimLostError:
    """The error of an attempt that may no longer write."""
    return ClaimLostError(f"job {claim.job_id}: this attempt no longer holds the job (its lease was taken over, or it was cancelled or ended); nothing written")


def run_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """``changes`` as run fields to write; ValueError for unknown fields or ``status`` (set only by finishing)."""
    unknown = set(changes) - set(RUN_FIELDS)
    if unknown or "status" in changes:
        raise ValueError(f"cannot set run fields {sorted(unknown | ({'status'} & set(changes)))} this way")
    return dict(changes)


def run_fields(fields: Sequence[str] | None) -> tuple[str, ...]:
    """The run fields that :meth:`Store.list_runs` returns for its ``fields`` argument; ValueError for unknown ones."""
    if fields is None:
        return RUN_FIELDS
    unknown = set(fields) - set(RUN_FIELDS)
    if unknown:
        raise ValueError(f"unknown run fields {sorted(unknown)}; expected names from RUN_FIELDS")
    return tuple(fields)


MetricSeries = Mapping[str, Mapping[str, Sequence[Any]]]
"""Metric series of a run as :meth:`Store.get_metrics` returns them: ``{name: {"steps", "values", "timestamps"}}``."""


@dataclass(frozen=True)
class FinishedRun:
    """A run recorded elsewhere (another store, Sacred), to write whole with :meth:`Store.add_finished_runs`:
    its document, its metric series, the id it keeps (None: it gets a new one), and whether it is the run its
    job (the document's ``job_id``, a job of the store) names as its ``run_id``."""

    document: Mapping[str, Any]
    metrics: MetricSeries = field(default_factory=dict)
    run_id: int | None = None
    is_job_run: bool = False


@dataclass(frozen=True)
class Adoption:
    """What :meth:`Store.rewrite_config` also writes when backfill makes an imported run a run of a study: the
    study's app as ``experiment.name``, and the run's ``task``, ``choices`` and ``objective`` as the study sees them."""

    experiment_name: str
    task: str | None
    choices: Mapping[str, str]
    objective: float | None

    def fields(self) -> dict[str, Any]:
        """The run fields it sets besides ``experiment.name``."""
        return {"task": self.task, "choices": dict(self.choices), "objective": self.objective}


def finished_run_values(run: FinishedRun) -> tuple[dict[str, Any], list[MetricPoint]]:
    """The fields and metric points that :meth:`Store.add_finished_runs` writes for ``run``.

    Every field of :data:`RUN_FIELDS` is present (missing ones empty); ``info.metrics`` lists the
    names of the metrics (``{"name": ...}``, as a recorded run's does; MongoDB adds the ids of its
    metrics documents), replacing whatever the document listed. ValueError for an unknown field, a
    status outside :data:`FINAL_STATUSES`, a series whose lists differ in length, a ``run_id``
    outside :data:`ID_RANGE`, or ``is_job_run`` without a ``job_id``.
    """
    document, metrics = run.document, run.metrics
    if run.run_id is not None and run.run_id not in ID_RANGE:
        raise ValueError(f"run id {run.run_id} is outside the ids a store holds (1 to 2**63 - 1)")
    unknown = set(document) - {"_id", *RUN_FIELDS}
    if unknown:
        raise ValueError(f"unknown run fields {sorted(unknown)}; expected names from RUN_FIELDS")
    if document.get("status") not in FINAL_STATUSES:
        raise ValueError(f"a finished run needs a final status, one of {sorted(FINAL_STATUSES)}, not {document.get('status')!r}")
    if run.is_job_run and document.get("job_id") is None:
        raise ValueError("a run that is its job's run needs the job's id (job_id)")
    values = {name: document.get(name) for name in RUN_FIELDS}
    info = {key: value for key, value in (values["info"] or {}).items() if key != "metrics"}
    values["info"] = {**info, "metrics": [{"name": name} for name in metrics]} if metrics else info
    return values, [point for name, series in metrics.items() for point in _series_points(name, series)]


def kept_run_ids(runs: Sequence[FinishedRun]) -> list[int]:
    """The ids that ``runs`` keep; ValueError if two of them would keep the same one."""
    return _unique_kept([run.run_id for run in runs if run.run_id is not None], "run")


def _series_points(name: str, series: Mapping[str, Sequence[Any]]) -> list[MetricPoint]:
    steps, values, timestamps = (list(series[key]) for key in ("steps", "values", "timestamps"))
    if not len(steps) == len(values) == len(timestamps):
        raise ValueError(f"metric {name!r}: {len(steps)} steps, {len(values)} values and {len(timestamps)} timestamps; expected as many of each")
    return [MetricPoint(name, step, value, timestamp) for step, value, timestamp in zip(steps, values, timestamps)]


ID_RANGE = range(1, 2**63)
"""The ids a store may hand out (signed 64-bit integers from 1). A number outside names no run, job
or sweep; backends answer so without asking the database, which cannot take such a number."""


def known_ids(ids: Iterable[int]) -> list[int]:
    """The ids in ``ids`` that a run, job or sweep may have (see :data:`ID_RANGE`)."""
    return [identifier for identifier in ids if identifier in ID_RANGE]


def utcnow() -> dt.datetime:
    """The current time as the naive UTC datetime that stores keep."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def id_taken(store: str, kind: str, identifier: int) -> HyperspaceError:
    """The error of :meth:`Store.add_finished_runs` (``kind`` run), :meth:`Store.add_whole_sweeps` (sweep) or
    :meth:`Store.add_whole_jobs` (job) asked to keep an id that one of ``store`` (its URI, redacted) has."""
    return HyperspaceError(f"{kind} id {identifier} is taken in store {store}: a {kind} keeps its id only where no {kind} has it")


@dataclass(frozen=True)
class WholeRow:
    """A sweep or job recorded elsewhere (another store), to write whole with :meth:`Store.add_whole_sweeps` or
    :meth:`Store.add_whole_jobs`: its fields (names from :data:`SWEEP_FIELDS` or :data:`JOB_FIELDS`) and the id it
    keeps (None: it gets a new one)."""

    fields: Mapping[str, Any]
    row_id: int | None = None


def whole_sweep_values(sweep: WholeRow) -> dict[str, Any]:
    """The fields that :meth:`Store.add_whole_sweeps` writes for ``sweep``: every one of :data:`SWEEP_FIELDS`
    (missing ones empty). ValueError for an unknown field, no ``study``, ``kind`` or ``created_at``, or a kept id
    outside :data:`ID_RANGE`."""
    values = _whole_values(sweep, SWEEP_FIELDS, "sweep")
    if not all(values[name] is not None for name in ("study", "kind", "created_at")):
        raise ValueError("a sweep needs its study, kind and created_at")
    return values


def whole_job_values(job: WholeRow) -> dict[str, Any]:
    """The fields that :meth:`Store.add_whole_jobs` writes for ``job``: every one of :data:`JOB_FIELDS` (missing
    ones empty, ``attempts`` 0, ``max_attempts`` 3, ``priority`` 0), with no claim (``token`` and
    ``lease_expires_at`` empty). ValueError for an unknown field, a state outside :data:`WHOLE_JOB_STATES`, no
    ``study``, ``overrides`` or ``created_at``, or a kept id outside :data:`ID_RANGE`."""
    values = _whole_values(job, JOB_FIELDS, "job")
    if values["state"] not in WHOLE_JOB_STATES:
        raise ValueError(f"a job written whole needs one of the states {sorted(WHOLE_JOB_STATES)}, not {values['state']!r}")
    if not all(values[name] is not None for name in ("study", "overrides", "created_at")):
        raise ValueError("a job needs its study, overrides and created_at")
    defaults = {"attempts": 0, "max_attempts": 3, "priority": 0}
    return {**values, **{name: default for name, default in defaults.items() if values[name] is None}, "token": None, "lease_expires_at": None}


def _whole_values(row: WholeRow, names: Sequence[str], kind: str) -> dict[str, Any]:
    if row.row_id is not None and row.row_id not in ID_RANGE:
        raise ValueError(f"{kind} id {row.row_id} is outside the ids a store holds (1 to 2**63 - 1)")
    unknown = set(row.fields) - set(names)
    if unknown:
        raise ValueError(f"unknown {kind} fields {sorted(unknown)}; expected names from {kind.upper()}_FIELDS")
    return {name: row.fields.get(name) for name in names}


def kept_ids(rows: Sequence[WholeRow], kind: str) -> list[int]:
    """The ids that ``rows`` keep; ValueError if two of them would keep the same one."""
    return _unique_kept([row.row_id for row in rows if row.row_id is not None], kind)


def _unique_kept(kept: list[int], kind: str) -> list[int]:
    if len(set(kept)) != len(kept):
        raise ValueError(f"{kind}s to write keep the same id twice: {sorted({identifier for identifier in kept if kept.count(identifier) > 1})}")
    return kept


class RunNotFoundError(HyperspaceError):
    """No run with the given id exists in this store."""


class StoreNotFoundError(HyperspaceError):
    """No store exists at the URI, and the caller asked not to create one (see :func:`~hyperspace_hydra.store.open_store`)."""

    def __init__(self, shown_uri: str) -> None:
        """``shown_uri``: the store's URI without its password."""
        super().__init__(
            f"no store at {shown_uri}: nothing was recorded there yet (a run, an enqueue or a worker creates one); "
            "check the URI and the directory the command runs in"
        )


class JobNotFoundError(HyperspaceError):
    """No job (or sweep) with the given id exists in this store."""


class ClaimLostError(HyperspaceError):
    """The attempt's claim on its job no longer holds (lease taken over, job cancelled or ended): it may write nothing."""


@dataclass(frozen=True)
class NewJob:
    """A job to enqueue: overrides as given, the complete config they compose to, and its hash."""

    overrides: list[str]
    config: dict[str, Any]
    config_hash: str
    output_dir: str | None = None
    priority: int = 0


@dataclass(frozen=True)
class Claim:
    """Proof that a worker holds a job: the job id and the token of this attempt."""

    job_id: int
    token: str


@dataclass(frozen=True)
class ClaimedJob:
    """A job handed to a worker by :meth:`Store.claim`."""

    claim: Claim
    study: str
    sweep_id: int | None
    overrides: list[str]
    output_dir: str | None
    attempts: int


@dataclass(frozen=True)
class EnqueueResult:
    """What :meth:`Store.enqueue` did: the sweep (None when every job was a duplicate), and per given job its new id (None: skipped duplicate)."""

    sweep_id: int | None
    job_ids: list[int | None]

    @property
    def enqueued(self) -> list[int]:
        """The ids of the jobs that were enqueued."""
        return [job_id for job_id in self.job_ids if job_id is not None]

    @property
    def skipped(self) -> int:
        """How many given jobs were skipped as duplicates."""
        return self.job_ids.count(None)


@dataclass(frozen=True)
class MetricPoint:
    """One value of a metric series of a run."""

    name: str
    step: int
    value: float
    timestamp: dt.datetime


WORKING = "working"
IDLE = "idle"
STOPPING = "stopping"
STOPPED = "stopped"
GONE = "gone"
WORKER_STATES = (WORKING, IDLE, STOPPING, STOPPED, GONE)
"""A registered worker's states (see :meth:`Store.list_workers`): what it last said of itself (working: it holds jobs;
idle; stopping: told to stop, finishing its jobs; stopped: it ended), or ``gone`` when it stopped saying anything."""
WORKER_GONE_LEASES = 2
"""A worker not seen for this many of its leases (on the server's clock) is gone (killed, its machine lost): a
live worker says it is there at least every half lease, and by then any job it held has been requeued."""
WORKER_KEPT_SECONDS = 24 * 3600
"""A stopped or gone worker's row is deleted once its last beat is this old (when another worker registers)."""
WORKER_FIELDS = (
    "name", "study", "host", "pid", "slurm_job", "processes", "lease_seconds", "started_at", "last_seen", "job_ids", "state",
)  # fmt: skip
"""The fields of a worker's row in the registry (see :meth:`Store.list_workers`)."""


@dataclass(frozen=True)
class WorkerInfo:
    """A worker as it registers (:meth:`Store.register_worker`): its name (the ``worker`` its jobs hold), the study it
    serves, where it runs (host, pid, SLURM job id), how many jobs it runs at once and the lease it takes."""

    name: str
    study: str
    host: str
    pid: int
    slurm_job: str | None = None
    processes: int = 1
    lease_seconds: float = 60.0


@dataclass(frozen=True)
class WorkerBeat:
    """What a worker says of itself with a lease renewal (see :meth:`Store.renew_leases`): its name and whether it is stopping."""

    name: str
    stopping: bool = False


def registered_worker_values(worker: WorkerInfo, now: dt.datetime) -> dict[str, Any]:
    """The row of a worker that registers at ``now`` (server time): idle, holding no job."""
    return {
        "name": worker.name, "study": worker.study, "host": worker.host, "pid": worker.pid, "slurm_job": worker.slurm_job,
        "processes": worker.processes, "lease_seconds": worker.lease_seconds, "started_at": now, "last_seen": now,
        "job_ids": [], "state": IDLE,
    }  # fmt: skip


def beat_values(beat: WorkerBeat | None, held_job_ids: Iterable[int], now: dt.datetime) -> dict[str, Any]:
    """The changes to a worker's row when it renews the leases of ``held_job_ids`` (the claims that still hold) at ``now``;
    with ``beat`` None (a worker that stopped) it holds nothing and is stopped."""
    held = sorted(held_job_ids)
    state = STOPPED if beat is None else STOPPING if beat.stopping else WORKING if held else IDLE
    return {"last_seen": now, "job_ids": held, "state": state}


def claimed_job_values(held_job_ids: Iterable[int], job_id: int, now: dt.datetime) -> dict[str, Any]:
    """The changes to a registered worker's row when it claims ``job_id`` at ``now``, holding ``held_job_ids`` before:
    it is working on them and the new job at once (no wait for its next beat)."""
    return {"last_seen": now, "job_ids": sorted({*held_job_ids, job_id}), "state": WORKING}


def worker_gone(row: Mapping[str, Any], now: dt.datetime) -> bool:
    """Whether a worker's row (not stopped) was last seen more than :data:`WORKER_GONE_LEASES` of its leases before ``now``."""
    silent = (now - row["last_seen"]).total_seconds()
    return row["state"] != STOPPED and silent > WORKER_GONE_LEASES * row["lease_seconds"]


def shown_worker(row: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    """A worker's row as :meth:`Store.list_workers` returns it: its :data:`WORKER_FIELDS`, ``state`` GONE when
    :func:`worker_gone`, and ``seen_seconds_ago`` by the server's clock (``now``)."""
    values = {name: row[name] for name in WORKER_FIELDS}
    values["job_ids"] = list(values["job_ids"] or [])
    if worker_gone(row, now):
        values["state"] = GONE
    values["seen_seconds_ago"] = round((now - row["last_seen"]).total_seconds(), 1)
    return values


def prunable_worker(row: Mapping[str, Any], now: dt.datetime) -> bool:
    """Whether a worker's row may be deleted at ``now``: stopped or gone, and last seen :data:`WORKER_KEPT_SECONDS` ago."""
    old = (now - row["last_seen"]).total_seconds() > WORKER_KEPT_SECONDS
    return old and (row["state"] == STOPPED or worker_gone(row, now))


CONDITION_OPERATORS = ("=", "!=", "<", ">", "<=", ">=", "in", "exists")
ORDER_OPERATORS = ("<", ">", "<=", ">=")
"""The operators that compare by order: numbers numerically, strings by code point."""
RUN_VALUE_PATHS = ("id", "objective", "status", "task", "seed", "sweep_id")
"""Paths that name a run field itself; ``result.<key>``, ``choices.<group>`` and ``info.<key>`` name a key inside those fields."""
DURATION = "duration"
"""A sort path that no field holds: ``stop_time - start_time`` in seconds, computed by the database."""
STUDY = "study"
"""The path of the study (app) that recorded a run, kept in ``experiment.name`` as Sacred keeps an experiment's name."""
_KEYED_FIELDS = ("result", "choices", "info")


def run_path(path: str) -> tuple[str, tuple[str, ...]]:
    """The run field that ``path`` points into and the keys inside that field's JSON value.

    ``objective`` gives ``("objective", ())``, ``result.accuracy`` gives ``("result", ("accuracy",))``,
    ``study`` gives ``("experiment", ("name",))``, any other path is in the complete config: ``classifier.C`` gives ``("config", ("classifier", "C"))``.
    Raises :class:`HyperspaceError` for a malformed path.
    """
    parts = tuple(path.split("."))
    if not all(parts):
        raise HyperspaceError(f"invalid path {path!r}: expected dotted keys such as classifier.C, result.accuracy or objective")
    if path in (*RUN_VALUE_PATHS, DURATION):
        return path, ()
    if path == STUDY:
        return "experiment", ("name",)
    if parts[0] in _KEYED_FIELDS:
        if len(parts) == 1:
            raise HyperspaceError(f"invalid path {path!r}: name a key inside it, as in {path}.<key>")
        return parts[0], parts[1:]
    return "config", parts


@dataclass(frozen=True)
class Condition:
    """A filter of :meth:`Store.list_runs`: the run's value at ``path`` compared with ``value`` by ``op``.

    ``path``: ``id``, ``objective``, ``status``, ``task``, ``seed`` and ``sweep_id`` name those run fields,
    ``study`` the app that recorded the run (``experiment.name``),
    ``result.<key>``, ``choices.<group>`` and ``info.<key>`` a key of the run's result, Hydra choices or
    info (where an imported run keeps where it came from: ``info.imported_from``), any other
    dotted path a value in the run's complete ``config`` (each part a key of a mapping:
    ``classifier.C``). A run's value is *missing* when the path does not exist in it or holds null.

    - ``=``: numbers compare numerically (``1`` equals ``1.0``), strings and booleans as such, and
      a value of another type is never equal (``1`` is neither ``"1"`` nor ``True``). A list equals
      a list of the same length whose items are equal in order; a scalar never equals a list.
    - ``!=``: exactly the runs that ``=`` does not match, including runs where the value is missing.
    - ``<``, ``>``, ``<=``, ``>=``: ``value`` is a number or a string; matches a value of the same kind
      that is smaller, greater, smaller or equal, greater or equal (strings by code point).
    - ``in``: ``value`` is a non-empty list of scalars; matches when ``=`` matches one of them.
    - ``exists``: ``value`` True matches runs where the value is not missing, False runs where it is.

    ``=``, the order operators and ``in`` never match a run whose value is missing. An integer beyond 64
    bits (which no database can take) compares as the float nearest to it. Raises
    :class:`HyperspaceError` for a malformed path, an unknown operator or a value it cannot take.
    """

    path: str
    op: str
    value: Any = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _within_64_bits(self.value))  # frozen: this is the one normalisation of the value
        run_path(self.path)
        if self.path == DURATION:
            raise HyperspaceError(f"{DURATION} can be sorted by (sort {DURATION} or -{DURATION}), not filtered on")
        if self.op not in CONDITION_OPERATORS:
            raise HyperspaceError(
                f"unknown operator {self.op!r} in a condition on {self.path}: expected one of {', '.join(CONDITION_OPERATORS)}"
            )
        problem = _value_problem(self.op, self.value)
        if problem:
            raise HyperspaceError(f"invalid condition on {self.path}: {problem}")


def _within_64_bits(value: Any) -> Any:
    """``value`` with every integer beyond 64 bits as a float: databases cannot bind such an integer, and as a float it
    still compares correctly with every number they hold (a stored value is never that large an integer)."""
    if isinstance(value, list):
        return [_within_64_bits(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return float(value)
    return value


def _value_problem(op: str, value: Any) -> str | None:
    """Why ``value`` cannot be compared by ``op``; None if it can."""
    if value is None and op != "exists":
        return "null counts as missing and is never compared: test for it with exists"
    if op == "exists":
        return None if isinstance(value, bool) else f"exists takes True or False, not {value!r}"
    if op in ORDER_OPERATORS:
        return None if _is_scalar(value) and not isinstance(value, bool) else f"{op} compares with a number or a string, not {value!r}"
    if op == "in":
        if isinstance(value, list) and value and all(map(_is_scalar, value)):
            return None
        return f"in takes a non-empty list of strings, numbers or booleans, not {value!r}"
    return None if _is_comparable(value) else f"{op} compares with a string, a number, a boolean or a list of them, not {value!r}"


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int)) or (isinstance(value, float) and math.isfinite(value))


def _is_comparable(value: Any) -> bool:
    return _is_scalar(value) or (isinstance(value, list) and all(map(_is_comparable, value)))


def run_conditions(task: str | None, status: str | None, where: Sequence[Condition]) -> list[Condition]:
    """The filters of :meth:`Store.list_runs` as conditions: ``task`` and ``status`` (when given), then ``where``."""
    given = {"task": task, "status": status}
    return [*(Condition(field, "=", value) for field, value in given.items() if value is not None), *where]


def sort_order(sort: str) -> tuple[str, bool]:
    """The ``sort`` argument of :meth:`Store.list_runs` as (path, descending); the path is checked by :func:`run_path`."""
    path = sort.removeprefix("-")
    run_path(path)
    return path, sort.startswith("-")


def run_pages(store: Store, where: Sequence[Condition] = (), fields: Sequence[str] | None = None, size: int = 200) -> Iterator[list[dict[str, Any]]]:
    """The runs of ``store`` that meet ``where`` (only ``fields``, as :meth:`Store.list_runs` reads them), in id
    order, in pages of ``size``: one query per page, so memory stays bounded whatever the size of the store."""
    last = 0
    while True:
        page = store.list_runs(size, where=[*where, Condition("id", ">", last)], sort="id", fields=fields)
        if page:
            yield page
        if len(page) < size:
            return
        last = page[-1]["_id"]


def job_pages(store: Store, states: Sequence[str] | None = None, size: int = 200) -> Iterator[list[dict[str, Any]]]:
    """The jobs of ``store`` in ``states`` (all, if None) in id order, in pages of ``size``: one query per page, as :func:`run_pages`."""
    last = 0
    while True:
        page = store.list_jobs(states=states, after_id=last, limit=size)
        if page:
            yield page
        if len(page) < size:
            return
        last = page[-1]["id"]


class Store(abc.ABC):
    """Where runs and their metrics live.

    Every method either completes fully or raises and changes nothing. Errors a
    user can fix (unreachable, unwritable or damaged store, missing run) are raised as
    :class:`~hyperspace_hydra.errors.HyperspaceError` subclasses.
    """

    uri: str
    usable_after_fork: bool = False
    """Whether a process forked from the one that opened this store may go on using this object (its
    connections are not shared with the parent's); a worker's job processes then record through it
    instead of opening the store again."""

    def rehearse_job_run(self, claim: Claim) -> None:
        """Prepare this object so that processes forked from it afterwards record the run of a queued job faster
        (:attr:`usable_after_fork`): the SQL store compiles the statements a job process executes, so each forked
        process finds them in the cache it inherits instead of compiling them again.

        ``claim`` is a claim this caller holds; the store is left as it was, the claim holds as before. May raise what
        any write raises (an unavailable store, a lost claim); nothing depends on it having run. The default does nothing.
        """
        return None

    @abc.abstractmethod
    def start_run(self, document: Mapping[str, Any], claim: Claim | None = None) -> int:
        """Insert a new run with status RUNNING and return its id.

        Ids are positive integers, unique in the store and never reused, also when
        several processes start runs at the same moment. Fields of
        :data:`RUN_FIELDS` missing from ``document`` are stored as empty; ``heartbeat``
        is the server's time (see :meth:`update_run`).

        With ``claim`` (the run executes that queued job) the run is inserted only while
        the claim holds (job RUNNING with that token), and becomes the job's ``run_id``;
        otherwise :class:`ClaimLostError` is raised. SQL backends check and insert in one transaction, so a lost attempt
        writes nothing; MongoDB (no transaction) inserts, checks again and finishes a run
        that lost the race at once as DIED before raising.
        """

    @abc.abstractmethod
    def update_run(self, run_id: int, changes: Mapping[str, Any], claim: Claim | None = None) -> None:
        """Overwrite the given fields of a RUNNING run (heartbeat, captured output, info, result).

        A run that already has a final status is left unchanged: a late heartbeat
        never undoes a finish. A ``heartbeat`` is stored as the server's time of the
        write (:meth:`server_time`), whatever value is given, so that staleness is
        judged on one clock (:meth:`end_stale_runs`). Raises :class:`RunNotFoundError`
        for an unknown id. With ``claim``, writes only while the claim holds, else
        raises :class:`ClaimLostError`.
        """

    @abc.abstractmethod
    def finish_run(self, run_id: int, status: str, changes: Mapping[str, Any], claim: Claim | None = None) -> bool:
        """Give a RUNNING run its final ``status`` together with ``changes``, atomically.

        Returns True when this call finished the run, False when it already had a
        final status (then nothing is written), so a run is finished exactly once
        even if two processes race. Raises :class:`RunNotFoundError` for an unknown id
        and ``ValueError`` for a status outside :data:`FINAL_STATUSES`.

        With ``claim`` (the run executes a queued job) the run and its job end in one
        transaction, and only while the claim still holds (job RUNNING with that
        token): the job becomes COMPLETED (also for a PRUNED run), FAILED or TIMEOUT like the run (a FAILED job's
        error is :func:`job_error`), or goes back to QUEUED for an INTERRUPTED run
        (attempts unchanged). If the claim no longer
        holds, the job is left alone and the run is finished as DIED (INTERRUPTED if
        the job was cancelled), and False is returned. So a job never has two
        COMPLETED runs.
        """

    @abc.abstractmethod
    def end_stale_runs(self) -> list[int]:
        """Finish as DIED (trace :data:`STALE_RUN`) every RUNNING run without a job whose last heartbeat is
        more than :data:`STALE_RUN_SECONDS` old on the server's clock; return their ids.

        Such a run's process died without a word (SIGKILL, out of memory, a lost node) under
        a launcher other than the queue. Runs of queued jobs are left to their job's lease
        (:meth:`requeue_expired`). Safe to call from any number of processes at once.
        """

    @abc.abstractmethod
    def rewrite_config(
        self, run_id: int, config: Mapping[str, Any], config_hash: str, info: Mapping[str, Any], *, adoption: Adoption | None = None
    ) -> None:
        """Replace a run's complete ``config``, its ``config_hash`` and its ``info`` in one write, whatever its status.

        With ``adoption`` (a run imported without the study's app becomes the study's) the same write
        also sets ``experiment.name`` (only that key of ``experiment``), ``task``, ``choices`` and
        ``objective``. Used by backfill only; every other field is left as it is. Raises
        :class:`RunNotFoundError` for an unknown id.
        """

    @abc.abstractmethod
    def add_metrics(self, run_id: int, points: Iterable[MetricPoint], claim: Claim | None = None) -> None:
        """Append metric points to a run; all of them or none are stored.

        Raises :class:`RunNotFoundError` for an unknown id. With ``claim``, writes only
        while the claim holds, else raises :class:`ClaimLostError`.
        """

    @abc.abstractmethod
    def add_finished_runs(self, runs: Sequence[FinishedRun]) -> list[int]:
        """Write whole finished runs (each document with its captured output, and its metric series); return their ids.

        Brings in runs recorded elsewhere (another store, Sacred): each document has a final
        ``status`` and its own times, heartbeat included, all kept as given; its fields and metrics
        are read by :func:`finished_run_values`. All of the runs are written or none: SQL backends
        write them and their metrics in one transaction (metric points with one executemany);
        MongoDB (no transaction) writes the metrics documents and long outputs' GridFS files
        first and the run documents last (one ``insert_many`` each), deleting what it wrote if a
        step fails, so no reader ever sees part of a run.

        A run without ``run_id`` gets a new id as :meth:`start_run` gives them; one with ``run_id``
        keeps it, and ids handed out later are higher. A run with ``is_job_run`` becomes its job's
        ``run_id`` in the same write (MongoDB: right after the run documents). :class:`HyperspaceError` (see
        :func:`id_taken`) if a run of the store already has a kept id; ValueError as
        :func:`finished_run_values` and :func:`kept_run_ids` say.
        """

    @abc.abstractmethod
    def add_whole_sweeps(self, sweeps: Sequence[WholeRow]) -> list[int]:
        """Write sweeps recorded elsewhere (another store) with every field as given (see :func:`whole_sweep_values`); return their ids.

        All of them are written or none (MongoDB: one ``insert_many``, taken back if it fails). A sweep
        without ``row_id`` gets a new id as :meth:`enqueue` gives them; one with ``row_id`` keeps it, and
        ids handed out later are higher. A written sweep has no jobs; :meth:`add_whole_jobs` and, while it
        has not ended, :meth:`add_jobs` add them. :class:`HyperspaceError` (see :func:`id_taken`) if a sweep
        of the store already has a kept id; ValueError as :func:`whole_sweep_values` and :func:`kept_ids` say.
        """

    @abc.abstractmethod
    def add_whole_jobs(self, jobs: Sequence[WholeRow]) -> list[int]:
        """Write jobs recorded elsewhere (another store) with every field as given (see :func:`whole_job_values`); return their ids.

        Each job's ``sweep_id`` names a sweep of this store (:class:`JobNotFoundError` otherwise, nothing
        written); its ``run_id`` is written as given (:meth:`add_finished_runs` sets it for a run written
        later). All of them are written or none (MongoDB: one ``insert_many``, taken back if it fails). QUEUED
        jobs can be claimed as soon as they are written, PAUSED ones once resumed. Ids are given or kept as
        :meth:`add_whole_sweeps` says; :class:`HyperspaceError` if a job of the store already has a kept id.
        """

    @abc.abstractmethod
    def get_run(self, run_id: int) -> dict[str, Any]:
        """Return the full document of one run (``_id`` and every field of :data:`RUN_FIELDS`).

        Raises :class:`RunNotFoundError` for an unknown id.
        """

    @abc.abstractmethod
    def list_runs(
        self,
        limit: int | None = None,
        *,
        task: str | None = None,
        sweep_id: int | None = None,
        status: str | None = None,
        where: Sequence[Condition] = (),
        sort: str | None = None,
        fields: Sequence[str] | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Return the run documents that match every given filter.

        ``task`` and ``status`` select runs with that task or status, ``sweep_id`` runs recorded
        as part of that sweep (their ``sweep_id``), ``where`` runs that meet every :class:`Condition` (its docstring
        says how values compare and what counts as missing).

        Without ``sort`` runs come oldest first, and ``limit`` keeps the newest ``limit`` of
        them. ``sort`` is a path as in a condition, with ``-`` in front for descending: runs
        whose value there is a number come first, in numeric order, then strings (by code
        point), then runs where it is missing or of another type; ties in id order. With
        ``sort``, ``limit`` keeps the first ``limit`` runs of that order. ``offset`` skips that many
        runs first: the first ones of the sort order, or without ``sort`` the newest ones (a page of
        a table, read without the runs before it). ``duration`` (only as a
        sort) is ``stop_time - start_time`` in seconds; a run without a stop time (still RUNNING)
        has no duration and comes last, as missing values do.

        With ``fields`` (names from :data:`RUN_FIELDS`), each document holds ``_id`` and only
        those fields, and no other field is read.

        The database filters, orders and limits: no run that is left out is read.
        Raises :class:`HyperspaceError` for a malformed ``sort`` path, ``ValueError`` for
        an unknown field.
        """

    @abc.abstractmethod
    def count_runs(self, *, task: str | None = None, sweep_id: int | None = None, status: str | None = None, where: Sequence[Condition] = ()) -> int:
        """How many runs :meth:`list_runs` returns for these filters, counted by the database (no run is read)."""

    @abc.abstractmethod
    def group_runs(self, where: Sequence[Condition], without: Sequence[str] = (), values: Sequence[str] = ()) -> list[ConfigGroup]:
        """The runs that meet every condition of ``where`` (as in :meth:`list_runs`), grouped by their config
        without the dotted paths ``without`` (each with everything under it) and by their choices.

        The runs of one group have equal choices and configs that are equal outside those paths
        (:attr:`ConfigGroup.config`); runs whose configs are equal may still come in separate groups,
        as a backend may compare configs as stored (keys in another order, ``1`` and ``1.0``). Each run
        comes with its id, sweep, objective, result and its values at the dotted paths ``values``.
        Paths name keys of mappings; a path that reaches into a list may be left in place. Groups
        come in the order of their oldest run, and runs oldest first.
        """

    @abc.abstractmethod
    def get_metrics(self, run_id: int) -> dict[str, dict[str, list[Any]]]:
        """Return each metric of a run as ``{name: {"steps": [...], "values": [...], "timestamps": [...]}}``.

        Points are ordered by step, then by the order they were added.
        Raises :class:`RunNotFoundError` for an unknown id.
        """

    @abc.abstractmethod
    def get_metric_series(self, run_ids: Sequence[int], name: str) -> dict[int, tuple[list[int], list[float]]]:
        """The steps and values of metric ``name`` of each of ``run_ids``, read in one query, ordered as
        :meth:`get_metrics` orders them: ``{run_id: (steps, values)}``.

        Runs without points of that metric, and ids that name no run, are left out (no error):
        a pruner reads the series of many runs at once, some of which have logged nothing yet.
        """

    @abc.abstractmethod
    def enqueue(self, study: str, jobs: Sequence[NewJob], sweep: Mapping[str, Any], dedupe: bool = True, max_attempts: int = 3) -> EnqueueResult:
        """Create a sweep and its jobs (state QUEUED) in one transaction: all of them or nothing.

        ``sweep`` holds the sweep's description (``kind``, ``command``, ``spec``) and, for a
        sweep that grows as it goes (a search), ``state`` RUNNING until :meth:`end_sweep`. With
        ``dedupe``, a job whose ``config_hash`` equals that of an earlier job in the
        batch, of a job of ``study`` in :data:`DEDUPE_STATES`, or of a COMPLETED run is
        skipped (its entry in ``job_ids`` is None; see :func:`new_jobs_of`). When jobs are given
        and every one is skipped, nothing is written and ``sweep_id`` is None; with no jobs given,
        the sweep is created empty (a search adds its trials later). Job ids grow in enqueue order.
        A priority or ``max_attempts`` that is not a whole number in range raises :class:`HyperspaceError`
        (:func:`check_new_jobs`) before anything is written.
        """

    @abc.abstractmethod
    def add_jobs(self, sweep_id: int, jobs: Sequence[NewJob], expected_jobs: int, max_attempts: int = 3) -> list[int] | None:
        """Add ``jobs`` (QUEUED, no duplicate check) to a sweep, but only if it has exactly ``expected_jobs``
        jobs and has not ended (see :meth:`end_sweep`).

        Check and insert are one atomic step: of several processes that read the same
        count and try to add, exactly one succeeds; the others get None and may read
        again, as does a caller whose sweep ended meanwhile. Returns the new job ids.
        Raises :class:`JobNotFoundError` for an unknown sweep, :class:`HyperspaceError` as :meth:`enqueue` does.
        """

    @abc.abstractmethod
    def end_sweep(self, sweep_id: int, state: str) -> bool:
        """Give a sweep that has not ended its final ``state`` (one of :data:`SWEEP_FINAL_STATES`).

        Returns False, changing nothing, when the sweep had already ended: of racing
        callers exactly one wins. From then on :meth:`add_jobs` adds nothing to it.
        Raises :class:`JobNotFoundError` for an unknown sweep, ``ValueError`` for another state.
        """

    @abc.abstractmethod
    def server_time(self) -> dt.datetime:
        """The current time of the database server, as a naive UTC datetime.

        Every lease decision (:meth:`claim`, :meth:`renew_leases`, :meth:`requeue_expired`)
        is taken on this clock, never on the calling host's: hosts whose clocks disagree
        agree on when a lease ends. SQLite has no server: its file lives on one machine,
        whose clock it is.
        """

    @abc.abstractmethod
    def claim(self, study: str, worker: str, lease_seconds: float) -> ClaimedJob | None:
        """Atomically take the next QUEUED job of ``study`` (highest priority, then oldest).

        The job becomes RUNNING, owned by ``worker`` with a fresh token, its lease
        ending ``lease_seconds`` from now on the server's clock (:meth:`server_time`).
        Concurrent callers, in any process or on any machine, never get the same job.
        When ``worker`` is registered (:meth:`register_worker`), its row shows it working on the job
        from the same write on (:func:`claimed_job_values`). Returns None when nothing is queued.
        """

    @abc.abstractmethod
    def renew_leases(self, claims: Sequence[Claim], lease_seconds: float, beat: WorkerBeat | None = None) -> set[int]:
        """Extend the leases of the claims that still hold to ``lease_seconds`` from now on the server's
        clock; return the ids of jobs whose claim does not.

        A claim stops holding when its job was requeued after its lease expired,
        cancelled, or ended: the worker must then stop that job.

        With ``beat``, the registry row of the worker ``beat.name`` (see :meth:`register_worker`) is updated
        in the same transaction (MongoDB: right after the leases) as :func:`beat_values` says: seen now on
        the server's clock, holding the jobs whose claim held, working, idle (no claim held, also with no
        claims given: an idle worker's beat) or stopping. A worker that never registered is not added.
        """

    @abc.abstractmethod
    def register_worker(self, worker: WorkerInfo) -> None:
        """Add ``worker`` to the registry of workers (or start its row afresh): idle, started and seen now on the
        server's clock (:func:`registered_worker_values`).

        In the same write, rows that :func:`prunable_worker` allows are deleted (stopped or gone workers last
        seen more than :data:`WORKER_KEPT_SECONDS` ago). A worker registers once, when it starts; it then
        says it is alive with its lease renewals (:meth:`renew_leases` with a beat) and ends with
        :meth:`worker_stopped`.
        """

    @abc.abstractmethod
    def worker_stopped(self, name: str) -> None:
        """Mark the registered worker ``name`` stopped, holding no job, seen now on the server's clock (an unknown name: nothing)."""

    @abc.abstractmethod
    def list_workers(self, study: str | None = None) -> list[dict[str, Any]]:
        """The registered workers (of one study, if given), the most recently started first, as :func:`shown_worker` gives
        them: :data:`WORKER_FIELDS`, ``state`` GONE for a worker silent for :data:`WORKER_GONE_LEASES` of its leases,
        and ``seen_seconds_ago``, both by the server's clock (never a host's).

        ``job_ids`` are the jobs the worker held at its last beat (at most a lease check, about a second, old).
        """

    @abc.abstractmethod
    def requeue_expired(self) -> list[int]:
        """Put RUNNING jobs whose lease has expired on the server's clock back in the queue, atomically per call.

        Each such job gets attempts + 1 and goes to QUEUED, or to DIED once attempts
        reach its max attempts; its RUNNING runs are finished as DIED. Returns the
        affected job ids. Safe to call from any number of workers at once.
        """

    @abc.abstractmethod
    def end_job(self, claim: Claim, state: str, reason: str) -> bool:
        """End a claimed job from the worker's side (the job process crashed, timed out, was refused or stopped).

        ``state`` is FAILED, TIMEOUT or QUEUED (requeue after the worker stopped it;
        attempts unchanged). The job's RUNNING run, if one was started, gets the
        matching status (FAILED, TIMEOUT, INTERRUPTED) with ``reason`` as its trace.
        Only while the claim holds; returns whether it did.
        """

    @abc.abstractmethod
    def list_jobs(
        self,
        study: str | None = None,
        sweep_id: int | None = None,
        job_ids: Sequence[int] | None = None,
        states: Sequence[str] | None = None,
        *,
        after_id: int = 0,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Jobs matching every given filter, oldest first, as dicts of ``id`` and the fields of :data:`JOB_FIELDS`.

        ``after_id`` and ``limit``: only the first ``limit`` jobs with ids above ``after_id`` (a page, see :func:`job_pages`).
        """

    @abc.abstractmethod
    def change_jobs(
        self,
        from_states: Sequence[str],
        to_state: str,
        sweep_id: int | None = None,
        job_ids: Sequence[int] | None = None,
    ) -> int:
        """Move the selected jobs that are in ``from_states`` to ``to_state``; return how many moved.

        Used for pause (QUEUED to PAUSED), resume, cancel and retry. A job moved to
        QUEUED starts afresh: attempts 0, no error, no owner. A RUNNING job that is
        cancelled loses its claim, so its worker stops it.
        """

    @abc.abstractmethod
    def list_sweeps(self, study: str | None = None) -> list[dict[str, Any]]:
        """Sweeps (of one study, if given), oldest first, each with ``counts`` as in :meth:`get_sweep`."""

    @abc.abstractmethod
    def get_sweep(self, sweep_id: int) -> dict[str, Any]:
        """The sweep's fields (``id``, ``study``, ``kind``, ``command``, ``spec``, ``state``: None for a
        sweep that does not grow, else RUNNING or how it ended; ``created_at``; ``copied_from``) and ``counts``, the
        number of its jobs in each state.

        Raises :class:`JobNotFoundError` for an unknown id.
        """

    @abc.abstractmethod
    def summary(self) -> dict[str, Any]:
        """What ``hyperspace store check`` reports: ``backend`` (name and server version),
        ``schema_version``, ``integrity`` (which check of the stored data passed, or None where
        the backend has no check that is cheap enough), ``jobs`` (count per state) and ``runs``
        (count per status).

        The integrity check runs first (SQLite: ``PRAGMA quick_check``, which reads every page;
        PostgreSQL and MongoDB: none, their servers check their own pages as they read them),
        and a damaged store raises :class:`HyperspaceError` naming the damage.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; the object must not be used afterwards."""

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
