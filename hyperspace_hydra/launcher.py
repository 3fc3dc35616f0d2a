"""What ``hydra/launcher=hyperspace`` does: enqueue a ``--multirun`` sweep instead of running it.

Every job of the sweep is composed on the spot (a job that does not compose stops
the command before anything is enqueued; jobs that differ only in values are copies
of one composed config, see :mod:`hyperspace_hydra.composer`), then all of them are
enqueued in one transaction. Hydra gets a COMPLETED :class:`JobReturn` per job, whose
return value is the job id (None for a skipped duplicate), so the sweep ends
normally and ``on_multirun_end`` callbacks run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from hyperspace_hydra.app import task_config
from hyperspace_hydra.composer import SweepComposer, sweep_composer
from hyperspace_hydra.queue import enqueue, task_job
from hyperspace_hydra.settings import redact_credentials
from hyperspace_hydra.store import NewJob, open_store
from hyperspace_hydra.tracking import app_name, store_uri_for

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
    """Compose and enqueue the jobs of one sweep batch; print how to follow them."""
    composer = sweep_composer(hydra_context.config_loader, config)
    job_configs = [_job_config(composer, overrides, initial_job_idx + index) for index, overrides in enumerate(job_overrides)]
    task_configs = [task_config(job_config) for job_config in job_configs]
    jobs = [_job(*job, priority) for job in zip(job_configs, task_configs, job_overrides)]
    study = app_name(config, task_function)
    uri = store_uri_for(config)
    with open_store(uri) as store:
        result = enqueue(store, study, jobs, "grid", dedupe=dedupe, max_attempts=max_attempts)
    returns = [_job_return(*job) for job in zip(job_configs, task_configs, job_overrides, result.job_ids)]
    skipped = f", {result.skipped} skipped as duplicates of queued, running or completed work" if result.skipped else ""
    log.info(f"Enqueued {len(result.enqueued)} jobs as sweep {result.sweep_id} in {redact_credentials(uri)}{skipped}")
    log.info(f"Follow it: hyperspace queue wait {result.sweep_id}   Work it: hyperspace worker --app {study}")
    return returns


def _job_config(composer: SweepComposer, overrides: Sequence[str], index: int) -> DictConfig:
    job_config = composer.compose(overrides)
    with open_dict(job_config):
        job_config.hydra.job.id = index
        job_config.hydra.job.num = index
    return job_config


def _job(job_config: DictConfig, task: DictConfig, overrides: Sequence[str], priority: int) -> NewJob:
    """The job, its output directory where Hydra's own launchers would put it (sweep dir / subdir)."""
    HydraConfig.instance().set_config(job_config)
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
