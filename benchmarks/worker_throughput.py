"""Worker throughput on no-op jobs with 1 and 2 workers, on SQLite and PostgreSQL, against the limit.

For each backend and worker count, N no-op jobs are enqueued (``Queue.submit_grid``, into
a fresh store) and then drained by that many separate ``hyperspace worker --exit-when-empty``
processes, each with ``--processes 1`` (``--mode processes`` runs one worker with
``--processes K`` instead). Throughput is steady state: N / (last job finished - first
job claimed), from the jobs' own timestamps in the store, so worker start-up is left out
(``details.wall_s`` includes it). PostgreSQL runs on a throwaway server
(tests/postgres_cluster.py), one database per measurement.

The limit is a plain Python loop calling the task function directly with its composed
config, in this process. Throughput is expressed as seconds per job so that lower is
better: ``ours`` = s/job through the workers, ``baseline`` = s/job of the direct call,
``ratio`` = ours/baseline; ``details`` gives jobs/s and the fraction of the limit
(= 1/ratio). One more figure per backend compares 2 workers with 1.

Full size: --jobs 100. Default: --jobs 12.
"""

from __future__ import annotations

import contextlib
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    APP,
    REPO,
    Figure,
    argument_parser,
    enqueue,
    noop_study,
    print_machine,
    report,
    significant,
    sqlite_uri,
    start_worker,
    timed_processes,
    working_in,
)

from hyperspace_hydra.app import compose, load_app
from hyperspace_hydra.store import open_store

BACKENDS = ("sqlite", "postgresql")
LIMIT_CALLS = 100_000
NOTE = "throughput as seconds per job (lower is better); jobs/s = 1/ours; fraction of the limit = 1/ratio"


@dataclass
class Drain:
    """How fast some workers drained N jobs: steady state (first claim to last finish), wall clock, and the
    CPU time of the workers and their job processes (start-up included; not the PostgreSQL server's)."""

    jobs: int
    steady_seconds: float
    wall_seconds: float
    cpu_seconds: float

    @property
    def seconds_per_job(self) -> float:
        return self.steady_seconds / self.jobs


# stores: each measurement gets a new, empty one


@contextlib.contextmanager
def postgres_server() -> Iterator[Any]:
    """A throwaway PostgreSQL server (a ``tests/postgres_cluster.PostgresCluster``), removed afterwards."""
    sys.path.insert(0, str(REPO / "tests"))
    from postgres_cluster import PostgresCluster

    with PostgresCluster() as cluster:
        yield cluster


def create_database(cluster: Any) -> str:
    """A new, empty database on ``cluster``; its URI."""
    import psycopg  # the optional postgres extra: only needed here

    database = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(cluster.uri_for("postgres"), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    return cluster.uri_for(database)


@contextlib.contextmanager
def postgres_databases() -> Iterator[Callable[[], str]]:
    """A throwaway PostgreSQL server; yields a function that creates an empty database and returns its URI."""
    with postgres_server() as cluster:
        yield lambda: create_database(cluster)


@contextlib.contextmanager
def sqlite_databases(study: Path) -> Iterator[Callable[[], str]]:
    """Yields a function that returns the URI of a new SQLite store in the study."""
    yield lambda: sqlite_uri(study, f"store-{uuid.uuid4().hex[:8]}")


# measuring


def worker_arguments(workers: int, mode: str) -> list[list[str]]:
    """The arguments of each worker process to start: K workers of one process, or one of K."""
    if mode == "separate":
        return [["--processes", "1"]] * workers
    return [["--processes", str(workers)]]


def drain(study: Path, store_uri: str, jobs: int, workers: int, mode: str) -> Drain:
    """Enqueue ``jobs`` into ``store_uri``, then time ``workers`` draining them."""
    enqueue(store_uri, 0, jobs)

    def run_workers() -> None:
        started = [
            start_worker(study, "--exit-when-empty", "--store", store_uri, *args, name=f"worker{index}")
            for index, args in enumerate(worker_arguments(workers, mode))
        ]
        for worker in started:
            worker.wait()

    wall, cpu, _ = timed_processes(run_workers)
    return Drain(jobs, steady_seconds(store_uri, jobs), wall, cpu)


def steady_seconds(store_uri: str, jobs: int) -> float:
    """Seconds from the first claim to the last finish of the store's jobs; checks all completed."""
    with open_store(store_uri) as store:
        listed = store.list_jobs()
    if len(listed) != jobs or any(job["state"] != "COMPLETED" for job in listed):
        raise RuntimeError(f"expected {jobs} COMPLETED jobs, found {[job['state'] for job in listed]}")
    return (max(job["finished_at"] for job in listed) - min(job["claimed_at"] for job in listed)).total_seconds()


def limit_seconds_per_job() -> float:
    """Seconds per call of the task function, called directly in a loop with its composed config."""
    task, config = load_app(APP).task_function, compose(APP, ["message=1"])
    started = time.perf_counter()
    for _ in range(LIMIT_CALLS):
        task(config)
    return (time.perf_counter() - started) / LIMIT_CALLS


def throughput_figure(backend: str, workers: int, mode: str, measured: Drain, limit: float) -> Figure:
    """Seconds per job through the workers against the direct call, with the rates in ``details``."""
    per_job = measured.seconds_per_job
    details = {
        "backend": backend,
        "workers": workers,
        "mode": mode,
        "jobs": measured.jobs,
        "jobs_per_s": significant(1 / per_job),
        "limit_jobs_per_s": significant(1 / limit),
        "fraction_of_limit": significant(limit / per_job, 3),
        "wall_s": round(measured.wall_seconds, 2),
        "cpu_ms_per_job": round(1000 * measured.cpu_seconds / measured.jobs, 1),
    }
    return Figure(f"worker_throughput.{backend}.{workers}_worker{'s' if workers > 1 else ''}", per_job, limit, "s/job", NOTE, details)


def backend_figures(
    study: Path, backend: str, new_store: Callable[[], str], jobs: int, worker_counts: list[int], mode: str, limit: float
) -> list[Figure]:
    """One figure per worker count, and 2 workers vs 1 when both were measured."""
    drains = {workers: drain(study, new_store(), jobs, workers, mode) for workers in worker_counts}
    figures = [throughput_figure(backend, workers, mode, measured, limit) for workers, measured in drains.items()]
    if 1 in drains and 2 in drains:
        note = "2 workers vs 1, seconds per job (lower is better); 0.5 would be perfect scaling on 2 idle cores"
        figures.append(
            Figure(
                f"worker_throughput.{backend}.2_vs_1_workers",
                drains[2].seconds_per_job,
                drains[1].seconds_per_job,
                "s/job",
                note,
                {"mode": mode, "jobs": jobs},
            )
        )
    return figures


def figures(jobs: int, backends: list[str], worker_counts: list[int], mode: str) -> list[Figure]:
    """Measure the limit, then each backend in turn, in one copy of the study."""
    results: list[Figure] = []
    with noop_study() as study, working_in(study):
        limit = limit_seconds_per_job()
        for backend in backends:
            stores = sqlite_databases(study) if backend == "sqlite" else postgres_databases()
            with stores as new_store:
                results += backend_figures(study, backend, new_store, jobs, worker_counts, mode, limit)
    return results


def comma_list(text: str) -> list[str]:
    """``"a, b"`` as ``["a", "b"]`` (an argparse type)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--jobs", type=int, default=12, help="no-op jobs per measurement (default 12; full size 100)")
    parser.add_argument(
        "--backends", type=comma_list, default=list(BACKENDS), help="comma-separated, from sqlite,postgresql (default both)"
    )
    parser.add_argument(
        "--workers",
        type=lambda text: [int(item) for item in comma_list(text)],
        default=[1, 2],
        help="comma-separated worker counts (default 1,2)",
    )
    parser.add_argument(
        "--mode",
        choices=("separate", "processes"),
        default="separate",
        help="K separate worker processes with --processes 1 (default), or one worker with --processes K",
    )
    args = parser.parse_args()
    unknown = set(args.backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)}; choose from {','.join(BACKENDS)}")
    print_machine()
    params = {"jobs": args.jobs, "backends": args.backends, "workers": args.workers, "mode": args.mode}
    report(figures(args.jobs, args.backends, args.workers, args.mode), args.output, params)


if __name__ == "__main__":
    main()
