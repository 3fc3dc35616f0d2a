"""``hyperspace report -o report.html``: one self-contained HTML file about a set of runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from hyperspace_hydra.app import load_app
from hyperspace_hydra.cli.common import add_app_option, add_store_option, open_store_for
from hyperspace_hydra.filters import parse_condition, resolve_paths
from hyperspace_hydra.report import ranking_direction, write_report


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``report``."""
    report = commands.add_parser("report", help="write an HTML report: runs table, objective per parameter, parallel coordinates, best curves, failures")
    add_store_option(report, with_app=True)
    add_app_option(report)
    report.add_argument("--task", metavar="T", help="only runs of task T")
    report.add_argument("--sweep", type=int, metavar="ID", help="only runs of sweep ID (a grid, a queued or a local search)")
    report.add_argument("--where", action="append", default=[], metavar="EXPR", help="filter as in runs ls (repeatable)")
    report.add_argument(
        "--direction",
        choices=["minimize", "maximize"],
        help="which objective is best (default: the direction the runs were recorded with, else the study's with --app, else minimize)",
    )
    report.add_argument("-o", "--output", type=Path, default=Path("report.html"), metavar="FILE", help="where to write it (default report.html)")
    report.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> None:
    where = [parse_condition(text) for text in args.where]
    app = load_app(args.app) if args.app else None
    study_direction = app.settings().direction.value if app else None
    with open_store_for(args, app) as store:
        where, _ = resolve_paths(store, where, None, task=args.task, sweep_id=args.sweep)
        runs = store.list_runs(task=args.task, sweep_id=args.sweep, where=where)
        direction = ranking_direction(runs, args.direction, study_direction)
        title = "Runs" + (f" of task {args.task}" if args.task else "") + (f" of sweep {args.sweep}" if args.sweep else "")
        write_report(store, runs, args.output, title, maximize=direction == "maximize")
    print(f"wrote {args.output} ({len(runs)} runs)")
