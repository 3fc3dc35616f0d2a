"""Recording cost per run: the same no-op job with our recording callback and without it.

Both variants run N times in this process through ``hyperspace_hydra.app.load_app(app).run(config)``,
which is what a worker's job process does (callbacks, then Hydra's ``run_job``): once with
the study's config as is (``- hyperspace`` in its defaults: the callback opens the store,
describes the job, captures output, starts a heartbeat thread and writes the run), once
with the override ``~hydra.callbacks.hyperspace`` (no callback; everything else equal).
Each config is composed once, and each variant gets one warm-up run first (it opens the
store and fills the once-per-process provenance caches, as a worker does before forking).
The variants alternate in rounds so that load on the machine hits both alike.

Figure (ms per run, lower is better); ``details.added_ms_per_run`` is the difference.
For reference: a Sacred ``ex.run()`` of a no-op costs ~2 ms without an observer and
~7 ms with one on the 2-core reference machine.

Full size: --runs 200. Default: --runs 30.
"""

from __future__ import annotations

import contextlib
import io
from functools import partial

from _common import APP, Figure, argument_parser, milliseconds_per, noop_study, print_machine, report, sqlite_uri, timed, working_in
from omegaconf import DictConfig

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


def measure(runs: int) -> tuple[float, float, int]:
    """Seconds for ``runs`` runs with and without recording, and how many runs were recorded."""
    with noop_study() as study, working_in(study):
        app = load_app(APP)
        recorded, bare = app.compose(["message=1"]), app.compose(["message=1", NO_RECORDING])
        run_quietly(app, recorded, 1)
        run_quietly(app, bare, 1)
        seconds = {"recorded": 0.0, "bare": 0.0}
        for size in round_sizes(runs):
            seconds["bare"] += timed(partial(run_quietly, app, bare, size))[0]
            seconds["recorded"] += timed(partial(run_quietly, app, recorded, size))[0]
        with open_store(sqlite_uri(study)) as store:
            stored = len(store.list_runs())
    return seconds["recorded"], seconds["bare"], stored


def round_sizes(runs: int) -> list[int]:
    """``runs`` split into up to ROUNDS nearly equal rounds."""
    rounds = min(ROUNDS, runs)
    return [runs // rounds + (1 if index < runs % rounds else 0) for index in range(rounds)]


def figures(runs: int) -> list[Figure]:
    """Measure both variants and check that every recorded run is in the store."""
    recorded, bare, stored = measure(runs)
    if stored != runs + 1:
        raise RuntimeError(f"expected {runs + 1} recorded runs (with the warm-up), found {stored}")
    ours, baseline = milliseconds_per(recorded, runs), milliseconds_per(bare, runs)
    details = {"runs": runs, "added_ms_per_run": round(ours - baseline, 2)}
    note = "App.run in one process (a worker job's path), with vs without the recording callback"
    return [Figure("recording_cost.per_run", ours, baseline, "ms/run", note, details)]


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--runs", type=int, default=30, help="runs of each variant (default 30; full size 200)")
    args = parser.parse_args()
    print_machine()
    report(figures(args.runs), args.output, {"runs": args.runs})


if __name__ == "__main__":
    main()
