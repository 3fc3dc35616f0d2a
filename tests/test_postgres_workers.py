"""Workers sharing one PostgreSQL store: concurrency, a killed worker, the server restarting mid-sweep, a forked
process's own connection."""

from __future__ import annotations

import gc
import os
import subprocess
from pathlib import Path

from conftest import clean_env, python_in, start_worker, wait_until
from postgres_cluster import PostgresCluster

from hyperspace_hydra.store import Store, open_store


def _submit(study: Path, env: dict[str, str], count: int, *overrides: str) -> None:
    code = f"from hyperspace_hydra import Queue\nQueue(app='probe.run').submit_grid({{'message': list(range({count}))}}, {list(overrides)!r})"
    submitted = python_in(study, code, env=env)
    assert submitted.returncode == 0, submitted.stderr


def _each_job_completed_once(store: Store, count: int) -> None:
    jobs = store.list_jobs()
    assert [job["state"] for job in jobs] == ["COMPLETED"] * count
    completed = [run for run in store.list_runs() if run["status"] == "COMPLETED"]
    assert sorted(run["job_id"] for run in completed) == sorted(job["id"] for job in jobs)
    assert {job["run_id"] for job in jobs} == {run["_id"] for run in completed}


def test_several_workers_drain_one_postgresql_queue(probe_study: Path, postgres_uri: str) -> None:
    env = clean_env(HYPERSPACE_STORE=postgres_uri)
    _submit(probe_study, env, 40, "steps=1")
    workers = [start_worker(probe_study, "--exit-when-empty", "--processes", "2", log_name=f"w{n}.log", env=env) for n in range(2)]
    assert [worker.wait(timeout=300) for worker in workers] == [0, 0]
    with open_store(postgres_uri) as store:
        _each_job_completed_once(store, 40)
        assert len({job["worker"] for job in store.list_jobs()}) == 2
    assert not (probe_study / ".hyperspace").exists(), "nothing went to the default SQLite store"


def test_a_killed_worker_job_is_completed_once_by_another(probe_study: Path, postgres_uri: str) -> None:
    env = clean_env(HYPERSPACE_STORE=postgres_uri)
    _submit(probe_study, env, 1, "sleep=4")
    with open_store(postgres_uri) as store:
        doomed = start_worker(probe_study, "--lease", "2", log_name="doomed.log", env=env)
        wait_until(lambda: [run for run in store.list_runs() if run["status"] == "RUNNING"], what="the job to start")
        subprocess.run(["pkill", "-KILL", "-s", str(doomed.pid)], check=True)
        doomed.wait(timeout=30)
        survivor = start_worker(probe_study, "--lease", "2", log_name="survivor.log", env=env)
        wait_until(lambda: [job for job in store.list_jobs() if job["state"] == "COMPLETED"], timeout=120, what="the job to complete")
        survivor.terminate()
        survivor.wait(timeout=60)
        _each_job_completed_once(store, 1)
        assert [run["status"] for run in store.list_runs()] == ["DIED", "COMPLETED"]


def test_workers_ride_out_a_server_restart_mid_sweep(probe_study: Path, postgres_uri: str, postgres_cluster: PostgresCluster) -> None:
    env = clean_env(HYPERSPACE_STORE=postgres_uri)
    _submit(probe_study, env, 24, "sleep=1")  # ~12 s of work for two workers: the outage comes well before the end, even on a loaded machine
    workers = [start_worker(probe_study, "--exit-when-empty", log_name=f"w{n}.log", env=env) for n in range(2)]
    with open_store(postgres_uri) as store:
        wait_until(lambda: sum(job["state"] == "COMPLETED" for job in store.list_jobs()) >= 4, timeout=120, what="a few jobs to complete")
    postgres_cluster.restart(down_seconds=2)
    assert [worker.wait(timeout=300) for worker in workers] == [0, 0], (probe_study / "w0.log").read_text()
    with open_store(postgres_uri) as store:
        _each_job_completed_once(store, 24)
    # Whoever met the outage waited it out: a worker's supervisor (its log), or a job recording its end (its job.log).
    logs = [probe_study / f"w{n}.log" for n in range(2)] + sorted(probe_study.glob("**/job.log"))
    assert any("retrying" in log.read_text() for log in logs), "someone met the outage and waited it out"


def _session(store: Store) -> int:
    """The server process of the connection that ``store``'s next transaction uses (the one it keeps idle)."""
    with store._engine.connect() as connection:  # type: ignore[attr-defined]
        return int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def test_a_forked_child_uses_a_connection_of_its_own_and_leaves_its_parents_session_alone(postgres_uri: str) -> None:
    with open_store(postgres_uri) as store:
        parent_session = _session(store)
        assert _session(store) == parent_session, "the store keeps its connection between transactions"
        pid = os.fork()
        if pid == 0:  # as a job process forked by its worker: it records through the worker's store object
            status = 1
            try:
                gc.collect()  # what it inherited is finalized here, as it may be at any time in a child
                status = 0 if _session(store) != parent_session and store.server_time() else 2
                store.close()  # closes the child's own connection, as a child that ends normally does
            finally:
                os._exit(status)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child opened a connection of its own"
        assert _session(store) == parent_session, "the parent's session outlived the child"
        store.server_time()
