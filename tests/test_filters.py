"""The filter and sort syntax of `runs ls --where/--sort` and `hyperspace_hydra.runs`."""

from __future__ import annotations

import pytest

from hyperspace_hydra import HyperspaceError
from hyperspace_hydra.filters import parse_condition, parse_sort
from hyperspace_hydra.store.base import Condition


@pytest.mark.parametrize(
    ("text", "condition"),
    [
        ("aggregation.agg_layers=[50,10]", Condition("aggregation.agg_layers", "=", [50, 10])),
        ("classifier.C<1", Condition("classifier.C", "<", 1)),
        ("classifier.C>0.1", Condition("classifier.C", ">", 0.1)),
        ("classifier.C < 1e-3", Condition("classifier.C", "<", 0.001)),
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
    assert parse_sort("classifier.C") == "classifier.C"
    assert parse_sort("-result.accuracy") == "-result.accuracy"
    with pytest.raises(HyperspaceError, match="invalid sort '-a..b'"):
        parse_sort("-a..b")
