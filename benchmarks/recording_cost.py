"""Recording cost per run: the same no-op job with our recording callback and without it.

Both variants run N times in this process through ``hyperspace_hydra.app.load_app(app).run(config)``,
which is what a worker's job process does (callbacks, then Hydra's ``run_job``): once with
the study's config as is (``- hyperspace`` in its defaults: the callback opens the store,
describes the job, captures output, starts a heartbeat thread and writes the run), once
with the override ``~hydra.callbacks.hyperspace`` (no callback; everything else equal).
Each config is composed once, and each variant gets one warm-up run first (it opens the
store and fills the once-per-process provenance caches, as a worker does before forking).
The warm-up also starts the threads a process keeps for its runs (heartbeat, fd capture's two
copiers): later runs here reuse them, as the runs of a basic or joblib multirun do, while a
worker's job process (forked for one job) starts them for its job (a fraction of a ms each, more under load).
The variants alternate in rounds so that load on the machine hits both alike.

Figure 1 (ms per run, lower is better); ``details.added_ms_per_run`` is the difference.

Figure 2, side by side with Sacred: what recording adds per run, ours (figure 1's
difference) against what Sacred's ``SqlObserver`` on a SQLite file adds to a Sacred
``ex.run()`` of the same no-op (with vs without the observer, also alternating in rounds;
Sacred gathers host info at every run in both). Sacred's observer stores less than we do
(no package list from the environment, no complete config with defaults, no job link),
and both capture output and beat a heartbeat thread.

Each figure's details also give this process's CPU time per run (all its threads: capture copiers and
heartbeat included), which moves far less with the load on a shared machine than wall clock does.

Full size: --runs 200. Default: --runs 30.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
from collections.abc import Callable
from functools import partial

from _common import APP, Figure, argument_parser, milliseconds_per, noop_study, print_machine, report, sqlite_uri, timed, working_in
from omegaconf import DictConfig
from sacred import Experiment
from sacred.observers import SqlObserver

from hyperspace_hydra.app import App, load_app
from hyperspace_hydra.store import open_store

NO_RECORDING = "~hydra.callbacks.hyperspace"
ROUNDS = 5


def run_quietly(app: App, config: DictConfig, runs: int) -> None:
    """Run the job ``runs`` times (Hydra's job logging goes to a buffer, not to our output)."""
    with contextlib.redirect_stdout(io.StringIO()):
        for _ in range(runs):
            returned = app.run(config).return_value  # re-raises the task's exception if it failed
            if returned != 0.0:
                raise RuntimeError(f"the no-op task returned {returned!r}")


Times = dict[str, list[float]]
"""Per variant: [wall seconds, CPU seconds of this process]."""


def timed_cpu(times: Times, variant: str, function: Callable[[], object]) -> None:
    """Add the wall clock and this process's CPU time (every thread's) of one call of ``function`` to ``times[variant]``."""
    cpu = time.process_time()
    wall, _ = timed(function)
    spent = times.setdefault(variant, [0.0, 0.0])
    spent[0] += wall
    spent[1] += time.process_time() - cpu


def measure(runs: int) -> tuple[Times, int]:
    """Wall and CPU seconds for ``runs`` runs with and without recording, and how many runs were recorded."""
    with noop_study() as study, working_in(study):
        app = load_app(APP)
        recorded, bare = app.compose(["message=1"]), app.compose(["message=1", NO_RECORDING])
        run_quietly(app, recorded, 1)
        run_quietly(app, bare, 1)
        times: Times = {}
        for size in round_sizes(runs):
            timed_cpu(times, "bare", partial(run_quietly, app, bare, size))
            timed_cpu(times, "recorded", partial(run_quietly, app, recorded, size))
        with open_store(sqlite_uri(study)) as store:
            stored = len(store.list_runs())
    return times, stored


def sacred_experiment(observer: object | None) -> Experiment:
    """A Sacred experiment whose main is the no-op task, with ``observer`` attached if given."""
    experiment = Experiment("noop", save_git_info=False)
    experiment.logger = logging.getLogger("recording_cost.sacred")
    experiment.logger.setLevel(logging.ERROR)
    experiment.main(noop_main)
    if observer is not None:
        experiment.observers.append(observer)
    return experiment


def noop_main(message: int = 1) -> float:
    """The no-op task as a Sacred main (its config is the function's signature)."""
    return 0.0


def measure_sacred(runs: int) -> Times:
    """Wall and CPU seconds for ``runs`` Sacred runs with a SqlObserver on SQLite and without an observer."""
    with tempfile.TemporaryDirectory() as directory, contextlib.redirect_stdout(io.StringIO()):
        observed = sacred_experiment(SqlObserver(f"sqlite:///{directory}/sacred.db"))
        bare = sacred_experiment(None)
        observed.run()
        bare.run()
        times: Times = {}
        for size in round_sizes(runs):
            timed_cpu(times, "bare", partial(run_sacred, bare, size))
            timed_cpu(times, "observed", partial(run_sacred, observed, size))
    return times


def run_sacred(experiment: Experiment, runs: int) -> None:
    for _ in range(runs):
        experiment.run()


def round_sizes(runs: int) -> list[int]:
    """``runs`` split into up to ROUNDS nearly equal rounds."""
    rounds = min(ROUNDS, runs)
    return [runs // rounds + (1 if index < runs % rounds else 0) for index in range(rounds)]


def figures(runs: int) -> list[Figure]:
    """Measure both variants and check that every recorded run is in the store."""
    times, stored = measure(runs)
    if stored != runs + 1:
        raise RuntimeError(f"expected {runs + 1} recorded runs (with the warm-up), found {stored}")
    (ours, ours_cpu), (baseline, baseline_cpu) = (
        (milliseconds_per(wall, runs), milliseconds_per(cpu, runs)) for wall, cpu in (times["recorded"], times["bare"])
    )
    details = {
        "runs": runs,
        "added_ms_per_run": round(ours - baseline, 2),
        "recorded_cpu_ms_per_run": round(ours_cpu, 2),
        "bare_cpu_ms_per_run": round(baseline_cpu, 2),
        "added_cpu_ms_per_run": round(ours_cpu - baseline_cpu, 2),
    }
    note = "App.run in one process (a worker job's path), with vs without the recording callback"
    sacred_times = measure_sacred(runs)
    (sacred_observed, observed_cpu), (sacred_run, sacred_cpu) = (
        (milliseconds_per(wall, runs), milliseconds_per(cpu, runs)) for wall, cpu in (sacred_times["observed"], sacred_times["bare"])
    )
    sacred_details = {
        "runs": runs,
        "sacred_run_ms": round(sacred_run, 2),
        "sacred_observed_run_ms": round(sacred_observed, 2),
        "ours_added_cpu_ms": round(ours_cpu - baseline_cpu, 2),
        "sacred_added_cpu_ms": round(observed_cpu - sacred_cpu, 2),
    }
    sacred_note = "ms a run's recording adds: our callback vs Sacred's SqlObserver (SQLite) on a Sacred ex.run() of the same no-op"
    return [
        Figure("recording_cost.per_run", ours, baseline, "ms/run", note, details),
        Figure("recording_cost.added_vs_sacred_sql_observer", ours - baseline, sacred_observed - sacred_run, "ms/run", sacred_note, sacred_details),
    ]


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--runs", type=int, default=30, help="runs of each variant (default 30; full size 200)")
    args = parser.parse_args()
    print_machine()
    report(figures(args.runs), args.output, {"runs": args.runs})


if __name__ == "__main__":
    main()
