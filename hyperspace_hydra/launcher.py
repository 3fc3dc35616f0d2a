"""What ``hydra/launcher=hyperspace`` does: enqueue a ``--multirun`` sweep instead of running it.

Every job of the sweep is composed on the spot (a job that does not compose stops
the command before anything is enqueued; jobs that differ only in values are copies
of one composed config, see :mod:`hyperspace_hydra.composer`), then all of them are
enqueued in one transaction. Hydra's sweeper composes every job of a batch once more
to validate it before the launcher sees it (``Sweeper.validate_batch_is_legal``); for
this launcher's sweeps that validation goes through the same composer (see
:func:`hyperspace_hydra.composer.multirun_composer`), so a grid over values is composed in full once. Hydra gets a COMPLETED :class:`JobReturn` per job, whose
return value is the job id (None for a skipped duplicate), so the sweep ends
normally and ``on_multirun_end`` callbacks run.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from hyperspace_hydra.composer import SweepComposer, multirun_composer, resolve_hydra_from
from hyperspace_hydra.config import task_config
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.identity import app_name
from hyperspace_hydra.job_process import store_uri_for
from hyperspace_hydra.queue import enqueue, task_job
from hyperspace_hydra.settings import redact_credentials
from hyperspace_hydra.store import NewJob, open_store

log = logging.getLogger("hyperspace_hydra")


def enqueue_sweep(
    config: DictConfig,
    hydra_context: HydraContext,
    task_function: TaskFunction,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
    dedupe: bool = True,
    priority: int = 0,
    max_attempts: int = 3,
) -> list[JobReturn]:
    """Compose and enqueue the jobs of one sweep batch; print how to follow them.

    A job that cannot be enqueued (its config does not resolve, say) stops the command with one
    ``error:`` line and exit status 2 before anything is enqueued: Hydra would add its own lines.
    """
    composer = multirun_composer(hydra_context.config_loader, config)
    job_configs = [_job_config(composer, overrides, initial_job_idx + index) for index, overrides in enumerate(job_overrides)]
    task_configs = [task_config(job_config) for job_config in job_configs]
    try:
        jobs = [_job(*job, priority) for job in zip(job_configs, task_configs, job_overrides)]
    except HyperspaceError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    study = app_name(config, task_function)
    uri = store_uri_for(config)
    on_interrupt.writing = True
    with open_store(uri) as store:
        result = enqueue(store, study, jobs, "grid", dedupe=dedupe, max_attempts=max_attempts)
    on_interrupt.enqueued_sweep, on_interrupt.writing = result.sweep_id, False
    returns = [_job_return(*job) for job in zip(job_configs, task_configs, job_overrides, result.job_ids)]
    if result.sweep_id is None:
        log.info(f"Nothing enqueued in {redact_credentials(uri)}: all {result.skipped} jobs duplicate queued, running or completed work")
        return returns
    skipped = f", {result.skipped} skipped as duplicates of queued, running or completed work" if result.skipped else ""
    log.info(f"Enqueued {len(result.enqueued)} jobs as sweep {result.sweep_id} in {redact_credentials(uri)}{skipped}")
    log.info(f"Follow it: hyperspace queue wait {result.sweep_id}   Work it: hyperspace worker --app {study}")
    return returns


class _StopOnInterrupt:
    """A SIGINT handler: one line on stderr saying what was enqueued, then exit status 130 (see :func:`stop_cleanly_on_interrupt`).

    While the sweep is being written to the store the exit unwinds (``SystemExit``), so the
    enqueue's transaction rolls back. At any other moment the process ends at once
    (``os._exit``): an exception raised in the middle of OmegaConf or Hydra code can turn into
    another error and a traceback, and there is nothing of ours to unwind.
    """

    def __init__(self) -> None:
        self.enqueued_sweep: int | None = None
        self.writing = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        done = "nothing was enqueued" if self.enqueued_sweep is None else f"sweep {self.enqueued_sweep} was enqueued whole"
        os.write(sys.stderr.fileno(), f"error: interrupted (Ctrl-C): {done}\n".encode())  # not print: stderr may be mid-write
        if self.writing:
            raise SystemExit(130)
        os._exit(130)


on_interrupt = _StopOnInterrupt()
"""The SIGINT handler of this process's queue launcher; :func:`enqueue_sweep` tells it once its sweep is in the store."""


def stop_cleanly_on_interrupt() -> None:
    """From now on, Ctrl-C ends this ``--multirun`` with one ``error:`` line and exit status 130, not a traceback.

    The launcher's setup calls it before the sweeper composes the first job: composing a big
    grid takes a while, and Ctrl-C would otherwise print a KeyboardInterrupt traceback from
    deep inside Hydra or OmegaConf. An enqueue in progress rolls back: the store holds the
    whole sweep or nothing of it.
    """
    if threading.current_thread() is threading.main_thread():  # only the main thread may set signal handlers
        signal.signal(signal.SIGINT, on_interrupt)


def _job_config(composer: SweepComposer, overrides: Sequence[str], index: int) -> DictConfig:
    job_config = composer.compose(overrides)
    with open_dict(job_config):
        job_config.hydra.job.id = index
        job_config.hydra.job.num = index
    return job_config


def _job(job_config: DictConfig, task: DictConfig, overrides: Sequence[str], priority: int) -> NewJob:
    """The job, its output directory where Hydra's own launchers would put it (sweep dir / subdir)."""
    resolve_hydra_from(job_config)
    output_dir = str(Path(job_config.hydra.sweep.dir) / str(job_config.hydra.sweep.subdir))
    return task_job(task, overrides, output_dir=output_dir, priority=priority)


def _job_return(job_config: DictConfig, task: DictConfig, overrides: Sequence[str], job_id: int | None) -> JobReturn:
    log.info(f"\t#{job_config.hydra.job.num} : {' '.join(filter_overrides(overrides))} -> {'job ' + str(job_id) if job_id else 'duplicate, skipped'}")
    return JobReturn(
        overrides=list(overrides),
        cfg=task,
        hydra_cfg=job_config,
        working_dir=os.getcwd(),
        task_name=str(job_config.hydra.job.name),
        status=JobStatus.COMPLETED,
        _return_value=job_id,
    )
