"""The guarantees written in the Store interface's docstrings, tested on every backend."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperspace_hydra import HyperspaceError
from hyperspace_hydra.store import COMPLETED, FAILED, INTERRUPTED, RUNNING, MetricPoint, RunNotFoundError, Store, open_store
from hyperspace_hydra.store.base import RUN_FIELDS

NOW = dt.datetime(2026, 11, 1, 12, 0, 0)


@pytest.fixture(params=["sqlite"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/store.db"


@pytest.fixture
def store(store_uri: str) -> Iterator[Store]:
    with open_store(store_uri) as opened:
        yield opened


def _start_many(uri: str, count: int) -> list[int]:
    with open_store(uri) as store:
        return [store.start_run({"task": "t", "start_time": NOW}) for _ in range(count)]


def test_start_run_returns_unique_ids_across_processes(store_uri: str) -> None:
    open_store(store_uri).close()
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        batches = pool.starmap(_start_many, [(store_uri, 25)] * 4)
    ids = [run_id for batch in batches for run_id in batch]
    assert len(set(ids)) == 100 and min(ids) >= 1


def test_a_started_run_is_running_with_every_field(store: Store) -> None:
    run_id = store.start_run({"task": "t", "config": {"a": [1, {"b": None}]}, "start_time": NOW, "status": COMPLETED})
    run = store.get_run(run_id)
    assert run["_id"] == run_id and run["status"] == RUNNING, "start_run always writes RUNNING"
    assert set(run) == {"_id", *RUN_FIELDS}
    assert run["config"] == {"a": [1, {"b": None}]} and run["start_time"] == NOW and run["result"] is None


def test_ids_are_never_reused(store: Store) -> None:
    first = store.start_run({})
    second = store.start_run({})
    assert second > first


def test_finish_run_happens_exactly_once(store: Store) -> None:
    run_id = store.start_run({})
    assert store.finish_run(run_id, COMPLETED, {"result": 0.5, "objective": 0.5, "stop_time": NOW}) is True
    assert store.finish_run(run_id, FAILED, {"fail_trace": ["x"]}) is False
    run = store.get_run(run_id)
    assert run["status"] == COMPLETED and run["result"] == 0.5 and run["fail_trace"] is None


def test_a_late_update_never_undoes_a_finish(store: Store) -> None:
    run_id = store.start_run({})
    store.finish_run(run_id, INTERRUPTED, {"captured_out": "final"})
    store.update_run(run_id, {"captured_out": "late heartbeat"})
    run = store.get_run(run_id)
    assert run["status"] == INTERRUPTED and run["captured_out"] == "final"


def test_update_run_overwrites_fields_of_a_running_run(store: Store) -> None:
    run_id = store.start_run({"info": {"a": 1}})
    store.update_run(run_id, {"info": {"b": 2}, "heartbeat": NOW, "captured_out": "x"})
    run = store.get_run(run_id)
    assert run["info"] == {"b": 2} and run["heartbeat"] == NOW and run["captured_out"] == "x"


def test_status_cannot_be_changed_by_update_or_set_to_non_final(store: Store) -> None:
    run_id = store.start_run({})
    with pytest.raises(ValueError):
        store.update_run(run_id, {"status": COMPLETED})
    with pytest.raises(ValueError):
        store.finish_run(run_id, RUNNING, {})
    assert store.get_run(run_id)["status"] == RUNNING


def test_unknown_run_ids_raise(store: Store) -> None:
    for call in (
        lambda: store.get_run(404),
        lambda: store.update_run(404, {"captured_out": ""}),
        lambda: store.finish_run(404, COMPLETED, {}),
        lambda: store.add_metrics(404, []),
        lambda: store.get_metrics(404),
    ):
        with pytest.raises(RunNotFoundError, match="404"):
            call()


def test_metrics_come_back_by_name_ordered_by_step(store: Store) -> None:
    run_id = store.start_run({})
    store.add_metrics(run_id, [MetricPoint("loss", 2, 0.2, NOW), MetricPoint("loss", 0, 1.0, NOW), MetricPoint("acc", 0, 0.5, NOW)])
    store.add_metrics(run_id, [MetricPoint("loss", 1, 0.5, NOW)])
    metrics = store.get_metrics(run_id)
    assert metrics["loss"] == {"steps": [0, 1, 2], "values": [1.0, 0.5, 0.2], "timestamps": [NOW] * 3}
    assert metrics["acc"]["values"] == [0.5]
    assert store.get_metrics(store.start_run({})) == {}


def test_list_runs_is_oldest_first_and_limit_keeps_the_newest(store: Store) -> None:
    ids = [store.start_run({"task": str(n)}) for n in range(5)]
    assert [run["_id"] for run in store.list_runs()] == ids
    assert [run["_id"] for run in store.list_runs(limit=2)] == ids[-2:]


def test_invalid_uris_are_refused_with_one_line() -> None:
    for uri in ("nosuchdb://x", "sqlite://", "just-a-path.db", "sqlite:///"):
        with pytest.raises(HyperspaceError) as raised:
            open_store(uri)
        assert "\n" not in str(raised.value)


def test_an_unusable_sqlite_path_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(HyperspaceError, match="cannot open store"):
        open_store(f"sqlite:///{blocker}/store.db")
    with pytest.raises(HyperspaceError, match="is a directory"):
        open_store(f"sqlite:///{tmp_path}")


def test_a_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    import sqlite3

    uri = f"sqlite:///{tmp_path}/store.db"
    open_store(uri).close()
    with sqlite3.connect(tmp_path / "store.db") as connection:
        connection.execute("UPDATE store_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(HyperspaceError, match="schema version 99"):
        open_store(uri)
