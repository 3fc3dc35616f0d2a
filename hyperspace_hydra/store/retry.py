"""Ride out a store that is briefly unreachable or unwritable (database restart, network blip, full disk).

Backends raise :class:`StoreUnavailableError` when the database cannot be reached or
written while opening the store or during an operation (for SQLite: disk full, file
read-only, locked beyond the busy timeout, I/O error, a damaged page). :func:`open_retrying` opens a store
and wraps it in a :class:`RetryingStore`, which repeats such operations with
exponential backoff until they succeed or a time budget is spent. Workers and the
recording callback use it; one-shot CLI commands fail at once with one line.

Retrying is safe for the operations that matter: finishing a run or ending a job is
conditional on the current state, so a repeat after an unacknowledged success does
nothing; a claim whose acknowledgement was lost comes back to the queue when its
lease expires. A lost acknowledgement of ``start_run`` can leave an orphan RUNNING
run, of ``add_metrics`` repeated points.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.settings import redact_credentials
from hyperspace_hydra.store.base import (
    Adoption,
    Claim,
    ClaimedJob,
    Condition,
    EnqueueResult,
    FinishedRun,
    MetricPoint,
    NewJob,
    Store,
    WholeRow,
    WorkerBeat,
    WorkerInfo,
)
from hyperspace_hydra.store.grouping import ConfigGroup

log = logging.getLogger("hyperspace_hydra")

DEFAULT_BUDGET_SECONDS = 300.0
_FIRST_DELAY = 0.2
_LONGEST_DELAY = 10.0
_T = TypeVar("_T")


class StoreUnavailableError(HyperspaceError):
    """The store's database could not be reached or written; it may work again soon (or once someone frees space)."""


def retry_while_unavailable(operation: Callable[[], _T], what: str, budget: float = DEFAULT_BUDGET_SECONDS) -> _T:
    """Call ``operation`` until it does not raise :class:`StoreUnavailableError` or ``budget`` seconds are spent.

    Waits 0.2 s after the first failure, doubling up to 10 s; each failure is logged
    as a warning. Raises the last error when the budget is spent.
    """
    deadline = time.monotonic() + budget
    delay = _FIRST_DELAY
    while True:
        try:
            return operation()
        except StoreUnavailableError as error:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("hyperspace: %s failed (%s); retrying in %.1f s", what, error, delay)
            time.sleep(delay)
            delay = min(delay * 2, _LONGEST_DELAY)


class RetryingStore(Store):
    """A :class:`Store` whose operations are retried while its database is unavailable.

    Every other error reaches the caller at once.
    """

    def __init__(self, store: Store, budget: float = DEFAULT_BUDGET_SECONDS) -> None:
        self.store = store
        self.uri = store.uri
        self.usable_after_fork = store.usable_after_fork
        self._budget = budget

    def _retry(self, name: str, operation: Callable[[], _T]) -> _T:
        return retry_while_unavailable(operation, f"{name} on {redact_credentials(self.uri)}", self._budget)

    def rehearse_job_run(self, claim: Claim) -> None:
        self._retry("rehearse_job_run", lambda: self.store.rehearse_job_run(claim))

    def start_run(self, document: Mapping[str, Any], claim: Claim | None = None) -> int:
        return self._retry("start_run", lambda: self.store.start_run(document, claim))

    def update_run(self, run_id: int, changes: Mapping[str, Any], claim: Claim | None = None) -> None:
        self._retry("update_run", lambda: self.store.update_run(run_id, changes, claim))

    def finish_run(self, run_id: int, status: str, changes: Mapping[str, Any], claim: Claim | None = None) -> bool:
        return self._retry("finish_run", lambda: self.store.finish_run(run_id, status, changes, claim))

    def end_stale_runs(self) -> list[int]:
        return self._retry("end_stale_runs", self.store.end_stale_runs)

    def rewrite_config(
        self, run_id: int, config: Mapping[str, Any], config_hash: str, info: Mapping[str, Any], *, adoption: Adoption | None = None
    ) -> None:
        self._retry("rewrite_config", lambda: self.store.rewrite_config(run_id, config, config_hash, info, adoption=adoption))

    def add_finished_runs(self, runs: Sequence[FinishedRun]) -> list[int]:
        return self._retry("add_finished_runs", lambda: self.store.add_finished_runs(runs))

    def add_whole_sweeps(self, sweeps: Sequence[WholeRow]) -> list[int]:
        return self._retry("add_whole_sweeps", lambda: self.store.add_whole_sweeps(sweeps))

    def add_whole_jobs(self, jobs: Sequence[WholeRow]) -> list[int]:
        return self._retry("add_whole_jobs", lambda: self.store.add_whole_jobs(jobs))

    def add_metrics(self, run_id: int, points: Iterable[MetricPoint], claim: Claim | None = None) -> None:
        points = list(points)  # a retry must send the same points again
        self._retry("add_metrics", lambda: self.store.add_metrics(run_id, points, claim))

    def get_run(self, run_id: int) -> dict[str, Any]:
        return self._retry("get_run", lambda: self.store.get_run(run_id))

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
        return self._retry(
            "list_runs",
            lambda: self.store.list_runs(limit, task=task, sweep_id=sweep_id, status=status, where=where, sort=sort, fields=fields, offset=offset),
        )

    def count_runs(self, *, task: str | None = None, sweep_id: int | None = None, status: str | None = None, where: Sequence[Condition] = ()) -> int:
        return self._retry("count_runs", lambda: self.store.count_runs(task=task, sweep_id=sweep_id, status=status, where=where))

    def group_runs(self, where: Sequence[Condition], without: Sequence[str] = (), values: Sequence[str] = ()) -> list[ConfigGroup]:
        return self._retry("group_runs", lambda: self.store.group_runs(where, without, values))

    def get_metrics(self, run_id: int) -> dict[str, dict[str, list[Any]]]:
        return self._retry("get_metrics", lambda: self.store.get_metrics(run_id))

    def get_metric_series(self, run_ids: Sequence[int], name: str) -> dict[int, tuple[list[int], list[float]]]:
        return self._retry("get_metric_series", lambda: self.store.get_metric_series(run_ids, name))

    def enqueue(self, study: str, jobs: Sequence[NewJob], sweep: Mapping[str, Any], dedupe: bool = True, max_attempts: int = 3) -> EnqueueResult:
        return self._retry("enqueue", lambda: self.store.enqueue(study, jobs, sweep, dedupe, max_attempts))

    def add_jobs(self, sweep_id: int, jobs: Sequence[NewJob], expected_jobs: int, max_attempts: int = 3) -> list[int] | None:
        return self._retry("add_jobs", lambda: self.store.add_jobs(sweep_id, jobs, expected_jobs, max_attempts))

    def end_sweep(self, sweep_id: int, state: str) -> bool:
        return self._retry("end_sweep", lambda: self.store.end_sweep(sweep_id, state))

    def server_time(self) -> dt.datetime:
        return self._retry("server_time", self.store.server_time)

    def claim(self, study: str, worker: str, lease_seconds: float) -> ClaimedJob | None:
        return self._retry("claim", lambda: self.store.claim(study, worker, lease_seconds))

    def renew_leases(self, claims: Sequence[Claim], lease_seconds: float, beat: WorkerBeat | None = None) -> set[int]:
        return self._retry("renew_leases", lambda: self.store.renew_leases(claims, lease_seconds, beat))

    def register_worker(self, worker: WorkerInfo) -> None:
        self._retry("register_worker", lambda: self.store.register_worker(worker))

    def worker_stopped(self, name: str) -> None:
        self._retry("worker_stopped", lambda: self.store.worker_stopped(name))

    def list_workers(self, study: str | None = None) -> list[dict[str, Any]]:
        return self._retry("list_workers", lambda: self.store.list_workers(study))

    def requeue_expired(self) -> list[int]:
        return self._retry("requeue_expired", self.store.requeue_expired)

    def end_job(self, claim: Claim, state: str, reason: str) -> bool:
        return self._retry("end_job", lambda: self.store.end_job(claim, state, reason))

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
        return self._retry("list_jobs", lambda: self.store.list_jobs(study, sweep_id, job_ids, states, after_id=after_id, limit=limit))

    def change_jobs(self, from_states: Sequence[str], to_state: str, sweep_id: int | None = None, job_ids: Sequence[int] | None = None) -> int:
        return self._retry("change_jobs", lambda: self.store.change_jobs(from_states, to_state, sweep_id, job_ids))

    def list_sweeps(self, study: str | None = None) -> list[dict[str, Any]]:
        return self._retry("list_sweeps", lambda: self.store.list_sweeps(study))

    def get_sweep(self, sweep_id: int) -> dict[str, Any]:
        return self._retry("get_sweep", lambda: self.store.get_sweep(sweep_id))

    def summary(self) -> dict[str, Any]:
        return self._retry("summary", self.store.summary)

    def close(self) -> None:
        """Close the wrapped store."""
        self.store.close()


def open_retrying(uri: str, budget: float = DEFAULT_BUDGET_SECONDS) -> RetryingStore:
    """Open the store at ``uri``, waiting out an unavailable database, wrapped in a :class:`RetryingStore`."""
    from hyperspace_hydra.store import open_store

    store = retry_while_unavailable(lambda: open_store(uri), f"opening {redact_credentials(uri)}", budget)
    return RetryingStore(store, budget)
