"""A search learns only from compatible past runs, searches any parameter of the complete config, and never repeats a point."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import fork_server
from conftest import HYPERSPACE, clean_env, hyperspace, run_app, run_worker

from hyperspace_hydra.store import open_store

LOCAL = ["--multirun", "hydra/sweeper=hyperspace", "hyperspace.direction=maximize"]


def _runs(study: Path) -> list[dict]:
    with open_store(f"sqlite:///{study}/.hyperspace/store.db") as store:
        return store.list_runs()


def _succeeded(finished) -> str:
    assert finished.returncode == 0, finished.stderr
    return finished.stdout + finished.stderr


def test_a_defaults_only_parameter_is_searched_without_plus_and_past_runs_count_however_they_set_it(probe_study: Path) -> None:
    """``model.dropout`` exists only as a default of ``probe.model.Model``: no YAML sets it."""
    for setting in ([], ["++model.dropout=0.3"], ["--multirun", "+model.dropout=0.2,0.9"]):  # 0.9: outside the space searched below
        _succeeded(run_app(probe_study, "probe.run", *setting))
    searched = _succeeded(run_app(probe_study, "probe.run", *LOCAL, "model.dropout=interval(0, 0.5)", "hydra.sweeper.n_trials=3"))
    assert "3 past run(s) as history, 1 excluded (1: model.dropout outside the space)" in searched
    trials = _runs(probe_study)[4:]
    assert len(trials) == 3 and all(0 <= run["config"]["model"]["dropout"] <= 0.5 for run in trials)
    assert all(any(item.startswith("++model.dropout=") for item in run["overrides"]) for run in trials)


def test_a_fixed_defaults_only_parameter_pins_the_history_to_its_value(probe_study: Path) -> None:
    """Fixed without ``+``, in the sweeper's params and on the command line (local and queued)."""
    _succeeded(run_app(probe_study, "probe.run", "+model.dropout=0.3", "score=2"))
    _succeeded(run_app(probe_study, "probe.run", "score=3"))  # dropout 0.1, its default
    fixed = "++hydra.sweeper.params={model.dropout:'0.3'}"
    searched = _succeeded(run_app(probe_study, "probe.run", *LOCAL, "score=interval(0, 10)", fixed, "hydra.sweeper.n_trials=2"))
    assert "1 past run(s) as history, 1 excluded (1: model.dropout differs)" in searched
    searched = _succeeded(run_app(probe_study, "probe.run", *LOCAL, "score=interval(0, 10)", "model.dropout=0.3", "hydra.sweeper.n_trials=1"))
    assert "3 past run(s) as history, 1 excluded (1: model.dropout differs)" in searched
    queued = [*LOCAL, "hydra/launcher=hyperspace", "score=interval(0, 10)", "model.dropout=0.3", "hydra.sweeper.n_trials=1"]
    _succeeded(run_app(probe_study, "probe.run", *queued))
    run_worker(probe_study)
    trials = _runs(probe_study)[2:]
    assert [run["config"]["model"]["dropout"] for run in trials] == [0.3] * 4 and trials[-1]["status"] == "COMPLETED"
    assert "++model.dropout=0.3" in trials[-1]["overrides"], "a trial sets it as the sweeper writes it"


def test_a_defaults_only_parameter_is_set_plainly_and_an_unknown_one_is_still_refused(probe_study: Path) -> None:
    _succeeded(run_app(probe_study, "probe.run", "model.dropout=0.2", "model.layer.activation=tanh"))
    [run] = _runs(probe_study)
    assert run["config"]["model"]["dropout"] == 0.2 and run["config"]["model"]["layer"]["activation"] == "tanh"
    assert run["overrides"] == ["model.dropout=0.2", "model.layer.activation=tanh"]
    refused = run_app(probe_study, "probe.run", "model.dropoutt=0.2")
    assert refused.returncode != 0 and "Could not override 'model.dropoutt'" in refused.stderr, refused.stderr


def test_a_run_that_differs_in_an_unsearched_parameter_is_excluded_and_counted_with_its_reason(probe_study: Path) -> None:
    _succeeded(run_app(probe_study, "probe.run", "--multirun", "message=hi,other,other", "+model.layer.activation=relu"))  # 3 runs, 1 process
    _succeeded(run_app(probe_study, "probe.run", "+model.layer.activation=tanh"))  # a dataclass default, nested
    _succeeded(run_app(probe_study, "probe.run", "seed=99"))  # another seed: a replicate, still history
    started = run_app(probe_study, "probe.run", *LOCAL, "score=interval(0, 10)", "hydra/launcher=hyperspace", "hydra.sweeper.n_trials=2")
    _succeeded(started)
    run_worker(probe_study)
    shown = json.loads(hyperspace(probe_study, "sweep", "show", "1", "--json").stdout)
    assert shown["history_used"] == 2
    assert shown["history_excluded"] == {"message differs": 2, "model.layer.activation differs": 1}
    text = hyperspace(probe_study, "sweep", "show", "1").stdout
    assert "2 past run(s) as history, 3 excluded (2: message differs; 1: model.layer.activation differs)" in text


def test_a_history_ignore_path_does_not_exclude_a_run(probe_study: Path) -> None:
    _succeeded(run_app(probe_study, "probe.run", "message=elsewhere"))
    searched = _succeeded(run_app(probe_study, "probe.run", *LOCAL, "score=interval(0, 10)", "hydra.sweeper.n_trials=1", "hydra.sweeper.history_ignore=[message]"))
    assert "1 past run(s) as history" in searched and "excluded" not in searched


def test_an_unknown_parameter_is_refused_before_anything_runs_naming_the_nearest_paths(probe_study: Path) -> None:
    for unknown in ("model.dropot=interval(0, 1)", "++hydra.sweeper.params={model.dropot:'0.2'}"):
        refused = run_app(probe_study, "probe.run", *LOCAL, "score=interval(0, 10)", unknown)
        assert refused.returncode != 0
        first = refused.stderr.splitlines()[0]
        assert "cannot search or fix 'model.dropot'" in first and "nearest: model.dropout" in first, refused.stderr
        assert "Traceback" not in refused.stderr
    assert not (probe_study / ".hyperspace" / "store.db").exists() or not _runs(probe_study)


def _points(study: Path) -> list[tuple]:
    return [(run["config"]["score"], run["choices"]["model"]) for run in _runs(study)]


def test_a_study_with_a_top_level_seed_gets_distinct_points_and_a_finite_space_ends_when_exhausted(probe_study: Path) -> None:
    """The probe study's primary config has ``seed: 7``, which seeds ``random`` before every job in this process."""
    space = ["score=range(0, 6)", "model=choice(small, large)", "hydra.sweeper.warm_start=false", "hydra.sweeper.n_jobs=2"]
    _succeeded(run_app(probe_study, "probe.run", *LOCAL, *space, "hydra.sweeper.n_trials=8"))
    first = _points(probe_study)
    assert len(first) == 8 and len(set(first)) == 8
    _succeeded(run_app(probe_study, "probe.run", *LOCAL, *space, "hydra.sweeper.n_trials=8"))
    assert _points(probe_study)[8:] != first, "a cold sweep draws a fresh sampler seed"
    exhausted = _succeeded(run_app(probe_study, "probe.run", *LOCAL, *space, "hydra.sweeper.n_trials=20"))
    assert "Every point of the space was tried (12 trials): the search ends early" in exhausted
    assert sorted(_points(probe_study)[16:]) == sorted((score, model) for score in range(6) for model in ("small", "large"))


def test_queued_trials_of_a_study_with_a_top_level_seed_are_distinct(probe_study: Path) -> None:
    space = ["score=range(0, 4)", "model=choice(small, large)", "hydra.sweeper.warm_start=false"]
    _succeeded(run_app(probe_study, "probe.run", *LOCAL, *space, "hydra/launcher=hyperspace", "hydra.sweeper.n_trials=8"))
    run_worker(probe_study)
    points = _points(probe_study)
    assert len(points) == 8 and len(set(points)) == 8


def test_a_local_search_is_a_sweep_whose_runs_the_tables_select(probe_study: Path) -> None:
    _succeeded(run_app(probe_study, "probe.run", "message=before"))
    searched = _succeeded(run_app(probe_study, "probe.run", *LOCAL, "score=interval(0, 10)", "hydra.sweeper.n_trials=3"))
    assert "Search sweep 1:" in searched
    [sweep] = [json.loads(line) for line in hyperspace(probe_study, "sweep", "ls", "--json").stdout.splitlines()]
    assert (sweep["id"], sweep["kind"], sweep["state"]) == (1, "search", "COMPLETED")
    assert (sweep["jobs"], sweep["of"], sweep["counts"], sweep["ended"], sweep["total"]) == ("none", "runs", {"COMPLETED": 3}, 3, 3), "progress from its runs"
    table = hyperspace(probe_study, "sweep", "ls").stdout
    assert "3/3" in table and "runs: 3 completed" in table, table
    listed = [json.loads(line) for line in hyperspace(probe_study, "runs", "ls", "--sweep", "1", "--json").stdout.splitlines()]
    assert [row["id"] for row in listed] == [2, 3, 4]
    shown = json.loads(hyperspace(probe_study, "sweep", "show", "1", "--json").stdout)
    assert shown["counts"] == {"COMPLETED": 3} and shown["state"] == "COMPLETED"
    assert shown["best"]["run"] in (2, 3, 4) and shown["best"]["value"] == max(row["result"] for row in listed)
    assert shown["history_used"] == 0 and shown["history_excluded"] == {"message differs": 1}, "its own runs are not its history"
    report = hyperspace(probe_study, "report", "--sweep", "1", "--output", str(probe_study / "report.html"))
    assert report.returncode == 0, report.stderr
    assert (probe_study / "report.html").exists()


def test_queue_wait_returns_when_a_search_is_cancelled_or_held_and_says_why(probe_study: Path) -> None:
    started = run_app(probe_study, "probe.run", *LOCAL, "score=interval(0, 10)", "hydra/launcher=hyperspace", "hydra.sweeper.n_trials=10")
    _succeeded(started)
    hyperspace(probe_study, "queue", "pause", "--sweep", "1")
    held = hyperspace(probe_study, "queue", "wait", "1")
    assert held.returncode == 1 and "not every job completed: 2 paused (hyperspace queue resume --sweep 1)" in held.stdout
    waiting = fork_server.popen([str(HYPERSPACE), "queue", "wait", "1", "--include-paused"], cwd=probe_study, env=clean_env(), stdout=subprocess.PIPE)
    time.sleep(2)
    assert waiting.poll() is None, "--include-paused waits for paused jobs"
    cancelled = hyperspace(probe_study, "queue", "cancel", "--sweep", "1")
    assert "2 job(s) cancelled; search sweep 1 gets no more trials" in cancelled.stdout
    assert waiting.wait(timeout=30) == 1
    waited = hyperspace(probe_study, "queue", "wait", "1")
    assert waited.returncode == 1 and "not every job completed: 2 cancelled" in waited.stdout
    assert run_worker(probe_study).count("COMPLETED") == 0, "a cancelled search gets no more trials"
    assert json.loads(hyperspace(probe_study, "sweep", "show", "1", "--json").stdout)["state"] == "CANCELLED"


def test_a_queued_search_ends_completed_when_its_last_trial_ends(probe_study: Path) -> None:
    _succeeded(run_app(probe_study, "probe.run", *LOCAL, "score=interval(0, 10)", "hydra/launcher=hyperspace", "hydra.sweeper.n_trials=3"))
    run_worker(probe_study)
    assert hyperspace(probe_study, "queue", "wait", "1").returncode == 0
    shown = json.loads(hyperspace(probe_study, "sweep", "show", "1", "--json").stdout)
    assert shown["state"] == "COMPLETED" and shown["counts"] == {"COMPLETED": 3} and shown["best"]["job"] in (1, 2, 3)
    assert [json.loads(line)["id"] for line in hyperspace(probe_study, "runs", "ls", "--sweep", "1", "--json").stdout.splitlines()] == [1, 2, 3]
