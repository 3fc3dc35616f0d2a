"""The ``hyperspace`` command line.

Every error a user can cause is a :class:`HyperspaceError`, printed as one line
``error: ...`` on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.pretty import Pretty
from rich.table import Table

from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.results import run_rows
from hyperspace_hydra.settings import resolve_store_uri
from hyperspace_hydra.store import Store, open_store


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        args.handler(args)
    except HyperspaceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hyperspace", description="Queue, run, record and tune Hydra experiments.")
    commands = parser.add_subparsers(title="commands")
    runs = commands.add_parser("runs", help="list and inspect recorded runs").add_subparsers(title="runs commands")

    ls = runs.add_parser("ls", help="table of recorded runs (only the config values that differ)")
    _add_store_option(ls)
    ls.add_argument("--limit", type=int, default=None, help="show only the newest N runs")
    ls.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    ls.set_defaults(handler=_runs_ls)

    show = runs.add_parser("show", help="one run in full")
    _add_store_option(show)
    show.add_argument("run_id", type=int, metavar="ID")
    show.add_argument("--json", action="store_true", help="the run document as JSON")
    show.set_defaults(handler=_runs_show)
    return parser


def _add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=None,
        metavar="URI",
        help="store URI (default: $HYPERSPACE_STORE, else sqlite:///.hyperspace/store.db in the current directory)",
    )


def _open(args: argparse.Namespace) -> Store:
    return open_store(resolve_store_uri(args.store, None, Path.cwd()))


def _runs_ls(args: argparse.Namespace) -> None:
    with _open(args) as store:
        columns, rows = run_rows(store.list_runs(limit=args.limit))
    if args.json:
        for row in rows:
            print(json.dumps(row, default=_json_default))
        return
    table = Table(box=None, header_style="bold")
    for name in ["id", "status", "task", *columns, "result", "duration"]:
        table.add_column(name, justify="right" if name in ("id", "result", "duration") else "left")
    for row in rows:
        values = [row["id"], row["status"], row["task"], *row["config"].values(), row["result"], row["duration"]]
        table.add_row(*(_cell(value) for value in values))
    _console().print(table)


def _runs_show(args: argparse.Namespace) -> None:
    with _open(args) as store:
        run = store.get_run(args.run_id)
        run["metrics"] = store.get_metrics(args.run_id)
    if args.json:
        print(json.dumps(run, default=_json_default, indent=2))
        return
    console = _console()
    captured = run.pop("captured_out") or ""
    console.print(Pretty(run, expand_all=False))
    console.rule("captured output")
    console.print(captured, markup=False, highlight=False)


def _console() -> Console:
    """A console that never squeezes tables into 80 columns when output goes to a pipe or file."""
    return Console() if sys.stdout.isatty() else Console(width=10_000, color_system=None)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str) and "." in value and value.replace(".", "").replace("_", "").isalnum():
        return value.rsplit(".", 1)[-1]  # a _target_ path: its class name says enough in a table
    return json.dumps(value) if not isinstance(value, str) else value


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


if __name__ == "__main__":
    sys.exit(main())
