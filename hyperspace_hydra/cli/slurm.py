"""``hyperspace slurm``: workers on a SLURM cluster, and what they run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hyperspace_hydra.app import load_app
from hyperspace_hydra.bounds import MAX_COUNT, MAX_SECONDS, require_not_negative, require_positive
from hyperspace_hydra.cli.common import add_app_option, add_store_option, open_store_for, store_uri
from hyperspace_hydra.cli.output import print_json_lines, print_table
from hyperspace_hydra.cli.worker import add_worker_options, worker_options
from hyperspace_hydra.settings import redact_credentials
from hyperspace_hydra.slurm.environment import sqlite_store_warning
from hyperspace_hydra.slurm.workers import (
    SlurmResources,
    SlurmWorkerJob,
    list_worker_jobs,
    parse_time_limit,
    slurm_job_of_worker,
    submit_workers,
)
from hyperspace_hydra.store import RUNNING


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``slurm workers`` and ``slurm ls``."""
    slurm = commands.add_parser("slurm", help="workers on a SLURM cluster").add_subparsers(title="slurm commands")

    workers = slurm.add_parser("workers", help="submit N workers as one SLURM job array (start it in the study's directory)")
    workers.add_argument("count", type=int, metavar="N", help="how many workers (array elements)")
    add_app_option(workers, required=True)
    add_store_option(workers, with_app=True)
    workers.add_argument("--partition", metavar="P", help="SLURM partition (default: the cluster's default)")
    workers.add_argument("--time", default="4:00:00", metavar="LIMIT", help="time limit of each worker, e.g. 4:00:00, 90 (minutes), 1-12:00:00 (default 4:00:00)")
    workers.add_argument("--gpus-per-worker", type=int, metavar="G", help="GPUs per worker; its jobs see only those (CUDA_VISIBLE_DEVICES)")
    workers.add_argument("--cpus-per-worker", type=int, metavar="C", help="CPUs per worker")
    workers.add_argument("--mem-gb", type=float, metavar="M", help="memory per worker in GB")
    workers.add_argument("--resubmit", action="store_true", help="near its time limit a worker puts its own SLURM job back in SLURM's queue")
    workers.add_argument("--signal-delay", type=int, default=90, metavar="SECONDS", help="SLURM warns a worker (SIGUSR2) this long before its time limit (default 90)")
    add_worker_options(workers, grace=0.0, stopped_by="a SLURM signal (keep it below --signal-delay and SLURM's KillWait)")
    workers.add_argument("--folder", default=".hyperspace/slurm", metavar="DIR", help="where submitit keeps the workers' logs and pickles (default .hyperspace/slurm)")
    workers.set_defaults(handler=_workers)

    ls = slurm.add_parser("ls", help="worker jobs SLURM knows, their workers' state in the store and the job each one runs")
    add_app_option(ls)
    add_store_option(ls, with_app=True)
    ls.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    ls.set_defaults(handler=_ls)


def _workers(args: argparse.Namespace) -> None:
    require_positive(("N", args.count), ("--gpus-per-worker", args.gpus_per_worker), ("--cpus-per-worker", args.cpus_per_worker), ("--mem-gb", args.mem_gb), most=MAX_COUNT)
    require_not_negative("--signal-delay", args.signal_delay, most=MAX_SECONDS)
    options = worker_options(args)
    app = load_app(args.app)
    uri = store_uri(args, app)
    warning = sqlite_store_warning(uri)
    if warning:
        print(warning, file=sys.stderr)
    resources = SlurmResources(
        partition=args.partition,
        time_minutes=parse_time_limit(args.time),
        gpus_per_worker=args.gpus_per_worker,
        cpus_per_worker=args.cpus_per_worker,
        mem_gb=args.mem_gb,
        signal_delay_s=args.signal_delay,
    )
    job = SlurmWorkerJob(args.app, str(Path.cwd()), uri, options, tuple(args.allow), args.resubmit)
    jobs = submit_workers(args.count, job, resources, Path(args.folder))
    print(f"submitted {len(jobs)} worker(s) for study {args.app}, store {redact_credentials(uri)}; logs in {args.folder}")
    print(f"SLURM jobs: {' '.join(job.job_id for job in jobs)}")


def _ls(args: argparse.Namespace) -> None:
    workers = list_worker_jobs()
    with open_store_for(args) as store:
        running: dict[str | None, list[dict[str, Any]]] = {}
        for job in store.list_jobs(study=args.app, states=[RUNNING]):
            running.setdefault(slurm_job_of_worker(job["worker"]), []).append(job)
        registered: dict[str, dict[str, Any]] = {}
        for registration in store.list_workers(args.app):  # the most recently started first: a requeued job's latest worker
            registered.setdefault(registration["slurm_job"], registration)
    rows: list[dict[str, Any]] = [
        {**worker, "worker": _registered(registered.get(worker["slurm_job"])), "jobs": [_describe(job) for job in running.get(worker["slurm_job"], [])]}
        for worker in workers
    ]
    if args.json:
        print_json_lines(rows)
        return
    columns = ["slurm_job", "state", "elapsed", "time_limit", "nodes_or_reason", "worker", "running"]
    table = [[*(row[name] for name in columns[:-2]), _shown(row["worker"]), "; ".join(row["jobs"]) or "-"] for row in rows]
    print_table(columns, table)


def _registered(registration: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the store's worker registry says of a SLURM job's worker (None before it registered)."""
    if registration is None:
        return None
    return {"name": registration["name"], "state": registration["state"], "seen_seconds_ago": round(registration["seen_seconds_ago"], 1)}


def _shown(registration: dict[str, Any] | None) -> str:
    return "-" if registration is None else f"{registration['state']}, seen {registration['seen_seconds_ago']:.0f} s ago"


def _describe(job: dict) -> str:
    overrides = " ".join(redact_credentials(item) for item in job["overrides"]) or "(no overrides)"
    return f"job {job['id']} ({job['study']}): {overrides}"
