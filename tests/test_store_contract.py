"""The guarantees written in the Store interface's docstrings, tested on every backend."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import re
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mongomock
import mongomock.gridfs
import pymongo
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from hyperspace_hydra import HyperspaceError
from hyperspace_hydra.observer import StoreObserver
from hyperspace_hydra.store import (
    CANCELLED,
    COMPLETED,
    DIED,
    FAILED,
    INTERRUPTED,
    PAUSED,
    QUEUED,
    RUNNING,
    TIMEOUT,
    ClaimLostError,
    JobNotFoundError,
    MetricPoint,
    NewJob,
    RunNotFoundError,
    Store,
    StoreNotFoundError,
    open_store,
    sql,
    sql_schema,
)
from hyperspace_hydra.store.base import (
    GONE,
    IDLE,
    PRUNED,
    RUN_FIELDS,
    STALE_RUN,
    STALE_RUN_SECONDS,
    STOPPED,
    STOPPING,
    WORKER_GONE_LEASES,
    WORKER_KEPT_SECONDS,
    WORKING,
    Adoption,
    Condition,
    FinishedRun,
    WholeRow,
    WorkerBeat,
    WorkerInfo,
    job_pages,
    run_pages,
)
from hyperspace_hydra.store.mongo import MongoStore

mongomock.gridfs.enable_gridfs_integration()  # lets pymongo's GridFS work on mongomock's databases

NOW = dt.datetime(2026, 11, 1, 12, 0, 0)
MONGO_SERVER_ENV = "HYPERSPACE_TEST_MONGO_URI"
MONGO_BACKENDS = ["mongomock", *(["mongodb"] if os.environ.get(MONGO_SERVER_ENV) else [])]
"""MongoDB backends: mongomock always, a real server when $HYPERSPACE_TEST_MONGO_URI names one."""


@dataclass
class Backend:
    """A new, empty store on one backend; ``mongo`` is a client of its MongoDB server, if it has one."""

    uri: str
    mongo: Any = None
    in_process: bool = False
    """mongomock: every store object shares the client ``mongo``, which other processes cannot reach."""

    def open(self, read_only: bool = False, create: bool = True) -> Store:
        """A new store object on this store (see ``open_store`` for ``read_only`` and ``create``)."""
        if self.in_process:
            return MongoStore(self.uri, client=self.mongo, read_only=read_only, create=create)
        return open_store(self.uri, read_only=read_only, create=create)

    def uri_for_other_processes(self) -> str:
        """The store's URI, for tests that open it in several processes (skipped on mongomock)."""
        if self.in_process:
            pytest.skip("mongomock lives in one process; this runs against a real server when HYPERSPACE_TEST_MONGO_URI is set")
        return self.uri

    def database(self) -> Any:
        """The store's MongoDB database, to look at the documents as other tools see them."""
        return self.mongo[urllib.parse.urlsplit(self.uri).path.lstrip("/")]


def make_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Yield a new, empty store on the backend ``name`` and remove it afterwards."""
    if name == "sqlite":
        yield Backend(f"sqlite:///{tmp_path}/store.db")
    elif name == "postgresql":
        yield Backend(request.getfixturevalue("postgres_uri"))
    elif name == "mongomock":
        yield Backend("mongodb://localhost/hyperspace_test", mongomock.MongoClient(), in_process=True)
    else:
        uri = _new_database_uri(os.environ[MONGO_SERVER_ENV])
        with pymongo.MongoClient(uri) as client:
            yield Backend(uri, client)
            client.drop_database(client.get_default_database())


def _new_database_uri(server_uri: str) -> str:
    """``server_uri`` naming a new database; credentials keep authenticating where the URI said (its database, else admin)."""
    server = urllib.parse.urlsplit(server_uri)
    query = server.query
    if server.username and "authsource=" not in query.lower():
        query = "&".join(filter(None, [query, f"authSource={server.path.lstrip('/') or 'admin'}"]))
    return urllib.parse.urlunsplit(server._replace(path=f"/hyperspace_test_{uuid.uuid4().hex}", query=query))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), *MONGO_BACKENDS])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A new, empty store on each backend."""
    yield from make_backend(request.param, request, tmp_path)


def _start_many(uri: str, count: int) -> list[int]:
    with open_store(uri) as store:
        return [store.start_run({"task": "t", "start_time": NOW}) for _ in range(count)]


def test_start_run_returns_unique_ids_across_processes(backend: Backend) -> None:
    store_uri = backend.uri_for_other_processes()
    open_store(store_uri).close()
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        batches = pool.starmap(_start_many, [(store_uri, 25)] * 4)
    ids = [run_id for batch in batches for run_id in batch]
    assert len(set(ids)) == 100 and min(ids) >= 1


def test_a_store_that_does_not_exist_is_refused_not_created_when_it_may_not_be_created(backend: Backend, tmp_path: Path) -> None:
    for read_only in (False, True):
        with pytest.raises(StoreNotFoundError, match=r"^no store at \S+: nothing was recorded there yet"):
            backend.open(read_only=read_only, create=False)
    assert not (tmp_path / "store.db").exists(), "no SQLite file is left behind"
    with backend.open() as created:
        run_id = created.start_run({"task": "t"})
    with backend.open(create=False) as existing, backend.open(read_only=True) as reader:
        assert [run["_id"] for run in existing.list_runs()] == [run["_id"] for run in reader.list_runs()] == [run_id]


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
    assert run["info"] == {"b": 2} and run["captured_out"] == "x"
    assert abs((run["heartbeat"] - store.server_time()).total_seconds()) < 5, "a heartbeat is stamped with the server's time"


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


@pytest.mark.parametrize("huge", [2**31, 2**63, 10**22, -(10**22)])
def test_ids_beyond_what_a_store_holds_name_nothing(store: Store, huge: int) -> None:
    run_id = store.start_run({"config": {}, "seed": 3})
    for call in (
        lambda: store.get_run(huge),
        lambda: store.update_run(huge, {"captured_out": ""}),
        lambda: store.finish_run(huge, COMPLETED, {}),
        lambda: store.rewrite_config(huge, {}, "h", {}),
        lambda: store.add_metrics(huge, []),
        lambda: store.get_metrics(huge),
    ):
        with pytest.raises(RunNotFoundError, match=str(huge)):
            call()
    with pytest.raises(JobNotFoundError, match=str(huge)):
        store.get_sweep(huge)
    job = store.enqueue("s", [_job("a")], {"kind": "grid"}).enqueued[0]
    assert store.change_jobs([QUEUED], PAUSED, job_ids=[huge]) == 0 and store.change_jobs([QUEUED], PAUSED, sweep_id=huge) == 0
    assert store.list_jobs(job_ids=[huge, job]) == store.list_jobs(job_ids=[job]) and store.list_jobs(sweep_id=huge) == []
    assert store.list_runs(sweep_id=huge) == []
    assert _ids(store, Condition("seed", "<", huge)) == ([run_id] if huge > 0 else [])
    assert _ids(store, Condition("id", ">", -huge)) == ([run_id] if huge > 0 else [])
    assert _ids(store, Condition("seed", "in", [huge, 3])) == [run_id]


def test_metrics_come_back_by_name_ordered_by_step(store: Store) -> None:
    run_id = store.start_run({})
    store.add_metrics(run_id, [MetricPoint("loss", 2, 0.2, NOW), MetricPoint("loss", 0, 1.0, NOW), MetricPoint("acc", 0, 0.5, NOW)])
    store.add_metrics(run_id, [MetricPoint("loss", 1, 0.5, NOW)])
    metrics = store.get_metrics(run_id)
    assert metrics["loss"] == {"steps": [0, 1, 2], "values": [1.0, 0.5, 0.2], "timestamps": [NOW] * 3}
    assert metrics["acc"]["values"] == [0.5]
    assert store.get_metrics(store.start_run({})) == {}


def test_metric_series_of_many_runs_come_back_in_one_read(store: Store) -> None:
    first, second, silent = store.start_run({}), store.start_run({}), store.start_run({})
    store.add_metrics(first, [MetricPoint("loss", 1, 0.5, NOW), MetricPoint("loss", 0, 1.0, NOW), MetricPoint("acc", 0, 0.1, NOW)])
    store.add_metrics(second, [MetricPoint("loss", 0, 2.0, NOW)])
    series = store.get_metric_series([first, second, silent, 10**6, 2**70], "loss")
    assert series == {first: ([0, 1], [1.0, 0.5]), second: ([0], [2.0])}, "runs without the metric and unknown ids are left out"
    assert store.get_metric_series([], "loss") == {}


def test_list_runs_is_oldest_first_and_limit_keeps_the_newest(store: Store) -> None:
    ids = [store.start_run({"task": str(n)}) for n in range(5)]
    assert [run["_id"] for run in store.list_runs()] == ids
    assert [run["_id"] for run in store.list_runs(limit=2)] == ids[-2:]


def test_count_runs_counts_what_list_runs_returns(store: Store) -> None:
    for task, objective in (("a", 0.1), ("a", 0.9), ("b", 0.5)):
        store.finish_run(store.start_run({"task": task}), COMPLETED, {"objective": objective})
    running = store.start_run({"task": "a"})
    selections: list[dict[str, Any]] = [
        {}, {"task": "a"}, {"task": "a", "status": COMPLETED}, {"status": RUNNING}, {"where": [Condition("objective", ">", 0.3)]},
        {"task": "a", "where": [Condition("id", ">", running)]}, {"sweep_id": 7},
    ]  # fmt: skip
    assert [store.count_runs(**selection) for selection in selections] == [len(store.list_runs(**selection)) for selection in selections]
    assert [store.count_runs(**selection) for selection in selections] == [4, 3, 2, 1, 2, 0, 0]


def test_list_runs_reads_only_the_fields_asked_for(store: Store) -> None:
    run_id = store.start_run({"task": "t", "config": {"a": 1}, "captured_out": "x" * 2_000_000, "choices": {"m": "s"}})
    store.finish_run(run_id, COMPLETED, {"objective": 0.5})
    assert store.list_runs(fields=["task", "objective"]) == [{"_id": run_id, "task": "t", "objective": 0.5}]
    assert store.list_runs(sort="-objective", fields=["config"]) == [{"_id": run_id, "config": {"a": 1}}]
    assert store.list_runs(fields=[]) == [{"_id": run_id}]
    [run] = store.list_runs(fields=["captured_out", "choices"])
    assert run == {"_id": run_id, "captured_out": "x" * 2_000_000, "choices": {"m": "s"}}
    with pytest.raises(ValueError, match="unknown run fields"):
        store.list_runs(fields=["nope"])


def test_group_runs_groups_by_the_config_outside_the_paths_and_by_choices(store: Store) -> None:
    def run(config: dict[str, Any] | None, choices: str = "adam", **fields: Any) -> int:
        return _finished_run(store, config, task="t", choices={"optimizer": choices}, **fields)  # type: ignore[arg-type]

    first = run({"seed": 1, "optimizer": {"lr": 0.1, "nesterov": True, "betas": [0.9, 0.99]}}, objective=0.5, result={"acc": 0.5}, sweep_id=3)
    same = run({"seed": 2, "optimizer": {"lr": 0.2, "nesterov": False, "betas": [0.9, 0.99]}}, objective=0.25)
    other_betas = run({"seed": 1, "optimizer": {"lr": 0.3, "betas": [0.9, 0.9]}})
    other_choice = run({"seed": 1, "optimizer": {"lr": 0.1, "betas": [0.9, 0.99]}}, choices="sgd")
    without_lr = run({"seed": 1, "optimizer": {"lr": None, "betas": [0.9, 0.99]}})
    no_config = run(None)
    run({"seed": 1}, status=FAILED)
    _finished_run(store, {"seed": 1}, task="u")
    t_completed = [Condition("task", "=", "t"), Condition("status", "=", COMPLETED)]
    without = ["seed", "optimizer.lr", "optimizer.nesterov", "absent.path", "optimizer.betas.0", "seed.deeper"]
    groups = store.group_runs(t_completed, without, values=["optimizer.lr", "optimizer.nesterov"])
    by_first_run = {group.runs[0].run_id: group for group in groups}
    assert [group.runs[0].run_id for group in groups] == [first, other_betas, other_choice, no_config]
    assert [run.run_id for run in by_first_run[first].runs] == [first, same, without_lr], "lr and nesterov are left out, null or not there"
    assert by_first_run[first].config == {"optimizer": {"betas": [0.9, 0.99]}} and by_first_run[first].choices == {"optimizer": "adam"}
    assert by_first_run[other_choice].choices == {"optimizer": "sgd"} and by_first_run[no_config].config == {}
    grouped = by_first_run[first].runs
    assert (grouped[0].sweep_id, grouped[0].objective, grouped[0].result) == (3, 0.5, {"acc": 0.5})
    assert [run.values for run in grouped] == [
        {"optimizer.lr": 0.1, "optimizer.nesterov": True}, {"optimizer.lr": 0.2, "optimizer.nesterov": False}, {"optimizer.lr": None},
    ], "a value as stored (a boolean stays one), None for a null, no key where the config lacks the path"  # fmt: skip
    later = store.group_runs([*t_completed, Condition("id", ">", same)], ["seed"])
    assert sorted(run.run_id for group in later for run in group.runs) == [other_betas, other_choice, without_lr, no_config]
    stopped = {"metric": "loss", "step": 3, "value": 0.7}
    pruned = run({"seed": 1, "optimizer": {"lr": 0.4, "betas": [0.9, 0.99]}}, status=PRUNED, info={"pruned": stopped, "other": "x" * 1000})
    [[in_group]] = [[member for member in group.runs if member.run_id == pruned] for group in store.group_runs([Condition("status", "=", PRUNED)], ["seed"])]
    assert (in_group.status, in_group.pruned, grouped[0].status, grouped[0].pruned) == (PRUNED, stopped, COMPLETED, None)


def _finished_run(store: Store, config: dict[str, Any], status: str = COMPLETED, **fields: Any) -> int:
    """A run with ``config`` that ended with ``status``; ``fields`` (task, seed, job_id, objective, result, ...) are stored too."""
    started = {key: fields.pop(key) for key in ("task", "seed", "job_id", "sweep_id", "choices") if key in fields}
    run_id = store.start_run({"config": config, "start_time": NOW, **started})
    store.finish_run(run_id, status, fields)
    return run_id


def _ids(store: Store, *conditions: Condition, **filters: Any) -> list[int]:
    return [run["_id"] for run in store.list_runs(where=conditions, **filters)]


@pytest.fixture
def classifiers(store: Store) -> list[int]:
    """Runs whose config values differ in type, and runs that lack them."""
    return [
        _finished_run(store, {"classifier": {"C": 0.1, "name": "softmax"}, "aggregation": {"agg_layers": [50, 10]}}),
        _finished_run(store, {"classifier": {"C": 1, "name": "mlp"}, "aggregation": {"agg_layers": [50]}}),
        _finished_run(store, {"classifier": {"C": 10.0, "name": "Mlp"}, "aggregation": {"agg_layers": [50.0, 10]}}),
        _finished_run(store, {"classifier": {"C": "1", "name": None}, "aggregation": {"agg_layers": [[50, 10]]}}),
        _finished_run(store, {"classifier": {"C": True}}),
        _finished_run(store, {}),
    ]


def test_equality_compares_numbers_numerically_and_never_across_types(store: Store, classifiers: list[int]) -> None:
    softmax, mlp, big_mlp, text_c, bool_c, _ = classifiers
    assert _ids(store, Condition("classifier.C", "=", 1)) == [mlp]
    assert _ids(store, Condition("classifier.C", "=", 1.0)) == [mlp], "1 equals 1.0"
    assert _ids(store, Condition("classifier.C", "=", "1")) == [text_c]
    assert _ids(store, Condition("classifier.C", "=", True)) == [bool_c]
    assert _ids(store, Condition("classifier.name", "=", "mlp")) == [mlp], "strings compare case-sensitively"


def test_a_list_equals_only_the_whole_list(store: Store, classifiers: list[int]) -> None:
    softmax, mlp, big_mlp, nested, *_ = classifiers
    assert _ids(store, Condition("aggregation.agg_layers", "=", [50, 10])) == [softmax, big_mlp], "items compare as numbers"
    assert _ids(store, Condition("aggregation.agg_layers", "=", [50])) == [mlp]
    assert _ids(store, Condition("aggregation.agg_layers", "=", 50)) == [], "a scalar never equals a list holding it"
    assert _ids(store, Condition("aggregation.agg_layers", "=", [[50, 10]])) == [nested]
    assert _ids(store, Condition("aggregation.agg_layers", "!=", [50, 10])) == [mlp, nested, classifiers[4], classifiers[5]]


def test_less_and_greater_compare_values_of_the_same_kind(store: Store, classifiers: list[int]) -> None:
    softmax, mlp, big_mlp, text_c, *_ = classifiers
    assert _ids(store, Condition("classifier.C", "<", 1)) == [softmax]
    assert _ids(store, Condition("classifier.C", ">", 0.1)) == [mlp, big_mlp]
    assert _ids(store, Condition("classifier.C", ">", "0")) == [text_c], "strings only against strings"
    assert _ids(store, Condition("classifier.name", "<", "n")) == [mlp, big_mlp], "strings by code point: 'M' < 'm' < 'n'"


def test_at_most_and_at_least_include_the_bound_and_compare_values_of_the_same_kind(store: Store, classifiers: list[int]) -> None:
    softmax, mlp, big_mlp, text_c, *_ = classifiers
    assert _ids(store, Condition("classifier.C", "<=", 1)) == [softmax, mlp], "1 <= 1, and True is no number"
    assert _ids(store, Condition("classifier.C", ">=", 1.0)) == [mlp, big_mlp], "1 >= 1.0"
    assert _ids(store, Condition("classifier.C", ">=", "1")) == [text_c], "strings only against strings"
    assert _ids(store, Condition("classifier.name", "<=", "mlp")) == [mlp, big_mlp]
    assert _ids(store, Condition("classifier.name", ">=", "softmax")) == [softmax]


def test_in_matches_any_listed_value(store: Store, classifiers: list[int]) -> None:
    softmax, mlp, big_mlp, text_c, *_ = classifiers
    assert _ids(store, Condition("classifier.name", "in", ["mlp", "softmax"])) == [softmax, mlp]
    assert _ids(store, Condition("classifier.C", "in", [0.1, "1"])) == [softmax, text_c]


def test_missing_values_match_only_not_equal_and_not_exists(store: Store, classifiers: list[int]) -> None:
    softmax, mlp, big_mlp, null_name, no_name, empty = classifiers
    assert _ids(store, Condition("classifier.name", "exists")) == [softmax, mlp, big_mlp]
    assert _ids(store, Condition("classifier.name", "exists", False)) == [null_name, no_name, empty], "null counts as missing"
    assert _ids(store, Condition("classifier.name", "!=", "mlp")) == [softmax, big_mlp, null_name, no_name, empty]
    for op, value in (("=", "x"), ("<", "zzz"), (">", ""), ("<=", "zzz"), (">=", ""), ("in", ["x", "softmax"])):
        matched = _ids(store, Condition("classifier.name", op, value))
        assert not {null_name, no_name, empty} & set(matched), op
    assert _ids(store, Condition("no.such.key", "!=", 1)) == classifiers


def test_top_level_fields_and_result_keys_can_be_compared(store: Store) -> None:
    result = {"accuracy": 0.5, "name": "a"}
    first = _finished_run(store, {}, task="digits", seed=1, objective=0.5, result=result, choices={"aggregation": "mean"})
    second = _finished_run(store, {}, FAILED, task="imdb", seed=2)
    assert _ids(store, Condition("objective", ">", 0.1)) == [first]
    assert _ids(store, Condition("objective", "exists", False)) == [second]
    assert _ids(store, Condition("status", "!=", FAILED)) == [first]
    assert _ids(store, Condition("status", "=", 1)) == [], "a number never equals a string field"
    assert _ids(store, Condition("task", "in", ["imdb", "x"])) == [second]
    assert _ids(store, Condition("seed", "<", 2)) == [first]
    assert _ids(store, Condition("id", ">", first)) == [second]
    assert _ids(store, Condition("result.accuracy", "=", 0.5)) == [first]
    assert _ids(store, Condition("choices.aggregation", "=", "mean")) == [first]


def test_info_keys_can_be_compared(store: Store) -> None:
    imported = store.start_run({"info": {"imported_from": "/old/runs", "sacred_id": 7}})
    store.start_run({"info": {"imported_from": "/other/runs", "sacred_id": 7}})
    store.start_run({"info": {"metrics": []}})
    assert _ids(store, Condition("info.imported_from", "=", "/old/runs"), Condition("info.sacred_id", "=", 7)) == [imported]
    assert len(_ids(store, Condition("info.sacred_id", "exists"))) == 2


def test_the_study_that_recorded_a_run_can_be_compared(store: Store) -> None:
    first = store.start_run({"experiment": {"name": "study.run", "base_dir": "/s"}, "config": {"study": "not this"}})
    store.start_run({"experiment": {"name": "study.finetune"}})
    imported_without_a_name = store.start_run({"experiment": {}})
    assert _ids(store, Condition("study", "=", "study.run")) == [first], "the app's name, not a config key called study"
    assert _ids(store, Condition("study", "!=", "study.finetune")) == [first, imported_without_a_name]
    assert _ids(store, Condition("study", "exists", False)) == [imported_without_a_name]


def test_task_status_and_sweep_select_runs(store: Store) -> None:
    sweep = store.enqueue("s", [_job("a"), _job("b")], {"kind": "grid"})
    other = store.enqueue("s", [_job("c")], {"kind": "grid"})
    local = store.enqueue("s", [], {"kind": "search", "state": RUNNING})
    in_sweep = _finished_run(store, {}, task="digits", job_id=sweep.enqueued[0], sweep_id=sweep.sweep_id)
    failed_in_sweep = _finished_run(store, {}, FAILED, task="imdb", job_id=sweep.enqueued[1], sweep_id=sweep.sweep_id)
    _finished_run(store, {}, task="digits", job_id=other.enqueued[0], sweep_id=other.sweep_id)
    without_job = _finished_run(store, {}, FAILED, task="digits")
    of_a_local_search = _finished_run(store, {}, task="digits", sweep_id=local.sweep_id)
    assert _ids(store, sweep_id=local.sweep_id) == [of_a_local_search]
    assert _ids(store, sweep_id=sweep.sweep_id) == [in_sweep, failed_in_sweep]
    assert _ids(store, sweep_id=sweep.sweep_id, status=FAILED) == [failed_in_sweep]
    assert _ids(store, task="digits", status=FAILED) == [without_job]
    assert _ids(store, sweep_id=404) == []


def test_sort_orders_numbers_then_strings_then_missing(store: Store) -> None:
    runs = {value: _finished_run(store, {"x": value}, objective=objective)
            for value, objective in ((2, 0.2), ("b", None), (10.5, 0.9), ("B", 0.5), (None, 0.1), (-1, None))}  # fmt: skip
    no_x = _finished_run(store, {}, objective=0.9)
    assert _ids(store, sort="x") == [runs[-1], runs[2], runs[10.5], runs["B"], runs["b"], runs[None], no_x]
    assert _ids(store, sort="-x") == [runs[10.5], runs[2], runs[-1], runs["b"], runs["B"], runs[None], no_x]
    assert _ids(store, sort="-objective") == [runs[10.5], no_x, runs["B"], runs[2], runs[None], runs["b"], runs[-1]], "ties by id"
    assert _ids(store, sort="id") == sorted(runs.values()) + [no_x]


def test_sort_by_duration_puts_runs_without_a_stop_time_last(store: Store) -> None:
    def run_of(seconds: float | None) -> int:
        run_id = store.start_run({"start_time": NOW})
        if seconds is not None:
            store.finish_run(run_id, COMPLETED, {"stop_time": NOW + dt.timedelta(seconds=seconds)})
        return run_id

    slow, running, quick, medium = run_of(90.5), run_of(None), run_of(0.25), run_of(3)
    assert _ids(store, sort="duration") == [quick, medium, slow, running]
    assert _ids(store, sort="-duration", limit=2) == [slow, medium]
    with pytest.raises(HyperspaceError, match="duration can be sorted by"):
        Condition("duration", "<", 1)


def test_limit_applies_after_filters_and_sort(store: Store) -> None:
    ids = [_finished_run(store, {"x": n % 3}, objective=float(n)) for n in range(9)]
    assert _ids(store, Condition("x", "=", 0), limit=2) == [ids[3], ids[6]], "unsorted: the newest matching runs, oldest first"
    assert _ids(store, Condition("x", "=", 0), sort="-objective", limit=2) == [ids[6], ids[3]], "sorted: the first of that order"
    assert _ids(store, sort="objective", limit=0) == []


def test_offset_skips_the_first_runs_of_the_order(store: Store) -> None:
    ids = [_finished_run(store, {"x": n % 3}, objective=float(n)) for n in range(9)]
    assert _ids(store, Condition("x", "=", 0), sort="-objective", limit=2, offset=1) == [ids[3], ids[0]], "a page of a sorted table"
    assert _ids(store, sort="-id", limit=3, offset=3) == ids[5:2:-1]
    assert _ids(store, limit=2, offset=2) == ids[5:7], "unsorted: skips the newest runs, the rest oldest first"
    assert _ids(store, sort="objective", offset=9) == []


def test_bad_conditions_and_sort_paths_are_refused() -> None:
    for path, op, value in (("a..b", "=", 1), ("a", "~", 1), ("a", "<", [1]), ("a", "<", True), ("a", "in", []),
                            ("a", "=", None), ("a", "=", {"b": 1}), ("a", "exists", "yes"), ("result", "=", 1)):  # fmt: skip
        with pytest.raises(HyperspaceError) as raised:
            Condition(path, op, value)
        assert "\n" not in str(raised.value)


def test_a_malformed_sort_path_is_refused(store: Store) -> None:
    with pytest.raises(HyperspaceError, match="invalid path"):
        store.list_runs(sort="-a..b")


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


def _open_descriptors_of(path: Path) -> int:
    """How many file descriptors of this process point at ``path``."""
    return sum(1 for fd in Path("/proc/self/fd").iterdir() if os.path.realpath(fd) == str(path))


def test_a_forked_process_inherits_no_sqlite_connection_and_both_go_on_writing(tmp_path: Path) -> None:
    database = tmp_path / "store.db"
    with open_store(f"sqlite:///{database}") as store:
        store.start_run({"task": "parent"})
        assert _open_descriptors_of(database) == 1, "the connection stays open between transactions"
        pid = os.fork()
        if pid == 0:  # the child: nothing of the parent's connection, then its own
            inherited = _open_descriptors_of(database)
            store.start_run({"task": "child"})
            os._exit(10 + inherited)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 10, "the child inherited no open connection"
        store.start_run({"task": "parent again"})
        assert sorted(run["task"] for run in store.list_runs()) == ["child", "parent", "parent again"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def sql_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A new, empty store on each SQL backend."""
    yield from make_backend(request.param, request, tmp_path)


def _record_a_job_run_in_a_forked_process(store: Store, claim: Any, misses_file: Path) -> None:
    """Fork a process that records a run of the job under ``claim`` through ``store`` as a worker's job process does, and
    writes to ``misses_file`` every statement it did not find compiled in the engine's cache."""
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            misses = []

            def note_miss(_connection: Any, _cursor: Any, statement: str, _parameters: Any, context: Any, _many: bool) -> None:
                if context.compiled is not None and context.cache_hit == context.dialect.CACHE_MISS:
                    misses.append(" ".join(statement.split()))

            sa.event.listen(store._engine, "after_cursor_execute", note_miss)  # type: ignore[attr-defined]
            observer = StoreObserver(store, {"task": "t", "job_id": claim.job_id, "seed": 1}, lambda result: result, claim)
            observer.started_event({"name": "t"}, "main", {"hostname": "h"}, NOW, {"lr": 0.1}, {"argv": []}, None)
            observer.log_metrics({"loss": {"steps": [0, 1], "values": [1.0, 0.5], "timestamps": [NOW, NOW]}}, {})
            observer.heartbeat_event({}, "epoch 1", NOW, None)
            observer.hold_heartbeat({}, "epoch 1\nepoch 2", NOW)
            finished = observer.completed_event(NOW, 0.5)
            misses_file.write_text("\n".join(misses))
            status = 0 if finished else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the job process recorded its run and ended its job"


def test_a_job_process_forked_after_a_rehearsal_finds_every_recording_statement_compiled(sql_backend: Backend, tmp_path: Path) -> None:
    with sql_backend.open() as store:
        store.enqueue("s", [_job("a"), _job("b")], {"kind": "grid"})
        first, second = store.claim("s", "w", 60), store.claim("s", "w", 60)
        _record_a_job_run_in_a_forked_process(store, first.claim, tmp_path / "cold.txt")
        assert (tmp_path / "cold.txt").read_text(), "without a rehearsal, a job process compiles the statements itself"
        store.rehearse_job_run(second.claim)
        _record_a_job_run_in_a_forked_process(store, second.claim, tmp_path / "warm.txt")
        assert (tmp_path / "warm.txt").read_text() == "", "statements the job process compiled itself"
        assert [job["state"] for job in store.list_jobs()] == [COMPLETED, COMPLETED]


def test_a_store_from_a_newer_version_is_refused(backend: Backend) -> None:
    backend.open().close()
    if backend.mongo is not None:
        backend.database().store_meta.update_one({"_id": "schema_version"}, {"$set": {"value": 99}})
    else:
        _set_sql_schema_version(backend.uri, 99)
    with pytest.raises(HyperspaceError, match="schema version 99"):
        backend.open()


def test_a_store_of_schema_version_1_is_upgraded_and_its_runs_get_their_sweep(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sql, "_SCHEMA_CHECKED", set())  # open it as a new process would
    with backend.open() as store:
        grid = store.enqueue("s", [_job("a")], {"kind": "grid"})
        search = store.enqueue("s", [], {"kind": "search"}).sweep_id
        of_the_grid = _finished_run(store, {}, job_id=grid.enqueued[0])
        alone = _finished_run(store, {})
    _make_version_1(backend)
    sql._SCHEMA_CHECKED.clear()
    with backend.open() as store:
        assert _ids(store, sweep_id=grid.sweep_id) == [of_the_grid] and alone not in _ids(store, sweep_id=grid.sweep_id)
        assert store.get_sweep(search)["state"] == RUNNING and store.get_sweep(grid.sweep_id)["state"] is None
        assert store.summary()["schema_version"] in (4, "4")
        assert store.get_sweep(search)["copied_from"] is None and store.list_jobs()[0]["copied_from"] is None
        assert store.list_workers() == []
        store.register_worker(_worker("w"))
        assert [worker["state"] for worker in store.list_workers()] == [IDLE], "the registry of workers (version 4) works"


def _make_version_1(backend: Backend) -> None:
    """Take the store back to schema version 1: no ``sweep_id`` on runs, no ``state`` or ``copied_from`` on sweeps, no ``copied_from`` on jobs,
    no registry of workers."""
    if backend.mongo is not None:
        database = backend.database()
        database.drop_collection("workers")
        database.runs.update_many({}, {"$unset": {"sweep_id": ""}})
        database.sweeps.update_many({}, {"$unset": {"state": "", "copied_from": ""}})
        database.jobs.update_many({}, {"$unset": {"copied_from": ""}})
        database.store_meta.update_one({"_id": "schema_version"}, {"$set": {"value": 1}})
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(backend.uri.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP INDEX ix_runs_sweep_id")
        connection.exec_driver_sql("DROP INDEX ix_runs_task_status_id")
        connection.exec_driver_sql("ALTER TABLE runs DROP COLUMN sweep_id")
        connection.exec_driver_sql("ALTER TABLE sweeps DROP COLUMN state")
        connection.exec_driver_sql("ALTER TABLE sweeps DROP COLUMN copied_from")
        connection.exec_driver_sql("ALTER TABLE jobs DROP COLUMN copied_from")
        connection.exec_driver_sql("DROP TABLE workers")
    engine.dispose()
    _set_sql_schema_version(backend.uri, 1)


def _set_sql_schema_version(uri: str, version: int) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        connection.exec_driver_sql(f"UPDATE store_meta SET value = '{version}' WHERE key = 'schema_version'")
    engine.dispose()


# ---- queue ----------------------------------------------------------------------------------

def _job(name: str, priority: int = 0) -> NewJob:
    return NewJob([f"message={name}"], {"message": name}, f"hash-{name}", output_dir=f"out/{name}", priority=priority)


def _claim_all(uri: str, study: str) -> list[int]:
    with open_store(uri) as store:
        claimed = []
        while (job := store.claim(study, f"worker-{os.getpid()}", 60)) is not None:
            claimed.append(job.claim.job_id)
        return claimed


def test_enqueue_creates_a_sweep_with_queued_jobs_in_order(store: Store) -> None:
    result = store.enqueue("s", [_job("a"), _job("b")], {"kind": "grid", "command": "python -m s", "spec": {"x": 1}})
    assert result.skipped == 0 and len(result.enqueued) == 2 and result.job_ids == sorted(result.job_ids)
    jobs = store.list_jobs(sweep_id=result.sweep_id)
    assert [(job["state"], job["overrides"], job["attempts"], job["study"]) for job in jobs] == [
        (QUEUED, ["message=a"], 0, "s"), (QUEUED, ["message=b"], 0, "s")
    ]  # fmt: skip
    sweep = store.get_sweep(result.sweep_id)
    assert sweep["kind"] == "grid" and sweep["spec"] == {"x": 1} and sweep["counts"] == {QUEUED: 2}


def test_enqueue_is_all_or_nothing(store: Store) -> None:
    unstorable = NewJob(["x=1"], {"x": object()}, "hash-bad")
    with pytest.raises(Exception):  # noqa: B017 - each backend's own error for data it cannot store
        store.enqueue("s", [_job("a"), unstorable], {"kind": "grid"})
    assert store.list_jobs() == []


@pytest.mark.parametrize(
    ("priority", "max_attempts", "message"),
    [
        ("high", 3, "a job's priority must be a whole number from -2147483648 to 2147483647, not 'high'"),
        (2**31, 3, "a job's priority must be a whole number from -2147483648 to 2147483647, not 2147483648"),
        (True, 3, "a job's priority must be a whole number"),
        (1.5, 3, "a job's priority must be a whole number"),
        (0, 0, "max_attempts must be a whole number from 1 to 2147483647, not 0"),
        (0, 10**20, "max_attempts must be a whole number from 1 to 2147483647, not 100000000000000000000"),
    ],
)
def test_a_priority_or_attempts_no_backend_keeps_alike_is_refused_before_anything_is_written(
    store: Store, priority: Any, max_attempts: int, message: str
) -> None:
    with pytest.raises(HyperspaceError, match=re.escape(message)):
        store.enqueue("s", [_job("a"), _job("b", priority=priority)], {"kind": "grid"}, max_attempts=max_attempts)
    assert store.list_jobs() == [] and store.list_sweeps() == []
    search = store.enqueue("s", [], {"kind": "search", "state": RUNNING})
    with pytest.raises(HyperspaceError, match=re.escape(message)):
        store.add_jobs(search.sweep_id, [_job("b", priority=priority)], expected_jobs=0, max_attempts=max_attempts)
    assert store.list_jobs() == []
    lowest, highest = store.enqueue("s", [_job("low", priority=-(2**31)), _job("high", priority=2**31 - 1)], {"kind": "grid"}, max_attempts=2**31 - 1).enqueued
    assert [(job["priority"], job["max_attempts"]) for job in store.list_jobs(job_ids=[lowest, highest])] == [(-(2**31), 2**31 - 1), (2**31 - 1, 2**31 - 1)]


def test_duplicates_of_queued_running_completed_jobs_and_runs_are_skipped(store: Store) -> None:
    first = store.enqueue("s", [_job("a"), _job("a"), _job("b")], {"kind": "grid"})
    assert first.skipped == 1 and first.job_ids[1] is None
    run_id = store.start_run({"config_hash": "hash-c"})
    store.finish_run(run_id, COMPLETED, {})
    again = store.enqueue("s", [_job("a"), _job("b"), _job("c"), _job("d")], {"kind": "grid"})
    assert again.job_ids[:3] == [None, None, None] and again.job_ids[3] is not None
    forced = store.enqueue("s", [_job("a")], {"kind": "grid"}, dedupe=False)
    assert forced.skipped == 0
    assert store.enqueue("other-study", [_job("a")], {"kind": "grid"}).skipped == 0, "jobs of another study are not duplicates"


def test_an_enqueue_whose_every_job_is_a_duplicate_writes_no_sweep(store: Store) -> None:
    first = store.enqueue("s", [_job("a"), _job("b")], {"kind": "grid"})
    repeated = store.enqueue("s", [_job("b"), _job("a"), _job("a")], {"kind": "grid"})
    assert (repeated.sweep_id, repeated.job_ids, repeated.skipped) == (None, [None, None, None], 3)
    assert [sweep["id"] for sweep in store.list_sweeps()] == [first.sweep_id]
    search = store.enqueue("s", [], {"kind": "search", "state": RUNNING}, dedupe=False)
    assert search.sweep_id is not None and len(store.list_sweeps()) == 2, "a search's sweep starts empty"


def test_failed_and_cancelled_jobs_are_not_duplicates(store: Store) -> None:
    [job_id] = store.enqueue("s", [_job("a")], {"kind": "grid"}).enqueued
    store.change_jobs([QUEUED], CANCELLED, job_ids=[job_id])
    assert store.enqueue("s", [_job("a")], {"kind": "grid"}).skipped == 0


def test_claim_takes_highest_priority_then_oldest_of_its_study_only(store: Store) -> None:
    store.enqueue("other", [_job("x", priority=9)], {"kind": "grid"})
    ids = store.enqueue("s", [_job("low"), _job("high", priority=5), _job("low2")], {"kind": "grid"}).enqueued
    order = [store.claim("s", "w", 60) for _ in range(4)]
    assert [job.claim.job_id for job in order[:3]] == [ids[1], ids[0], ids[2]]
    assert order[3] is None
    job = order[0]
    assert job.overrides == ["message=high"] and job.output_dir == "out/high" and job.study == "s"
    stored = store.list_jobs(job_ids=[job.claim.job_id])[0]
    assert stored["state"] == RUNNING and stored["worker"] == "w" and stored["token"] == job.claim.token


def test_concurrent_claims_never_hand_out_a_job_twice(backend: Backend) -> None:
    store_uri = backend.uri_for_other_processes()
    with open_store(store_uri) as store:
        store.enqueue("s", [_job(str(n)) for n in range(60)], {"kind": "grid"})
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        claimed = pool.starmap(_claim_all, [(store_uri, "s")] * 3)
    every = [job_id for batch in claimed for job_id in batch]
    assert len(every) == len(set(every)) == 60


def test_finishing_a_claimed_run_ends_its_job_in_the_same_step(store: Store) -> None:
    store.enqueue("s", [_job("a"), _job("b")], {"kind": "grid"})
    done, interrupted = store.claim("s", "w", 60), store.claim("s", "w", 60)
    run_id = store.start_run({"job_id": done.claim.job_id})
    assert store.finish_run(run_id, COMPLETED, {"result": 1.0}, claim=done.claim) is True
    [job] = store.list_jobs(job_ids=[done.claim.job_id])
    assert job["state"] == COMPLETED and job["run_id"] == run_id and job["finished_at"] is not None
    other_run = store.start_run({"job_id": interrupted.claim.job_id})
    store.finish_run(other_run, INTERRUPTED, {}, claim=interrupted.claim)
    [job] = store.list_jobs(job_ids=[interrupted.claim.job_id])
    assert job["state"] == QUEUED and job["attempts"] == 0 and job["worker"] is None, "an interrupted job is requeued, not failed"


def test_rehearsing_a_job_run_leaves_the_store_and_the_claim_as_they_were(store: Store) -> None:
    store.enqueue("s", [_job("a")], {"kind": "grid"})
    claimed = store.claim("s", "w", 60)
    before = store.list_jobs()
    store.rehearse_job_run(claimed.claim)
    assert store.list_jobs() == before and store.list_runs() == [] and store.count_runs() == 0
    run_id = store.start_run({"job_id": claimed.claim.job_id}, claim=claimed.claim)
    assert store.get_metrics(run_id) == {}
    assert store.finish_run(run_id, COMPLETED, {"result": 1.0}, claim=claimed.claim) is True, "the claim still holds"


def test_a_pruned_run_completes_its_job_and_is_never_retried(store: Store) -> None:
    store.enqueue("s", [_job("a")], {"kind": "grid"})
    claimed = store.claim("s", "w", 60)
    run_id = store.start_run({"job_id": claimed.claim.job_id})
    assert store.finish_run(run_id, PRUNED, {"info": {"pruned": {"metric": "loss", "step": 3, "value": 9.0}}}, claim=claimed.claim) is True
    [job] = store.list_jobs(job_ids=[claimed.claim.job_id])
    assert (job["state"], job["run_id"], job["error"]) == (COMPLETED, run_id, None)
    assert store.get_run(run_id)["status"] == PRUNED and store.count_runs(status=PRUNED) == 1
    assert store.claim("s", "w", 60) is None


def test_a_run_whose_claim_was_lost_finishes_as_died_and_leaves_the_job(store: Store) -> None:
    store.enqueue("s", [_job("a")], {"kind": "grid"})
    stale = store.claim("s", "w1", 60)
    stale_run = store.start_run({"job_id": stale.claim.job_id})
    _expire_leases(store, [stale.claim.job_id])
    assert store.requeue_expired() == [stale.claim.job_id]
    assert store.get_run(stale_run)["status"] == DIED, "requeue marks the running run of the lost attempt"
    fresh = store.claim("s", "w2", 60)
    assert fresh.claim.job_id == stale.claim.job_id and fresh.attempts == 1
    fresh_run = store.start_run({"job_id": fresh.claim.job_id})
    late_run = store.start_run({"job_id": stale.claim.job_id})
    assert store.finish_run(late_run, COMPLETED, {"result": 0.0}, claim=stale.claim) is False
    assert store.get_run(late_run)["status"] == DIED
    assert store.finish_run(fresh_run, COMPLETED, {"result": 1.0}, claim=fresh.claim) is True
    [job] = store.list_jobs(job_ids=[fresh.claim.job_id])
    assert job["state"] == COMPLETED and job["run_id"] == fresh_run


def test_a_lost_attempt_can_start_no_run_and_write_no_heartbeat_or_metric(store: Store) -> None:
    store.enqueue("s", [_job("a")], {"kind": "grid"})
    stale = store.claim("s", "w1", 60)
    stale_run = store.start_run({"job_id": stale.claim.job_id, "task": "t"}, claim=stale.claim)
    store.update_run(stale_run, {"captured_out": "held"}, claim=stale.claim)
    store.add_metrics(stale_run, [MetricPoint("loss", 0, 1.0, NOW)], claim=stale.claim)
    _expire_leases(store, [stale.claim.job_id])
    store.requeue_expired()
    with pytest.raises(ClaimLostError):
        store.update_run(stale_run, {"captured_out": "late"}, claim=stale.claim)
    with pytest.raises(ClaimLostError):
        store.add_metrics(stale_run, [MetricPoint("loss", 1, 0.5, NOW)], claim=stale.claim)
    runs_before = store.list_runs()
    with pytest.raises(ClaimLostError):
        store.start_run({"job_id": stale.claim.job_id, "task": "late"}, claim=stale.claim)
    assert store.get_run(stale_run)["captured_out"] == "held" and store.get_metrics(stale_run)["loss"]["steps"] == [0]
    running = [run for run in store.list_runs() if run["status"] == RUNNING]
    assert running == [] and len(store.list_runs()) - len(runs_before) in (0, 1), "nothing runs for the lost attempt"
    fresh = store.claim("s", "w2", 60)
    fresh_run = store.start_run({"job_id": fresh.claim.job_id}, claim=fresh.claim)
    store.add_metrics(fresh_run, [MetricPoint("loss", 0, 0.1, NOW)], claim=fresh.claim)
    assert store.get_run(fresh_run)["status"] == RUNNING


def test_a_run_outside_the_queue_whose_heartbeat_stopped_is_ended_as_died(store: Store) -> None:
    """Heartbeats are stamped with the server's time whatever the caller's clock says; a run without a job whose
    heartbeat is older than STALE_RUN_SECONDS died with its process. Runs of queued jobs are their lease's business."""
    silent = store.start_run({"task": "t", "heartbeat": NOW + dt.timedelta(days=1)})
    beating = store.start_run({"task": "t"})
    store.update_run(beating, {"heartbeat": NOW - dt.timedelta(days=1)})
    assert abs((store.get_run(beating)["heartbeat"] - store.server_time()).total_seconds()) < 5, "the server's time, not the given one"
    store.enqueue("s", [_job("a")], {"kind": "grid"})
    queued = store.claim("s", "w", 3600)
    of_a_job = store.start_run({"task": "t", "job_id": queued.claim.job_id}, claim=queued.claim)
    assert store.end_stale_runs() == []
    _age_heartbeats(store, [silent, of_a_job], seconds=STALE_RUN_SECONDS + 5)
    assert store.end_stale_runs() == [silent]
    assert store.end_stale_runs() == [], "once"
    run = store.get_run(silent)
    assert run["status"] == DIED and run["fail_trace"] == [STALE_RUN]
    assert [store.get_run(run_id)["status"] for run_id in (beating, of_a_job)] == [RUNNING, RUNNING]


def _age_heartbeats(store: Store, run_ids: list[int], seconds: float) -> None:
    """Move the runs' last heartbeat ``seconds`` into the past, as if their processes had gone silent that long ago."""
    _move_back(store, "runs", "heartbeat", run_ids, seconds)


def _expire_leases(store: Store, job_ids: list[int]) -> None:
    """End the jobs' leases a second ago on the server's clock, as if that long had passed: no test sleeps for a lease."""
    _move_back(store, "jobs", "lease_expires_at", job_ids, 1)


def _move_back(store: Store, table: str, field: str, ids: list[int], seconds: float) -> None:
    """Set ``field`` of the rows ``ids`` of ``table`` to the server's time ``seconds`` ago."""
    old = store.server_time() - dt.timedelta(seconds=seconds)
    if isinstance(store, MongoStore):
        store._db[table].update_many({"_id": {"$in": ids}}, {"$set": {field: old}})
        return
    rows = getattr(sql_schema, table.upper())
    with store._writer.begin() as connection:
        connection.execute(rows.update().where(rows.c.id.in_(ids)).values({field: old}))


def test_lease_renewal_keeps_jobs_and_reports_lost_claims(store: Store) -> None:
    store.enqueue("s", [_job("a"), _job("b")], {"kind": "grid"})
    kept, cancelled = store.claim("s", "w", 60), store.claim("s", "w", 60)
    _expire_leases(store, [kept.claim.job_id])
    store.change_jobs([RUNNING], CANCELLED, job_ids=[cancelled.claim.job_id])
    assert store.renew_leases([kept.claim, cancelled.claim], 60) == {cancelled.claim.job_id}, "an expired lease not yet requeued is renewed"
    assert store.requeue_expired() == [], "the renewed lease has not expired"
    run_id = store.start_run({"job_id": cancelled.claim.job_id})
    assert store.finish_run(run_id, COMPLETED, {}, claim=cancelled.claim) is False
    assert store.get_run(run_id)["status"] == INTERRUPTED, "a cancelled job's run ends INTERRUPTED"


def test_expired_jobs_die_after_max_attempts(store: Store) -> None:
    store.enqueue("s", [_job("a")], {"kind": "grid"}, max_attempts=2)
    for expected_state in (QUEUED, DIED):
        job = store.claim("s", "w", 60)
        _expire_leases(store, [job.claim.job_id])
        store.requeue_expired()
        [stored] = store.list_jobs(job_ids=[job.claim.job_id])
        assert stored["state"] == expected_state
    assert stored["attempts"] == 2 and "lease expired" in stored["error"]
    assert store.claim("s", "w", 60) is None


def test_end_job_records_the_worker_side_outcome_while_the_claim_holds(store: Store) -> None:
    store.enqueue("s", [_job(name) for name in "abc"], {"kind": "grid"})
    crashed, timed_out, stopped = (store.claim("s", "w", 60) for _ in range(3))
    crash_run = store.start_run({"job_id": crashed.claim.job_id})
    assert store.end_job(crashed.claim, FAILED, "killed by signal SIGSEGV") is True
    assert store.end_job(crashed.claim, FAILED, "again") is False
    assert store.get_run(crash_run)["status"] == FAILED and store.get_run(crash_run)["fail_trace"] == ["killed by signal SIGSEGV"]
    store.end_job(timed_out.claim, TIMEOUT, "timed out after 2 s")
    store.end_job(stopped.claim, QUEUED, "worker stopped")
    states = {job["id"]: (job["state"], job["error"]) for job in store.list_jobs()}
    assert states[crashed.claim.job_id] == (FAILED, "killed by signal SIGSEGV")
    assert states[timed_out.claim.job_id] == (TIMEOUT, "timed out after 2 s")
    assert states[stopped.claim.job_id][0] == QUEUED
    with pytest.raises(ValueError):
        store.end_job(stopped.claim, COMPLETED, "x")


def test_a_job_shows_its_run_from_the_start_and_a_failed_runs_last_error_line(store: Store) -> None:
    store.enqueue("s", [_job("a"), _job("b")], {"kind": "grid"})
    failing, timing_out = store.claim("s", "w", 60), store.claim("s", "w", 60)
    run_id = store.start_run({"job_id": failing.claim.job_id}, claim=failing.claim)
    assert [(job["state"], job["run_id"]) for job in store.list_jobs(job_ids=[failing.claim.job_id])] == [(RUNNING, run_id)]
    trace = ["Traceback (most recent call last):\n", '  File "task.py", line 3, in main\n', "ValueError: lr must be positive\n"]
    assert store.finish_run(run_id, FAILED, {"fail_trace": trace}, claim=failing.claim) is True
    [failed] = store.list_jobs(job_ids=[failing.claim.job_id])
    assert (failed["state"], failed["run_id"], failed["error"]) == (FAILED, run_id, "ValueError: lr must be positive")
    slow_run = store.start_run({"job_id": timing_out.claim.job_id}, claim=timing_out.claim)
    store.end_job(timing_out.claim, TIMEOUT, "timed out after 2 s")
    [timed_out] = store.list_jobs(job_ids=[timing_out.claim.job_id])
    assert (timed_out["state"], timed_out["run_id"], timed_out["error"]) == (TIMEOUT, slow_run, "timed out after 2 s")


def test_change_jobs_moves_only_jobs_in_the_given_states(store: Store) -> None:
    first = store.enqueue("s", [_job("a"), _job("b")], {"kind": "grid"})
    second = store.enqueue("s", [_job("c")], {"kind": "grid"})
    assert store.change_jobs([QUEUED], PAUSED, sweep_id=first.sweep_id) == 2
    assert store.claim("s", "w", 60).claim.job_id == second.enqueued[0], "paused jobs are not claimed"
    assert store.change_jobs([PAUSED], QUEUED, job_ids=[first.enqueued[0]]) == 1
    failed = store.claim("s", "w", 60)
    store.end_job(failed.claim, FAILED, "boom")
    assert store.change_jobs([FAILED], QUEUED) == 1
    [retried] = store.list_jobs(job_ids=[failed.claim.job_id])
    assert retried["state"] == QUEUED and retried["error"] is None and retried["attempts"] == 0
    assert store.get_sweep(first.sweep_id)["counts"] == {QUEUED: 1, PAUSED: 1}


def test_unknown_sweeps_raise(store: Store) -> None:
    with pytest.raises(JobNotFoundError, match="404"):
        store.get_sweep(404)


def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    with pytest.raises(HyperspaceError) as raised:
        open_store("postgresql://user:secret@127.0.0.1:1/nowhere")
    message = str(raised.value)
    assert message.startswith("cannot open store postgresql://user:***@127.0.0.1:1/nowhere") and "\n" not in message
    assert "secret" not in message


def test_add_jobs_succeeds_only_for_the_expected_count(store: Store) -> None:
    sweep_id = store.enqueue("s", [_job("a")], {"kind": "hpo"}).sweep_id
    assert store.add_jobs(sweep_id, [_job("b")], expected_jobs=0) is None, "the sweep already has one job"
    [added] = store.add_jobs(sweep_id, [_job("b")], expected_jobs=1)
    assert store.add_jobs(sweep_id, [_job("c")], expected_jobs=1) is None, "a second caller that read the same count loses"
    assert store.add_jobs(sweep_id, [_job("a")], expected_jobs=2) is not None, "no duplicate check"
    jobs = store.list_jobs(sweep_id=sweep_id)
    assert [job["overrides"] for job in jobs] == [["message=a"], ["message=b"], ["message=a"]] and jobs[1]["id"] == added
    assert {job["study"] for job in jobs} == {"s"} and {job["state"] for job in jobs} == {QUEUED}
    with pytest.raises(JobNotFoundError):
        store.add_jobs(404, [_job("x")], expected_jobs=0)


def test_server_time_is_a_naive_utc_time_and_leases_are_timed_on_it(store: Store) -> None:
    """Every server here runs on this machine, so its clock is this machine's (other clocks: tests/test_clock_skew.py)."""
    server = store.server_time()
    assert server.tzinfo is None and abs((server - dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)).total_seconds()) < 5
    store.enqueue("s", [_job("a")], {"kind": "grid"})
    store.claim("s", "w", 60)
    [job] = store.list_jobs()
    assert 55 < (job["lease_expires_at"] - server).total_seconds() < 65


def test_a_sweep_ends_once_and_then_gets_no_more_jobs(store: Store) -> None:
    grid = store.enqueue("s", [_job("a")], {"kind": "grid"}).sweep_id
    search = store.enqueue("s", [], {"kind": "search", "state": RUNNING}).sweep_id
    assert store.get_sweep(grid)["state"] is None and store.get_sweep(search)["state"] == RUNNING
    assert store.end_sweep(search, CANCELLED) is True
    assert store.end_sweep(search, "COMPLETED") is False, "a sweep ends once"
    assert store.get_sweep(search)["state"] == CANCELLED
    assert store.add_jobs(search, [_job("b")], expected_jobs=0) is None, "an ended sweep gets no more jobs"
    assert store.list_jobs(sweep_id=search) == []
    assert [sweep["state"] for sweep in store.list_sweeps()] == [None, CANCELLED]
    with pytest.raises(ValueError):
        store.end_sweep(grid, RUNNING)
    with pytest.raises(JobNotFoundError):
        store.end_sweep(404, CANCELLED)


def test_list_sweeps_counts_jobs_per_sweep(store: Store) -> None:
    first = store.enqueue("s", [_job("a"), _job("b")], {"kind": "grid"})
    store.enqueue("other", [_job("c")], {"kind": "search", "spec": {"n_trials": 3}})
    store.change_jobs([QUEUED], PAUSED, job_ids=[first.enqueued[0]])
    sweeps = store.list_sweeps()
    assert [(sweep["id"], sweep["study"], sweep["kind"]) for sweep in sweeps] == [(first.sweep_id, "s", "grid"), (first.sweep_id + 1, "other", "search")]
    assert sweeps[0]["counts"] == {PAUSED: 1, QUEUED: 1} and sweeps[1]["spec"] == {"n_trials": 3}
    assert [sweep["study"] for sweep in store.list_sweeps(study="other")] == ["other"]


def test_rewrite_config_replaces_config_hash_and_info_of_a_finished_run(store: Store) -> None:
    run_id = store.start_run({"config": {"a": 1}, "config_hash": "old", "info": {"x": 1}, "result": 0.5})
    store.finish_run(run_id, COMPLETED, {"objective": 0.5})
    store.rewrite_config(run_id, {"a": 1, "b": 2}, "new", {"x": 1, "backfill": [{"added": {"b": 2}}]})
    run = store.get_run(run_id)
    assert run["config"] == {"a": 1, "b": 2} and run["config_hash"] == "new" and run["info"]["backfill"] == [{"added": {"b": 2}}]
    assert run["status"] == COMPLETED and run["objective"] == 0.5
    with pytest.raises(RunNotFoundError):
        store.rewrite_config(404, {}, "h", {})


def test_rewrite_config_with_an_adoption_also_names_the_study_and_sets_task_choices_and_objective(store: Store) -> None:
    experiment = {"name": "legacy", "base_dir": "/old", "sources": [["main.py", "5f0c"]]}
    run_id = store.start_run({"experiment": experiment, "config": {"a": 1}, "task": None, "result": {"score": 2.0}})
    store.finish_run(run_id, COMPLETED, {})
    adoption = Adoption("study.run", "digits", {"model": "large"}, 2.0)
    store.rewrite_config(run_id, {"a": 1, "b": 2}, "new", {"sacred_id": 7}, adoption=adoption)
    run = store.get_run(run_id)
    assert run["experiment"] == {**experiment, "name": "study.run"}, "only the name of the experiment changes"
    assert (run["task"], run["choices"], run["objective"], run["config_hash"]) == ("digits", {"model": "large"}, 2.0, "new")
    assert run["status"] == COMPLETED and run["result"] == {"score": 2.0} and run["info"] == {"sacred_id": 7}
    with pytest.raises(RunNotFoundError):
        store.rewrite_config(404, {}, "h", {}, adoption=adoption)


def _recorded_elsewhere(**fields: Any) -> dict[str, Any]:
    return {
        "status": FAILED, "start_time": NOW, "heartbeat": NOW + dt.timedelta(seconds=9), "stop_time": NOW + dt.timedelta(seconds=10),
        "config": {"lr": 0.1}, "info": {"note": "kept", "metrics": [{"name": "stale", "id": "old"}]}, "fail_trace": ["Traceback", "boom"],
        "task": "t", **fields,
    }  # fmt: skip


SERIES = {
    "loss": {"steps": [0, 1, 2], "values": [1.0, 0.5, 0.25], "timestamps": [NOW, NOW, NOW + dt.timedelta(seconds=1)]},
    "acc": {"steps": [0], "values": [0.5], "timestamps": [NOW]},
}


def test_a_finished_run_is_written_whole_with_its_times_metrics_and_long_output(store: Store) -> None:
    output = "".join(f"line {index}\n" for index in range(150_000))  # over 1 MB: MongoDB keeps it in GridFS
    [run_id] = store.add_finished_runs([FinishedRun(_recorded_elsewhere(captured_out=output), SERIES)])
    run = store.get_run(run_id)
    assert run["status"] == FAILED and run["captured_out"] == output and run["fail_trace"] == ["Traceback", "boom"]
    assert (run["start_time"], run["heartbeat"], run["stop_time"]) == (NOW, NOW + dt.timedelta(seconds=9), NOW + dt.timedelta(seconds=10))
    assert run["info"]["note"] == "kept" and [entry["name"] for entry in run["info"]["metrics"]] == ["loss", "acc"]
    assert store.get_metrics(run_id) == dict(SERIES)
    assert store.start_run({}) > run_id


def test_a_finished_run_keeps_a_given_id_and_later_ids_are_higher(store: Store) -> None:
    first = store.start_run({})
    assert store.add_finished_runs([FinishedRun(_recorded_elsewhere(), SERIES, run_id=first + 1000)]) == [first + 1000]
    assert store.get_run(first + 1000)["config"] == {"lr": 0.1}
    assert store.start_run({}) > first + 1000
    with pytest.raises(HyperspaceError, match=f"run id {first + 1000} is taken"):
        store.add_finished_runs([FinishedRun(_recorded_elsewhere(config={"lr": 9}), {"x": {"steps": [0], "values": [1.0], "timestamps": [NOW]}}, run_id=first + 1000)])
    assert store.get_run(first + 1000)["config"] == {"lr": 0.1} and store.get_metrics(first + 1000) == dict(SERIES)


def test_a_finished_run_that_cannot_be_written_whole_leaves_nothing(store: Store) -> None:
    unstorable = {"loss": {"steps": [0, 2**70], "values": [1.0, 2.0], "timestamps": [NOW, NOW]}}  # no database takes a 70-bit step
    whole = FinishedRun(_recorded_elsewhere(), SERIES)
    for batch in ([FinishedRun(_recorded_elsewhere(), unstorable)], [whole, FinishedRun(_recorded_elsewhere(), unstorable, run_id=77)]):
        with pytest.raises((OverflowError, SQLAlchemyError)):
            store.add_finished_runs(batch)
    assert store.list_runs() == []
    with pytest.raises(RunNotFoundError):
        store.get_metrics(77)


def test_finished_runs_are_written_together_keeping_given_ids(store: Store) -> None:
    batch = [FinishedRun(_recorded_elsewhere(task=f"t{index}"), SERIES, run_id=10 + index) for index in range(3)]
    assert store.add_finished_runs(batch) == [10, 11, 12]
    assert [(run["_id"], run["task"]) for run in store.list_runs()] == [(10, "t0"), (11, "t1"), (12, "t2")]
    assert all(store.get_metrics(run_id) == dict(SERIES) for run_id in (10, 11, 12))
    mixed = store.add_finished_runs([FinishedRun(_recorded_elsewhere(task="new")), FinishedRun(_recorded_elsewhere(task="kept"), run_id=20)])
    assert mixed[1] == 20 and mixed[0] not in (10, 11, 12, 20) and store.get_run(mixed[0])["task"] == "new"
    with pytest.raises(ValueError, match="same id twice"):
        store.add_finished_runs([FinishedRun(_recorded_elsewhere(), run_id=30), FinishedRun(_recorded_elsewhere(), run_id=30)])
    with pytest.raises(HyperspaceError, match="run id 11 is taken"):
        store.add_finished_runs([FinishedRun(_recorded_elsewhere(), run_id=31), FinishedRun(_recorded_elsewhere(), run_id=11)])
    assert len(store.list_runs()) == 5


def test_a_finished_run_needs_a_final_status_known_fields_and_whole_series(store: Store) -> None:
    for document, metrics in (
        (_recorded_elsewhere(status=RUNNING), {}),
        (_recorded_elsewhere(colour="red"), {}),
        (_recorded_elsewhere(), {"loss": {"steps": [0, 1], "values": [1.0], "timestamps": [NOW]}}),
    ):
        with pytest.raises(ValueError):
            store.add_finished_runs([FinishedRun(document, metrics)])
    assert store.list_runs() == []


def test_a_store_opened_read_only_is_read_and_refuses_writes_where_the_backend_can(backend: Backend) -> None:
    with backend.open() as store:
        run_id = store.start_run({"task": "t"})
        store.add_metrics(run_id, [MetricPoint("loss", 0, 1.0, NOW)])
    with backend.open(read_only=True) as reader:
        assert reader.get_run(run_id)["task"] == "t" and [run["_id"] for run in reader.list_runs(sort="id")] == [run_id]
        assert reader.get_metrics(run_id)["loss"]["values"] == [1.0]
        if not backend.uri.startswith("mongodb"):  # MongoDB has no read-only connection
            with pytest.raises((HyperspaceError, SQLAlchemyError), match="(?i)read-?only"):
                reader.start_run({"task": "written"})
    with backend.open() as store:
        assert [run["task"] for run in store.list_runs()] == ["t"]


def test_a_database_that_is_no_store_is_not_made_one_when_opened_read_only(backend: Backend, tmp_path: Path) -> None:
    if backend.uri.startswith("sqlite"):
        with pytest.raises(StoreNotFoundError, match="^no store at sqlite:///.*nothing_here.db: "):
            open_store(f"sqlite:///{tmp_path}/nothing_here.db", read_only=True)
        assert not (tmp_path / "nothing_here.db").exists()
    elif backend.uri.startswith("postgresql"):
        with pytest.raises(StoreNotFoundError, match="^no store at postgresql://"):
            open_store(backend.uri, read_only=True)
    else:
        backend.database().runs.insert_one({"_id": 1, "status": COMPLETED})  # a run Sacred wrote
        with backend.open(read_only=True) as reader:
            assert [run["_id"] for run in reader.list_runs()] == [1]
        assert backend.database().list_collection_names() == ["runs"], "no store collection, counter or index created"


def test_run_pages_reads_every_matching_run_once_in_id_order(store: Store) -> None:
    ids = [store.start_run({"task": "t" if index % 3 else "other"}) for index in range(7)]
    pages = list(run_pages(store, [Condition("task", "=", "t")], ["task"], size=2))
    assert [[run["_id"] for run in page] for page in pages] == [[ids[1], ids[2]], [ids[4], ids[5]]]
    assert [len(page) for page in run_pages(store, size=3)] == [3, 3, 1]


# ---- sweeps and jobs written whole (store copy) ----------------------------------------------

ORIGIN = {"store": "sqlite:///elsewhere.db", "id": 7}


def _whole_sweep(**fields: Any) -> dict[str, Any]:
    spec = {"space": {"lr": "interval(0.001, 0.1)"}, "sampler": {"name": "tpe", "seed": 3}}
    return {"study": "s", "kind": "search", "command": "run.py lr=...", "spec": spec, "state": RUNNING, "created_at": NOW, "copied_from": ORIGIN, **fields}


def _whole_job(sweep_id: int, state: str = COMPLETED, **fields: Any) -> dict[str, Any]:
    return {
        "study": "s", "sweep_id": sweep_id, "overrides": ["lr=0.01"], "config": {"lr": 0.01}, "config_hash": f"hash-{state}",
        "state": state, "attempts": 1, "max_attempts": 3, "worker": "host:1", "token": "t0k3n", "lease_expires_at": NOW,
        "created_at": NOW, "claimed_at": NOW, "finished_at": NOW, "error": None, "run_id": None, "copied_from": ORIGIN, **fields,
    }  # fmt: skip


def test_whole_sweeps_keep_every_field_and_given_ids_and_later_ids_are_higher(store: Store) -> None:
    assert store.add_whole_sweeps([WholeRow(_whole_sweep(), row_id=40), WholeRow(_whole_sweep(kind="grid", state=None))])[0] == 40
    sweep = store.get_sweep(40)
    assert {key: sweep[key] for key in _whole_sweep()} == _whole_sweep() and sweep["counts"] == {}
    assert store.enqueue("s", [_job("a")], {"kind": "grid"}).sweep_id > 40
    with pytest.raises(HyperspaceError, match="sweep id 40 is taken"):
        store.add_whole_sweeps([WholeRow(_whole_sweep(), row_id=41), WholeRow(_whole_sweep(), row_id=40)])
    with pytest.raises(ValueError):
        store.add_whole_sweeps([WholeRow(_whole_sweep(colour="red"))])
    assert len(store.list_sweeps()) == 3


def test_whole_jobs_keep_their_fields_but_no_claim_and_queued_ones_are_claimed(store: Store) -> None:
    [sweep_id] = store.add_whole_sweeps([WholeRow(_whole_sweep())])
    done, queued = store.add_whole_jobs([WholeRow(_whole_job(sweep_id), row_id=50), WholeRow(_whole_job(sweep_id, QUEUED, attempts=0))])
    assert done == 50 and queued > 50
    job = store.list_jobs(job_ids=[50])[0]
    assert {key: job[key] for key in _whole_job(sweep_id)} == {**_whole_job(sweep_id), "token": None, "lease_expires_at": None}
    assert store.get_sweep(sweep_id)["counts"] == {COMPLETED: 1, QUEUED: 1}
    claimed = store.claim("s", "w", 60)
    assert claimed is not None and claimed.claim.job_id == queued and claimed.sweep_id == sweep_id
    assert store.add_jobs(sweep_id, [_job("next")], expected_jobs=2) is not None, "a copied search grows on"
    assert store.enqueue("s", [_job("b")], {"kind": "grid"}).enqueued[0] > queued


def test_whole_jobs_need_a_sweep_of_the_store_a_state_without_a_claim_and_free_ids(store: Store) -> None:
    [sweep_id] = store.add_whole_sweeps([WholeRow(_whole_sweep())])
    store.add_whole_jobs([WholeRow(_whole_job(sweep_id), row_id=5)])
    with pytest.raises(JobNotFoundError, match=f"no sweep with id {sweep_id + 1}"):
        store.add_whole_jobs([WholeRow(_whole_job(sweep_id), row_id=6), WholeRow(_whole_job(sweep_id + 1))])
    with pytest.raises(ValueError, match="RUNNING"):
        store.add_whole_jobs([WholeRow(_whole_job(sweep_id, RUNNING))])
    with pytest.raises(HyperspaceError, match="job id 5 is taken"):
        store.add_whole_jobs([WholeRow(_whole_job(sweep_id), row_id=5)])
    assert [job["id"] for job in store.list_jobs()] == [5]


def test_a_finished_run_that_is_its_jobs_run_becomes_the_jobs_run_id_in_the_same_write(store: Store) -> None:
    [sweep_id] = store.add_whole_sweeps([WholeRow(_whole_sweep())])
    [job_id] = store.add_whole_jobs([WholeRow(_whole_job(sweep_id))])
    died, completed = store.add_finished_runs([
        FinishedRun(_recorded_elsewhere(job_id=job_id, sweep_id=sweep_id, status=DIED)),
        FinishedRun(_recorded_elsewhere(job_id=job_id, sweep_id=sweep_id, status=COMPLETED), is_job_run=True),
    ])  # fmt: skip
    assert store.list_jobs(job_ids=[job_id])[0]["run_id"] == completed
    assert _ids(store, sweep_id=sweep_id) == [died, completed]
    with pytest.raises(ValueError, match="job_id"):
        store.add_finished_runs([FinishedRun(_recorded_elsewhere(), is_job_run=True)])


def test_job_pages_read_every_job_in_the_states_once_in_id_order(store: Store) -> None:
    enqueued = store.enqueue("s", [_job(str(index)) for index in range(7)], {"kind": "grid"}).enqueued
    store.change_jobs([QUEUED], PAUSED, job_ids=enqueued[:2])
    assert [[job["id"] for job in page] for page in job_pages(store, [QUEUED], size=2)] == [enqueued[2:4], enqueued[4:6], enqueued[6:]]
    assert [job["id"] for job in store.list_jobs(after_id=enqueued[0], limit=1)] == enqueued[1:2]
    assert store.list_jobs(limit=0) == []


# ---- the registry of workers ----------------------------------------------------------------

def _worker(name: str, study: str = "s", lease: float = 60) -> WorkerInfo:
    return WorkerInfo(name, study, "node-1", 4242, slurm_job="77", processes=2, lease_seconds=lease)


def _workers(store: Store, study: str | None = None) -> dict[str, tuple[str, list[int]]]:
    return {worker["name"]: (worker["state"], worker["job_ids"]) for worker in store.list_workers(study)}


def _move_worker_back(store: Store, name: str, seconds: float) -> None:
    """Set the worker's ``last_seen`` to the server's time ``seconds`` ago, as if it had been silent that long."""
    old = store.server_time() - dt.timedelta(seconds=seconds)
    if isinstance(store, MongoStore):
        store._db.workers.update_one({"_id": name}, {"$set": {"last_seen": old}})
        return
    with store._writer.begin() as connection:
        connection.execute(sql_schema.WORKERS.update().where(sql_schema.WORKERS.c.name == name).values(last_seen=old))


def test_a_registered_worker_is_idle_then_working_with_the_jobs_it_holds_then_stopped(store: Store) -> None:
    before = store.server_time()
    store.register_worker(_worker("w"))
    [worker] = store.list_workers()
    assert {key: worker[key] for key in ("name", "study", "host", "pid", "slurm_job", "processes", "lease_seconds", "state", "job_ids")} == {
        "name": "w", "study": "s", "host": "node-1", "pid": 4242, "slurm_job": "77", "processes": 2, "lease_seconds": 60, "state": IDLE, "job_ids": [],
    }  # fmt: skip
    assert worker["started_at"] == worker["last_seen"] and abs((worker["started_at"] - before).total_seconds()) < 2, "times from the server's clock"
    assert 0 <= worker["seen_seconds_ago"] < 2
    store.enqueue("s", [_job("a"), _job("b")], {"kind": "grid"})
    first, second = store.claim("s", "w", 60), store.claim("s", "w", 60)
    assert _workers(store) == {"w": (WORKING, [first.claim.job_id, second.claim.job_id])}, "working from its claims on, before any beat"
    store.change_jobs([RUNNING], CANCELLED, job_ids=[second.claim.job_id])
    assert store.renew_leases([first.claim, second.claim], 60, WorkerBeat("w")) == {second.claim.job_id}
    assert _workers(store) == {"w": (WORKING, [first.claim.job_id])}, "only the jobs whose claim held"
    store.renew_leases([first.claim], 60, WorkerBeat("w", stopping=True))
    assert _workers(store) == {"w": (STOPPING, [first.claim.job_id])}
    store.renew_leases([], 60, WorkerBeat("w"))
    assert _workers(store) == {"w": (IDLE, [])}, "an idle worker's beat renews no lease"
    store.worker_stopped("w")
    assert _workers(store) == {"w": (STOPPED, [])}
    store.renew_leases([], 60, WorkerBeat("never-registered"))
    store.worker_stopped("never-registered")
    assert list(_workers(store)) == ["w"], "a beat adds no worker"


def test_a_silent_worker_is_gone_after_two_of_its_leases_by_the_servers_clock(store: Store) -> None:
    for name in ("silent", "short-silence", "stopped"):
        store.register_worker(_worker(name, lease=10))
    _move_worker_back(store, "silent", WORKER_GONE_LEASES * 10 + 1)
    _move_worker_back(store, "short-silence", WORKER_GONE_LEASES * 10 - 5)
    store.worker_stopped("stopped")
    _move_worker_back(store, "stopped", 3600)
    assert _workers(store) == {"silent": (GONE, []), "short-silence": (IDLE, []), "stopped": (STOPPED, [])}
    assert [worker["seen_seconds_ago"] // 1 for worker in store.list_workers() if worker["name"] == "silent"] == [21]
    store.renew_leases([], 10, WorkerBeat("silent"))
    assert _workers(store)["silent"] == (IDLE, []), "a worker that speaks again is back"


def test_old_stopped_and_gone_workers_are_deleted_when_a_worker_registers(store: Store) -> None:
    for name in ("old-stopped", "old-gone", "recent-stopped", "live-long-lease"):
        store.register_worker(_worker(name, lease=60 if name != "live-long-lease" else 2 * WORKER_KEPT_SECONDS))
    store.worker_stopped("old-stopped")
    store.worker_stopped("recent-stopped")
    for name in ("old-stopped", "old-gone", "live-long-lease"):
        _move_worker_back(store, name, WORKER_KEPT_SECONDS + 60)
    store.register_worker(_worker("new"))
    assert _workers(store) == {"new": (IDLE, []), "live-long-lease": (IDLE, []), "recent-stopped": (STOPPED, [])}


def test_list_workers_gives_the_newest_first_and_selects_a_study(store: Store) -> None:
    store.register_worker(_worker("first"))
    store.register_worker(_worker("second", study="other"))
    _move_worker_back(store, "first", 5)  # started_at stays: only last_seen moves
    with_started = {worker["name"]: worker["started_at"] for worker in store.list_workers()}
    expected = sorted(with_started, key=lambda name: (-with_started[name].timestamp(), name))
    assert [worker["name"] for worker in store.list_workers()] == expected
    assert list(_workers(store, study="other")) == ["second"]
    store.register_worker(_worker("first"))
    assert len(store.list_workers()) == 2, "registering again starts the row afresh"
