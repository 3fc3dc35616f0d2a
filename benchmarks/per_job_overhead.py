"""Per-job overhead of a no-op task: our queue path against Hydra's basic launcher.

Ours: ``python -m noop.run --multirun message=range(0,N) hydra/launcher=hyperspace``
enqueues the grid, then ``hyperspace worker --exit-when-empty`` drains it, every job
recorded. Baselines: the same grid through Hydra's basic launcher, with our recording
callback and without it (``~hydra.callbacks.hyperspace``). Each path is timed wall clock
from the command line in a fresh copy of the no-op study, so process start-up (one
process for the basic launcher, two for the queue) is part of each figure; it weighs
less as N grows.

Figures (ms per job, lower is better): queue vs basic launcher with recording (wall clock,
and CPU time: user + system of every process of the path, job processes included, which
moves far less with the load of a shared machine), queue vs basic launcher without
recording, and basic launcher with vs without recording.

Full size: --jobs 100 (Hydra 1.3.8's basic launcher alone: ~11.7 s, ~112 ms per job,
on the 2-core reference machine). Default: --jobs 20.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from _common import (
    Figure,
    argument_parser,
    completed_runs,
    grid_override,
    milliseconds_per,
    noop_study,
    print_machine,
    report,
    run_study,
    sqlite_uri,
    start_worker,
    timed_processes,
)

NO_RECORDING = "~hydra.callbacks.hyperspace"


@dataclass
class PathTimes:
    """Seconds a path took: wall clock, and CPU of all its processes (commands, workers, job processes)."""

    wall: float
    cpu: float


@dataclass
class QueueTimes:
    """The queue path's two commands."""

    enqueue: PathTimes
    drain: PathTimes

    @property
    def total(self) -> PathTimes:
        return PathTimes(self.enqueue.wall + self.drain.wall, self.enqueue.cpu + self.drain.cpu)


def path_times(function: Callable[[], object]) -> PathTimes:
    """Wall clock and the CPU of the processes of one call of ``function``."""
    wall, cpu, _ = timed_processes(function)
    return PathTimes(wall, cpu)


def queue_path(jobs: int) -> QueueTimes:
    """Enqueue the grid with the hyperspace launcher, drain it with one worker; check every job was recorded."""
    with noop_study() as study:
        enqueued = path_times(lambda: run_study(study, "--multirun", grid_override(jobs), "hydra/launcher=hyperspace"))
        drained = path_times(lambda: start_worker(study, "--exit-when-empty").wait())
        _check_recorded(study, jobs)
    return QueueTimes(enqueued, drained)


def basic_launcher(jobs: int, recording: bool) -> PathTimes:
    """The grid through Hydra's basic launcher, with or without our recording callback."""
    with noop_study() as study:
        times = path_times(lambda: run_study(study, "--multirun", grid_override(jobs), *([] if recording else [NO_RECORDING])))
        _check_recorded(study, jobs if recording else 0)
    return times


def _check_recorded(study: Path, jobs: int) -> None:
    store = study / ".hyperspace" / "store.db"
    recorded = completed_runs(sqlite_uri(study)) if store.exists() else 0
    if recorded != jobs:
        raise RuntimeError(f"expected {jobs} recorded runs, found {recorded}")


def figures(jobs: int) -> list[Figure]:
    """Measure the three paths once each and compare them."""
    queue = queue_path(jobs)
    recorded = basic_launcher(jobs, recording=True)
    bare = basic_launcher(jobs, recording=False)
    ours = milliseconds_per(queue.total.wall, jobs)
    queue_details = {
        "enqueue_ms_per_job": round(milliseconds_per(queue.enqueue.wall, jobs), 1),
        "drain_ms_per_job": round(milliseconds_per(queue.drain.wall, jobs), 1),
        "enqueue_cpu_ms_per_job": round(milliseconds_per(queue.enqueue.cpu, jobs), 1),
        "drain_cpu_ms_per_job": round(milliseconds_per(queue.drain.cpu, jobs), 1),
        "jobs": jobs,
    }
    startup = "wall clock per job, process start-up included"
    return [
        Figure(
            "per_job_overhead.queue_vs_basic_recorded",
            ours,
            milliseconds_per(recorded.wall, jobs),
            "ms/job",
            f"queue (enqueue + 1 worker) vs basic launcher, both recording; {startup}",
            queue_details,
        ),
        Figure(
            "per_job_overhead.queue_vs_basic_recorded_cpu",
            milliseconds_per(queue.total.cpu, jobs),
            milliseconds_per(recorded.cpu, jobs),
            "ms/job",
            "the same two paths in CPU time (user + system) of all their processes per job, start-up included: steadier than wall clock on a loaded machine",
            queue_details,
        ),
        Figure(
            "per_job_overhead.queue_vs_basic_unrecorded",
            ours,
            milliseconds_per(bare.wall, jobs),
            "ms/job",
            f"queue (recording) vs basic launcher without the recording callback; {startup}",
            queue_details,
        ),
        Figure(
            "per_job_overhead.basic_recorded_vs_unrecorded",
            milliseconds_per(recorded.wall, jobs),
            milliseconds_per(bare.wall, jobs),
            "ms/job",
            f"basic launcher with vs without the recording callback; {startup}",
            {"jobs": jobs, "recorded_cpu_ms_per_job": round(milliseconds_per(recorded.cpu, jobs), 1), "unrecorded_cpu_ms_per_job": round(milliseconds_per(bare.cpu, jobs), 1)},
        ),
    ]


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--jobs", type=int, default=20, help="jobs in the grid (default 20; full size 100)")
    args = parser.parse_args()
    print_machine()
    report(figures(args.jobs), args.output, {"jobs": args.jobs})


if __name__ == "__main__":
    main()
