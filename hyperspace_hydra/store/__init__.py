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
    utcnow,
)

__all__ = [
    "CANCELLED", "COMPLETED", "DIED", "FAILED", "FINAL_STATUSES", "INTERRUPTED", "JOB_FINAL_STATES",
    "JOB_STATES", "PAUSED", "QUEUED", "RUNNING", "TIMEOUT", "Claim", "ClaimedJob", "ClaimLostError", "Condition", "EnqueueResult",
    "JobNotFoundError", "MetricPoint", "NewJob", "RunNotFoundError", "Store", "open_store", "utcnow",
]  # fmt: skip


def open_store(uri: str) -> Store:
    """Open (and on first use create) the store at ``uri``.

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

        return SQLStore(uri)
    if scheme in ("mongodb", "mongodb+srv"):
        from hyperspace_hydra.store.mongo import MongoStore

        return MongoStore(uri)
    raise HyperspaceError(
        f"invalid store URI {redact_credentials(uri)!r}: expected sqlite:///path/to/store.db "
        "(a relative path after the three slashes is relative to the current directory), postgresql://user:password@host/db "
        "or mongodb://user:password@host/db"
    )
