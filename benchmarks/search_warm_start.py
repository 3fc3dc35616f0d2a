"""Search: trials to reach a target, cold TPE vs our sweeper warm-started from a previous sweep;
and sampler latency per trial with many past runs in the store.

1. A deterministic objective with a known optimum: a shifted sphere
   f(x, y) = (x - 1.3)^2 + (y + 0.7)^2, minimum 0. A previous sweep of ``--previous`` random
   trials over x, y in [-5, 5] is recorded as runs in a SQLite store. Then, for each seed, we
   count the trials needed to reach f <= ``--target``:
   (a) cold TPE, one trial at a time (what Hydra's optuna sweeper does without reused storage);
   (b) our sweeper's tuner, told the history it selects from the store for a slightly different
       space (x in [-4, 6]), so only the past runs inside the new space count.
   Ratio: mean trials (b) / mean trials (a); lower is better.
2. Latency of one ask with N past runs in the store (``--past``; full sizes 1000 10000):
   ours reads the history from the store and rebuilds the study for every ask (what a worker
   does, so nothing stays open; a process reads each past run once, so the first ask reads
   all N and later ones only the ids: ``details.asks_ms`` has each ask); the baseline asks an
   in-memory Optuna study that already holds the same N trials (a driver that stays open).
   Ratio: ours / baseline (mean over ``--repeats`` asks).

Small default sizes finish in well under a minute.
Full size: --seeds 10 --past 1000 10000
"""

from __future__ import annotations

import random
import statistics
import tempfile
from pathlib import Path

import optuna
from _common import Figure, argument_parser, durations, print_machine, report

from hyperspace_hydra.hpo.history import base_key
from hyperspace_hydra.hpo.search import history
from hyperspace_hydra.hpo.space import parse_space
from hyperspace_hydra.hpo.tuner import SearchSpec, Trial, ask, build_study
from hyperspace_hydra.store import COMPLETED, Store, open_store

OLD_SPACE = ["x=interval(-5, 5)", "y=interval(-5, 5)"]
NEW_SPACE = ["x=interval(-4, 6)", "y=interval(-5, 5)"]
TASK = "sphere"
BASES = {base_key({}): {}}
"""The sphere's config holds only the searched x and y: every past run's config outside them is empty, as the base is."""


def sphere(point: dict[str, float]) -> float:
    """The objective; its minimum 0 is at x = 1.3, y = -0.7."""
    return (point["x"] - 1.3) ** 2 + (point["y"] + 0.7) ** 2


def record_runs(store: Store, count: int, rng: random.Random) -> None:
    """``count`` completed runs of the sphere task at random points of the old space."""
    for _ in range(count):
        point = {"x": rng.uniform(-5, 5), "y": rng.uniform(-5, 5)}
        run_id = store.start_run({"task": TASK, "config": dict(point), "choices": {"task": TASK}})
        value = sphere(point)
        store.finish_run(run_id, COMPLETED, {"result": value, "objective": value})


def trials_to_target(spec: SearchSpec, past: list[Trial], target: float, budget: int) -> int:
    """How many new trials, asked one at a time, it takes to reach ``target`` (``budget`` if never)."""
    trials: list[Trial] = []
    for number in range(1, budget + 1):
        [point] = ask(spec, past, trials, 1)
        value = sphere(point)
        if value <= target:
            return number
        trials.append(Trial(point, value))
    return budget


def compare_warm_and_cold(seeds: int, previous: int, target: float, budget: int) -> Figure:
    space, fixed = parse_space(NEW_SPACE)
    cold, warm = [], []
    with tempfile.TemporaryDirectory() as directory:
        for seed in range(seeds):
            with open_store(f"sqlite:///{directory}/store-{seed}.db") as store:
                record_runs(store, previous, random.Random(seed))
                spec = SearchSpec(space, fixed, n_trials=budget, n_jobs=1, direction="minimize", seed=seed, task=TASK, bases=BASES)
                past = history(store, spec).trials
            cold.append(trials_to_target(spec, [], target, budget))
            warm.append(trials_to_target(spec, past, target, budget))
    return Figure(
        "search_trials_to_target",
        ours=statistics.mean(warm),
        baseline=statistics.mean(cold),
        unit="trials",
        note=f"mean over {seeds} seeds of new trials until f <= {target}; ours warm-started from {previous} past runs, baseline cold TPE",
        details={"warm": warm, "cold": cold, "budget": budget},
    )


def ask_latency(past_runs: int, repeats: int) -> Figure:
    space, fixed = parse_space(OLD_SPACE)
    spec = SearchSpec(space, fixed, n_trials=1, n_jobs=1, direction="minimize", seed=0, task=TASK, bases=BASES)
    with tempfile.TemporaryDirectory() as directory, open_store(f"sqlite:///{Path(directory) / 'store.db'}") as store:
        record_runs(store, past_runs, random.Random(0))
        asks = durations(lambda: ask(spec, history(store, spec).trials, [], 1), repeats)
        study = build_study(spec, history(store, spec).trials)
        baseline = statistics.mean(durations(lambda: study.tell(study.ask(space), 0.0), repeats))
    return Figure(f"search_ask_latency_{past_runs}_past_runs", ours=statistics.mean(asks) * 1000, baseline=baseline * 1000, unit="ms",
                  note="ours: read history from the store and rebuild the study per ask; baseline: ask an in-memory study holding the same trials",
                  details={"asks_ms": [round(seconds * 1000, 2) for seconds in asks]})  # fmt: skip



def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=3, help="searches per arm (full run: 10)")
    parser.add_argument("--previous", type=int, default=40, help="runs of the previous sweep (default 40)")
    parser.add_argument("--target", type=float, default=0.05, help="objective value to reach (default 0.05)")
    parser.add_argument("--budget", type=int, default=80, help="give up after this many trials (default 80)")
    parser.add_argument(
        "--past", type=int, nargs="+", default=[200, 1000], help="past runs in the store for the latency figure (full run: 1000 10000)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="asks timed per latency figure")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print_machine()
    figures = [compare_warm_and_cold(args.seeds, args.previous, args.target, args.budget)]
    figures += [ask_latency(count, args.repeats) for count in args.past]
    report(figures, args.output, vars(args) | {"output": str(args.output)})


if __name__ == "__main__":
    main()
