"""A warm-started search's local steps: near the best trial so far, inside the space, never a repeat, never without history."""

from __future__ import annotations

import math
import random

import pytest

from hyperspace_hydra.hpo import refine
from hyperspace_hydra.hpo.space import in_space, parse_space
from hyperspace_hydra.hpo.tuner import SearchSpec, Trial, ask

SPACE_OVERRIDES = [
    "x=interval(0, 10)",
    "lr=tag(log, interval(1e-5, 1.0))",
    "layers=range(1, 9)",
    "dropout=choice(0.0, 0.25, 0.5)",
    "optimizer=choice(sgd, adam)",
]


def test_a_point_near_the_best_stays_in_the_space_close_to_it_and_keeps_its_choices() -> None:
    space, _ = parse_space(SPACE_OVERRIDES)
    best = {"x": 9.9, "lr": 1e-3, "layers": 8, "dropout": 0.25, "optimizer": "adam"}
    points = [refine.near(best, space, random.Random(seed)) for seed in range(300)]
    assert all(in_space(space, point) for point in points), "clipped to the range, ints stay ints"
    assert all((point["dropout"], point["optimizer"]) == (0.25, "adam") for point in points), "choices are kept"
    assert max(abs(point["x"] - 9.9) for point in points) < 10 * refine.REFINE_SCALE * 10, "within 10 sd of the best"
    assert max(abs(math.log10(point["lr"] / 1e-3)) for point in points) < 10 * refine.REFINE_SCALE * 5, "log-scaled: within 10 sd in log space"
    inside = [point["x"] for point in points if point["x"] < 10]
    assert len(set(inside)) == len(inside) > 100 and len(inside) < len(points), "drawn, and clipped at the bound"
    assert refine.near(best, space, random.Random(7)) == refine.near(best, space, random.Random(7)), "a seeded search repeats its steps"


def _spec(sampler: str = "tpe") -> SearchSpec:
    space, fixed = parse_space(["x=interval(0, 10)", "y=interval(0, 10)"])
    return SearchSpec(space, fixed, n_trials=12, n_jobs=1, seed=3, sampler=sampler)


def _search(spec: SearchSpec, history: list[Trial], trials: int) -> list[Trial]:
    done: list[Trial] = []
    for _ in range(trials):
        [point] = ask(spec, history, done, 1)
        done.append(Trial(point, (point["x"] - 7.3) ** 2 + (point["y"] - 2.1) ** 2))
    return done


def test_a_warm_started_search_takes_every_second_trial_near_the_best_trial_so_far() -> None:
    history = [Trial({"x": x, "y": y}, (x - 7.3) ** 2 + (y - 2.1) ** 2) for x, y in [(1.0, 1.0), (7.0, 2.5), (4.0, 9.0), (9.0, 6.0)]]
    done = _search(_spec(), history, 8)
    for number, trial in enumerate(done):
        if refine.is_local_step(number):
            best = min([*history, *done[:number]], key=lambda known: known.value or math.inf)
            distance = max(abs(trial.params[name] - best.params[name]) for name in ("x", "y"))
            assert distance < 10 * refine.REFINE_SCALE * 10, (number, trial, best)
    assert len({(trial.params["x"], trial.params["y"]) for trial in done}) == len(done), "no repeated point"


@pytest.mark.parametrize(("sampler", "history"), [("tpe", []), ("random", [Trial({"x": 7.0, "y": 2.0}, 0.1)])])
def test_no_local_step_without_history_or_with_a_sampler_that_does_not_take_them(
    sampler: str, history: list[Trial], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*args: object) -> None:
        raise AssertionError("a local step was taken")

    monkeypatch.setattr("hyperspace_hydra.hpo.tuner.near", refused)
    assert len(_search(_spec(sampler), history, 6)) == 6
