"""Per-job overhead of a no-op task: our queue path against Hydra's basic launcher.

Ours: ``python -m noop.run --multirun message=range(0,N) hydra/launcher=hyperspace``
enqueues the grid, then ``hyperspace worker --exit-when-empty`` drains it, every job
recorded. Baselines: the same grid through Hydra's basic launcher, with our recording
callback and without it (``~hydra.callbacks.hyperspace``). Each path is timed wall clock
from the command line in a fresh copy of the no-op study, so process start-up (one
process for the basic launcher, two for the queue) is part of each figure; it weighs
less as N grows.

Figures (ms per job, lower is better): queue vs basic launcher with recording, queue
vs basic launcher without recording, and basic launcher with vs without recording.

Full size: --jobs 100 (Hydra 1.3.8's basic launcher alone: ~11.7 s, ~112 ms per job,
on the 2-core reference machine). Default: --jobs 20.
"""

from __future__ import annotations

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
    timed,
)

NO_RECORDING = "~hydra.callbacks.hyperspace"


@dataclass
class QueueTimes:
    """Wall-clock seconds of the queue path's two commands."""

    enqueue: float
    drain: float

    @property
    def total(self) -> float:
        return self.enqueue + self.drain


def queue_path(jobs: int) -> QueueTimes:
    """Enqueue the grid with the hyperspace launcher, drain it with one worker; check every job was recorded."""
    with noop_study() as study:
        enqueue_seconds, _ = timed(lambda: run_study(study, "--multirun", grid_override(jobs), "hydra/launcher=hyperspace"))
        drain_seconds, _ = timed(lambda: start_worker(study, "--exit-when-empty").wait())
        _check_recorded(study, jobs)
    return QueueTimes(enqueue_seconds, drain_seconds)


def basic_launcher(jobs: int, recording: bool) -> float:
    """Seconds of the grid through Hydra's basic launcher, with or without our recording callback."""
    with noop_study() as study:
        seconds, _ = timed(lambda: run_study(study, "--multirun", grid_override(jobs), *([] if recording else [NO_RECORDING])))
        _check_recorded(study, jobs if recording else 0)
    return seconds


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
    ours = milliseconds_per(queue.total, jobs)
    queue_details = {
        "enqueue_ms_per_job": round(milliseconds_per(queue.enqueue, jobs), 1),
        "drain_ms_per_job": round(milliseconds_per(queue.drain, jobs), 1),
        "jobs": jobs,
    }
    startup = "wall clock per job, process start-up included"
    return [
        Figure(
            "per_job_overhead.queue_vs_basic_recorded",
            ours,
            milliseconds_per(recorded, jobs),
            "ms/job",
            f"queue (enqueue + 1 worker) vs basic launcher, both recording; {startup}",
            queue_details,
        ),
        Figure(
            "per_job_overhead.queue_vs_basic_unrecorded",
            ours,
            milliseconds_per(bare, jobs),
            "ms/job",
            f"queue (recording) vs basic launcher without the recording callback; {startup}",
            queue_details,
        ),
        Figure(
            "per_job_overhead.basic_recorded_vs_unrecorded",
            milliseconds_per(recorded, jobs),
            milliseconds_per(bare, jobs),
            "ms/job",
            f"basic launcher with vs without the recording callback; {startup}",
            {"jobs": jobs},
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
