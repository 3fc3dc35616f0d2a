"""SQL backend of the store (SQLAlchemy Core): SQLite now, the same tables on other databases later.

SQLite runs in WAL mode with a generous busy timeout so that many processes on one
machine can record runs into one file at once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.store.base import (
    FINAL_STATUSES,
    RUN_FIELDS,
    RUNNING,
    MetricPoint,
    RunNotFoundError,
    Store,
)

SCHEMA_VERSION = 1
_BUSY_TIMEOUT_SECONDS = 60

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
    sa.Column("experiment", sa.JSON),
    sa.Column("command", sa.String(256)),
    sa.Column("host", sa.JSON),
    sa.Column("start_time", sa.DateTime, index=True),
    sa.Column("heartbeat", sa.DateTime),
    sa.Column("stop_time", sa.DateTime),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("config", sa.JSON),
    sa.Column("result", sa.JSON),
    sa.Column("info", sa.JSON),
    sa.Column("captured_out", sa.Text),
    sa.Column("fail_trace", sa.JSON),
    sa.Column("meta", sa.JSON),
    sa.Column("artifacts", sa.JSON),
    sa.Column("resources", sa.JSON),
    sa.Column("format", sa.String(64)),
    sa.Column("task", sa.String(256), index=True),
    sa.Column("overrides", sa.JSON),
    sa.Column("config_given", sa.JSON),
    sa.Column("config_hash", sa.String(64), index=True),
    sa.Column("objective", sa.Float),
    sa.Column("code_version", sa.JSON),
    sa.Column("seed", sa.BigInteger),
    sa.Column("output_dir", sa.Text),
    sa.Column("choices", sa.JSON),
    sa.Column("job_id", sa.Integer, index=True),
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


class SQLStore(Store):
    """A store in one SQL database, reached through SQLAlchemy Core."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._engine = _connect(uri)
        try:
            self._create_schema()
        except SQLAlchemyError as error:
            self._engine.dispose()
            raise HyperspaceError(f"cannot open store {uri}: {_reason(error)}") from error

    def _create_schema(self) -> None:
        with self._engine.begin() as connection:
            for table in _metadata.sorted_tables:
                connection.execute(sa.schema.CreateTable(table, if_not_exists=True))
                for index in table.indexes:
                    connection.execute(sa.schema.CreateIndex(index, if_not_exists=True))
        self._check_schema_version()

    def _check_schema_version(self) -> None:
        try:
            with self._engine.begin() as connection:
                connection.execute(_store_meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
        except IntegrityError:
            pass  # another process (or an earlier run) wrote it first
        with self._engine.connect() as connection:
            found = connection.execute(
                sa.select(_store_meta.c.value).where(_store_meta.c.key == "schema_version")
            ).scalar_one()
        if int(found) != SCHEMA_VERSION:
            raise HyperspaceError(
                f"store {self.uri} has schema version {found}, this hyperspace_hydra reads version "
                f"{SCHEMA_VERSION}: use the hyperspace_hydra version that wrote it"
            )

    def start_run(self, document: Mapping[str, Any]) -> int:
        values = {field: document.get(field) for field in RUN_FIELDS}
        values["status"] = RUNNING
        with self._engine.begin() as connection:
            return int(connection.execute(_runs.insert().values(**values)).inserted_primary_key[0])

    def update_run(self, run_id: int, changes: Mapping[str, Any]) -> None:
        with self._engine.begin() as connection:
            updated = connection.execute(
                _runs.update().where(_runs.c.id == run_id, _runs.c.status == RUNNING).values(**_run_values(changes))
            ).rowcount
            if not updated:
                self._require_run(connection, run_id)

    def finish_run(self, run_id: int, status: str, changes: Mapping[str, Any]) -> bool:
        if status not in FINAL_STATUSES:
            raise ValueError(f"{status!r} is not a final status; expected one of {sorted(FINAL_STATUSES)}")
        values = {**_run_values(changes), "status": status}
        with self._engine.begin() as connection:
            updated = connection.execute(
                _runs.update().where(_runs.c.id == run_id, _runs.c.status == RUNNING).values(**values)
            ).rowcount
            if not updated:
                self._require_run(connection, run_id)
            return bool(updated)

    def add_metrics(self, run_id: int, points: Iterable[MetricPoint]) -> None:
        rows = [
            {"run_id": run_id, "name": p.name, "step": p.step, "value": p.value, "timestamp": p.timestamp}
            for p in points
        ]
        with self._engine.begin() as connection:
            self._require_run(connection, run_id)
            if rows:
                connection.execute(_metrics.insert(), rows)

    def get_run(self, run_id: int) -> dict[str, Any]:
        with self._engine.connect() as connection:
            row = connection.execute(sa.select(_runs).where(_runs.c.id == run_id)).mappings().first()
        if row is None:
            raise RunNotFoundError(f"no run with id {run_id} in store {self.uri}")
        return _document(row)

    def list_runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        query = sa.select(_runs).order_by(_runs.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [_document(row) for row in reversed(rows)]

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

    def close(self) -> None:
        self._engine.dispose()

    def _require_run(self, connection: Connection, run_id: int) -> None:
        if connection.execute(sa.select(_runs.c.id).where(_runs.c.id == run_id)).first() is None:
            raise RunNotFoundError(f"no run with id {run_id} in store {self.uri}")


def _run_values(changes: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(changes) - set(RUN_FIELDS)
    if unknown or "status" in changes:
        raise ValueError(f"cannot set run fields {sorted(unknown | ({'status'} & set(changes)))} this way")
    return dict(changes)


def _document(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"_id": row["id"], **{field: row[field] for field in RUN_FIELDS}}


def _connect(uri: str) -> Engine:
    path = uri[len("sqlite:///"):]
    if path != ":memory:":
        _prepare_sqlite_path(uri, path)
    engine = sa.create_engine(uri, connect_args={"timeout": _BUSY_TIMEOUT_SECONDS})
    sa.event.listen(engine, "connect", _configure_sqlite_connection)
    return engine


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
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _reason(error: SQLAlchemyError) -> str:
    original = getattr(error, "orig", None)
    return str(original) if original is not None else str(error).splitlines()[0]
