"""Put jobs in the queue: from a notebook (:class:`Queue`), the launcher plugin or ``rerun``.

Every job is composed and validated where it is enqueued, then a whole batch goes
into the store in one transaction (all or nothing). Jobs are plain data: their
overrides (what a worker composes again with its own study code), the complete
config and its hash (for duplicate detection and for the record).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from omegaconf.errors import InterpolationResolutionError

from hyperspace_hydra.app import App, load_app
from hyperspace_hydra.config import config_hash
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.identity import given_and_complete, task_given_and_complete
from hyperspace_hydra.overrides import choice_overrides, grid_overrides, merge_overrides
from hyperspace_hydra.settings import redact_credentials, resolve_store_uri
from hyperspace_hydra.store import EnqueueResult, NewJob, Store, open_store


def new_job(config: DictConfig, overrides: Sequence[str], output_dir: str | None = None, priority: int = 0) -> NewJob:
    """The job that runs the composed full ``config`` (with its ``hydra`` node), made from ``overrides``.

    Raises :class:`HyperspaceError` naming the job when an interpolation in ``config`` does not resolve.
    """
    with _resolving(overrides):
        _, complete = given_and_complete(config)
    return _job_of(complete, overrides, output_dir, priority)


def task_job(task: DictConfig, overrides: Sequence[str], output_dir: str | None = None, priority: int = 0) -> NewJob:
    """:func:`new_job` from the task config of the full config (for callers that need the task config too)."""
    with _resolving(overrides):
        _, complete = task_given_and_complete(task)
    return _job_of(complete, overrides, output_dir, priority)


@contextlib.contextmanager
def _resolving(overrides: Sequence[str]) -> Iterator[None]:
    """Turn OmegaConf's many-line error for an interpolation that does not resolve into one line naming the job."""
    try:
        yield
    except InterpolationResolutionError as error:
        problem = str(error).splitlines()[0]  # the rest is OmegaConf's full_key and object_type lines
        raise HyperspaceError(f"the job `{' '.join(overrides)}` does not resolve: {problem} (at {error.full_key}); fix the override or the config") from None


def _job_of(complete: dict[str, Any], overrides: Sequence[str], output_dir: str | None, priority: int) -> NewJob:
    return NewJob(list(overrides), complete, config_hash(complete), output_dir, priority)


def enqueue(store: Store, study: str, jobs: Sequence[NewJob], kind: str, dedupe: bool = True, max_attempts: int = 3) -> EnqueueResult:
    """Enqueue ``jobs`` of ``study`` as one sweep of ``kind``; the command line that did it is kept."""
    sweep = {"kind": kind, "command": " ".join(redact_credentials(arg) for arg in sys.argv)}
    return store.enqueue(study, jobs, sweep, dedupe=dedupe, max_attempts=max_attempts)


class Queue:
    """The queue of one study, for notebooks and scripts.

    ``Queue(app="study.run")`` imports the study from the current directory and opens
    its store, resolved as for the CLI: ``store`` if given, else ``$HYPERSPACE_STORE``,
    else ``hyperspace.store`` from the study's config files, else the default. Each
    submit composes its jobs first (a config that does not compose raises
    :class:`~hyperspace_hydra.errors.HyperspaceError` and nothing is enqueued) and
    returns the ids of the jobs it enqueued; ``last`` tells how many were skipped as
    duplicates of queued, running or completed work (``dedupe=False`` enqueues them anyway).
    """

    def __init__(self, app: str, store: str | None = None) -> None:
        self.app: App = load_app(app)
        configured = self.app.settings().store
        self.store_uri = resolve_store_uri(store, configured, Path.cwd())
        self.store: Store = open_store(self.store_uri)
        self.last: EnqueueResult | None = None

    def submit(
        self,
        overrides: Sequence[str] = (),
        *,
        conf: Mapping[str, Any] | None = None,
        priority: int = 0,
        dedupe: bool = True,
        **choices: Any,
    ) -> list[int]:
        """Enqueue one job: ``overrides`` plus ``key=value`` for each keyword (``task="imdb_1k"``),
        with the nested dict ``conf`` merged over the composed config."""
        job_overrides = [*overrides, *choice_overrides(choices), *merge_overrides(conf or {})]
        return self._enqueue([job_overrides], "submit", priority, dedupe)

    def submit_grid(
        self,
        grid: Mapping[str, Sequence[Any]],
        overrides: Sequence[str] = (),
        *,
        priority: int = 0,
        dedupe: bool = True,
    ) -> list[int]:
        """Enqueue every combination of ``grid`` (``{"aggregation": ["mean", "branching"], "seed": [1, 2]}``)
        on top of ``overrides``, as one sweep."""
        return self._enqueue([[*overrides, *combination] for combination in grid_overrides(grid)], "grid", priority, dedupe)

    def jobs(self, sweep_id: int | None = None) -> list[dict[str, Any]]:
        """This study's jobs (of one sweep, if given), oldest first."""
        return self.store.list_jobs(study=self.app.module, sweep_id=sweep_id)

    def _enqueue(self, override_lists: Sequence[Sequence[str]], kind: str, priority: int, dedupe: bool) -> list[int]:
        composer = self.app.sweep_composer()
        jobs = [new_job(composer.compose(overrides), overrides, priority=priority) for overrides in override_lists]
        self.last = enqueue(self.store, self.app.module, jobs, kind, dedupe=dedupe)
        return self.last.enqueued

    def close(self) -> None:
        """Close the store connection."""
        self.store.close()
