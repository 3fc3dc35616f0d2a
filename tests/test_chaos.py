"""Chaos at CI size: 300 jobs, four workers, workers SIGKILLed at random and replaced, on SQLite and PostgreSQL.

Every job ends COMPLETED exactly once, no run is left RUNNING, and no job process outlives its
worker (checked in /proc). The soak at full size is benchmarks/chaos_soak.py's job (not here).
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import clean_env, enqueue, start_worker, wait_until

from hyperspace_hydra.store import Store, open_store

JOBS = 300
WORKERS = 4
KILLS = 8
WORKER_ARGS = ("--exit-when-empty", "--lease", "2")


@pytest.mark.soak
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_random_worker_kills_lose_no_job_complete_none_twice_and_leave_no_process(probe_study: Path, backend: str, request: pytest.FixtureRequest) -> None:
    uri = request.getfixturevalue("postgres_uri") if backend == "postgresql" else f"sqlite:///{probe_study}/.hyperspace/store.db"
    env = clean_env(HYPERSPACE_STORE=uri)
    enqueued = enqueue(probe_study, "hydra.launcher.max_attempts=20", "sleep=0.05", f"message=range(0,{JOBS})", env=env)
    assert enqueued.returncode == 0, enqueued.stderr
    workers = {name: start_worker(probe_study, *WORKER_ARGS, log_name=f"{name}.log", env=env) for name in (f"w{n}" for n in range(WORKERS))}
    rng = random.Random(7)
    with open_store(uri) as store:
        for kill in range(KILLS):
            time.sleep(rng.uniform(0.5, 1.5))
            name = rng.choice(wait_until(lambda: _holding_a_job(store, workers), timeout=120, what="a worker running a job"))
            workers[name].send_signal(signal.SIGKILL)  # the worker only: its job process must die with it
            workers[name].wait(timeout=30)
            workers[f"r{kill}"] = start_worker(probe_study, *WORKER_ARGS, log_name=f"r{kill}.log", env=env)
    for name, worker in workers.items():
        if worker.returncode is None:
            assert worker.wait(timeout=600) == 0, (probe_study / f"{name}.log").read_text()[-3000:]
    job_pids = [int(pid) for log in probe_study.glob("*.log") for pid in re.findall(r"started \(attempt \d+, pid (\d+)\)", log.read_text())]
    with open_store(uri) as store:
        jobs = store.list_jobs()
        runs = store.list_runs()
    assert [job["state"] for job in jobs] == ["COMPLETED"] * JOBS
    completed = [run for run in runs if run["status"] == "COMPLETED"]
    assert sorted(run["job_id"] for run in completed) == [job["id"] for job in jobs], "each job completed exactly once"
    assert {job["run_id"] for job in jobs} == {run["_id"] for run in completed}
    assert not [run for run in runs if run["status"] == "RUNNING"], "no run left RUNNING"
    assert not _alive(job_pids), "no job process outlived its worker"
    assert 1 <= sum(job["attempts"] for job in jobs) <= KILLS, "kills hit running jobs (most of them), and only killed attempts were retried"


def _holding_a_job(store: Store, workers: dict[str, subprocess.Popen[str]]) -> list[str]:
    """The live workers that hold a RUNNING job now (a worker is named ``host:pid:token``)."""
    pids = {int(job["worker"].split(":")[1]) for job in store.list_jobs(states=["RUNNING"]) if job["worker"]}
    return [name for name, worker in workers.items() if worker.poll() is None and worker.pid in pids]


def _alive(pids: list[int]) -> list[int]:
    """The pids that still run (zombies aside)."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if state != "Z":
            alive.append(pid)
    return alive
