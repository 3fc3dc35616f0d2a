"""``hyperspace rerun RUN_ID [override…] [--queue]``: a past run again, with changes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobStatus

from hyperspace_hydra import provenance
from hyperspace_hydra.app import App, load_app
from hyperspace_hydra.cli.common import add_store_option, store_uri
from hyperspace_hydra.config import flatten, identity_part
from hyperspace_hydra.queue import enqueue, new_job
from hyperspace_hydra.store import open_store


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``rerun``."""
    rerun = commands.add_parser("rerun", help="run a recorded run again, optionally with changed overrides")
    add_store_option(rerun)
    rerun.add_argument("run_id", type=int, metavar="RUN_ID")
    rerun.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="changes, e.g. seed=3 classifier.C=10")
    rerun.add_argument("--queue", action="store_true", help="enqueue it for workers instead of running it here")
    rerun.set_defaults(handler=_rerun)


def rerun_overrides(original: Sequence[str], changes: Sequence[str]) -> list[str]:
    """The run's overrides with every key that ``changes`` names replaced by the change."""
    changed = {_key(change) for change in changes}
    return [item for item in original if _key(item) not in changed] + list(changes)


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _rerun(args: argparse.Namespace) -> int:
    with open_store(store_uri(args), create=False) as store:
        run = store.get_run(args.run_id)
        app = load_app(run["experiment"]["name"])
        overrides = rerun_overrides(run["overrides"] or [], args.overrides)
        config = app.compose(overrides)
        _warn_about_differences(run, app, new_job(config, overrides), args.overrides)
        if args.queue:
            result = enqueue(store, app.module, [new_job(config, overrides)], "rerun", dedupe=False)
            print(f"run {args.run_id} queued again as job {result.enqueued[0]} (sweep {result.sweep_id}): {' '.join(overrides)}")
            return 0
    print(f"running run {args.run_id} again: {' '.join(overrides) or '(no overrides)'}", flush=True)
    return 0 if app.run(config).status == JobStatus.COMPLETED else 1


def _warn_about_differences(run: dict[str, Any], app: App, job: Any, changes: Sequence[str]) -> None:
    changed_keys = {_key(change) for change in changes}
    before, after = flatten(identity_part(run["config"] or {})), flatten(identity_part(job.config))
    drifted = sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key) and not any(key == c or key.startswith(c + ".") for c in changed_keys))
    if drifted:
        details = ", ".join(f"{key}: {before.get(key)!r} -> {after.get(key)!r}" for key in drifted[:10])
        _warn(f"the config files or code defaults changed since run {run['_id']}: {details}")
    current = provenance.code_version(provenance.source_directory(app.task_function))
    recorded = run.get("code_version") or {}
    if (current.get("commit"), current.get("diff")) != (recorded.get("commit"), recorded.get("diff")):
        _warn(f"the code differs from run {run['_id']}'s (commit {recorded.get('commit')}, dirty {recorded.get('dirty')}; now commit {current.get('commit')}, dirty {current.get('dirty')})")


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
