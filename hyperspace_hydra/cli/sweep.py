"""``hyperspace sweep ls|show``: sweeps and what search sweeps found."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hyperspace_hydra.cli.common import add_app_option, add_store_option, open_store_for
from hyperspace_hydra.cli.output import describe_counts, print_json_lines, print_table, to_json
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.hpo import SEARCH
from hyperspace_hydra.results import sweep_progress


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``sweep ls`` and ``sweep show``."""
    sweep = commands.add_parser("sweep", help="list sweeps, show a search sweep").add_subparsers(title="sweep commands")
    ls = sweep.add_parser("ls", help="table of sweeps")
    add_store_option(ls, with_app=True)
    add_app_option(ls)
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(handler=_ls)

    show = sweep.add_parser("show", help="a search sweep: space, trials, best so far, history used")
    add_store_option(show)
    show.add_argument("sweep_id", type=int, metavar="ID")
    show.add_argument("--json", action="store_true", help="as one JSON object")
    show.add_argument("--plot", type=Path, metavar="FILE.html", help="also write plots of the objective over trials and per parameter")
    show.set_defaults(handler=_show)


def _ls(args: argparse.Namespace) -> None:
    with open_store_for(args) as store:
        rows = [_ls_row(sweep, sweep_progress(store, sweep)) for sweep in store.list_sweeps(study=args.app)]
    if args.json:
        print_json_lines(rows)
        return
    table = [[*(row[name] for name in ("id", "study", "kind", "state", "created")), f"{row['ended']}/{row['total']}", _counted(row)] for row in rows]
    print_table(["id", "study", "kind", "state", "created", "progress", "by state"], table, right_aligned=("id", "progress"), empty="no sweep yet")


def _ls_row(sweep: dict[str, Any], progress: dict[str, Any]) -> dict[str, Any]:
    """What ``sweep ls --json`` shows of a sweep: its fields, ``jobs`` (as before, "none" without jobs) and its progress."""
    return {
        "id": sweep["id"], "study": sweep["study"], "kind": sweep["kind"], "state": sweep["state"], "created": sweep["created_at"],
        "jobs": describe_counts(sweep["counts"]) if sweep["counts"] else "none", **progress,
    }  # fmt: skip


def _counted(row: dict[str, Any]) -> str:
    return f"{row['of']}: {describe_counts(row['counts'])}" if row["counts"] else "none"


def _show(args: argparse.Namespace) -> None:
    from hyperspace_hydra.hpo.report import search_state, write_plots  # Optuna and plotly load only here

    with open_store_for(args) as store:
        sweep = store.get_sweep(args.sweep_id)
        if sweep["kind"] != SEARCH:
            raise HyperspaceError(f"sweep {args.sweep_id} is a {sweep['kind']} sweep, not a search: see hyperspace queue ls --sweep {args.sweep_id}")
        state = search_state(store, args.sweep_id)
    summary = state.summary()
    if args.plot:
        write_plots(state, args.plot)
    if args.json:
        print(to_json(summary))
        return
    best = summary["best"]
    print(f"sweep {summary['sweep']} of {summary['study']}: {summary['sampler']}, {summary['direction']} {summary['metric'] or 'the objective'}")
    for name, distribution in summary["space"].items():
        print(f"  {name}: {distribution}")
    ended = f", {summary['state'].lower()}" if summary["state"] not in (None, "RUNNING") else ""
    print(f"trials:  {describe_counts(summary['counts'])} of a budget of {summary['budget']}{ended}")
    print(f"history: {state.history.describe()}")
    if summary["objective_missing"]:
        print(f"stopped: {summary['objective_missing']}: no trial can score the search")
    print("best:    " + ("none yet" if best is None else f"{best['value']:.6g} ({'job' if 'job' in best else 'run'} {best.get('job', best.get('run'))}): {' '.join(best['overrides'])}"))
    if args.plot:
        print(f"plots:   {args.plot}")
