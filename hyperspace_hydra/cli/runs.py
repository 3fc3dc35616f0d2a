"""``hyperspace runs ls|show|diff``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from hyperspace_hydra.bounds import MAX_COUNT, require_positive
from hyperspace_hydra.cli.common import add_store_option, open_store_for
from hyperspace_hydra.cli.output import READABLE_WIDTH, print_csv, print_json_lines, print_table, readable_text, to_json
from hyperspace_hydra.filters import FORMS, parse_condition, parse_sort, resolve_paths
from hyperspace_hydra.reproduce import reproduce_commands
from hyperspace_hydra.results import run_diff, run_rows, run_table
from hyperspace_hydra.store.base import FINAL_STATUSES, RUNNING

ABSENT = "(absent)"
"""How ``runs diff`` shows a config path that a run does not have."""
TAIL_LINES, TAIL_CHARS = 200, 20_000
"""How much of a run's captured output ``runs show`` prints without ``--full``: its last lines, within a size."""


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``runs ls``, ``runs show`` and ``runs diff``."""
    runs = commands.add_parser("runs", help="list and inspect recorded runs").add_subparsers(title="runs commands")

    ls = runs.add_parser("ls", help="table of recorded runs (only the config values that differ)")
    add_store_option(ls)
    ls.add_argument("--task", metavar="T", help="only runs of task T")
    ls.add_argument("--sweep", type=int, metavar="ID", help="only runs of sweep ID (a grid, a queued or a local search)")
    ls.add_argument("--status", type=str.upper, choices=sorted({RUNNING, *FINAL_STATUSES}), help="only runs with this status (any case: completed)")
    ls.add_argument(
        "--where", action="append", default=[], metavar="EXPR", help=f"only runs that meet EXPR (repeatable: all must hold): {FORMS}"
    )
    ls.add_argument(
        "--sort",
        metavar="FIELD",
        help="order by a config path (or its short name as a column), a run field or duration; '-' in front for descending (-result: highest objective first)",
    )
    ls.add_argument("--limit", type=int, default=None, metavar="N", help="show only N runs: the newest, or with --sort the first N")
    ls.add_argument("--columns", metavar="A,B", help="show these config values (short names or dotted paths), not the ones that differ")
    ls.add_argument(
        "--format", choices=("table", "json", "csv"), default="table", help="a table (default), one JSON object per line, or CSV"
    )
    ls.add_argument("--json", dest="format", action="store_const", const="json", help="same as --format json")
    ls.set_defaults(handler=_ls)

    show = runs.add_parser("show", help="one run in full")
    add_store_option(show)
    show.add_argument("run_id", type=int, metavar="ID")
    show.add_argument("--json", action="store_true", help="the run document as JSON")
    show.add_argument("--reproduce", action="store_true", help="print only the commands that run it again (checkout, diff, overrides)")
    show.add_argument("--full", action="store_true", help=f"the whole captured output (default: its last {TAIL_LINES} lines, at most {TAIL_CHARS:,} characters)")
    show.set_defaults(handler=_show)

    diff = runs.add_parser("diff", help="what differs between two runs: config, code version, results")
    add_store_option(diff)
    diff.add_argument("first", type=int, metavar="ID1")
    diff.add_argument("second", type=int, metavar="ID2")
    diff.add_argument("--json", action="store_true", help="the differences as one JSON object")
    diff.set_defaults(handler=_diff)


def _ls(args: argparse.Namespace) -> None:
    require_positive(("--limit", args.limit), most=MAX_COUNT)
    where = [parse_condition(text) for text in args.where]
    sort = parse_sort(args.sort) if args.sort else None
    with open_store_for(args) as store:
        selection = {"task": args.task, "sweep_id": args.sweep, "status": args.status}
        where, sort = resolve_paths(store, where, sort, **selection)
        runs = store.list_runs(args.limit, where=where, sort=sort, **selection)
    columns, rows = run_rows(runs, _column_names(args.columns))
    if args.format == "json":
        print_json_lines(rows)
        return
    header, cells = run_table(rows, columns)
    if args.format == "csv":
        print_csv(header, cells)
    else:
        empty = "no run matches" if any(selection.values()) or where else "no run yet"
        print_table(header, cells, right_aligned=("id", "result", "duration"), short_paths=True, empty=empty)


def _column_names(columns: str | None) -> list[str] | None:
    return None if columns is None else [name.strip() for name in columns.split(",") if name.strip()]


def _show(args: argparse.Namespace) -> None:
    with open_store_for(args) as store:
        run = store.get_run(args.run_id)
        run["metrics"] = store.get_metrics(args.run_id)
    if args.reproduce:
        print("\n".join(reproduce_commands(run)))
        return
    if args.json:
        print(to_json(run, indent=2))
        return
    captured = run.pop("captured_out") or ""
    shown = captured if args.full else output_tail(captured)
    left_out = len(captured) - len(shown)
    title = f"captured output: the last {len(shown):,} of {len(captured):,} characters (--full shows all)" if left_out else "captured output"
    run["fail_trace"] = "".join(run.get("fail_trace") or []) or None  # one traceback, not a list of its pieces
    sys.stdout.write(readable_text(run))
    sys.stdout.write(f"-- {title} ".ljust(READABLE_WIDTH, "-") + "\n")
    sys.stdout.write(shown if shown.endswith("\n") or not shown else shown + "\n")


def output_tail(text: str) -> str:
    """The end of a captured output as ``runs show`` prints it: the last :data:`TAIL_LINES` lines, at most :data:`TAIL_CHARS` characters."""
    tail = text[-TAIL_CHARS:]
    lines = tail.splitlines(keepends=True)
    return "".join(lines[-TAIL_LINES:])


def _diff(args: argparse.Namespace) -> None:
    with open_store_for(args) as store:
        difference = run_diff(store.get_run(args.first), store.get_run(args.second))
    if args.json:
        print(to_json(difference, indent=2))
        return
    runs = [f"run {run_id}" for run_id in difference["runs"]]
    config = [[entry["path"], *_present_values(entry["values"], entry["present"])] for entry in difference["config"]]
    if config:
        print_table(["config", *runs], config)
    else:
        print("config: no differences")
    code = difference["code"]
    print()
    print_table(["code", *runs], [["commit", *code["commit"]], ["dirty", *code["dirty"]], ["diff vs HEAD", *_diff_cells(code)]])
    print()
    print_table(["results", *runs], [[name, *values] for name, values in difference["results"].items()])


def _diff_cells(code: dict[str, Any]) -> list[str]:
    """Per run: ``none`` without a recorded diff, else whether it is the ``same`` as the other run's or ``differs``."""
    return ["none" if not has_diff else "differs" if code["diffs_differ"] else "same" for has_diff in code["has_diff"]]


def _present_values(values: Sequence[Any], present: Sequence[bool]) -> list[Any]:
    return [value if has_it else ABSENT for value, has_it in zip(values, present)]
