"""Stores: one interface (:class:`Store`), one backend module per kind of database."""

from __future__ import annotations

from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.settings import redact_credentials
from hyperspace_hydra.store.base import (
    CANCELLED,
    COMPLETED,
    DIED,
    FAILED,
    FINAL_STATUSES,
    INTERRUPTED,
    JOB_FINAL_STATES,
    JOB_STATES,
    PAUSED,
    QUEUED,
    RUNNING,
    TIMEOUT,
    Claim,
    ClaimedJob,
    ClaimLostError,
    Condition,
    EnqueueResult,
    JobNotFoundError,
    MetricPoint,
    NewJob,
    RunNotFoundError,
    Store,
    StoreNotFoundError,
    utcnow,
)

__all__ = [
    "CANCELLED", "COMPLETED", "DIED", "FAILED", "FINAL_STATUSES", "INTERRUPTED", "JOB_FINAL_STATES",
    "JOB_STATES", "PAUSED", "QUEUED", "RUNNING", "TIMEOUT", "Claim", "ClaimedJob", "ClaimLostError", "Condition", "EnqueueResult",
    "JobNotFoundError", "MetricPoint", "NewJob", "RunNotFoundError", "Store", "StoreNotFoundError", "open_store", "utcnow",
]  # fmt: skip


def open_store(uri: str, read_only: bool = False, create: bool = True) -> Store:
    """Open (and on first use create) the store at ``uri``.

    ``create`` False: a store that does not exist yet (no SQLite file, a PostgreSQL database without the
    store's tables, a MongoDB database holding neither a store nor Sacred's runs) is refused with
    :class:`StoreNotFoundError` instead of created: a command that only reads (``runs ls``) must not answer
    from a new empty store made by a typo in the URI or a command started in the wrong directory.

    ``read_only``: open it only to read it (a copy's source): nothing is created or upgraded (a
    missing SQLite file or PostgreSQL table, or an older schema, is refused), SQLite opens the
    file read-only and PostgreSQL's transactions are read-only, so a write fails; MongoDB has no
    such mode (its readers write nothing) and reads a database no store has used as it is.

    Supported: ``sqlite:///relative/or/absolute/path.db``,
    ``postgresql://user:password@host:port/database`` (needs the ``postgres`` extra) and
    ``mongodb://user:password@host:port/database`` (also ``mongodb+srv://``; runs in the
    shape Sacred's MongoObserver writes, so Omniboard can read them).
    Raises :class:`HyperspaceError` with one clear line for an invalid URI or a store
    that cannot be opened.
    """
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme in ("sqlite", "postgresql", "postgresql+psycopg"):
        from hyperspace_hydra.store.sql import SQLStore

        return SQLStore(uri, read_only, create)
    if scheme in ("mongodb", "mongodb+srv"):
        from hyperspace_hydra.store.mongo import MongoStore

        return MongoStore(uri, read_only=read_only, create=create)
    raise HyperspaceError(
        f"invalid store URI {redact_credentials(uri)!r}: expected sqlite:///path/to/store.db "
        "(a relative path after the three slashes is relative to the current directory), postgresql://user:password@host/db "
        "or mongodb://user:password@host/db"
    )
