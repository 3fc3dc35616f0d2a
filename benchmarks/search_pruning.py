"""Search with a pruner: what pruning saves over the queue, and what one ask of the pruner costs.

1. A synthetic learning-curve task (``benchmarks/curve_study``: ``loss`` decays over ``--steps``
   steps towards a floor set by two searched parameters, with Gaussian noise of sd 0.01 on every
   value, ``time.sleep`` of ``--sleep`` s per step) is searched through the queue with TPE,
   ``--trials`` trials, 2 at a time, drained by 2 ``hyperspace worker`` processes, with a pruner
   (``median`` and ``successive_halving``) and without one (the baseline), the same sampler seed
   each time. Figures, pruned / unpruned: the steps all trials spent (goal: at most 0.4), the
   wall clock from enqueueing to the last worker's exit, and the best final loss found at the
   same trial budget (goal: no worse than the unpruned search by more than the noise).
2. One ask of the pruner at ``--past`` trials' worth of series (``--curve-steps`` points each)
   in a SQLite store, as a trial asks it in its own process (``SweepCurves.should_prune``): a
   running trial reports each step while another running trial of the sweep adds a point
   between asks. ``details.first_ask_ms`` is the first ask (it reads every series once); the
   figure is the mean of the asks after it (goal: at most 2 ms), which read the store at most
   once a second; ``details.ask_ms_reading_the_store_every_ask`` the same with a read at every ask. Baseline: the same pruner asked of an in-memory Optuna study that already holds the
   same trials (a driver that stays open, reading nothing).

Small default sizes finish in about two minutes.
Full size: --trials 40 --steps 30 --past 1000 --curve-steps 50
"""

from __future__ import annotations

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
    parser.add_argument("--seed", type=int, default=5, help="the sampler's seed, the same for every search")
    parser.add_argument("--past", type=int, default=200, help="trials' worth of series for the ask latency (full size: 1000)")
    parser.add_argument("--curve-steps", type=int, default=50, help="points of each of those series (full size: 50)")
    args = parser.parse_args()
    print_machine()
    unpruned = search_over_queue("none", args)
    figures = []
    for pruner in PRUNERS:
        pruned = search_over_queue(pruner, args)
        figures += compare(pruner, pruned, unpruned)
    figures += [ask_latency(pruner, args.past, args.curve_steps) for pruner in PRUNERS]
    report(figures, args.output, vars(args) | {"output": str(args.output)})


def search_over_queue(pruner: str, args: Any) -> dict[str, Any]:
    """Enqueue the search, drain it with 2 workers; the steps spent, the wall clock, the best loss and the trials pruned."""
    with tempfile.TemporaryDirectory(prefix="hyperspace-bench-") as directory:
        study = Path(directory) / "curve_study"
        shutil.copytree(CURVE_STUDY, study, ignore=shutil.ignore_patterns(".hyperspace", "outputs", "multirun", "__pycache__"))
        overrides = [
            "--multirun", "hydra/sweeper=hyperspace", "hydra/launcher=hyperspace", f"hydra.sweeper.n_trials={args.trials}",
            f"hydra.sweeper.seed={args.seed}", f"hydra.sweeper.pruner={pruner}", "x=interval(0, 1)", "y=interval(0, 1)",
            f"steps={args.steps}", f"sleep={args.sleep}", f"noise={NOISE}",
        ]  # fmt: skip
        started = time.perf_counter()
        run([sys.executable, "-m", APP, *overrides], study)
        workers = [_start_worker(study, index) for index in range(2)]
        for worker in workers:
            if worker.wait(timeout=3600) != 0:
                raise RuntimeError(f"a worker failed: {(study / 'worker-0.log').read_text()}{(study / 'worker-1.log').read_text()}")
        seconds = time.perf_counter() - started
        with open_store(f"sqlite:///{study}/.hyperspace/store.db") as store:
            return {"seconds": seconds, **_outcome(store, args.trials)}


def _start_worker(study: Path, index: int) -> subprocess.Popen[str]:
    with open(study / f"worker-{index}.log", "w", encoding="utf-8") as log:
        return subprocess.Popen([str(HYPERSPACE), "worker", "--app", APP, "--exit-when-empty"], cwd=study, env=clean_env(), stdout=log, stderr=subprocess.STDOUT, text=True)


def _outcome(store: Store, trials: int) -> dict[str, Any]:
    runs = store.list_runs(fields=["status", "objective"])
    if len(runs) != trials or any(run["status"] not in (COMPLETED, PRUNED) for run in runs):
        raise RuntimeError(f"expected {trials} completed or pruned runs, got {[run['status'] for run in runs]}")
    steps = sum(len(store.get_metrics(run["_id"]).get("loss", {}).get("steps", [])) for run in runs)
    best = min(run["objective"] for run in runs if run["status"] == COMPLETED)
    return {"steps": steps, "best": best, "pruned": sum(run["status"] == PRUNED for run in runs)}


def compare(pruner: str, pruned: dict[str, Any], unpruned: dict[str, Any]) -> list[Figure]:
    details = {"pruned_trials": pruned["pruned"], "noise_sd": NOISE}
    return [
        Figure(f"search_pruning.steps.{pruner}", pruned["steps"], unpruned["steps"], "steps", "goal: ratio <= 0.4", details),
        Figure(f"search_pruning.wall_clock.{pruner}", pruned["seconds"], unpruned["seconds"], "s", "2 workers, enqueue to the last worker's exit", details),
        Figure(
            f"search_pruning.best_loss.{pruner}", pruned["best"], unpruned["best"], "loss",
            "equal trial budget; goal: ours - baseline <= the noise", {**details, "difference": pruned["best"] - unpruned["best"]},
        ),
    ]  # fmt: skip


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
