"""The example study end to end: real learning on bundled data, deterministic, piece-dependent."""

from __future__ import annotations

from pathlib import Path

from conftest import hyperspace, run_app, stored_runs


def test_one_experiment_learns_and_is_recorded(example_study: Path) -> None:
    finished = run_app(example_study, "study.run", "task=digits_300", "aggregation=branching")
    assert finished.returncode == 0, finished.stderr
    [run] = stored_runs(example_study)
    assert run["status"] == "COMPLETED" and run["task"] == "digits_300"
    assert run["objective"] == run["result"]["accuracy"] > 0.7, "well above chance (0.1)"
    assert run["config"]["aggregation"]["pooling"] == "mean", "dataclass default written into the stored config"
    assert run["config"]["schedule"]["batch_size"] == 32
    assert len(run["metrics"]["test_accuracy"]["values"]) == run["config"]["schedule"]["epochs"]


def test_a_grid_gives_repeatable_results_that_depend_on_the_pieces(example_study: Path) -> None:
    grid = ["--multirun", "task=digits_300", "aggregation=branching,mean", "seed=1,1"]
    finished = run_app(example_study, "study.run", *grid)
    assert finished.returncode == 0, finished.stderr
    runs = stored_runs(example_study)
    accuracy = {(run["choices"]["aggregation"], run["_id"]): run["objective"] for run in runs}
    branching = [value for (piece, _), value in accuracy.items() if piece == "branching"]
    mean = [value for (piece, _), value in accuracy.items() if piece == "mean"]
    assert len(branching) == len(mean) == 2
    assert branching[0] == branching[1] and mean[0] == mean[1], "same config and seed, same metric"
    assert branching[0] != mean[0]


def test_seeds_repeat_a_config(example_study: Path) -> None:
    finished = run_app(example_study, "study.run", "--multirun", "task=digits_300", "classifier=mlp", "seed=range(1,4)")
    assert finished.returncode == 0, finished.stderr
    runs = stored_runs(example_study)
    assert [run["seed"] for run in runs] == [1, 2, 3]
    assert len({run["objective"] for run in runs}) > 1, "the seed changes initialisation and batch order"
    table = hyperspace(example_study, "runs", "ls").stdout
    assert "seed" in table.splitlines()[0] and "classifier" not in table.splitlines()[0]


def _write_reviews(root: Path, count: int) -> None:
    words = {"pos": "wonderful brilliant moving superb", "neg": "awful boring dreadful tedious"}
    for label, sentiment in words.items():
        folder = root / "aclImdb" / "train" / label
        folder.mkdir(parents=True)
        for number in range(count):
            (folder / f"{number}_7.txt").write_text(f"Review {number}: the film was {sentiment} and the cast {sentiment.split()[number % 4]}.")


def test_imdb_1k_reads_the_aclimdb_layout(example_study: Path, tmp_path: Path) -> None:
    _write_reviews(tmp_path, 40)
    finished = run_app(example_study, "study.run", "task=imdb_1k", "aggregation=mean", f"task.data.path={tmp_path / 'aclImdb'}")
    assert finished.returncode == 0, finished.stderr
    [run] = stored_runs(example_study)
    assert run["task"] == "imdb_1k" and run["config"]["task"]["data"]["path"] == str(tmp_path / "aclImdb")
    assert run["result"]["accuracy"] >= 0.8, "separable fixture reviews are learnt"


def test_imdb_1k_without_data_fails_with_a_clear_message(example_study: Path, tmp_path: Path) -> None:
    finished = run_app(example_study, "study.run", "task=imdb_1k", f"task.data.path={tmp_path / 'nowhere'}")
    assert finished.returncode == 1
    assert "no reviews in" in finished.stderr
    [run] = stored_runs(example_study)
    assert run["status"] == "FAILED"


def test_an_unknown_task_fails_cleanly_and_writes_nothing(example_study: Path) -> None:
    finished = run_app(example_study, "study.run", "task=imdb_2k")
    assert finished.returncode == 1
    assert "Could not find 'task/imdb_2k'" in finished.stderr and "Traceback" not in finished.stderr
    assert not (example_study / ".hyperspace").exists()
