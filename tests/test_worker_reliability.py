"""A worker's reliability with real processes and signals: its jobs die with it, a lost claim stops
its job at once, a full disk pauses it without losing anything, and its summary counts its own attempts."""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import clean_env, enqueue, hyperspace, notebook, run_worker, start_worker, wait_until

from hyperspace_hydra.store import Store, open_store
from hyperspace_hydra.store.base import WORKER_GONE_LEASES
from hyperspace_hydra.store.sql_schema import WORKERS
from hyperspace_hydra.worker import (
    _LONGEST_LEASE_CHECK,
    _LOST_JOB_SECONDS,
    _ClaimDeadline,
    _kill_group_when_unclaimed,
    _stopped_itself_unrenewed,
)

STOPS_WITHIN = _LONGEST_LEASE_CHECK + _LOST_JOB_SECONDS
"""A job whose claim is lost stops within this many seconds: the worker finds out at its next claim check, sends
SIGTERM, and SIGKILL once the job's grace is over (a job that records its end on SIGTERM stops well before)."""


@pytest.fixture
def store(probe_study: Path) -> Iterator[Store]:
    """The probe study's default store, opened from the test process."""
    with open_store(f"sqlite:///{probe_study}/.hyperspace/store.db") as opened:
        yield opened


def submit(study: Path, *jobs: list[str], env: dict[str, str] | None = None) -> None:
    """Queue one job per list of overrides, in order, as a notebook does."""
    code = "from hyperspace_hydra import Queue\nq = Queue(app='probe.run')\n" + "".join(f"q.submit({overrides!r})\n" for overrides in jobs)
    submitted = notebook(study, code, env=env)
    assert submitted.returncode == 0, submitted.stderr


def states(store: Store) -> list[str]:
    return [job["state"] for job in store.list_jobs()]


def job_pid(study: Path, log_name: str, job_id: int) -> int:
    """The pid of the job process a worker started for ``job_id``, read from the worker's output."""
    found = wait_until(lambda: re.search(rf"job {job_id} started \(attempt \d+, pid (\d+)\)", (study / log_name).read_text()), what=f"job {job_id} to start")
    return int(found.group(1))


def live_processes_in_group(pgid: int) -> list[int]:
    """Pids of the processes (zombies aside) in process group ``pgid``: a job process and whatever it started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def sleeping(store: Store) -> bool:
    """Whether a run of the study is in its task's sleep."""
    return any(run["status"] == "RUNNING" and "sleeping" in (run["captured_out"] or "") for run in store.list_runs())


def summary(study: Path, log_name: str) -> dict[str, int]:
    """A stopped worker's own count of its attempts' outcomes, from its last line."""
    last = (study / log_name).read_text().strip().splitlines()[-1]
    assert " stopped after " in last, last
    counts = last.split(" stopped after ", 1)[1]
    return {} if counts == "no jobs" else {state: int(count) for count, state in (part.split() for part in counts.split(", "))}


def test_a_killed_workers_job_process_dies_within_a_second_and_the_next_attempt_runs_alone(probe_study: Path, store: Store) -> None:
    submit(probe_study, ["sleep=5"])
    doomed = start_worker(probe_study, "--lease", "2", log_name="doomed.log")
    child = job_pid(probe_study, "doomed.log", 1)
    wait_until(lambda: sleeping(store), what="the job to sleep")
    assert live_processes_in_group(child) == [child]
    doomed.send_signal(signal.SIGKILL)  # the worker alone: its job process is in its own process group
    doomed.wait(timeout=10)
    wait_until(lambda: not live_processes_in_group(child), timeout=2, what="the job process to die with its worker")
    survivor = start_worker(probe_study, "--lease", "2", log_name="survivor.log")
    wait_until(lambda: states(store) == ["COMPLETED"], timeout=120, what="another worker to complete the job")
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(timeout=60) == 0
    [job] = store.list_jobs()
    assert job["state"] == "COMPLETED" and job["attempts"] == 1
    first, second = store.list_runs()
    assert (first["status"], second["status"]) == ("DIED", "COMPLETED") and job["run_id"] == second["_id"]
    assert first["output_dir"] == second["output_dir"]
    assert (Path(second["output_dir"]) / "job.log").read_text().count("hello from the task") == 2


def anchor_of(worker_pid: int) -> int | None:
    """The pid of the process holding the store open for worker ``worker_pid`` (see ``store/sqlite_anchor.py``), if any."""
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) if entry.name.isdigit() else None
            command = (entry / "cmdline").read_bytes() if parent == worker_pid else b""
        except (FileNotFoundError, ProcessLookupError):
            continue
        if b"sqlite_anchor.py" in command:
            return int(entry.name)
    return None


def test_a_killed_workers_store_anchor_ends_with_it(probe_study: Path, store: Store) -> None:
    submit(probe_study, ["sleep=30"])
    doomed = start_worker(probe_study, log_name="doomed.log")
    child = job_pid(probe_study, "doomed.log", 1)
    anchor = wait_until(lambda: anchor_of(doomed.pid), what="the worker's anchor process")
    wait_until(lambda: sleeping(store), what="the job to sleep")
    doomed.send_signal(signal.SIGKILL)  # the worker alone: the job and the anchor run in process groups of their own
    doomed.wait(timeout=10)
    wait_until(lambda: not live_processes_in_group(child), timeout=2, what="the job process to die with its worker")
    wait_until(lambda: not live_processes_in_group(anchor), timeout=5, what="the anchor to end with its worker")


def test_a_stalled_workers_job_stops_before_its_lease_expires_so_attempts_never_overlap(probe_study: Path, store: Store) -> None:
    submit(probe_study, ["sleep=8"])
    stalled = start_worker(probe_study, "--exit-when-empty", "--lease", "2", log_name="stalled.log")
    child = job_pid(probe_study, "stalled.log", 1)
    wait_until(lambda: sleeping(store), what="the job to sleep")
    try:
        stop_outside_a_write((stalled.pid,), probe_study)  # alive but silent, as when blocked on a store that does not answer
        survivor = start_worker(probe_study, "--exit-when-empty", "--lease", "2", log_name="survivor.log")
        wait_until(lambda: not live_processes_in_group(child), timeout=3, what="the stalled worker's job to stop itself")
        assert "attempt 2" not in (probe_study / "survivor.log").read_text(), "the second attempt started while the first still ran"
        assert survivor.wait(timeout=120) == 0
    finally:
        stalled.send_signal(signal.SIGCONT)
    assert stalled.wait(timeout=60) == 0
    first, second = store.list_runs()
    assert (first["status"], second["status"], states(store)) == ("DIED", "COMPLETED", ["COMPLETED"])
    assert "did not renew this job's lease in time" in (Path(first["output_dir"]) / "job.log").read_text()
    assert (summary(probe_study, "stalled.log"), summary(probe_study, "survivor.log")) == ({"LOST": 1}, {"COMPLETED": 1})


def test_a_job_stopped_by_its_unrenewed_lease_is_requeued_not_failed(probe_study: Path, store: Store) -> None:
    submit(probe_study, ["sleep=3"])
    worker = start_worker(probe_study, "--exit-when-empty", "--lease", "2")
    child = job_pid(probe_study, "worker.log", 1)
    wait_until(lambda: sleeping(store), what="the job to sleep")
    try:
        worker.send_signal(signal.SIGSTOP)
        wait_until(lambda: not live_processes_in_group(child), timeout=3, what="the job to stop itself")
    finally:
        worker.send_signal(signal.SIGCONT)  # back before anyone requeued the job: the worker puts it back itself
    assert worker.wait(timeout=60) == 0
    [job] = store.list_jobs()
    assert (job["state"], job["attempts"]) == ("COMPLETED", 0)
    assert [run["status"] for run in store.list_runs()] == ["INTERRUPTED", "COMPLETED"]
    assert "job 1 REQUEUED: the job process stopped itself: its worker did not renew the lease in time" in (probe_study / "worker.log").read_text()
    assert summary(probe_study, "worker.log") == {"COMPLETED": 1, "REQUEUED": 1}


_HOLDS_ITS_SHARED_MEMORY_LOCK = """
import os
from pathlib import Path


class Model:
    def __init__(self, **kwargs):
        inode = (Path.cwd() / ".hyperspace" / "store.db-shm").stat().st_ino
        held = [line for line in Path("/proc/locks").read_text().splitlines() if f" {os.getpid()} " in line and f":{inode} 128 128" in line]
        if not held:
            raise RuntimeError("this job process holds no lock of its own on the store's -shm file")
"""


def test_a_job_process_holds_its_own_sqlite_locks(probe_study: Path, store: Store) -> None:
    """SQLite keeps its lock bookkeeping per process: a connection a job process opens while it still holds its
    worker's inherited one would take no lock of its own on the WAL index (its -shm file), and a process opening the
    store after the worker's end would take itself for the only one and rebuild the index under the job
    (sqlite.org/howtocorrupt.html, 2.6). So a worker forks with no connection open, and each job opens its own."""
    (probe_study / "probe" / "shm_locks.py").write_text(_HOLDS_ITS_SHARED_MEMORY_LOCK)
    assert notebook(probe_study, "from hyperspace_hydra import Queue\nQueue(app='probe.run').submit_grid({'model._target_': ['probe.shm_locks.Model'], 'message': [1, 2]})").returncode == 0
    output = run_worker(probe_study)
    assert "stopped after 2 COMPLETED" in output, output


def test_a_job_prepared_for_longer_than_its_lease_is_renewed_before_its_process_starts(probe_study: Path, store: Store) -> None:
    """The worker imports a job's targets before forking it (to judge them against the allowlist); here that takes
    longer than the lease. Forked as it is, the job process would find its claim deadline passed and stop at once."""
    (probe_study / "probe" / "slow_to_import.py").write_text("import time\ntime.sleep(3)\n\n\nclass Model:\n    def __init__(self, **kwargs):\n        pass\n")
    assert notebook(probe_study, "from hyperspace_hydra import Queue\nQueue(app='probe.run').submit(['model._target_=probe.slow_to_import.Model'])").returncode == 0
    output = run_worker(probe_study, "--lease", "2")
    assert "stopped after 1 COMPLETED" in output, output
    [job] = store.list_jobs()
    assert (job["state"], job["attempts"]) == ("COMPLETED", 0)


def test_a_cancelled_running_job_stops_within_seconds(probe_study: Path, store: Store) -> None:
    submit(probe_study, ["sleep=60"])
    worker = start_worker(probe_study)  # the default lease of 60 s: a cancel must not wait for its renewal
    child = job_pid(probe_study, "worker.log", 1)
    wait_until(lambda: sleeping(store), what="the job to sleep")
    cancelled = hyperspace(probe_study, "queue", "cancel", "1")
    assert cancelled.stdout.strip() == "1 job(s) cancelled", cancelled.stderr
    wait_until(lambda: not live_processes_in_group(child), timeout=STOPS_WITHIN, what="the cancelled job to stop")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    [job] = store.list_jobs()
    assert job["state"] == "CANCELLED"
    [run] = store.list_runs()
    assert run["status"] == "INTERRUPTED", "the stopped job recorded its end"
    # The worker stops it when its lease check finds the claim gone, unless the job found out first (at a heartbeat).
    [lost] = [line for line in (probe_study / "worker.log").read_text().splitlines() if line.startswith("job 1 LOST: ")]
    assert lost.endswith(f"; the job is now CANCELLED (run {run['_id']})"), lost
    assert summary(probe_study, "worker.log") == {"LOST": 1}


def test_a_cancelled_job_that_ignores_sigterm_is_killed_after_its_grace_while_the_worker_goes_on(probe_study: Path, store: Store) -> None:
    submit(probe_study, ["sleep=60", "crash=ignore_sigterm"], ["sleep=3", "message=other"])
    worker = start_worker(probe_study, "--processes", "2")  # the default lease of 60 s: the worker, not the job's claim deadline, kills it
    stubborn = job_pid(probe_study, "worker.log", 1)
    job_pid(probe_study, "worker.log", 2)
    wait_until(lambda: sum("sleeping" in (run["captured_out"] or "") for run in store.list_runs()) == 2, what="both jobs to sleep")
    cancelled = hyperspace(probe_study, "queue", "cancel", "1")
    assert cancelled.stdout.strip() == "1 job(s) cancelled", cancelled.stderr
    wait_until(lambda: not live_processes_in_group(stubborn), timeout=STOPS_WITHIN + 1, what="the cancelled job to be killed")
    wait_until(lambda: states(store) == ["CANCELLED", "COMPLETED"], what="the other job to complete")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    lines = (probe_study / "worker.log").read_text().splitlines()
    [killed] = [number for number, line in enumerate(lines) if line.startswith("job 1 LOST: killed: this worker no longer holds it (cancelled or taken over), and it did not stop in time")]
    [completed] = [number for number, line in enumerate(lines) if line.startswith("job 2 COMPLETED: ")]
    assert completed < killed, "the worker reaped the other job while the cancelled one took its grace, not after"
    assert summary(probe_study, "worker.log") == {"COMPLETED": 1, "LOST": 1}


def test_exit_when_empty_waits_out_a_dead_workers_lease_and_finishes_its_job(probe_study: Path, store: Store) -> None:
    submit(probe_study, ["sleep=3"])
    doomed = start_worker(probe_study, "--lease", "2", log_name="doomed.log")
    wait_until(lambda: sleeping(store), what="the job to sleep")
    subprocess.run(["pkill", "-KILL", "-s", str(doomed.pid)], check=True)  # the worker and its job process
    doomed.wait(timeout=10)
    drainer = start_worker(probe_study, "--exit-when-empty", "--lease", "2", log_name="drainer.log")
    assert drainer.wait(timeout=120) == 0
    output = (probe_study / "drainer.log").read_text()
    assert states(store) == ["COMPLETED"], output
    assert "job 1 requeued: its worker was lost" in output and "job 1 started (attempt 2" in output
    assert summary(probe_study, "drainer.log") == {"COMPLETED": 1}


def test_worker_summaries_count_their_own_attempts_and_add_up_to_the_jobs(probe_study: Path, store: Store) -> None:
    # The stalled job sleeps long enough to be still running when it is stopped, however long the second worker
    # takes to start its job (seconds on a busy machine).
    submit(probe_study, ["sleep=8", "message=stalled"], ["sleep=4", "message=killed"])
    stalled = start_worker(probe_study, "--exit-when-empty", "--lease", "1", log_name="stalled.log")
    stalled_processes = (job_pid(probe_study, "stalled.log", 1), stalled.pid)
    doomed = start_worker(probe_study, "--lease", "1", log_name="doomed.log")
    job_pid(probe_study, "doomed.log", 2)
    wait_until(lambda: sum("sleeping" in (run["captured_out"] or "") for run in store.list_runs()) == 2, what="both jobs to sleep")
    try:
        stop_outside_a_write(stalled_processes, probe_study)  # a worker that stops answering, and its job: its lease expires
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
        survivor = start_worker(probe_study, "--exit-when-empty", "--lease", "1", log_name="survivor.log")
        assert survivor.wait(timeout=120) == 0
        assert states(store) == ["COMPLETED", "COMPLETED"], (probe_study / "survivor.log").read_text()
    finally:
        _signal_all(stalled_processes, signal.SIGCONT)  # the stalled attempt ends after another attempt completed its job
    assert stalled.wait(timeout=60) == 0
    stalled_output = (probe_study / "stalled.log").read_text()
    assert re.search(r"job 1 LOST: .*claim was lost.*; the job is now COMPLETED \(run \d+\)", stalled_output), stalled_output
    counts = [summary(probe_study, "stalled.log"), summary(probe_study, "survivor.log")]
    assert counts == [{"LOST": 1}, {"COMPLETED": 2}]
    assert sum(count.get("COMPLETED", 0) for count in counts) == states(store).count("COMPLETED")
    completed_runs = [run["job_id"] for run in store.list_runs() if run["status"] == "COMPLETED"]
    assert sorted(completed_runs) == [1, 2], "each job completed exactly once"


def stop_outside_a_write(pids: tuple[int, ...], study: Path) -> None:
    """SIGSTOP ``pids`` at a moment when none of them holds the write lock of the study's SQLite store.

    A process stopped inside a write transaction would keep every other process from writing for as long as it stays
    stopped (SQLite's lock has no lease): a stall of the store, not of the worker these tests stop. How likely that is
    depends on how busy the machine is; so each stop is checked by taking the lock, and retried after a moment if a
    stopped process holds it (a running writer lets go within the wait)."""
    database = study / ".hyperspace" / "store.db"
    while True:
        _signal_all(pids, signal.SIGSTOP)
        connection = sqlite3.connect(database, timeout=1, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error):
                raise
        finally:
            connection.close()
        _signal_all(pids, signal.SIGCONT)
        time.sleep(0.05)


def _signal_all(pids: tuple[int, ...], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


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


def test_a_damaged_store_page_gives_one_error_line(probe_study: Path, store: Store) -> None:
    submit(probe_study, ["message=a"])
    store.close()  # the last connection checkpoints the write-ahead log into the file
    database = probe_study / ".hyperspace" / "store.db"
    with sqlite3.connect(database) as connection:
        [(page_size,)] = connection.execute("PRAGMA page_size").fetchall()
        [(jobs_page,)] = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = 'jobs'").fetchall()
    with open(database, "r+b") as file:
        file.seek((jobs_page - 1) * page_size)
        file.write(b"\xff" * page_size)
    listed = hyperspace(probe_study, "queue", "ls")
    assert listed.returncode == 2 and listed.stderr.startswith("error: store sqlite:///"), listed.stderr
    assert listed.stderr.strip().endswith("unavailable: database disk image is malformed") and len(listed.stderr.splitlines()) == 1, listed.stderr


def _silence_worker(store: Store, name: str, seconds: float) -> None:
    """Move the worker's last beat ``seconds`` back on the server's clock, as if it had been silent that long: no test sleeps for a lease."""
    old = store.server_time() - dt.timedelta(seconds=seconds)
    with store._writer.begin() as connection:
        connection.execute(WORKERS.update().where(WORKERS.c.name == name).values(last_seen=old))


def test_a_sigkilled_worker_shows_gone_once_silent_for_two_leases(probe_study: Path, store: Store) -> None:
    submit(probe_study, ["sleep=60"])
    doomed = start_worker(probe_study, "--lease", "30", log_name="doomed.log")
    [working] = wait_until(lambda: [row for row in store.list_workers() if row["state"] == "working"], what="the worker to hold its job")
    subprocess.run(["pkill", "-KILL", "-s", str(doomed.pid)], check=True)  # the worker and its job process
    doomed.wait(timeout=30)
    [killed] = store.list_workers()
    assert killed["state"] == "working" and killed["job_ids"] == [1], "a killed worker says nothing: it shows as it last was"
    _silence_worker(store, working["name"], WORKER_GONE_LEASES * 30 - 5)
    assert store.list_workers()[0]["state"] == "working", "not yet two leases"
    _silence_worker(store, working["name"], WORKER_GONE_LEASES * 30 + 1)
    [gone] = store.list_workers()
    assert (gone["state"], gone["job_ids"], gone["pid"]) == ("gone", [1], doomed.pid) and gone["seen_seconds_ago"] >= 61
    listed = hyperspace(probe_study, "queue", "workers")
    assert "gone" in listed.stdout and str(doomed.pid) in listed.stdout, listed.stdout


def _killed_status(stop: str, deadline: _ClaimDeadline) -> int:
    """The wait status of a forked process in a group of its own that ``stop``s: its claim watcher gives up
    (``"itself"``), or something else SIGKILLs it (``"by another"``)."""
    child = os.fork()
    if child == 0:
        os.setpgid(0, 0)
        if stop == "itself":
            with open(os.devnull, "w") as log:
                _kill_group_when_unclaimed(os.getppid(), deadline, log.fileno())
        time.sleep(60)
        os._exit(0)
    if stop == "by another":
        os.kill(child, signal.SIGKILL)
    _, status = os.waitpid(child, 0)
    return status


def test_a_job_process_that_stopped_itself_counts_so_even_when_a_late_renewal_moved_its_deadline_before_it_was_reaped() -> None:
    # A stalled worker may renew the lease after the job process gave up its claim but before the worker reaps it: the
    # deadline then lies ahead again, and the attempt must still be requeued as unrenewed, not failed as a crash.
    deadline = _ClaimDeadline(time.monotonic() + 0.2)
    status = _killed_status("itself", deadline)
    deadline.move_to(time.monotonic() + 60)  # the late renewal
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert _stopped_itself_unrenewed(status, deadline)
    held = _ClaimDeadline(time.monotonic() + 60)
    assert not _stopped_itself_unrenewed(_killed_status("by another", held), held), "a kill while the claim holds is a crash"
