"""Connecting to the SQL store's database, and telling what a database error means: unavailable (worth waiting out), damaged, or a bad request.

SQLite runs in WAL mode with a generous busy timeout, and writers take the write lock up front
(BEGIN IMMEDIATE), so that many processes on one machine can share one file."""

from __future__ import annotations

import functools
import os
import sqlite3
import urllib.parse
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.settings import redact_credentials
from hyperspace_hydra.store.retry import StoreUnavailableError

if TYPE_CHECKING:
    from hyperspace_hydra.store.sql import SQLStore

_BUSY_TIMEOUT_SECONDS = 60


_T = TypeVar("_T")


_CONNECT_TIMEOUT_SECONDS = 10
_DEAD_CONNECTION_LIMITS = {
    "connect_timeout": _CONNECT_TIMEOUT_SECONDS,
    "tcp_user_timeout": 20_000,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
"""libpq settings (each overridable in the store URI, e.g. ``?tcp_user_timeout=5000``) that end a connection to a
server that stopped answering (a network partition, a host gone): its query fails after ~20 s instead of waiting for
TCP to give up (~15 min), and the caller waits out the outage on a new connection (see :mod:`~hyperspace_hydra.store.retry`)."""


def reachable(method: Callable[..., _T]) -> Callable[..., _T]:
    """Raise :class:`StoreUnavailableError` when the database cannot be reached or written during ``method``."""

    @functools.wraps(method)
    def translating(self: SQLStore, *args: Any, **kwargs: Any) -> _T:
        try:
            return method(self, *args, **kwargs)
        except DBAPIError as error:
            if is_unavailable(error, self._engine.dialect.name):
                raise StoreUnavailableError(f"store {redact_credentials(self.uri)} unavailable: {error_reason(error)}") from error
            if _damaged(error):
                raise _damaged_store(self.uri, error_reason(error)) from error
            raise

    return translating


_SQLITE_STORAGE_ERRORS = frozenset({
    sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL,
})  # fmt: skip
"""SQLite's primary result codes for a file that cannot be used now (locked beyond the busy timeout, disk
full, read-only, I/O error, damaged page): the storage is at fault, not the request, and it may be fixed
while a worker waits. A file that is not a database at all (SQLITE_NOTADB) is not among them."""


def is_unavailable(error: DBAPIError, dialect: str) -> bool:
    """Whether ``error`` means the database could not be reached or written (worth retrying), not a wrong request."""
    if error.connection_invalidated:
        return True
    if dialect == "sqlite":
        code = getattr(error.orig, "sqlite_errorcode", None)
        return code is not None and code & 0xFF in _SQLITE_STORAGE_ERRORS  # extended codes keep the primary one in their low byte
    return isinstance(error, (OperationalError, InterfaceError))


def _damaged(error: DBAPIError) -> bool:
    """Whether ``error`` is damage that waiting cannot fix, unlike a damaged page (:data:`_SQLITE_STORAGE_ERRORS`):
    a file that is not a database at all, or stored text that is no longer UTF-8 (every text is written as UTF-8)."""
    if getattr(error.orig, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
        return True
    return isinstance(error.orig, sqlite3.OperationalError) and str(error.orig).startswith("Could not decode to UTF-8")


def _damaged_store(uri: str, damage: str) -> HyperspaceError:
    return HyperspaceError(
        f"store {redact_credentials(uri)} is damaged ({damage}): restore it from a backup, "
        "or save what can be read with: sqlite3 FILE .recover | sqlite3 NEW_FILE"
    )


def quick_check(connection: Connection, uri: str) -> None:
    """Raise :class:`HyperspaceError` if SQLite's ``quick_check`` (every page read, indexes not matched with tables) finds damage."""
    problems = connection.exec_driver_sql("PRAGMA quick_check").scalars().all()
    if problems != ["ok"]:
        raise _damaged_store(uri, f"{len(problems)} problem(s) found by PRAGMA quick_check, the first: {problems[0]}")


def database_exists(uri: str) -> bool:
    """False for an SQLite file that is gone (its tables must be created again)."""
    return not uri.startswith("sqlite:///") or Path(uri[len("sqlite:///") :]).exists()


def open_engine(uri: str, read_only: bool = False) -> Engine:
    """An engine for the store that keeps one idle connection between transactions; a forked process never uses
    one it inherited (see :func:`_connect_sqlite` and :func:`_connect_postgresql`). ``read_only``: SQLite opens the
    file read-only and refuses writes (``query_only``); PostgreSQL's transactions are read-only."""
    if uri.startswith("sqlite:"):
        return _connect_sqlite(uri, read_only)
    return _connect_postgresql(uri, read_only)


def _connect_postgresql(uri: str, read_only: bool = False) -> Engine:
    """An engine that keeps one idle connection between transactions (more are opened while threads need them, and
    closed when returned); a forked child leaves the inherited ones to its parent.

    A new connection per transaction cost a worker and each job process a TCP connection, the server's start-up of a
    backend process and the client's and server's handshakes several times a job (~4 connections a no-op job, most of
    the server's CPU). So each process holds at most one connection while idle: a worker with ``--processes K`` holds up
    to K + 1 at once, as it did while its jobs wrote (the server's ``max_connections``, 100 by default, bounds the
    workers on one server). A connection that the server closed meanwhile (a restart) fails its next transaction as
    unavailable, which is retried on a new one (:mod:`~hyperspace_hydra.store.retry`). A kept connection is bounded as a
    new one is: :data:`_DEAD_CONNECTION_LIMITS` hold for a socket's whole life, so a statement sent to a server that
    stopped answering fails after them and is retried too (``tests/test_partition.py``).

    A libpq connection closed in a child would end its parent's session (libpq sends the server its goodbye on the
    shared socket): right after a fork, the child points its copies of the sockets at ``/dev/null`` and gives each
    engine a new pool (:func:`_leave_postgresql_connections_to_parent`)."""
    url = sa.engine.make_url(uri).set(drivername="postgresql+psycopg")
    connect_args: dict[str, Any] = {name: value for name, value in _DEAD_CONNECTION_LIMITS.items() if name not in url.query}
    if read_only:
        connect_args["options"] = "-c default_transaction_read_only=on"
    engine = sa.create_engine(url, pool_size=1, max_overflow=-1, connect_args=connect_args)
    sa.event.listen(engine, "connect", _remember_postgresql_connection)
    _postgresql_engines.add(engine)
    return engine


def _connect_sqlite(uri: str, read_only: bool = False) -> Engine:
    """An engine that keeps its connections between transactions, dropped before every fork.

    Opening and closing a connection per transaction cost ~1.5 ms, and closing the last
    connection to a WAL database checkpoints it (more with bigger runs): a recorded run paid
    that twice. The pool is emptied just before the process forks (a worker forks a job
    process per job), so a child never inherits an idle connection; SQLite forbids using a
    connection across a fork. Keeping it open across the fork, unused by the child, is no way out:
    SQLite keeps its lock bookkeeping per process, and the child's own connection would share the
    inherited one's and take no lock of its own on the WAL index (see
    ``tests/test_worker_reliability.py::test_a_job_process_holds_its_own_sqlite_locks``). A worker's drop before each
    fork checkpoints nothing all the same: a separate process holds the file open meanwhile, so the worker's close is
    never the last (:mod:`~hyperspace_hydra.store.sqlite_anchor`).
    """
    path = uri[len("sqlite:///") :]
    if read_only:
        engine = sa.create_engine(
            f"sqlite:///file:{urllib.parse.quote(path)}?mode=ro&uri=true", connect_args={"timeout": _BUSY_TIMEOUT_SECONDS}
        )
        sa.event.listen(engine, "connect", _configure_read_only_sqlite_connection)
    else:
        if path != ":memory:":
            _prepare_sqlite_path(uri, path)
        engine = sa.create_engine(uri, connect_args={"timeout": _BUSY_TIMEOUT_SECONDS})
        sa.event.listen(engine, "connect", _configure_sqlite_connection)
    sa.event.listen(engine, "begin", _begin_sqlite_transaction)
    _pooled_engines.add(engine)
    return engine


_pooled_engines: weakref.WeakSet[Engine] = weakref.WeakSet()
"""Every engine this process opened, so that a fork can leave their connections to the parent."""


def drop_pooled_connections() -> None:
    """Close the idle connections of every pooled engine and give it a new pool (run just before a
    fork); a connection another thread is using stays with that thread and closes when it is done."""
    for engine in list(_pooled_engines):
        engine.dispose()


_postgresql_engines: weakref.WeakSet[Engine] = weakref.WeakSet()
"""Every PostgreSQL engine this process opened, so that a forked child can give each a pool of its own."""
_postgresql_connections: weakref.WeakSet[Any] = weakref.WeakSet()
"""Every open psycopg connection of those engines (their sockets are the parent's sessions in a forked child)."""


def _remember_postgresql_connection(dbapi_connection: Any, _record: object) -> None:
    _postgresql_connections.add(dbapi_connection)


def _leave_postgresql_connections_to_parent() -> None:
    """In a child right after a fork: point the child's copy of each inherited connection's socket at ``/dev/null``, so
    that nothing the child does (closing it, or its garbage collection) reaches the parent's session, then give each
    engine a new, empty pool. The old pools are dropped without a lock or a message: a thread of the parent may have
    held one at the fork."""
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        for connection in list(_postgresql_connections):
            try:
                socket = connection.fileno()
            except Exception:  # noqa: BLE001 - closed or broken: it has no socket left to protect
                continue
            os.dup2(devnull, socket)
    finally:
        os.close(devnull)
    _postgresql_connections.clear()
    for engine in list(_postgresql_engines):
        engine.dispose(close=False)


def _prepare_sqlite_path(uri: str, path: str) -> None:
    if not path:
        raise HyperspaceError(f"invalid store URI {uri!r}: no file path after sqlite:///")
    database = Path(path)
    if database.is_dir():
        raise HyperspaceError(f"cannot open store {uri}: {path} is a directory")
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise HyperspaceError(f"cannot open store {uri}: cannot create {database.parent}: {error.strerror}") from error


def _configure_sqlite_connection(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun by _begin_sqlite_transaction
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _configure_read_only_sqlite_connection(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun by _begin_sqlite_transaction
    dbapi_connection.execute("PRAGMA query_only=ON")


def _begin_sqlite_transaction(connection: Connection) -> None:
    """Writers take SQLite's write lock up front (BEGIN IMMEDIATE): a claim's read and update are one atomic step."""
    write = connection.get_execution_options().get("hyperspace_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def error_reason(error: SQLAlchemyError) -> str:
    original = getattr(error, "orig", None)
    return " ".join(str(original if original is not None else error).split())


os.register_at_fork(before=drop_pooled_connections, after_in_child=_leave_postgresql_connections_to_parent)
