"""The store contract: one small interface that every backend fills in.

A *run document* is a dict in the shape Sacred's MongoObserver writes (``_id``,
``experiment``, ``command``, ``host``, ``start_time``, ``heartbeat``, ``stop_time``,
``status``, ``config``, ``result``, ``info``, ``captured_out``, ``fail_trace``,
``meta``, ``artifacts``, ``resources``) plus this project's fields (``task``,
``overrides``, ``config_given``, ``config_hash``, ``objective``, ``code_version``,
``seed``, ``output_dir``, ``choices``, ``job_id``). Times are naive UTC datetimes.

Backends must be safe to use from several processes at once, each with its own
``Store`` object; a ``Store`` object itself is used from one thread at a time.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hyperspace_hydra.errors import HyperspaceError

RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
INTERRUPTED = "INTERRUPTED"
FINAL_STATUSES = frozenset({COMPLETED, FAILED, INTERRUPTED})

RUN_FIELDS = (
    "experiment", "command", "host", "start_time", "heartbeat", "stop_time", "status", "config",
    "result", "info", "captured_out", "fail_trace", "meta", "artifacts", "resources", "format",
    "task", "overrides", "config_given", "config_hash", "objective", "code_version", "seed",
    "output_dir", "choices", "job_id",
)  # fmt: skip


class RunNotFoundError(HyperspaceError):
    """No run with the given id exists in this store."""


@dataclass(frozen=True)
class MetricPoint:
    """One value of a metric series of a run."""

    name: str
    step: int
    value: float
    timestamp: dt.datetime


class Store(abc.ABC):
    """Where runs and their metrics live.

    Every method either completes fully or raises and changes nothing. Errors a
    user can fix (unreachable or unwritable store, missing run) are raised as
    :class:`~hyperspace_hydra.errors.HyperspaceError` subclasses.
    """

    uri: str

    @abc.abstractmethod
    def start_run(self, document: Mapping[str, Any]) -> int:
        """Insert a new run with status RUNNING and return its id.

        Ids are positive integers, unique in the store and never reused, also when
        several processes start runs at the same moment. Fields of
        :data:`RUN_FIELDS` missing from ``document`` are stored as empty.
        """

    @abc.abstractmethod
    def update_run(self, run_id: int, changes: Mapping[str, Any]) -> None:
        """Overwrite the given fields of a RUNNING run (heartbeat, captured output, info, result).

        A run that already has a final status is left unchanged: a late heartbeat
        never undoes a finish. Raises :class:`RunNotFoundError` for an unknown id.
        """

    @abc.abstractmethod
    def finish_run(self, run_id: int, status: str, changes: Mapping[str, Any]) -> bool:
        """Give a RUNNING run its final ``status`` together with ``changes``, atomically.

        Returns True when this call finished the run, False when it already had a
        final status (then nothing is written), so a run is finished exactly once
        even if two processes race. Raises :class:`RunNotFoundError` for an unknown id
        and ``ValueError`` for a status outside :data:`FINAL_STATUSES`.
        """

    @abc.abstractmethod
    def add_metrics(self, run_id: int, points: Iterable[MetricPoint]) -> None:
        """Append metric points to a run; all of them or none are stored.

        Raises :class:`RunNotFoundError` for an unknown id.
        """

    @abc.abstractmethod
    def get_run(self, run_id: int) -> dict[str, Any]:
        """Return the full document of one run (``_id`` and every field of :data:`RUN_FIELDS`).

        Raises :class:`RunNotFoundError` for an unknown id.
        """

    @abc.abstractmethod
    def list_runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Return run documents, oldest first; with ``limit``, only the newest ``limit`` of them."""

    @abc.abstractmethod
    def get_metrics(self, run_id: int) -> dict[str, dict[str, list[Any]]]:
        """Return each metric of a run as ``{name: {"steps": [...], "values": [...], "timestamps": [...]}}``.

        Points are ordered by step, then by the order they were added.
        Raises :class:`RunNotFoundError` for an unknown id.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; the object must not be used afterwards."""

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
