"""``hyperspace runs ls|show``."""

from __future__ import annotations

import argparse

from rich.pretty import Pretty

from hyperspace_hydra.cli.common import add_store_option, open_store_for
from hyperspace_hydra.cli.output import console, print_json_lines, print_table, to_json
from hyperspace_hydra.results import run_rows


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``runs ls`` and ``runs show``."""
    runs = commands.add_parser("runs", help="list and inspect recorded runs").add_subparsers(title="runs commands")

    ls = runs.add_parser("ls", help="table of recorded runs (only the config values that differ)")
    add_store_option(ls)
    ls.add_argument("--limit", type=int, default=None, help="show only the newest N runs")
    ls.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    ls.set_defaults(handler=_ls)

    show = runs.add_parser("show", help="one run in full")
    add_store_option(show)
    show.add_argument("run_id", type=int, metavar="ID")
    show.add_argument("--json", action="store_true", help="the run document as JSON")
    show.set_defaults(handler=_show)


def _ls(args: argparse.Namespace) -> None:
    with open_store_for(args) as store:
        columns, rows = run_rows(store.list_runs(limit=args.limit))
    if args.json:
        print_json_lines(rows)
        return
    table_rows = [[row["id"], row["status"], row["task"], *row["config"].values(), row["result"], row["duration"]] for row in rows]
    print_table(["id", "status", "task", *columns, "result", "duration"], table_rows, right_aligned=("id", "result", "duration"), short_paths=True)


def _show(args: argparse.Namespace) -> None:
    with open_store_for(args) as store:
        run = store.get_run(args.run_id)
        run["metrics"] = store.get_metrics(args.run_id)
    if args.json:
        print(to_json(run, indent=2))
        return
    captured = run.pop("captured_out") or ""
    out = console()
    out.print(Pretty(run, expand_all=False))
    out.rule("captured output")
    out.print(captured, markup=False, highlight=False)
