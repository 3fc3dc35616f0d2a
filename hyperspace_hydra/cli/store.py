"""``hyperspace store check``: is the store reachable, what is in it; ``hyperspace store copy``: its sweeps, jobs and runs into another store."""

from __future__ import annotations

import argparse
from pathlib import Path

from hyperspace_hydra.cli.common import add_app_option, add_store_option, open_store_for
from hyperspace_hydra.cli.output import describe_counts, progress_bar, to_json
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.filters import FORMS, parse_condition, resolve_paths
from hyperspace_hydra.settings import absolute_sqlite_uri, redact_credentials
from hyperspace_hydra.store import open_store
from hyperspace_hydra.store_copy import CopyReport, Tally, check_distinct_stores, check_queue_movable, copy_store


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``store check``."""
    store = commands.add_parser("store", help="inspect the store").add_subparsers(title="store commands")
    check = store.add_parser("check", help="connect; check a SQLite file for damage; report backend, server and schema versions, counts")
    add_store_option(check, with_app=True)
    add_app_option(check)
    check.add_argument("--json", action="store_true", help="the report as one JSON object")
    check.set_defaults(handler=_check)
    copy = store.add_parser("copy", help="copy sweeps, finished jobs and finished runs with their metrics and output to another store (any backends)")
    copy.add_argument("source", metavar="SRC_URI", help="the store to copy from (only read)")
    copy.add_argument("destination", metavar="DST_URI", help="the store to copy into (created on first use)")
    copy.add_argument("--where", action="append", default=[], metavar="EXPR", help=f"only runs that meet EXPR (repeatable: all must hold): {FORMS}")
    copy.add_argument("--with-queue", action="store_true", help="also move the QUEUED and PAUSED jobs (refused while a job is RUNNING in the source)")
    copy.set_defaults(handler=_copy)


def _check(args: argparse.Namespace) -> None:
    with open_store_for(args) as store:
        report = {"store": redact_credentials(store.uri), **store.summary()}
    if args.json:
        print(to_json(report))
        return
    print(f"store:   {report['store']}")
    print(f"backend: {report['backend']}")
    print(f"schema:  version {report['schema_version']}")
    print(f"data:    {report['integrity'] or 'not checked (this backend has no cheap check)'}")
    print(f"jobs:    {describe_counts(report['jobs'])}")
    print(f"runs:    {describe_counts(report['runs'])}")


def _copy(args: argparse.Namespace) -> None:
    where = [parse_condition(text) for text in args.where]
    source_uri, destination_uri = (absolute_sqlite_uri(uri, Path.cwd()) for uri in (args.source, args.destination))
    check_distinct_stores(source_uri, destination_uri)  # before either is opened: a refusal writes nothing
    with open_store(source_uri, read_only=True) as source:
        where, _sort = resolve_paths(source, where, None)
        if args.with_queue:
            check_queue_movable(source, where)  # before the destination is opened: a refusal writes nothing
        with open_store(destination_uri) as destination:
            with progress_bar("copying runs") as progress:
                bar = progress.add_task("copy", total=None)
                report = copy_store(source, destination, where, lambda done, total: progress.update(bar, completed=done, total=total), args.with_queue)
    _print_copy(report)
    if not report.verified:
        raise HyperspaceError("verification failed: the copies differ from the source in the counts or the checksum above")


def _print_copy(report: CopyReport) -> None:
    print(f"{report.copied} run(s) copied ({'ids kept' if report.ids_kept else 'new ids'}), {report.already_copied} copied before")
    if report.unfinished:
        print(f"not finished, not copied (copy again once they end): run(s) {', '.join(map(str, report.unfinished))}")
    print(f"source:      {describe_counts(report.source)}; config hashes sha256 {report.source_checksum}")
    print(f"destination: {describe_counts(report.destination)}; config hashes sha256 {report.destination_checksum}")
    _print_tally("sweep", report.sweeps)
    _print_tally("job", report.jobs)


def _print_tally(kind: str, tally: Tally) -> None:
    print(f"{kind}s: {tally.copied} {kind}(s) copied, {tally.already_copied} copied before; source: {describe_counts(tally.source)}; destination: {describe_counts(tally.destination)}")
