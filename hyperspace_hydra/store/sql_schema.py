"""The tables of the SQL store (SQLite and PostgreSQL alike) and the upgrades that bring an older schema up to date."""

from __future__ import annotations

from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from hyperspace_hydra.store.base import METRIC_NAME_LENGTH, RUNNING

SCHEMA_VERSION = 4
"""1: the first tables. 2: runs.sweep_id (a run of a local search has no job), sweeps.state. 3: sweeps.copied_from
and jobs.copied_from (the original of a copy made by ``store copy``). 4: the workers table (the registry of workers)."""


class _JSONColumn(sa.types.TypeDecorator[Any]):
    """JSON columns; JSONB on PostgreSQL so that the database can filter on nested values.

    As ``sa.JSON().with_variant(postgresql.JSONB(), "postgresql")``, but SQLAlchemy's PostgreSQL dialects (a
    package that imports all of its drivers, ~20 ms) are imported only by a store that uses one."""

    impl = sa.JSON
    cache_ok = True
    should_evaluate_none = True  # as sa.JSON's: None is stored as JSON null

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())

    def coerce_compared_value(self, op: Any, value: Any) -> Any:
        """The type of a value compared with (or an operand of an operator on) a column, as sa.JSON picks it: a path
        string given to ``->`` stays a string, not a JSON document."""
        coerced = self.impl_instance.coerce_compared_value(op, value)
        return self if coerced is self.impl_instance else coerced


_JSON = _JSONColumn()


METADATA = sa.MetaData()


STORE_META = sa.Table(
    "store_meta",
    METADATA,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)


RUNS = sa.Table(
    "runs",
    METADATA,
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


SWEEPS = sa.Table(
    "sweeps",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study", sa.String(256), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("command", sa.Text),
    sa.Column("spec", _JSON),
    sa.Column("state", sa.String(16)),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("copied_from", _JSON),
    sqlite_autoincrement=True,
)


JOBS = sa.Table(
    "jobs",
    METADATA,
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
    sa.Column("copied_from", _JSON),
    sa.Index("ix_jobs_claim_order", "study", "state", "priority", "id"),
    sa.Index("ix_jobs_state_lease", "state", "lease_expires_at"),
    sqlite_autoincrement=True,
)


METRICS = sa.Table(
    "metrics",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("name", sa.String(METRIC_NAME_LENGTH), nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("timestamp", sa.DateTime),
    sa.Index("ix_metrics_run_name_step", "run_id", "name", "step"),
    sqlite_autoincrement=True,
)


WORKERS = sa.Table(
    "workers",
    METADATA,
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("study", sa.String(256), nullable=False),
    sa.Column("host", sa.String(256), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("slurm_job", sa.String(64)),
    sa.Column("processes", sa.Integer, nullable=False),
    sa.Column("lease_seconds", sa.Float, nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("last_seen", sa.DateTime, nullable=False),
    sa.Column("job_ids", _JSON, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
)
"""The registry of workers (see :meth:`Store.register_worker`), one row per worker named as its jobs name it."""


def _upgrade_to_2(connection: Connection) -> None:
    """Runs get ``sweep_id`` (filled in from their jobs), sweeps ``state`` (RUNNING for searches: they end as they advance)."""
    connection.exec_driver_sql("ALTER TABLE runs ADD COLUMN sweep_id INTEGER")
    [index] = [index for index in RUNS.indexes if list(index.columns.keys()) == ["sweep_id"]]
    connection.execute(sa.schema.CreateIndex(index, if_not_exists=True))
    connection.execute(
        RUNS.update()
        .where(RUNS.c.job_id.is_not(None))
        .values(sweep_id=sa.select(JOBS.c.sweep_id).where(JOBS.c.id == RUNS.c.job_id).scalar_subquery())
    )
    connection.exec_driver_sql("ALTER TABLE sweeps ADD COLUMN state VARCHAR(16)")
    connection.execute(SWEEPS.update().where(SWEEPS.c.kind == "search").values(state=RUNNING))


def _upgrade_to_3(connection: Connection) -> None:
    """Sweeps and jobs get ``copied_from`` (empty: none of them is a copy yet)."""
    json_type = _JSON.compile(dialect=connection.dialect)
    for table in ("sweeps", "jobs"):
        connection.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN copied_from {json_type}")


def _upgrade_to_4(connection: Connection) -> None:
    """The registry of workers, empty: the workers running now show once they start again."""
    connection.execute(sa.schema.CreateTable(WORKERS, if_not_exists=True))


UPGRADES: list[Callable[[Connection], None]] = [_upgrade_to_2, _upgrade_to_3, _upgrade_to_4]
"""``UPGRADES[v - 1]`` brings schema version ``v`` to ``v + 1``."""
