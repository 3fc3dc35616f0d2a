"""Runs tables: which columns vary, and their short names."""

from __future__ import annotations

import datetime as dt

import pytest

from hyperspace_hydra import HyperspaceError
from hyperspace_hydra.results import chosen_keys, duration_seconds, run_diff, run_rows, short_names, varying_keys


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


def test_chosen_columns_are_whole_keys_or_unique_suffixes() -> None:
    configs = [{"lr": 1, "model.lr": 2, "model.width": 3, "head.width": 4}]
    assert chosen_keys(configs, ["lr", "model.width", "model.lr"]) == ["lr", "model.width", "model.lr"], "a whole key wins over suffixes"
    with pytest.raises(HyperspaceError, match="cannot show config column 'width': it names model.width, head.width"):
        chosen_keys(configs, ["width"])
    assert chosen_keys([], ["anything"]) == [], "no runs: nothing to choose from"


def test_run_diff_lists_paths_that_differ_or_exist_in_one_run_only() -> None:
    first = {"_id": 1, "status": "COMPLETED", "config": {"a": {"x": 1, "y": [1]}, "hyperspace": {"store": "s1"}},
             "code_version": {"commit": "c1", "dirty": True, "diff": "d"}, "objective": 0.5}  # fmt: skip
    second = {"_id": 2, "status": "FAILED", "config": {"a": {"x": 2, "y": [1], "z": None}, "hyperspace": {"store": "s2"}},
              "code_version": {"commit": "c1", "dirty": True, "diff": "d2"}}  # fmt: skip
    difference = run_diff(first, second)
    assert difference["config"] == [
        {"path": "a.x", "values": [1, 2], "present": [True, True]},
        {"path": "a.z", "values": [None, None], "present": [False, True]},
    ], "the tool's own settings are left out"
    assert difference["code"] == {"commit": ["c1", "c1"], "dirty": [True, True], "has_diff": [True, True], "diffs_differ": True}
    clean = {**second, "code_version": {"commit": "c1", "dirty": False}}
    assert run_diff(clean, {**clean, "_id": 3})["code"]["has_diff"] == [False, False]
    assert difference["results"]["objective"] == [0.5, None] and difference["results"]["status"] == ["COMPLETED", "FAILED"]
