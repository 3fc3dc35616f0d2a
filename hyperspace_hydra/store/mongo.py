"""MongoDB backend of the store (pymongo), in the document shapes Sacred's MongoObserver writes.

``runs`` holds one document per run with an integer ``_id`` and the fields of
:data:`~hyperspace_hydra.store.base.RUN_FIELDS` at the top level; ``metrics`` holds one
document per run and metric name (``run_id``, ``name``, ``steps``, ``values``,
``timestamps``), and a run's ``info.metrics`` lists ``{"name", "id"}`` of those documents.
So Omniboard and Incense read the runs as they read Sacred's. ``jobs`` and ``sweeps`` hold
the queue, ``counters`` the last id handed out per collection, ``store_meta`` the schema
version. Collections and indexes are created on first use.

A database that Sacred's MongoObserver wrote opens as a store as it is: its run documents lack this
project's fields (read as None) until :meth:`MongoStore.upgrade_sacred_run` adds them; nothing here
changes Sacred's fields, and a new run's id moves past ids Sacred took meanwhile.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import bson
import gridfs
import pymongo
from gridfs.errors import GridFSError
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError, PyMongoError

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
    QUEUED,
    RUN_FIELDS,
    RUN_STATUS_AFTER_WORKER_END,
    RUNNING,
    STALE_RUN,
    STALE_RUN_SECONDS,
    SWEEP_FINAL_STATES,
    WORKER_KEPT_SECONDS,
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
    run_conditions,
    run_fields,
    run_path,
    shown_worker,
    sort_order,
    utcnow,
    whole_job_values,
    whole_sweep_values,
)
from hyperspace_hydra.store.grouping import GROUPED_RUN_FIELDS, ConfigGroup, group_by_config
from hyperspace_hydra.store.retry import StoreUnavailableError

SCHEMA_VERSION = 4
"""1: the first collections. 2: runs carry ``sweep_id`` (a run of a local search has no job), sweeps ``state``.
3: sweeps and jobs carry ``copied_from`` (the original of a copy made by ``store copy``). 4: the ``workers``
collection (the registry of workers, one document per worker, its ``_id`` the worker's name; nothing to upgrade)."""
CAPTURED_OUT_TAIL_CHARS = 1_000_000
"""A run document keeps the last this many characters of the captured output; longer output lives whole in GridFS."""
CAPTURED_OUT_BUCKET = "captured_out"
"""The GridFS bucket of whole captured outputs, one file per run named after its id."""

_SERVER_SELECTION_TIMEOUT_MS = 5000
_MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
_OUTPUT_FILE = "captured_out_file"
"""Run document field (not part of the run as returned) with the GridFS id of the whole captured output."""
_READ_ATTEMPTS = 3
_INSERT_ATTEMPTS = 3
"""How often a new run's insert is tried when Sacred's MongoObserver, recording into the same database, took its id."""
_SORT_RANK, _SORT_KEY = "_hyperspace_sort_rank", "_hyperspace_sort_key"
"""Fields that :meth:`MongoStore.list_runs` adds to runs in its pipeline to order them (not stored)."""
_JOB_COUNT = "job_count"
"""Sweep document field (not part of the sweep as returned): how many jobs were added to it, for :meth:`MongoStore.add_jobs`."""
_T = TypeVar("_T")

_INDEXES: tuple[tuple[str, list[tuple[str, int]]], ...] = (
    ("runs", [("config_hash", ASCENDING)]),
    ("runs", [("job_id", ASCENDING)]),
    ("runs", [("sweep_id", ASCENDING)]),
    ("runs", [("status", ASCENDING)]),
    ("metrics", [("run_id", ASCENDING), ("name", ASCENDING)]),
    ("jobs", [("study", ASCENDING), ("state", ASCENDING), ("priority", DESCENDING), ("_id", ASCENDING)]),
    ("jobs", [("state", ASCENDING), ("lease_expires_at", ASCENDING)]),
    ("jobs", [("config_hash", ASCENDING)]),
    ("jobs", [("sweep_id", ASCENDING)]),
)



_UNAVAILABLE_CODES = frozenset({
    6, 7, 89, 9001,  # HostUnreachable, HostNotFound, NetworkTimeout, SocketException
    91, 11600, 11602,  # ShutdownInProgress, InterruptedAtShutdown, InterruptedDueToReplStateChange
    189, 10107, 13435, 13436,  # PrimarySteppedDown, NotWritablePrimary, NotPrimaryNoSecondaryOk, NotPrimaryOrSecondary
    50, 262,  # MaxTimeMSExpired, ExceededTimeLimit
    14031,  # OutOfDiskSpace
})  # fmt: skip
"""MongoDB's error codes for a server that cannot serve the request now (going down, between primaries, out of
disk space, overloaded): the server is at fault, not the request, and it may be fixed while a worker waits."""


def _unavailable(error: PyMongoError) -> bool:
    """Whether ``error`` means the server could not be reached or could not serve the request now (worth retrying)."""
    if isinstance(error, ConnectionFailure) or error.has_error_label("RetryableWriteError"):
        return True
    return getattr(error, "code", None) in _UNAVAILABLE_CODES


def _reachable(method: Callable[..., _T]) -> Callable[..., _T]:
    """Raise :class:`StoreUnavailableError` when the server cannot be reached or cannot serve ``method`` now."""

    @functools.wraps(method)
    def translating(self: MongoStore, *args: Any, **kwargs: Any) -> _T:
        try:
            return method(self, *args, **kwargs)
        except PyMongoError as error:
            if _unavailable(error):
                raise StoreUnavailableError(f"store {redact_credentials(self.uri)} unavailable: {_reason(error)}") from error
            raise

    return translating


class MongoStore(Store):
    """A store in one MongoDB database; ``client`` (e.g. a mongomock client) replaces connecting to ``uri``.

    A standalone MongoDB server has no multi-document transactions, so every
    guarantee of :class:`Store` rests on single-document atomic operations:

    - Ids: ``find_one_and_update`` with ``$inc`` on a ``counters`` document hands out
      each id once, also to concurrent processes; a batch of jobs takes one block.
    - Claims: one ``find_one_and_update`` moves the best QUEUED job to RUNNING, so
      two workers never get the same job. A claim *holds* while its job is RUNNING
      with its token; every change made on behalf of a claim is one conditional
      update on (id, RUNNING, token), and renewals and requeues race on that one
      document, so exactly one of them wins.
    - ``finish_run`` with a claim first ends the job with that conditional update,
      and only if it succeeded gives the run the requested status; otherwise the run
      becomes DIED (INTERRUPTED if the job was cancelled). So a job never gets two
      COMPLETED runs. For a moment a reader can see the job ended and its run still
      RUNNING. If the second step fails, repeating the call completes it: the job
      then names this run and is in the state this finish gives it.
    - ``requeue_expired`` and ``end_job`` move each job with its own conditional
      update (atomic per job, not per call), then finish that job's RUNNING runs,
      but only runs whose ids were handed out before the job moved: a run of the
      job's next attempt is never touched. A crash between the two steps can leave
      a run RUNNING whose job has moved on.
    - ``enqueue`` encodes and checks every document (BSON, 16 MB limit) before it
      writes anything, inserts the sweep and then its jobs, and on a failure deletes
      what it inserted. Until it returns, workers may already claim the first jobs
      of the batch; only a lost connection during the inserts can leave part of it.
    - ``add_whole_sweeps`` and ``add_whole_jobs`` check every document, then write them with one
      ``insert_many``, deleting what was inserted if it fails; afterwards each sweep's count of
      jobs (what ``add_jobs`` checks) is raised by the jobs added to it.
    - ``add_metrics`` checks every update first, then appends with ``$push``/``$each``
      one document per metric name (Sacred's format). ``change_jobs`` is one
      ``update_many``: each job moves atomically, the selection as a whole does not.
    - A captured output longer than :data:`CAPTURED_OUT_TAIL_CHARS` goes to a new
      GridFS file before the run document points at it; files the document no
      longer points at are deleted afterwards, and a reader that finds its file
      just replaced reads the run again. Only the run's own recorder writes its
      output, so two writers never replace each other's file.

    Times are stored with millisecond precision (BSON dates). Needs MongoDB 4.2 or
    later: it retries an upsert that lost the race to create a counter.
    """

    def __init__(self, uri: str, client: pymongo.MongoClient | None = None, read_only: bool = False, create: bool = True) -> None:
        """``read_only``: nothing is created or upgraded (see :func:`~hyperspace_hydra.store.open_store`);
        MongoDB has no read-only connection, so the store's readers are what write nothing. ``create`` False
        (implied by ``read_only``): a database that holds neither a store nor runs Sacred wrote is refused."""
        self.uri = uri
        self._read_only = read_only
        self._create = create and not read_only
        database_name = _database_name(uri)
        self._owns_client = client is None
        self._client = _connect(uri) if client is None else client
        self._db = self._client[database_name]
        self._outputs = gridfs.GridFS(self._db, collection=CAPTURED_OUT_BUCKET)
        try:
            self._open_schema()
        except HyperspaceError:
            self.close()
            raise

    def _open_schema(self) -> None:
        try:
            found = self._schema_version()
            if found is None and not self._create and "runs" not in self._db.list_collection_names():
                raise StoreNotFoundError(redact_credentials(self.uri))
            if found is None and self._read_only:
                return  # a database no store has used (one Sacred wrote): its runs are read as they are
            if found is None:
                self._create_schema()
                found = self._schema_version()
        except PyMongoError as error:
            kind = StoreUnavailableError if isinstance(error, ConnectionFailure) else HyperspaceError
            raise kind(f"cannot open store {redact_credentials(self.uri)}: {_reason(error)}") from error
        if found < SCHEMA_VERSION and self._read_only:
            raise HyperspaceError(
                f"store {redact_credentials(self.uri)} has schema version {found}, older than this hyperspace_hydra's {SCHEMA_VERSION}, "
                "and is opened only to be read: open it once to write (hyperspace store check --store URI upgrades it)"
            )
        if found < SCHEMA_VERSION:
            self._upgrade()
        elif found != SCHEMA_VERSION:
            raise HyperspaceError(
                f"store {redact_credentials(self.uri)} has schema version {found}, this hyperspace_hydra reads version "
                f"{SCHEMA_VERSION}: use the hyperspace_hydra version that wrote it"
            )

    def _schema_version(self) -> Any:
        """The stored schema version; None in a database this store has not used yet."""
        meta = self._db.store_meta.find_one({"_id": "schema_version"})
        return None if meta is None else meta["value"]

    def _create_schema(self) -> None:
        """Create the indexes, then write the schema version: a store whose version is written is complete."""
        for collection, keys in _INDEXES:
            self._db[collection].create_index(keys)
        # Runs that Sacred's MongoObserver wrote into this database keep their ids.
        self._db.counters.update_one({"_id": "runs"}, {"$max": {"seq": self._highest_run_id()}}, upsert=True)
        try:
            self._db.store_meta.insert_one({"_id": "schema_version", "value": SCHEMA_VERSION})
        except DuplicateKeyError:
            pass  # another process wrote it first

    def _upgrade(self) -> None:
        """Bring schema version 1, 2 or 3 to 4. Every step may run twice (two processes opening the store
        at once): each sets values that do not depend on who runs it first."""
        for collection, keys in _INDEXES:
            self._db[collection].create_index(keys)
        for sweep_id in self._db.sweeps.distinct("_id"):
            job_ids = self._db.jobs.distinct("_id", {"sweep_id": sweep_id})
            self._db.runs.update_many({"job_id": {"$in": job_ids}}, {"$set": {"sweep_id": sweep_id}})
        self._db.sweeps.update_many({"kind": "search", "state": {"$exists": False}}, {"$set": {"state": RUNNING}})
        for collection in ("sweeps", "jobs"):
            self._db[collection].update_many({"copied_from": {"$exists": False}}, {"$set": {"copied_from": None}})
        self._db.store_meta.update_one({"_id": "schema_version"}, {"$max": {"value": SCHEMA_VERSION}})

    def _highest_run_id(self) -> int:
        highest = self._db.runs.find_one({"_id": {"$type": "number"}}, {"_id": 1}, sort=[("_id", DESCENDING)])
        return 0 if highest is None else int(highest["_id"])

    # runs

    @_reachable
    def start_run(self, document: Mapping[str, Any], claim: Claim | None = None) -> int:
        """With ``claim``: check, insert, check again; a run inserted after its claim was lost ends DIED at once."""
        values = {field: document.get(field) for field in RUN_FIELDS}
        values["status"] = RUNNING
        self._require_claim(claim)
        values["heartbeat"] = self.server_time()
        run_id = self._insert_new_run(values)
        if claim is not None and self._db.jobs.update_one(_holds(claim), {"$set": {"run_id": run_id}}).matched_count == 0:
            self._finish_run_document(run_id, DIED, {"stop_time": utcnow(), "fail_trace": [claim_lost(claim).args[0]]})
            raise claim_lost(claim)
        return run_id

    @_reachable
    def update_run(self, run_id: int, changes: Mapping[str, Any], claim: Claim | None = None) -> None:
        self._require_claim(claim)
        values = run_changes(changes)
        if "heartbeat" in values:
            values["heartbeat"] = self.server_time()
        if not self._write_run(run_id, values, self._setter_while_running(run_id)):
            self._require_run(run_id)

    def _insert_new_run(self, values: Mapping[str, Any]) -> int:
        """Insert a new run under the next id and return it. Sacred's MongoObserver, still recording into the same
        database, numbers its runs after the highest id it finds: if it took the id meanwhile, the counter moves
        past Sacred's runs and the insert is tried again."""
        for attempt in range(1, _INSERT_ATTEMPTS + 1):
            [run_id] = self._allocate_ids("runs")
            try:
                self._write_run(run_id, values, self._inserter(run_id))
                return run_id
            except DuplicateKeyError:
                if attempt == _INSERT_ATTEMPTS:
                    raise
                self._db.counters.update_one({"_id": "runs"}, {"$max": {"seq": self._highest_run_id()}})
        raise AssertionError("the last attempt returns or raises")

    @_reachable
    def end_stale_runs(self) -> list[int]:
        """Runs that Sacred's MongoObserver is recording (none of this store's fields) are Sacred's to finish: Omniboard
        shows a silent one PROBABLY_DEAD, and Sacred's next heartbeat would overwrite a status written here."""
        now = self.server_time()
        stale = {
            "status": RUNNING, "job_id": None, "config_hash": {"$exists": True},
            "heartbeat": {"$lt": now - dt.timedelta(seconds=STALE_RUN_SECONDS)},
        }  # fmt: skip
        ended = []
        for run in list(self._db.runs.find(stale, {"_id": 1})):
            if self._finish_run_document(run["_id"], DIED, {"stop_time": now, "fail_trace": [STALE_RUN]}):
                ended.append(run["_id"])
        return ended

    @_reachable
    def finish_run(self, run_id: int, status: str, changes: Mapping[str, Any], claim: Claim | None = None) -> bool:
        if status not in FINAL_STATUSES:
            raise ValueError(f"{status!r} is not a final status; expected one of {sorted(FINAL_STATUSES)}")
        values = run_changes(changes)
        if self._require_run(run_id)["status"] != RUNNING:
            return False
        if claim is not None and not self._end_job_for_run(claim, run_id, JOB_STATE_AFTER_RUN[status], job_error(status, values)):
            self._finish_run_document(run_id, self._status_after_lost_claim(claim), values)
            return False
        return self._finish_run_document(run_id, status, values)

    @_reachable
    def rewrite_config(
        self, run_id: int, config: Mapping[str, Any], config_hash: str, info: Mapping[str, Any], *, adoption: Adoption | None = None
    ) -> None:
        """One ``update_one``; an adoption sets ``experiment.name`` by its path, so Sacred's sources keep their GridFS ids."""
        values = {"config": dict(config), "config_hash": config_hash, "info": dict(info)}
        if adoption is not None:
            values.update({"experiment.name": adoption.experiment_name, **adoption.fields()})
        updated = self._db.runs.update_one({"_id": _id_is(run_id)}, {"$set": values})
        if not updated.matched_count:
            raise RunNotFoundError(f"no run with id {run_id} in store {redact_credentials(self.uri)}")

    def sacred_runs(self, page_size: int = 200) -> Iterator[dict[str, Any]]:
        """The run documents that Sacred's MongoObserver wrote into this database and no store has upgraded
        (:meth:`upgrade_sacred_run`) yet, as they are stored (``_id`` included), in id order, read a page at a time.

        Such a run has none of this project's fields (no ``config_hash``, not even a null one); a run this
        store recorded, copied or upgraded has them all.
        """
        after: Any = None
        while True:
            selection: dict[str, Any] = {"config_hash": {"$exists": False}, **({"_id": {"$gt": after}} if after is not None else {})}
            page = list(self._db.runs.find(selection).sort("_id", ASCENDING).limit(page_size))
            yield from page
            if len(page) < page_size:
                return
            after = page[-1]["_id"]

    @_reachable
    def upgrade_sacred_run(self, run_id: Any, fields: Mapping[str, Any]) -> bool:
        """Set ``fields`` on a run that Sacred wrote, in one atomic update, if no store has upgraded it yet; return whether
        this call did. ``fields`` must hold ``config_hash`` (its presence marks the run upgraded) and may name parts
        of a field by a dotted path (``info.sacred_id``), so that Sacred's own values around them stay as they
        are; ``_id`` never changes. A run is upgraded whole or not at all, and twice never."""
        if "config_hash" not in fields:
            raise ValueError("an upgrade of a Sacred run sets config_hash (None when unknown): it marks the run upgraded")
        selection = {"_id": run_id, "config_hash": {"$exists": False}}
        return self._db.runs.update_one(selection, {"$set": dict(fields)}).matched_count == 1

    @_reachable
    def add_finished_runs(self, runs: Sequence[FinishedRun]) -> list[int]:
        """Metrics documents (one ``insert_many``), then long outputs' GridFS files, then the run documents (one
        ``insert_many``), then the jobs that name their run (one update each); a failure deletes what was
        written. Metrics documents of a kept id that has no run document are left from an earlier attempt that
        failed before its run document: they are replaced."""
        prepared = [finished_run_values(run) for run in runs]
        kept = kept_run_ids(runs)
        run_ids = self._ids_for("runs", [run.run_id for run in runs])
        if kept:
            self._db.metrics.delete_many({"run_id": {"$in": kept}})
        metric_documents = [
            {"run_id": run_id, "name": name, **lists} for run_id, (_, points) in zip(run_ids, prepared) for name, lists in _series_by_name(points).items()
        ]
        for values, _ in prepared:
            _check_storable({**values, "captured_out": (values["captured_out"] or "")[-CAPTURED_OUT_TAIL_CHARS:]})
        for document in metric_documents:
            _check_storable(document)
        inserted = 0
        try:
            if metric_documents:
                self._db.metrics.insert_many(metric_documents)
            documents = [self._run_document_to_insert(run_id, values) for run_id, (values, _) in zip(run_ids, prepared)]
            self._db.runs.insert_many(documents, ordered=True)
            inserted = len(documents)
            for run_id, (values, _), run in zip(run_ids, prepared, runs):
                if run.is_job_run:
                    self._db.jobs.update_one({"_id": values["job_id"]}, {"$set": {"run_id": run_id}})
        except BulkWriteError as error:
            self._take_back_finished_runs(run_ids, inserted or error.details.get("nInserted", 0))
            raise
        except BaseException:
            self._take_back_finished_runs(run_ids, inserted)
            raise
        return run_ids

    def _ids_for(self, collection: str, given: Sequence[int | None]) -> list[int]:
        """Per row to insert into ``collection``, the id it keeps (``given``) or a new one; :func:`id_taken` if a kept
        id is in ``collection``. Ids handed out afterwards are above the kept ones."""
        kept = [identifier for identifier in given if identifier is not None]
        taken = self._db[collection].find_one({"_id": {"$in": kept}}, {"_id": 1}, sort=[("_id", ASCENDING)]) if kept else None
        if taken is not None:
            raise id_taken(redact_credentials(self.uri), collection[:-1], taken["_id"])
        if kept:
            self._db.counters.update_one({"_id": collection}, {"$max": {"seq": max(kept)}}, upsert=True)
        new_ids = iter(self._allocate_ids(collection, len(given) - len(kept)) if len(given) > len(kept) else ())
        return [identifier if identifier is not None else next(new_ids) for identifier in given]

    @_reachable
    def add_whole_sweeps(self, sweeps: Sequence[WholeRow]) -> list[int]:
        values = [whole_sweep_values(sweep) for sweep in sweeps]
        kept_ids(sweeps, "sweep")
        sweep_ids = self._ids_for("sweeps", [sweep.row_id for sweep in sweeps])
        self._insert_whole("sweeps", [{"_id": sweep_id, **fields, _JOB_COUNT: 0} for sweep_id, fields in zip(sweep_ids, values)])
        return sweep_ids

    @_reachable
    def add_whole_jobs(self, jobs: Sequence[WholeRow]) -> list[int]:
        """The job documents (one ``insert_many``, taken back on failure), then each sweep's job count (one update per sweep)."""
        values = [whole_job_values(job) for job in jobs]
        kept_ids(jobs, "job")
        sweep_ids = sorted({job["sweep_id"] for job in values if job["sweep_id"] is not None})
        missing = sorted(set(sweep_ids) - set(self._db.sweeps.distinct("_id", {"_id": {"$in": known_ids(sweep_ids)}})))
        if missing:
            raise JobNotFoundError(f"no sweep with id {missing[0]} in store {redact_credentials(self.uri)}")
        job_ids = self._ids_for("jobs", [job.row_id for job in jobs])
        self._insert_whole("jobs", [{"_id": job_id, **fields} for job_id, fields in zip(job_ids, values)])
        for sweep_id in sweep_ids:
            self._db.sweeps.update_one({"_id": sweep_id}, {"$inc": {_JOB_COUNT: [job["sweep_id"] for job in values].count(sweep_id)}})
        return job_ids

    def _insert_whole(self, collection: str, documents: list[dict[str, Any]]) -> None:
        """Insert ``documents`` into ``collection`` (checked first, one ``insert_many``); on a failure delete what was inserted."""
        for document in documents:
            _check_storable(document)
        if not documents:
            return
        try:
            self._db[collection].insert_many(documents, ordered=True)
        except BaseException:
            self._db[collection].delete_many({"_id": {"$in": [document["_id"] for document in documents]}})
            raise

    def _run_document_to_insert(self, run_id: int, values: Mapping[str, Any]) -> dict[str, Any]:
        """The run document that :meth:`_write_run` would insert (its long output put in GridFS first)."""
        document: dict[str, Any] = {}

        def keep(fields: dict[str, Any], _unset: dict[str, Any]) -> bool:
            document.update({"_id": run_id, **fields})
            return True

        self._write_run(run_id, values, keep)
        return document

    def _take_back_finished_runs(self, run_ids: list[int], inserted: int) -> None:
        """Delete what :meth:`add_finished_runs` wrote for ``run_ids``: the first ``inserted`` run documents (an
        ordered ``insert_many`` stops at its first failure), every metrics document and every output file."""
        self._db.runs.delete_many({"_id": {"$in": run_ids[:inserted]}})
        self._db.jobs.update_many({"run_id": {"$in": run_ids[:inserted]}}, {"$set": {"run_id": None}})
        self._db.metrics.delete_many({"run_id": {"$in": run_ids}})
        for file in self._db[f"{CAPTURED_OUT_BUCKET}.files"].find({"filename": {"$in": [str(run_id) for run_id in run_ids]}}, {"_id": 1}):
            self._outputs.delete(file["_id"])

    @_reachable
    def add_metrics(self, run_id: int, points: Iterable[MetricPoint], claim: Claim | None = None) -> None:
        self._require_claim(claim)
        series = _series_by_name(points)
        updates = {name: {"$push": {key: {"$each": items} for key, items in lists.items()}} for name, lists in series.items()}
        self._require_run(run_id)
        for update in updates.values():
            _check_storable(update)
        for name, update in updates.items():
            self._db.metrics.update_one({"run_id": run_id, "name": name}, update, upsert=True)

    @_reachable
    def get_run(self, run_id: int) -> dict[str, Any]:
        for _ in range(_READ_ATTEMPTS):
            document = self._document(self._find_run(run_id, projection=None))
            if document is not None:
                return document
        raise HyperspaceError(
            f"the captured output of run {run_id} is missing from GridFS bucket {CAPTURED_OUT_BUCKET!r} "
            f"in store {redact_credentials(self.uri)}"
        )

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
        """Filters are one query document; ``sort`` computes its order keys in an aggregation pipeline."""
        if limit == 0:
            return []  # MongoDB reads a limit of 0 as no limit
        selected = run_fields(fields)
        selection = self._run_selection(task, sweep_id, status, where)
        projection = {"_id": 1, **{field: 1 for field in (*selected, *([_OUTPUT_FILE] if "captured_out" in selected else []))}}
        if sort is None:
            cursor = self._db.runs.find(selection, projection).sort("_id", DESCENDING).skip(offset).limit(limit or 0)
            found = reversed(list(cursor))  # the newest `limit` runs, oldest first
        else:
            pipeline = [
                {"$match": selection}, *_sort_stages(sort), *([{"$skip": offset}] if offset else []),
                *([{"$limit": limit}] if limit else []), {"$project": projection},
            ]  # fmt: skip
            found = self._db.runs.aggregate(pipeline, allowDiskUse=True)  # runs with long output can pass the 100 MB in-memory sort limit
        return [self._document(raw, selected) or _only(self.get_run(raw["_id"]), selected) for raw in found]

    def _run_selection(self, task: str | None, sweep_id: int | None, status: str | None, where: Sequence[Condition]) -> dict[str, Any]:
        """The query document that selects the runs :meth:`list_runs` returns."""
        clauses = [_condition_query(condition) for condition in run_conditions(task, status, where)]
        if sweep_id is not None:
            clauses.append({"sweep_id": _id_is(sweep_id)})
        return {"$and": clauses} if clauses else {}

    @_reachable
    def count_runs(self, *, task: str | None = None, sweep_id: int | None = None, status: str | None = None, where: Sequence[Condition] = ()) -> int:
        return int(self._db.runs.count_documents(self._run_selection(task, sweep_id, status, where)))

    @_reachable
    def group_runs(self, where: Sequence[Condition], without: Sequence[str] = (), values: Sequence[str] = ()) -> list[ConfigGroup]:
        """Grouped here, not by the server: its ``$group`` compares documents with their keys in order, and
        mongomock has no ``$unset`` stage; only the fields that place a run in a search are read."""
        return group_by_config(self.list_runs(where=where, fields=GROUPED_RUN_FIELDS), without, values)

    @_reachable
    def get_metrics(self, run_id: int) -> dict[str, dict[str, list[Any]]]:
        self._require_run(run_id)
        points: dict[str, list[tuple[Any, Any, Any]]] = {}
        for document in self._db.metrics.find({"run_id": run_id}).sort("_id", ASCENDING):
            points.setdefault(document["name"], []).extend(zip(document["steps"], document["values"], document["timestamps"]))
        series = {}
        for name in sorted(points):
            ordered = sorted(points[name], key=lambda point: point[0])  # stable: equal steps keep the order they were added
            series[name] = {"steps": [p[0] for p in ordered], "values": [p[1] for p in ordered], "timestamps": [p[2] for p in ordered]}
        return series

    def get_metric_series(self, run_ids: Sequence[int], name: str) -> dict[int, tuple[list[int], list[float]]]:
        points: dict[int, list[tuple[Any, Any]]] = {}
        for document in self._db.metrics.find({"run_id": {"$in": known_ids(run_ids)}, "name": name}, {"run_id": 1, "steps": 1, "values": 1}).sort("_id", ASCENDING):
            points.setdefault(document["run_id"], []).extend(zip(document["steps"], document["values"]))
        series = {}
        for run_id in sorted(points):
            ordered = sorted(points[run_id], key=lambda point: point[0])  # stable, as in get_metrics
            series[run_id] = ([point[0] for point in ordered], [point[1] for point in ordered])
        return series

    def _inserter(self, run_id: int) -> Callable[[dict[str, Any], dict[str, Any]], bool]:
        """A writer for :meth:`_write_run` that inserts the run as a new document."""

        def insert(fields: dict[str, Any], _unset: dict[str, Any]) -> bool:
            self._db.runs.insert_one({"_id": run_id, **fields})
            return True

        return insert

    def _setter_while_running(self, run_id: int) -> Callable[[dict[str, Any], dict[str, Any]], bool]:
        """A writer for :meth:`_write_run` that changes the run only while it is RUNNING."""

        def set_fields(fields: dict[str, Any], unset: dict[str, Any]) -> bool:
            update: dict[str, Any] = {"$set": fields}
            if unset:
                update["$unset"] = unset
            return self._db.runs.update_one({"_id": _id_is(run_id), "status": RUNNING}, update).matched_count == 1

        return set_fields

    def _finish_run_document(self, run_id: int, status: str, values: Mapping[str, Any]) -> bool:
        return self._write_run(run_id, {**values, "status": status}, self._setter_while_running(run_id))

    def _write_run(self, run_id: int, values: Mapping[str, Any], write: Callable[[dict[str, Any], dict[str, Any]], bool]) -> bool:
        """Store ``values`` of a run with ``write(fields_to_set, fields_to_unset)`` and return what it returned.

        ``info.metrics`` entries get the ids of their metrics documents. A captured
        output longer than the tail limit goes to GridFS before the document is
        written, so a document never points at a missing file; afterwards the run's
        files that its document does not point at are deleted.
        """
        fields = dict(values)
        if "info" in fields:
            fields["info"] = self._with_metric_ids(run_id, fields["info"])
        if "captured_out" not in fields:
            return write(fields, {})
        text, unset, new_file = fields["captured_out"], {}, None
        if text is not None and len(text) > CAPTURED_OUT_TAIL_CHARS:
            new_file = self._outputs.put(text.encode(), filename=str(run_id))
            fields.update({"captured_out": text[-CAPTURED_OUT_TAIL_CHARS:], _OUTPUT_FILE: new_file})
        else:
            unset[_OUTPUT_FILE] = ""
        written = False
        try:
            written = write(fields, unset)
        finally:
            self._delete_unused_outputs(run_id, new_file, written)
        return written

    def _delete_unused_outputs(self, run_id: int, new_file: Any, written: bool) -> None:
        """After a write of the captured output: drop the run's older files, or the new file if the write did not happen."""
        if written:
            unused: dict[str, Any] = {"filename": str(run_id), "_id": {"$ne": new_file}}
        elif new_file is not None:
            unused = {"_id": new_file}
        else:
            return
        for file in self._db[f"{CAPTURED_OUT_BUCKET}.files"].find(unused, {"_id": 1}):
            self._outputs.delete(file["_id"])

    def _with_metric_ids(self, run_id: int, info: Any) -> Any:
        """``info`` whose ``metrics`` entries carry the id of their metrics document, as Sacred writes them."""
        entries = info.get("metrics") if isinstance(info, Mapping) else None
        if not isinstance(entries, list) or not entries:
            return info
        ids: dict[str, str] = {}
        for document in self._db.metrics.find({"run_id": run_id}, {"name": 1}).sort("_id", ASCENDING):
            ids.setdefault(document["name"], str(document["_id"]))
        with_ids = [
            {**entry, "id": ids[entry["name"]]} if isinstance(entry, Mapping) and entry.get("name") in ids else entry
            for entry in entries
        ]
        return {**info, "metrics": with_ids}

    def _document(self, raw: Mapping[str, Any], fields: Sequence[str] = RUN_FIELDS) -> dict[str, Any] | None:
        """The run as the interface returns it (only ``fields``), with the whole captured output.

        None if the output's file was replaced (by a heartbeat) since ``raw`` was read.
        """
        document = {"_id": raw["_id"], **{field: _plain_ids(raw.get(field)) for field in fields}}
        if raw.get(_OUTPUT_FILE) is not None:
            try:
                document["captured_out"] = self._outputs.get(raw[_OUTPUT_FILE]).read().decode()
            except GridFSError:
                return None
        return document

    def _claim_holds(self, claim: Claim) -> bool:
        return self._db.jobs.count_documents(_holds(claim), limit=1) == 1

    def _require_claim(self, claim: Claim | None) -> None:
        if claim is not None and not self._claim_holds(claim):
            raise claim_lost(claim)

    def _require_run(self, run_id: int) -> dict[str, Any]:
        """The run's id and status; raises :class:`RunNotFoundError`."""
        return self._find_run(run_id, {"status": 1})

    def _find_run(self, run_id: int, projection: Mapping[str, Any] | None) -> dict[str, Any]:
        """The stored run document (only the fields of ``projection``, if given); raises :class:`RunNotFoundError`."""
        raw = self._db.runs.find_one({"_id": _id_is(run_id)}, projection)
        if raw is None:
            raise RunNotFoundError(f"no run with id {run_id} in store {redact_credentials(self.uri)}")
        return raw

    # queue

    @_reachable
    def enqueue(self, study: str, jobs: Sequence[NewJob], sweep: Mapping[str, Any], dedupe: bool = True, max_attempts: int = 3) -> EnqueueResult:
        check_new_jobs(jobs, max_attempts)
        now = utcnow()
        existing = self._existing_hashes(study, [job.config_hash for job in jobs]) if dedupe else set()
        kept = new_jobs_of(jobs, existing, dedupe)
        if jobs and not any(kept):
            return EnqueueResult(None, [None] * len(jobs))
        to_insert = [job for job in kept if job is not None]
        [sweep_id] = self._allocate_ids("sweeps")
        job_ids = self._allocate_ids("jobs", len(to_insert))
        sweep_document = {
            "_id": sweep_id, "study": study, "kind": sweep.get("kind", "grid"), "command": sweep.get("command"),
            "spec": sweep.get("spec"), "state": sweep.get("state"), "created_at": now, "copied_from": None, _JOB_COUNT: len(to_insert),
        }  # fmt: skip
        job_documents = [_job_document(job_id, study, sweep_id, job, max_attempts, now) for job_id, job in zip(job_ids, to_insert)]
        for document in (sweep_document, *job_documents):
            _check_storable(document)
        self._insert_sweep(sweep_document, job_documents)
        new_ids = iter(job_ids)
        return EnqueueResult(sweep_id, [None if job is None else next(new_ids) for job in kept])

    def _insert_sweep(self, sweep_document: Mapping[str, Any], job_documents: list[dict[str, Any]]) -> None:
        self._db.sweeps.insert_one(sweep_document)
        try:
            if job_documents:
                self._db.jobs.insert_many(job_documents)
        except BaseException:
            # No transaction to roll back: take back what was inserted.
            self._db.jobs.delete_many({"sweep_id": sweep_document["_id"]})
            self._db.sweeps.delete_one({"_id": sweep_document["_id"]})
            raise

    @_reachable
    def add_jobs(self, sweep_id: int, jobs: Sequence[NewJob], expected_jobs: int, max_attempts: int = 3) -> list[int] | None:
        """The sweep's job count moves from ``expected_jobs`` in one conditional ``$inc``: exactly one caller wins."""
        check_new_jobs(jobs, max_attempts)
        sweep = self._db.sweeps.find_one({"_id": sweep_id}, {"study": 1})
        if sweep is None:
            raise JobNotFoundError(f"no sweep with id {sweep_id} in store {redact_credentials(self.uri)}")
        now = utcnow()
        job_ids = self._allocate_ids("jobs", len(jobs)) if jobs else range(0)
        documents = [_job_document(job_id, sweep["study"], sweep_id, job, max_attempts, now) for job_id, job in zip(job_ids, jobs)]
        for document in documents:
            _check_storable(document)
        open_sweep = {"_id": sweep_id, _JOB_COUNT: expected_jobs, "state": {"$nin": sorted(SWEEP_FINAL_STATES)}}
        if self._db.sweeps.find_one_and_update(open_sweep, {"$inc": {_JOB_COUNT: len(jobs)}}) is None:
            return None
        if documents:
            self._db.jobs.insert_many(documents)
        return list(job_ids)

    @_reachable
    def end_sweep(self, sweep_id: int, state: str) -> bool:
        check_sweep_state(state)
        ended = self._db.sweeps.update_one({"_id": sweep_id, "state": {"$nin": sorted(SWEEP_FINAL_STATES)}}, {"$set": {"state": state}}).modified_count
        if not ended and self._db.sweeps.count_documents({"_id": sweep_id}, limit=1) == 0:
            raise JobNotFoundError(f"no sweep with id {sweep_id} in store {redact_credentials(self.uri)}")
        return bool(ended)

    def _existing_hashes(self, study: str, hashes: Sequence[str]) -> set[str]:
        unique = sorted(set(hashes))
        jobs = {"study": study, "state": {"$in": sorted(DEDUPE_STATES)}, "config_hash": {"$in": unique}}
        runs = {"status": COMPLETED, "config_hash": {"$in": unique}}
        return set(self._db.jobs.distinct("config_hash", jobs)) | set(self._db.runs.distinct("config_hash", runs))

    @_reachable
    def server_time(self) -> dt.datetime:
        """Read off the server by ``$currentDate`` on a document of its own (mongomock: this machine's clock)."""
        clock = _upserted(self._db.store_meta, {"_id": "server_clock"}, {"$currentDate": {"now": True}})
        return clock["now"].replace(tzinfo=None)

    @_reachable
    def claim(self, study: str, worker: str, lease_seconds: float) -> ClaimedJob | None:
        now = self.server_time()
        token = uuid.uuid4().hex
        expires = now + dt.timedelta(seconds=lease_seconds)
        lease = {"state": RUNNING, "worker": worker, "token": token, "claimed_at": now, "lease_expires_at": expires}
        job = self._db.jobs.find_one_and_update(
            {"study": study, "state": QUEUED},
            {"$set": lease},
            sort=[("priority", DESCENDING), ("_id", ASCENDING)],
            projection={"sweep_id": 1, "overrides": 1, "output_dir": 1, "attempts": 1},
            return_document=ReturnDocument.AFTER,
        )
        if job is None:
            return None
        registered = self._db.workers.find_one({"_id": worker}, {"job_ids": 1})
        if registered is not None:
            self._db.workers.update_one({"_id": worker}, {"$set": claimed_job_values(registered.get("job_ids") or [], job["_id"], now)})
        return ClaimedJob(Claim(job["_id"], token), study, job["sweep_id"], list(job["overrides"]), job["output_dir"], job["attempts"])

    @_reachable
    def renew_leases(self, claims: Sequence[Claim], lease_seconds: float, beat: WorkerBeat | None = None) -> set[int]:
        now = self.server_time()
        expires = now + dt.timedelta(seconds=lease_seconds)
        lost = {
            claim.job_id
            for claim in claims
            if self._db.jobs.update_one(_holds(claim), {"$set": {"lease_expires_at": expires}}).matched_count == 0
        }
        if beat is not None:
            held = {claim.job_id for claim in claims} - lost
            self._db.workers.update_one({"_id": beat.name}, {"$set": beat_values(beat, held, now)})
        return lost

    @_reachable
    def register_worker(self, worker: WorkerInfo) -> None:
        """Deletes the prunable rows first, then replaces the worker's row (one atomic write each)."""
        now = self.server_time()
        old = self._db.workers.find({"last_seen": {"$lt": now - dt.timedelta(seconds=WORKER_KEPT_SECONDS)}})
        prunable = [row["_id"] for row in old if prunable_worker(_worker_row(row), now)]
        if prunable:
            self._db.workers.delete_many({"_id": {"$in": prunable}})
        values = registered_worker_values(worker, now)
        self._db.workers.replace_one({"_id": worker.name}, {"_id": values.pop("name"), **values}, upsert=True)

    @_reachable
    def worker_stopped(self, name: str) -> None:
        self._db.workers.update_one({"_id": name}, {"$set": beat_values(None, (), self.server_time())})

    @_reachable
    def list_workers(self, study: str | None = None) -> list[dict[str, Any]]:
        now = self.server_time()
        rows = self._db.workers.find({} if study is None else {"study": study}).sort([("started_at", DESCENDING), ("_id", ASCENDING)])
        return [shown_worker(_worker_row(row), now) for row in rows]

    @_reachable
    def requeue_expired(self) -> list[int]:
        now = self.server_time()
        last_run_id = self._last_run_id()
        requeued = []
        expired = self._db.jobs.find({"state": RUNNING, "lease_expires_at": {"$lt": now}}, {"token": 1, "attempts": 1, "max_attempts": 1})
        for job in list(expired):
            moved = self._db.jobs.update_one(
                {"_id": job["_id"], "state": RUNNING, "token": job["token"], "lease_expires_at": {"$lt": now}},
                {"$set": expired_job_changes(job["attempts"], job["max_attempts"], now)},
            ).matched_count
            if moved:
                self._finish_job_runs(job["_id"], last_run_id, DIED, lost_attempt_run_changes(now))
                requeued.append(job["_id"])
        return requeued

    @_reachable
    def end_job(self, claim: Claim, state: str, reason: str) -> bool:
        if state not in RUN_STATUS_AFTER_WORKER_END:
            raise ValueError(f"end_job takes {sorted(RUN_STATUS_AFTER_WORKER_END)}, not {state!r}")
        last_run_id = self._last_run_id()
        if not self._end_claimed_job(claim, state, error=reason, run_id=None):
            return False
        run_changes = {"stop_time": utcnow(), "fail_trace": [reason]}
        self._finish_job_runs(claim.job_id, last_run_id, RUN_STATUS_AFTER_WORKER_END[state], run_changes)
        return True

    @_reachable
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
        if limit == 0:
            return []  # MongoDB reads a limit of 0 as no limit
        selection = {"$and": [_job_filter(study, sweep_id, job_ids, states), {"_id": {"$gt": after_id}}]}
        cursor = self._db.jobs.find(selection).sort("_id", ASCENDING).limit(limit or 0)
        return [_with_id(job) for job in cursor]

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
        selection = _job_filter(None, sweep_id, job_ids, from_states)
        return self._db.jobs.update_many(selection, {"$set": values}).matched_count

    @_reachable
    def list_sweeps(self, study: str | None = None) -> list[dict[str, Any]]:
        selection = {} if study is None else {"study": study}
        return [self.get_sweep(sweep["_id"]) for sweep in self._db.sweeps.find(selection, {"_id": 1}).sort("_id", ASCENDING)]

    @_reachable
    def get_sweep(self, sweep_id: int) -> dict[str, Any]:
        sweep = self._db.sweeps.find_one({"_id": _id_is(sweep_id)})
        if sweep is None:
            raise JobNotFoundError(f"no sweep with id {sweep_id} in store {redact_credentials(self.uri)}")
        sweep.pop(_JOB_COUNT, None)
        return {"state": None, "copied_from": None, **_with_id(sweep), "counts": self._counts("jobs", "state", {"sweep_id": sweep_id})}

    @_reachable
    def summary(self) -> dict[str, Any]:
        return {
            "backend": f"MongoDB {self._client.server_info()['version']}",
            "schema_version": self._schema_version(),
            "integrity": None,  # the validate command reads whole collections: nothing cheap to run here
            "jobs": self._counts("jobs", "state"),
            "runs": self._counts("runs", "status"),
        }

    def close(self) -> None:
        """Close the connection, unless the client was given to the constructor (its owner closes it)."""
        if self._owns_client:
            self._client.close()

    def _counts(self, collection: str, field: str, selection: Mapping[str, Any] | None = None) -> dict[str, int]:
        """How many documents of ``collection`` (matching ``selection``) have each value of ``field``."""
        pipeline = [{"$match": dict(selection or {})}, {"$group": {"_id": f"${field}", "count": {"$sum": 1}}}]
        groups = self._db[collection].aggregate(pipeline)
        return {group["_id"]: group["count"] for group in groups}

    def _allocate_ids(self, collection: str, count: int = 1) -> range:
        """``count`` new ids for ``collection``, increasing, each handed out once (one atomic ``$inc``)."""
        counter = _upserted(self._db.counters, {"_id": collection}, {"$inc": {"seq": count}})
        return range(counter["seq"] - count + 1, counter["seq"] + 1)

    def _last_run_id(self) -> int:
        """The highest run id handed out so far: runs started later are not touched by a job change made now."""
        counter = self._db.counters.find_one({"_id": "runs"})
        return 0 if counter is None else int(counter["seq"])

    def _end_claimed_job(self, claim: Claim, state: str, error: str | None, run_id: int | None) -> bool:
        """End (or requeue) the job while the claim holds, in one conditional update; return whether it held."""
        return self._db.jobs.update_one(_holds(claim), {"$set": ended_job_changes(state, error, run_id)}).matched_count == 1

    def _end_job_for_run(self, claim: Claim, run_id: int, state: str, error: str | None) -> bool:
        """End the claimed job as the run's outcome; also true if an earlier try of this finish did and then failed."""
        if self._end_claimed_job(claim, state, error=error, run_id=run_id):
            return True
        return self._db.jobs.count_documents({"_id": claim.job_id, "state": state, "run_id": run_id}, limit=1) == 1

    def _status_after_lost_claim(self, claim: Claim) -> str:
        job = self._db.jobs.find_one({"_id": claim.job_id}, {"state": 1})
        return INTERRUPTED if job is not None and job["state"] == CANCELLED else DIED

    def _finish_job_runs(self, job_id: int, last_run_id: int, status: str, values: Mapping[str, Any]) -> None:
        """Finish the job's RUNNING runs with ids up to ``last_run_id`` (runs of a later attempt have higher ids)."""
        self._db.runs.update_many(
            {"job_id": job_id, "status": RUNNING, "_id": {"$lte": last_run_id}}, {"$set": {**values, "status": status}}
        )


def _series_by_name(points: Iterable[MetricPoint]) -> dict[str, dict[str, list[Any]]]:
    """``points`` as Sacred's metrics documents hold them: per name, lists of steps, values and timestamps."""
    series: dict[str, dict[str, list[Any]]] = {}
    for point in points:
        entry = series.setdefault(point.name, {"steps": [], "values": [], "timestamps": []})
        entry["steps"].append(point.step)
        entry["values"].append(point.value)
        entry["timestamps"].append(point.timestamp)
    return series


def _plain_ids(value: Any) -> Any:
    """``value`` with every MongoDB ObjectId in it as its string (Sacred's MongoObserver names source and artifact
    files by theirs): a run document holds plain data, whichever store it comes from."""
    if isinstance(value, bson.ObjectId):
        return str(value)
    if isinstance(value, dict):
        return {key: _plain_ids(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_ids(item) for item in value]
    return value


def _worker_row(document: Mapping[str, Any]) -> dict[str, Any]:
    """A worker's document as a registry row: its ``_id`` is its name."""
    return {"name": document["_id"], **{key: value for key, value in document.items() if key != "_id"}}


def _id_is(identifier: int) -> dict[str, Any]:
    """A match of ``identifier``; of nothing for an id outside :data:`ID_RANGE`, which BSON cannot encode."""
    return {"$eq": identifier} if identifier in ID_RANGE else {"$in": []}


def _holds(claim: Claim) -> dict[str, Any]:
    return {"_id": claim.job_id, "state": RUNNING, "token": claim.token}


def _job_document(job_id: int, study: str, sweep_id: int, job: NewJob, max_attempts: int, now: dt.datetime) -> dict[str, Any]:
    """A new QUEUED job with every field of the SQL backend's ``jobs`` table."""
    return {
        "_id": job_id, "study": study, "sweep_id": sweep_id, "overrides": list(job.overrides), "config": job.config,
        "config_hash": job.config_hash, "output_dir": job.output_dir, "priority": job.priority, "state": QUEUED,
        "attempts": 0, "max_attempts": max_attempts, "worker": None, "token": None, "lease_expires_at": None,
        "created_at": now, "claimed_at": None, "finished_at": None, "error": None, "run_id": None, "copied_from": None,
    }  # fmt: skip


def _job_filter(study: str | None, sweep_id: int | None, job_ids: Sequence[int] | None, states: Sequence[str] | None) -> dict[str, Any]:
    selection: dict[str, Any] = {}
    if study is not None:
        selection["study"] = study
    if sweep_id is not None:
        selection["sweep_id"] = _id_is(sweep_id)
    if job_ids is not None:
        selection["_id"] = {"$in": known_ids(job_ids)}
    if states is not None:
        selection["state"] = {"$in": list(states)}
    return selection


_BSON_TYPES = ((bool, "bool"), ((int, float), "number"), (str, "string"))
"""The BSON type (``$type`` alias) of each kind of scalar; bool first, as it is an int in Python."""
_COMPARISONS = {"<": "$lt", ">": "$gt", "<=": "$lte", ">=": "$gte"}
_DURATION_SECONDS = {"$divide": [{"$subtract": ["$stop_time", "$start_time"]}, 1000]}
"""Seconds from start to stop as an aggregation expression: null while either time is null (a RUNNING run)."""


def _field(path: str) -> str:
    """The dotted field of a run document that a condition's path names."""
    field, keys = run_path(path)
    return ".".join(("_id" if field == "id" else field, *keys))


def _condition_query(condition: Condition) -> dict[str, Any]:
    field, op, expected = _field(condition.path), condition.op, condition.value
    if op == "exists":
        present = {"$or": [{field: {"$type": "array"}}, {field: {"$ne": None}}]}  # $ne alone misses a list holding a null
        return present if expected else {"$nor": [present]}
    if op == "=":
        return _equals(field, expected)
    if op == "!=":
        return {"$nor": [_equals(field, expected)]}
    if op == "in":
        return {"$or": [_equals(field, item) for item in expected]}
    return {field: _scalar_match(_COMPARISONS[op], expected)}


def _equals(field: str, expected: Any) -> dict[str, Any]:
    return {field: {"$eq": expected}} if isinstance(expected, list) else {field: _scalar_match("$eq", expected)}


def _scalar_match(operator: str, expected: Any) -> dict[str, Any]:
    """``operator`` on a value of the type of ``expected``; never on a list, whose items MongoDB would match one by one."""
    bson_type = next(name for kind, name in _BSON_TYPES if isinstance(expected, kind))
    return {operator: expected, "$type": bson_type, "$not": {"$type": "array"}}


def _only(document: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """``document`` with ``_id`` and ``fields`` only."""
    return {"_id": document["_id"], **{field: document[field] for field in fields}}


def _sort_stages(sort: str) -> list[dict[str, Any]]:
    """Aggregation stages that order runs as :meth:`Store.list_runs` promises for ``sort``.

    Numbers and strings are told apart by BSON's comparison order (null < numbers < strings <
    documents), which aggregation expressions apply across types (mongomock too, where ``$type``
    is missing); a plain sort would put missing values first and order a list by its smallest item.
    """
    path, descending = sort_order(sort)
    value = _DURATION_SECONDS if path == DURATION else f"${_field(path)}"
    is_number = {"$and": [{"$gt": [value, None]}, {"$lt": [value, ""]}]}
    is_string = {"$and": [{"$gte": [value, ""]}, {"$lt": [value, {}]}]}
    rank = {"$cond": [is_number, 0, {"$cond": [is_string, 1, 2]}]}
    key = {"$cond": [{"$or": [is_number, is_string]}, value, None]}
    return [
        {"$addFields": {_SORT_RANK: rank, _SORT_KEY: key}},
        {"$sort": {_SORT_RANK: ASCENDING, _SORT_KEY: DESCENDING if descending else ASCENDING, "_id": ASCENDING}},
    ]


def _with_id(document: Mapping[str, Any]) -> dict[str, Any]:
    """A job or sweep as the interface returns it: ``id`` instead of MongoDB's ``_id``."""
    return {"id": document["_id"], **{key: value for key, value in document.items() if key != "_id"}}


def _check_storable(document: Mapping[str, Any]) -> None:
    """Raise before anything is written if ``document`` cannot be stored (not BSON, or over MongoDB's 16 MB limit)."""
    size = len(bson.encode(document))
    if size > _MAX_DOCUMENT_BYTES:
        raise HyperspaceError(f"a document of {size} bytes is over MongoDB's limit of {_MAX_DOCUMENT_BYTES} bytes")


def _database_name(uri: str) -> str:
    """The database named in the URI's path: ``mongodb://user:password@host:27017/NAME?options``."""
    path = uri.split("://", 1)[-1].partition("/")[2]
    name = urllib.parse.unquote(path.partition("?")[0])
    if not name:
        raise HyperspaceError(
            f"invalid store URI {redact_credentials(uri)!r}: no database name; expected mongodb://user:password@host:27017/database"
        )
    return name


def _upserted(collection: Collection, selector: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """The document ``selector`` picks after ``update`` (inserted if missing), in one atomic step."""
    document = collection.find_one_and_update(selector, update, upsert=True, return_document=ReturnDocument.AFTER)
    if document is None:
        raise RuntimeError(f"MongoDB returned no document after an upsert into {collection.name}")
    return document


def _connect(uri: str) -> pymongo.MongoClient:
    """A client that gives up on an unreachable server after a few seconds (a timeout set in the URI wins)."""
    options: dict[str, Any] = {} if "serverselectiontimeoutms=" in uri.lower() else {"serverSelectionTimeoutMS": _SERVER_SELECTION_TIMEOUT_MS}
    try:
        return pymongo.MongoClient(uri, **options)
    except (PyMongoError, ValueError) as error:  # pymongo raises ValueError for some malformed URIs
        raise HyperspaceError(f"cannot open store {redact_credentials(uri)}: {_reason(error)}") from error


_NOISE = re.compile(r" \(configured timeouts|, Timeout: ")
"""Where pymongo's connection errors go on with timeouts and the whole topology description."""


def _reason(error: Exception) -> str:
    """What went wrong, on one line and without credentials."""
    details = getattr(error, "details", None)
    message = details["errmsg"] if isinstance(details, Mapping) and details.get("errmsg") else str(error)
    return redact_credentials(" ".join(_NOISE.split(message)[0].split()))
