"""Leases are decided by the database server's clock: workers whose clocks are off by ten minutes
neither steal healthy jobs nor keep a dead worker's job.

A worker's wall clock is shifted by tests/clock_shift/clock_shift.c, an LD_PRELOAD shim compiled
here (libfaketime, the usual tool, breaks Python 3.11's sleeps and timed waits: see the shim).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import clean_env, python_in, start_worker, wait_until

from hyperspace_hydra.store import open_store

SHIM_SOURCE = Path(__file__).parent / "clock_shift" / "clock_shift.c"
LEASE = "3"
"""A short lease, renewed every second: a worker that trusted its own clock would steal within seconds."""


@pytest.fixture(scope="module")
def clock_shift(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The compiled shim."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the clock-shift shim (Debian: apt-get install gcc)")
    library = tmp_path_factory.mktemp("clock_shift") / "clock_shift.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(library), str(SHIM_SOURCE), "-ldl"], check=True)
    return library


def _skewed(env: dict[str, str], shim: Path, seconds: int) -> dict[str, str]:
    """``env`` for a process whose wall clock runs ``seconds`` from the real one (its monotonic clock stays true)."""
    return {**env, "LD_PRELOAD": str(shim), "CLOCK_SHIFT_SECONDS": str(seconds)}


def _submit(study: Path, env: dict[str, str], count: int, *overrides: str) -> None:
    code = f"from hyperspace_hydra import Queue\nQueue(app='probe.run').submit_grid({{'message': list(range({count}))}}, {list(overrides)!r})"
    submitted = python_in(study, code, env=env)
    assert submitted.returncode == 0, submitted.stderr


def test_workers_ten_minutes_ahead_and_behind_steal_no_lease(probe_study: Path, postgres_uri: str, clock_shift: Path) -> None:
    env = clean_env(HYPERSPACE_STORE=postgres_uri)
    _submit(probe_study, env, 12, "sleep=2")
    offsets = {"normal": 0, "ahead": 600, "behind": -600}
    workers = [
        start_worker(probe_study, "--exit-when-empty", "--lease", LEASE, log_name=f"{name}.log", env=_skewed(env, clock_shift, seconds))
        for name, seconds in offsets.items()
    ]
    assert [worker.wait(timeout=300) for worker in workers] == [0, 0, 0], (probe_study / "ahead.log").read_text()
    with open_store(postgres_uri) as store:
        jobs = store.list_jobs()
        runs = store.list_runs()
    assert [job["state"] for job in jobs] == ["COMPLETED"] * 12
    assert [job["attempts"] for job in jobs] == [0] * 12, "no lease was taken over"
    assert [run["status"] for run in runs] == ["COMPLETED"] * 12, "no run DIED"
    assert len({job["worker"] for job in jobs}) == 3, "every worker took jobs"
    for name, seconds in offsets.items():
        said = next(line for line in (probe_study / f"{name}.log").read_text().splitlines() if "clock offset to the store" in line)
        offset = float(said.split("clock offset to the store ")[1].split(" s")[0])
        assert abs(offset + seconds) < 2, said


def test_a_killed_worker_ahead_of_time_has_its_job_requeued_by_one_behind_within_the_lease(probe_study: Path, postgres_uri: str, clock_shift: Path) -> None:
    env = clean_env(HYPERSPACE_STORE=postgres_uri)
    _submit(probe_study, env, 1, "sleep=60")
    with open_store(postgres_uri) as store:
        doomed = start_worker(probe_study, "--lease", LEASE, log_name="ahead.log", env=_skewed(env, clock_shift, 600))
        wait_until(lambda: [run for run in store.list_runs() if run["status"] == "RUNNING"], what="the job to start")
        os.killpg(doomed.pid, 9)
        doomed.wait(timeout=30)
        killed_at = time.monotonic()
        behind = start_worker(probe_study, "--lease", LEASE, log_name="behind.log", env=_skewed(env, clock_shift, -600))
        try:
            wait_until(lambda: store.list_jobs()[0]["attempts"] == 1, timeout=60, what="the job to be requeued")
            assert time.monotonic() - killed_at < float(LEASE) + 5, "requeued within the lease and a poll or two"
        finally:
            subprocess.run(["pkill", "-KILL", "-s", str(behind.pid)], check=False)
            behind.wait(timeout=30)
