"""Bring Sacred runs into a store: from a FileStorageObserver directory or a MongoObserver database.

Each finished Sacred run becomes one run here, written whole by :meth:`Store.add_finished_runs`:
Sacred's fields as they are (``experiment``, ``command``, ``host``, times, ``status``, ``config``,
``result``, ``info``, ``captured_out``, ``fail_trace``, ``meta``, ``artifacts``, ``resources``),
its metric series, and where it came from (``info.imported_from``, ``info.sacred_id``), which
lets a second import skip it. Sacred runs that have not finished (QUEUED, RUNNING) are left out
and counted. Sources are only read. Sacred's copies of source files and artifacts stay where they
are: each run lists them in ``info.sacred_files`` with their SHA-256 (no store holds files).

Configs that name a class by a key (``className: Model``) can get ``_target_`` (a given prefix
plus the class name) when that resolves to an object in the study's code. With the study's app,
an imported run is completed as ``hyperspace backfill`` completes past runs, and gets its
``config_hash``, ``task`` and ``choices`` (the option of each config group whose node the run's
config holds), so it counts like a native run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import bson
import gridfs
import pymongo
from gridfs.errors import NoFile
from pymongo.errors import PyMongoError

from hyperspace_hydra import backfill
from hyperspace_hydra.config import UnresolvedTarget, to_plain, walk_target
from hyperspace_hydra.errors import HyperspaceError, one_line
from hyperspace_hydra.identity import objective_value
from hyperspace_hydra.settings import redact_credentials
from hyperspace_hydra.store import FINAL_STATUSES, Store
from hyperspace_hydra.store.base import RUN_FIELDS, Condition, FinishedRun, run_pages
from hyperspace_hydra.store.mongo import MongoStore

SACRED_FIELDS = (
    "experiment", "command", "host", "start_time", "heartbeat", "stop_time", "status", "config",
    "result", "info", "captured_out", "fail_trace", "meta", "artifacts", "resources", "format",
)  # fmt: skip
"""The fields of a Sacred run document; any other field a document has is kept in ``info.sacred_extra``."""
_TIMES = ("start_time", "heartbeat", "stop_time")
_MONGO_SCHEMES = ("mongodb://", "mongodb+srv://")
_SERVER_SELECTION_TIMEOUT_MS = 5000
_CHUNK_BYTES = 1 << 20


@dataclass
class SacredRun:
    """One run as a Sacred observer recorded it: its id there, its run document (Sacred's fields,
    times as naive UTC datetimes) and its metric series as :meth:`Store.get_metrics` returns them."""

    sacred_id: int | str
    document: dict[str, Any]
    metrics: dict[str, dict[str, list[Any]]]
    files: list[dict[str, Any]] = field(default_factory=list)
    """What Sacred kept of the run's source files and artifacts: one :func:`file_record` each."""


@dataclass(frozen=True)
class ClassKeys:
    """Configs name a class by ``key`` (``className``); ``_target_`` is ``prefix`` + that name (``study.models.``)."""

    key: str
    prefix: str


@dataclass
class ImportReport:
    """What an import did: ``imported`` maps Sacred ids to new run ids; ``already_imported`` and
    ``unfinished`` count the Sacred runs left out; ``unresolved`` counts the imported runs per class
    name that got no ``_target_`` (a line saying which, where, and why)."""

    imported: dict[int | str, int] = field(default_factory=dict)
    already_imported: int = 0
    unfinished: list[int | str] = field(default_factory=list)
    unresolved: Counter[str] = field(default_factory=Counter)


# Sacred's copies of source files and artifacts: recorded by where they are and their SHA-256, not copied


def file_record(kind: str, name: str, where: dict[str, str], content: BinaryIO | None) -> dict[str, Any]:
    """One file Sacred kept for a run: ``kind`` (``source`` or ``artifact``), its ``name`` in Sacred, ``where``
    it is (``path``: a file of a FileStorageObserver directory, or ``gridfs_id``: a GridFS file of the Sacred
    database the run was imported from), and its ``sha256`` and ``size`` in bytes, read from ``content``
    (None for a file that is missing: both then null)."""
    digest, size = hashlib.sha256(), 0
    if content is not None:
        with content:
            while chunk := content.read(_CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
    return {"kind": kind, "name": name, **where, "sha256": digest.hexdigest() if content is not None else None, "size": size if content is not None else None}


# Reading Sacred's FileStorageObserver directories


def file_storage_runs(directory: Path) -> Iterator[SacredRun]:
    """The runs of a FileStorageObserver directory (one numbered directory per run), in id order, one at a time.

    Raises :class:`HyperspaceError` when ``directory`` holds no Sacred run directory, and when a
    run is reached whose files cannot be read (naming it).
    """
    run_directories = sorted(
        (int(path.name), path) for path in directory.iterdir() if path.name.isdigit() and (path / "run.json").is_file()
    )
    if not run_directories:
        raise HyperspaceError(
            f"{directory} holds no Sacred runs: expected a FileStorageObserver directory (numbered run directories with run.json)"
        )
    for sacred_id, path in run_directories:
        try:
            run = _file_storage_run(sacred_id, path)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise _failure(sacred_id, str(directory), error) from error
        yield run


def _file_storage_run(sacred_id: int, path: Path) -> SacredRun:
    document = _read_json(path / "run.json")
    document["config"] = _read_json(path / "config.json", default={})
    document["info"] = _read_json(path / "info.json", default={})
    cout = path / "cout.txt"
    document["captured_out"] = cout.read_text(encoding="utf-8", errors="replace") if cout.exists() else ""
    for name in _TIMES:
        document[name] = _parse_time(document.get(name))
    metrics = _read_json(path / "metrics.json", default={})
    for series in metrics.values():
        series["timestamps"] = [_parse_time(stamp) for stamp in series["timestamps"]]
    return SacredRun(sacred_id, document, metrics, _file_storage_files(path, document))


def _file_storage_files(path: Path, document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The run's source files (in the directory's ``_sources``) and artifacts (in the run's directory)."""
    sources = [("source", name, path.parent / stored) for name, stored in (document.get("experiment") or {}).get("sources") or []]
    artifacts = [("artifact", name, path / name) for name in document.get("artifacts") or []]
    return [
        file_record(kind, name, {"path": str(file)}, file.open("rb") if file.is_file() else None) for kind, name, file in (*sources, *artifacts)
    ]


def _read_json(path: Path, default: Any = None) -> Any:
    if default is not None and not path.exists():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error


def _parse_time(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value).replace(tzinfo=None)


# Reading Sacred's MongoObserver databases


def mongo_runs(database: Any) -> Iterator[SacredRun]:
    """The runs of a database that Sacred's MongoObserver wrote (``runs``, ``metrics``), in id order, one at a time.

    ``database`` is a pymongo (or mongomock) database; it is only read.
    """
    for document in database.runs.find({}).sort("_id", pymongo.ASCENDING):
        sacred_id = document.pop("_id")
        metrics = {}
        for series in database.metrics.find({"run_id": sacred_id}).sort("_id", pymongo.ASCENDING):
            metrics[series["name"]] = {key: list(series[key]) for key in ("steps", "values", "timestamps")}
        yield SacredRun(sacred_id if isinstance(sacred_id, int) else str(sacred_id), document, metrics, _gridfs_files(database, document))


def _gridfs_files(database: Any, document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The run's source files and artifacts, which Sacred's MongoObserver keeps in the database's GridFS ``fs``."""
    files = gridfs.GridFS(database)
    sources = [("source", name, file_id) for name, file_id in (document.get("experiment") or {}).get("sources") or []]
    artifacts = [("artifact", artifact["name"], artifact["file_id"]) for artifact in document.get("artifacts") or []]
    return [file_record(kind, name, {"gridfs_id": str(file_id)}, _gridfs_file(files, file_id)) for kind, name, file_id in (*sources, *artifacts)]


def _gridfs_file(files: gridfs.GridFS, file_id: Any) -> BinaryIO | None:
    try:
        return files.get(file_id)  # type: ignore[return-value]  # a GridOut reads like a binary file
    except NoFile:
        return None


def open_mongo_source(uri: str) -> Any:
    """The database a ``mongodb://host/database`` URI names, on a new client (the caller closes ``database.client``)."""
    try:
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(uri, serverSelectionTimeoutMS=_SERVER_SELECTION_TIMEOUT_MS)
        database = client.get_default_database()
        database.command("ping")
    except (PyMongoError, ValueError) as error:
        raise HyperspaceError(f"cannot read Sacred database {redact_credentials(uri)}: {' '.join(str(error).split()[:30])}") from error
    return database


# Turning Sacred runs into runs of this store


def name_targets(config: Any, keys: ClassKeys, path: str = "") -> tuple[Any, list[str]]:
    """``config`` with ``_target_`` in place of ``keys.key`` in every node whose class name resolves
    (``keys.prefix`` + the name, imported without calling anything), and what did not resolve."""
    if isinstance(config, list):
        converted = [name_targets(item, keys, f"{path}.{index}" if path else str(index)) for index, item in enumerate(config)]
        return [item for item, _ in converted], [problem for _, problems in converted for problem in problems]
    if not isinstance(config, dict):
        return config, []
    node: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in config.items():
        node[key], found = name_targets(value, keys, f"{path}.{key}" if path else str(key))
        problems.extend(found)
    name = node.get(keys.key)
    if isinstance(name, str) and "_target_" not in node:
        target = keys.prefix + name
        problem = _unresolved(target)
        if problem is None:
            node = {"_target_": target, **{key: value for key, value in node.items() if key != keys.key}}
        else:
            problems.append(f"{path + '.' if path else ''}{keys.key}={name!r}: {target} does not resolve ({problem}); left as it is")
    return node, problems


def _unresolved(target: str) -> str | None:
    """Why ``target`` names nothing; None when it resolves."""
    try:
        for _ in walk_target(target):
            pass
    except UnresolvedTarget as error:
        return str(error)
    return None


@dataclass
class ImportOptions:
    """How Sacred runs are brought in: the study's app (fill defaults, hash, choices), a task name for
    every run, and the key that names classes in old configs."""

    study: backfill.StudyContext | None = None
    task: str | None = None
    class_keys: ClassKeys | None = None


def run_document(run: SacredRun, source: str, options: ImportOptions) -> tuple[dict[str, Any], list[str]]:
    """The document of the run that ``run`` becomes, and the class names that did not resolve."""
    sacred = {name: _plain(run.document.get(name)) for name in SACRED_FIELDS if name not in _TIMES}
    extra = {name: _plain(value) for name, value in run.document.items() if name not in SACRED_FIELDS}
    info = {
        **(sacred["info"] or {}), "imported_from": source, "sacred_id": run.sacred_id,
        **({"sacred_extra": extra} if extra else {}), **({"sacred_files": run.files} if run.files else {}),
    }  # fmt: skip
    config: Any = sacred["config"] or {}
    unresolved: list[str] = []
    if options.class_keys is not None:
        config, unresolved = name_targets(config, options.class_keys)
        if config != sacred["config"]:
            info["sacred_config"] = sacred["config"]
    document = {
        **sacred, **{name: run.document.get(name) for name in _TIMES},
        "config": config, "config_given": config, "info": info, "task": options.task, "seed": _seed(config),
        "objective": objective_value(sacred["result"], None),
    }  # fmt: skip
    if options.study is not None:
        document = backfill.as_study_run(document, options.study, options.task)
    return document, unresolved


def _plain(value: Any) -> Any:
    """``value`` as JSON-like data: MongoDB's ids as strings, anything else as :func:`to_plain` stores it."""
    if isinstance(value, bson.ObjectId):
        return str(value)
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return to_plain(value)


def _seed(config: Mapping[str, Any]) -> int | None:
    seed = config.get("seed") if isinstance(config, Mapping) else None
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def import_runs(store: Store, runs: Iterable[SacredRun], source: str, options: ImportOptions) -> ImportReport:
    """Write every finished run of ``runs`` (from ``source``, a redacted URI or an absolute path) that is not in
    ``store`` yet, each whole in one write.

    A run that cannot be read or written stops the import with a :class:`HyperspaceError` naming it;
    the runs before it stay imported, and importing again goes on from there.
    """
    report = ImportReport()
    done = _imported_ids(store, source)
    for run in runs:
        if run.sacred_id in done:
            report.already_imported += 1
            continue
        if run.document.get("status") not in FINAL_STATUSES:
            report.unfinished.append(run.sacred_id)
            continue
        try:
            document, unresolved = run_document(run, source, options)
            [run_id] = store.add_finished_runs([FinishedRun(document, run.metrics)])
        except Exception as error:  # noqa: BLE001 - whatever stops one run, the message must name it
            raise _failure(run.sacred_id, source, error) from error
        report.imported[run.sacred_id] = run_id
        report.unresolved.update(unresolved)
    return report


def _failure(sacred_id: int | str, source: str, error: Exception, done: str = "imported", doing: str = "importing") -> HyperspaceError:
    return HyperspaceError(
        f"Sacred run {sacred_id} of {source}: {one_line(error)}; the runs before it are {done}, and {doing} again goes on from there"
    )


def _imported_ids(store: Store, source: str) -> set[int | str]:
    """The Sacred ids of the runs already imported from ``source``."""
    pages = run_pages(store, [Condition("info.imported_from", "=", source)], ["info"])
    return {run["info"]["sacred_id"] for page in pages for run in page}


# Upgrading the runs of a database that Sacred's MongoObserver wrote, where they are

STUDY_FIELDS = tuple(name for name in RUN_FIELDS if name not in SACRED_FIELDS)
"""The fields of a run that Sacred's documents lack: an upgrade in place sets every one (None where unknown)."""


def upgrade_fields(document: Mapping[str, Any], source: str, options: ImportOptions) -> tuple[dict[str, Any], list[str]]:
    """What an upgrade in place sets on the run document that Sacred wrote (``_id`` included) to make it the run
    :func:`run_document` would import, and the class names that did not resolve.

    Every field of :data:`STUDY_FIELDS`; ``config`` only if it changed (its class names became
    ``_target_``, or defaults were filled in; Sacred's config is kept in ``info``); within ``info`` and
    ``experiment`` only the keys that are new or changed (``info.sacred_id``, ``experiment.name`` with the
    study's app), by dotted path, so that Sacred's own values stay as they are (its sources' GridFS ids too).
    """
    sacred = {name: value for name, value in document.items() if name != "_id"}
    upgraded, unresolved = run_document(SacredRun(document["_id"], sacred, {}), source, options)
    fields = {name: upgraded.get(name) for name in STUDY_FIELDS}
    if upgraded["config"] != _plain(sacred.get("config") or {}):
        fields["config"] = upgraded["config"]
    info = {key: value for key, value in upgraded["info"].items() if key != "sacred_extra"}  # other fields stay where Sacred put them
    for name, changed in (("info", info), ("experiment", upgraded["experiment"])):
        fields.update(_changed_keys(name, sacred.get(name), changed))
    return fields, unresolved


def _changed_keys(name: str, stored: Any, changed: Mapping[str, Any]) -> dict[str, Any]:
    """The ``$set`` that turns the stored mapping ``name`` into ``changed``, key by key (whole if nothing is stored)."""
    if not isinstance(stored, Mapping):
        return {name: dict(changed)}
    return {f"{name}.{key}": value for key, value in changed.items() if key not in stored or _plain(stored[key]) != value}


def upgrade_in_place(store: MongoStore, options: ImportOptions) -> ImportReport:
    """Make the finished runs that Sacred's MongoObserver wrote into ``store``'s database runs of the store where
    they are (see :func:`upgrade_fields`), each with one atomic update: interrupted, a run is upgraded or untouched.

    Runs upgraded before are skipped (and counted), as are runs Sacred has not finished (listed). A run that
    cannot be upgraded stops it with a :class:`HyperspaceError` naming it; upgrading again goes on from there.
    """
    source = redact_credentials(store.uri)
    report = ImportReport(already_imported=store.count_runs(where=[Condition("info.imported_from", "=", source)]))
    for document in store.sacred_runs():
        sacred_id = document["_id"]
        if document.get("status") not in FINAL_STATUSES:
            report.unfinished.append(sacred_id)
            continue
        try:
            fields, unresolved = upgrade_fields(document, source, options)
            upgraded = store.upgrade_sacred_run(sacred_id, fields)
        except Exception as error:  # noqa: BLE001 - whatever stops one run, the message must name it
            raise _failure(sacred_id, source, error, "upgraded", "upgrading") from error
        if upgraded:
            report.imported[sacred_id] = sacred_id
            report.unresolved.update(unresolved)
    return report


def import_sacred(store: Store, source: str, options: ImportOptions, in_place: bool = False) -> ImportReport:
    """Import the Sacred runs of ``source``: a FileStorageObserver directory or a ``mongodb://`` URI of a
    database that Sacred's MongoObserver wrote (see :func:`import_runs`); ``in_place``: upgrade the runs of
    ``store``, the database ``source`` names, where they are (see :func:`upgrade_in_place`)."""
    is_store = redact_credentials(source) == redact_credentials(store.uri)
    if in_place:
        if not (is_store and isinstance(store, MongoStore)):
            raise HyperspaceError(
                f"--in-place upgrades the runs of a MongoDB store that Sacred wrote: {redact_credentials(source)} must be "
                "a mongodb:// URI and the store (--store) that same database"
            )
        return upgrade_in_place(store, options)
    if source.startswith(_MONGO_SCHEMES):
        if is_store:
            raise HyperspaceError(
                f"{redact_credentials(source)} is the store itself: its Sacred runs are listed as they are; "
                "--in-place makes them runs of the store where they are"
            )
        database = open_mongo_source(source)
        try:
            return import_runs(store, mongo_runs(database), redact_credentials(source), options)
        except PyMongoError as error:
            raise HyperspaceError(
                f"reading Sacred database {redact_credentials(source)} failed: {' '.join(str(error).split()[:30])}; "
                "the runs read before are imported, and importing again goes on from there"
            ) from error
        finally:
            database.client.close()
    directory = Path(source)
    if not directory.is_dir():
        raise HyperspaceError(
            f"{source} is neither a directory (Sacred's FileStorageObserver) nor a mongodb:// URI (Sacred's MongoObserver)"
        )
    return import_runs(store, file_storage_runs(directory.resolve()), str(directory.resolve()), options)
