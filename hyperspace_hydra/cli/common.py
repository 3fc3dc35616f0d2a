"""Options and store resolution shared by the CLI's commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from hyperspace_hydra.app import App, load_app
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.settings import resolve_store_uri
from hyperspace_hydra.store import Store, open_store


def add_store_option(parser: argparse.ArgumentParser, with_app: bool = False) -> None:
    """``--store URI``; ``with_app`` when the command also takes ``--app`` (its help then says what that changes)."""
    study = "the study's hyperspace.store with --app, else " if with_app else ""
    parser.add_argument(
        "--store",
        default=None,
        metavar="URI",
        help=f"store URI (default: $HYPERSPACE_STORE, else {study}sqlite:///.hyperspace/store.db in the current directory)",
    )


def add_app_option(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """``--app MODULE``: the study's Hydra app, imported from the current directory."""
    parser.add_argument("--app", required=required, metavar="MODULE", help="the study's app module, e.g. study.run")


def store_uri(args: argparse.Namespace, app: App | None = None) -> str:
    """The store URI for a command: --store, then $HYPERSPACE_STORE, then the app's config, then the default.

    An empty ``--store`` (an unset shell variable, ``--store "$STORE"``) is an error, not the default store."""
    if args.store is not None and not args.store.strip():
        raise HyperspaceError("--store is empty: give a store URI, or leave the option out for the default store")
    configured = app.settings().store if app is not None else None
    return resolve_store_uri(args.store, configured, Path.cwd())


def open_store_for(args: argparse.Namespace, app: App | None = None) -> Store:
    """Open the store a command works on (with ``--app``, the study's configured store counts), and
    finish as DIED the runs whose process died unseen (:meth:`Store.end_stale_runs`), so no table shows them RUNNING.

    A store that does not exist is an error (:class:`~hyperspace_hydra.store.StoreNotFoundError`), not created:
    these commands read or change what is there, and a typo in the URI must not look like an empty store."""
    if app is None and getattr(args, "app", None):
        app = load_app(args.app)
    store = open_store(store_uri(args, app), create=False)
    store.end_stale_runs()
    return store
