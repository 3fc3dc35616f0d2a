"""A process that holds an SQLite store open for a worker, so that the worker's connection is never the last one.

A worker closes its SQLite connection before every fork (a connection must never live across a fork, see
:func:`~hyperspace_hydra.store.sql_connection._connect_sqlite`). Closing the last connection to a WAL database
checkpoints it and deletes its ``-wal`` and ``-shm`` files, and the next connection makes them again: a few
milliseconds of every job, for nothing. While another connection is open, a close does neither; the WAL is then
checkpointed as usual, by the commit that takes it past SQLite's auto-checkpoint size.

The anchor is that other connection: a separate Python process (this file run as a script, with nothing but the
standard library) that opens the database, reads it once and then waits, in no transaction, so it never holds back a
checkpoint nor takes a write lock. It shares no SQLite state with the worker or its forks: it is started with a new
program (fork and exec), not forked from the worker. It ends when its standard input reaches end of file, that is
when the worker closes the pipe's other end, or dies, however it dies (the job processes close their copy of that end
right after the fork, see :meth:`Anchor.leave_to_worker`). It runs in a session of its own, so a Ctrl-C in the
terminal reaches only the worker, and it ignores SLURM's SIGUSR2 (the worker decides when to stop). An anchor that
cannot start or open the store changes nothing but the speed.
"""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import sys
import urllib.parse

_READY = b"r"
_READY_SECONDS = 5.0
_STOP_SECONDS = 10.0


class Anchor:
    """The worker's handle on its anchor process: :meth:`stop` ends it; a forked job process calls :meth:`leave_to_worker`."""

    def __init__(self, process: subprocess.Popen[bytes], lifeline: int) -> None:
        self.process = process
        self._lifeline = lifeline
        """The write end of the anchor's standard input; the anchor ends when every copy of it is closed."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def leave_to_worker(self) -> None:
        """In a process forked from the worker: close this process's copy of the lifeline, so that the anchor ends with
        the worker however long this process (or one it forks) lives on."""
        self._close_lifeline()

    def stop(self) -> None:
        """End the anchor and wait for it (it then closes the store's last connection, checkpointing it); SIGKILL it if
        it takes more than :data:`_STOP_SECONDS` (a disk that does not answer). Stopping it again does nothing."""
        self._close_lifeline()
        try:
            self.process.wait(timeout=_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _close_lifeline(self) -> None:
        if self._lifeline >= 0:
            os.close(self._lifeline)
            self._lifeline = -1


def hold_open(uri: str) -> Anchor | None:
    """Start an anchor for the SQLite store at ``uri`` (see the module docstring); None for any other store, an
    in-memory or missing file, or an anchor that could not start. Waits up to :data:`_READY_SECONDS` for it to have
    opened the store."""
    path = _sqlite_file(uri)
    if path is None:
        return None
    read_end, lifeline = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.abspath(__file__), path],
            stdin=read_end,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError:
        os.close(lifeline)
        return None
    finally:
        os.close(read_end)
    anchor = Anchor(process, lifeline)
    assert process.stdout is not None
    with process.stdout:
        ready, _, _ = select.select([process.stdout], [], [], _READY_SECONDS)
        if not ready or process.stdout.read(1) != _READY:  # it could not open the store: ended, or stuck
            anchor.stop()
            return None
    return anchor


def _sqlite_file(uri: str) -> str | None:
    """The absolute path of the existing database file of an ``sqlite:///`` ``uri``, else None."""
    if not uri.startswith("sqlite:///"):
        return None
    import sqlalchemy as sa  # the worker has it loaded; the anchor process itself never imports it

    database = sa.engine.make_url(uri).database
    if not database or database == ":memory:" or database.startswith("file:") or not os.path.isfile(database):
        return None
    return os.path.abspath(database)


def _hold(path: str) -> int:
    """The anchor process: open ``path`` (never creating it), read it once, say so on stdout, wait for end of file on stdin."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        connection = sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=rw", uri=True, timeout=60, isolation_level=None)
        connection.execute("SELECT count(*) FROM sqlite_master").fetchall()  # maps the WAL index: this connection now counts
    except sqlite3.Error:
        return 1
    os.write(1, _READY)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the worker closed its end: nothing written later may fail on it
    os.close(devnull)
    while os.read(0, 512):
        pass
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(_hold(sys.argv[1]))
