"""``hyperspace store check``: is the store reachable, what is in it."""

from __future__ import annotations

import argparse

from hyperspace_hydra.cli.common import add_app_option, add_store_option, open_store_for
from hyperspace_hydra.cli.output import describe_counts, to_json
from hyperspace_hydra.settings import redact_credentials


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``store check``."""
    store = commands.add_parser("store", help="inspect the store").add_subparsers(title="store commands")
    check = store.add_parser("check", help="connect; check a SQLite file for damage; report backend, server and schema versions, counts")
    add_store_option(check, with_app=True)
    add_app_option(check)
    check.add_argument("--json", action="store_true", help="the report as one JSON object")
    check.set_defaults(handler=_check)


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
