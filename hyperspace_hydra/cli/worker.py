"""``hyperspace worker``: drain the queue of one study."""

from __future__ import annotations

import argparse

from hyperspace_hydra.app import load_app
from hyperspace_hydra.bounds import MAX_COUNT, MAX_SECONDS, require_not_negative, require_positive
from hyperspace_hydra.cli.common import add_app_option, add_store_option, store_uri
from hyperspace_hydra.worker import WorkerOptions, serve


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``worker``."""
    worker = commands.add_parser("worker", help="run queued jobs of a study (start it in the study's directory)")
    add_app_option(worker, required=True)
    add_store_option(worker, with_app=True)
    add_worker_options(worker, grace=30.0, stopped_by="SIGTERM/SIGINT")
    worker.set_defaults(handler=_worker)


def add_worker_options(parser: argparse.ArgumentParser, grace: float, stopped_by: str) -> None:
    """How a worker behaves (``--processes``, ``--exit-when-empty``...): shared by ``worker`` and ``slurm workers``."""
    parser.add_argument("--processes", type=int, default=1, metavar="N", help="jobs at a time in a worker (default 1); GPUs in CUDA_VISIBLE_DEVICES are split among them")
    parser.add_argument("--exit-when-empty", action="store_true", help="stop once no job of the study is queued or running anywhere (a job left running by a lost worker is waited for and taken over)")
    parser.add_argument("--max-jobs", type=int, default=None, metavar="K", help="stop after taking K jobs")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="a job running longer ends TIMEOUT")
    parser.add_argument("--lease", type=float, default=60.0, metavar="SECONDS", help="how long a job stays claimed without a sign of life from its worker (default 60)")
    parser.add_argument("--grace", type=float, default=grace, metavar="SECONDS", help=f"on {stopped_by}, how long running jobs may go on before they are interrupted and requeued (default {grace:g})")
    parser.add_argument("--allow", action="append", default=[], metavar="PACKAGE", help="also allow _target_s from this package (repeatable; see hyperspace.allowed_targets)")


def worker_options(args: argparse.Namespace) -> WorkerOptions:
    """The :class:`WorkerOptions` given by :func:`add_worker_options`' arguments.

    Raises :class:`HyperspaceError` for a number a worker cannot work with: no processes,
    no jobs, or a lease or timeout of no time (a worker that does nothing must not look busy).
    """
    require_positive(("--processes", args.processes), ("--max-jobs", args.max_jobs), most=MAX_COUNT)
    require_positive(("--timeout", args.timeout), ("--lease", args.lease), most=MAX_SECONDS)
    require_not_negative("--grace", args.grace, most=MAX_SECONDS)
    return WorkerOptions(
        processes=args.processes,
        exit_when_empty=args.exit_when_empty,
        max_jobs=args.max_jobs,
        timeout=args.timeout,
        lease=args.lease,
        grace=args.grace,
    )


def _worker(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    serve(app, store_uri(args, app), worker_options(args), args.allow, say=lambda line: print(line, flush=True))
    return 0
