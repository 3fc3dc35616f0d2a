"""`hyperspace_hydra.runs` and `metrics`: DataFrames of what the store selected, and pandas only when called."""

from __future__ import annotations

import csv
import datetime as dt
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import hyperspace_hydra
from hyperspace_hydra import Condition, HyperspaceError, metrics, runs
from hyperspace_hydra.store import COMPLETED, FAILED, MetricPoint, Store, open_store

START = dt.datetime(2026, 11, 1, 12, 0, 0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path}/store.db") as opened:
        yield opened


def _run(store: Store, config: dict, objective: float | None, status: str = COMPLETED, task: str = "digits") -> int:
    run_id = store.start_run({"task": task, "config": config, "start_time": START})
    store.finish_run(run_id, status, {"objective": objective, "stop_time": START + dt.timedelta(seconds=2)})
    return run_id


@pytest.fixture
def three_runs(store: Store) -> list[int]:
    common = {"seed": 1, "hyperspace": {"store": "x"}}
    return [
        _run(store, {**common, "classifier": {"C": 0.1, "layers": [50, 10]}, "schedule": {"lr": 0.1}}, 0.8),
        _run(store, {**common, "classifier": {"C": 1.0, "layers": [50]}, "schedule": {"lr": 0.1}}, 0.9),
        _run(store, {**common, "classifier": {"C": 10.0, "layers": [50]}, "schedule": {"lr": 0.1}, "task": "imdb"}, None, FAILED),
    ]


def test_runs_has_the_columns_of_runs_ls(store: Store, three_runs: list[int]) -> None:
    frame = runs(store)
    assert list(frame.columns) == ["id", "status", "task", "sweep", "C", "layers", "config.task", "result", "duration"]
    assert frame["id"].tolist() == three_runs and frame["duration"].tolist() == [2.0, 2.0, 2.0]
    assert frame["layers"].tolist() == [[50, 10], [50], [50]] and frame["config.task"].tolist()[2] == "imdb"


def test_runs_and_runs_ls_give_the_same_table(store: Store, three_runs: list[int], tmp_path: Path) -> None:
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "hyperspace"), "runs", "ls", "--format", "csv", "--store", store.uri],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert next(csv.reader(io.StringIO(listed.stdout))) == list(runs(store).columns)


def test_all_columns_keeps_every_config_value_under_its_full_path(store: Store, three_runs: list[int]) -> None:
    frame = runs(store, all_columns=True)
    assert list(frame.columns)[4:-2] == ["seed", "classifier.C", "classifier.layers", "schedule.lr", "config.task"]


def test_runs_selects_with_strings_conditions_sort_and_limit(store: Store, three_runs: list[int]) -> None:
    first, second, failed = three_runs
    assert runs(store, where=["classifier.C<5", Condition("classifier.layers", "=", [50])])["id"].tolist() == [second]
    assert runs(store, where="classifier.layers=[50,10]")["id"].tolist() == [first]
    assert runs(store, sort="-result", limit=2)["id"].tolist() == [second, first]
    assert runs(store, status=FAILED)["id"].tolist() == [failed]
    assert runs(store, task="digits", status="DIED").empty
    with pytest.raises(HyperspaceError, match="^no run of task 'nope'"):
        runs(store, task="nope")
    with pytest.raises(HyperspaceError, match="^no sweep with id 404"):
        runs(store, sweep=404)
    with pytest.raises(HyperspaceError, match="invalid filter 'classifier.C'"):
        runs(store, where=["classifier.C"])


def test_runs_takes_short_names_and_refuses_paths_no_run_has(store: Store, three_runs: list[int]) -> None:
    first, second, failed = three_runs
    assert runs(store, where=["C>0.5"], sort="-C")["id"].tolist() == [failed, second]
    assert runs(store, sort="-duration", limit=1)["id"].tolist() == [first], "equal durations: id order"
    with pytest.raises(HyperspaceError, match="no run has the sort path 'c': did you mean C"):
        runs(store, sort="c")


def test_runs_finds_the_store_as_the_cli_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYPERSPACE_STORE", raising=False)
    with open_store(f"sqlite:///{tmp_path}/.hyperspace/store.db") as default, open_store(f"sqlite:///{tmp_path}/other.db") as other:
        _run(default, {"a": 1}, 0.5)
        _run(other, {"a": 1}, 0.5)
        _run(other, {"a": 2}, 0.5)
    assert len(runs()) == 1
    assert len(runs("sqlite:///other.db")) == 2, "relative to the current directory"
    monkeypatch.setenv("HYPERSPACE_STORE", f"sqlite:///{tmp_path}/other.db")
    assert len(runs()) == 2


def test_metrics_is_one_row_per_point(store: Store) -> None:
    run_id = _run(store, {}, 0.5)
    store.add_metrics(run_id, [MetricPoint("loss", 1, 0.5, START), MetricPoint("loss", 0, 1.0, START), MetricPoint("acc", 0, 0.7, START)])
    frame = metrics(run_id, store)
    assert list(frame.columns) == ["name", "step", "value", "timestamp"]
    assert frame.values.tolist() == [["acc", 0, 0.7, START], ["loss", 0, 1.0, START], ["loss", 1, 0.5, START]]
    with pytest.raises(HyperspaceError, match="no run with id 404"):
        metrics(404, store)


def test_without_pandas_the_package_imports_and_runs_says_what_to_install() -> None:
    code = f"""
import sys
class NoPandas:
    def find_spec(self, name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("no pandas here")
sys.meta_path.insert(0, NoPandas())
import hyperspace_hydra
try:
    hyperspace_hydra.runs("sqlite:///{Path(hyperspace_hydra.__file__).parent}/never-created.db")
except hyperspace_hydra.HyperspaceError as error:
    print(error)
"""
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "pandas is needed for runs(): pip install 'hyperspace-hydra[analysis]'"
