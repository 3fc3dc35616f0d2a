"""What the MongoDB store adds to the contract: Sacred's document shapes, long outputs in GridFS, clear errors."""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pymongo.errors import AutoReconnect, DuplicateKeyError, OperationFailure, PyMongoError, WriteError
from test_store_contract import MONGO_BACKENDS, NOW, Backend, make_backend

from hyperspace_hydra import HyperspaceError
from hyperspace_hydra.observer import StoreObserver
from hyperspace_hydra.store import COMPLETED, PAUSED, RUNNING, NewJob, Store, open_store
from hyperspace_hydra.store.base import FinishedRun
from hyperspace_hydra.store.mongo import CAPTURED_OUT_BUCKET, CAPTURED_OUT_TAIL_CHARS, MongoStore
from hyperspace_hydra.store.retry import StoreUnavailableError

SACRED_RUN_FIELDS = (
    "experiment", "command", "host", "start_time", "heartbeat", "stop_time", "status", "config",
    "result", "info", "captured_out", "fail_trace", "meta", "artifacts", "resources", "format",
)  # fmt: skip


@pytest.fixture(params=MONGO_BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A new, empty MongoDB store: on mongomock, and on a real server when one is configured."""
    yield from make_backend(request.param, request, tmp_path)


def _record_a_run(store: Store) -> int:
    """Record a run the way a study does: start, two batches of metric points, heartbeats, completion."""
    observer = StoreObserver(store, {"task": "t", "config_hash": "h"}, objective_of=lambda result: result)
    run_id = observer.started_event({"name": "study"}, "main", {"hostname": "h"}, NOW, {"lr": 0.1}, {}, None)
    later = NOW + dt.timedelta(seconds=10)
    observer.log_metrics({"loss": {"steps": [0, 1], "values": [1.0, 0.5], "timestamps": [NOW, NOW]}}, {})
    observer.heartbeat_event({}, "epoch 1\n", NOW, None)
    observer.log_metrics(
        {"loss": {"steps": [2], "values": [0.2], "timestamps": [later]}, "acc": {"steps": [0], "values": [0.9], "timestamps": [later]}}, {}
    )
    observer.heartbeat_event({}, "epoch 1\nepoch 2\n", later, None)
    observer.completed_event(later, 0.2)
    return run_id


def test_runs_and_metrics_are_stored_as_sacred_writes_them(store: Store, backend: Backend) -> None:
    run_id = _record_a_run(store)
    database = backend.database()
    run = database.runs.find_one({"_id": run_id})
    assert type(run["_id"]) is int and set(SACRED_RUN_FIELDS) <= set(run)
    assert run["status"] == COMPLETED and run["config"] == {"lr": 0.1}
    assert abs((run["heartbeat"] - store.server_time()).total_seconds()) < 5, "heartbeats are stamped with the server's time"
    loss = database.metrics.find_one({"run_id": run_id, "name": "loss"})
    assert type(loss["run_id"]) is int
    assert (loss["steps"], loss["values"]) == ([0, 1, 2], [1.0, 0.5, 0.2]), "later points are appended to the same document"
    assert database.metrics.count_documents({"run_id": run_id}) == 2
    acc = database.metrics.find_one({"run_id": run_id, "name": "acc"})
    expected = [{"name": "loss", "id": str(loss["_id"])}, {"name": "acc", "id": str(acc["_id"])}]
    assert run["info"]["metrics"] == expected, "info.metrics points at the metrics documents, as in Sacred"
    assert store.get_run(run_id)["info"]["metrics"] == expected


def test_run_ids_continue_after_runs_already_in_the_database(backend: Backend) -> None:
    backend.database().runs.insert_one({"_id": 41, "status": COMPLETED, "experiment": {"name": "from sacred"}})
    with backend.open() as store:
        assert store.start_run({}) == 42
        assert [run["_id"] for run in store.list_runs()] == [41, 42]


def test_jobs_and_sweeps_have_integer_ids_and_the_indexes_claims_use(store: Store, backend: Backend) -> None:
    result = store.enqueue("s", [NewJob(["x=1"], {"x": 1}, "hash-1")], {"kind": "grid"})
    database = backend.database()
    assert database.sweeps.find_one({"_id": result.sweep_id})["study"] == "s"
    assert type(database.jobs.find_one({"_id": result.enqueued[0]})["_id"]) is int
    claim_order = [("study", 1), ("state", 1), ("priority", -1), ("_id", 1)]
    assert claim_order in [index["key"] for index in database.jobs.index_information().values()]


def test_an_enqueue_whose_inserts_fail_halfway_is_taken_back(store: Store, backend: Backend) -> None:
    backend.database().jobs.insert_one({"_id": 2, "study": "foreign", "state": PAUSED})  # the id the second new job will get
    with pytest.raises(PyMongoError, match="uplicate"):
        store.enqueue("s", [NewJob([f"x={n}"], {"x": n}, f"hash-{n}") for n in range(3)], {"kind": "grid"})
    assert store.list_jobs(study="s") == [] and backend.database().sweeps.count_documents({}) == 0


def test_a_finish_that_lost_the_server_after_ending_its_job_completes_when_repeated(
    store: MongoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.enqueue("s", [NewJob(["x=1"], {"x": 1}, "hash-1")], {"kind": "grid"})
    job = store.claim("s", "w", 60)
    run_id = store.start_run({"job_id": job.claim.job_id})
    with monkeypatch.context() as patched:
        patched.setattr(store, "_finish_run_document", _raise(AutoReconnect("connection closed")))
        with pytest.raises(StoreUnavailableError):
            store.finish_run(run_id, COMPLETED, {"result": 1.0}, claim=job.claim)
    assert store.get_run(run_id)["status"] == RUNNING and store.list_jobs()[0]["state"] == COMPLETED
    assert store.finish_run(run_id, COMPLETED, {"result": 1.0}, claim=job.claim) is True, "what a retrying caller does"
    assert store.get_run(run_id)["status"] == COMPLETED and store.list_jobs()[0]["run_id"] == run_id


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (WriteError("Out of disk space", code=14031), True),
        (OperationFailure("node is not in primary or recovering state", code=13436), True),
        (OperationFailure("interrupted at shutdown", code=11600), True),
        (OperationFailure("a write that may be retried", code=1, details={"errorLabels": ["RetryableWriteError"]}), True),
        (OperationFailure("unknown operator: $bad", code=2), False),
        (DuplicateKeyError("E11000 duplicate key", code=11000), False),
    ],
)
def test_a_server_that_cannot_serve_now_is_unavailable_and_a_bad_request_is_not(
    store: MongoStore, monkeypatch: pytest.MonkeyPatch, error: PyMongoError, unavailable: bool
) -> None:
    run_id = store.start_run({})
    monkeypatch.setattr(store, "_write_run", _raise(error))
    expected = StoreUnavailableError if unavailable else type(error)
    with pytest.raises(expected):  # unavailable: RetryingStore waits it out (tests/test_store_retry.py)
        store.update_run(run_id, {"captured_out": "x"})


def _raise(error: Exception) -> Callable[..., None]:
    def raising(*_args: object) -> None:
        raise error

    return raising


def test_a_long_captured_output_keeps_its_tail_in_the_run_and_all_of_it_in_gridfs(store: Store, backend: Backend) -> None:
    run_id = store.start_run({})
    files = backend.database()[f"{CAPTURED_OUT_BUCKET}.files"]
    for size in (CAPTURED_OUT_TAIL_CHARS + 10, CAPTURED_OUT_TAIL_CHARS + 20):
        text = (string.ascii_lowercase * (size // 26 + 1))[:size]
        store.update_run(run_id, {"captured_out": text})
        assert backend.database().runs.find_one({"_id": run_id})["captured_out"] == text[-CAPTURED_OUT_TAIL_CHARS:]
        assert [file["filename"] for file in files.find()] == [str(run_id)], "each update replaces the run's file"
        assert store.get_run(run_id)["captured_out"] == text
        assert store.list_runs()[0]["captured_out"] == text
    store.finish_run(run_id, COMPLETED, {"captured_out": "short again"})
    store.update_run(run_id, {"captured_out": "x" * (CAPTURED_OUT_TAIL_CHARS + 1)})
    assert store.get_run(run_id)["captured_out"] == "short again", "a late heartbeat changes nothing"
    assert files.count_documents({}) == 0, "neither the replaced file nor the late one is left behind"


def test_a_uri_without_a_database_name_is_refused_with_one_line() -> None:
    for uri in (
        "mongodb://user:secret@localhost:27017",
        "mongodb://user:secret@localhost:27017/?tls=false",
        "mongodb+srv://user:secret@cluster.example.com",
    ):
        with pytest.raises(HyperspaceError, match="no database name") as raised:
            open_store(uri)
        assert "\n" not in str(raised.value) and "secret" not in str(raised.value)


def test_an_unreachable_server_is_one_line_without_the_password() -> None:
    with pytest.raises(StoreUnavailableError) as raised:
        open_store("mongodb://user:secret@127.0.0.1:1/db?serverSelectionTimeoutMS=300")
    message = str(raised.value)
    assert message.startswith("cannot open store mongodb://user:***@127.0.0.1:1/db") and "Connection refused" in message
    assert "\n" not in message and "secret" not in message and "Topology" not in message


def test_a_finished_run_whose_document_cannot_be_inserted_leaves_no_metrics_or_output_file(store: Store, backend: Backend) -> None:
    database = backend.database()
    database.runs.insert_one({"_id": 6, "status": COMPLETED})  # a run Sacred wrote: the second new run's id collides
    database.counters.update_one({"_id": "runs"}, {"$set": {"seq": 4}})
    series = {"loss": {"steps": [0, 1], "values": [1.0, 0.5], "timestamps": [NOW, NOW]}}
    document = {"status": COMPLETED, "captured_out": "x" * (CAPTURED_OUT_TAIL_CHARS + 1)}
    with pytest.raises(PyMongoError, match="uplicate"):
        store.add_finished_runs([FinishedRun(document, series), FinishedRun(document, series)])
    assert database.metrics.count_documents({}) == 0 and database[f"{CAPTURED_OUT_BUCKET}.files"].count_documents({}) == 0
    assert [run["_id"] for run in database.runs.find()] == [6], "the first new run, inserted before the failure, is taken back"
    [run_id] = store.add_finished_runs([FinishedRun(document, series)])
    assert run_id == 7 and store.get_metrics(run_id) == series and store.get_run(run_id)["captured_out"] == document["captured_out"]
    loss = database.metrics.find_one({"run_id": run_id})
    assert database.runs.find_one({"_id": run_id})["info"]["metrics"] == [{"name": "loss", "id": str(loss["_id"])}]
