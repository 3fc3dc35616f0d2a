"""``hyperspace worker``: drain the queue of one study."""

from __future__ import annotations

import argparse

from hyperspace_hydra.app import load_app
from hyperspace_hydra.cli.common import add_app_option, add_store_option, store_uri
from hyperspace_hydra.worker import WorkerOptions, serve


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``worker``."""
    worker = commands.add_parser("worker", help="run queued jobs of a study (start it in the study's directory)")
    add_app_option(worker, required=True)
    add_store_option(worker)
    worker.add_argument("--processes", type=int, default=1, metavar="N", help="jobs at a time on this machine (default 1)")
    worker.add_argument("--exit-when-empty", action="store_true", help="stop when no job is queued and none runs")
    worker.add_argument("--max-jobs", type=int, default=None, metavar="K", help="stop after taking K jobs")
    worker.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="a job running longer ends TIMEOUT")
    worker.add_argument("--lease", type=float, default=60.0, metavar="SECONDS", help="how long a job stays claimed without a sign of life from this worker (default 60)")
    worker.add_argument("--grace", type=float, default=30.0, metavar="SECONDS", help="on SIGTERM/SIGINT, how long running jobs may go on before they are interrupted and requeued (default 30)")
    worker.add_argument("--allow", action="append", default=[], metavar="PACKAGE", help="also allow _target_s from this package (repeatable; see hyperspace.allowed_targets)")
    worker.set_defaults(handler=_worker)


def _worker(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    options = WorkerOptions(
        processes=args.processes,
        exit_when_empty=args.exit_when_empty,
        max_jobs=args.max_jobs,
        timeout=args.timeout,
        lease=args.lease,
        grace=args.grace,
    )
    serve(app, store_uri(args, app), options, args.allow, say=lambda line: print(line, flush=True))
    return 0
