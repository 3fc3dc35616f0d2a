"""SQL backend of the store (SQLAlchemy Core): SQLite and PostgreSQL, the same tables on both.

SQLite runs in WAL mode with a generous busy timeout, and writers take the write lock
up front (BEGIN IMMEDIATE), so that many processes on one machine can share one file.
On PostgreSQL (driver psycopg 3) claims lock the claimed row with ``FOR UPDATE SKIP
LOCKED``, so concurrent workers never wait for each other; JSON columns are JSONB.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import sqlite3
import uuid
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError, SQLAlchemyError

from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.settings import redact_credentials
from hyperspace_hydra.store.base import (
    CANCELLED,
    COMPLETED,
    DEDUPE_STATES,
    DIED,
    DURATION,
    FINAL_STATUSES,
    ID_RANGE,
    INTERRUPTED,
    JOB_FINAL_STATES,
    JOB_STATE_AFTER_RUN,
    LEASE_EXPIRED,
    QUEUED,
    RUN_FIELDS,
    RUN_STATUS_AFTER_WORKER_END,
    RUNNING,
    STALE_RUN,
    STALE_RUN_SECONDS,
    SWEEP_FINAL_STATES,
    Claim,
    ClaimedJob,
    Condition,
    EnqueueResult,
    JobNotFoundError,
    MetricPoint,
    NewJob,
    RunNotFoundError,
    Store,
    check_sweep_state,
    claim_lost,
    job_error,
    known_ids,
    new_jobs_of,
    run_changes,
    run_conditions,
    run_fields,
    run_path,
    sort_order,
    utcnow,
)
from hyperspace_hydra.store.retry import StoreUnavailableError

SCHEMA_VERSION = 2
"""1: the first tables. 2: runs.sweep_id (a run of a local search has no job), sweeps.state."""
_BUSY_TIMEOUT_SECONDS = 60
_T = TypeVar("_T")
_CONNECT_TIMEOUT_SECONDS = 10

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
"""JSON columns; JSONB on PostgreSQL so that the database can filter on nested values."""

_SCHEMA_CHECKED: set[str] = set()
"""Stores whose tables this process (or the worker it was forked from) has created; later opens only read the version."""

_metadata = sa.MetaData()

_store_meta = sa.Table(
    "store_meta",
    _metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

_runs = sa.Table(
    "runs",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("experiment", _JSON),
    sa.Column("command", sa.String(256)),
    sa.Column("host", _JSON),
    sa.Column("start_time", sa.DateTime, index=True),
    sa.Column("heartbeat", sa.DateTime),
    sa.Column("stop_time", sa.DateTime),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("config", _JSON),
    sa.Column("result", _JSON),
    sa.Column("info", _JSON),
    sa.Column("captured_out", sa.Text),
    sa.Column("fail_trace", _JSON),
    sa.Column("meta", _JSON),
    sa.Column("artifacts", _JSON),
    sa.Column("resources", _JSON),
    sa.Column("format", sa.String(64)),
    sa.Column("task", sa.String(256), index=True),
    sa.Column("overrides", _JSON),
    sa.Column("config_given", _JSON),
    sa.Column("config_hash", sa.String(64), index=True),
    sa.Column("objective", sa.Float),
    sa.Column("code_version", _JSON),
    sa.Column("seed", sa.BigInteger),
    sa.Column("output_dir", sa.Text),
    sa.Column("choices", _JSON),
    sa.Column("job_id", sa.Integer, index=True),
    sa.Column("sweep_id", sa.Integer, index=True),
    sa.Index("ix_runs_task_status_id", "task", "status", "id", "sweep_id"),
    sqlite_autoincrement=True,
)
"""``ix_runs_task_status_id`` covers the query a search asks before every trial: the ids (and sweeps) of a task's completed runs."""

_sweeps = sa.Table(
    "sweeps",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study", sa.String(256), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("command", sa.Text),
    sa.Column("spec", _JSON),
    sa.Column("state", sa.String(16)),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sqlite_autoincrement=True,
)

_jobs = sa.Table(
    "jobs",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study", sa.String(256), nullable=False),
    sa.Column("sweep_id", sa.Integer, sa.ForeignKey("sweeps.id"), index=True),
    sa.Column("overrides", _JSON, nullable=False),
    sa.Column("config", _JSON),
    sa.Column("config_hash", sa.String(64), index=True),
    sa.Column("output_dir", sa.Text),
    sa.Column("priority", sa.Integer, nullable=False, default=0),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("max_attempts", sa.Integer, nullable=False, default=3),
    sa.Column("worker", sa.String(256)),
    sa.Column("token", sa.String(64)),
    sa.Column("lease_expires_at", sa.DateTime),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("claimed_at", sa.DateTime),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("error", sa.Text),
    sa.Column("run_id", sa.Integer),
    sa.Index("ix_jobs_claim_order", "study", "state", "priority", "id"),
    sa.Index("ix_jobs_state_lease", "state", "lease_expires_at"),
    sqlite_autoincrement=True,
)

_metrics = sa.Table(
    "metrics",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("timestamp", sa.DateTime),
    sa.Index("ix_metrics_run_name_step", "run_id", "name", "step"),
    sqlite_autoincrement=True,
)

assert set(RUN_FIELDS) == {column.name for column in _runs.columns} - {"id"}


def _reachable(method: Callable[..., _T]) -> Callable[..., _T]:
    """Raise :class:`StoreUnavailableError` when the database cannot be reached or written during ``method``."""

    @functools.wraps(method)
    def translating(self: SQLStore, *args: Any, **kwargs: Any) -> _T:
        try:
            return method(self, *args, **kwargs)
        except DBAPIError as error:
            if _unavailable(error, self._engine.dialect.name):
                raise StoreUnavailableError(f"store {redact_credentials(self.uri)} unavailable: {_reason(error)}") from error
            if _damaged(error):
                raise _damaged_store(self.uri, _reason(error)) from error
            raise

    return translating


_SQLITE_STORAGE_ERRORS = frozenset({
    sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL,
})  # fmt: skip
"""SQLite's primary result codes for a file that cannot be used now (locked beyond the busy timeout, disk
full, read-only, I/O error, damaged page): the storage is at fault, not the request, and it may be fixed
while a worker waits. A file that is not a database at all (SQLITE_NOTADB) is not among them."""


def _unavailable(error: DBAPIError, dialect: str) -> bool:
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


class SQLStore(Store):
    """A store in one SQL database, reached through SQLAlchemy Core."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._engine = _connect(uri)
        self._writer = self._engine.execution_options(hyperspace_write=True)
        try:
            if uri in _SCHEMA_CHECKED and _database_exists(uri):
                self._check_schema_version()
            else:
                self._create_schema()
        except SQLAlchemyError as error:
            self._engine.dispose()
            unavailable = isinstance(error, DBAPIError) and _unavailable(error, self._engine.dialect.name)
            raise (StoreUnavailableError if unavailable else HyperspaceError)(f"cannot open store {redact_credentials(uri)}: {_reason(error)}") from error
        _SCHEMA_CHECKED.add(uri)

    def _create_schema(self) -> None:
        """Create what is missing: tables, the version row, indexes; an older store is upgraded before its indexes are made."""
        with self._writer.begin() as connection:
            for table in _metadata.sorted_tables:
                connection.execute(sa.schema.CreateTable(table, if_not_exists=True))
        try:
            with self._writer.begin() as connection:
                connection.execute(_store_meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
        except IntegrityError:
            pass  # another process (or an earlier run) wrote it first
        self._check_schema_version()
        with self._writer.begin() as connection:
            for table in _metadata.sorted_tables:
                for index in table.indexes:
                    connection.execute(sa.schema.CreateIndex(index, if_not_exists=True))

    def _check_schema_version(self) -> None:
        with self._engine.connect() as connection:
            found = connection.execute(
                sa.select(_store_meta.c.value).where(_store_meta.c.key == "schema_version")
            ).scalar_one()
        if int(found) < SCHEMA_VERSION:
            self._upgrade()
        elif int(found) != SCHEMA_VERSION:
            raise HyperspaceError(
                f"store {redact_credentials(self.uri)} has schema version {found}, this hyperspace_hydra reads version "
                f"{SCHEMA_VERSION}: use the hyperspace_hydra version that wrote it"
            )

    def _upgrade(self) -> None:
        """Bring an older schema to :data:`SCHEMA_VERSION` in one transaction that holds the version row,
        so that of processes opening the store at once one upgrades and the others find it done."""
        with self._writer.begin() as connection:
            version = connection.execute(
                sa.select(_store_meta.c.value).where(_store_meta.c.key == "schema_version").with_for_update()
            ).scalar_one()
            for upgrade in _UPGRADES[int(version) - 1:]:
                upgrade(connection)
            connection.execute(_store_meta.update().where(_store_meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))

    # runs

    @_reachable
    def start_run(self, document: Mapping[str, Any], claim: Claim | None = None) -> int:
        values = {field: document.get(field) for field in RUN_FIELDS}
        values["status"] = RUNNING
        with self._writer.begin() as connection:
            _require_claim(connection, claim)
            values["heartbeat"] = _server_now(connection)
            run_id = _inserted_id(connection.execute(_runs.insert().values(**values)))
            if claim is not None:
                connection.execute(_jobs.update().where(*_holds(claim)).values(run_id=run_id))
            return run_id

    @_reachable
    def update_run(self, run_id: int, changes: Mapping[str, Any], claim: Claim | None = None) -> None:
        with self._writer.begin() as connection:
            _require_claim(connection, claim)
            values = run_changes(changes)
            if "heartbeat" in values:
                values["heartbeat"] = _server_now(connection)
            updated = connection.execute(_runs.update().where(_id_is(_runs.c.id, run_id), _runs.c.status == RUNNING).values(**values)).rowcount
            if not updated:
                self._require_run(connection, run_id)

    @_reachable
    def finish_run(self, run_id: int, status: str, changes: Mapping[str, Any], claim: Claim | None = None) -> bool:
        if status not in FINAL_STATUSES:
            raise ValueError(f"{status!r} is not a final status; expected one of {sorted(FINAL_STATUSES)}")
        values = run_changes(changes)
        with self._writer.begin() as connection:
            self._require_run(connection, run_id)
            if claim is not None:
                job_state = connection.execute(sa.select(_jobs.c.state, _jobs.c.token).where(_jobs.c.id == claim.job_id)).first()
                if job_state is None or tuple(job_state) != (RUNNING, claim.token):
                    lost_status = INTERRUPTED if job_state is not None and job_state.state == CANCELLED else DIED
                    _finish_runs(connection, _runs.c.id == run_id, lost_status, values)
                    return False
            finished = _finish_runs(connection, _runs.c.id == run_id, status, values)
            if finished and claim is not None:
                _end_claimed_job(connection, claim, JOB_STATE_AFTER_RUN[status], error=job_error(status, values), run_id=run_id)
            return finished

    @_reachable
    def end_stale_runs(self) -> list[int]:
        with self._writer.begin() as connection:
            now = _server_now(connection)
            stale = (_runs.c.status == RUNNING) & _runs.c.job_id.is_(None) & (_runs.c.heartbeat < now - dt.timedelta(seconds=STALE_RUN_SECONDS))
            ids = [row.id for row in connection.execute(sa.select(_runs.c.id).where(stale).with_for_update(skip_locked=True))]
            if ids:
                _finish_runs(connection, _runs.c.id.in_(ids) & (_runs.c.status == RUNNING), DIED, {"stop_time": now, "fail_trace": [STALE_RUN]})
        return ids

    @_reachable
    def rewrite_config(self, run_id: int, config: Mapping[str, Any], config_hash: str, info: Mapping[str, Any]) -> None:
        with self._writer.begin() as connection:
            updated = connection.execute(_runs.update().where(_id_is(_runs.c.id, run_id)).values(config=config, config_hash=config_hash, info=info))
            if not updated.rowcount:
                raise RunNotFoundError(f"no run with id {run_id} in store {redact_credentials(self.uri)}")

    @_reachable
    def add_metrics(self, run_id: int, points: Iterable[MetricPoint], claim: Claim | None = None) -> None:
        rows = [
            {"run_id": run_id, "name": p.name, "step": p.step, "value": p.value, "timestamp": p.timestamp}
            for p in points
        ]
        with self._writer.begin() as connection:
            _require_claim(connection, claim)
            self._require_run(connection, run_id)
            if rows:
                connection.execute(_metrics.insert(), rows)

    @_reachable
    def get_run(self, run_id: int) -> dict[str, Any]:
        with self._engine.connect() as connection:
            row = connection.execute(sa.select(_runs).where(_id_is(_runs.c.id, run_id))).mappings().first()
        if row is None:
            raise RunNotFoundError(f"no run with id {run_id} in store {redact_credentials(self.uri)}")
        return _document(row)

    @_reachable
    def list_runs(
        self,
        limit: int | None = None,
        *,
        task: str | None = None,
        sweep_id: int | None = None,
        status: str | None = None,
        where: Sequence[Condition] = (),
        sort: str | None = None,
        fields: Sequence[str] | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        dialect = self._engine.dialect.name
        order = [_runs.c.id.desc()] if sort is None else _run_order(dialect, sort)
        selected = run_fields(fields)
        columns = [_runs.c.id, *(_runs.c[field] for field in selected)]
        query = sa.select(*columns).where(*_run_filters(dialect, task, sweep_id, status, where)).order_by(*order).limit(limit).offset(offset or None)
        keys = ("_id", *selected)
        with self._engine.connect() as connection:
            documents = [dict(zip(keys, row)) for row in connection.execute(query).all()]  # plain tuples: ~3x faster than mappings
        return documents[::-1] if sort is None else documents  # unsorted: the newest `limit` runs, oldest first

    @_reachable
    def get_metrics(self, run_id: int) -> dict[str, dict[str, list[Any]]]:
        query = (
            sa.select(_metrics.c.name, _metrics.c.step, _metrics.c.value, _metrics.c.timestamp)
            .where(_metrics.c.run_id == run_id)
            .order_by(_metrics.c.name, _metrics.c.step, _metrics.c.id)
        )
        with self._engine.connect() as connection:
            self._require_run(connection, run_id)
            rows = connection.execute(query).all()
        series: dict[str, dict[str, list[Any]]] = {}
        for name, step, value, timestamp in rows:
            entry = series.setdefault(name, {"steps": [], "values": [], "timestamps": []})
            entry["steps"].append(step)
            entry["values"].append(value)
            entry["timestamps"].append(timestamp)
        return series

    # queue

    @_reachable
    def enqueue(self, study: str, jobs: Sequence[NewJob], sweep: Mapping[str, Any], dedupe: bool = True, max_attempts: int = 3) -> EnqueueResult:
        now = utcnow()
        with self._writer.begin() as connection:
            existing = self._existing_hashes(connection, study, [job.config_hash for job in jobs]) if dedupe else set()
            kept = new_jobs_of(jobs, existing, dedupe)
            if jobs and not any(kept):
                return EnqueueResult(None, [None] * len(jobs))
            sweep_id = _inserted_id(
                connection.execute(
                    _sweeps.insert().values(
                        study=study, kind=sweep.get("kind", "grid"), command=sweep.get("command"), spec=sweep.get("spec"), state=sweep.get("state"), created_at=now
                    )
                )
            )
            job_ids = [
                None if job is None else _inserted_id(connection.execute(_jobs.insert().values(**_job_row(study, sweep_id, job, max_attempts, now))))
                for job in kept
            ]
        return EnqueueResult(sweep_id, job_ids)

    @_reachable
    def add_jobs(self, sweep_id: int, jobs: Sequence[NewJob], expected_jobs: int, max_attempts: int = 3) -> list[int] | None:
        now = utcnow()
        with self._writer.begin() as connection:
            sweep = connection.execute(sa.select(_sweeps.c.study, _sweeps.c.state).where(_sweeps.c.id == sweep_id).with_for_update()).first()
            if sweep is None:
                raise JobNotFoundError(f"no sweep with id {sweep_id} in store {redact_credentials(self.uri)}")
            study, state = sweep
            count = connection.execute(sa.select(sa.func.count()).select_from(_jobs).where(_jobs.c.sweep_id == sweep_id)).scalar_one()
            if count != expected_jobs or state in SWEEP_FINAL_STATES:
                return None
            return [
                _inserted_id(connection.execute(_jobs.insert().values(**_job_row(study, sweep_id, job, max_attempts, now))))
                for job in jobs
            ]

    @_reachable
    def end_sweep(self, sweep_id: int, state: str) -> bool:
        check_sweep_state(state)
        with self._writer.begin() as connection:
            ended = connection.execute(
                _sweeps.update().where(_sweeps.c.id == sweep_id, sa.or_(_sweeps.c.state.is_(None), _sweeps.c.state.not_in(SWEEP_FINAL_STATES))).values(state=state)
            ).rowcount
            if not ended and connection.execute(sa.select(_sweeps.c.id).where(_sweeps.c.id == sweep_id)).first() is None:
                raise JobNotFoundError(f"no sweep with id {sweep_id} in store {redact_credentials(self.uri)}")
        return bool(ended)

    def _existing_hashes(self, connection: Connection, study: str, hashes: Sequence[str]) -> set[str]:
        found: set[str] = set()
        unique = sorted(set(hashes))
        for start in range(0, len(unique), _IN_CHUNK):
            chunk = unique[start : start + _IN_CHUNK]
            found.update(connection.execute(
                sa.select(_jobs.c.config_hash).where(_jobs.c.study == study, _jobs.c.state.in_(DEDUPE_STATES), _jobs.c.config_hash.in_(chunk))
            ).scalars())  # fmt: skip
            found.update(connection.execute(
                sa.select(_runs.c.config_hash).where(_runs.c.status == COMPLETED, _runs.c.config_hash.in_(chunk))
            ).scalars())  # fmt: skip
        return found

    @_reachable
    def server_time(self) -> dt.datetime:
        with self._engine.connect() as connection:
            return _server_now(connection)

    @_reachable
    def claim(self, study: str, worker: str, lease_seconds: float) -> ClaimedJob | None:
        with self._writer.begin() as connection:
            now = _server_now(connection)
            row = connection.execute(
                sa.select(_jobs.c.id, _jobs.c.sweep_id, _jobs.c.overrides, _jobs.c.output_dir, _jobs.c.attempts)
                .where(_jobs.c.study == study, _jobs.c.state == QUEUED)
                .order_by(_jobs.c.priority.desc(), _jobs.c.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            token = uuid.uuid4().hex
            connection.execute(
                _jobs.update().where(_jobs.c.id == row.id).values(
                    state=RUNNING, worker=worker, token=token, claimed_at=now, lease_expires_at=now + dt.timedelta(seconds=lease_seconds)
                )
            )  # fmt: skip
        return ClaimedJob(Claim(row.id, token), study, row.sweep_id, list(row.overrides), row.output_dir, row.attempts)

    @_reachable
    def renew_leases(self, claims: Sequence[Claim], lease_seconds: float) -> set[int]:
        lost = set()
        with self._writer.begin() as connection:
            expires = _server_now(connection) + dt.timedelta(seconds=lease_seconds)
            for claim in claims:
                renewed = connection.execute(
                    _jobs.update().where(*_holds(claim)).values(lease_expires_at=expires)
                ).rowcount
                if not renewed:
                    lost.add(claim.job_id)
        return lost

    @_reachable
    def requeue_expired(self) -> list[int]:
        with self._writer.begin() as connection:
            now = _server_now(connection)
            expired = connection.execute(
                sa.select(_jobs.c.id, _jobs.c.attempts, _jobs.c.max_attempts)
                .where(_jobs.c.state == RUNNING, _jobs.c.lease_expires_at < now)
                .with_for_update(skip_locked=True)
            ).all()
            for job in expired:
                attempts = job.attempts + 1
                connection.execute(
                    _jobs.update().where(_jobs.c.id == job.id).values(
                        state=DIED if attempts >= job.max_attempts else QUEUED, attempts=attempts, worker=None, token=None,
                        lease_expires_at=None, error=LEASE_EXPIRED, finished_at=now if attempts >= job.max_attempts else None,
                    )
                )  # fmt: skip
                _finish_runs(connection, _job_runs(job.id), DIED, {"stop_time": now, "fail_trace": [LEASE_EXPIRED]})
        return [job.id for job in expired]

    @_reachable
    def end_job(self, claim: Claim, state: str, reason: str) -> bool:
        if state not in RUN_STATUS_AFTER_WORKER_END:
            raise ValueError(f"end_job takes {sorted(RUN_STATUS_AFTER_WORKER_END)}, not {state!r}")
        with self._writer.begin() as connection:
            holds = connection.execute(sa.select(_jobs.c.id).where(*_holds(claim))).first() is not None
            if holds:
                run_changes = {"stop_time": utcnow(), "fail_trace": [reason]}
                _finish_runs(connection, _job_runs(claim.job_id), RUN_STATUS_AFTER_WORKER_END[state], run_changes)
                _end_claimed_job(connection, claim, state, error=reason, run_id=None)
        return holds

    @_reachable
    def list_jobs(
        self,
        study: str | None = None,
        sweep_id: int | None = None,
        job_ids: Sequence[int] | None = None,
        states: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        query = sa.select(_jobs).where(*_job_filters(study, sweep_id, job_ids, states)).order_by(_jobs.c.id)
        with self._engine.connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    @_reachable
    def change_jobs(
        self,
        from_states: Sequence[str],
        to_state: str,
        sweep_id: int | None = None,
        job_ids: Sequence[int] | None = None,
    ) -> int:
        values: dict[str, Any] = {"state": to_state}
        if to_state == QUEUED:
            values.update(attempts=0, error=None, worker=None, token=None, lease_expires_at=None, finished_at=None)
        elif to_state in JOB_FINAL_STATES:
            values.update(finished_at=utcnow(), token=None)
        with self._writer.begin() as connection:
            return connection.execute(
                _jobs.update().where(_jobs.c.state.in_(from_states), *_job_filters(None, sweep_id, job_ids, None)).values(**values)
            ).rowcount

    @_reachable
    def list_sweeps(self, study: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(_sweeps).order_by(_sweeps.c.id)
        if study is not None:
            query = query.where(_sweeps.c.study == study)
        counts_query = sa.select(_jobs.c.sweep_id, _jobs.c.state, sa.func.count()).where(_jobs.c.sweep_id.is_not(None)).group_by(_jobs.c.sweep_id, _jobs.c.state)
        with self._engine.connect() as connection:
            sweeps = [dict(row) for row in connection.execute(query).mappings()]
            counts: dict[int, dict[str, int]] = {}
            for sweep_id, state, count in connection.execute(counts_query):
                counts.setdefault(sweep_id, {})[state] = count
        return [{**sweep, "counts": counts.get(sweep["id"], {})} for sweep in sweeps]

    @_reachable
    def get_sweep(self, sweep_id: int) -> dict[str, Any]:
        with self._engine.connect() as connection:
            row = connection.execute(sa.select(_sweeps).where(_id_is(_sweeps.c.id, sweep_id))).mappings().first()
            if row is None:
                raise JobNotFoundError(f"no sweep with id {sweep_id} in store {redact_credentials(self.uri)}")
            counts = connection.execute(
                sa.select(_jobs.c.state, sa.func.count()).where(_jobs.c.sweep_id == sweep_id).group_by(_jobs.c.state)
            ).all()
        return {**dict(row), "counts": {state: count for state, count in counts}}

    @_reachable
    def summary(self) -> dict[str, Any]:
        sqlite = self._engine.dialect.name == "sqlite"
        with self._engine.connect() as connection:
            if sqlite:
                _quick_check(connection, self.uri)
            version_query = "select sqlite_version()" if sqlite else "show server_version"
            server_version = connection.exec_driver_sql(version_query).scalar_one()
            schema_version = connection.execute(sa.select(_store_meta.c.value).where(_store_meta.c.key == "schema_version")).scalar_one()
            jobs = connection.execute(sa.select(_jobs.c.state, sa.func.count()).group_by(_jobs.c.state)).all()
            runs = connection.execute(sa.select(_runs.c.status, sa.func.count()).group_by(_runs.c.status)).all()
        return {
            "backend": f"{'SQLite' if sqlite else 'PostgreSQL'} {server_version}",
            "schema_version": int(schema_version),
            "integrity": "ok (PRAGMA quick_check)" if sqlite else None,
            "jobs": {state: count for state, count in jobs},
            "runs": {status: count for status, count in runs},
        }

    def close(self) -> None:
        self._engine.dispose()

    def _require_run(self, connection: Connection, run_id: int) -> None:
        if connection.execute(sa.select(_runs.c.id).where(_id_is(_runs.c.id, run_id))).first() is None:
            raise RunNotFoundError(f"no run with id {run_id} in store {redact_credentials(self.uri)}")


_IN_CHUNK = 500


def _server_now(connection: Connection) -> dt.datetime:
    """The database server's clock as a naive UTC datetime; for SQLite, this machine's (see :meth:`Store.server_time`)."""
    if connection.dialect.name == "postgresql":
        return connection.execute(sa.select(sa.func.timezone("UTC", sa.func.clock_timestamp()))).scalar_one()
    return utcnow()


def _upgrade_to_2(connection: Connection) -> None:
    """Runs get ``sweep_id`` (filled in from their jobs), sweeps ``state`` (RUNNING for searches: they end as they advance)."""
    connection.exec_driver_sql("ALTER TABLE runs ADD COLUMN sweep_id INTEGER")
    [index] = [index for index in _runs.indexes if list(index.columns.keys()) == ["sweep_id"]]
    connection.execute(sa.schema.CreateIndex(index, if_not_exists=True))
    connection.execute(_runs.update().where(_runs.c.job_id.is_not(None)).values(sweep_id=sa.select(_jobs.c.sweep_id).where(_jobs.c.id == _runs.c.job_id).scalar_subquery()))
    connection.exec_driver_sql("ALTER TABLE sweeps ADD COLUMN state VARCHAR(16)")
    connection.execute(_sweeps.update().where(_sweeps.c.kind == "search").values(state=RUNNING))


_UPGRADES: list[Callable[[Connection], None]] = [_upgrade_to_2]
"""``_UPGRADES[v - 1]`` brings schema version ``v`` to ``v + 1``."""


def _require_claim(connection: Connection, claim: Claim | None) -> None:
    """Raise :class:`ClaimLostError` unless ``claim`` (when given) holds; its job row stays locked until the transaction
    ends (on SQLite the whole store is, by BEGIN IMMEDIATE), so no requeue can slip in before the write."""
    if claim is not None and connection.execute(sa.select(_jobs.c.id).where(*_holds(claim)).with_for_update(read=True)).first() is None:
        raise claim_lost(claim)


def _quick_check(connection: Connection, uri: str) -> None:
    """Raise :class:`HyperspaceError` if SQLite's ``quick_check`` (every page read, indexes not matched with tables) finds damage."""
    problems = connection.exec_driver_sql("PRAGMA quick_check").scalars().all()
    if problems != ["ok"]:
        raise _damaged_store(uri, f"{len(problems)} problem(s) found by PRAGMA quick_check, the first: {problems[0]}")


def _id_is(column: sa.Column[Any], identifier: int) -> sa.ColumnElement[bool]:
    """``column = identifier``; false without asking for an id outside :data:`ID_RANGE`, which the database cannot bind."""
    return column == _bound(identifier) if identifier in ID_RANGE else sa.false()


def _id_in(column: sa.Column[Any], identifiers: Iterable[int]) -> sa.ColumnElement[bool]:
    """``column IN identifiers``, leaving out ids outside :data:`ID_RANGE` (see :func:`_id_is`)."""
    return column.in_([_bound(identifier) for identifier in known_ids(identifiers)])


def _holds(claim: Claim) -> tuple[sa.ColumnElement[bool], ...]:
    return (_jobs.c.id == claim.job_id, _jobs.c.state == RUNNING, _jobs.c.token == claim.token)


def _job_runs(job_id: int) -> sa.ColumnElement[bool]:
    return _runs.c.job_id == job_id


def _finish_runs(connection: Connection, selection: sa.ColumnElement[bool], status: str, values: Mapping[str, Any]) -> bool:
    updated = connection.execute(_runs.update().where(selection, _runs.c.status == RUNNING).values(**values, status=status))
    return bool(updated.rowcount)


def _end_claimed_job(connection: Connection, claim: Claim, state: str, error: str | None, run_id: int | None) -> None:
    values: dict[str, Any] = {"state": state, "error": error, "token": None, "lease_expires_at": None}
    if state == QUEUED:
        values["worker"] = None
    else:
        values["finished_at"] = utcnow()
    if run_id is not None:
        values["run_id"] = run_id
    connection.execute(_jobs.update().where(*_holds(claim)).values(**values))


def _job_row(study: str, sweep_id: int, job: NewJob, max_attempts: int, now: dt.datetime) -> dict[str, Any]:
    return {
        "study": study, "sweep_id": sweep_id, "overrides": list(job.overrides), "config": job.config,
        "config_hash": job.config_hash, "output_dir": job.output_dir, "priority": job.priority,
        "state": QUEUED, "attempts": 0, "max_attempts": max_attempts, "created_at": now,
    }  # fmt: skip


def _job_filters(
    study: str | None, sweep_id: int | None, job_ids: Sequence[int] | None, states: Sequence[str] | None
) -> list[sa.ColumnElement[bool]]:
    filters = []
    if study is not None:
        filters.append(_jobs.c.study == study)
    if sweep_id is not None:
        filters.append(_id_is(_jobs.c.sweep_id, sweep_id))
    if job_ids is not None:
        filters.append(_id_in(_jobs.c.id, job_ids))
    if states is not None:
        filters.append(_jobs.c.state.in_(list(states)))
    return filters


def _run_filters(
    dialect: str, task: str | None, sweep_id: int | None, status: str | None, where: Sequence[Condition]
) -> list[sa.ColumnElement[bool]]:
    """The WHERE clauses of :meth:`SQLStore.list_runs`."""
    filters = [_condition(_run_value(dialect, condition.path), condition) for condition in run_conditions(task, status, where)]
    if sweep_id is not None:
        filters.append(_id_is(_runs.c.sweep_id, sweep_id))
    return filters


def _run_order(dialect: str, sort: str) -> list[sa.ColumnElement[Any]]:
    """The ORDER BY of :meth:`SQLStore.list_runs` for ``sort``: numbers, then strings, then the rest; ties by id."""
    path, descending = sort_order(sort)
    value = _run_value(dialect, path)
    keys = [value.number(), value.string()]
    return [*((key.desc() if descending else key.asc()).nulls_last() for key in keys), _runs.c.id]


def _condition(value: _RunValue, condition: Condition) -> sa.ColumnElement[bool]:
    op, expected = condition.op, condition.value
    if op == "exists":
        return value.present() if expected else sa.not_(value.present())
    if op == "=":
        return _equals(value, expected)
    if op == "!=":
        # `=` is NULL where the value is missing; != must match exactly the runs = does not
        return sa.not_(sa.func.coalesce(_equals(value, expected), sa.false(), type_=sa.Boolean))
    if op == "in":
        return sa.or_(*(_equals(value, item) for item in expected))
    typed = _typed(value, expected)
    return typed < _bound(expected) if op == "<" else typed > _bound(expected)


def _equals(value: _RunValue, expected: Any) -> sa.ColumnElement[bool]:
    if isinstance(expected, list):
        items = (_equals(value.item(index), item) for index, item in enumerate(expected))
        return sa.and_(value.length() == len(expected), *items)
    if isinstance(expected, bool):
        return value.boolean() == ("true" if expected else "false")
    return _typed(value, expected) == _bound(expected)


def _bound(expected: Any) -> Any:
    """``expected`` as a query parameter: an integer as a 64-bit one, not as the type of the column it is compared with
    (PostgreSQL's id column is 32-bit, and a larger number bound as such is an error, not a comparison)."""
    return sa.literal(expected, sa.BigInteger) if isinstance(expected, int) and not isinstance(expected, bool) else expected


def _typed(value: _RunValue, expected: Any) -> sa.ColumnElement[Any]:
    """The value as the kind of ``expected`` (a number or a string)."""
    return value.number() if isinstance(expected, (int, float)) else value.string()


class _RunValue:
    """A run's value at a path as SQL expressions, one per kind of value.

    Each expression is NULL unless the value is of its kind, and a comparison with NULL is
    never true: so a value of another kind, or a missing one, matches no condition but
    ``!=`` and ``exists``. This base class is a value that is missing.
    """

    def present(self) -> sa.ColumnElement[bool]:
        return sa.false()

    def number(self) -> sa.ColumnElement[Any]:
        return sa.cast(sa.null(), sa.Float)

    def string(self) -> sa.ColumnElement[Any]:
        return sa.cast(sa.null(), sa.String)

    def boolean(self) -> sa.ColumnElement[Any]:
        """``'true'`` or ``'false'``."""
        return sa.cast(sa.null(), sa.String)

    def length(self) -> sa.ColumnElement[Any]:
        """The number of items of a list."""
        return sa.cast(sa.null(), sa.Integer)

    def item(self, index: int) -> _RunValue:
        """The ``index``-th item of a list."""
        return _RunValue()


def _run_value(dialect: str, path: str) -> _RunValue:
    field, keys = run_path(path)
    if field == DURATION:
        return _DurationValue(dialect)
    column = _runs.c[field]
    if not keys:
        return _ColumnValue(column, dialect)
    return _PostgresValue(column, keys) if dialect == "postgresql" else _SQLiteValue(column, keys)


class _ColumnValue(_RunValue):
    """A run field stored in its own column: a number or a string."""

    def __init__(self, column: sa.Column[Any], dialect: str) -> None:
        self.column = column
        self.dialect = dialect

    def present(self) -> sa.ColumnElement[bool]:
        return self.column.is_not(None)

    def number(self) -> sa.ColumnElement[Any]:
        return self.column if isinstance(self.column.type, (sa.Integer, sa.Float)) else super().number()

    def string(self) -> sa.ColumnElement[Any]:
        if not isinstance(self.column.type, sa.String):
            return super().string()
        return _by_code_point(self.column, self.dialect)


class _DurationValue(_RunValue):
    """Seconds from ``start_time`` to ``stop_time``; missing while either is NULL (a RUNNING run has no stop time)."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    def present(self) -> sa.ColumnElement[bool]:
        return sa.and_(_runs.c.start_time.is_not(None), _runs.c.stop_time.is_not(None))

    def number(self) -> sa.ColumnElement[Any]:
        if self.dialect == "postgresql":
            return sa.extract("epoch", _runs.c.stop_time - _runs.c.start_time)
        # SQLite keeps datetimes as ISO text; julianday reads it (fractional seconds included) as days
        return (sa.func.julianday(_runs.c.stop_time) - sa.func.julianday(_runs.c.start_time)) * 86400.0


class _SQLiteValue(_RunValue):
    """A value inside a JSON column, read with SQLite's JSON functions."""

    def __init__(self, column: sa.Column[Any], keys: tuple[str | int, ...]) -> None:
        self.column = column
        self.keys = keys
        self.path = "$" + "".join(f"[{key}]" if isinstance(key, int) else f'."{key}"' for key in keys)

    def _type(self) -> sa.ColumnElement[Any]:
        return sa.func.json_type(self.column, self.path)

    def _when(self, *types: str, then: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.case((self._type().in_(types), then))

    def present(self) -> sa.ColumnElement[bool]:
        return sa.func.json_extract(self.column, self.path).is_not(None)  # NULL for JSON null too

    def number(self) -> sa.ColumnElement[Any]:
        return self._when("integer", "real", then=sa.func.json_extract(self.column, self.path))

    def string(self) -> sa.ColumnElement[Any]:
        return self._when("text", then=sa.func.json_extract(self.column, self.path))

    def boolean(self) -> sa.ColumnElement[Any]:
        return self._when("true", "false", then=self._type())

    def length(self) -> sa.ColumnElement[Any]:
        return self._when("array", then=sa.func.json_array_length(self.column, self.path))

    def item(self, index: int) -> _RunValue:
        return _SQLiteValue(self.column, (*self.keys, index))


class _PostgresValue(_RunValue):
    """A value inside a JSONB column, read with PostgreSQL's JSONB operators (``#>``, ``#>>``)."""

    def __init__(self, column: sa.Column[Any], keys: tuple[str | int, ...]) -> None:
        self.column = column
        self.keys = keys
        self.json = column[keys]

    def _when(self, json_type: str, then: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        # CASE, not AND: PostgreSQL may evaluate AND's operands in any order, and a cast of a string to float fails
        return sa.case((sa.func.jsonb_typeof(self.json) == json_type, then))

    def present(self) -> sa.ColumnElement[bool]:
        return self.json.as_string().is_not(None)  # #>> gives NULL for JSON null too

    def number(self) -> sa.ColumnElement[Any]:
        return self._when("number", self.json.as_float())

    def string(self) -> sa.ColumnElement[Any]:
        return _by_code_point(self._when("string", self.json.as_string()), "postgresql")

    def boolean(self) -> sa.ColumnElement[Any]:
        return self._when("boolean", self.json.as_string())

    def length(self) -> sa.ColumnElement[Any]:
        return self._when("array", sa.func.jsonb_array_length(self.json))

    def item(self, index: int) -> _RunValue:
        return _PostgresValue(self.column, (*self.keys, index))


def _by_code_point(text: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
    """``text`` compared by code point, as SQLite and MongoDB compare strings (PostgreSQL's default collation may not)."""
    return text.collate("C") if dialect == "postgresql" else text


def _inserted_id(result: sa.CursorResult[Any]) -> int:
    """The id the database gave the row ``result`` inserted."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the database returned no id for an inserted row")
    return int(key[0])


def _document(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {"_id": row["id"], **{field: row[field] for field in RUN_FIELDS}}


def _database_exists(uri: str) -> bool:
    """False for an SQLite file that is gone (its tables must be created again)."""
    return not uri.startswith("sqlite:///") or Path(uri[len("sqlite:///"):]).exists()


def _connect(uri: str) -> Engine:
    """An engine for the store; no idle connection of it survives a fork (see :func:`_connect_sqlite`)."""
    if uri.startswith("sqlite:"):
        return _connect_sqlite(uri)
    url = sa.engine.make_url(uri).set(drivername="postgresql+psycopg")
    return sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": _CONNECT_TIMEOUT_SECONDS})


def _connect_sqlite(uri: str) -> Engine:
    """An engine that keeps its connections between transactions, dropped before every fork.

    Opening and closing a connection per transaction cost ~1.5 ms, and closing the last
    connection to a WAL database checkpoints it (more with bigger runs): a recorded run paid
    that twice. The pool is emptied just before the process forks (a worker forks a job
    process per job), so a child never inherits an idle connection; SQLite forbids using a
    connection across a fork. PostgreSQL stays without a pool: with many workers, every
    process's idle pooled connection would count against the server's ``max_connections``
    (100 by default), and a psycopg connection closed in a child ends the parent's session.
    """
    path = uri[len("sqlite:///"):]
    if path != ":memory:":
        _prepare_sqlite_path(uri, path)
    engine = sa.create_engine(uri, connect_args={"timeout": _BUSY_TIMEOUT_SECONDS})
    sa.event.listen(engine, "connect", _configure_sqlite_connection)
    sa.event.listen(engine, "begin", _begin_sqlite_transaction)
    _pooled_engines.add(engine)
    return engine


_pooled_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def _drop_pooled_connections() -> None:
    """Close the idle connections of every pooled engine and give it a new pool (run just before a
    fork); a connection another thread is using stays with that thread and closes when it is done."""
    for engine in list(_pooled_engines):
        engine.dispose()


os.register_at_fork(before=_drop_pooled_connections)


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


def _begin_sqlite_transaction(connection: Connection) -> None:
    """Writers take SQLite's write lock up front (BEGIN IMMEDIATE): a claim's read and update are one atomic step."""
    write = connection.get_execution_options().get("hyperspace_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _reason(error: SQLAlchemyError) -> str:
    original = getattr(error, "orig", None)
    return " ".join(str(original if original is not None else error).split())
