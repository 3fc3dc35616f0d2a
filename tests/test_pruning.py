"""A search's pruner stops bad trials early, locally and through the queue; a pruned run ends PRUNED, done and never retried."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import copy_study, hyperspace, run_app
from optuna.trial import TrialState
from test_ui import ui_server

from hyperspace_hydra import job_process
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.hpo.pruners import SweepCurves, check_pruner
from hyperspace_hydra.hpo.pruning import watch_for_pruning
from hyperspace_hydra.hpo.search import history
from hyperspace_hydra.hpo.space import parse_space
from hyperspace_hydra.hpo.tuner import SearchSpec, Trial, build_study
from hyperspace_hydra.observer import StoreObserver
from hyperspace_hydra.recorder import RunRecorder
from hyperspace_hydra.store import COMPLETED, MetricPoint, Store, open_store, utcnow
from hyperspace_hydra.store.base import PRUNED, Claim

CURVE_STUDY = Path(__file__).resolve().parent / "apps" / "curve_study"
STEPS = 12
SEARCH = ["--multirun", "hydra/sweeper=hyperspace", "lr=interval(0, 1)", "hydra.sweeper.seed=3", f"steps={STEPS}"]


@pytest.fixture
def curve_study(tmp_path: Path) -> Path:
    """A private copy of the curve study: ``loss`` falls towards a floor that grows with ``|lr - 0.3|``."""
    return copy_study(CURVE_STUDY, tmp_path / "curve_study")


def _store(study: Path) -> Store:
    return open_store(f"sqlite:///{study}/.hyperspace/store.db")


def _succeeded(finished: subprocess.CompletedProcess[str]) -> str:
    assert finished.returncode == 0, finished.stderr
    return finished.stdout + finished.stderr


def _runs_and_points(study: Path) -> list[tuple[dict, int]]:
    with _store(study) as store:
        return [(run, len(store.get_metrics(run["_id"]).get("loss", {}).get("steps", []))) for run in store.list_runs()]


@pytest.mark.parametrize(
    ("pruner", "options", "message"),
    [
        ("medain", {}, "unknown pruner 'medain': choose one of median, percentile, successive_halving, hyperband, threshold, none"),
        ("median", {"n_startup": 3}, "pruner 'median' has no option 'n_startup' (hydra.sweeper.pruner_options): it takes n_startup_trials,"),
        ("successive_halving", {"reduction_factor": 1}, "pruner 'successive_halving' refuses hydra.sweeper.pruner_options {'reduction_factor': 1}:"),
        ("threshold", {}, "pruner 'threshold' refuses hydra.sweeper.pruner_options {}: Either lower or upper must be specified."),
        ("none", {"n_startup_trials": 1}, "hydra.sweeper.pruner_options {'n_startup_trials': 1} given, but no pruner"),
    ],
)
def test_a_bad_pruner_or_option_is_one_clear_error(pruner: str, options: dict, message: str) -> None:
    with pytest.raises(HyperspaceError) as refused:
        check_pruner(pruner, options)
    assert str(refused.value).startswith(message)


def test_a_bad_pruner_stops_the_search_before_anything_runs(curve_study: Path) -> None:
    refused = run_app(curve_study, "curve.run", *SEARCH, "hydra.sweeper.pruner=percentile")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert refused.stderr.splitlines()[0].startswith("pruner 'percentile' refuses hydra.sweeper.pruner_options {}:"), refused.stderr
    assert not (curve_study / ".hyperspace" / "store.db").exists() or not _store(curve_study).list_runs()


def test_a_pruned_trial_is_told_to_optuna_as_pruned_with_its_last_value() -> None:
    space, fixed = parse_space(["x=interval(0, 1)"])
    study = build_study(SearchSpec(space, fixed, n_trials=3, seed=1), [Trial({"x": 0.5}, 0.1), Trial({"x": 0.9}, 7.5, pruned=True, step=2)])
    completed, pruned = study.get_trials()
    assert (completed.state, completed.value) == (TrialState.COMPLETE, 0.1)
    assert (pruned.state, pruned.value, pruned.intermediate_values) == (TrialState.PRUNED, None, {2: 7.5})


def test_the_curves_of_a_sweep_are_read_once_and_then_only_what_is_new(tmp_path: Path) -> None:
    space, fixed = parse_space(["lr=interval(0, 1)"])
    spec = SearchSpec(space, fixed, n_trials=10, metric="loss", pruner="median", pruner_options={"n_startup_trials": 2}, warm_start=False)
    with open_store(f"sqlite:///{tmp_path}/store.db") as store:
        sweep_id = store.enqueue("s", [], {"kind": "search", "spec": spec.to_json(), "state": "RUNNING"}, dedupe=False).sweep_id
        assert sweep_id is not None
        for _ in range(3):
            run_id = store.start_run({"sweep_id": sweep_id})
            store.add_metrics(run_id, [MetricPoint("loss", step, 1.0 / (step + 1), utcnow()) for step in range(5)])
            store.finish_run(run_id, COMPLETED, {"objective": 0.2})
        bad, good = store.start_run({"sweep_id": sweep_id}), store.start_run({"sweep_id": sweep_id})
        curves = SweepCurves(sweep_id, spec, catch_up_seconds=0)
        assert curves.should_prune(store, bad, 0, 5.0) is True
        assert curves.should_prune(store, good, 0, 0.5) is False
        assert curves.unfinished == {bad: 1, good: 1}, "the runs asking are told by their asks, not read back"
        store.finish_run(bad, PRUNED, {})
        assert curves.should_prune(store, good, 1, 0.4) is False
        states = {trial._trial_id: trial.state for trial in curves.study.get_trials()}
        assert bad not in curves.unfinished and states[curves.trial_ids[bad]] == TrialState.PRUNED


def test_a_local_search_with_median_prunes_the_bad_trials_early_and_keeps_its_budget(curve_study: Path) -> None:
    out = _succeeded(run_app(curve_study, "curve.run", *SEARCH, "hydra.sweeper.n_trials=14", "hydra.sweeper.n_jobs=1", "hydra.sweeper.pruner=median"))
    runs = _runs_and_points(curve_study)
    assert len(runs) == 14 and {run["status"] for run, _ in runs} == {COMPLETED, PRUNED}
    for run, points in runs:
        if run["status"] == PRUNED:
            stopped = run["info"]["pruned"]
            assert points == stopped["step"] + 1 < STEPS and stopped["metric"] == "loss" and run["fail_trace"] is None
            assert abs(run["config"]["lr"] - 0.3) > 0.1, "only clearly worse curves are pruned"
        else:
            assert points == STEPS
    pruned = sum(run["status"] == PRUNED for run, _ in runs)
    assert f"({pruned} more pruned)" in out
    shown = json.loads(hyperspace(curve_study, "sweep", "show", "1", "--json").stdout)
    assert shown["counts"] == {COMPLETED: 14 - pruned, PRUNED: pruned}
    assert f"runs:    {14 - pruned} completed, {pruned} pruned" in hyperspace(curve_study, "store", "check").stdout
    listed = hyperspace(curve_study, "runs", "ls", "--status", PRUNED, "--json").stdout.splitlines()
    assert len(listed) == pruned and all(json.loads(line)["status"] == PRUNED for line in listed)


def test_a_local_search_with_the_joblib_launcher_prunes_in_its_worker_processes(curve_study: Path) -> None:
    joblib = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"]
    out = _succeeded(run_app(curve_study, "curve.run", *SEARCH, *joblib, "hydra.sweeper.n_trials=14", "hydra.sweeper.pruner=median"))
    assert "Joblib.Parallel(n_jobs=2" in out, "the trials ran in joblib's processes"
    runs = _runs_and_points(curve_study)
    assert len(runs) == 14 and {run["status"] for run, _ in runs} == {COMPLETED, PRUNED}, "budget exact"
    assert all(points == run["info"]["pruned"]["step"] + 1 < STEPS for run, points in runs if run["status"] == PRUNED)
    assert f"({sum(run['status'] == PRUNED for run, _ in runs)} more pruned)" in out, "the sampler was told each as pruned"


def test_should_stop_lets_the_task_end_cleanly_and_the_run_is_still_pruned(curve_study: Path) -> None:
    _succeeded(run_app(curve_study, "curve.run", *SEARCH, "hydra.sweeper.n_trials=10", "hydra.sweeper.n_jobs=1", "hydra.sweeper.pruner=median", "stop=ask"))
    pruned = [run for run, _ in _runs_and_points(curve_study) if run["status"] == PRUNED]
    assert pruned and all(run["result"]["stopped_at"] == run["info"]["pruned"]["step"] for run in pruned)
    assert all(run["objective"] is None for run in pruned), "a pruned run's value is not a final score"


def test_a_search_without_a_pruner_never_prunes(curve_study: Path) -> None:
    _succeeded(run_app(curve_study, "curve.run", *SEARCH, "hydra.sweeper.n_trials=8", "hydra.sweeper.n_jobs=1", "stop=ask"))
    runs = _runs_and_points(curve_study)
    assert [(run["status"], points) for run, points in runs] == [(COMPLETED, STEPS)] * 8


def test_pruned_runs_of_a_past_search_are_history_with_their_last_value_and_their_curves_inform_the_pruner(curve_study: Path) -> None:
    _succeeded(run_app(curve_study, "curve.run", *SEARCH, "hydra.sweeper.n_trials=10", "hydra.sweeper.n_jobs=1", "hydra.sweeper.pruner=median"))
    _succeeded(run_app(curve_study, "curve.run", *SEARCH, "hydra.sweeper.n_trials=1", "hydra.sweeper.pruner=median", "hydra.sweeper.seed=4"))
    with _store(curve_study) as store:
        past = {run["_id"]: run for run in store.list_runs(sweep_id=1)}
        pruned = {run_id for run_id, run in past.items() if run["status"] == PRUNED}
        spec = SearchSpec.from_json(store.get_sweep(2)["spec"])
        told = history(store, spec, sweep_id=2).trials
        curves = SweepCurves(2, spec)
        curves.catch_up(store)
        other_metric = history(store, replace(spec, pruning_metric="accuracy"), sweep_id=2)
        series = {run_id: store.get_metrics(run_id)["loss"] for run_id in past}
    assert pruned and len(told) == len(past), "every run of the past search is history, the pruned ones too"
    assert sorted((trial.params["lr"], trial.value, trial.step) for trial in told if trial.pruned) == sorted(
        (past[run_id]["config"]["lr"], past[run_id]["info"]["pruned"]["value"], past[run_id]["info"]["pruned"]["step"]) for run_id in pruned
    )
    sampler_trials = build_study(spec, told).get_trials()
    assert sorted(trial.intermediate_values[trial.last_step] for trial in sampler_trials if trial.state == TrialState.PRUNED) == sorted(
        past[run_id]["info"]["pruned"]["value"] for run_id in pruned
    ), "the sampler is told each pruned past run as Optuna's pruned trial, with its last value at its step"
    assert f"{len(past)} past run(s) as history ({len(pruned)} pruned)" in hyperspace(curve_study, "sweep", "show", "2").stdout
    for run_id in past:
        trial = curves.storage.get_trial(curves.trial_ids[run_id])
        assert trial.state == (TrialState.PRUNED if run_id in pruned else TrialState.COMPLETE), "the pruner sees past runs as they ended"
        assert trial.intermediate_values == dict(zip(series[run_id]["steps"], series[run_id]["values"])), "with their whole series"
    assert other_metric.trials == [trial for trial in told if not trial.pruned]
    assert other_metric.excluded == {"pruned on loss, not accuracy": len(pruned)}, "a run pruned on another metric is not compared"


def test_queued_trials_are_pruned_by_real_workers_and_the_freed_worker_runs_the_next_trial(curve_study: Path) -> None:
    queued = [*SEARCH, "hydra/launcher=hyperspace", "hydra.sweeper.n_trials=14", "hydra.sweeper.pruner=median", "sleep=0.05"]
    _succeeded(run_app(curve_study, "curve.run", *queued))
    worked = hyperspace(curve_study, "worker", "--app", "curve.run", "--processes", "2", "--exit-when-empty")
    assert worked.returncode == 0, worked.stderr
    worker = worked.stdout + worked.stderr
    with _store(curve_study) as store:
        jobs, runs = store.list_jobs(sweep_id=1), {run["_id"]: run for run in store.list_runs()}
    assert len(jobs) == 14 and {job["state"] for job in jobs} == {COMPLETED}, "budget exact; a pruned trial's job is done"
    assert all(job["attempts"] == 0 and job["error"] is None for job in jobs), "never retried, never failed"
    pruned = [runs[job["run_id"]] for job in jobs if runs[job["run_id"]]["status"] == PRUNED]
    assert pruned and all(run["info"]["pruned"]["step"] < STEPS - 1 for run in pruned)
    first_pruned = min(pruned, key=lambda run: run["stop_time"])
    assert any(job["created_at"] >= first_pruned["stop_time"] for job in jobs), "the sweep tops up when a trial is pruned"
    assert "FAILED" not in worker and "LOST" not in worker
    for job in jobs:
        assert f"job {job['id']} {runs[job['run_id']]['status']}: " in worker, "the worker says which trials were pruned"
    assert f"stopped after {14 - len(pruned)} COMPLETED, {len(pruned)} PRUNED" in worker
    assert hyperspace(curve_study, "queue", "wait", "1").returncode == 0
    counted = f"{14 - len(pruned)} completed, {len(pruned)} pruned"
    assert f"trials:  {counted} of a budget of 14" in hyperspace(curve_study, "sweep", "show", "1").stdout
    [listed] = [json.loads(line) for line in hyperspace(curve_study, "sweep", "ls", "--json").stdout.splitlines()]
    assert (listed["counts"], listed["ended"], listed["total"]) == ({COMPLETED: 14 - len(pruned), PRUNED: len(pruned)}, 14, 14)
    assert f"jobs: {counted}" in hyperspace(curve_study, "sweep", "ls").stdout
    _ui_shows_the_pruned_trials(curve_study, 14 - len(pruned), len(pruned))


def _ui_shows_the_pruned_trials(study: Path, completed: int, pruned: int) -> None:
    """The UI's Sweeps, Sweep and Queue pages count a queued search's pruned trials apart; its Runs page lists them."""
    counted = f'<span class="status status-COMPLETED">{completed} completed</span> <span class="status status-PRUNED">{pruned} pruned</span>'
    with ui_server(study) as url:
        for path in ("/sweeps", "/sweeps/1", "/queue"):
            assert counted in _fetched(url + path), path
        assert f"<td>{completed} completed {pruned} pruned of a budget of 14" in _fetched(url + "/sweeps/1")
        assert '<progress max="14" value="14">' in _fetched(url + "/sweeps/1"), "pruned trials have ended"
        listed = json.loads(_fetched(url + "/runs.json?status=PRUNED"))
        assert listed["error"] is None and len(listed["rows"]) == pruned and {row["status"] for row in listed["rows"]} == {PRUNED}
        assert 'href="/runs?status=PRUNED"' in _fetched(url + "/runs"), "a facet of the Runs page"


def _fetched(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def test_a_job_process_whose_worker_handed_over_its_sweep_does_not_read_the_sweep_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_store(f"sqlite:///{tmp_path}/store.db") as store:
        sweep_id = store.enqueue("s", [], {"kind": "grid"}, dedupe=False).sweep_id
        assert sweep_id is not None
        recorder = RunRecorder(StoreObserver(store, {}, lambda result: result), "no", 60)
        recorder.observer.run_id = store.start_run({"sweep_id": sweep_id})
        claim = Claim(1, "token")
        monkeypatch.setattr(job_process, "_queued_job", job_process.QueuedJob(store.uri, claim, sweep_id, sweep={"kind": "grid", "spec": None}))
        monkeypatch.setattr(store, "get_sweep", lambda sweep_id: pytest.fail("the sweep was read again"))
        watch_for_pruning(recorder, sweep_id)
        monkeypatch.setattr(job_process, "_queued_job", job_process.QueuedJob(store.uri, claim, sweep_id))
        with pytest.raises(pytest.fail.Exception, match="read again"):
            watch_for_pruning(recorder, sweep_id)
