"""The filter and sort syntax of `runs ls --where/--sort` and `hyperspace_hydra.runs`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from hyperspace_hydra import HyperspaceError, filters
from hyperspace_hydra.filters import parse_condition, parse_sort, resolve_paths
from hyperspace_hydra.store import COMPLETED, Store, open_store
from hyperspace_hydra.store.base import Condition, NewJob

START = dt.datetime(2026, 11, 1, 12, 0, 0)


@pytest.mark.parametrize(
    ("text", "condition"),
    [
        ("aggregation.agg_layers=[50,10]", Condition("aggregation.agg_layers", "=", [50, 10])),
        ("classifier.C<1", Condition("classifier.C", "<", 1)),
        ("classifier.C>0.1", Condition("classifier.C", ">", 0.1)),
        ("classifier.C < 1e-3", Condition("classifier.C", "<", 0.001)),
        ("classifier.C<=1", Condition("classifier.C", "<=", 1)),
        ("model.n_trees >= 5", Condition("model.n_trees", ">=", 5)),
        ("classifier.name>=m", Condition("classifier.name", ">=", "m")),
        ("status!=FAILED", Condition("status", "!=", "FAILED")),
        ("choices.aggregation in [mean, branching]", Condition("choices.aggregation", "in", ["mean", "branching"])),
        ("classifier.hidden exists", Condition("classifier.hidden", "exists", True)),
        ("classifier.hidden missing", Condition("classifier.hidden", "exists", False)),
        ("result>0.9", Condition("objective", ">", 0.9)),
        ("result.accuracy>0.9", Condition("result.accuracy", ">", 0.9)),
        ("model.bias=true", Condition("model.bias", "=", True)),
        ("optimizer.nesterov=no", Condition("optimizer.nesterov", "=", "no")),
        ("name='1'", Condition("name", "=", "1")),
        ("name=in(mean)", Condition("name", "=", "in(mean)")),
    ],
)
def test_filters_read_as_conditions(text: str, condition: Condition) -> None:
    assert parse_condition(text) == condition


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("classifier.C", "no operator found"),
        ("classifier.C<", "no value"),
        ("classifier.C=null", "no value"),
        ("aggregation.agg_layers=[50,", "cannot read '[50,' as a YAML value"),
        ("classifier.C<[1]", "< compares with a number or a string"),
        ("aggregation in mean", "in takes a non-empty list"),
        ("classifier.hidden exists 3", "nothing may follow 'exists'"),
        ("a..b=1", "invalid path 'a..b'"),
        ("seed=2024-01-01", "compares with a string, a number"),
    ],
)
def test_bad_filters_are_one_line_naming_the_problem_and_the_forms(text: str, problem: str) -> None:
    with pytest.raises(HyperspaceError) as raised:
        parse_condition(text)
    message = str(raised.value)
    assert message.startswith(f"invalid filter {text!r}: ") and problem in message, message
    assert "PATH in [A, B]" in message and "\n" not in message


def test_sorts_name_the_objective_result_and_keep_the_direction() -> None:
    assert parse_sort("-result") == "-objective"
    assert parse_sort("-sweep") == "-sweep_id" and parse_condition("sweep=3") == Condition("sweep_id", "=", 3)
    assert parse_sort("classifier.C") == "classifier.C"
    assert parse_sort("-result.accuracy") == "-result.accuracy"
    with pytest.raises(HyperspaceError, match="invalid sort '-a..b'"):
        parse_sort("-a..b")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path}/store.db") as opened:
        yield opened


def _run(store: Store, config: dict[str, Any], seconds: float, task: str = "digits") -> int:
    run_id = store.start_run({"task": task, "config": config, "start_time": START})
    store.finish_run(run_id, COMPLETED, {"stop_time": START + dt.timedelta(seconds=seconds), "result": {"accuracy": seconds}})
    return run_id


@pytest.fixture
def optimizers(store: Store) -> list[int]:
    """Runs whose learning rate is at ``optimizer.lr`` (shown as ``lr``), an optimizer shown by its target's class."""
    return [
        _run(store, {"optimizer": {"_target_": "m.SGD", "lr": 0.1}, "schedule": {"epochs": 3}}, seconds=5),
        _run(store, {"optimizer": {"_target_": "m.Adam", "lr": 0.01}, "schedule": {"epochs": 3}}, seconds=1),
        _run(store, {"optimizer": {"_target_": "m.SGD", "lr": 0.001}, "schedule": {"epochs": 9}}, seconds=3),
    ]


def _ids(store: Store, where: Sequence[str] = (), sort: str | None = None, **selection: Any) -> list[int]:
    conditions, order = resolve_paths(store, [parse_condition(text) for text in where], parse_sort(sort) if sort else None, **selection)
    return [run["_id"] for run in store.list_runs(where=conditions, sort=order, **selection)]


def test_a_short_name_as_the_runs_table_shows_it_filters_and_sorts(store: Store, optimizers: list[int]) -> None:
    sgd, adam, slow_sgd = optimizers
    assert _ids(store, ["lr<0.05"]) == [adam, slow_sgd]
    assert _ids(store, sort="-lr") == [sgd, adam, slow_sgd]
    assert _ids(store, ["optimizer=m.SGD"], sort="epochs") == [sgd, slow_sgd], "a _target_ goes by its node's name"
    assert _ids(store, ["optimizer.lr>0.05", "schedule.epochs=3"]) == [sgd], "full paths as before"
    assert _ids(store, sort="-accuracy") == [sgd, slow_sgd, adam], "a result key by its short name too"


def test_a_target_filters_by_the_class_name_the_runs_table_shows(store: Store, optimizers: list[int]) -> None:
    sgd, adam, slow_sgd = optimizers
    assert _ids(store, ["optimizer=SGD"]) == [sgd, slow_sgd], "the table shows m.SGD as SGD"
    assert _ids(store, ["optimizer!=SGD"]) == [adam]
    assert _ids(store, ["optimizer in [Adam, m.SGD]"]) == optimizers
    assert _ids(store, ["optimizer=Nadam"]) == [], "a class no run has matches nothing, as before"
    other_sgd = _run(store, {"optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1}, "schedule": {"epochs": 3}}, seconds=2)
    assert _ids(store, ["optimizer=torch.optim.SGD"]) == [other_sgd]
    with pytest.raises(HyperspaceError, match=r"^the filter on 'optimizer': 'SGD' is the last part of m.SGD, torch.optim.SGD; give the whole path$"):
        _ids(store, ["optimizer=SGD"])


def test_sort_by_duration_and_the_table_columns(store: Store, optimizers: list[int]) -> None:
    sgd, adam, slow_sgd = optimizers
    assert _ids(store, sort="duration") == [adam, slow_sgd, sgd]
    assert _ids(store, sort="-duration") == [sgd, slow_sgd, adam]
    assert _ids(store, sort="-id") == [slow_sgd, adam, sgd]
    assert _ids(store, sort="status") == [sgd, adam, slow_sgd]


def test_an_ambiguous_short_name_lists_its_candidates(store: Store) -> None:
    _run(store, {"optimizer": {"lr": 0.1}, "warmup": {"lr": 0.5}}, seconds=1)
    with pytest.raises(HyperspaceError, match=r"'lr' is ambiguous: it names optimizer.lr, warmup.lr; use a longer dotted suffix"):
        _ids(store, ["lr<1"])


@pytest.mark.parametrize(("where", "sort", "message"), [
    (["lrr<0.05"], None, "no run has the filter path 'lrr': did you mean lr"),
    ([], "-optimiser", "no run has the sort path 'optimiser': did you mean optimizer"),
    ([], "bogus", "no run has the sort path 'bogus': nothing is close; run fields are id, status, task, sweep, result, seed, duration"),
    (["result.acuracy>1"], None, "no run has the filter path 'result.acuracy': did you mean result.accuracy"),
])  # fmt: skip
def test_an_unknown_path_is_an_error_naming_the_nearest(store: Store, optimizers: list[int], where: list[str], sort: str | None, message: str) -> None:
    with pytest.raises(HyperspaceError) as raised:
        _ids(store, where, sort)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value), raised.value


def test_exists_and_missing_still_answer_for_an_unknown_path(store: Store, optimizers: list[int]) -> None:
    assert _ids(store, ["momentum exists"]) == []
    assert _ids(store, ["momentum missing"]) == optimizers
    assert _ids(store, ["lr exists"]) == optimizers, "a short name is still resolved"


def test_a_path_only_older_runs_have_is_found_by_the_database(store: Store, optimizers: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    newer = [_run(store, {"model": {"depth": depth}}, seconds=1) for depth in (2, 4)]
    monkeypatch.setattr(filters, "KNOWN_PATHS_SAMPLE", len(newer))  # the sample holds only the newer runs
    assert _ids(store, ["optimizer.lr<0.05"]) == optimizers[1:]
    with pytest.raises(HyperspaceError, match="no run has the filter path 'lr'"):
        _ids(store, ["lr<0.05"])  # short names come from the sample alone: no database-wide search for suffixes
    assert _ids(store, ["depth>2"]) == [newer[1]]


def test_paths_are_taken_as_given_when_no_run_is_selected(store: Store, optimizers: list[int]) -> None:
    assert _ids(store, ["bogus<1"], sort="bogus", task="digits", status="FAILED") == []
    with open_store(store.uri.replace("store.db", "empty.db")) as empty:
        assert _ids(empty, ["bogus<1"], sort="-bogus") == []


def test_a_sweep_that_does_not_exist_or_a_task_no_run_has_is_an_error_not_an_empty_answer(store: Store, optimizers: list[int]) -> None:
    _run(store, {"optimizer": {"lr": 1}}, seconds=1, task="imdb")
    with pytest.raises(HyperspaceError, match="^no sweep with id 404 in store sqlite:///"):
        _ids(store, sweep_id=404)
    with pytest.raises(HyperspaceError, match="^no run of task 'digitz' in store sqlite:///.*: the newest runs' tasks are digits, imdb$"):
        _ids(store, ["lr<1"], task="digitz")
    assert _ids(store, task="imdb", status="FAILED") == [], "a task with runs, none of them selected: an empty answer"
    waiting = store.enqueue("probe.run", [NewJob(["x=1"], {"x": 1}, "hash-x")], {"kind": "grid"}).sweep_id
    assert _ids(store, sweep_id=waiting) == [], "a sweep whose jobs have not run yet: an empty answer"


def test_a_status_is_named_in_any_case_and_a_value_that_is_no_status_is_an_error(store: Store, optimizers: list[int]) -> None:
    failed = store.start_run({"task": "digits", "config": {"optimizer": {"lr": 1}}})
    store.finish_run(failed, "FAILED", {})
    assert _ids(store, ["status=completed"]) == optimizers and _ids(store, ["status!=Completed"]) == [failed]
    assert _ids(store, ["status in [failed, COMPLETED]"]) == [*optimizers, failed]
    with pytest.raises(HyperspaceError, match="^no run status is 'done': a run's status is one of RUNNING, COMPLETED, PRUNED, FAILED, INTERRUPTED, TIMEOUT, DIED, QUEUED$"):
        _ids(store, ["status=done"])
    with pytest.raises(HyperspaceError, match="^no run status is 1: "):
        _ids(store, ["status in [completed, 1]"])


def test_a_study_no_run_has_is_an_error_naming_the_studies(store: Store) -> None:
    recorded = store.start_run({"task": "digits", "experiment": {"name": "study.run"}, "config": {"x": 1}})
    store.start_run({"task": "digits", "experiment": {"name": "study.finetune"}, "config": {"x": 1}})
    assert _ids(store, ["study=study.run"]) == [recorded]
    with pytest.raises(HyperspaceError, match="^no run of study 'study.rnu' in store sqlite:///.*: the newest runs' studies are study.finetune, study.run$"):
        _ids(store, ["study=study.rnu"])
    assert _ids(store, ["study=study.run", "x=2"]) == [], "a study with runs, none of them matching: an empty answer"


@pytest.mark.parametrize(("where", "message"), [
    (["lr>zz"], "the filter on 'lr' compares with a string, but the runs hold a number there: it would match nothing"),
    (["optimizer.lr=fast"], "the filter on 'optimizer.lr' compares with a string, but the runs hold a number there"),
    (["epochs in [a, b]"], "the filter on 'epochs' compares with a string, but the runs hold a number there"),
    (["optimizer=1"], "the filter on 'optimizer' compares with a number, but the runs hold a string there"),
    (["result.accuracy>high"], "the filter on 'result.accuracy' compares with a string, but the runs hold a number there"),
    (["accuracy>high"], "the filter on 'accuracy' compares with a string, but the runs hold a number there"),
    (["status=1"], "no run status is 1: a run's status is one of RUNNING, COMPLETED"),
    (["id>x"], "the filter on 'id' compares with a string, but the runs hold a number there"),
])  # fmt: skip
def test_a_comparison_with_a_kind_of_value_no_run_holds_is_an_error(store: Store, optimizers: list[int], where: list[str], message: str) -> None:
    with pytest.raises(HyperspaceError) as raised:
        _ids(store, where)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value), raised.value


def test_a_kind_of_value_only_older_runs_hold_is_found_by_the_database(store: Store, optimizers: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    older = _run(store, {"optimizer": {"_target_": "m.SGD", "lr": "auto"}}, seconds=1)
    newer = [_run(store, {"optimizer": {"_target_": "m.SGD", "lr": 0.5}}, seconds=1) for _ in range(2)]
    monkeypatch.setattr(filters, "KNOWN_PATHS_SAMPLE", len(newer))
    assert _ids(store, ["lr=auto"]) == [older]
    assert _ids(store, ["lr!=auto"]) == [*optimizers, *newer], "!= matches whatever the kinds"
    assert _ids(store, ["lr in [auto, 0.5]"]) == [older, *newer], "one kind held is enough"
    with pytest.raises(HyperspaceError, match="compares with a boolean, but the runs hold a number there"):
        _ids(store, ["lr=true"])


def test_the_sweep_column_filters_and_sorts_by_the_runs_sweep(store: Store) -> None:
    first, second, loose = (store.start_run({"task": "t", "config": {"x": 1}, "sweep_id": sweep}) for sweep in (2, 1, None))
    assert _ids(store, ["sweep=2"]) == [first] and _ids(store, ["sweep missing"]) == [loose]
    assert _ids(store, sort="sweep") == [second, first, loose] and _ids(store, sort="-sweep") == [first, second, loose]
    with pytest.raises(HyperspaceError, match="the filter on 'sweep' compares with a string, but the runs hold a number there"):
        _ids(store, ["sweep>x"])
