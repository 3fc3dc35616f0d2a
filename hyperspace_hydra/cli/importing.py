"""``hyperspace import sacred SOURCE [--in-place]``: bring runs that Sacred recorded into the store, or upgrade them where they are."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from hyperspace_hydra.app import load_app
from hyperspace_hydra.backfill import StudyContext
from hyperspace_hydra.cli.common import add_app_option, add_store_option, store_uri
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.store import open_store

if TYPE_CHECKING:
    from hyperspace_hydra.sacred_import import ImportReport


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``import sacred``."""
    imports = commands.add_parser("import", help="bring runs recorded elsewhere into the store").add_subparsers(title="import commands")
    sacred = imports.add_parser("sacred", help="import the runs of a Sacred FileStorageObserver directory or MongoObserver database")
    sacred.add_argument("source", metavar="SOURCE", help="a FileStorageObserver directory, or mongodb://host/database of a MongoObserver")
    add_store_option(sacred, with_app=True)
    add_app_option(sacred)
    sacred.add_argument("--task", metavar="NAME", help="the task of every imported run (with --app, default: its choice of the task group)")
    sacred.add_argument("--class-key", metavar="KEY", help="the config key that names a class in the Sacred configs (default: className)")
    sacred.add_argument("--target-prefix", metavar="PKG.", help="give nodes with a class name a _target_: this prefix + the name, if it resolves")
    sacred.add_argument(
        "--in-place",
        action="store_true",
        help="SOURCE is a MongoDB store Sacred wrote into: make its Sacred runs runs of the store where they are (ids kept)",
    )
    sacred.set_defaults(handler=_import_sacred)


def _import_sacred(args: argparse.Namespace) -> None:
    from hyperspace_hydra.sacred_import import ClassKeys, ImportOptions, import_sacred  # pymongo and gridfs: only this command needs them

    if args.class_key is not None and args.target_prefix is None:
        raise HyperspaceError("--class-key needs --target-prefix (the package path the class names are in, e.g. study.models.)")
    if args.in_place and not args.source.startswith(("mongodb://", "mongodb+srv://")):
        raise HyperspaceError(
            "--in-place upgrades the runs of a MongoDB store that Sacred wrote: SOURCE must be mongodb://host/database, not a directory"
        )
    app = load_app(args.app) if args.app else None
    options = ImportOptions(
        study=StudyContext(app) if app is not None else None,
        task=args.task,
        class_keys=ClassKeys(args.class_key or "className", args.target_prefix) if args.target_prefix is not None else None,
    )
    uri = args.source if args.in_place and args.store is None else store_uri(args, app)
    with open_store(uri) as store:
        report = import_sacred(store, args.source, options, in_place=args.in_place)
    _print(report, "upgraded" if args.in_place else "imported")


def _print(report: ImportReport, done: str) -> None:
    for problem, runs in report.unresolved.items():
        print(f"{problem} (in {runs} run(s))")
    if report.unfinished:
        print(f"not finished in Sacred, not {done}: run(s) {', '.join(map(str, report.unfinished))}")
    print(f"{len(report.imported)} run(s) {done}, {report.already_imported} already {done} before")
