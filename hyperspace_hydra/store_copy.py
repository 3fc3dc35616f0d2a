"""Copy a store into another, whatever the backends: its sweeps, finished jobs and finished runs (with their metric
series and captured output), and on request its queue (QUEUED and PAUSED jobs).

Sweeps are written first, then jobs, then runs, so that a copy never points at something not copied yet: a job's
``sweep_id`` names its sweep's copy, a run's ``job_id`` and ``sweep_id`` the copies of its job and sweep (None
where those are not copied: a job still RUNNING, or QUEUED without ``with_queue``), and a job gets its ``run_id``
when the run it names is written (:attr:`FinishedRun.is_job_run`). Each write is whole: runs a page at a time by
:meth:`Store.add_finished_runs` (one transaction; on MongoDB the run documents last), sweeps and jobs a page at a
time by :meth:`Store.add_whole_sweeps` and :meth:`Store.add_whole_jobs`; so an interrupted copy leaves only whole
records, and copying again brings in only what is missing. Every copy names its original: a run in
``info.copied_from`` (the source store's URI without its password, the run's id there, and the ids of its job and
sweep there), a sweep or job in its own ``copied_from`` field (the URI, its id there). Into a store that holds
nothing but copies of the same source with their ids, everything keeps its id; otherwise new ids are given. With
``where``, only the selected runs and the jobs and sweeps they ran in are copied. Sources are only read (the
command opens them read-only), a page at a time.

Memory is bounded by a page of runs, not by the store: runs and jobs are read, written and counted a page at a time,
and the verification adds up as the pages go (counts per status, and a checksum that does not depend on the order
of the runs, see :class:`RunTally`), on the source's side and on the side of the copies. What grows with the store is
16 bytes per run and per job of the destination copied from the source (the original's id and the copy's, in an
:class:`IdMap`, which tells what is copied already and what a copy points at), 16 bytes per selected job (the run it
names), and the sweeps, held whole (there is one per enqueue or search). ``benchmarks/store_copy.py`` measures it.
"""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hyperspace_hydra.errors import HyperspaceError, one_line
from hyperspace_hydra.settings import redact_credentials
from hyperspace_hydra.store import FINAL_STATUSES, JOB_FINAL_STATES, PAUSED, QUEUED, RUNNING, JobNotFoundError, Store
from hyperspace_hydra.store.base import JOB_FIELDS, RUN_FIELDS, SWEEP_FIELDS, Condition, FinishedRun, WholeRow, job_pages, run_pages

PAGE_RUNS = 200
"""Runs (and jobs) read from a store per query: memory stays bounded by a page, whatever the size of the store."""
MERGED_EVERY = 4096
"""Additions to an :class:`IdMap` held in a dict before they are merged into its arrays."""
COPIED_FROM = "copied_from"
SQLITE_PREFIX = "sqlite:///"
QUEUE_STATES = frozenset({QUEUED, PAUSED})
"""The states of the jobs that ``with_queue`` moves: they wait in the destination's queue as they waited in the source's."""


@dataclass
class Tally:
    """What a copy did with the sweeps or the jobs: ``copied`` now, ``already_copied`` before; ``source`` counts the
    selected originals (sweeps per kind, jobs per state), ``destination`` their copies as they are now."""

    copied: int = 0
    already_copied: int = 0
    source: dict[str, int] = field(default_factory=dict)
    destination: dict[str, int] = field(default_factory=dict)


@dataclass
class CopyReport:
    """What a copy did and what it checked: ``copied`` and ``already_copied`` count finished runs,
    ``unfinished`` lists the ids of selected runs still RUNNING (copied once they end), ``ids_kept``
    says whether copies keep their ids. ``source`` and ``destination`` count the selected finished
    runs and their copies per status; the checksums cover their config hashes. ``sweeps`` and ``jobs``
    tell the same of sweeps and jobs."""

    ids_kept: bool
    copied: int = 0
    already_copied: int = 0
    unfinished: list[int] = field(default_factory=list)
    source: dict[str, int] = field(default_factory=dict)
    destination: dict[str, int] = field(default_factory=dict)
    source_checksum: str = ""
    destination_checksum: str = ""
    sweeps: Tally = field(default_factory=Tally)
    jobs: Tally = field(default_factory=Tally)

    @property
    def verified(self) -> bool:
        """Whether every selected finished run has a copy with its status and config hash, every selected sweep a copy
        of its kind and every selected job a copy (a moved QUEUED job may have run in the destination since)."""
        runs = self.source == self.destination and self.source_checksum == self.destination_checksum
        jobs = sum(self.jobs.source.values()) == sum(self.jobs.destination.values())
        return runs and jobs and self.sweeps.source == self.sweeps.destination


@dataclass(frozen=True)
class _Copy:
    """A sweep and its copy (sweeps are few, and held whole)."""

    copy_id: int
    """The id of the copy."""
    status: str
    """The sweep's kind."""


def copy_store(
    source: Store,
    destination: Store,
    where: Sequence[Condition] = (),
    progress: Callable[[int, int], None] = lambda _done, _total: None,
    with_queue: bool = False,
) -> CopyReport:
    """Copy the sweeps, finished jobs and finished runs of ``source`` that are not in ``destination`` yet; with
    ``where``, only the runs that meet every condition and the jobs and sweeps they ran in; with ``with_queue``,
    also the QUEUED and PAUSED jobs (see :func:`check_queue_movable`).

    ``progress(done, total)`` is called after each page of runs. A run, job or sweep that cannot be written stops
    the copy with a :class:`HyperspaceError` naming it; what was copied before it stays, and copying again goes on
    from there. At the end, counts per status and a checksum of the config hashes of the selected runs and of their
    copies (those copied before as they are now in the destination) are compared, and the counts of sweeps and jobs
    (see :attr:`CopyReport.verified`).
    """
    check_distinct_stores(source.uri, destination.uri)
    origin = redact_credentials(source.uri)
    if with_queue:
        check_queue_movable(source, where)
    copier = _Copier(source, destination, origin, with_queue)
    if not where:
        copier.copy_sweeps(source.list_sweeps())
        for jobs in job_pages(source, copier.job_states, PAGE_RUNS):
            copier.copy_jobs(jobs)
    total = source.count_runs(where=where)
    done = 0
    for page in run_pages(source, where, RUN_FIELDS, PAGE_RUNS):
        copier.copy_runs(page)
        done += len(page)
        progress(done, total)
    return copier.verify()


def check_distinct_stores(source_uri: str, destination_uri: str) -> None:
    """:class:`HyperspaceError` if the two URIs name the same store: the same SQLite file however its path is
    written, else the same URI without its password."""
    if _store_named(source_uri) == _store_named(destination_uri):
        raise HyperspaceError(f"source and destination are the same store ({redact_credentials(source_uri)})")


def _store_named(uri: str) -> str:
    if uri.startswith(SQLITE_PREFIX):
        return SQLITE_PREFIX + str(Path(uri.removeprefix(SQLITE_PREFIX)).resolve())
    return redact_credentials(uri)


def check_queue_movable(source: Store, where: Sequence[Condition] = ()) -> None:
    """:class:`HyperspaceError` unless the queue of ``source`` can be moved: no ``where`` (the queue moves whole) and
    no job RUNNING (its claim stays with the source: it would end there, or be lost)."""
    origin = redact_credentials(source.uri)
    if where:
        raise HyperspaceError("--with-queue moves the whole queue and takes no --where: copy the selected runs without it")
    running = source.list_jobs(states=[RUNNING], limit=10)
    if running:
        raise HyperspaceError(
            f"job(s) {', '.join(str(job['id']) for job in running)} of {origin} RUNNING: the queue moves only while no job runs; "
            "stop the source's workers (or let them finish) and copy again; nothing was copied"
        )


class _Copier:
    """One copy from ``source`` into ``destination``: which originals the destination holds a copy of (by the original's
    id), what the source selected so far, the tallies of both sides, and the writes of whatever is missing."""

    def __init__(self, source: Store, destination: Store, origin: str, with_queue: bool) -> None:
        self.source, self.destination, self.origin = source, destination, origin
        self.job_states = sorted(JOB_FINAL_STATES | (QUEUE_STATES if with_queue else set()))
        self.sweep_copies, foreign_sweeps = _sweep_copies(destination.list_sweeps(), origin)
        self.job_copies, foreign_jobs, jobs_kept = _job_copies(destination, origin)
        self.run_copies, runs_kept = _run_copies(destination, origin)
        foreign = foreign_sweeps or foreign_jobs or _foreign_runs(destination, origin)
        sweeps_kept = all(copy.copy_id == source_id for source_id, copy in self.sweep_copies.items())
        self.report = CopyReport(ids_kept=not foreign and sweeps_kept and jobs_kept and runs_kept)
        self.sweeps: dict[int, _Copy] = {}
        self.jobs = IdMap()
        """The selected jobs of the source, each to the run it names (its ``run_id`` there; 0: none)."""
        self.selected, self.copies = RunTally(), RunTally()
        """The selected finished runs and their copies, tallied a page at a time."""

    def copy_sweeps(self, sweeps: Iterable[dict[str, Any]]) -> None:
        """Note ``sweeps`` (of the source) as selected and write those without a copy."""
        missing = []
        for sweep in sweeps:
            self.sweeps[sweep["id"]] = _Copy(sweep["id"], sweep["kind"])
            if sweep["id"] not in self.sweep_copies:
                missing.append(sweep)
        copies = [WholeRow({**{name: sweep[name] for name in SWEEP_FIELDS}, COPIED_FROM: self._origin_of(sweep)}, self._kept(sweep)) for sweep in missing]
        new_ids = _written(lambda: self.destination.add_whole_sweeps(copies), "sweep", missing, self.origin)
        self.sweep_copies.update({sweep["id"]: _Copy(new_id, sweep["kind"]) for sweep, new_id in zip(missing, new_ids)})
        self.report.sweeps.copied += len(missing)

    def copy_jobs(self, jobs: list[dict[str, Any]]) -> None:
        """Note the jobs of ``jobs`` (of the source) not selected yet as selected, count them and their copies, and
        write those without a copy, after the sweeps they belong to."""
        jobs = [job for job in jobs if job["id"] not in self.jobs]
        self._copy_sweeps_by_id({job["sweep_id"] for job in jobs if job["sweep_id"] is not None})
        tally, missing, copied_before = self.report.jobs, [], []
        for job in jobs:
            self.jobs[job["id"]] = job["run_id"] or 0
            _count(tally.source, job["state"])
            copy_id = self.job_copies.get(job["id"])
            if copy_id is None:
                missing.append(job)
            else:
                copied_before.append(copy_id)
        for copy in self.destination.list_jobs(job_ids=copied_before) if copied_before else ():
            _count(tally.destination, copy["state"])
        copies = [WholeRow(self._job_fields(job), self._kept(job)) for job in missing]
        new_ids = _written(lambda: self.destination.add_whole_jobs(copies), "job", missing, self.origin)
        for job, new_id in zip(missing, new_ids):
            self.job_copies[job["id"]] = new_id
            _count(tally.destination, job["state"])
        tally.copied += len(missing)
        tally.already_copied += len(copied_before)

    def copy_runs(self, page: list[dict[str, Any]]) -> None:
        """Count the finished runs of ``page`` as selected (note the others as unfinished) and their copies, and write
        those without a copy, after the jobs and sweeps they ran in."""
        finished = [run for run in page if run["status"] in FINAL_STATUSES]
        self.report.unfinished += [run["_id"] for run in page if run["status"] not in FINAL_STATUSES]
        job_ids = sorted({run["job_id"] for run in finished if run["job_id"] is not None and run["job_id"] not in self.jobs})
        if job_ids:
            self.copy_jobs(self.source.list_jobs(job_ids=job_ids, states=self.job_states))
        self._copy_sweeps_by_id({run["sweep_id"] for run in finished if run["sweep_id"] is not None})
        missing, copied_before = [], []
        for run in finished:
            self.selected.add(run["status"], run["config_hash"])
            copy_id = self.run_copies.get(run["_id"])
            if copy_id is None:
                missing.append(run)
            else:
                copied_before.append(copy_id)
        for copy in _runs_of(self.destination, copied_before, ("status", "config_hash")):  # as they are now
            self.copies.add(copy["status"], copy["config_hash"])
        for run, run_id in zip(missing, self._write_runs(missing)):
            self.run_copies[run["_id"]] = run_id
            self.copies.add(run["status"], run["config_hash"])
        self.report.copied += len(missing)
        self.report.already_copied += len(copied_before)

    def verify(self) -> CopyReport:
        """The report, with the counts and checksums of the selected originals and their copies."""
        report = self.report
        report.sweeps.already_copied = len(self.sweeps) - report.sweeps.copied
        report.sweeps.source = _counts(copy.status for copy in self.sweeps.values())
        report.sweeps.destination = _counts(self.sweep_copies[sweep_id].status for sweep_id in self.sweeps if sweep_id in self.sweep_copies)
        report.jobs.source, report.jobs.destination = _counts(report.jobs.source), _counts(report.jobs.destination)
        report.source, report.source_checksum = self.selected.counts(), self.selected.checksum()
        report.destination, report.destination_checksum = self.copies.counts(), self.copies.checksum()
        return report

    def _copy_sweeps_by_id(self, sweep_ids: set[int]) -> None:
        """Copy the sweeps of ``sweep_ids`` not seen yet (one that is not in the source any more is left out)."""
        sweeps = []
        for sweep_id in sorted(sweep_ids - set(self.sweeps)):
            try:
                sweeps.append(self.source.get_sweep(sweep_id))
            except JobNotFoundError:
                continue
        if sweeps:
            self.copy_sweeps(sweeps)

    def _job_fields(self, job: dict[str, Any]) -> dict[str, Any]:
        """A job's copy: its fields, its sweep's copy, the copy of its run if that was copied before (else set when it is)."""
        return {
            **{name: job[name] for name in JOB_FIELDS}, "sweep_id": _copy_id(self.sweep_copies, job["sweep_id"]),
            "run_id": self.run_copies.get(job["run_id"]), COPIED_FROM: self._origin_of(job),
        }  # fmt: skip

    def _write_runs(self, runs: list[dict[str, Any]]) -> list[int]:
        """Write copies of ``runs`` in one call; if that fails, one at a time, to name the run that cannot be written."""
        if not runs:
            return []
        finished = [self._finished_copy(run) for run in runs]
        try:
            return self.destination.add_finished_runs(finished)
        except Exception:  # noqa: BLE001 - whatever the backend raised, the run at fault is found below
            return [_copy_one(self.destination, run, copy, self.origin) for run, copy in zip(runs, finished)]

    def _finished_copy(self, run: dict[str, Any]) -> FinishedRun:
        """The copy of ``run`` to write: its fields, metrics and id (if kept), its job's and sweep's copies; ``info.copied_from`` names the original."""
        document = {name: run[name] for name in RUN_FIELDS}
        job_id = self.job_copies.get(run["job_id"])
        document.update(job_id=job_id, sweep_id=_copy_id(self.sweep_copies, run["sweep_id"]))
        copied_from = {"store": self.origin, "id": run["_id"], "job_id": run["job_id"], "sweep_id": run["sweep_id"]}
        document["info"] = {**(run["info"] or {}), COPIED_FROM: copied_from}
        is_job_run = job_id is not None and self.jobs.get(run["job_id"]) == run["_id"]
        return FinishedRun(document, self.source.get_metrics(run["_id"]), run["_id"] if self.report.ids_kept else None, is_job_run)

    def _origin_of(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"store": self.origin, "id": row["id"]}

    def _kept(self, row: dict[str, Any]) -> int | None:
        return row["id"] if self.report.ids_kept else None


def _copy_id(copies: dict[int, _Copy], source_id: int | None) -> int | None:
    """The id of the copy of the original ``source_id``; None if it has none (or there is no original)."""
    copy = copies.get(source_id) if source_id is not None else None
    return None if copy is None else copy.copy_id


def _written(write: Callable[[], list[int]], kind: str, rows: list[dict[str, Any]], origin: str) -> list[int]:
    """The ids that ``write`` gives the copies of ``rows``; a failure is one error naming them."""
    if not rows:
        return []
    try:
        return write()
    except Exception as error:  # noqa: BLE001 - whatever stops the write, the message must name what was not copied
        ids = ", ".join(str(row["id"]) for row in rows[:5]) + (", ..." if len(rows) > 5 else "")
        raise HyperspaceError(f"{kind}(s) {ids} of {origin} not copied: {one_line(error)}; what was copied before stays, and copying again goes on from there") from error


def _sweep_copies(sweeps: Iterable[dict[str, Any]], origin: str) -> tuple[dict[int, _Copy], bool]:
    """The sweeps among ``sweeps`` (of the destination) copied from ``origin``, by the original's id, and whether other sweeps are there."""
    copies, foreign = {}, False
    for sweep in sweeps:
        copied_from = sweep[COPIED_FROM] or {}
        if copied_from.get("store") == origin:
            copies[copied_from["id"]] = _Copy(sweep["id"], sweep["kind"])
        else:
            foreign = True
    return copies, foreign


def _job_copies(destination: Store, origin: str) -> tuple[IdMap, bool, bool]:
    """The jobs of ``destination`` copied from ``origin`` (the original's id to the copy's), whether other jobs are there,
    and whether every copy has its original's id."""
    copies, foreign, kept = IdMap(), False, True
    for page in job_pages(destination, None, PAGE_RUNS):
        for job in page:
            copied_from = job[COPIED_FROM] or {}
            if copied_from.get("store") == origin:
                copies[copied_from["id"]] = job["id"]
                kept = kept and copied_from["id"] == job["id"]
            else:
                foreign = True
    return copies, foreign, kept


def _copy_one(destination: Store, run: dict[str, Any], copy: FinishedRun, origin: str) -> int:
    try:
        [run_id] = destination.add_finished_runs([copy])
    except Exception as error:  # noqa: BLE001 - whatever stops one run, the message must name it
        raise _failure(run["_id"], origin, one_line(error)) from error
    return run_id


def _failure(run_id: int, origin: str, reason: str) -> HyperspaceError:
    return HyperspaceError(f"run {run_id} of {origin} not copied: {reason}; the runs before it are copied, and copying again goes on from there")


def _run_copies(destination: Store, origin: str) -> tuple[IdMap, bool]:
    """The runs of ``destination`` copied from ``origin`` (the original's id to the copy's), and whether every copy has its original's id."""
    copies, kept = IdMap(), True
    for page in run_pages(destination, [Condition(f"info.{COPIED_FROM}.store", "=", origin)], ("info",), PAGE_RUNS):
        for run in page:
            copies[run["info"][COPIED_FROM]["id"]] = run["_id"]
            kept = kept and run["info"][COPIED_FROM]["id"] == run["_id"]
    return copies, kept


def _runs_of(store: Store, run_ids: list[int], fields: Sequence[str]) -> list[dict[str, Any]]:
    """The runs of ``store`` among ``run_ids`` (at most a page), only ``fields``. The copies of a page of runs were
    mostly written together, so their ids lie close: a range of ids is read, and an ``in`` (which costs more to build
    than the query takes) only for ids far apart."""
    if not run_ids:
        return []
    low, high = min(run_ids), max(run_ids)
    if high - low < 2 * len(run_ids):
        runs = store.list_runs(high - low + 1, where=[Condition("id", ">=", low), Condition("id", "<=", high)], fields=fields)
    else:
        runs = store.list_runs(len(run_ids), where=[Condition("id", "in", run_ids)], fields=fields)
    wanted = set(run_ids)
    return [run for run in runs if run["_id"] in wanted]


def _foreign_runs(destination: Store, origin: str) -> bool:
    """Whether ``destination`` holds a run that is no copy from ``origin``."""
    return bool(destination.list_runs(1, where=[Condition(f"info.{COPIED_FROM}.store", "!=", origin)], fields=[]))


def _count(counts: dict[str, int], status: str) -> None:
    counts[status] = counts.get(status, 0) + 1


def _counts(statuses: Iterable[str] | dict[str, int]) -> dict[str, int]:
    """Counts per status, in the order of the statuses' names."""
    return dict(sorted(Counter(statuses).items()))


class RunTally:
    """Runs counted one at a time, in any order: how many have each status, and a checksum of their config hashes."""

    def __init__(self) -> None:
        self.statuses: Counter[str] = Counter()
        self.digests = 0

    def add(self, status: str, config_hash: str | None) -> None:
        """Count a run (one without a config hash counts as an empty one)."""
        self.statuses[status] += 1
        self.digests = (self.digests + int.from_bytes(hashlib.sha256((config_hash or "").encode()).digest(), "big")) % 2**256

    def counts(self) -> dict[str, int]:
        return _counts(self.statuses)

    def checksum(self) -> str:
        """The sum of the SHA-256 digests of the config hashes, modulo 2**256, in hex: the same for the same hashes in
        any order, and unlike a XOR, two equal hashes do not cancel out."""
        return f"{self.digests:064x}"


class IdMap:
    """Ids of a store to ids (of a copy, of a run) in 16 bytes each: a dict of ints takes ~100 bytes an entry, too
    many for a copy of millions of runs. Two sorted arrays of 64-bit integers, looked up by bisection; the latest
    additions wait in a dict of at most :data:`MERGED_EVERY` entries, then are merged into the arrays in one pass."""

    def __init__(self) -> None:
        self._keys, self._values = array("q"), array("q")
        self._recent: dict[int, int] = {}

    def get(self, key: int | None) -> int | None:
        """The id that ``key`` maps to; None if it maps to none (or is None)."""
        if key is None:
            return None
        if key in self._recent:
            return self._recent[key]
        index = bisect_left(self._keys, key)
        return self._values[index] if index < len(self._keys) and self._keys[index] == key else None

    def __contains__(self, key: int) -> bool:
        return self.get(key) is not None

    def __setitem__(self, key: int, value: int) -> None:
        self._recent[key] = value
        if len(self._recent) >= MERGED_EVERY:
            self._merge()

    def _merge(self) -> None:
        keys, values, start = array("q"), array("q"), 0
        for key in sorted(self._recent):
            index = bisect_left(self._keys, key, start)
            keys += self._keys[start:index]
            values += self._values[start:index]
            keys.append(key)
            values.append(self._recent[key])
            start = index + (index < len(self._keys) and self._keys[index] == key)  # a key mapped anew: its old value goes
        keys += self._keys[start:]
        values += self._values[start:]
        self._keys, self._values, self._recent = keys, values, {}
