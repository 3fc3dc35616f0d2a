"""SQL backend of the store (SQLAlchemy Core): SQLite and PostgreSQL, the same tables on both.

This module holds :class:`SQLStore`, the store's operations as transactions; the tables and their
upgrades live in :mod:`~hyperspace_hydra.store.sql_schema`, conditions and orders as SQL in
:mod:`~hyperspace_hydra.store.sql_conditions`, connecting and what a database error means in
:mod:`~hyperspace_hydra.store.sql_connection`. On PostgreSQL (driver psycopg 3) claims lock the
claimed row with ``FOR UPDATE SKIP LOCKED``, so concurrent workers never wait for each other; JSON
columns are JSONB.
"""


from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.settings import redact_credentials
from hyperspace_hydra.store.base import (
    CANCELLED,
    COMPLETED,
    DEDUPE_STATES,
    DIED,
    FAILED,
    FINAL_STATUSES,
    ID_RANGE,
    INTERRUPTED,
    JOB_FINAL_STATES,
    JOB_STATE_AFTER_RUN,
    QUEUED,
    RUN_FIELDS,
    RUN_STATUS_AFTER_WORKER_END,
    RUNNING,
    STALE_RUN,
    STALE_RUN_SECONDS,
    SWEEP_FINAL_STATES,
    WORKER_KEPT_SECONDS,
    WORKING,
    Adoption,
    Claim,
    ClaimedJob,
    Condition,
    EnqueueResult,
    FinishedRun,
    JobNotFoundError,
    MetricPoint,
    NewJob,
    RunNotFoundError,
    Store,
    StoreNotFoundError,
    WholeRow,
    WorkerBeat,
    WorkerInfo,
    beat_values,
    check_new_jobs,
    check_sweep_state,
    claim_lost,
    claimed_job_values,
    ended_job_changes,
    expired_job_changes,
    finished_run_values,
    id_taken,
    job_error,
    kept_ids,
    kept_run_ids,
    known_ids,
    lost_attempt_run_changes,
    new_jobs_of,
    prunable_worker,
    registered_worker_values,
    run_changes,
    run_fields,
    shown_worker,
    utcnow,
    whole_job_values,
    whole_sweep_values,
)
from hyperspace_hydra.store.grouping import ConfigGroup
from hyperspace_hydra.store.retry import StoreUnavailableError
from hyperspace_hydra.store.sql_conditions import id_is, job_filters, run_filters, run_order
from hyperspace_hydra.store.sql_connection import (
    database_exists,
    error_reason,
    is_unavailable,
    open_engine,
    quick_check,
    reachable,
)
from hyperspace_hydra.store.sql_grouping import config_group, group_query
from hyperspace_hydra.store.sql_schema import JOBS, METADATA, METRICS, RUNS, SCHEMA_VERSION, STORE_META, SWEEPS, UPGRADES, WORKERS

_SCHEMA_CHECKED: set[str] = set()
"""Stores whose tables this process (or the worker it was forked from) has created; later opens only read the version."""


assert set(RUN_FIELDS) == {column.name for column in RUNS.columns} - {"id"}


class SQLStore(Store):
    """A store in one SQL database, reached through SQLAlchemy Core."""

    usable_after_fork = True
    """SQLite's pooled connections are dropped before every fork, and PostgreSQL's are not pooled (see
    :func:`~hyperspace_hydra.store.sql_connection.open_engine`): a forked process opens its own."""

    def __init__(self, uri: str, read_only: bool = False, create: bool = True) -> None:
        """``read_only`` and ``create``: see :func:`~hyperspace_hydra.store.open_store` (a store opened read-only is never created)."""
        self.uri = uri
        self._read_only = read_only
        existing_only = read_only or not create
        if existing_only and not database_exists(uri):
            raise StoreNotFoundError(redact_credentials(uri))  # before connecting: SQLite would create the file
        self._engine = open_engine(uri, read_only)
        self._writer = self._engine.execution_options(hyperspace_write=True)
        try:
            if existing_only:
                self._require_schema()
            if read_only or (uri in _SCHEMA_CHECKED and database_exists(uri)):
                self._check_schema_version()
            else:
                self._create_schema()
        except SQLAlchemyError as error:
            self._engine.dispose()
            unavailable = isinstance(error, DBAPIError) and is_unavailable(error, self._engine.dialect.name)
            raise (StoreUnavailableError if unavailable else HyperspaceError)(f"cannot open store {redact_credentials(uri)}: {error_reason(error)}") from error
        if not read_only:
            _SCHEMA_CHECKED.add(uri)

    def _create_schema(self) -> None:
        """Create what is missing: tables, the version row, indexes; an older store is upgraded before its indexes are made."""
        with self._writer.begin() as connection:
            for table in METADATA.sorted_tables:
                connection.execute(sa.schema.CreateTable(table, if_not_exists=True))
        try:
            with self._writer.begin() as connection:
                connection.execute(STORE_META.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
        except IntegrityError:
            pass  # another process (or an earlier run) wrote it first
        self._check_schema_version()
        with self._writer.begin() as connection:
            for table in METADATA.sorted_tables:
                for index in table.indexes:
                    connection.execute(sa.schema.CreateIndex(index, if_not_exists=True))

    def _require_schema(self) -> None:
        """:class:`StoreNotFoundError` unless the database holds a store (its version table)."""
        with self._engine.connect() as connection:
            if not sa.inspect(connection).has_table(STORE_META.name):
                self._engine.dispose()
                raise StoreNotFoundError(redact_credentials(self.uri))

    def _check_schema_version(self) -> None:
        with self._engine.connect() as connection:
            found = connection.execute(
                sa.select(STORE_META.c.value).where(STORE_META.c.key == "schema_version")
            ).scalar_one()
        if int(found) < SCHEMA_VERSION and self._read_only:
            raise HyperspaceError(
                f"store {redact_credentials(self.uri)} has schema version {found}, older than this hyperspace_hydra's {SCHEMA_VERSION}, "
                "and is opened only to be read: open it once to write (hyperspace store check --store URI upgrades it)"
            )
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
                sa.select(STORE_META.c.value).where(STORE_META.c.key == "schema_version").with_for_update()
            ).scalar_one()
            for upgrade in UPGRADES[int(version) - 1:]:
                upgrade(connection)
            connection.execute(STORE_META.update().where(STORE_META.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))

    # runs

    @reachable
    def start_run(self, document: Mapping[str, Any], claim: Claim | None = None) -> int:
        with self._writer.begin() as connection:
            return self._start_run(connection, document, claim)

    @reachable
    def update_run(self, run_id: int, changes: Mapping[str, Any], claim: Claim | None = None) -> None:
        with self._writer.begin() as connection:
            self._update_run(connection, run_id, changes, claim)

    @reachable
    def finish_run(self, run_id: int, status: str, changes: Mapping[str, Any], claim: Claim | None = None) -> bool:
        if status not in FINAL_STATUSES:
            raise ValueError(f"{status!r} is not a final status; expected one of {sorted(FINAL_STATUSES)}")
        with self._writer.begin() as connection:
            return self._finish_run(connection, run_id, status, changes, claim)

    @reachable
    def rehearse_job_run(self, claim: Claim) -> None:
        """One transaction, rolled back: what a job process executes to record a run of the job under ``claim`` (started,
        a heartbeat, a batch of metrics, ended each usual way with the last heartbeat held, see
        :class:`~hyperspace_hydra.observer.StoreObserver`), with empty values. The engine keeps those statements compiled,
        and every job process forked afterwards finds them in the cache it inherits. On PostgreSQL the rolled-back runs
        still take their ids from the sequence: ids stay unique, not contiguous."""
        beat: dict[str, Any] = {"info": {}, "captured_out": "", "heartbeat": None}
        endings: dict[str, dict[str, Any]] = {
            COMPLETED: {"stop_time": None, "result": None, "objective": None},
            FAILED: {"stop_time": None, "fail_trace": []},
            INTERRUPTED: {"stop_time": None},
        }
        points = [MetricPoint("rehearsal", step, 0.0, utcnow()) for step in range(2)]  # a batch: one executemany
        with self._writer.connect() as connection:
            transaction = connection.begin()
            try:
                for status, changes in endings.items():
                    run_id = self._start_run(connection, {}, claim)
                    self._update_run(connection, run_id, beat, claim)
                    self._add_metrics(connection, run_id, points, claim)
                    self._finish_run(connection, run_id, status, {**beat, **changes}, claim)
                    connection.execute(JOBS.update().where(JOBS.c.id == claim.job_id).values(state=RUNNING, token=claim.token))
            finally:
                transaction.rollback()

    def _start_run(self, connection: Connection, document: Mapping[str, Any], claim: Claim | None) -> int:
        values = {field: document.get(field) for field in RUN_FIELDS}
        values["status"] = RUNNING
        _require_claim(connection, claim)
        values["heartbeat"] = _server_now(connection)
        run_id = _inserted_id(connection.execute(_INSERT_RUN, values))
        if claim is not None:
            connection.execute(_SET_HELD_JOB, {**_held(claim), "run_id": run_id})
        return run_id

    def _update_run(self, connection: Connection, run_id: int, changes: Mapping[str, Any], claim: Claim | None) -> None:
        _require_claim(connection, claim)
        values = run_changes(changes)
        if "heartbeat" in values:
            values["heartbeat"] = _server_now(connection)
        if not _update_running_run(connection, run_id, values):
            self._require_run(connection, run_id)

    def _finish_run(self, connection: Connection, run_id: int, status: str, changes: Mapping[str, Any], claim: Claim | None) -> bool:
        values = run_changes(changes)
        if claim is not None:
            job_state = connection.execute(_JOB_STATE, {_JOB: claim.job_id}).first()
            if job_state is None or tuple(job_state) != (RUNNING, claim.token):
                lost_status = INTERRUPTED if job_state is not None and job_state.state == CANCELLED else DIED
                if not _update_running_run(connection, run_id, {**values, "status": lost_status}):
                    self._require_run(connection, run_id)
                return False
        finished = _update_running_run(connection, run_id, {**values, "status": status})
        if not finished:
            self._require_run(connection, run_id)  # RunNotFoundError, or it had ended already
        elif claim is not None:
            _end_claimed_job(connection, claim, JOB_STATE_AFTER_RUN[status], error=job_error(status, values), run_id=run_id)
        return finished

    @reachable
    def end_stale_runs(self) -> list[int]:
        with self._writer.begin() as connection:
            now = _server_now(connection)
            stale = (RUNS.c.status == RUNNING) & RUNS.c.job_id.is_(None) & (RUNS.c.heartbeat < now - dt.timedelta(seconds=STALE_RUN_SECONDS))
            ids = [row.id for row in connection.execute(sa.select(RUNS.c.id).where(stale).with_for_update(skip_locked=True))]
            if ids:
                _finish_runs(connection, RUNS.c.id.in_(ids) & (RUNS.c.status == RUNNING), DIED, {"stop_time": now, "fail_trace": [STALE_RUN]})
        return ids

    @reachable
    def rewrite_config(
        self, run_id: int, config: Mapping[str, Any], config_hash: str, info: Mapping[str, Any], *, adoption: Adoption | None = None
    ) -> None:
        """One transaction; an adoption reads the run's ``experiment`` (locking its row) to change its name."""
        values: dict[str, Any] = {"config": config, "config_hash": config_hash, "info": info}
        with self._writer.begin() as connection:
            if adoption is not None:
                experiment = connection.execute(sa.select(RUNS.c.experiment).where(id_is(RUNS.c.id, run_id)).with_for_update()).scalar()
                values.update(experiment={**(experiment or {}), "name": adoption.experiment_name}, **adoption.fields())
            updated = connection.execute(RUNS.update().where(id_is(RUNS.c.id, run_id)).values(**values))
            if not updated.rowcount:
                raise RunNotFoundError(f"no run with id {run_id} in store {redact_credentials(self.uri)}")

    @reachable
    def add_finished_runs(self, runs: Sequence[FinishedRun]) -> list[int]:
        """One transaction: the runs' rows (one executemany when every run keeps its id), every metric point (one
        executemany), then the jobs that name their run."""
        prepared = [finished_run_values(run) for run in runs]
        kept_run_ids(runs)
        with self._writer.begin() as connection:
            run_ids = self._insert_whole(connection, RUNS, [values for values, _ in prepared], [run.run_id for run in runs])
            rows = [_metric_row(run_id, point) for run_id, (_, points) in zip(run_ids, prepared) for point in points]
            if rows:
                connection.execute(METRICS.insert(), rows)
            for run_id, (values, _), run in zip(run_ids, prepared, runs):
                if run.is_job_run:
                    connection.execute(JOBS.update().where(JOBS.c.id == values["job_id"]).values(run_id=run_id))
        return run_ids

    @reachable
    def add_whole_sweeps(self, sweeps: Sequence[WholeRow]) -> list[int]:
        values = [whole_sweep_values(sweep) for sweep in sweeps]
        kept_ids(sweeps, "sweep")
        with self._writer.begin() as connection:
            return self._insert_whole(connection, SWEEPS, values, [sweep.row_id for sweep in sweeps])

    @reachable
    def add_whole_jobs(self, jobs: Sequence[WholeRow]) -> list[int]:
        values = [whole_job_values(job) for job in jobs]
        kept_ids(jobs, "job")
        sweep_ids = sorted({job["sweep_id"] for job in values if job["sweep_id"] is not None})
        with self._writer.begin() as connection:
            missing = sorted(set(sweep_ids) - set(_existing_ids(connection, SWEEPS, sweep_ids)))
            if missing:
                raise JobNotFoundError(f"no sweep with id {missing[0]} in store {redact_credentials(self.uri)}")
            return self._insert_whole(connection, JOBS, values, [job.row_id for job in jobs])

    def _insert_whole(self, connection: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], ids: Sequence[int | None]) -> list[int]:
        """Insert ``rows`` of ``table``, each keeping its id in ``ids`` (None: a new one; one executemany when every
        row keeps its id); return their ids. :func:`id_taken` if a kept id is in the table."""
        kept = [identifier for identifier in ids if identifier is not None]
        taken = _existing_ids(connection, table, kept)
        if taken:
            raise id_taken(redact_credentials(self.uri), str(table.name)[:-1], taken[0])
        if kept and self._engine.dialect.name == "postgresql":
            _advance_ids(connection, table, max(kept))  # first: new ids of this batch come after the kept ones
        if len(kept) == len(rows):
            if rows:
                connection.execute(table.insert(), [{**row, "id": identifier} for row, identifier in zip(rows, ids)])
            new_ids = list(kept)
        else:
            new_ids = [_insert_row(connection, table, row, identifier) for row, identifier in zip(rows, ids)]
        return new_ids

    @reachable
    def add_metrics(self, run_id: int, points: Iterable[MetricPoint], claim: Claim | None = None) -> None:
        with self._writer.begin() as connection:
            self._add_metrics(connection, run_id, points, claim)

    def _add_metrics(self, connection: Connection, run_id: int, points: Iterable[MetricPoint], claim: Claim | None) -> None:
        rows = [_metric_row(run_id, point) for point in points]
        _require_claim(connection, claim)
        self._require_run(connection, run_id)
        if rows:
            connection.execute(METRICS.insert(), rows)

    @reachable
    def get_run(self, run_id: int) -> dict[str, Any]:
        with self._engine.connect() as connection:
            row = connection.execute(sa.select(RUNS).where(id_is(RUNS.c.id, run_id))).mappings().first()
        if row is None:
            raise RunNotFoundError(f"no run with id {run_id} in store {redact_credentials(self.uri)}")
        return _document(row)

    @reachable
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
        order = [RUNS.c.id.desc()] if sort is None else run_order(dialect, sort)
        selected = run_fields(fields)
        columns = [RUNS.c.id, *(RUNS.c[field] for field in selected)]
        query = sa.select(*columns).where(*run_filters(dialect, task, sweep_id, status, where)).order_by(*order).limit(limit).offset(offset or None)
        keys = ("_id", *selected)
        with self._engine.connect() as connection:
            documents = [dict(zip(keys, row)) for row in connection.execute(query).all()]  # plain tuples: ~3x faster than mappings
        return documents[::-1] if sort is None else documents  # unsorted: the newest `limit` runs, oldest first

    @reachable
    def count_runs(self, *, task: str | None = None, sweep_id: int | None = None, status: str | None = None, where: Sequence[Condition] = ()) -> int:
        filters = run_filters(self._engine.dialect.name, task, sweep_id, status, where)
        with self._engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(RUNS).where(*filters)).scalar_one())

    @reachable
    def group_runs(self, where: Sequence[Condition], without: Sequence[str] = (), values: Sequence[str] = ()) -> list[ConfigGroup]:
        """One query: the database groups the runs (see :mod:`hyperspace_hydra.store.sql_grouping`)."""
        query = group_query(self._engine.dialect.name, run_filters(self._engine.dialect.name, None, None, None, where), without, values)
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return sorted((config_group(row, values) for row in rows), key=lambda group: group.runs[0].run_id)

    @reachable
    def get_metrics(self, run_id: int) -> dict[str, dict[str, list[Any]]]:
        query = (
            sa.select(METRICS.c.name, METRICS.c.step, METRICS.c.value, METRICS.c.timestamp)
            .where(METRICS.c.run_id == run_id)
            .order_by(METRICS.c.name, METRICS.c.step, METRICS.c.id)
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

    @reachable
    def get_metric_series(self, run_ids: Sequence[int], name: str) -> dict[int, tuple[list[int], list[float]]]:
        series: dict[int, tuple[list[int], list[float]]] = {}
        ids = known_ids(run_ids)
        if not ids:
            return series
        query = (
            sa.select(METRICS.c.run_id, METRICS.c.step, METRICS.c.value)
            .where(METRICS.c.run_id.in_(ids), METRICS.c.name == name)
            .order_by(METRICS.c.run_id, METRICS.c.step, METRICS.c.id)
        )
        with self._engine.connect() as connection:
            for run_id, step, value in connection.execute(query):
                steps, values = series.setdefault(run_id, ([], []))
                steps.append(step)
                values.append(value)
        return series

    # queue

    @reachable
    def enqueue(self, study: str, jobs: Sequence[NewJob], sweep: Mapping[str, Any], dedupe: bool = True, max_attempts: int = 3) -> EnqueueResult:
        check_new_jobs(jobs, max_attempts)
        now = utcnow()
        with self._writer.begin() as connection:
            existing = self._existing_hashes(connection, study, [job.config_hash for job in jobs]) if dedupe else set()
            kept = new_jobs_of(jobs, existing, dedupe)
            if jobs and not any(kept):
                return EnqueueResult(None, [None] * len(jobs))
            sweep_id = _inserted_id(
                connection.execute(
                    SWEEPS.insert().values(
                        study=study, kind=sweep.get("kind", "grid"), command=sweep.get("command"), spec=sweep.get("spec"), state=sweep.get("state"), created_at=now
                    )
                )
            )
            job_ids = [
                None if job is None else _inserted_id(connection.execute(JOBS.insert().values(**_job_row(study, sweep_id, job, max_attempts, now))))
                for job in kept
            ]
        return EnqueueResult(sweep_id, job_ids)

    @reachable
    def add_jobs(self, sweep_id: int, jobs: Sequence[NewJob], expected_jobs: int, max_attempts: int = 3) -> list[int] | None:
        check_new_jobs(jobs, max_attempts)
        now = utcnow()
        with self._writer.begin() as connection:
            sweep = connection.execute(sa.select(SWEEPS.c.study, SWEEPS.c.state).where(SWEEPS.c.id == sweep_id).with_for_update()).first()
            if sweep is None:
                raise JobNotFoundError(f"no sweep with id {sweep_id} in store {redact_credentials(self.uri)}")
            study, state = sweep
            count = connection.execute(sa.select(sa.func.count()).select_from(JOBS).where(JOBS.c.sweep_id == sweep_id)).scalar_one()
            if count != expected_jobs or state in SWEEP_FINAL_STATES:
                return None
            return [
                _inserted_id(connection.execute(JOBS.insert().values(**_job_row(study, sweep_id, job, max_attempts, now))))
                for job in jobs
            ]

    @reachable
    def end_sweep(self, sweep_id: int, state: str) -> bool:
        check_sweep_state(state)
        with self._writer.begin() as connection:
            ended = connection.execute(
                SWEEPS.update().where(SWEEPS.c.id == sweep_id, sa.or_(SWEEPS.c.state.is_(None), SWEEPS.c.state.not_in(SWEEP_FINAL_STATES))).values(state=state)
            ).rowcount
            if not ended and connection.execute(sa.select(SWEEPS.c.id).where(SWEEPS.c.id == sweep_id)).first() is None:
                raise JobNotFoundError(f"no sweep with id {sweep_id} in store {redact_credentials(self.uri)}")
        return bool(ended)

    def _existing_hashes(self, connection: Connection, study: str, hashes: Sequence[str]) -> set[str]:
        found: set[str] = set()
        unique = sorted(set(hashes))
        for start in range(0, len(unique), _IN_CHUNK):
            chunk = unique[start : start + _IN_CHUNK]
            found.update(connection.execute(
                sa.select(JOBS.c.config_hash).where(JOBS.c.study == study, JOBS.c.state.in_(DEDUPE_STATES), JOBS.c.config_hash.in_(chunk))
            ).scalars())  # fmt: skip
            found.update(connection.execute(
                sa.select(RUNS.c.config_hash).where(RUNS.c.status == COMPLETED, RUNS.c.config_hash.in_(chunk))
            ).scalars())  # fmt: skip
        return found

    @reachable
    def server_time(self) -> dt.datetime:
        with self._engine.connect() as connection:
            return _server_now(connection)

    @reachable
    def claim(self, study: str, worker: str, lease_seconds: float) -> ClaimedJob | None:
        if self._engine.dialect.name == "postgresql":
            return self._claim_in_one_statement(study, worker, lease_seconds)
        with self._writer.begin() as connection:
            now = _server_now(connection)
            row = connection.execute(_NEXT_QUEUED_JOB, {_STUDY: study}).first()
            if row is None:
                return None
            token = uuid.uuid4().hex
            claimed = {"state": RUNNING, "worker": worker, "token": token, "claimed_at": now, "lease_expires_at": now + dt.timedelta(seconds=lease_seconds)}
            connection.execute(_SET_JOB, {_JOB: row.id, **claimed})
            held = connection.execute(_WORKERS_JOB_IDS, {_WORKER: worker}).first()
            if held is not None:
                connection.execute(_SET_WORKER, {_WORKER: worker, **claimed_job_values(held.job_ids or [], row.id, now)})
        return ClaimedJob(Claim(row.id, token), study, row.sweep_id, list(row.overrides), row.output_dir, row.attempts)

    def _claim_in_one_statement(self, study: str, worker: str, lease_seconds: float) -> ClaimedJob | None:
        """:meth:`claim` on PostgreSQL: one statement, one round trip to the server (:data:`_CLAIM_POSTGRESQL`), where the
        transaction of the generic claim took seven. A statement is a transaction of its own, so it runs in autocommit."""
        token = uuid.uuid4().hex
        parameters = {"study": study, "worker": worker, "token": token, "lease": float(lease_seconds), "queued": QUEUED, "running": RUNNING, "working": WORKING}
        with self._writer.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
            row = connection.execute(_CLAIM_POSTGRESQL, parameters).first()
        if row is None:
            return None
        return ClaimedJob(Claim(row.id, token), study, row.sweep_id, list(row.overrides), row.output_dir, row.attempts)

    @reachable
    def renew_leases(self, claims: Sequence[Claim], lease_seconds: float, beat: WorkerBeat | None = None) -> set[int]:
        lost = set()
        with self._writer.begin() as connection:
            now = _server_now(connection)
            expires = now + dt.timedelta(seconds=lease_seconds)
            for claim in claims:
                renewed = connection.execute(
                    JOBS.update().where(*_holds(claim)).values(lease_expires_at=expires)
                ).rowcount
                if not renewed:
                    lost.add(claim.job_id)
            if beat is not None:
                held = {claim.job_id for claim in claims} - lost
                connection.execute(WORKERS.update().where(WORKERS.c.name == beat.name).values(**beat_values(beat, held, now)))
        return lost

    @reachable
    def register_worker(self, worker: WorkerInfo) -> None:
        with self._writer.begin() as connection:
            now = _server_now(connection)
            old = sa.select(WORKERS).where(WORKERS.c.last_seen < now - dt.timedelta(seconds=WORKER_KEPT_SECONDS))
            prunable = [row["name"] for row in connection.execute(old).mappings() if prunable_worker(dict(row), now)]
            connection.execute(WORKERS.delete().where(WORKERS.c.name.in_([*prunable, worker.name])))
            connection.execute(WORKERS.insert().values(**registered_worker_values(worker, now)))

    @reachable
    def worker_stopped(self, name: str) -> None:
        with self._writer.begin() as connection:
            connection.execute(WORKERS.update().where(WORKERS.c.name == name).values(**beat_values(None, (), _server_now(connection))))

    @reachable
    def list_workers(self, study: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(WORKERS).order_by(WORKERS.c.started_at.desc(), WORKERS.c.name)
        if study is not None:
            query = query.where(WORKERS.c.study == study)
        with self._engine.connect() as connection:
            now = _server_now(connection)
            return [shown_worker(dict(row), now) for row in connection.execute(query).mappings()]

    @reachable
    def requeue_expired(self) -> list[int]:
        with self._writer.begin() as connection:
            now = _server_now(connection)
            expired = connection.execute(
                sa.select(JOBS.c.id, JOBS.c.attempts, JOBS.c.max_attempts)
                .where(JOBS.c.state == RUNNING, JOBS.c.lease_expires_at < now)
                .with_for_update(skip_locked=True)
            ).all()
            for job in expired:
                connection.execute(JOBS.update().where(JOBS.c.id == job.id).values(**expired_job_changes(job.attempts, job.max_attempts, now)))
                _finish_runs(connection, _job_runs(job.id), DIED, lost_attempt_run_changes(now))
        return [job.id for job in expired]

    @reachable
    def end_job(self, claim: Claim, state: str, reason: str) -> bool:
        if state not in RUN_STATUS_AFTER_WORKER_END:
            raise ValueError(f"end_job takes {sorted(RUN_STATUS_AFTER_WORKER_END)}, not {state!r}")
        with self._writer.begin() as connection:
            holds = connection.execute(sa.select(JOBS.c.id).where(*_holds(claim))).first() is not None
            if holds:
                run_changes = {"stop_time": utcnow(), "fail_trace": [reason]}
                _finish_runs(connection, _job_runs(claim.job_id), RUN_STATUS_AFTER_WORKER_END[state], run_changes)
                _end_claimed_job(connection, claim, state, error=reason, run_id=None)
        return holds

    @reachable
    def list_jobs(
        self,
        study: str | None = None,
        sweep_id: int | None = None,
        job_ids: Sequence[int] | None = None,
        states: Sequence[str] | None = None,
        *,
        after_id: int = 0,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        query = sa.select(JOBS).where(*job_filters(study, sweep_id, job_ids, states), JOBS.c.id > after_id).order_by(JOBS.c.id).limit(limit)
        with self._engine.connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    @reachable
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
                JOBS.update().where(JOBS.c.state.in_(from_states), *job_filters(None, sweep_id, job_ids, None)).values(**values)
            ).rowcount

    @reachable
    def list_sweeps(self, study: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(SWEEPS).order_by(SWEEPS.c.id)
        if study is not None:
            query = query.where(SWEEPS.c.study == study)
        counts_query = sa.select(JOBS.c.sweep_id, JOBS.c.state, sa.func.count()).where(JOBS.c.sweep_id.is_not(None)).group_by(JOBS.c.sweep_id, JOBS.c.state)
        with self._engine.connect() as connection:
            sweeps = [dict(row) for row in connection.execute(query).mappings()]
            counts: dict[int, dict[str, int]] = {}
            for sweep_id, state, count in connection.execute(counts_query):
                counts.setdefault(sweep_id, {})[state] = count
        return [{**sweep, "counts": counts.get(sweep["id"], {})} for sweep in sweeps]

    @reachable
    def get_sweep(self, sweep_id: int) -> dict[str, Any]:
        with self._engine.connect() as connection:
            row = connection.execute(sa.select(SWEEPS).where(id_is(SWEEPS.c.id, sweep_id))).mappings().first()
            if row is None:
                raise JobNotFoundError(f"no sweep with id {sweep_id} in store {redact_credentials(self.uri)}")
            counts = connection.execute(
                sa.select(JOBS.c.state, sa.func.count()).where(JOBS.c.sweep_id == sweep_id).group_by(JOBS.c.state)
            ).all()
        return {**dict(row), "counts": {state: count for state, count in counts}}

    @reachable
    def summary(self) -> dict[str, Any]:
        sqlite = self._engine.dialect.name == "sqlite"
        with self._engine.connect() as connection:
            if sqlite:
                quick_check(connection, self.uri)
            version_query = "select sqlite_version()" if sqlite else "show server_version"
            server_version = connection.exec_driver_sql(version_query).scalar_one()
            schema_version = connection.execute(sa.select(STORE_META.c.value).where(STORE_META.c.key == "schema_version")).scalar_one()
            jobs = connection.execute(sa.select(JOBS.c.state, sa.func.count()).group_by(JOBS.c.state)).all()
            runs = connection.execute(sa.select(RUNS.c.status, sa.func.count()).group_by(RUNS.c.status)).all()
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
        if connection.execute(sa.select(RUNS.c.id).where(id_is(RUNS.c.id, run_id))).first() is None:
            raise RunNotFoundError(f"no run with id {run_id} in store {redact_credentials(self.uri)}")


_IN_CHUNK = 500


_CLAIM_POSTGRESQL = sa.text("""
    WITH now AS MATERIALIZED (SELECT timezone('UTC', clock_timestamp()) AS at),
    picked AS (
        SELECT id FROM jobs WHERE study = :study AND state = :queued
        ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED
    ),
    claimed AS (
        UPDATE jobs SET state = :running, worker = :worker, token = :token, claimed_at = now.at,
            lease_expires_at = now.at + make_interval(secs => :lease)
        FROM picked, now WHERE jobs.id = picked.id
        RETURNING jobs.id, jobs.sweep_id, jobs.overrides, jobs.output_dir, jobs.attempts
    ),
    registered AS (
        UPDATE workers SET last_seen = now.at, state = :working, job_ids = (
            SELECT jsonb_agg(held ORDER BY held) FROM (
                SELECT jsonb_array_elements(CASE WHEN jsonb_typeof(workers.job_ids) = 'array' THEN workers.job_ids ELSE '[]' END)::integer AS held
                UNION SELECT claimed.id
            ) AS holding
        )
        FROM claimed, now WHERE workers.name = :worker
    )
    SELECT id, sweep_id, overrides, output_dir, attempts FROM claimed
""").columns(JOBS.c.id, JOBS.c.sweep_id, JOBS.c.overrides, JOBS.c.output_dir, JOBS.c.attempts)
"""The claim on PostgreSQL in one statement: the next QUEUED job of the study, locked (``SKIP LOCKED``: concurrent claims
take different jobs) and made RUNNING with a lease on the server's clock, and the claiming worker's registry row, if
any, shown working on it too, as :func:`~hyperspace_hydra.store.base.claimed_job_values` says (the generic
:meth:`SQLStore.claim` does the same in steps)."""


def _server_now(connection: Connection) -> dt.datetime:
    """The database server's clock as a naive UTC datetime; for SQLite, this machine's (see :meth:`Store.server_time`)."""
    if connection.dialect.name == "postgresql":
        return connection.execute(_POSTGRESQL_NOW).scalar_one()
    return utcnow()


def _require_claim(connection: Connection, claim: Claim | None) -> None:
    """Raise :class:`ClaimLostError` unless ``claim`` (when given) holds; its job row stays locked until the transaction
    ends (on SQLite the whole store is, by BEGIN IMMEDIATE), so no requeue can slip in before the write."""
    if claim is not None and connection.execute(_HELD_JOB_LOCKED, _held(claim)).first() is None:
        raise claim_lost(claim)


# The statements a recorded run executes, built once: building one (its values coerced, its cache key computed from
# every value) cost more than executing it. Their values are bound parameters; an UPDATE sets the columns named by
# the parameters' keys. The bound names end in "_", which no column's does. Ids are bound as 64-bit integers (see
# sql_conditions._bound): PostgreSQL's id columns are 32-bit, and a larger id bound as one is an error, not "no row".
_RUN, _JOB, _TOKEN = "run_", "job_", "token_"
_POSTGRESQL_NOW = sa.select(sa.func.timezone("UTC", sa.func.clock_timestamp()))
_INSERT_RUN = RUNS.insert()
_RUNNING_RUN = RUNS.update().where(RUNS.c.id == sa.bindparam(_RUN, type_=sa.BigInteger), RUNS.c.status == RUNNING)
_JOB_IS = JOBS.c.id == sa.bindparam(_JOB, type_=sa.BigInteger)
_HOLDS_BOUND = (_JOB_IS, JOBS.c.state == RUNNING, JOBS.c.token == sa.bindparam(_TOKEN))
_HELD_JOB_LOCKED = sa.select(JOBS.c.id).where(*_HOLDS_BOUND).with_for_update(read=True)
_SET_HELD_JOB = JOBS.update().where(*_HOLDS_BOUND)
_JOB_STATE = sa.select(JOBS.c.state, JOBS.c.token).where(_JOB_IS)
# The statements of a claim on SQLite (one per job a worker runs), built once for the same reason.
_STUDY, _WORKER = "study_", "worker_"
_NEXT_QUEUED_JOB = (
    sa.select(JOBS.c.id, JOBS.c.sweep_id, JOBS.c.overrides, JOBS.c.output_dir, JOBS.c.attempts)
    .where(JOBS.c.study == sa.bindparam(_STUDY), JOBS.c.state == QUEUED)
    .order_by(JOBS.c.priority.desc(), JOBS.c.id)
    .limit(1)
    .with_for_update(skip_locked=True)
)
_SET_JOB = JOBS.update().where(_JOB_IS)
_WORKER_IS = WORKERS.c.name == sa.bindparam(_WORKER)
_WORKERS_JOB_IDS = sa.select(WORKERS.c.job_ids).where(_WORKER_IS)
_SET_WORKER = WORKERS.update().where(_WORKER_IS)


def _held(claim: Claim) -> dict[str, Any]:
    """The parameters of the statements that select the job ``claim`` holds (:data:`_HOLDS_BOUND`)."""
    return {_JOB: claim.job_id, _TOKEN: claim.token}


def _update_running_run(connection: Connection, run_id: int, values: Mapping[str, Any]) -> bool:
    """Set ``values`` (run fields, ``status`` allowed) of run ``run_id`` if it is RUNNING; whether it was."""
    if run_id not in ID_RANGE:  # not even a 64-bit integer binds it; no run has it
        return False
    return bool(connection.execute(_RUNNING_RUN, {**values, _RUN: run_id}).rowcount)


def _existing_ids(connection: Connection, table: sa.Table, ids: Sequence[int]) -> list[int]:
    """The ids of ``ids`` that rows of ``table`` have, in order."""
    found: list[int] = []
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        found += connection.execute(sa.select(table.c.id).where(table.c.id.in_(chunk)).order_by(table.c.id)).scalars().all()
    return found


def _insert_row(connection: Connection, table: sa.Table, values: Mapping[str, Any], identifier: int | None) -> int:
    """Insert a row of ``table`` (with ``identifier`` as its id, else a new one) and return its id."""
    row = {**values, "id": identifier} if identifier is not None else values
    return _inserted_id(connection.execute(table.insert().values(**row)))


def _metric_row(run_id: int, point: MetricPoint) -> dict[str, Any]:
    return {"run_id": run_id, "name": point.name, "step": point.step, "value": point.value, "timestamp": point.timestamp}


def _advance_ids(connection: Connection, table: sa.Table, kept_id: int) -> None:
    """Make PostgreSQL's id sequence of ``table`` hand out only ids above ``kept_id`` (a row inserted with its own id).
    SQLite's AUTOINCREMENT counter follows an inserted id by itself."""
    connection.execute(
        sa.text("SELECT setval(pg_get_serial_sequence(:table, 'id'), GREATEST(:kept, nextval(pg_get_serial_sequence(:table, 'id'))))"),
        {"table": table.name, "kept": kept_id},
    )


def _holds(claim: Claim) -> tuple[sa.ColumnElement[bool], ...]:
    return (JOBS.c.id == claim.job_id, JOBS.c.state == RUNNING, JOBS.c.token == claim.token)


def _job_runs(job_id: int) -> sa.ColumnElement[bool]:
    return RUNS.c.job_id == job_id


def _finish_runs(connection: Connection, selection: sa.ColumnElement[bool], status: str, values: Mapping[str, Any]) -> bool:
    updated = connection.execute(RUNS.update().where(selection, RUNS.c.status == RUNNING).values(**values, status=status))
    return bool(updated.rowcount)


def _end_claimed_job(connection: Connection, claim: Claim, state: str, error: str | None, run_id: int | None) -> None:
    connection.execute(_SET_HELD_JOB, {**_held(claim), **ended_job_changes(state, error, run_id)})


def _job_row(study: str, sweep_id: int, job: NewJob, max_attempts: int, now: dt.datetime) -> dict[str, Any]:
    return {
        "study": study, "sweep_id": sweep_id, "overrides": list(job.overrides), "config": job.config,
        "config_hash": job.config_hash, "output_dir": job.output_dir, "priority": job.priority,
        "state": QUEUED, "attempts": 0, "max_attempts": max_attempts, "created_at": now,
    }  # fmt: skip


def _inserted_id(result: sa.CursorResult[Any]) -> int:
    """The id the database gave the row ``result`` inserted."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the database returned no id for an inserted row")
    return int(key[0])


def _document(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {"_id": row["id"], **{field: row[field] for field in RUN_FIELDS}}
