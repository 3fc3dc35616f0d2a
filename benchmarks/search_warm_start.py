"""Search: trials to reach a target, cold TPE vs our sweeper warm-started from a previous sweep;
and sampler latency per trial with many past runs in the store.

1. A suite of objectives with known optima (:data:`OBJECTIVES`): a shifted sphere, Branin
   (2-d), Hartmann-6 (6-d), a categorical optimizer with a log-scaled learning rate, and a
   shifted sphere plus Gaussian noise (its target is checked on the noise-free value). For
   each objective and seed, a previous sweep of ``--previous`` trials asked by our tuner (TPE)
   over a shifted or narrowed space is recorded as runs in a SQLite store, each config with
   the non-searched ``momentum: 0.0``. Then we count the trials needed to reach the target:
   (a) cold TPE, one trial at a time (what Hydra's optuna sweeper does without reused storage);
   (b) our sweeper's tuner, told the history that :func:`history` selects from the store for
       the new space (so only the past runs inside it count), and so taking every second trial
       as a local step near the best trial so far (:mod:`hyperspace_hydra.hpo.refine`).
   Per objective, ratio: mean trials (b) / mean trials (a), a search that never reaches the
   target counting as ``--budget``; then the median of those ratios over the objectives.
   A control runs (b) on a store whose previous sweep used ``momentum: 0.9``: no past run is
   compatible, so it must use no history and ask the very trials of (a).
2. Latency of one ask with N past runs in the store (``--past``; full sizes 1000 10000), as a
   worker asks: one trial at a time, each completed before the next ask. Ours reads the history
   from the store and asks (a process reads each past run once and keeps the study of the
   search, so its first ask reads all N runs and tells them all, later ones count the completed
   runs in the database, read only runs newer than those judged, and tell what changed: ``details.first_ask_ms``); the baseline asks an in-memory Optuna
   study that already holds the same N trials (a driver that stays open). Ratio: ours /
   baseline, the mean over ``--repeats`` asks after the first.
3. A process's first read of the history with N past runs whose configs hold about 40 values,
   half of them with another ``momentum`` (``--history-read``; full sizes 10000 100000): ours
   (the store groups the runs by their config outside the searched paths, so each distinct
   config is judged once) against only reading the same runs' fields from the store; the details
   add reading them and judging each run apart, as the history did before the store grouped runs.

Small default sizes finish in well under a minute.
Full size: --seeds 10 --past 1000 10000 --history-read 10000 100000
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from _common import Figure, argument_parser, print_machine, report, timed

from hyperspace_hydra.hpo.history import base_key, comparable_config, grouping_paths, judge_groups, left_out_paths, searched_paths
from hyperspace_hydra.hpo.search import History, history
from hyperspace_hydra.hpo.space import parse_space
from hyperspace_hydra.hpo.tuner import SearchSpec, Trial, ask, build_study
from hyperspace_hydra.store import COMPLETED, Store, open_store
from hyperspace_hydra.store.base import FinishedRun
from hyperspace_hydra.store.grouping import GROUPED_RUN_FIELDS, group_by_config

Point = Mapping[str, Any]
Search = list[tuple[Point, float, float]]
"""A search's trials in order: (point, value told, noise-free value)."""
MOMENTUM = 0.0
"""The non-searched parameter in every run's config: the sweep's value."""
BASES = {base_key({}): {"momentum": MOMENTUM}}
"""A run's config holds the searched parameters and ``momentum``: outside the searched ones, the base is ``momentum: 0.0``."""


@dataclass(frozen=True)
class Objective:
    """A function to minimize, its spaces (the previous sweep's, then the new one) and when it counts as reached."""

    name: str
    function: Callable[[Point], float]
    old_space: list[str]
    new_space: list[str]
    target: float
    """Reached when the noise-free value is at most this (the minimum is known)."""
    noise: float = 0.0
    """Standard deviation of the Gaussian noise added to the value the tuner is told."""

    @property
    def task(self) -> str:
        return self.name


def sphere(point: Point) -> float:
    """Minimum 0 at x = 1.3, y = -0.7."""
    return (point["x"] - 1.3) ** 2 + (point["y"] + 0.7) ** 2


def branin(point: Point) -> float:
    """Minimum 0.397887 at (-pi, 12.275), (pi, 2.275) and (9.42478, 2.475)."""
    x, y = point["x"], point["y"]
    return (y - 5.1 / (4 * math.pi**2) * x**2 + 5 / math.pi * x - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x) + 10


_HARTMANN_ALPHA = (1.0, 1.2, 3.0, 3.2)
_HARTMANN_A = ((10, 3, 17, 3.5, 1.7, 8), (0.05, 10, 17, 0.1, 8, 14), (3, 3.5, 1.7, 10, 17, 8), (17, 8, 0.05, 10, 0.1, 14))
_HARTMANN_P = (
    (0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886),
    (0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991),
    (0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650),
    (0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381),
)


def hartmann6(point: Point) -> float:
    """Minimum -3.32237 at (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)."""
    x = [point[f"x{index}"] for index in range(1, 7)]
    return -sum(
        alpha * math.exp(-sum(a * (xi - p) ** 2 for a, xi, p in zip(row, x, centre)))
        for alpha, row, centre in zip(_HARTMANN_ALPHA, _HARTMANN_A, _HARTMANN_P)
    )


_OPTIMIZER_OFFSET = {"sgd": 0.5, "adam": 0.0, "rmsprop": 0.2}
BEST_LR = 3e-4


def optimizer_lr(point: Point) -> float:
    """A per-optimizer offset plus a parabola in log10(lr): minimum 0 with adam at lr = 3e-4."""
    return _OPTIMIZER_OFFSET[point["optimizer"]] + math.log10(point["lr"] / BEST_LR) ** 2 / 4


def noisy_sphere(point: Point) -> float:
    """Minimum 0 at x = -1.5, y = 2.0 (the noise is added by the search)."""
    return (point["x"] + 1.5) ** 2 + (point["y"] - 2.0) ** 2


def _hartmann_space(low: float, high: float) -> list[str]:
    return [f"x{index}=interval({low}, {high})" for index in range(1, 7)]


OBJECTIVES = [
    Objective("sphere", sphere, ["x=interval(-5, 5)", "y=interval(-5, 5)"], ["x=interval(-4, 6)", "y=interval(-5, 5)"], target=0.05),
    Objective("branin", branin, ["x=interval(-5, 5)", "y=interval(0, 10)"], ["x=interval(-5, 10)", "y=interval(0, 15)"], 0.397887 + 0.1),
    Objective("hartmann6", hartmann6, _hartmann_space(0.0, 0.8), _hartmann_space(0.0, 1.0), target=-3.32237 + 0.5),
    Objective(
        "optimizer_lr",
        optimizer_lr,
        ["optimizer=choice(sgd, adam, rmsprop)", "lr=tag(log, interval(1e-6, 1e-2))"],
        ["optimizer=choice(sgd, adam, rmsprop)", "lr=tag(log, interval(1e-5, 1.0))"],
        target=0.01,
    ),
    Objective(
        "noisy_sphere", noisy_sphere, ["x=interval(-5, 5)", "y=interval(-5, 5)"], ["x=interval(-6, 4)", "y=interval(-5, 5)"], 0.1, noise=0.1
    ),
]  # fmt: skip
CONTROL = OBJECTIVES[0]
"""The control's objective: cheap, and its previous sweep differs only in ``momentum``."""


def search_spec(space_overrides: list[str], objective: Objective, n_trials: int, seed: int) -> SearchSpec:
    """One trial at a time over the space, told only runs whose ``momentum`` is the sweep's."""
    space, fixed = parse_space(space_overrides)
    return SearchSpec(space, fixed, n_trials=n_trials, n_jobs=1, direction="minimize", seed=seed, task=objective.task, bases=BASES)


def run_search(objective: Objective, spec: SearchSpec, past: list[Trial], seed: int, until_target: bool = True) -> Search:
    """The trials of a search told ``past``, asked one at a time until ``spec.n_trials`` are done or, with
    ``until_target``, the target is reached (noise-free). The noise depends only on the seed."""
    noise = random.Random(seed)
    done: Search = []
    trials: list[Trial] = []
    while len(done) < spec.n_trials:
        [point] = ask(spec, past, trials, 1)
        clean = objective.function(point)
        told = clean + noise.gauss(0.0, objective.noise) if objective.noise else clean
        done.append((point, told, clean))
        trials.append(Trial(point, told))
        if until_target and clean <= objective.target:
            break
    return done


def trials_to_target(objective: Objective, done: Search, budget: int) -> int:
    """How many trials a search took to reach the target (``budget`` if it never did)."""
    return next((number for number, (_, _, clean) in enumerate(done, 1) if clean <= objective.target), budget)


def record_previous_sweep(store: Store, objective: Objective, previous: int, seed: int, momentum: float = MOMENTUM) -> None:
    """``previous`` completed runs of a TPE sweep over the objective's old space, each config with ``momentum``."""
    spec = search_spec(objective.old_space, objective, previous, seed)
    for point, told, _ in run_search(objective, spec, [], seed, until_target=False):
        run_id = store.start_run({"task": objective.task, "config": {"momentum": momentum, **point}, "choices": {"task": objective.task}})
        store.finish_run(run_id, COMPLETED, {"result": told, "objective": told})


def warm_and_cold(
    objective: Objective, directory: str, seed: int, previous: int, budget: int, momentum: float = MOMENTUM
) -> tuple[Search, Search, History]:
    """The searches of one seed, warm-started from a previous sweep in a fresh store and cold; and the history used."""
    with open_store(f"sqlite:///{directory}/{objective.name}-{momentum}-{seed}.db") as store:
        record_previous_sweep(store, objective, previous, 1000 + seed, momentum)
        spec = search_spec(objective.new_space, objective, budget, seed)
        used = history(store, spec)
    return run_search(objective, spec, used.trials, seed), run_search(objective, spec, [], seed), used


def compare_warm_and_cold(objective: Objective, seeds: int, previous: int, budget: int) -> Figure:
    with tempfile.TemporaryDirectory() as directory:
        results = [warm_and_cold(objective, directory, seed, previous, budget) for seed in range(seeds)]
    warm = [trials_to_target(objective, warm_search, budget) for warm_search, _, _ in results]
    cold = [trials_to_target(objective, cold_search, budget) for _, cold_search, _ in results]
    return Figure(
        f"search_trials_to_target.{objective.name}",
        ours=statistics.mean(warm),
        baseline=statistics.mean(cold),
        unit="trials",
        note=f"mean over {seeds} seeds of new trials until f <= {objective.target:.6g} (noise-free); "
        f"ours warm-started from {previous} past runs, baseline cold TPE",
        details={"warm": warm, "cold": cold, "history_used": [len(used.trials) for _, _, used in results], "budget": budget},
    )


def median_ratio(figures: list[Figure]) -> Figure:
    ratios = {figure.benchmark.rsplit(".", 1)[1]: round(figure.ratio, 3) for figure in figures}
    return Figure(
        "search_trials_to_target.median_ratio",
        ours=statistics.median(ratios.values()),
        baseline=1.0,
        unit="ratio",
        note="median over the objectives of warm / cold trials to target (1.0 = no gain)",
        details={"ratios": ratios, "worst": max(ratios.values())},
    )


def control(seeds: int, previous: int, budget: int) -> Figure:
    """Warm start from a previous sweep whose runs differ in the non-searched ``momentum``: nothing is history."""
    with tempfile.TemporaryDirectory() as directory:
        results = [warm_and_cold(CONTROL, directory, seed, previous, budget, momentum=0.9) for seed in range(seeds)]
    return Figure(
        "search_trials_to_target.control_other_momentum",
        ours=statistics.mean(trials_to_target(CONTROL, warm_search, budget) for warm_search, _, _ in results),
        baseline=statistics.mean(trials_to_target(CONTROL, cold_search, budget) for _, cold_search, _ in results),
        unit="trials",
        note=f"{CONTROL.name}, previous sweep with momentum 0.9 against the sweep's {MOMENTUM}: no history, so the very trials of cold",
        details={
            "history_used": sum(len(used.trials) for _, _, used in results),
            "excluded": sum(sum(used.excluded.values()) for _, _, used in results),
            "same_trials": all(warm_search == cold_search for warm_search, cold_search, _ in results),
        },
    )


def ask_latency(past_runs: int, repeats: int) -> Figure:
    """Asks of a sweep one trial at a time, each trial completed before the next ask (a worker asks when one ends),
    each timed next to an ask of the baseline, so both see the same load."""
    objective = CONTROL
    spec = search_spec(objective.old_space, objective, repeats, 0)
    with tempfile.TemporaryDirectory() as directory, open_store(f"sqlite:///{Path(directory) / 'store.db'}") as store:
        record_random_runs(store, objective, past_runs, random.Random(0))
        trials: list[Trial] = []

        def ask_next() -> None:
            [point] = ask(spec, history(store, spec).trials, trials, 1)
            trials.append(Trial(point, objective.function(point)))

        first, _ = timed(ask_next)
        study = build_study(spec, history(store, spec).trials)

        def baseline_ask() -> None:
            study.tell(study.ask(spec.space), 0.0)

        pairs = [(timed(ask_next)[0], timed(baseline_ask)[0]) for _ in range(repeats)]
    asks, baseline = zip(*pairs)
    return Figure(
        f"search_ask_latency_{past_runs}_past_runs",
        ours=statistics.mean(asks) * 1000,
        baseline=statistics.mean(baseline) * 1000,
        unit="ms",
        note="ours: a worker's asks after its first (read the history from the store, ask); baseline: an in-memory study's asks",
        details={"first_ask_ms": round(first * 1000, 2), "asks_ms": [round(seconds * 1000, 2) for seconds in asks]},
    )


def history_read(past_runs: int) -> Figure:
    """A process's first read of a search's history with ``past_runs`` runs in the store, each with a config of about
    40 values (a model, an optimizer, data), half of them made with another ``momentum`` (so not compatible)."""
    objective = CONTROL
    narrow = search_spec(objective.old_space, objective, 1, 0)
    base = comparable_config(_wide_config(MOMENTUM), left_out_paths(narrow.space, narrow.groups, narrow.history_ignore))
    spec = dataclasses.replace(narrow, bases={base_key({}): base})
    with tempfile.TemporaryDirectory() as directory, open_store(f"sqlite:///{Path(directory) / 'store.db'}") as store:
        rng = random.Random(0)
        for start in range(0, past_runs, 1000):
            store.add_finished_runs([_wide_run(objective, rng, index % 2 == 0) for index in range(start, min(start + 1000, past_runs))])
        plain_read, runs = timed(lambda: store.list_runs(task=objective.task, status=COMPLETED, fields=GROUPED_RUN_FIELDS))
        ours, found = timed(lambda: history(store, spec))
        each_run, _ = timed(lambda: [judge_groups(group_by_config([run], grouping_paths(spec), searched_paths(spec)), spec) for run in runs])
    assert len(found.trials) == past_runs // 2 + past_runs % 2, found.describe()
    return Figure(
        f"search_history_first_read_{past_runs}_past_runs",
        ours=ours * 1000,
        baseline=plain_read * 1000,
        unit="ms",
        note="ours: a process's first history read (the store groups the runs by their config outside the searched paths, "
        "each distinct config is judged once); baseline: only reading the same runs' fields, judging none "
        "(details: reading them and judging each run apart, as before the store grouped them)",
        details={"history_used": len(found.trials), "excluded": found.excluded, "read_and_judge_each_run_ms": round((plain_read + each_run) * 1000, 1)},
    )


def _wide_config(momentum: float) -> dict[str, Any]:
    """A config of about 40 values, as a study's complete config has."""
    layers = {f"layer{index}": {"width": 64 * (index + 1), "activation": "relu", "dropout": 0.1, "norm": True} for index in range(6)}
    data = {"path": "/data/imdb", "batch_size": 32, "shuffle": True, "workers": 4, "max_length": 512}
    return {"model": {"name": "mlp", **layers}, "optimizer": {"name": "sgd", "momentum": momentum, "nesterov": False}, "data": data, "seed": 0}


def _wide_run(objective: Objective, rng: random.Random, compatible: bool) -> FinishedRun:
    point = {"x": rng.uniform(-5, 5), "y": rng.uniform(-5, 5)}
    value = objective.function(point)
    config = {**_wide_config(MOMENTUM if compatible else 0.9), **point}
    document = {"task": objective.task, "status": COMPLETED, "config": config, "choices": {"task": objective.task}, "result": value, "objective": value}
    return FinishedRun(document)


def record_random_runs(store: Store, objective: Objective, count: int, rng: random.Random) -> None:
    """``count`` completed runs of the (2-d) objective at random points of its old space (fast to record in bulk)."""
    for _ in range(count):
        point = {"x": rng.uniform(-5, 5), "y": rng.uniform(-5, 5)}
        run_id = store.start_run({"task": objective.task, "config": {"momentum": MOMENTUM, **point}, "choices": {"task": objective.task}})
        value = objective.function(point)
        store.finish_run(run_id, COMPLETED, {"result": value, "objective": value})


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=2, help="searches per arm and objective (full run: 10)")
    parser.add_argument("--previous", type=int, default=40, help="trials of the previous sweep (default 40)")
    parser.add_argument("--budget", type=int, default=80, help="give up after this many trials (default 80)")
    parser.add_argument(
        "--past", type=int, nargs="+", default=[200, 1000], help="past runs in the store for the latency figure (full run: 1000 10000)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="asks timed per latency figure, after the first")
    parser.add_argument(
        "--history-read", type=int, nargs="+", default=[10000], help="past runs in the store for the first-read figure (full run: 10000 100000)"
    )
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print_machine()
    per_objective = [compare_warm_and_cold(objective, args.seeds, args.previous, args.budget) for objective in OBJECTIVES]
    figures = [*per_objective, median_ratio(per_objective), control(args.seeds, args.previous, args.budget)]
    figures += [ask_latency(count, args.repeats) for count in args.past]
    figures += [history_read(count) for count in args.history_read]
    report(figures, args.output, vars(args) | {"output": str(args.output)})


if __name__ == "__main__":
    main()
