"""Enqueue of an N-job grid through the hyperspace launcher against Hydra composing the grid job by job.

Ours: Hydra's own ``multirun`` of ``message=range(0,N) hydra/launcher=hyperspace``, in this
process (what ``python -m noop.run --multirun ...`` does after start-up): the basic
sweeper, our launcher composing every job, building the jobs (complete config, hash)
and enqueuing the sweep in one transaction into SQLite, logging one line per job to a
file. Baseline: Hydra composing the same jobs one by one in the same process
(``config_loader.load_sweep_config(master_config, ["message=i"])``), the least any
launcher does per job. Both run in a copy of the no-op study after one warm-up compose.

Figure (ms per job, lower is better); ``details.composes_per_job`` counts Hydra composes
per enqueued job (Hydra's sweeper composes each job once to validate the batch before
any launcher runs).

Full size: --jobs 10000. Default: --jobs 50.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import (
    APP,
    Figure,
    argument_parser,
    grid_override,
    milliseconds_per,
    noop_study,
    print_machine,
    report,
    sqlite_uri,
    timed,
    working_in,
)
from hydra.types import RunMode

from hyperspace_hydra.app import App, load_app
from hyperspace_hydra.store import open_store


@contextlib.contextmanager
def counting_calls(owner: Any, name: str) -> Iterator[list[int]]:
    """Count calls of the method ``owner.name`` while the block runs (one-element list)."""
    original = getattr(owner, name)
    count = [0]

    def counted(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return original(*args, **kwargs)

    setattr(owner, name, counted)
    try:
        yield count
    finally:
        delattr(owner, name)


def compose_grid(app: App, jobs: int) -> None:
    """Compose every job of the grid as Hydra's launchers do, one by one."""
    master = app.compose([grid_override(jobs)], run_mode=RunMode.MULTIRUN)
    loader = app.hydra().config_loader
    for index in range(jobs):
        loader.load_sweep_config(master, [f"message={index}"])


def enqueue_with_launcher(app: App, jobs: int, log: Path) -> int:
    """Run the multirun with the hyperspace launcher; return how many composes it made."""
    hydra = app.hydra()
    with (
        counting_calls(hydra.config_loader, "load_sweep_config") as composes,
        open(log, "w", encoding="utf-8") as output,
        contextlib.redirect_stdout(output),
    ):
        hydra.multirun(app.config_name, app.task_function, [grid_override(jobs), "hydra/launcher=hyperspace"])
    return composes[0]


def queued_jobs(store_uri: str) -> int:
    """How many jobs wait in the store (a check that the launcher enqueued the whole grid)."""
    with open_store(store_uri) as store:
        return len(store.list_jobs(states=["QUEUED"]))


def figures(jobs: int) -> list[Figure]:
    """Warm up, then time the baseline and ours in one copy of the study."""
    with noop_study() as study, working_in(study):
        app = load_app(APP)
        compose_grid(app, 1)
        baseline, _ = timed(lambda: compose_grid(app, jobs))
        ours, composes = timed(lambda: enqueue_with_launcher(app, jobs, study / "multirun.log"))
        enqueued = queued_jobs(sqlite_uri(study))
    if enqueued != jobs:
        raise RuntimeError(f"expected {jobs} queued jobs, found {enqueued}")
    details = {
        "jobs": jobs,
        "ours_total_s": round(ours, 3),
        "baseline_total_s": round(baseline, 3),
        "composes_per_job": round(composes / jobs, 2),
    }
    note = "in one process after start-up; ours = Hydra's sweeper + our launcher + one SQLite transaction, baseline = one load_sweep_config per job"
    return [
        Figure("enqueue_grid.launcher_vs_compose", milliseconds_per(ours, jobs), milliseconds_per(baseline, jobs), "ms/job", note, details)
    ]


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--jobs", type=int, default=50, help="jobs in the grid (default 50; full size 10000)")
    args = parser.parse_args()
    print_machine()
    report(figures(args.jobs), args.output, {"jobs": args.jobs})


if __name__ == "__main__":
    main()
