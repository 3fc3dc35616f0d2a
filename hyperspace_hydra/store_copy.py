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
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hyperspace_hydra.errors import HyperspaceError, one_line
from hyperspace_hydra.settings import redact_credentials
from hyperspace_hydra.store import FINAL_STATUSES, JOB_FINAL_STATES, PAUSED, QUEUED, RUNNING, JobNotFoundError, Store
from hyperspace_hydra.store.base import JOB_FIELDS, RUN_FIELDS, SWEEP_FIELDS, Condition, FinishedRun, WholeRow, job_pages, run_pages

PAGE_RUNS = 200
"""Runs (and jobs) read from a store per query: memory stays bounded by a page, whatever the size of the store."""
COPIED_FROM = "copied_from"
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
    copy_id: int
    """The id of the copy (of a run, job or sweep)."""
    status: str
    """A run's status, a job's state, a sweep's kind."""
    config_hash: str | None = None


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
    copies are compared, and the counts of sweeps and jobs (see :attr:`CopyReport.verified`).
    """
    origin = redact_credentials(source.uri)
    if origin == redact_credentials(destination.uri):
        raise HyperspaceError(f"source and destination are the same store ({origin})")
    if with_queue:
        check_queue_movable(source, where)
    copier = _Copier(source, destination, origin, with_queue)
    if not where:
        copier.copy_sweeps(source.list_sweeps())
        for jobs in job_pages(source, copier.job_states, PAGE_RUNS):
            copier.copy_jobs(jobs)
    total = len(source.list_runs(where=where, fields=[]))
    done = 0
    for page in run_pages(source, where, RUN_FIELDS, PAGE_RUNS):
        copier.copy_runs(page)
        done += len(page)
        progress(done, total)
    return copier.verify()


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
    """One copy from ``source`` into ``destination``: what the destination holds copied from ``origin`` (by the
    original's id), what the source selected, and the writes of whatever is missing."""

    def __init__(self, source: Store, destination: Store, origin: str, with_queue: bool) -> None:
        self.source, self.destination, self.origin = source, destination, origin
        self.job_states = sorted(JOB_FINAL_STATES | (QUEUE_STATES if with_queue else set()))
        self.sweep_copies, foreign_sweeps = _row_copies(destination.list_sweeps(), origin, "kind")
        self.job_copies, foreign_jobs = _row_copies((job for page in job_pages(destination, None, PAGE_RUNS) for job in page), origin, "state")
        self.run_copies = _run_copies(destination, origin)
        foreign = foreign_sweeps or foreign_jobs or _foreign_runs(destination, origin)
        kept = all(copy.copy_id == source_id for copies in (self.sweep_copies, self.job_copies, self.run_copies) for source_id, copy in copies.items())
        self.report = CopyReport(ids_kept=not foreign and kept)
        self.sweeps: dict[int, _Copy] = {}
        self.jobs: dict[int, _Copy] = {}
        self.runs: dict[int, _Copy] = {}
        self.job_runs: dict[int, int | None] = {}
        """The run that each selected job of the source names (its ``run_id`` there)."""
        self.asked_jobs: set[int] = set()

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
        """Note ``jobs`` (of the source) as selected and write those without a copy, after the sweeps they belong to."""
        self._copy_sweeps_by_id({job["sweep_id"] for job in jobs if job["sweep_id"] is not None})
        missing = []
        for job in jobs:
            self.jobs[job["id"]], self.job_runs[job["id"]] = _Copy(job["id"], job["state"]), job["run_id"]
            if job["id"] not in self.job_copies:
                missing.append(job)
        copies = [WholeRow(self._job_fields(job), self._kept(job)) for job in missing]
        new_ids = _written(lambda: self.destination.add_whole_jobs(copies), "job", missing, self.origin)
        self.job_copies.update({job["id"]: _Copy(new_id, job["state"]) for job, new_id in zip(missing, new_ids)})
        self.report.jobs.copied += len(missing)

    def copy_runs(self, page: list[dict[str, Any]]) -> None:
        """Note the finished runs of ``page`` as selected (the others as unfinished) and write those without a copy,
        after the jobs and sweeps they ran in."""
        finished = [run for run in page if run["status"] in FINAL_STATUSES]
        self.report.unfinished += [run["_id"] for run in page if run["status"] not in FINAL_STATUSES]
        job_ids = {run["job_id"] for run in finished if run["job_id"] is not None} - self.asked_jobs
        self.asked_jobs |= job_ids
        if job_ids:
            self.copy_jobs(self.source.list_jobs(job_ids=sorted(job_ids), states=self.job_states))
        self._copy_sweeps_by_id({run["sweep_id"] for run in finished if run["sweep_id"] is not None})
        for run in finished:
            self.runs[run["_id"]] = _Copy(run["_id"], run["status"], run["config_hash"])
        missing = [run for run in finished if run["_id"] not in self.run_copies]
        self.report.already_copied += len(finished) - len(missing)
        self.run_copies.update(self._write_runs(missing))
        self.report.copied += len(missing)

    def verify(self) -> CopyReport:
        """The report, with the counts and checksums of the selected originals and their copies."""
        report = self.report
        for originals, copies, tally in ((self.sweeps, self.sweep_copies, report.sweeps), (self.jobs, self.job_copies, report.jobs)):
            tally.already_copied = len(originals) - tally.copied
            tally.source, tally.destination = _counts(originals.values()), _counts(_copies_of(originals, copies))
        runs = _copies_of(self.runs, self.run_copies)
        report.source, report.destination = _counts(self.runs.values()), _counts(runs)
        report.source_checksum, report.destination_checksum = _checksum(self.runs.values()), _checksum(runs)
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
        run_copy = self.run_copies.get(job["run_id"]) if job["run_id"] is not None else None
        return {
            **{name: job[name] for name in JOB_FIELDS}, "sweep_id": _copy_id(self.sweep_copies, job["sweep_id"]),
            "run_id": None if run_copy is None else run_copy.copy_id, COPIED_FROM: self._origin_of(job),
        }  # fmt: skip

    def _write_runs(self, runs: list[dict[str, Any]]) -> dict[int, _Copy]:
        """Write copies of ``runs`` in one call; if that fails, one at a time, to name the run that cannot be written."""
        if not runs:
            return {}
        finished = [self._finished_copy(run) for run in runs]
        try:
            run_ids = self.destination.add_finished_runs(finished)
        except Exception:  # noqa: BLE001 - whatever the backend raised, the run at fault is found below
            run_ids = [_copy_one(self.destination, run, copy, self.origin) for run, copy in zip(runs, finished)]
        return {run["_id"]: _Copy(run_id, run["status"], run["config_hash"]) for run, run_id in zip(runs, run_ids)}

    def _finished_copy(self, run: dict[str, Any]) -> FinishedRun:
        """The copy of ``run`` to write: its fields, metrics and id (if kept), its job's and sweep's copies; ``info.copied_from`` names the original."""
        document = {name: run[name] for name in RUN_FIELDS}
        job_id = _copy_id(self.job_copies, run["job_id"])
        document.update(job_id=job_id, sweep_id=_copy_id(self.sweep_copies, run["sweep_id"]))
        copied_from = {"store": self.origin, "id": run["_id"], "job_id": run["job_id"], "sweep_id": run["sweep_id"]}
        document["info"] = {**(run["info"] or {}), COPIED_FROM: copied_from}
        is_job_run = job_id is not None and self.job_runs.get(run["job_id"]) == run["_id"]
        return FinishedRun(document, self.source.get_metrics(run["_id"]), run["_id"] if self.report.ids_kept else None, is_job_run)

    def _origin_of(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"store": self.origin, "id": row["id"]}

    def _kept(self, row: dict[str, Any]) -> int | None:
        return row["id"] if self.report.ids_kept else None


def _copy_id(copies: dict[int, _Copy], source_id: int | None) -> int | None:
    """The id of the copy of the original ``source_id``; None if it has none (or there is no original)."""
    copy = copies.get(source_id) if source_id is not None else None
    return None if copy is None else copy.copy_id


def _copies_of(originals: dict[int, _Copy], copies: dict[int, _Copy]) -> list[_Copy]:
    return [copies[source_id] for source_id in originals if source_id in copies]


def _written(write: Callable[[], list[int]], kind: str, rows: list[dict[str, Any]], origin: str) -> list[int]:
    """The ids that ``write`` gives the copies of ``rows``; a failure is one error naming them."""
    if not rows:
        return []
    try:
        return write()
    except Exception as error:  # noqa: BLE001 - whatever stops the write, the message must name what was not copied
        ids = ", ".join(str(row["id"]) for row in rows[:5]) + (", ..." if len(rows) > 5 else "")
        raise HyperspaceError(f"{kind}(s) {ids} of {origin} not copied: {one_line(error)}; what was copied before stays, and copying again goes on from there") from error


def _row_copies(rows: Iterable[dict[str, Any]], origin: str, status: str) -> tuple[dict[int, _Copy], bool]:
    """The sweeps or jobs among ``rows`` (of the destination) copied from ``origin``, by the original's id, and whether other rows are there."""
    copies, foreign = {}, False
    for row in rows:
        copied_from = row[COPIED_FROM] or {}
        if copied_from.get("store") == origin:
            copies[copied_from["id"]] = _Copy(row["id"], row[status])
        else:
            foreign = True
    return copies, foreign


def _copy_one(destination: Store, run: dict[str, Any], copy: FinishedRun, origin: str) -> int:
    try:
        [run_id] = destination.add_finished_runs([copy])
    except Exception as error:  # noqa: BLE001 - whatever stops one run, the message must name it
        raise _failure(run["_id"], origin, one_line(error)) from error
    return run_id


def _failure(run_id: int, origin: str, reason: str) -> HyperspaceError:
    return HyperspaceError(f"run {run_id} of {origin} not copied: {reason}; the runs before it are copied, and copying again goes on from there")


def _run_copies(destination: Store, origin: str) -> dict[int, _Copy]:
    """The runs of ``destination`` copied from ``origin``, by their id there."""
    copied = [Condition(f"info.{COPIED_FROM}.store", "=", origin)]
    return {
        run["info"][COPIED_FROM]["id"]: _Copy(run["_id"], run["status"], run["config_hash"])
        for page in run_pages(destination, copied, ("status", "config_hash", "info"), PAGE_RUNS)
        for run in page
    }


def _foreign_runs(destination: Store, origin: str) -> bool:
    """Whether ``destination`` holds a run that is no copy from ``origin``."""
    return bool(destination.list_runs(1, where=[Condition(f"info.{COPIED_FROM}.store", "!=", origin)], fields=[]))


def _counts(runs: Any) -> dict[str, int]:
    return dict(sorted(Counter(run.status for run in runs).items()))


def _checksum(runs: Any) -> str:
    """SHA-256 over the sorted config hashes of ``runs`` (a run without one counts as an empty line)."""
    digest = hashlib.sha256()
    for value in sorted(run.config_hash or "" for run in runs):
        digest.update(value.encode() + b"\n")
    return digest.hexdigest()
