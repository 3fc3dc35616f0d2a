"""Tell an Optuna study a search's trials and ask it for the next ones.

Each ask is a function of the search's spec and its trials only: the sampler is told
the history (compatible past runs) and this sweep's trials (completed, failed, or still
pending — pending ones as RUNNING, so that TPE's constant liar steers parallel asks
apart), then asked. So any process — the sweeper, any worker — can advance a sweep,
and nothing has to stay open. A process keeps the study of its last few searches
between asks only to save telling the same trials again: it tells what changed since,
and a kept study asks exactly what a study built afresh from the same trials would.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.hpo.refine import REFINING_SAMPLERS, best_point, is_local_step, near
from hyperspace_hydra.hpo.space import Space, in_space, space_from_json, space_to_json


class _SpaceKnownTPESampler(optuna.samplers.TPESampler):
    """Optuna's TPE with constant liar (multivariate: our studies have one objective), told the search space.

    Every trial we tell a study holds exactly the space's parameters, so the space TPE would infer (the
    intersection of the completed trials' distributions) is the space itself once a trial has completed, and
    empty before. TPE computes it incrementally, per sampler; but each ask has a new sampler (seeded by the
    trial count), which computed it over every trial again: ~25 ms an ask at 10,000 trials.
    """

    def __init__(self, space: Space, seed: int) -> None:
        super().__init__(seed=seed, constant_liar=True)
        self._known_space = {name: distribution for name, distribution in sorted(space.items()) if not distribution.single()}

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return dict(self._known_space) if completed else {}


SAMPLERS: dict[str, Callable[[Space, int], optuna.samplers.BaseSampler]] = {
    "tpe": _SpaceKnownTPESampler,
    "random": lambda space, seed: optuna.samplers.RandomSampler(seed=seed),
    "cmaes": lambda space, seed: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
    "gp": lambda space, seed: optuna.samplers.GPSampler(seed=seed),
    "qmc": lambda space, seed: optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False),
}
"""The samplers offered, each made from the search space (used by TPE only) and a seed."""
_SAMPLER_NEEDS = {"gp": ("torch", "PyTorch")}
"""Samplers whose Optuna implementation needs a package we do not install: module, name."""
_DISTINCT_ASK_ATTEMPTS = 5
_ENUMERATE_UP_TO = 100_000
_STUDY_DIRECTIONS = {"minimize": StudyDirection.MINIMIZE, "maximize": StudyDirection.MAXIMIZE}
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
    :mod:`hyperspace_hydra.hpo.history`). ``pruner`` (with its ``pruner_options``) stops trials early
    by the series of ``pruning_metric`` (see :mod:`hyperspace_hydra.hpo.pruners`). ``study`` is the app whose runs
    may be history (runs another app recorded in the same store never are; None in a spec stored before it was kept).
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
    pruner: str = "none"
    pruner_options: dict[str, Any] = field(default_factory=dict)
    pruning_metric: str | None = None
    study: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain data for the store."""
        return {**asdict(self), "space": space_to_json(self.space)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SearchSpec:
        """The spec back from :meth:`to_json` (fields a spec of an older version has no more are dropped)."""
        known = {spec_field.name for spec_field in fields(cls)}
        return cls(**{**{key: value for key, value in data.items() if key in known}, "space": space_from_json(data["space"])})


def pruning_metric(spec: SearchSpec) -> str | None:
    """The metric a search's pruner watches: ``pruning_metric``, else the objective's name."""
    return spec.pruning_metric or spec.metric


@dataclass(frozen=True)
class Trial:
    """A point of the space and what came of it: a value, a failure (None, failed), nothing yet (pending),
    or pruned: stopped early at ``step``, where its pruning metric was ``value`` (None when unknown)."""

    params: dict[str, Any]
    value: float | None = None
    failed: bool = False
    pruned: bool = False
    step: int | None = None

    @property
    def pending(self) -> bool:
        return self.value is None and not self.failed and not self.pruned

    @property
    def score(self) -> float | None:
        """The trial's final value: None unless it completed (a pruned trial's value is not one)."""
        return None if self.pruned else self.value


def best_index(trials: Sequence[Trial], direction: str) -> int | None:
    """The index of the trial with the best final value (None when no trial has one)."""
    scored = [(trial.score, index) for index, trial in enumerate(trials) if trial.score is not None]
    if not scored:
        return None
    return (max if direction == "maximize" else min)(scored, key=lambda pair: pair[0])[1]


def new_seed() -> int:
    """A fresh sampler seed, drawn from the operating system: the task's seeding of ``random`` cannot repeat it."""
    return random.SystemRandom().randrange(2**31)


def build_study(spec: SearchSpec, trials: Sequence[Trial]) -> optuna.Study:
    """An in-memory Optuna study told every trial that lies in the spec's space."""
    return _ToldStudy(spec, trials).study


def ask(spec: SearchSpec, history: Sequence[Trial], trials: Sequence[Trial], count: int) -> list[dict[str, Any]]:
    """The next points to try, at most ``count``: the sampler learns from ``history`` (compatible past
    runs) and the sweep's own ``trials``, and no point repeats a trial of the sweep (completed,
    failed or pending) or another new point. Fewer than ``count`` (maybe none) only when a finite
    space has no untried point left."""
    taken = {_point_key(trial.params) for trial in trials}
    rng = random.Random(new_seed() if spec.seed is None else repr((spec.seed, len(history), len(trials))))
    study = _kept_study(spec, [*history, *trials])
    return study.ask(count, taken, rng, _local_steps(spec, history, trials))


def _local_steps(spec: SearchSpec, history: Sequence[Trial], trials: Sequence[Trial]) -> _LocalSteps | None:
    """Where a warm-started search's local steps go (see :mod:`hyperspace_hydra.hpo.refine`); None without history."""
    if not history or spec.sampler not in REFINING_SAMPLERS:
        return None
    scored = [(trial.params, trial.score) for trial in (*history, *trials) if trial.score is not None]
    best = best_point(scored, spec.space, spec.direction)
    return None if best is None else _LocalSteps(best, len(trials))


@dataclass(frozen=True)
class _LocalSteps:
    """The best trial so far, and the number the search's next trial will have."""

    best: Mapping[str, Any]
    next_number: int


class _ToldStudy:
    """An in-memory study and the trials it was told, in order (those outside the space are listed, not told).

    The trials go straight into the study's storage, as :class:`_SharedTrial` objects built
    here: ``Study.add_trials`` would validate each twice and deep-copy it, which made
    building the study ~10x the cost of the ask itself at 1,000 past runs.
    """

    def __init__(self, spec: SearchSpec, trials: Sequence[Trial]) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space = spec.space
        self.storage = optuna.storages.InMemoryStorage()
        self.study = optuna.create_study(storage=self.storage, direction=_STUDY_DIRECTIONS[spec.direction], sampler=_sampler(spec, len(trials)))
        self.study_id = self.storage.get_study_id_from_name(self.study.study_name)
        self.told: list[Trial] = []
        self.pending_ids: dict[int, int] = {}
        """Storage trial id of each pending trial told, by its index in ``told``."""
        self.in_study = 0
        """How many trials the study holds (those told that lie in the space)."""
        self.usable = True
        self._tell(trials)

    def _tell(self, trials: Sequence[Trial]) -> None:
        told_at = datetime.now()
        for trial in trials:
            if in_space(self.space, trial.params):
                trial_id = self.storage.create_new_trial(self.study_id, template_trial=_frozen(self.space, trial, told_at))
                self.in_study += 1
                if trial.pending:
                    self.pending_ids[len(self.told)] = trial_id
            self.told.append(trial)

    def catch_up(self, spec: SearchSpec, trials: Sequence[Trial]) -> bool:
        """Tell what changed since: the trials after those told, and told pending trials that have finished;
        and seed a new sampler as :func:`build_study` would for ``trials``. False, telling nothing, when
        ``trials`` is no such continuation (a trial left out, moved or otherwise changed, an ask not kept)."""
        known = len(self.told)
        if not self.usable or len(trials) < known or not self._same_but_pending(trials):
            return False
        finished = [index for index in self.pending_ids if not _told_alike(self.told[index], trials[index])]
        if not all(self._finishes(index, trials[index]) for index in finished):
            return False
        for index in finished:
            trial_id, trial = self.pending_ids.pop(index), trials[index]
            state, value = _state_and_value(trial)
            for step, intermediate in _intermediate_values(trial).items():
                self.storage.set_trial_intermediate_value(trial_id, step, intermediate)
            self.storage.set_trial_state_values(trial_id, state, None if value is None else [value])
            self.told[index] = trial
        self._tell(trials[known:])
        self.study.sampler = _sampler(spec, len(trials))
        return True

    def _same_but_pending(self, trials: Sequence[Trial]) -> bool:
        """Whether ``trials`` begin with those told, the pending ones aside (compared a stretch at a time:
        the history's trials are the very objects told, so a stretch compares at C speed)."""
        bounds = [-1, *sorted(self.pending_ids), len(self.told)]
        return all(_alike(self.told[start + 1 : stop], trials[start + 1 : stop]) for start, stop in zip(bounds, bounds[1:]))

    def _finishes(self, index: int, trial: Trial) -> bool:
        return index in self.pending_ids and not trial.pending and trial.params == self.told[index].params

    def ask(self, count: int, taken: set[tuple[Any, ...]], rng: random.Random, local: _LocalSteps | None = None) -> list[dict[str, Any]]:
        """At most ``count`` untried points (see :func:`ask`), each added to ``taken``; with ``local``, the trials
        that are local steps are points near its best one (when untried) and pending in the study from then on."""
        self.usable = False  # until the asks are noted: a study whose ask raised is not reused
        points = []
        for index in range(count):
            point = self._local_step(local, index, taken, rng) or _untried_point(self.study, self.space, taken, rng)
            if point is None:
                break
            taken.add(_point_key(point))
            points.append(point)
        self._note_asked()
        return points

    def _local_step(self, local: _LocalSteps | None, index: int, taken: set[tuple[Any, ...]], rng: random.Random) -> dict[str, Any] | None:
        """The ``index``-th point of this ask as a local step, told to the study as pending; None when it is no local step."""
        if local is None or not is_local_step(local.next_number + index):
            return None
        point = near(local.best, self.space, rng)
        if _point_key(point) in taken:
            return None
        self.storage.create_new_trial(self.study_id, template_trial=_frozen(self.space, Trial(point), datetime.now()))
        return point

    def _note_asked(self) -> None:
        """List the trials the study was just asked as pending, the way the sweep's next ask will list them.
        A study that was told anything else meanwhile (a repeated point told as failed) or holds a sampler's
        state (e.g. CMA-ES's) is no longer one :func:`build_study` would build: it stays unusable."""
        asked = self.storage.get_all_trials(self.study_id, deepcopy=False)[self.in_study :]
        sampler_state = self.storage.get_study_system_attrs(self.study_id) or not all(map(_attrs_only_repeat_params, asked))
        if sampler_state or any(trial.state != TrialState.RUNNING for trial in asked):
            return
        for trial in asked:
            self.pending_ids[len(self.told)] = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)
            self.told.append(Trial(dict(trial.params)))
        self.in_study += len(asked)
        self.usable = True


_TPE_RELATIVE_PARAMS = "tpe:relative_params:"


def _attrs_only_repeat_params(trial: FrozenTrial) -> bool:
    """Whether a trial's system attributes tell a sampler nothing beyond its params: multivariate TPE with
    constant liar writes a running trial's params there (JSON, in chunks) and reads them in place of the params."""
    chunks = [trial.system_attrs.get(f"{_TPE_RELATIVE_PARAMS}{index}") for index in range(len(trial.system_attrs))]
    texts = [chunk for chunk in chunks if isinstance(chunk, str)]
    return len(texts) == len(chunks) and (not texts or json.loads("".join(texts)) == trial.params)


_KEPT_SEARCHES = 2
"""Studies a process keeps, one per search it asked for lately: a worker serves few search sweeps at a time,
and a kept study holds ~1 KiB per trial (10 MiB at 10,000 trials of two parameters)."""
_kept: dict[str, _ToldStudy] = {}
"""The study of each search this process asked for lately, by the search's spec, the latest last."""


def _kept_study(spec: SearchSpec, trials: Sequence[Trial]) -> _ToldStudy:
    """A study told ``trials`` as :func:`build_study` tells them: the one kept for the search, caught up, when it can be."""
    key = json.dumps(spec.to_json(), sort_keys=True)
    kept = _kept.pop(key, None)
    if kept is None or not kept.catch_up(spec, trials):
        kept = _ToldStudy(spec, trials)
    _kept[key] = kept
    for stale in list(_kept)[:-_KEPT_SEARCHES]:
        del _kept[stale]
    return kept


def _sampler(spec: SearchSpec, told: int) -> optuna.samplers.BaseSampler:
    """The sampler of an ask after ``told`` trials: seeded by the spec's seed and that count, so a seeded search
    asks the same points in any process."""
    return SAMPLERS[spec.sampler](spec.space, spec.seed + told if spec.seed is not None else new_seed())


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
    """The trial as Optuna's (see :func:`_state_and_value`)."""
    state, value = _state_and_value(trial)
    distributions = {name: space[name] for name in trial.params}
    return _SharedTrial(
        number=-1, trial_id=-1, state=state, value=value, datetime_start=told_at, datetime_complete=None if trial.pending else told_at,
        params=dict(trial.params), distributions=distributions, user_attrs={}, system_attrs={}, intermediate_values=_intermediate_values(trial),
    )  # fmt: skip


def _intermediate_values(trial: Trial) -> dict[int, float]:
    """What Optuna knows of a trial's curve: a pruned trial's last reported value at its step (TPE ranks pruned
    trials by how far they got and where), nothing for others."""
    if trial.pruned and trial.step is not None and trial.value is not None and not math.isnan(trial.value):
        return {trial.step: trial.value}
    return {}


def _alike(first: Sequence[Trial], second: Sequence[Trial]) -> bool:
    return first == second or all(map(_told_alike, first, second))


def _told_alike(first: Trial, second: Trial) -> bool:
    """Whether Optuna is told the same of both (a NaN score is a failure, whatever the NaN)."""
    return first.params == second.params and _state_and_value(first) == _state_and_value(second) and _intermediate_values(first) == _intermediate_values(second)


def _state_and_value(trial: Trial) -> tuple[TrialState, float | None]:
    """Pending as RUNNING, pruned as PRUNED (its curve as intermediate values), failed or scored NaN as FAIL (Optuna
    refuses NaN), else COMPLETE with its value."""
    if trial.pending:
        return TrialState.RUNNING, None
    if trial.pruned:
        return TrialState.PRUNED, None
    if trial.failed or trial.value is None or math.isnan(trial.value):
        return TrialState.FAIL, None
    return TrialState.COMPLETE, trial.value

