"""The recording Hydra callback and the task-side API (:func:`log_scalar`).

One recording path for every launcher: Hydra calls ``on_job_start``/``on_job_end`` in
the process that runs the job (basic, joblib, submitit or our queue worker), and the
callback records the job there as a Sacred-shaped run.

Hydra turns exceptions raised by callbacks into warnings. So a store that cannot be
used is checked before any job starts (``on_run_start``/``on_multirun_start``: one
error line, exit status 2, nothing run), and a recording failure during a job is
logged as an error naming the run, while the job itself goes on.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import TaskFunction
from omegaconf import DictConfig, OmegaConf

from hyperspace_hydra import provenance
from hyperspace_hydra.config import config_hash
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.identity import (
    BadSeedError,
    MainModule,
    app_name,
    given_and_complete,
    missing_objective,
    objective_value,
    seed_of,
)
from hyperspace_hydra.job_process import CLAIM_LOST_EXIT_STATUS, queued_job, store_uri_for, sweep_of, watch_queued_job_run
from hyperspace_hydra.observer import StoreObserver
from hyperspace_hydra.recorder import RunRecorder, active_recorder
from hyperspace_hydra.seeding import seed_everything
from hyperspace_hydra.settings import STORE_ENV_VAR, HyperspaceSettings, effective_settings, redact_credentials
from hyperspace_hydra.slurm.environment import sqlite_store_warning
from hyperspace_hydra.store import open_store
from hyperspace_hydra.store.base import ClaimLostError, utcnow
from hyperspace_hydra.store.retry import RetryingStore, open_retrying

log = logging.getLogger("hyperspace_hydra")


class Pruned(Exception):
    """Raised by :func:`log_scalar` in a trial of a search whose pruner says the trial should stop.

    Let it propagate: the run ends PRUNED (not FAILED), its job is done and never retried,
    and the search is told the trial was pruned. ``metric``, ``step`` and ``value`` say where.
    """

    def __init__(self, metric: str, step: int, value: float) -> None:
        super().__init__(f"pruned at step {step} of {metric} ({value:.6g}): the search's pruner stopped this trial")
        self.metric, self.step, self.value = metric, step, value

    def __reduce__(self) -> tuple[Any, ...]:  # a joblib job's return value travels pickled
        return (Pruned, (self.metric, self.step, self.value))


def log_scalar(name: str, value: float, step: int | None = None) -> None:
    """Add ``value`` to the metric series ``name`` of the run executing in this process.

    ``step`` defaults to the series' previous step + 1 (the first is 0). In a trial of a
    search with a pruner (``hydra.sweeper.pruner``), a value of the pruning metric asks the
    pruner, and raises :class:`Pruned` when the trial should stop (unless the task asks
    :func:`should_stop` itself). Outside a recorded run this does nothing, so task code keeps
    working without hyperspace.
    """
    recorder = active_recorder()
    if recorder is not None and recorder.record_point(name, value, step) and not recorder.stops_itself:
        assert recorder.stopped_at is not None
        raise Pruned(**recorder.stopped_at)


def should_stop() -> bool:
    """Whether the search's pruner has said that the trial executing in this process should stop.

    The non-raising way to be pruned: from its first call in a run on, :func:`log_scalar` no
    longer raises :class:`Pruned` there; the task stops when it chooses, cleans up, and may
    return (the run still ends PRUNED). False outside a trial of a search with a pruner.
    """
    recorder = active_recorder()
    if recorder is None:
        return False
    recorder.stops_itself = True
    return recorder.stopped_at is not None


class RecordingCallback(Callback):
    """Records every Hydra job of a study as a run in the study's store.

    Enabled by ``- hyperspace`` in the study's defaults list (see
    :mod:`hyperspace_hydra.settings`). The object is pickled to joblib/submitit
    workers; each process opens the store once (see :func:`recording_store`).
    """

    def __init__(self) -> None:
        self._recorder: RunRecorder | None = None
        self._main: MainModule | None = None
        self._checked: tuple[DictConfig, str | None, HyperspaceSettings, str] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"_recorder": None, "_main": self._main, "_checked": None}

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._open_store_or_exit(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._main = MainModule.of_this_process()  # before launchers pickle this callback to other processes
        self._open_store_or_exit(config)
        _warn_if_sqlite_on_slurm(config)

    def on_job_start(self, config: DictConfig, *, task_function: TaskFunction, **kwargs: Any) -> None:
        try:
            settings, store_uri = self._settings_and_store_uri(config)
            self._checked = None  # worked out again for the next run, even of the same config object
            job = describe_job(config, task_function, self._main)
            if job.seed is not None:
                seed_everything(job.seed)
            queued = queued_job()
            claim = queued.claim if queued is not None else None
            observer = StoreObserver(recording_store(store_uri), job.fields, _objective_function(settings), claim)
            if claim is not None:
                watch_queued_job_run(observer)
            self._recorder = RunRecorder(observer, settings.capture.value, settings.heartbeat_seconds)
            self._recorder.start(job.started_event_args)
        except ClaimLostError as error:  # the attempt lost its job before it began: the task must not run
            self._recorder = None
            log.error("hyperspace: %s; the task does not run", error)
            raise SystemExit(CLAIM_LOST_EXIT_STATUS) from None
        except BadSeedError as error:  # a run no store can record: the task must not run unrecorded
            self._recorder = None
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        except Exception as error:  # noqa: BLE001 - Hydra would only warn; say it loudly, let the job run
            self._recorder = None
            log.error("hyperspace: this job is NOT recorded: %s: %s", type(error).__name__, error)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return
        try:
            if _was_pruned(recorder, job_return):
                recorder.pruned(job_return.return_value if job_return.status == JobStatus.COMPLETED else None)
            elif job_return.status == JobStatus.COMPLETED:
                recorder.completed(job_return.return_value)
            elif _preempted(job_return._return_value):
                recorder.interrupted()
            else:
                recorder.failed(job_return._return_value)
        except Exception as error:  # noqa: BLE001 - see on_job_start
            log.error("hyperspace: the end of run %s is NOT recorded: %s", recorder.observer.run_id, error)

    def _open_store_or_exit(self, config: DictConfig) -> None:
        try:
            recording_store(self._settings_and_store_uri(config)[1])  # bad settings stop the command here, not as a warning per job
        except HyperspaceError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None

    def _settings_and_store_uri(self, config: DictConfig) -> tuple[HyperspaceSettings, str]:
        """The settings in effect for ``config`` and the store its job records into.

        Worked out for ``config`` when its run starts (``on_run_start``), and reused once, when its job starts: Hydra's
        ``run`` and :meth:`~hyperspace_hydra.app.App.run` hand the same config object to both, moments apart (half the
        settings' and store's cost of a run). Only that object, with ``$HYPERSPACE_STORE`` as it was, gets the same
        answer (the job's ``env_set``, applied in between, may set the variable); any other config (each job of a
        multirun), and the next run's, is worked out anew.
        """
        variable = os.environ.get(STORE_ENV_VAR)
        checked = self._checked
        if checked is not None and checked[0] is config and checked[1] == variable:
            return checked[2], checked[3]
        settings = effective_settings(config)
        uri = store_uri_for(config)
        self._checked = (config, variable, settings, uri)
        return settings, uri


def _was_pruned(recorder: RunRecorder, job_return: JobReturn) -> bool:
    """Whether the task ended by :class:`Pruned`, or returned after its pruner said it should stop."""
    if job_return.status == JobStatus.COMPLETED:
        return recorder.stopped_at is not None
    return isinstance(job_return._return_value, Pruned)


def _preempted(error: BaseException) -> bool:
    """Whether the task was stopped by submitit on a SLURM preemption or time limit it did not requeue.

    submitit raises its ``UncompletedJobError`` from its SIGUSR2 handler, inside the task; the
    run is INTERRUPTED (stopped from outside), not FAILED. Recognised by name: submitit is
    not imported for this.
    """
    kind = type(error)
    return kind.__name__ == "UncompletedJobError" and kind.__module__.startswith("submitit")


_stores: dict[tuple[str, int], RetryingStore] = {}


def recording_store(uri: str) -> RetryingStore:
    """The store at ``uri`` that this process records runs into, opened on first use and kept open.

    A forked process opens its own, except a worker's job process, which records through the
    worker's store when it may (see :class:`~hyperspace_hydra.job_process.QueuedJob`). Executing a
    queued job, opening waits out an unavailable database; otherwise it fails at once, before any job starts.
    """
    key = (uri, os.getpid())
    if key not in _stores:
        queued = queued_job()
        if queued is not None and queued.store is not None and queued.store.uri == uri:
            _stores[key] = queued.store
        else:
            _stores[key] = open_retrying(uri) if queued is not None else RetryingStore(open_store(uri))
    return _stores[key]


def _warn_if_sqlite_on_slurm(config: DictConfig) -> None:
    """Loudly, on stderr: a sweep on SLURM (Hydra's submitit launcher) that records into a SQLite store."""
    launcher = OmegaConf.select(config, "hydra.launcher._target_") or ""
    warning = sqlite_store_warning(store_uri_for(config)) if launcher.endswith("SlurmLauncher") else None
    if warning:
        print(warning, file=sys.stderr, flush=True)


def _objective_function(settings: HyperspaceSettings) -> Any:
    """The run's objective from its plain result; a warning when the study names an objective the result lacks."""

    def objective_of(result: Any) -> float | None:
        missing = missing_objective(result, settings.objective) if settings.objective is not None else None
        if missing is not None:
            log.warning(f"hyperspace: the run records no objective: {missing}; hyperspace.objective names a key of the task's result")
        return objective_value(result, settings.objective)

    return objective_of


@dataclass
class JobDescription:
    """Everything recorded about a job when it starts.

    ``fields`` are this project's run fields, ``started_event_args`` the arguments of
    Sacred's ``started_event`` (experiment info, command, host, start time, complete
    config, meta info).
    """

    fields: dict[str, Any]
    started_event_args: dict[str, Any]

    @property
    def seed(self) -> int | None:
        return self.fields["seed"]


def describe_job(config: DictConfig, task_function: TaskFunction, main: MainModule | None = None) -> JobDescription:
    """Describe the job whose full Hydra config (with the ``hydra`` node) is ``config``.

    ``main``: the ``__main__`` of the process where the sweep started (see :func:`app_name`).
    """
    given, complete = given_and_complete(config)
    runtime = config.hydra.runtime
    choices = {group: option for group, option in runtime.choices.items() if not group.startswith("hydra/")}
    main = main or MainModule.of_this_process()
    source_dir = provenance.source_directory(task_function, Path(main.file).parent if main.file else Path(runtime.cwd))
    code = provenance.code_version(source_dir)
    fields = {
        "task": choices.get("task"),
        "overrides": [redact_credentials(item) for item in config.hydra.overrides.task],
        "choices": choices,
        "config_given": given,
        "config_hash": config_hash(complete),
        "code_version": code,
        "seed": seed_of(complete),
        "output_dir": runtime.output_dir,
        "job_id": queued.claim.job_id if (queued := queued_job()) is not None else None,
        "sweep_id": sweep_of(config),
    }
    started_event_args = {
        "ex_info": _experiment_info(config, task_function, source_dir, code, main),
        "command": task_function.__name__,
        "host_info": provenance.host_info(),
        "start_time": utcnow(),
        "config": complete,
        "meta_info": {
            "command": task_function.__name__,
            "options": {},
            "argv": [redact_credentials(item) for item in sys.argv],
            "cwd": str(runtime.cwd),
            "hydra_mode": str(config.hydra.mode),
            "hydra_job_num": OmegaConf.select(config, "hydra.job.num", default=None),
        },
    }
    return JobDescription(fields, started_event_args)


def _experiment_info(
    config: DictConfig, task_function: TaskFunction, source_dir: str, code: Mapping[str, Any], main: MainModule
) -> dict[str, Any]:
    """Sacred's ``experiment`` entry: name, base dir, main file, dependencies, repositories."""
    return {
        "name": app_name(config, task_function, main),
        "base_dir": source_dir,
        "mainfile": main.file if task_function.__module__ == "__main__" else provenance.defining_file(task_function),
        "sources": [],
        "dependencies": provenance.package_versions(),
        "repositories": [{"url": code["repository"], "commit": code["commit"], "dirty": code["dirty"]}] if code["commit"] else [],
    }


