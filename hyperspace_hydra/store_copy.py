"""Copy finished runs, with their metric series and captured output, from one store to another, whatever the backends.

Runs are written a page at a time by :meth:`Store.add_finished_runs` (one transaction; on MongoDB the
run documents last), so an interrupted copy leaves only whole runs, and copying again brings in only
what is missing: every copy names its original in ``info.copied_from`` (the source store's URI
without its password, the run's id there, and the job and sweep it belonged to, which are not
copied). Into a store that holds nothing but copies of the same source with their ids, runs keep
their ids; otherwise they get new ones. Sources are only read (the command opens them read-only), a page
of runs at a time.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hyperspace_hydra.errors import HyperspaceError, one_line
from hyperspace_hydra.settings import redact_credentials
from hyperspace_hydra.store import FINAL_STATUSES, Store
from hyperspace_hydra.store.base import RUN_FIELDS, Condition, FinishedRun, run_pages

PAGE_RUNS = 200
"""Runs read from a store per query: memory stays bounded by a page, whatever the size of the store."""
COPIED_FROM = "copied_from"


@dataclass
class CopyReport:
    """What a copy did and what it checked: ``copied`` and ``already_copied`` count finished runs,
    ``unfinished`` lists the ids of selected runs still RUNNING (copied once they end), ``ids_kept``
    says whether copies keep their ids. ``source`` and ``destination`` count the selected finished
    runs and their copies per status; the checksums cover their config hashes."""

    ids_kept: bool
    copied: int = 0
    already_copied: int = 0
    unfinished: list[int] = field(default_factory=list)
    source: dict[str, int] = field(default_factory=dict)
    destination: dict[str, int] = field(default_factory=dict)
    source_checksum: str = ""
    destination_checksum: str = ""

    @property
    def verified(self) -> bool:
        """Whether every selected finished run has a copy with its status and config hash."""
        return self.source == self.destination and self.source_checksum == self.destination_checksum


@dataclass(frozen=True)
class _Copy:
    run_id: int
    status: str
    config_hash: str | None


def copy_runs(source: Store, destination: Store, where: Sequence[Condition] = (), progress: Callable[[int, int], None] = lambda _done, _total: None) -> CopyReport:
    """Copy the finished runs of ``source`` that meet every condition of ``where`` and are not in ``destination`` yet.

    ``progress(done, total)`` is called after each page of runs. A run that cannot be written stops the
    copy with a :class:`HyperspaceError` naming it; runs copied before it stay, and copying again
    goes on from there. At the end, counts per status and a checksum of the config hashes of the
    selected runs and of their copies are compared (see :attr:`CopyReport.verified`).
    """
    origin = redact_credentials(source.uri)
    if origin == redact_credentials(destination.uri):
        raise HyperspaceError(f"source and destination are the same store ({origin})")
    copies = _copies(destination, origin)
    report = CopyReport(ids_kept=_keeps_ids(destination, origin, copies))
    total = len(source.list_runs(where=where, fields=[]))
    originals: dict[int, _Copy] = {}
    done = 0
    for page in run_pages(source, where, RUN_FIELDS, PAGE_RUNS):
        missing = _missing(page, copies, originals, report)
        copies.update(_copy_page(source, destination, missing, origin, report.ids_kept))
        report.copied += len(missing)
        done += len(page)
        progress(done, total)
    _verify(report, originals, copies)
    return report


def _missing(page: list[dict[str, Any]], copies: dict[int, _Copy], originals: dict[int, _Copy], report: CopyReport) -> list[dict[str, Any]]:
    """The finished runs of ``page`` without a copy; each finished run is noted in ``originals``, each other one in ``report``."""
    missing = []
    for run in page:
        if run["status"] not in FINAL_STATUSES:
            report.unfinished.append(run["_id"])
            continue
        originals[run["_id"]] = _Copy(run["_id"], run["status"], run["config_hash"])
        if run["_id"] in copies:
            report.already_copied += 1
        else:
            missing.append(run)
    return missing


def _copy_page(source: Store, destination: Store, runs: list[dict[str, Any]], origin: str, keep_ids: bool) -> dict[int, _Copy]:
    """Write copies of ``runs`` in one call; if that fails, one at a time, to name the run that cannot be written."""
    if not runs:
        return {}
    finished = [_finished_copy(source, run, origin, keep_ids) for run in runs]
    try:
        run_ids = destination.add_finished_runs(finished)
    except Exception:  # noqa: BLE001 - whatever the backend raised, the run at fault is found below
        run_ids = [_copy_one(destination, run, copy, origin) for run, copy in zip(runs, finished)]
    return {run["_id"]: _Copy(run_id, run["status"], run["config_hash"]) for run, run_id in zip(runs, run_ids)}


def _finished_copy(source: Store, run: dict[str, Any], origin: str, keep_id: bool) -> FinishedRun:
    """The copy of ``run`` to write: its fields, metrics and id (if kept); ``info.copied_from`` names the original."""
    document = {name: run[name] for name in RUN_FIELDS}
    document.update(job_id=None, sweep_id=None)  # jobs and sweeps are not copied: they would name others in the destination
    copied_from = {"store": origin, "id": run["_id"], "job_id": run["job_id"], "sweep_id": run["sweep_id"]}
    document["info"] = {**(run["info"] or {}), COPIED_FROM: copied_from}
    return FinishedRun(document, source.get_metrics(run["_id"]), run["_id"] if keep_id else None)


def _copy_one(destination: Store, run: dict[str, Any], copy: FinishedRun, origin: str) -> int:
    try:
        [run_id] = destination.add_finished_runs([copy])
    except Exception as error:  # noqa: BLE001 - whatever stops one run, the message must name it
        raise _failure(run["_id"], origin, one_line(error)) from error
    return run_id


def _failure(run_id: int, origin: str, reason: str) -> HyperspaceError:
    return HyperspaceError(f"run {run_id} of {origin} not copied: {reason}; the runs before it are copied, and copying again goes on from there")


def _copies(destination: Store, origin: str) -> dict[int, _Copy]:
    """The runs of ``destination`` copied from ``origin``, by their id there."""
    copied = [Condition(f"info.{COPIED_FROM}.store", "=", origin)]
    return {
        run["info"][COPIED_FROM]["id"]: _Copy(run["_id"], run["status"], run["config_hash"])
        for page in run_pages(destination, copied, ("status", "config_hash", "info"), PAGE_RUNS)
        for run in page
    }


def _keeps_ids(destination: Store, origin: str, copies: dict[int, _Copy]) -> bool:
    """Whether copies keep their ids: ``destination`` holds only copies from ``origin`` that kept theirs (or nothing)."""
    others = destination.list_runs(1, where=[Condition(f"info.{COPIED_FROM}.store", "!=", origin)], fields=[])
    return not others and all(copy.run_id == source_id for source_id, copy in copies.items())


def _verify(report: CopyReport, originals: dict[int, _Copy], copies: dict[int, _Copy]) -> None:
    mine = [copies[source_id] for source_id in originals if source_id in copies]
    report.source, report.destination = _counts(originals.values()), _counts(mine)
    report.source_checksum, report.destination_checksum = _checksum(originals.values()), _checksum(mine)


def _counts(runs: Any) -> dict[str, int]:
    return dict(sorted(Counter(run.status for run in runs).items()))


def _checksum(runs: Any) -> str:
    """SHA-256 over the sorted config hashes of ``runs`` (a run without one counts as an empty line)."""
    digest = hashlib.sha256()
    for value in sorted(run.config_hash or "" for run in runs):
        digest.update(value.encode() + b"\n")
    return digest.hexdigest()
