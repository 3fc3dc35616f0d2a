"""Workers sharing one PostgreSQL store: concurrency, a killed worker, the server restarting mid-sweep."""

from __future__ import annotations

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
