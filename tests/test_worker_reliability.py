"""A worker's reliability with real processes and signals: a full disk pauses it without losing anything."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import clean_env, enqueue, python_in, start_worker, wait_until

from hyperspace_hydra.store import Store, open_store


def submit(study: Path, *jobs: list[str], env: dict[str, str] | None = None) -> None:
    """Queue one job per list of overrides, in order, from a notebook-like process."""
    code = "from hyperspace_hydra import Queue\nq = Queue(app='probe.run')\n" + "".join(f"q.submit({overrides!r})\n" for overrides in jobs)
    submitted = python_in(study, code, env=env)
    assert submitted.returncode == 0, submitted.stderr


def states(store: Store) -> list[str]:
    return [job["state"] for job in store.list_jobs()]


def _mount_small_tmpfs(directory: Path) -> None:
    """Mount a 2 MB tmpfs on ``directory``, or skip the test saying why that is not possible here."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(directory)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")


def _fill(path: Path) -> None:
    """Write ``path`` until its file system is full."""
    with open(path, "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(b"\0" * 4096)
        except OSError as error:
            assert error.errno == errno.ENOSPC, error


def _job_logs(study: Path) -> str:
    return "".join(log.read_text() for log in study.glob("outputs/**/job.log"))


def test_a_full_disk_pauses_the_worker_and_loses_nothing(probe_study: Path, tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount_small_tmpfs(disk)
    env = clean_env(HYPERSPACE_STORE=f"sqlite:///{disk}/store.db")
    worker_log = probe_study / "worker.log"
    worker = None
    try:
        submit(probe_study, *(["sleep=0.5", f"message={n}"] for n in range(6)), env=env)
        worker = start_worker(probe_study, "--exit-when-empty", env=env)
        with open_store(env["HYPERSPACE_STORE"]) as store:
            wait_until(lambda: "COMPLETED" in states(store), what="a first job to complete")
            filler = disk / "filler"
            _fill(filler)
            wait_until(lambda: "database or disk is full" in worker_log.read_text(), timeout=60, what="the worker to meet the full disk")
            refused = enqueue(probe_study, "message=late", env=env)
            time.sleep(2)
            assert worker.poll() is None, "the worker waits for space"
            filler.unlink()
            assert worker.wait(timeout=300) == 0, worker_log.read_text()
            output = worker_log.read_text()
            assert "Traceback" not in output + _job_logs(probe_study), output
            assert all(line.startswith(("worker ", "job ", "hyperspace: ")) for line in output.splitlines()), output
            jobs = store.list_jobs()
            assert [job["state"] for job in jobs] == ["COMPLETED"] * 6, output
            completed = [run["job_id"] for run in store.list_runs() if run["status"] == "COMPLETED"]
            assert sorted(completed) == [job["id"] for job in jobs], "every job completed exactly once"
        assert refused.returncode != 0 and "Traceback" not in refused.stderr, refused.stderr
        assert refused.stderr.splitlines()[0].endswith("/disk/store.db unavailable: database or disk is full"), "one line, as Hydra prints our errors"
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        subprocess.run(["umount", "-l", str(disk)], check=False)
