"""What this process does for the queue: the queued job it executes, if any, and which store and sweep its run belongs to.

A worker forks one process per job and binds the job there (:func:`bind_queued_job`); the recording
callback then records the run into the job's store, linked to the job and its sweep, and says
(:func:`watch_queued_job_run`) how to tell whether the run's end also ended the job. This is the
process's one piece of state about the queue, kept here so that the worker and the callback share
it without the worker depending on the callback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from omegaconf import DictConfig, OmegaConf

from hyperspace_hydra.settings import effective_settings, resolve_store_uri
from hyperspace_hydra.store.base import Claim
from hyperspace_hydra.store.retry import RetryingStore


@dataclass(frozen=True)
class QueuedJob:
    """The queued job that this process executes: the store it was claimed from, the claim, and its sweep.

    ``store``: the worker's own store object, when this forked process may use it (see
    :attr:`~hyperspace_hydra.store.base.Store.usable_after_fork`); the run is recorded through it
    instead of a store opened again for every job. ``sweep``: the kind and spec of the sweep (which
    never change), when the worker has read them, so that this process need not read them again.
    """

    store_uri: str
    claim: Claim
    sweep_id: int | None = None
    store: RetryingStore | None = None
    sweep: Mapping[str, Any] | None = None


CLAIM_LOST_EXIT_STATUS = 75
"""Exit status of a queued job's process whose attempt lost its job: before the task started (it ran
nothing), or before its run ended (see :func:`queued_job_ended_by_its_run`)."""
SWEEP_VARIABLE = "HYPERSPACE_SWEEP"
"""The environment variable (set through ``hydra.job.env_set``) that names the sweep of a local search's job."""


class QueuedJobRun(Protocol):
    """The recorded run of the queued job, as the recording callback's observer tells it."""

    @property
    def run_id(self) -> int | None: ...

    @property
    def finished(self) -> bool | None:
        """Whether the run's end also ended the job; None while no end was recorded."""

    @property
    def final_status(self) -> str | None:
        """The status the run's end recorded; None before."""


_queued_job: QueuedJob | None = None
_run: QueuedJobRun | None = None


def bind_queued_job(job: QueuedJob) -> None:
    """Declare that this process executes ``job`` (a worker calls this in the job's process).

    The run is then recorded in the job's store whatever the job's config says, is
    linked to the job, and ends the job with it (see :meth:`Store.finish_run`).
    """
    global _queued_job
    _queued_job = job


def queued_job_ended_by_its_run() -> bool | None:
    """For the queued job this process executes: whether its run's end also ended the job (True), or came
    after the job's claim was lost (False: cancelled or taken over; the run was finished DIED or INTERRUPTED
    and the job left alone); None while no end was recorded. A worker's job process reports it on exit.
    """
    return None if _run is None else _run.finished


def run_that_ended_the_queued_job() -> tuple[str, int] | None:
    """The status and id of the run whose end also ended the queued job this process executes, or None (see
    :func:`queued_job_ended_by_its_run`). A worker's job process hands them to its worker on exit."""
    if _run is None or not _run.finished or _run.final_status is None or _run.run_id is None:
        return None
    return _run.final_status, _run.run_id


def queued_job() -> QueuedJob | None:
    """The queued job this process executes (see :func:`bind_queued_job`), or None."""
    return _queued_job


def watch_queued_job_run(run: QueuedJobRun) -> None:
    """Called by the recording callback once the queued job's run has started, with what tells how the run
    ended (see :func:`queued_job_ended_by_its_run`)."""
    global _run
    _run = run


def known_sweep(sweep_id: int) -> Mapping[str, Any] | None:
    """The kind and spec of sweep ``sweep_id`` as the worker of this process's queued job handed them over, or None."""
    job = _queued_job
    return job.sweep if job is not None and job.sweep_id == sweep_id else None


def store_uri_for(config: DictConfig) -> str:
    """The store a job of the full ``config`` records into (see :mod:`hyperspace_hydra.settings`)."""
    if _queued_job is not None:
        return _queued_job.store_uri
    configured = effective_settings(config).store
    given = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)  # as typed: "+note=${nope}" must not resolve here
    overridden = isinstance(given, list) and any(_override_key(str(item)) == "hyperspace.store" for item in given)
    return resolve_store_uri(configured if overridden else None, configured, config.hydra.runtime.cwd)


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def sweep_of(config: DictConfig) -> int | None:
    """The sweep a job belongs to: its queued job's, else the one a local search names in ``hydra.job.env_set``."""
    if _queued_job is not None:
        return _queued_job.sweep_id
    named = OmegaConf.select(config, f"hydra.job.env_set.{SWEEP_VARIABLE}")
    return int(named) if named is not None else None
