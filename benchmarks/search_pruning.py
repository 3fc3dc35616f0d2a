"""Search with a pruner: what pruning saves over the queue, and what one ask of the pruner costs.

1. A synthetic learning-curve task (``benchmarks/curve_study``: ``loss`` decays over ``--steps``
   steps towards a floor set by two searched parameters, with Gaussian noise of sd 0.01 on every
   value, ``time.sleep`` of ``--sleep`` s per step) is searched through the queue with TPE,
   ``--trials`` trials, 2 at a time, drained by ``--workers`` (2) ``hyperspace worker`` processes, with a pruner
   (``median`` and ``successive_halving``) and without one (the baseline), the same sampler seed
   each time; all of it once per sampler seed (``--seeds``). Figures, pruned / unpruned, summed
   over the seeds: the steps all trials spent (goal: at most 0.4) and the wall clock from
   enqueueing to the last worker's exit; and the best final loss found at the same trial budget,
   the mean over the seeds (goal: no worse than the unpruned search by more than the noise),
   with its sd, the mean and sd of the per-seed differences, and ``details.true_loss``: the
   noise-free final loss of each search's best trial (the best observed loss is the lowest of
   the completed trials' noisy finals, so a search that completes fewer trials draws fewer
   noises: its best observed loss is higher by chance alone, even when it found as good a point),
   and ``details.pruned_better_than_best``: per seed, the pruned trials whose noise-free final loss
   would have beaten that of the best completed trial (trials the pruner should not have stopped).
2. One ask of the pruner at ``--past`` trials' worth of series (``--curve-steps`` points each)
   in a SQLite store, as a trial asks it in its own process (``SweepCurves.should_prune``): a
   running trial reports each step while another running trial of the sweep adds a point
   between asks. ``details.first_ask_ms`` is the first ask (it reads every series once); the
   figure is the mean of the asks after it (goal: at most 2 ms), which read the store at most
   once a second; ``details.ask_ms_reading_the_store_every_ask`` the same with a read at every ask. Baseline: the same pruner asked of an in-memory Optuna study that already holds the
   same trials (a driver that stays open, reading nothing).

Small default sizes finish in about two minutes.
Full size: --trials 40 --steps 30 --past 1000 --curve-steps 50 --seeds 1000 2000 3000 4000 5000 6000 7000 8000
(seeds far apart: a seeded search's k-th ask seeds its sampler with seed + k, so close seeds share startup points)
"""

from __future__ import annotations

import importlib.util
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
from _common import BENCHMARKS, HYPERSPACE, Figure, argument_parser, clean_env, print_machine, report, run, timed

from hyperspace_hydra.hpo.pruners import SweepCurves, make_pruner
from hyperspace_hydra.hpo.space import parse_space
from hyperspace_hydra.hpo.tuner import SearchSpec
from hyperspace_hydra.store import COMPLETED, MetricPoint, Store, open_store, utcnow
from hyperspace_hydra.store.base import PRUNED

CURVE_STUDY = BENCHMARKS / "curve_study"
APP = "curve.run"
PRUNERS = ("median", "successive_halving")
NOISE = 0.01


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--trials", type=int, default=16, help="trials of each search (full size: 40)")
    parser.add_argument("--steps", type=int, default=20, help="steps of each trial's curve (full size: 30)")
    parser.add_argument("--sleep", type=float, default=0.02, help="seconds per step")
    parser.add_argument("--seeds", type=int, nargs="+", default=[5], help="the sampler's seeds: each searched with and without each pruner")
    parser.add_argument("--past", type=int, default=200, help="trials' worth of series for the ask latency (full size: 1000)")
    parser.add_argument("--curve-steps", type=int, default=50, help="points of each of those series (full size: 50)")
    parser.add_argument("--workers", type=int, default=2, help="workers draining each search (default 2, the figures' setting)")
    args = parser.parse_args()
    print_machine()
    searches = {pruner: [search_over_queue(pruner, seed, args) for seed in args.seeds] for pruner in ("none", *PRUNERS)}
    figures = [figure for pruner in PRUNERS for figure in compare(pruner, searches[pruner], searches["none"], args.workers)]
    figures += [ask_latency(pruner, args.past, args.curve_steps) for pruner in PRUNERS]
    report(figures, args.output, vars(args) | {"output": str(args.output)})


def search_over_queue(pruner: str, seed: int, args: Any) -> dict[str, Any]:
    """Enqueue the search, drain it with ``args.workers`` workers; the steps spent, the wall clock, the best loss (observed and
    noise-free) and the trials pruned."""
    with tempfile.TemporaryDirectory(prefix="hyperspace-bench-") as directory:
        study = Path(directory) / "curve_study"
        shutil.copytree(CURVE_STUDY, study, ignore=shutil.ignore_patterns(".hyperspace", "outputs", "multirun", "__pycache__"))
        overrides = [
            "--multirun", "hydra/sweeper=hyperspace", "hydra/launcher=hyperspace", f"hydra.sweeper.n_trials={args.trials}",
            f"hydra.sweeper.seed={seed}", f"hydra.sweeper.pruner={pruner}", "x=interval(0, 1)", "y=interval(0, 1)",
            f"steps={args.steps}", f"sleep={args.sleep}", f"noise={NOISE}",
        ]  # fmt: skip
        started = time.perf_counter()
        run([sys.executable, "-m", APP, *overrides], study)
        workers = [_start_worker(study, index) for index in range(args.workers)]
        for worker in workers:
            if worker.wait(timeout=3600) != 0:
                raise RuntimeError(f"a worker failed: {''.join((study / f'worker-{index}.log').read_text() for index in range(args.workers))}")
        seconds = time.perf_counter() - started
        with open_store(f"sqlite:///{study}/.hyperspace/store.db") as store:
            outcome = {"seconds": seconds, **_outcome(store, args.trials, args.steps)}
    print(f"# seed {seed}, pruner {pruner}: {outcome}", flush=True)
    return outcome


def _start_worker(study: Path, index: int) -> subprocess.Popen[str]:
    with open(study / f"worker-{index}.log", "w", encoding="utf-8") as log:
        return subprocess.Popen([str(HYPERSPACE), "worker", "--app", APP, "--exit-when-empty"], cwd=study, env=clean_env(), stdout=log, stderr=subprocess.STDOUT, text=True)


def _outcome(store: Store, trials: int, steps: int) -> dict[str, Any]:
    runs = store.list_runs(fields=["status", "objective", "config"])
    if len(runs) != trials or any(run["status"] not in (COMPLETED, PRUNED) for run in runs):
        raise RuntimeError(f"expected {trials} completed or pruned runs, got {[run['status'] for run in runs]}")
    spent = sum(len(store.get_metrics(run["_id"]).get("loss", {}).get("steps", [])) for run in runs)
    best = min((run for run in runs if run["status"] == COMPLETED), key=lambda run: run["objective"])
    final = {run["_id"]: _curve_task().floor(run["config"]["x"], run["config"]["y"]) + math.exp(-(steps - 1) / 4) for run in runs}
    pruned = [run["_id"] for run in runs if run["status"] == PRUNED]
    return {
        "steps": spent, "best": best["objective"], "true_loss": final[best["_id"]], "pruned": len(pruned),
        "pruned_better_than_best": sum(final[run_id] < final[best["_id"]] for run_id in pruned),
    }  # fmt: skip


def _curve_task() -> Any:
    """The curve study's task module (for its noise-free ``floor``), loaded from its file."""
    spec = importlib.util.spec_from_file_location("curve_task", CURVE_STUDY / "curve" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compare(pruner: str, pruned: list[dict[str, Any]], unpruned: list[dict[str, Any]], workers: int) -> list[Figure]:
    """Steps and wall clock summed over the seeds; the best loss as the mean over the seeds, with sds and per-seed values."""
    details = {
        "seeds": len(pruned), "pruned_trials": [search["pruned"] for search in pruned],
        "pruned_better_than_best": [search["pruned_better_than_best"] for search in pruned], "noise_sd": NOISE,
    }  # fmt: skip
    best = {**details, **_paired("best", pruned, unpruned), "true_loss": _paired("true_loss", pruned, unpruned)}
    return [
        Figure(f"search_pruning.steps.{pruner}", _sum("steps", pruned), _sum("steps", unpruned), "steps", "summed over the seeds; goal: ratio <= 0.4", details),
        Figure(f"search_pruning.wall_clock.{pruner}", _sum("seconds", pruned), _sum("seconds", unpruned), "s", f"summed over the seeds; {workers} workers, enqueue to the last worker's exit", details),
        Figure(
            f"search_pruning.best_loss.{pruner}", best["mean"], best["baseline_mean"], "loss",
            "mean over the seeds at an equal trial budget; goal: ours - baseline <= the noise", best,
        ),
    ]  # fmt: skip


def _sum(key: str, searches: list[dict[str, Any]]) -> float:
    return float(sum(search[key] for search in searches))


def _paired(key: str, ours: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sd of ``key`` over the seeds for both, and of the per-seed differences ours - baseline."""
    values, base = [search[key] for search in ours], [search[key] for search in baseline]
    differences = [value - other for value, other in zip(values, base)]
    return {
        "mean": statistics.mean(values), "sd": _sd(values), "baseline_mean": statistics.mean(base), "baseline_sd": _sd(base),
        "difference_mean": statistics.mean(differences), "difference_sd": _sd(differences), "per_seed": values, "baseline_per_seed": base,
    }  # fmt: skip


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def ask_latency(pruner: str, past: int, steps: int) -> Figure:
    """ms per ask of ``SweepCurves`` with ``past`` finished trials' series in the store, against Optuna asked in memory."""
    space, fixed = parse_space(["x=interval(0, 1)"])
    options = {"min_resource": 1} if pruner == "successive_halving" else {}
    spec = SearchSpec(space, fixed, n_trials=past + 2, metric="loss", pruner=pruner, pruner_options=options, warm_start=False)
    with tempfile.TemporaryDirectory(prefix="hyperspace-bench-") as directory, open_store(f"sqlite:///{directory}/store.db") as store:
        sweep_id = store.enqueue("bench", [], {"kind": "search", "spec": spec.to_json(), "state": "RUNNING"}, dedupe=False).sweep_id
        assert sweep_id is not None
        for index in range(past):
            run_id = store.start_run({"sweep_id": sweep_id})
            store.add_metrics(run_id, [MetricPoint("loss", step, _curve(index, step), utcnow()) for step in range(steps)])
            store.finish_run(run_id, COMPLETED, {"objective": _curve(index, steps - 1)})
        peer, asking = store.start_run({"sweep_id": sweep_id}), store.start_run({"sweep_id": sweep_id})
        asks = _asks(store, SweepCurves(sweep_id, spec), peer, asking, past, steps)
        reading = _asks(store, SweepCurves(sweep_id, spec, catch_up_seconds=0), peer, asking, past, steps)
    baseline = _in_memory_asks(pruner, options, past, steps)
    details = {"first_ask_ms": asks[0], "points_per_trial": steps, "ask_ms_reading_the_store_every_ask": statistics.mean(reading[1:])}
    return Figure(f"search_pruning.ask_ms.{pruner}_{past}_trials", statistics.mean(asks[1:]), statistics.mean(baseline[1:]), "ms", "goal: ours <= 2 ms", details)


def _asks(store: Store, curves: SweepCurves, peer: int, asking: int, past: int, steps: int) -> list[float]:
    """ms of each ask of a trial reporting ``steps`` points while another running trial adds one before each ask."""
    asks = []
    for step in range(steps):
        store.add_metrics(peer, [MetricPoint("loss", step, _curve(past, step), utcnow())])
        asks.append(timed(lambda step=step: curves.should_prune(store, asking, step, _curve(past + 1, step)))[0] * 1000)
    return asks


def _in_memory_asks(pruner: str, options: dict[str, Any], past: int, steps: int) -> list[float]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(pruner=make_pruner(pruner, options))
    for index in range(past):
        trial = study.ask()
        for step in range(steps):
            trial.report(_curve(index, step), step)
        study.tell(trial, _curve(index, steps - 1))
    trial = study.ask()
    asks = []
    for step in range(steps):
        trial.report(_curve(past + 1, step), step)
        asks.append(timed(trial.should_prune)[0] * 1000)
    return asks


def _curve(index: int, step: int) -> float:
    return (index % 17) / 17 + 1.0 / (step + 1)


if __name__ == "__main__":
    main()
