"""RetryingStore: each operation is repeated while the store is unavailable, and only then."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.store.base import COMPLETED, MetricPoint
from hyperspace_hydra.store.retry import RetryingStore, StoreUnavailableError
from hyperspace_hydra.store.sql import SQLStore

NOW = dt.datetime(2026, 11, 29, 12, 0, 0)


class _UnavailableAtFirst(SQLStore):
    """A real SQLite store whose every operation fails as unavailable the first ``failures`` times it is called."""

    def __init__(self, uri: str, failures: int) -> None:
        super().__init__(uri)
        self.failures = failures
        self.calls: dict[str, int] = {}

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if name.startswith("_") or name in ("uri", "failures", "calls", "close") or not callable(attribute):
            return attribute

        def flaky(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            if self.calls[name] <= self.failures:
                raise StoreUnavailableError(f"{name}: disk full")
            return attribute(*args, **kwargs)

        return flaky


def test_every_operation_is_retried_until_the_store_answers(tmp_path: Path) -> None:
    flaky = _UnavailableAtFirst(f"sqlite:///{tmp_path}/store.db", failures=2)
    store = RetryingStore(flaky, budget=30)
    run_id = store.start_run({"task": "t", "start_time": NOW})
    store.add_metrics(run_id, (MetricPoint("loss", step, 1.0 / (step + 1), NOW) for step in range(3)))
    assert store.finish_run(run_id, COMPLETED, {"result": 0.5}) is True
    assert store.get_run(run_id)["status"] == COMPLETED
    assert store.get_metrics(run_id)["loss"]["steps"] == [0, 1, 2], "a retried add_metrics sends every point, not an emptied generator"
    assert [run["_id"] for run in store.list_runs(status=COMPLETED)] == [run_id]
    assert flaky.calls == {name: 3 for name in ("start_run", "add_metrics", "finish_run", "get_run", "get_metrics", "list_runs")}


def test_a_store_unavailable_beyond_the_budget_raises_the_last_error(tmp_path: Path) -> None:
    store = RetryingStore(_UnavailableAtFirst(f"sqlite:///{tmp_path}/store.db", failures=100), budget=0.5)
    with pytest.raises(StoreUnavailableError, match="summary: disk full"):
        store.summary()


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    flaky = _UnavailableAtFirst(f"sqlite:///{tmp_path}/store.db", failures=0)
    with pytest.raises(HyperspaceError, match="no run with id 7"):
        RetryingStore(flaky).get_run(7)
    assert flaky.calls == {"get_run": 1}
