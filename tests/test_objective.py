"""The objective of a run, read from its task's result, and why a result has no place for it."""

from __future__ import annotations

import math
from typing import Any

import pytest

from hyperspace_hydra.identity import missing_objective, objective_value


@pytest.mark.parametrize(
    ("result", "key", "value", "missing"),
    [
        ({"acc": 0.9, "loss": 0.1}, "acc", 0.9, None),
        ({"acc": None}, "acc", None, None),  # present with no number: the task's answer, told as failed
        ({"acc": math.nan}, "acc", math.nan, None),  # a diverged run
        ({"acc": True}, "acc", None, None),
        ({"loss": 0.1, "f1": 0.3}, "acc", None, "its result has no 'acc' (it has f1, loss)"),
        ({}, "acc", None, "its result has no 'acc' (it has no key)"),
        (0.25, "acc", None, "it returned a float (0.25), not a mapping with 'acc'"),
        (None, "acc", None, "it returned nothing, not a mapping with 'acc'"),
        (0.25, None, 0.25, None),
        (3, None, 3.0, None),
        ({"loss": 0.5}, None, 0.5, None),
        ({"loss": 0.1, "acc": 0.9}, None, None, "it returned acc, loss and no objective is named among them"),
        (None, None, None, "it returned nothing, not a number"),
        ("x" * 100, None, None, "it returned a str ('" + "x" * 39 + "), not a number"),
        (False, None, None, "it returned a bool (False), not a number"),
    ],
)
def test_the_objective_of_a_result_and_why_there_is_none(result: Any, key: str | None, value: float | None, missing: str | None) -> None:
    found = objective_value(result, key)
    assert found == value or (value is not None and math.isnan(value) and found is not None and math.isnan(found))
    assert missing_objective(result, key) == missing
