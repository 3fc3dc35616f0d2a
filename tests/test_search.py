"""Hyper-parameter search: spaces, history from past runs, the local loop and the asynchronous mode."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import random
import re
import subprocess
import sys
import types
from collections.abc import Sequence
from pathlib import Path

import optuna
import pytest
from conftest import hyperspace, run_app, start_worker
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from hyperspace_hydra import HyperspaceError
from hyperspace_hydra.config import fill_defaults
from hyperspace_hydra.hpo import tuner
from hyperspace_hydra.hpo.history import base_key, comparable_config, grouping_paths, judge_groups, left_out_paths, searched_paths
from hyperspace_hydra.hpo.search import history, sweep_trials
from hyperspace_hydra.hpo.space import parse_space
from hyperspace_hydra.hpo.sweeper import SearchOptions, search_spec
from hyperspace_hydra.hpo.tuner import SAMPLERS, SearchSpec, Trial, ask, build_study
from hyperspace_hydra.store import COMPLETED, FAILED, Condition, NewJob, Store, open_store
from hyperspace_hydra.store.grouping import GROUPED_RUN_FIELDS, ConfigGroup, group_by_config


def test_every_space_form_parses_to_an_optuna_distribution() -> None:
    space, fixed = parse_space(
        [
            "lr=tag(log, interval(1e-4, 1e-1))",
            "dropout=interval(0, 0.5)",
            "width=int(interval(8, 64))",
            "depth=tag(log, int(interval(1, 32)))",
            "layers=range(1, 10, 2)",
            "aggregation=choice(branching, mean)",
            "seed=1,2,3",
            "task=digits",
        ]
    )
    assert space == {
        "lr": FloatDistribution(1e-4, 1e-1, log=True),
        "dropout": FloatDistribution(0.0, 0.5),
        "width": IntDistribution(8, 64),
        "depth": IntDistribution(1, 32, log=True),
        "layers": IntDistribution(1, 9, step=2),
        "aggregation": CategoricalDistribution(["branching", "mean"]),
        "seed": CategoricalDistribution([1, 2, 3]),
    }
    assert fixed == ["task=digits"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lr=interval(1, 0.1)", "needs low < high"),
        ("lr=tag(log, interval(0, 1))", r"low > 0 with tag\(log\)"),
        ("layers=range(5, 1)", "start < stop"),
        ("x=tag(log, choice(1, 2))", "a choice takes neither"),
        ("x=shuffle(choice(1, 2))", "a choice takes neither"),
        ("lr=interval(1", "bad search space"),
    ],
)
def test_bad_space_forms_are_one_clear_error(override: str, message: str) -> None:
    with pytest.raises(HyperspaceError, match=message) as raised:
        parse_space([override])
    assert "\n" not in str(raised.value)


def _run(task: str, config: dict, objective: float | None, status: str = "COMPLETED", choices: dict | None = None) -> dict:
    return {"status": status, "task": task, "config": config, "choices": choices or {}, "objective": objective, "result": objective}


def test_history_takes_compatible_runs_that_lie_in_the_space_and_says_why_others_are_not(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    module = types.ModuleType("evolving_model")

    def model(width: int = 8, dropout: float = 0.1, momentum: float = 0.0) -> None:
        """``dropout`` and ``momentum`` were added after some runs were made."""

    module.model = model
    monkeypatch.setitem(sys.modules, "evolving_model", module)
    space, fixed = parse_space(["model.dropout=interval(0, 0.5)", "aggregation=choice(mean, branching)"])
    target = {"_target_": "evolving_model.model"}
    left_out = left_out_paths(space, ["aggregation"], ["data.path"])
    bases = {
        base_key({"aggregation": option}): comparable_config(fill_defaults({"model": target, "seed": 1, "data": {"path": "/a"}, "aggregation": {"kind": option}}), left_out)
        for option in ("mean", "branching")
    }
    spec = SearchSpec(space, fixed, n_trials=5, task="t", groups=["aggregation"], history_ignore=["data.path"], bases=bases)

    def past(model: dict, objective: float | None = 0.5, option: str = "mean", **config: object) -> dict:
        whole = {"model": {**target, **model}, "seed": 1, "data": {"path": "/a"}, "aggregation": {"kind": option}, **config}
        return _run("t", whole, objective, choices={"aggregation": option})

    runs_and_verdicts = [
        (past({"dropout": 0.2}), Trial({"model.dropout": 0.2, "aggregation": "mean"}, 0.5)),
        (past({}, option="branching"), Trial({"model.dropout": 0.1, "aggregation": "branching"}, 0.5)),  # before dropout existed
        (past({"dropout": 0.2}, seed=2, data={"path": "/b"}), Trial({"model.dropout": 0.2, "aggregation": "mean"}, 0.5)),  # ignored paths
        (past({"dropout": 0.2}, data={}), Trial({"model.dropout": 0.2, "aggregation": "mean"}, 0.5)),  # a node with only ignored paths, empty
        (past({"dropout": 0.2, "momentum": 0.9}), "model.momentum differs"),  # neither searched nor overridden
        (past({"dropout": 0.2}, extra=1), "extra differs"),
        (past({"dropout": 0.9}), "model.dropout outside the space"),
        (past({"dropout": 0.2}, option="sum"), "aggregation outside the space"),
        (past({"dropout": 0.2}, objective=None), "no objective"),
    ]
    store = open_store(f"sqlite:///{tmp_path}/store.db")
    run_ids = [_record(store, run) for run, _ in runs_and_verdicts]
    in_database = store.group_runs([Condition("task", "=", "t")], grouping_paths(spec), searched_paths(spec))
    in_python = group_by_config(store.list_runs(fields=GROUPED_RUN_FIELDS), grouping_paths(spec), searched_paths(spec))
    assert len(in_database) < len(run_ids), "runs that differ only at left-out paths are judged as one group"
    for groups in (in_database, in_python):
        verdicts = judge_groups(groups, spec)
        for run_id, (run, expected) in zip(run_ids, runs_and_verdicts):
            _, verdict = verdicts[run_id]
            assert (verdict.trial if isinstance(expected, Trial) else verdict.reason) == expected, (run, verdict)


def _record(store: Store, run: dict) -> int:
    run_id = store.start_run({key: run[key] for key in ("task", "config", "choices")})
    store.finish_run(run_id, run["status"], {"objective": run["objective"], "result": run["result"]})
    return run_id


def test_history_is_the_runs_of_the_searching_study_only(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/store.db")
    space, fixed = parse_space(["x=interval(0, 1)"])
    spec = SearchSpec(space, fixed, n_trials=5, bases={base_key({}): {}}, study="study.finetune")
    for app, x in (("study.train", 0.1), ("study.finetune", 0.2), ("study.train", 0.3)):
        run_id = store.start_run({"experiment": {"name": app}, "config": {"x": x}})
        store.finish_run(run_id, COMPLETED, {"objective": x})
    assert history(store, spec).trials == [Trial({"x": 0.2}, 0.2)], "another app in the same store (same config tree) is another study"
    assert len(history(store, dataclasses.replace(spec, study=None)).trials) == 3, "a spec stored before studies were kept reads every run"


def test_history_reads_each_completed_run_once_and_finds_runs_that_end_late(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(f"sqlite:///{tmp_path}/store.db")
    space, fixed = parse_space(["x=interval(0, 1)"])
    spec = SearchSpec(space, fixed, n_trials=5, task="t", bases={base_key({}): {}})

    def finished(x: float, status: str = "COMPLETED", run_id: int | None = None, **fields: object) -> int:
        run_id = run_id or store.start_run({"task": "t", "config": {"x": x}, **fields})
        store.finish_run(run_id, status, {"objective": x})
        return run_id

    late = store.start_run({"task": "t", "config": {"x": 0.9}})  # starts first, ends after newer runs were read
    finished(0.1), finished(5.0), finished(0.2, "FAILED"), finished(0.4, sweep_id=7)
    read: list[int] = []
    queries: list[dict] = []
    listing, grouping = store.list_runs, store.group_runs

    def listed(**kwargs: object) -> list[dict]:
        queries.append(kwargs)
        return listing(**kwargs)

    def grouped(where: list[Condition], without: list[str], values: list[str]) -> list[ConfigGroup]:
        groups = grouping(where, without, values)
        queries.append({"where": [condition for condition in where if condition.path not in ("task", "status")]})
        read.extend(run.run_id for group in groups for run in group.runs)
        return groups

    monkeypatch.setattr(store, "list_runs", listed)
    monkeypatch.setattr(store, "group_runs", grouped)
    assert history(store, spec, sweep_id=7).trials == [Trial({"x": 0.1}, 0.1)]
    finished(0.9, run_id=late), finished(0.3)
    assert history(store, spec).trials == [Trial({"x": 0.9}, 0.9), Trial({"x": 0.1}, 0.1), Trial({"x": 0.4}, 0.4), Trial({"x": 0.3}, 0.3)]
    finished(0.5)
    queries.clear()
    assert [trial.value for trial in history(store, spec, sweep_id=7).trials] == [0.9, 0.1, 0.3, 0.5]
    assert len(queries) == 1 and Condition("id", ">", 6) in queries[0]["where"], "a run after those judged: only it is read"
    assert len(read) == len(set(read)) == 6, "each completed run read once"
    queries.clear()
    history(store, spec)
    assert queries == [], "nothing new: the count alone says so"


def test_a_sweeps_trials_are_read_with_one_query(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(f"sqlite:///{tmp_path}/store.db")
    space, fixed = parse_space(["x=interval(0, 1)"])
    spec = SearchSpec(space, fixed, n_trials=4, task="t")
    new_jobs = [NewJob([f"x={x}"], {"x": x}, f"hash-{x}") for x in (0.1, 0.2, 0.3, 0.4)]
    sweep_id = store.enqueue("s", new_jobs, {"kind": "search"}).sweep_id
    for status, objective in ((COMPLETED, 0.5), (FAILED, 0.6), (COMPLETED, None)):
        claimed = store.claim("s", "w", 60)
        run_id = store.start_run({"task": "t", "job_id": claimed.claim.job_id, "sweep_id": claimed.sweep_id})
        store.finish_run(run_id, status, {"objective": objective}, claim=claimed.claim)
    monkeypatch.setattr(store, "get_run", None)
    assert sweep_trials(store, store.list_jobs(sweep_id=sweep_id), spec) == [
        Trial({"x": 0.1}, 0.5), Trial({"x": 0.2}, failed=True), Trial({"x": 0.3}, failed=True), Trial({"x": 0.4})
    ]


def test_asked_points_differ_from_every_trial_of_the_sweep_and_each_other_until_the_space_is_exhausted() -> None:
    space, fixed = parse_space(["a=choice(x, y)", "b=choice(1, 2, 3)"])
    spec = SearchSpec(space, fixed, n_trials=6, seed=0)
    tried = [Trial({"a": "x", "b": 1}), Trial({"a": "y", "b": 2}, failed=True), Trial({"a": "x", "b": 3}, value=1.0)]
    past = [Trial({"a": "y", "b": 1}, value=0.0)]  # history is no trial of this sweep: it may be proposed
    points = ask(spec, past, tried, 5)
    assert len(points) == 3, "only three points of the space are untried"
    assert sorted((point["a"], point["b"]) for point in points) == [("x", 2), ("y", 1), ("y", 3)]
    assert ask(spec, past, [*tried, *(Trial(point, value=1.0) for point in points)], 1) == []


def _store(study: Path):
    return open_store(f"sqlite:///{study}/.hyperspace/store.db")


SEARCH = ["hydra/sweeper=hyperspace", "hyperspace.objective=score", "hyperspace.direction=maximize", "score=interval(0, 10)", "model=choice(small, large)"]


def test_the_local_loop_runs_the_budget_and_learns_from_earlier_runs(probe_study: Path) -> None:
    first = run_app(probe_study, "probe.run", "--multirun", *SEARCH, "hydra.sweeper.n_trials=5", "hydra.sweeper.n_jobs=2", "hydra.sweeper.seed=1")
    assert first.returncode == 0, first.stderr
    assert "0 past run(s) as history" in first.stdout and "Best of 5 trials" in first.stdout
    second = run_app(probe_study, "probe.run", "--multirun", *SEARCH, "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler=random")
    assert "5 past run(s) as history" in second.stdout
    with _store(probe_study) as store:
        runs = store.list_runs()
    assert len(runs) == 7 and {run["status"] for run in runs} == {"COMPLETED"}
    assert all(0 <= run["objective"] <= 10 for run in runs)


def test_the_queued_search_spends_its_budget_exactly_with_two_workers(probe_study: Path) -> None:
    started = run_app(probe_study, "probe.run", "--multirun", *SEARCH, "hydra/launcher=hyperspace", "hydra.sweeper.n_trials=8", "hydra.sweeper.n_jobs=2")
    assert started.returncode == 0, started.stderr
    assert "Search sweep 1: 8 trials of 2 parameter(s) with tpe, 2 enqueued now" in started.stdout
    workers = [start_worker(probe_study, "--exit-when-empty", log_name=f"w{n}.log") for n in range(2)]
    waited = hyperspace(probe_study, "queue", "wait", "1")
    assert waited.returncode == 0 and "8 completed" in waited.stdout
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0]
    with _store(probe_study) as store:
        jobs = store.list_jobs(sweep_id=1)
        runs = store.list_runs()
    assert [job["state"] for job in jobs] == ["COMPLETED"] * 8 and len(runs) == 8
    points = [tuple(job["overrides"][-2:]) for job in jobs]
    assert len(set(points)) == 8, "no point was tried twice"
    shown = json.loads(hyperspace(probe_study, "sweep", "show", "1", "--json", "--plot", str(probe_study / "sweep.html")).stdout)
    assert shown["counts"] == {"COMPLETED": 8} and shown["budget"] == 8
    assert shown["best"]["value"] == max(run["objective"] for run in runs)
    assert "plotly" in (probe_study / "sweep.html").read_text()[:5_000_000]


def test_a_local_search_stopped_by_sigterm_outside_a_run_ends_interrupted(tmp_path: Path) -> None:
    code = f"""
import os, signal, time
from hyperspace_hydra.hpo.space import parse_space
from hyperspace_hydra.hpo.sweeper import _local_search
from hyperspace_hydra.hpo.tuner import SearchSpec
from hyperspace_hydra.store import open_store

class TerminatedWhileLaunching:  # SIGTERM between trials: no run is recording, so no run's handler is set
    def launch(self, job_overrides, initial_job_idx):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(60)

space, fixed = parse_space(["x=interval(0, 1)"])
with open_store("sqlite:///{tmp_path}/store.db") as store:
    sweep_id = store.enqueue("s", [], {{"kind": "search", "state": "RUNNING"}}, dedupe=False).sweep_id
    _local_search(store, sweep_id, SearchSpec(space, fixed, n_trials=3, seed=1), TerminatedWhileLaunching())
"""
    stopped = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 128 + 15, stopped.stderr
    with open_store(f"sqlite:///{tmp_path}/store.db") as store:
        assert store.get_sweep(1)["state"] == "INTERRUPTED", "not RUNNING for ever"


def test_failed_trials_are_told_as_failed_and_the_search_goes_on(probe_study: Path) -> None:
    started = run_app(probe_study, "probe.run", "--multirun", *SEARCH, "fail=choice(true, false)", "hydra/launcher=hyperspace", "hydra.sweeper.n_trials=6", "hydra.sweeper.seed=4")
    assert started.returncode == 0, started.stderr
    worker = start_worker(probe_study, "--exit-when-empty")
    assert worker.wait(timeout=120) == 0
    with _store(probe_study) as store:
        states = [job["state"] for job in store.list_jobs(sweep_id=1)]
    assert len(states) == 6 and "FAILED" in states and set(states) <= {"FAILED", "COMPLETED"}
    shown = json.loads(hyperspace(probe_study, "sweep", "show", "1", "--json").stdout)
    assert shown["best"] is None or "fail=false" in shown["best"]["overrides"]


def _assert_refused_in_one_line(finished: subprocess.CompletedProcess[str], message: str) -> None:
    """Failed, with ``message`` as the first line of stderr (then only Hydra's HYDRA_FULL_ERROR hint), no traceback."""
    assert finished.returncode != 0
    assert message in finished.stderr.splitlines()[0] and "Traceback" not in finished.stderr, finished.stderr


def test_a_search_without_a_space_or_with_a_bad_sampler_is_refused(probe_study: Path) -> None:
    no_space = run_app(probe_study, "probe.run", "--multirun", "hydra/sweeper=hyperspace", "score=3")
    _assert_refused_in_one_line(no_space, "no search space: give at least one interval(...)")
    bad_sampler = run_app(probe_study, "probe.run", "--multirun", *SEARCH, "hydra.sweeper.sampler=annealing")
    _assert_refused_in_one_line(bad_sampler, "unknown sampler 'annealing': choose one of tpe, random")
    assert not (probe_study / ".hyperspace" / "store.db").exists() or not _store(probe_study).list_runs()


def test_a_budget_that_is_no_count_is_refused_before_a_sweep_is_made(probe_study: Path) -> None:
    refused = run_app(probe_study, "probe.run", "--multirun", *SEARCH, "hydra.sweeper.n_trials=0")
    _assert_refused_in_one_line(refused, "hydra.sweeper.n_trials must be more than 0 and at most 2147483647, not 0")
    assert not (probe_study / ".hyperspace" / "store.db").exists() or not _store(probe_study).list_sweeps(), "no sweep is left behind"


@pytest.mark.parametrize(
    ("numbers", "message"),
    [
        ({"n_trials": -3}, "hydra.sweeper.n_trials must be more than 0 and at most 2147483647, not -3"),
        ({"n_trials": 10**23}, "hydra.sweeper.n_trials must be more than 0 and at most 2147483647, not 100000000000000000000000"),
        ({"n_jobs": 0}, "hydra.sweeper.n_jobs must be more than 0"),
        ({"seed": -1}, "hydra.sweeper.seed must be 0 or more and at most 2147483647, not -1"),
        ({"seed": 2**32}, "hydra.sweeper.seed must be 0 or more and at most 2147483647, not 4294967296"),
    ],
)
def test_search_numbers_out_of_their_limits_are_one_clear_error(numbers: dict[str, int], message: str) -> None:
    options = SearchOptions(**numbers)  # type: ignore[arg-type]
    with pytest.raises(HyperspaceError, match=re.escape(message)):
        search_spec(options, OmegaConf.create({}), ["x=interval(0, 1)"], _not_composed, lambda name: False, "probe.run")


def _not_composed(overrides: Sequence[str]) -> DictConfig:
    raise AssertionError("the numbers are checked before anything is composed")


def test_a_local_search_whose_trials_return_no_objective_stops_after_its_first_trials_in_one_line(probe_study: Path) -> None:
    stopped = run_app(probe_study, "probe.run", "--multirun", *SEARCH, "result=float", "hydra.sweeper.n_trials=6", "hydra.sweeper.n_jobs=2")
    _assert_refused_in_one_line(
        stopped,
        "search sweep 1 stopped: trial #0 completed, but it returned a float (0.25), not a mapping with 'score'; set hydra.sweeper.metric, or hyperspace.objective",
    )
    assert "hyperspace: the run records no objective: it returned a float (0.25), not a mapping with 'score'" in stopped.stdout + stopped.stderr
    with _store(probe_study) as store:
        assert store.get_sweep(1)["state"] == "INTERRUPTED" and len(store.list_runs(sweep_id=1)) == 2, "the budget is not spent on trials that score nothing"
    shown = hyperspace(probe_study, "sweep", "show", "1")
    assert "stopped: run 1 completed, but it returned a float (0.25), not a mapping with 'score'" in shown.stdout, shown.stdout


def test_a_queued_search_whose_trials_lack_the_metric_stops_and_queue_wait_says_so(probe_study: Path) -> None:
    started = run_app(probe_study, "probe.run", "--multirun", *SEARCH, "hydra.sweeper.metric=accuracy", "hydra/launcher=hyperspace", "hydra.sweeper.n_trials=8")
    assert started.returncode == 0, started.stderr
    worker = start_worker(probe_study, "--exit-when-empty")
    assert worker.wait(timeout=120) == 0
    waited = hyperspace(probe_study, "queue", "wait", "1")
    assert waited.returncode == 1 and "the search was interrupted after 2 of 8 trials (hyperspace sweep show 1)" in waited.stdout, waited.stdout
    shown = json.loads(hyperspace(probe_study, "sweep", "show", "1", "--json").stdout)
    assert shown["state"] == "INTERRUPTED" and shown["counts"] == {"COMPLETED": 2}
    assert shown["objective_missing"].startswith("run 1 completed, but its result has no 'accuracy' (it has draw, numpy_draw, score)")


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes", "gp", "qmc"])
def test_every_offered_sampler_asks_points_inside_the_space(sampler: str) -> None:
    space, fixed = parse_space(["x=interval(-2, 2)", "n=int(interval(1, 8))", "c=choice(a, b)"])
    spec = SearchSpec(space, fixed, n_trials=12, sampler=sampler, seed=3)
    trials: list[Trial] = []
    for _ in range(6):
        [point] = ask(spec, [], trials, 1)
        assert -2 <= point["x"] <= 2 and 1 <= point["n"] <= 8 and point["c"] in ("a", "b")
        trials.append(Trial(point, value=point["x"] ** 2 + point["n"]))


def _study_told_through_optuna(spec: SearchSpec, trials: list[Trial], sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    """What build_study must match: a study told the same trials through Optuna's public Study.add_trials."""
    sampler = sampler or SAMPLERS[spec.sampler](spec.space, spec.seed + len(trials))
    study = optuna.create_study(direction=spec.direction, sampler=sampler)
    for trial in trials:
        distributions = {name: spec.space[name] for name in trial.params}
        if trial.pending:
            study.add_trial(create_trial(params=trial.params, distributions=distributions, state=TrialState.RUNNING))
        elif trial.failed or math.isnan(trial.value):
            study.add_trial(create_trial(params=trial.params, distributions=distributions, state=TrialState.FAIL))
        else:
            study.add_trial(create_trial(params=trial.params, distributions=distributions, value=trial.value))
    return study


_NO_TORCH = importlib.util.find_spec("torch") is None
_GP = pytest.param("gp", marks=pytest.mark.skipif(_NO_TORCH, reason="Optuna's GP sampler needs PyTorch, not installed here (its refusal is tested)"))


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes", _GP, "qmc"])
def test_the_rebuilt_study_asks_what_optuna_told_the_same_trials_asks(sampler: str) -> None:
    space, fixed = parse_space(["x=interval(-2, 2)", "n=int(interval(1, 8))", "c=choice(a, b)"])
    spec = SearchSpec(space, fixed, n_trials=80, sampler=sampler, seed=5)
    rng = random.Random(1)
    points = [{"x": rng.uniform(-2, 2), "n": rng.randint(1, 8), "c": rng.choice("ab")} for _ in range(60)]
    trials = [Trial(point, value=point["x"] ** 2 + point["n"]) for point in points[:50]]
    trials += [Trial(points[50], failed=True), Trial(points[51], value=math.nan), *(Trial(point) for point in points[52:])]
    ours, theirs = build_study(spec, trials), _study_told_through_optuna(spec, trials)
    assert [trial.state for trial in ours.trials] == [trial.state for trial in theirs.trials]
    for _ in range(3):
        asked, expected = ours.ask(space), theirs.ask(space)
        assert asked.params == expected.params
        ours.tell(asked, 1.0)
        theirs.tell(expected, 1.0)


def test_our_tpe_told_the_space_asks_what_optunas_tpe_inferring_it_asks() -> None:
    space, fixed = parse_space(["x=interval(-2, 2)", "n=int(interval(1, 8))", "c=choice(a, b)", "only=choice(one)"])
    spec = SearchSpec(space, fixed, n_trials=80, sampler="tpe", seed=5)
    rng = random.Random(2)
    points = [{"x": rng.uniform(-2, 2), "n": rng.randint(1, 8), "c": rng.choice("ab"), "only": "one"} for _ in range(40)]
    not_completed = [Trial(points[0], failed=True), *(Trial(point) for point in points[1:12])]
    for trials in ([], not_completed, [*not_completed, *(Trial(point, value=point["x"] ** 2 + point["n"]) for point in points[12:])]):
        optunas = optuna.samplers.TPESampler(seed=spec.seed + len(trials), constant_liar=True)
        ours, theirs = _study_told_through_optuna(spec, trials), _study_told_through_optuna(spec, trials, optunas)
        for _ in range(3):
            asked, expected = ours.ask(space), theirs.ask(space)
            assert asked.params == expected.params, len(trials)
            ours.tell(asked, 1.0)
            theirs.tell(expected, 1.0)


def _asked_afresh(spec: SearchSpec, history: list[Trial], trials: list[Trial], count: int) -> list[dict]:
    """What ask answers in a process that keeps no study: the trials told to a study built afresh."""
    kept = dict(tuner._kept)
    tuner._kept.clear()
    try:
        return ask(spec, history, trials, count)
    finally:
        tuner._kept.clear()
        tuner._kept.update(kept)


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes", _GP, "qmc"])
def test_a_study_kept_between_asks_asks_what_a_study_built_afresh_from_the_same_trials_asks(sampler: str) -> None:
    space, fixed = parse_space(["x=interval(-2, 2)", "lr=tag(log, interval(1e-5, 1.0))", "c=choice(a, b)"])
    spec = SearchSpec(space, fixed, n_trials=40, sampler=sampler, seed=7)
    rng = random.Random(3)

    def random_point() -> dict:
        return {"x": rng.uniform(-2, 2), "lr": 10 ** rng.uniform(-5, 0), "c": rng.choice("ab")}

    past = [Trial(random_point(), value=rng.random()) for _ in range(30)]
    trials: list[Trial] = []
    outcomes = [{"value": 0.5}, {"failed": True}, {"value": math.nan}, {"value": 0.1}]
    kept = []
    for round_ in range(8):
        expected = _asked_afresh(spec, past, trials, 2)
        assert ask(spec, past, trials, 2) == expected, round_
        kept.append(next(reversed(tuner._kept.values())))
        if round_ == 3:  # another worker enqueued its points first: ours were never trials of the sweep
            expected = [random_point(), random_point()]
        if round_ == 5:  # a run of another sweep ended: new history
            past.append(Trial(random_point(), value=0.3))
        trials += [Trial(point) for point in expected]
        oldest_pending = next(index for index, trial in enumerate(trials) if trial.pending)
        trials[oldest_pending] = Trial(trials[oldest_pending].params, **outcomes[round_ % len(outcomes)])
    if sampler in ("tpe", "random"):  # no sampler state in the study: it is kept unless the trials went another way
        assert [kept[index] is kept[index - 1] for index in range(1, 8)] == [True, True, True, False, True, False, True]


@pytest.mark.skipif(not _NO_TORCH, reason="PyTorch is installed here, so the GP sampler is offered")
def test_the_gp_sampler_without_pytorch_is_refused_in_one_line(probe_study: Path) -> None:
    refused = run_app(probe_study, "probe.run", "--multirun", *SEARCH, "hydra.sweeper.sampler=gp")
    _assert_refused_in_one_line(refused, "sampler 'gp' needs PyTorch, which is not installed: pip install torch")
    assert not (probe_study / ".hyperspace" / "store.db").exists() or not _store(probe_study).list_runs()
