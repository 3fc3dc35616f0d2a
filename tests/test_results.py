"""Runs tables: which columns vary, and their short names."""

from __future__ import annotations

import datetime as dt

from hyperspace_hydra.results import duration_seconds, run_rows, short_names, varying_keys


def test_varying_keys_include_keys_absent_from_some_configs() -> None:
    configs = [{"a": 1, "b": 2, "c": [1]}, {"a": 1, "b": 3, "c": [1]}, {"a": 1, "b": 2, "c": [1], "d": 0}]
    assert varying_keys(configs) == ["b", "d"]


def test_short_names_are_the_shortest_unique_suffixes() -> None:
    names = short_names(["model.layer.width", "head.width", "schedule.lr", "model.depth", "lr"])
    assert names == {
        "model.layer.width": "layer.width",
        "head.width": "head.width",
        "schedule.lr": "schedule.lr",
        "model.depth": "depth",
        "lr": "lr",
    }


def test_run_rows_show_only_what_differs_and_prefer_the_objective() -> None:
    start = dt.datetime(2026, 1, 1)
    runs = [
        {"_id": 1, "status": "COMPLETED", "task": "t", "config": {"seed": 1, "agg": {"_target_": "m.Mean"}, "hyperspace": {"store": "a"}},
         "result": {"acc": 0.5}, "objective": 0.5, "start_time": start, "stop_time": start + dt.timedelta(seconds=2)},
        {"_id": 2, "status": "FAILED", "task": "t", "config": {"seed": 2, "agg": {"_target_": "m.Mean"}, "hyperspace": {"store": "b"}},
         "result": None, "objective": None, "start_time": start, "stop_time": None},
    ]  # fmt: skip
    columns, rows = run_rows(runs)
    assert columns == ["seed"]
    assert rows[0]["config"] == {"seed": 1} and rows[0]["result"] == 0.5 and rows[0]["duration"] == 2.0
    assert rows[1]["result"] is None


def test_duration_of_an_unfinished_run_counts_to_now() -> None:
    start = dt.datetime(2026, 1, 1)
    assert duration_seconds({"start_time": start}, now=start + dt.timedelta(seconds=5)) == 5.0
    assert duration_seconds({}) is None
