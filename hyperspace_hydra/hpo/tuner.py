"""Rebuild an Optuna study from the store and ask it for the next trials.

Nothing keeps a study in memory between asks: each time, the sampler is told the
history (compatible past runs) and this sweep's trials (completed, failed, or still
pending — pending ones as RUNNING, so that TPE's constant liar steers parallel
asks apart), then asked. So any process — the sweeper, any worker — can advance a
sweep, and nothing has to stay open.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.hpo.space import Space, contains, space_from_json, space_to_json

SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed, constant_liar=True),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "cmaes": lambda seed: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
    "gp": lambda seed: optuna.samplers.GPSampler(seed=seed),
    "qmc": lambda seed: optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False),
}
_SAMPLER_NEEDS = {"gp": ("torch", "PyTorch")}
"""Samplers whose Optuna implementation needs a package we do not install: module, name."""
_DISTINCT_ASK_ATTEMPTS = 5
_ENUMERATE_UP_TO = 100_000
"""A finite space up to this size is enumerated to find an untried point; a larger one is drawn from."""


def check_sampler(name: str) -> None:
    """Refuse, in one line, a sampler we do not offer or one whose extra package is not installed
    (Optuna's GP sampler imports PyTorch only once it has enough trials, mid-search)."""
    if name not in SAMPLERS:
        raise HyperspaceError(f"unknown sampler {name!r}: choose one of {', '.join(SAMPLERS)}")
    module, package = _SAMPLER_NEEDS.get(name, (None, None))
    if module is not None and importlib.util.find_spec(module) is None:
        raise HyperspaceError(f"sampler {name!r} needs {package}, which is not installed: pip install {module}, or choose another sampler")


@dataclass
class SearchSpec:
    """What a search sweep is: its space, fixed overrides, sampler, objective and budget (stored with the sweep).

    ``seed`` seeds the sampler (the sweeper draws a fresh one per sweep when none is
    given). ``groups`` are the searched parameters that are config groups, ``added``
    those that exist only as target defaults and so are written ``++name=value``.
    ``bases`` and ``history_ignore`` decide which past runs are compatible (see
    :mod:`hyperspace_hydra.hpo.history`).
    """

    space: Space
    fixed: list[str]
    n_trials: int
    n_jobs: int = 2
    sampler: str = "tpe"
    direction: str = "minimize"
    metric: str | None = None
    seed: int | None = None
    task: str | None = None
    warm_start: bool = True
    output_dir: str = "multirun"
    groups: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    history_ignore: list[str] = field(default_factory=list)
    bases: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain data for the store."""
        return {**asdict(self), "space": space_to_json(self.space)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SearchSpec:
        """The spec back from :meth:`to_json` (fields a spec of an older version has no more are dropped)."""
        known = {spec_field.name for spec_field in fields(cls)}
        return cls(**{**{key: value for key, value in data.items() if key in known}, "space": space_from_json(data["space"])})


@dataclass(frozen=True)
class Trial:
    """A point of the space and what came of it: a value, a failure (None, failed) or nothing yet (pending)."""

    params: dict[str, Any]
    value: float | None = None
    failed: bool = False

    @property
    def pending(self) -> bool:
        return self.value is None and not self.failed


def new_seed() -> int:
    """A fresh sampler seed, drawn from the operating system: the task's seeding of ``random`` cannot repeat it."""
    return random.SystemRandom().randrange(2**31)


def build_study(spec: SearchSpec, trials: Sequence[Trial]) -> optuna.Study:
    """An in-memory Optuna study told every trial that lies in the spec's space.

    The trials go straight into the study's storage, as :class:`_SharedTrial` objects built
    here: ``Study.add_trials`` would validate each twice and deep-copy it, which made
    rebuilding the study ~10x the cost of the ask itself at 1,000 past runs.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = spec.seed + len(trials) if spec.seed is not None else new_seed()
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, direction=spec.direction, sampler=SAMPLERS[spec.sampler](seed))
    study_id = storage.get_study_id_from_name(study.study_name)
    told_at = datetime.now()
    for trial in trials:
        if _in_space(spec.space, trial.params):
            storage.create_new_trial(study_id, template_trial=_frozen(spec.space, trial, told_at))
    return study


def ask(spec: SearchSpec, history: Sequence[Trial], trials: Sequence[Trial], count: int) -> list[dict[str, Any]]:
    """The next points to try, at most ``count``: the sampler learns from ``history`` (compatible past
    runs) and the sweep's own ``trials``, and no point repeats a trial of the sweep (completed,
    failed or pending) or another new point. Fewer than ``count`` (maybe none) only when a finite
    space has no untried point left."""
    study = build_study(spec, [*history, *trials])
    taken = {_point_key(trial.params) for trial in trials}
    rng = random.Random(new_seed() if spec.seed is None else repr((spec.seed, len(history), len(trials))))
    points = []
    for _ in range(count):
        point = _untried_point(study, spec.space, taken, rng)
        if point is None:
            break
        taken.add(_point_key(point))
        points.append(point)
    return points


def _untried_point(study: optuna.Study, space: Space, taken: set[tuple[Any, ...]], rng: random.Random) -> dict[str, Any] | None:
    """The sampler's next point if it is untried; after a few repeats (each told as failed, to steer
    the sampler away) a random untried point; None when the space has none left."""
    for _ in range(_DISTINCT_ASK_ATTEMPTS):
        trial = study.ask(space)
        if _point_key(trial.params) not in taken:
            return trial.params
        study.tell(trial, state=TrialState.FAIL)
    return _random_untried_point(space, taken, rng)


def _random_untried_point(space: Space, taken: set[tuple[Any, ...]], rng: random.Random) -> dict[str, Any] | None:
    size = space_size(space)
    if size is not None and len(taken) >= size:
        return None
    if size is None or size > _ENUMERATE_UP_TO:
        while True:  # an infinite or huge space: a random draw is untried at once, almost surely
            point = {name: _random_value(distribution, rng) for name, distribution in space.items()}
            if _point_key(point) not in taken:
                return point
    untried = [point for point in _every_point(space) if _point_key(point) not in taken]
    return rng.choice(untried) if untried else None


def space_size(space: Space) -> int | None:
    """How many distinct points the space has; None when it has a continuous parameter."""
    size = 1
    for distribution in space.values():
        values = _values(distribution)
        if values is None:
            return None
        size *= len(values)
    return size


def _values(distribution: BaseDistribution) -> Sequence[Any] | None:
    """Every value of a discrete distribution (None for a continuous one)."""
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices
    if isinstance(distribution, IntDistribution):
        return range(distribution.low, distribution.high + 1, distribution.step)
    if isinstance(distribution, FloatDistribution) and distribution.step is not None:
        steps = round((distribution.high - distribution.low) / distribution.step)
        return [distribution.low + index * distribution.step for index in range(steps + 1)]
    return None


def _random_value(distribution: BaseDistribution, rng: random.Random) -> Any:
    values = _values(distribution)
    if values is not None:
        return rng.choice(values)
    assert isinstance(distribution, FloatDistribution)
    if distribution.log:
        return math.exp(rng.uniform(math.log(distribution.low), math.log(distribution.high)))
    return rng.uniform(distribution.low, distribution.high)


def _every_point(space: Space) -> Iterator[dict[str, Any]]:
    names = list(space)
    for values in itertools.product(*(_values(space[name]) or () for name in names)):
        yield dict(zip(names, values))


def _point_key(params: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((name, repr(value)) for name, value in params.items()))


class _SharedTrial(FrozenTrial):
    """A finished or pending trial that Optuna's in-memory storage may hold as it is: its deep copy
    is a shallow one. Safe because that storage replaces, never mutates, what a trial holds (it
    copies a trial before changing it), and nothing else changes the trials we build."""

    def __deepcopy__(self, memo: dict[int, Any]) -> _SharedTrial:
        shallow = object.__new__(_SharedTrial)
        shallow.__dict__.update(self.__dict__)
        return shallow


def _frozen(space: Space, trial: Trial, told_at: datetime) -> FrozenTrial:
    """The trial as Optuna's: pending as RUNNING, failed or scored NaN as FAIL (Optuna refuses NaN), else COMPLETE."""
    if trial.pending:
        state, value, completed_at = TrialState.RUNNING, None, None
    elif trial.failed or math.isnan(trial.value):
        state, value, completed_at = TrialState.FAIL, None, told_at
    else:
        state, value, completed_at = TrialState.COMPLETE, trial.value, told_at
    distributions = {name: space[name] for name in trial.params}
    return _SharedTrial(
        number=-1, trial_id=-1, state=state, value=value, datetime_start=told_at, datetime_complete=completed_at,
        params=dict(trial.params), distributions=distributions, user_attrs={}, system_attrs={}, intermediate_values={},
    )  # fmt: skip


def _in_space(space: Space, params: Mapping[str, Any]) -> bool:
    return set(params) == set(space) and all(contains(space[name], value) for name, value in params.items())
