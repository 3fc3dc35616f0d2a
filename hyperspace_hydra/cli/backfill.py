"""``hyperspace backfill --app study.run [--dry-run]``: today's defaults of new parameters into past runs."""

from __future__ import annotations

import argparse
from typing import Any

from hyperspace_hydra import backfill
from hyperspace_hydra.app import load_app
from hyperspace_hydra.cli.common import add_app_option, add_store_option, open_store_for
from hyperspace_hydra.store import Store


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``backfill``."""
    command = commands.add_parser(
        "backfill", help="write the defaults of parameters added since into past runs of a study (and adopt runs imported without --app)"
    )
    add_app_option(command, required=True)
    add_store_option(command, with_app=True)
    command.add_argument("--dry-run", action="store_true", help="only list what would change")
    command.set_defaults(handler=_backfill)


def _backfill(args: argparse.Namespace) -> None:
    app = load_app(args.app)  # imports the study, so that its targets' defaults are today's
    with open_store_for(args, app) as store:
        runs = {run["_id"]: run for run in store.list_runs() if (run.get("experiment") or {}).get("name") == app.module}
        adoptable = [run for run in store.list_runs(where=backfill.IMPORTED) if backfill.adoptable(run)]
        plans = backfill.plan(runs.values())
        for item in plans:
            print(_describe(item))
            if item.added and not args.dry_run:
                backfill.apply(store, runs[item.run_id], item)
        if adoptable:
            _adopt(store, adoptable, backfill.StudyContext(app), args.dry_run)
    would = "would be " if args.dry_run else ""
    print(f"{sum(bool(item.added) for item in plans)} of {len(runs)} run(s) of {app.module} {would}back-filled")
    if adoptable:
        print(f"{len(adoptable)} run(s) imported without --app {would}adopted as runs of {app.module}")


def _adopt(store: Store, runs: list[dict[str, Any]], study: backfill.StudyContext, dry_run: bool) -> None:
    """Make each of ``runs`` (imported without an app) a run of ``study``, printing what it gets (only that with ``dry_run``)."""
    for run in runs:
        adopted = backfill.as_study_run(run, study, run.get("task")) if dry_run else backfill.adopt(store, run, study)
        added = adopted["info"]["backfill"][-1]["added"] if adopted["config"] != run.get("config") else {}
        parts = [f"task={adopted['task']!r}", f"choices={adopted['choices']!r}", *(f"+ {key}={value!r}" for key, value in added.items())]
        print(f"run {run['_id']}: adopted as a run of {study.module}: " + "; ".join(parts))


def _describe(item: backfill.BackfillPlan) -> str:
    parts = [f"+ {key}={value!r}" for key, value in item.added.items()]
    parts += [f"default changed, not applied: {key} {old!r} -> {new!r}" for key, (old, new) in item.changed_defaults.items()]
    return f"run {item.run_id}: " + "; ".join(parts)
