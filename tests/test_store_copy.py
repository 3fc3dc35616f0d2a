"""``hyperspace store copy``: sweeps, jobs and finished runs with their metrics and output, between real SQLite, PostgreSQL and MongoDB (mongomock) stores."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any, cast

import fork_server
import pytest
from conftest import HYPERSPACE, clean_env, hyperspace, run_worker, submit, wait_until
from test_store_contract import MONGO_SERVER_ENV, Backend, make_backend

from hyperspace_hydra import store_copy
from hyperspace_hydra.settings import redact_credentials
from hyperspace_hydra.store import (
    CANCELLED,
    COMPLETED,
    FAILED,
    INTERRUPTED,
    PAUSED,
    QUEUED,
    RUNNING,
    MetricPoint,
    NewJob,
    Store,
    open_store,
)
from hyperspace_hydra.store.base import Condition, FinishedRun
from hyperspace_hydra.store.mongo import CAPTURED_OUT_TAIL_CHARS
from hyperspace_hydra.store_copy import PAGE_RUNS, IdMap, RunTally, copy_store

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
        grid = source.enqueue("study", [NewJob([f"i={index}"], {"i": index}, f"i-{index}") for index in range(1, RUNS_TO_INTERRUPT)], {"kind": "grid"})
        source.change_jobs([QUEUED], COMPLETED)
        for start in range(0, RUNS_TO_INTERRUPT - 1, 500):  # the other runs are its copies, each the run of a job, written fast
            of_jobs = [{**document, "job_id": job_id, "sweep_id": grid.sweep_id} for job_id in grid.enqueued[start : start + 500]]
            source.add_finished_runs([FinishedRun(run, source.get_metrics(one), is_job_run=True) for run in of_jobs])
        assert len(source.list_runs(fields=[])) == RUNS_TO_INTERRUPT
    interrupted_uri, calm_uri = f"sqlite:///{tmp_path}/interrupted.db", f"sqlite:///{tmp_path}/calm.db"
    copying = fork_server.popen([str(HYPERSPACE), "store", "copy", source_uri, interrupted_uri], cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with open_store(interrupted_uri) as partial:
        wait_until(lambda: partial.list_runs(1, fields=[]), what="the first copies")
    os.kill(copying.pid, signal.SIGINT)
    _stdout, stderr = copying.communicate(timeout=60)
    assert copying.returncode == 130 and stderr.strip().splitlines()[-1] == "error: interrupted (Ctrl-C)"
    with open_store(interrupted_uri) as partial:
        stopped_at = partial.list_runs(fields=[])
        assert PAGE_RUNS <= len(stopped_at) < RUNS_TO_INTERRUPT, "stopped part way"
        assert all(partial.get_metrics(run["_id"]) and partial.get_run(run["_id"])["captured_out"] == SHORT_OUTPUT for run in stopped_at)
        jobs, sweep_ids = {job["id"]: job for job in partial.list_jobs()}, {sweep["id"] for sweep in partial.list_sweeps()}
        run_ids = {run["_id"] for run in stopped_at}
        assert all(run["job_id"] in jobs and run["sweep_id"] in sweep_ids for run in partial.list_runs(fields=["job_id", "sweep_id"]) if run["job_id"])
        assert all(job["run_id"] is None or job["run_id"] in run_ids for job in jobs.values()), "nothing points at what is not copied yet"
    resumed = _copy(tmp_path, source_uri, interrupted_uri)
    assert f"{RUNS_TO_INTERRUPT - len(stopped_at)} run(s) copied (ids kept), {len(stopped_at)} copied before" in resumed.stdout
    _copy(tmp_path, source_uri, calm_uri)
    with open_store(interrupted_uri) as resumed_copy, open_store(calm_uri) as calm_copy:
        resumed_runs, calm_runs = resumed_copy.list_runs(), calm_copy.list_runs()
        assert [_without_copied_from(run) for run in resumed_runs] == [_without_copied_from(run) for run in calm_runs]
        assert [run["_id"] for run in resumed_runs] == [run["_id"] for run in calm_runs] and len(calm_runs) == RUNS_TO_INTERRUPT
        assert all(resumed_copy.get_metrics(run["_id"]) == calm_copy.get_metrics(run["_id"]) for run in calm_runs[::97])
        assert [(run["job_id"], run["sweep_id"]) for run in resumed_runs] == [(run["job_id"], run["sweep_id"]) for run in calm_runs]
        assert resumed_copy.list_jobs() == calm_copy.list_jobs() and len(calm_copy.list_jobs()) == RUNS_TO_INTERRUPT - 1
        assert resumed_copy.list_sweeps() == calm_copy.list_sweeps()
        assert all(job["run_id"] is not None for job in calm_copy.list_jobs())


def test_a_missing_source_or_the_same_store_is_one_error_line(tmp_path: Path) -> None:
    missing = hyperspace(tmp_path, "store", "copy", f"sqlite:///{tmp_path}/typo.db", f"sqlite:///{tmp_path}/new.db")
    assert missing.returncode == 2 and missing.stderr.startswith(f"error: no store at sqlite:///{tmp_path}/typo.db: nothing was recorded there yet")
    assert not (tmp_path / "typo.db").exists()
    open_store(f"sqlite:///{tmp_path}/s.db").close()
    for destination in (f"sqlite:///{tmp_path}/s.db", "sqlite:///s.db", f"sqlite:///{tmp_path}/sub/../s.db"):
        same = hyperspace(tmp_path, "store", "copy", "sqlite:///s.db", destination)
        assert same.returncode == 2 and same.stderr == f"error: source and destination are the same store (sqlite:///{tmp_path}/s.db)\n", destination
        assert "copying" not in same.stdout + same.stderr, "refused before anything starts"


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
    assert refused.returncode == 2 and "has schema version 1, older than this hyperspace_hydra's 4, and is opened only to be read" in refused.stderr
    with sqlite3.connect(tmp_path / "old.db") as older:
        assert older.execute("SELECT value FROM store_meta WHERE key = 'schema_version'").fetchone() == ("1",)


# ---- sweeps and jobs ------------------------------------------------------------------------

SPEC = {"space": {"lr": "interval(0.001, 0.1)"}, "sampler": {"name": "tpe", "seed": 3}, "budget": 5}


def _run_job(store: Store, status: str) -> int:
    """Claim the next job of the study and end it by a run with ``status``, as a worker does; return the run's id."""
    claimed = store.claim("study", "worker-1", 60)
    assert claimed is not None
    document = {"task": "t", "config": {"job": claimed.claim.job_id}, "config_hash": f"job-{claimed.claim.job_id}", "start_time": NOW}
    run_id = store.start_run({**document, "job_id": claimed.claim.job_id, "sweep_id": claimed.sweep_id}, claimed.claim)
    store.add_metrics(run_id, [MetricPoint("loss", 0, 1.0, NOW)], claimed.claim)
    store.finish_run(run_id, status, {"stop_time": NOW, "captured_out": SHORT_OUTPUT}, claimed.claim)
    return run_id


def _queue_history(store: Store) -> None:
    """A grid of 4 jobs (COMPLETED, FAILED, CANCELLED, PAUSED), a search with its space and sampler (one COMPLETED
    job, one QUEUED) and a run without a job."""
    grid = store.enqueue("study", [NewJob([f"lr={index}"], {"lr": index}, f"grid-{index}") for index in range(4)], {"kind": "grid", "command": "run.py -m lr=0,1,2,3"})
    search = store.enqueue("study", [], {"kind": "search", "command": "run.py -m", "spec": SPEC, "state": RUNNING}).sweep_id
    assert search is not None and store.add_jobs(search, [NewJob(["lr=0.01"], {"lr": 0.01}, "search-0", priority=1)], expected_jobs=0)
    _run_job(store, COMPLETED)  # the search's job: its priority is higher
    _run_job(store, COMPLETED)
    _run_job(store, FAILED)
    store.change_jobs([QUEUED], CANCELLED, job_ids=[grid.enqueued[2]])
    store.change_jobs([QUEUED], PAUSED, job_ids=[grid.enqueued[3]])
    assert store.add_jobs(search, [NewJob(["lr=0.02"], {"lr": 0.02}, "search-1")], expected_jobs=1)
    _record(store, COMPLETED, 7, output=SHORT_OUTPUT)


def _ms(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with its times cut to milliseconds (what MongoDB keeps)."""
    return {key: value.replace(microsecond=value.microsecond // 1000 * 1000) if isinstance(value, dt.datetime) else value for key, value in row.items()}


def _sweeps_and_jobs(store: Store) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The store's sweeps and jobs without ``copied_from`` and the sweeps' counts, times to the millisecond."""
    sweeps = [_ms({key: value for key, value in sweep.items() if key not in ("copied_from", "counts")}) for sweep in store.list_sweeps()]
    jobs = [_ms({key: value for key, value in job.items() if key != "copied_from"}) for job in store.list_jobs()]
    return sweeps, jobs


def _links(store: Store) -> list[tuple[Any, ...]]:
    """What each run's job and sweep and each job's run and sweep are, named by the originals' ids (ids aside)."""
    original = {run["_id"]: run["info"]["copied_from"]["id"] for run in store.list_runs(fields=["info"])}
    sweeps = {sweep["id"]: (sweep["copied_from"] or {}).get("id") for sweep in store.list_sweeps()}
    jobs = {job["id"]: job for job in store.list_jobs()}
    of_runs = [
        (original[run["_id"]], jobs[run["job_id"]]["copied_from"]["id"] if run["job_id"] else None, sweeps.get(run["sweep_id"]))
        for run in store.list_runs(fields=["job_id", "sweep_id"])
    ]  # fmt: skip
    of_jobs = [(job["copied_from"]["id"], original.get(job["run_id"]), sweeps[job["sweep_id"]], job["state"]) for job in jobs.values() if job["copied_from"]]
    return sorted(of_runs, key=repr) + sorted(of_jobs, key=repr)


def test_a_round_trip_sqlite_postgresql_mongodb_sqlite_keeps_sweeps_jobs_and_their_links(tmp_path: Path, postgres_uri: str, mongo_backend: Backend) -> None:
    with open_store(f"sqlite:///{tmp_path}/source.db") as source, open_store(postgres_uri) as postgres:
        _queue_history(source)
        with mongo_backend.open() as mongo, open_store(f"sqlite:///{tmp_path}/back.db") as back:
            for hop_source, hop_destination in ((source, postgres), (postgres, mongo), (mongo, back)):
                report = copy_store(hop_source, hop_destination)
                assert (report.ids_kept, report.verified, report.sweeps.copied, report.jobs.copied) == (True, True, 2, 4)
                assert report.jobs.source == {COMPLETED: 2, FAILED: 1, CANCELLED: 1} and report.sweeps.source == {"grid": 1, "search": 1}
            sweeps, jobs = _sweeps_and_jobs(source)
            assert _sweeps_and_jobs(back) == (sweeps, [job for job in jobs if job["state"] not in (QUEUED, PAUSED)])
            assert back.get_sweep(2)["spec"] == SPEC and back.get_sweep(2)["state"] == RUNNING
            assert [(run["_id"], run["job_id"], run["sweep_id"]) for run in back.list_runs()] == [(run["_id"], run["job_id"], run["sweep_id"]) for run in source.list_runs()]
            assert back.list_jobs(job_ids=[5])[0]["copied_from"] == {"store": redact_credentials(mongo_backend.uri), "id": 5}


def test_into_a_store_with_its_own_queue_sweeps_and_jobs_get_new_ids_and_copies_point_at_copies(tmp_path: Path) -> None:
    source_uri, destination_uri = f"sqlite:///{tmp_path}/source.db", f"sqlite:///{tmp_path}/destination.db"
    with open_store(source_uri) as source:
        _queue_history(source)
    with open_store(destination_uri) as destination:
        destination.enqueue("own", [NewJob(["x=1"], {"x": 1}, "own")], {"kind": "grid"})
    copied = _copy(tmp_path, source_uri, destination_uri)
    assert "4 run(s) copied (new ids), 0 copied before" in copied.stdout
    assert "sweeps: 2 sweep(s) copied, 0 copied before; source: 1 grid, 1 search; destination: 1 grid, 1 search" in copied.stdout
    assert "jobs: 4 job(s) copied, 0 copied before; source: 1 cancelled, 2 completed, 1 failed; destination: 1 cancelled, 2 completed, 1 failed" in copied.stdout
    with open_store(source_uri) as source, open_store(destination_uri) as destination:
        expected = [(run["_id"], run["job_id"], run["sweep_id"]) for run in source.list_runs()]
        expected += [(job["id"], job["run_id"], job["sweep_id"], job["state"]) for job in source.list_jobs() if job["state"] not in (QUEUED, PAUSED)]
        assert _links(destination) == sorted(expected[:4], key=repr) + sorted(expected[4:], key=repr)
        assert {job["id"] for job in destination.list_jobs() if job["copied_from"]} == {2, 3, 4, 5}, "new ids, after the destination's own job"
    again = _copy(tmp_path, source_uri, destination_uri)
    assert "0 run(s) copied (new ids), 4 copied before" in again.stdout and "0 sweep(s) copied, 2 copied before" in again.stdout
    assert "0 job(s) copied, 4 copied before" in again.stdout
    with open_store(destination_uri) as destination:
        assert len(destination.list_jobs()) == 5 and len(destination.list_sweeps()) == 3 and len(destination.list_runs()) == 4


def test_with_queue_queued_and_paused_jobs_move_and_a_worker_of_the_destination_runs_them(probe_study: Path, tmp_path: Path) -> None:
    enqueued = submit(probe_study, "message=a,b,c", "steps=1")
    assert enqueued.returncode == 0, enqueued.stderr
    source_uri, destination_uri = f"sqlite:///{probe_study}/.hyperspace/store.db", f"sqlite:///{tmp_path}/destination.db"
    with open_store(source_uri) as source:
        store_jobs = source.list_jobs()
        source.change_jobs([QUEUED], PAUSED, job_ids=[store_jobs[2]["id"]])
    moved = _copy(tmp_path, source_uri, destination_uri, "--with-queue")
    assert "jobs: 3 job(s) copied, 0 copied before; source: 1 paused, 2 queued; destination: 1 paused, 2 queued" in moved.stdout
    with open_store(destination_uri) as destination:
        assert [(job["id"], job["state"], job["overrides"]) for job in destination.list_jobs()] == [
            (job["id"], PAUSED if index == 2 else QUEUED, job["overrides"]) for index, job in enumerate(store_jobs)
        ]
        destination.change_jobs([PAUSED], QUEUED)
    run_worker(probe_study, env=clean_env(HYPERSPACE_STORE=destination_uri))
    with open_store(destination_uri) as destination, open_store(source_uri) as source:
        jobs = destination.list_jobs()
        assert [job["state"] for job in jobs] == [COMPLETED] * 3
        assert sorted((run["job_id"], run["sweep_id"]) for run in destination.list_runs()) == [(job["id"], job["sweep_id"]) for job in jobs]
        assert [job["state"] for job in source.list_jobs()] == [QUEUED, QUEUED, PAUSED] and source.list_runs() == [], "the source is only read"
    again = _copy(tmp_path, source_uri, destination_uri, "--with-queue")
    assert "jobs: 0 job(s) copied, 3 copied before; source: 1 paused, 2 queued; destination: 3 completed" in again.stdout


def test_with_queue_is_refused_while_a_job_runs_in_the_source_and_nothing_is_written(tmp_path: Path) -> None:
    source_uri = f"sqlite:///{tmp_path}/source.db"
    with open_store(source_uri) as source:
        _queue_history(source)
        claimed = source.claim("study", "worker-2", 60)
        assert claimed is not None
    refused = hyperspace(tmp_path, "store", "copy", source_uri, f"sqlite:///{tmp_path}/destination.db", "--with-queue")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr == (
        f"error: job(s) {claimed.claim.job_id} of {source_uri} RUNNING: the queue moves only while no job runs; "
        "stop the source's workers (or let them finish) and copy again; nothing was copied\n"
    )
    assert not (tmp_path / "destination.db").exists()
    with_where = hyperspace(tmp_path, "store", "copy", source_uri, f"sqlite:///{tmp_path}/destination.db", "--with-queue", "--where", "lr>0")
    assert with_where.returncode == 2 and with_where.stderr.startswith("error: --with-queue moves the whole queue and takes no --where")
    assert not (tmp_path / "destination.db").exists()


def test_with_where_only_the_jobs_and_sweeps_of_the_selected_runs_are_copied(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path}/source.db") as source, open_store(f"sqlite:///{tmp_path}/destination.db") as destination:
        _queue_history(source)
        selected = source.list_runs(where=[Condition("job", "=", 1)])
        report = copy_store(source, destination, [Condition("job", "=", 1)])
        assert (report.copied, report.sweeps.copied, report.jobs.copied, report.verified) == (1, 1, 1, True)
        [run], [job], [sweep] = destination.list_runs(), destination.list_jobs(), destination.list_sweeps()
        assert run["info"]["copied_from"]["id"] == selected[0]["_id"] and (run["job_id"], run["sweep_id"]) == (job["id"], sweep["id"])
        assert (job["copied_from"]["id"], job["run_id"], job["sweep_id"], sweep["kind"]) == (1, run["_id"], sweep["id"], "grid")



def test_a_copy_with_where_after_a_whole_copy_checks_only_the_copies_of_the_selected_runs(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path}/source.db") as source, open_store(f"sqlite:///{tmp_path}/destination.db") as destination:
        for index in range(6):
            _record(source, (COMPLETED, FAILED)[index % 2], index, output=SHORT_OUTPUT)
        assert copy_store(source, destination).verified
        report = copy_store(source, destination, [Condition("status", "=", FAILED)])
        assert (report.copied, report.already_copied, report.verified) == (0, 3, True)
        assert report.source == report.destination == {FAILED: 3} and report.source_checksum == report.destination_checksum

# ---- verification and memory ------------------------------------------------------------------


def test_copies_altered_in_the_destination_afterwards_fail_the_verification_of_the_next_copy(tmp_path: Path) -> None:
    source_uri, destination_uri = f"sqlite:///{tmp_path}/source.db", f"sqlite:///{tmp_path}/destination.db"
    with open_store(source_uri) as source:
        twins = [_record(source, COMPLETED, index, output=SHORT_OUTPUT, config_hash="same") for index in range(2)]
        other = _record(source, COMPLETED, 2, output=SHORT_OUTPUT)
    assert "3 run(s) copied (ids kept)" in _copy(tmp_path, source_uri, destination_uri).stdout
    with sqlite3.connect(tmp_path / "destination.db") as altering:  # both twins alike: their digests would cancel out in a XOR
        altering.execute(f"UPDATE runs SET config_hash = 'altered' WHERE id IN ({twins[0]}, {twins[1]})")
    altered = hyperspace(tmp_path, "store", "copy", source_uri, destination_uri)
    assert altered.returncode == 2 and "0 run(s) copied (ids kept), 3 copied before" in altered.stdout
    assert "source:      3 completed;" in altered.stdout and "destination: 3 completed;" in altered.stdout
    assert len({line.split("sha256 ")[1] for line in altered.stdout.splitlines() if "sha256" in line}) == 2, altered.stdout
    assert altered.stderr == "error: verification failed: the copies differ from the source in the counts or the checksum above\n"
    with sqlite3.connect(tmp_path / "destination.db") as altering:
        altering.execute(f"UPDATE runs SET config_hash = 'same' WHERE id IN ({twins[0]}, {twins[1]})")
        altering.execute(f"UPDATE runs SET status = 'FAILED' WHERE id = {other}")
    failed = hyperspace(tmp_path, "store", "copy", source_uri, destination_uri)
    assert failed.returncode == 2 and "destination: 2 completed, 1 failed;" in failed.stdout, failed.stdout
    with sqlite3.connect(tmp_path / "destination.db") as altering:
        altering.execute(f"UPDATE runs SET status = 'COMPLETED' WHERE id = {other}")
    assert "0 run(s) copied (ids kept), 3 copied before" in _copy(tmp_path, source_uri, destination_uri).stdout


def test_the_checksum_of_the_same_config_hashes_does_not_depend_on_their_order() -> None:
    forward, backward, twice = RunTally(), RunTally(), RunTally()
    for config_hash in ("a", "b", None, "c"):
        forward.add(COMPLETED, config_hash)
    for config_hash in ("c", None, "b", "a"):
        backward.add(COMPLETED, config_hash)
    for config_hash in ("a", "a", "b", "b"):
        twice.add(COMPLETED, config_hash)
    assert forward.checksum() == backward.checksum() and len(forward.checksum()) == 64
    assert twice.checksum() != RunTally().checksum(), "pairs do not cancel out"


def test_an_id_map_finds_every_id_whatever_the_order_they_came_in_and_keeps_the_latest_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_copy, "MERGED_EVERY", 3)
    ids, expected = IdMap(), {}
    for step, key in enumerate([5, 1, 9, 2**62, 3, 7, 1, 8, 2, 5, 100, 4, 6]):
        ids[key] = expected[key] = step
        assert {key: ids.get(key) for key in expected} == expected
    assert ids.get(10) is None and ids.get(None) is None and 0 not in ids and 5 in ids
    ids[0] = 0
    assert 0 in ids and ids.get(0) == 0


def test_copies_of_differently_filtered_copies_into_a_store_of_its_own_interleave_and_each_original_is_copied_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_copy, "MERGED_EVERY", 2)
    monkeypatch.setattr(store_copy, "PAGE_RUNS", 4)
    with open_store(f"sqlite:///{tmp_path}/source.db") as source, open_store(f"sqlite:///{tmp_path}/destination.db") as destination:
        originals = [_record(source, COMPLETED, index, output=SHORT_OUTPUT) for index in range(10)]
        own = [_record(destination, FAILED, 99, output=SHORT_OUTPUT)]
        copies = (([Condition("lr", ">", 0.45)], 5, 0), ([Condition("lr", "<", 0.35)], 4, 0), ([], 1, 9), ([], 0, 10))
        for step, (where, copied, before) in enumerate(copies):
            report = copy_store(source, destination, where)
            assert (report.copied, report.already_copied, report.ids_kept, report.verified) == (copied, before, False, True)
            own += [_record(destination, FAILED, 99, output=SHORT_OUTPUT) for _ in range(5 if step == 0 else 0)]  # copies of a page far apart
        copies_of = {run["info"]["copied_from"]["id"]: run for run in destination.list_runs() if run["_id"] not in own}
        assert sorted(copies_of) == originals and all(copy["config"] == source.get_run(original)["config"] for original, copy in copies_of.items())
        assert (report.source, report.source_checksum) == (report.destination, report.destination_checksum) == ({COMPLETED: 10}, report.source_checksum)


class _PagedOnly:
    """A store that refuses any read of runs or jobs not bounded by a page (the sweeps are read whole)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def list_runs(self, limit: int | None = None, **filters: Any) -> list[dict[str, Any]]:
        assert limit is not None and limit <= PAGE_RUNS, f"list_runs({limit}, {filters}) reads more than a page"
        return self.store.list_runs(limit, **filters)

    def list_jobs(self, *args: Any, job_ids: list[int] | None = None, limit: int | None = None, **filters: Any) -> list[dict[str, Any]]:
        bound = limit if job_ids is None else len(job_ids)
        assert bound is not None and bound <= PAGE_RUNS, f"list_jobs({args}, {job_ids}, {limit}, {filters}) reads more than a page"
        return self.store.list_jobs(*args, job_ids=job_ids, limit=limit, **filters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_a_copy_reads_runs_and_jobs_of_both_stores_a_page_at_a_time(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path}/source.db") as source, open_store(f"sqlite:///{tmp_path}/destination.db") as destination:
        _queue_history(source)
        grid = source.enqueue("study", [NewJob([f"i={index}"], {"i": index}, f"i-{index}") for index in range(PAGE_RUNS + 5)], {"kind": "grid"})
        source.change_jobs([QUEUED], COMPLETED, sweep_id=grid.sweep_id)
        document = {name: value for name, value in source.get_run(1).items() if name not in ("_id", "job_id", "sweep_id")}
        source.add_finished_runs([FinishedRun({**document, "job_id": job_id, "sweep_id": grid.sweep_id}, is_job_run=True) for job_id in grid.enqueued])
        for _copy_again in range(2):
            report = copy_store(cast(Store, _PagedOnly(source)), cast(Store, _PagedOnly(destination)))
            assert report.verified and report.copied + report.already_copied == PAGE_RUNS + 9
