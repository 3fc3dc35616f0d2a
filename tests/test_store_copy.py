"""``hyperspace store copy``: finished runs with their metrics and output, between real SQLite and PostgreSQL stores."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import HYPERSPACE, clean_env, hyperspace, wait_until
from test_store_contract import MONGO_SERVER_ENV, Backend, make_backend

from hyperspace_hydra.settings import redact_credentials
from hyperspace_hydra.store import COMPLETED, FAILED, INTERRUPTED, MetricPoint, Store, open_store
from hyperspace_hydra.store.base import FinishedRun
from hyperspace_hydra.store.mongo import CAPTURED_OUT_TAIL_CHARS
from hyperspace_hydra.store_copy import PAGE_RUNS, copy_store

NOW = dt.datetime(2026, 11, 1, 12, 0, 0, 123000)  # milliseconds: what MongoDB keeps
LONG_OUTPUT = "".join(f"step {index}\n" for index in range(50_000))
SHORT_OUTPUT = "a few lines\nof output\n"
RUNS_TO_INTERRUPT = 3000


def _record(store: Store, status: str | None, index: int, output: str = LONG_OUTPUT, **fields: Any) -> int:
    """A run as the recording callback writes one: started, metric points, finished with ``status`` (None: still RUNNING)."""
    document = {"task": "t", "config": {"lr": index / 10, "model": {"_target_": "m.M", "depth": index}}, "config_hash": f"hash-{index}"}
    run_id = store.start_run({**document, "start_time": NOW, "info": {"note": index, "metrics": [{"name": "loss"}]}, **fields})
    store.add_metrics(run_id, [MetricPoint("loss", step, 1.0 / (step + 1), NOW + dt.timedelta(seconds=step)) for step in range(index + 1)])
    if status is not None:
        store.finish_run(run_id, status, {"stop_time": NOW + dt.timedelta(seconds=5), "result": index, "objective": float(index), "captured_out": output})
    return run_id


def _without_copied_from(run: dict[str, Any]) -> dict[str, Any]:
    info = {key: value for key, value in run["info"].items() if key != "copied_from"}
    return {key: value for key, value in run.items() if key not in ("_id", "info", "job_id", "sweep_id")} | {"info": info}


def _copy(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    copied = hyperspace(cwd, "store", "copy", *args)
    assert copied.returncode == 0, copied.stderr
    return copied


def test_runs_go_sqlite_to_postgresql_to_sqlite_with_ids_metrics_and_output_and_a_rerun_copies_nothing(tmp_path: Path, postgres_uri: str) -> None:
    source_uri, back_uri = f"sqlite:///{tmp_path}/source.db", f"sqlite:///{tmp_path}/back.db"
    with open_store(source_uri) as source:
        completed, failed, interrupted = (_record(source, status, index) for index, status in enumerate((COMPLETED, FAILED, INTERRUPTED)))
        running = _record(source, None, 3)
        originals = {run_id: source.get_run(run_id) for run_id in (completed, failed, interrupted)}
        metrics = {run_id: source.get_metrics(run_id) for run_id in originals}

    source_bytes = (tmp_path / "source.db").read_bytes()
    assert not (tmp_path / "source.db-wal").exists(), "all of the source is in its file"
    first = _copy(tmp_path, source_uri, postgres_uri)
    assert (tmp_path / "source.db").read_bytes() == source_bytes, "the source is only read"
    assert not (tmp_path / "source.db-wal").exists() or not (tmp_path / "source.db-wal").read_bytes(), "nothing written to its log either"
    assert "3 run(s) copied (ids kept), 0 copied before" in first.stdout
    assert f"not finished, not copied (copy again once they end): run(s) {running}" in first.stdout
    assert "source:      1 completed, 1 failed, 1 interrupted; config hashes sha256 " in first.stdout
    checksums = {line.split("sha256 ")[1] for line in first.stdout.splitlines() if "sha256" in line}
    assert len(checksums) == 1, "the copies' checksum is the source's"
    assert "0 run(s) copied (ids kept), 3 copied before" in _copy(tmp_path, source_uri, postgres_uri).stdout

    _copy(tmp_path, postgres_uri, back_uri)
    for uri, origin in ((postgres_uri, source_uri), (back_uri, postgres_uri)):
        with open_store(uri) as copy:
            assert [run["_id"] for run in copy.list_runs()] == sorted(originals)
            for run_id, original in originals.items():
                run = copy.get_run(run_id)
                assert _without_copied_from(run) == _without_copied_from(original) and run["captured_out"] == LONG_OUTPUT
                assert run["info"]["copied_from"] == {"store": redact_credentials(origin), "id": run_id, "job_id": None, "sweep_id": None}
                assert copy.get_metrics(run_id) == metrics[run_id]


def test_into_a_store_with_runs_of_its_own_copies_get_new_ids_and_name_their_original(tmp_path: Path) -> None:
    source_uri, destination_uri = f"sqlite:///{tmp_path}/source.db", f"sqlite:///{tmp_path}/destination.db"
    with open_store(source_uri) as source:
        originals = [_record(source, COMPLETED, index, job_id=None) for index in range(3)]
    with open_store(destination_uri) as destination:
        own = _record(destination, COMPLETED, 9)
    copied = _copy(tmp_path, source_uri, destination_uri, "--where", "lr>0")
    assert "2 run(s) copied (new ids), 0 copied before" in copied.stdout and "source:      2 completed" in copied.stdout
    with open_store(destination_uri) as destination:
        copies = [run for run in destination.list_runs() if run["_id"] != own]
        assert [run["info"]["copied_from"]["id"] for run in copies] == originals[1:] and all(run["_id"] > own for run in copies)
        assert [run["config"]["lr"] for run in copies] == [0.1, 0.2]
    assert "0 run(s) copied (new ids), 2 copied before" in _copy(tmp_path, source_uri, destination_uri, "--where", "lr>0").stdout


def test_a_copy_stopped_by_ctrl_c_leaves_whole_runs_and_a_rerun_ends_equal_to_an_uninterrupted_copy(tmp_path: Path) -> None:
    source_uri = f"sqlite:///{tmp_path}/source.db"
    with open_store(source_uri) as source:
        one = _record(source, COMPLETED, 3, output=SHORT_OUTPUT)
        document = {name: value for name, value in source.get_run(one).items() if name != "_id"}
        for start in range(1, RUNS_TO_INTERRUPT, 500):  # the other runs are its copies, written fast
            source.add_finished_runs([FinishedRun(document, source.get_metrics(one))] * min(500, RUNS_TO_INTERRUPT - start))
        assert len(source.list_runs(fields=[])) == RUNS_TO_INTERRUPT
    interrupted_uri, calm_uri = f"sqlite:///{tmp_path}/interrupted.db", f"sqlite:///{tmp_path}/calm.db"
    copying = subprocess.Popen([str(HYPERSPACE), "store", "copy", source_uri, interrupted_uri], cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with open_store(interrupted_uri) as partial:
        wait_until(lambda: partial.list_runs(1, fields=[]), what="the first copies")
    os.kill(copying.pid, signal.SIGINT)
    _stdout, stderr = copying.communicate(timeout=60)
    assert copying.returncode == 130 and stderr.strip().splitlines()[-1] == "error: interrupted (Ctrl-C)"
    with open_store(interrupted_uri) as partial:
        stopped_at = partial.list_runs(fields=[])
        assert PAGE_RUNS <= len(stopped_at) < RUNS_TO_INTERRUPT, "stopped part way"
        assert all(partial.get_metrics(run["_id"]) and partial.get_run(run["_id"])["captured_out"] == SHORT_OUTPUT for run in stopped_at)
    resumed = _copy(tmp_path, source_uri, interrupted_uri)
    assert f"{RUNS_TO_INTERRUPT - len(stopped_at)} run(s) copied (ids kept), {len(stopped_at)} copied before" in resumed.stdout
    _copy(tmp_path, source_uri, calm_uri)
    with open_store(interrupted_uri) as resumed_copy, open_store(calm_uri) as calm_copy:
        resumed_runs, calm_runs = resumed_copy.list_runs(), calm_copy.list_runs()
        assert [_without_copied_from(run) for run in resumed_runs] == [_without_copied_from(run) for run in calm_runs]
        assert [run["_id"] for run in resumed_runs] == [run["_id"] for run in calm_runs] and len(calm_runs) == RUNS_TO_INTERRUPT
        assert all(resumed_copy.get_metrics(run["_id"]) == calm_copy.get_metrics(run["_id"]) for run in calm_runs[::97])


def test_a_missing_source_or_the_same_store_is_one_error_line(tmp_path: Path) -> None:
    missing = hyperspace(tmp_path, "store", "copy", f"sqlite:///{tmp_path}/typo.db", f"sqlite:///{tmp_path}/new.db")
    assert missing.returncode == 2 and missing.stderr == f"error: cannot open store sqlite:///{tmp_path}/typo.db: unable to open database file\n"
    assert not (tmp_path / "typo.db").exists()
    open_store(f"sqlite:///{tmp_path}/s.db").close()
    same = hyperspace(tmp_path, "store", "copy", f"sqlite:///{tmp_path}/s.db", f"sqlite:///{tmp_path}/s.db")
    assert same.returncode == 2 and same.stderr == f"error: source and destination are the same store (sqlite:///{tmp_path}/s.db)\n"


@pytest.fixture(params=["mongomock", "mongodb"])
def mongo_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """An empty MongoDB store: on mongomock, and on a real server when one is configured."""
    if request.param == "mongodb" and not os.environ.get(MONGO_SERVER_ENV):
        pytest.skip(f"no MongoDB server: set {MONGO_SERVER_ENV}=mongodb://host/db to copy through a real one")
    yield from make_backend(request.param, request, tmp_path)


def test_a_round_trip_sqlite_postgresql_mongodb_sqlite_gives_equal_runs(tmp_path: Path, postgres_uri: str, mongo_backend: Backend) -> None:
    gridfs_output = "x" * (CAPTURED_OUT_TAIL_CHARS + 5)  # MongoDB keeps it in GridFS
    with open_store(f"sqlite:///{tmp_path}/source.db") as source:
        for index, status in enumerate((COMPLETED, FAILED, COMPLETED)):
            _record(source, status, index, output=gridfs_output if index == 2 else LONG_OUTPUT)
        originals = {run["_id"]: (run, source.get_metrics(run["_id"])) for run in source.list_runs()}
        with open_store(postgres_uri) as postgres, mongo_backend.open() as mongo, open_store(f"sqlite:///{tmp_path}/back.db") as back:
            for hop_source, hop_destination in ((source, postgres), (postgres, mongo), (mongo, back)):
                report = copy_store(hop_source, hop_destination)
                assert (report.copied, report.ids_kept, report.verified) == (3, True, True)
            for run_id, (original, metrics) in originals.items():
                heartbeat = original["heartbeat"]  # the store's clock, to the microsecond: MongoDB keeps milliseconds
                original = {**original, "heartbeat": heartbeat.replace(microsecond=heartbeat.microsecond // 1000 * 1000)}
                assert _without_copied_from(back.get_run(run_id)) == _without_copied_from(original)
                assert back.get_metrics(run_id) == metrics
            assert mongo.get_run(3)["captured_out"] == gridfs_output
            assert mongo_backend.database()["captured_out.files"].count_documents({}) == 1


def test_a_run_the_destination_refuses_stops_the_copy_naming_it_and_a_rerun_goes_on(tmp_path: Path, postgres_uri: str) -> None:
    source_uri = f"sqlite:///{tmp_path}/source.db"
    with open_store(source_uri) as source:
        first, refused, last = (_record(source, COMPLETED, index, output=SHORT_OUTPUT, command="x" * (300 if index == 1 else 4)) for index in range(3))
    stopped = hyperspace(tmp_path, "store", "copy", source_uri, postgres_uri)
    assert stopped.returncode == 2 and stopped.stderr.count("\n") == 1, stopped.stdout + stopped.stderr
    assert stopped.stderr.startswith(f"error: run {refused} of {source_uri} not copied: StringDataRightTruncation: value too long"), stopped.stderr
    with open_store(postgres_uri) as destination:
        assert [run["_id"] for run in destination.list_runs()] == [first], ("the runs before it are copied, whole", stopped.stdout)
    with sqlite3.connect(tmp_path / "source.db") as fixing:  # PostgreSQL keeps commands of up to 256 characters
        fixing.execute("UPDATE runs SET command = 'main' WHERE id = ?", (refused,))
    resumed = _copy(tmp_path, source_uri, postgres_uri)
    assert "2 run(s) copied (ids kept), 1 copied before" in resumed.stdout, resumed.stdout
    with open_store(postgres_uri) as destination:
        assert [run["_id"] for run in destination.list_runs()] == [first, refused, last]


def test_a_source_of_an_older_schema_is_refused_not_upgraded(tmp_path: Path) -> None:
    source_uri = f"sqlite:///{tmp_path}/old.db"
    open_store(source_uri).close()
    with sqlite3.connect(tmp_path / "old.db") as older:
        older.execute("UPDATE store_meta SET value = '1' WHERE key = 'schema_version'")
    refused = hyperspace(tmp_path, "store", "copy", source_uri, f"sqlite:///{tmp_path}/new.db")
    assert refused.returncode == 2 and "has schema version 1, older than this hyperspace_hydra's 3, and is opened only to be read" in refused.stderr
    with sqlite3.connect(tmp_path / "old.db") as older:
        assert older.execute("SELECT value FROM store_meta WHERE key = 'schema_version'").fetchone() == ("1",)
