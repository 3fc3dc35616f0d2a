"""The process that holds a worker's SQLite store open: while it runs, the worker's close before each fork is not the
last one (no checkpoint, the -wal and -shm files stay); it ends with the worker's end of its pipe, in every process."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperspace_hydra.store import Store, open_store
from hyperspace_hydra.store.sql_connection import drop_pooled_connections
from hyperspace_hydra.store.sqlite_anchor import hold_open


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path}/store.db") as opened:
        yield opened


def write_and_close(store: Store) -> None:
    """A write, then every pooled connection closed, as a worker does before it forks."""
    store.start_run({"experiment": {"name": "anchored"}})
    drop_pooled_connections()


def gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie that its parent has not reaped yet counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.02)
    return False


def test_without_an_anchor_closing_the_last_connection_removes_the_wal(store: Store, tmp_path: Path) -> None:
    write_and_close(store)
    assert not (tmp_path / "store.db-wal").exists(), "the last close checkpoints the WAL and removes it"


def test_while_an_anchor_holds_the_store_a_closed_connection_leaves_the_wal_in_place(store: Store, tmp_path: Path) -> None:
    anchor = hold_open(store.uri)
    assert anchor is not None
    try:
        write_and_close(store)
        assert (tmp_path / "store.db-wal").stat().st_size > 0, "not the last close: nothing checkpointed, nothing removed"
        assert (tmp_path / "store.db-shm").exists()
        assert len(store.list_runs()) == 1
    finally:
        anchor.stop()
    assert gone(anchor.pid)
    anchor.stop()  # again: nothing happens (its descriptor's number may belong to another file by now)
    drop_pooled_connections()
    assert not (tmp_path / "store.db-wal").exists(), "once the anchor ended, the last close checkpoints again"


def test_an_anchor_ends_when_its_worker_is_killed(tmp_path: Path, store: Store) -> None:
    worker = os.fork()
    if worker == 0:  # stands in for a worker: starts its anchor, then waits to be killed
        anchor = hold_open(store.uri)
        os.write(os.open(tmp_path / "anchor.pid", os.O_WRONLY | os.O_CREAT), str(anchor.pid if anchor else 0).encode())
        time.sleep(60)
        os._exit(0)
    pid_file = tmp_path / "anchor.pid"
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    anchor_pid = int(pid_file.read_text())
    assert anchor_pid and not gone(anchor_pid)
    os.kill(worker, signal.SIGKILL)
    os.waitpid(worker, 0)
    assert wait_gone(anchor_pid), "the anchor outlived its killed worker"


def test_a_process_forked_from_the_worker_does_not_keep_the_anchor_alive(store: Store) -> None:
    anchor = hold_open(store.uri)
    assert anchor is not None
    job = os.fork()
    if job == 0:  # a job process that lives on after its worker stopped
        anchor.leave_to_worker()
        time.sleep(60)
        os._exit(0)
    try:
        started = time.monotonic()
        anchor.stop()
        assert time.monotonic() - started < 5 and gone(anchor.pid)
    finally:
        os.kill(job, signal.SIGKILL)
        os.waitpid(job, 0)


def test_only_an_existing_sqlite_file_gets_an_anchor(tmp_path: Path) -> None:
    assert hold_open("postgresql://user@localhost/db") is None
    assert hold_open("sqlite:///:memory:") is None
    assert hold_open(f"sqlite:///{tmp_path}/missing.db") is None
    assert not (tmp_path / "missing.db").exists()
    (tmp_path / "not_a_database.db").write_text("plain text, not SQLite")
    assert hold_open(f"sqlite:///{tmp_path}/not_a_database.db") is None, "an anchor that cannot read the store is none"
