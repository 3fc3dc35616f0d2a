"""Optuna's pruners, asked in a trial's own process from the store's series.

A search with a pruner (``SearchSpec.pruner``) watches one metric, the pruning metric. Each time
a trial logs a value of it, the trial's process asks the pruner, which compares the trial's
curve with the curves of the sweep's other trials and of the search's history (the compatible
past runs, as :func:`~hyperspace_hydra.hpo.search.history` finds them): same metric, same task
and config but for the searched values, so steps mean the same thing.

:class:`SweepCurves` holds those curves as the trials of an in-memory Optuna study, kept per
sweep by the process. An ask catches it up from the store (at most once a second: other
trials' points arrive with their heartbeats): past runs once, then only the sweep's new runs
and the new points and ends of runs still running; finished runs are never read again. Pruners that keep state on the trials they judge (successive halving and
Hyperband mark the rungs a trial reached) are replayed over each other trial's points as they
come in, so that they see those trials as if they had judged them.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import TrialState

from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.hpo import NO_PRUNER
from hyperspace_hydra.hpo.search import history_runs
from hyperspace_hydra.hpo.tuner import SearchSpec, pruning_metric
from hyperspace_hydra.store import COMPLETED, RUNNING, Condition, Store
from hyperspace_hydra.store.base import PRUNED

PRUNERS: dict[str, type[optuna.pruners.BasePruner]] = {
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "threshold": optuna.pruners.ThresholdPruner,
}
"""The pruners offered (``hydra.sweeper.pruner``), Optuna's, their options as Optuna names them."""
_REPLAYED = ("successive_halving", "hyperband")
"""Pruners that mark the trials they judge, so other trials' points are replayed through them."""
_STATES = {COMPLETED: TrialState.COMPLETE, PRUNED: TrialState.PRUNED}
"""How a finished run is told to a pruner; any other final status is a failed trial, which pruners ignore."""
_IDS_PER_READ = 500
CATCH_UP_SECONDS = 1.0
"""How often an ask reads the store: other trials' points reach it only with their heartbeats (every 10 s by default)."""


def check_pruner(name: str, options: Mapping[str, Any]) -> None:
    """Refuse, in one line, an unknown pruner, an option it does not take or a value it refuses."""
    if name == NO_PRUNER:
        if options:
            raise HyperspaceError(f"hydra.sweeper.pruner_options {dict(options)} given, but no pruner: set hydra.sweeper.pruner to one of {', '.join(PRUNERS)}")
        return
    if name not in PRUNERS:
        raise HyperspaceError(f"unknown pruner {name!r}: choose one of {', '.join([*PRUNERS, NO_PRUNER])}")
    accepted = list(inspect.signature(PRUNERS[name]).parameters)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise HyperspaceError(f"pruner {name!r} has no option {unknown[0]!r} (hydra.sweeper.pruner_options): it takes {', '.join(accepted)}")
    try:
        make_pruner(name, options)
    except (TypeError, ValueError) as error:
        raise HyperspaceError(f"pruner {name!r} refuses hydra.sweeper.pruner_options {dict(options)}: {error}") from None


def make_pruner(name: str, options: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    """A new pruner ``name`` with ``options`` (checked by :func:`check_pruner`)."""
    return PRUNERS[name](**options)


class SweepCurves:
    """The pruning metric's curves of one sweep's trials and of its search's history, as an in-memory Optuna study."""

    def __init__(self, sweep_id: int, spec: SearchSpec, catch_up_seconds: float = CATCH_UP_SECONDS) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        metric = pruning_metric(spec)
        assert metric is not None, "the sweeper refuses a pruner without a metric"
        self.sweep_id, self.spec, self.metric = sweep_id, spec, metric
        self.pruner = make_pruner(spec.pruner, spec.pruner_options)
        self.storage = optuna.storages.InMemoryStorage()
        direction = optuna.study.StudyDirection.MAXIMIZE if spec.direction == "maximize" else optuna.study.StudyDirection.MINIMIZE
        self.study = optuna.create_study(storage=self.storage, direction=direction, study_name=f"hyperspace-sweep-{sweep_id}", pruner=self.pruner)
        self.study_id = self.storage.get_study_id_from_name(self.study.study_name)
        self.trial_ids: dict[int, int] = {}
        """Optuna's trial id of each run told, by run id."""
        self.unfinished: dict[int, int] = {}
        """The runs told that were still running, by run id: how many of their points were told."""
        self.newest_sweep_run = 0
        self.history_told = False
        self.catch_up_seconds = catch_up_seconds
        self._next_catch_up = 0.0

    def should_prune(self, store: Store, run_id: int, step: int, value: float) -> bool:
        """Whether run ``run_id`` (a trial of the sweep, running in this process) should stop, now that it reported ``value`` at ``step``."""
        if run_id not in self.trial_ids or time.monotonic() >= self._next_catch_up:
            self.catch_up(store, asking=run_id)
            self._next_catch_up = time.monotonic() + self.catch_up_seconds
        trial_id = self._trial_id(run_id)
        self.storage.set_trial_intermediate_value(trial_id, step, value)
        self.unfinished[run_id] = self.unfinished.get(run_id, 0) + 1
        return bool(self.pruner.prune(self.study, self.storage.get_trial(trial_id)))

    def catch_up(self, store: Store, asking: int | None = None) -> None:
        """Tell what the store holds that was not told yet: the history (once), the sweep's new runs, the new points
        and the ends of runs that were running. The ``asking`` run's own points are told by its asks, not read."""
        if not self.history_told:
            for first in range(0, len(past := history_runs(store, self.spec, self.sweep_id)), _IDS_PER_READ):
                self._tell(store, [{"_id": run_id, "status": status} for run_id, status in past[first : first + _IDS_PER_READ]])
            self.history_told = True
        new = store.list_runs(sweep_id=self.sweep_id, where=[Condition("id", ">", self.newest_sweep_run)], fields=["status"])
        self.newest_sweep_run = max([self.newest_sweep_run, *(run["_id"] for run in new)])
        waited = sorted(run_id for run_id in self.unfinished if run_id != asking)
        changed = store.list_runs(where=[Condition("id", "in", waited)], fields=["status"]) if waited else []
        self._tell(store, [run for run in [*new, *changed] if run["_id"] != asking])
        if asking is not None and asking not in self.trial_ids:
            self.unfinished[asking] = 0

    def _tell(self, store: Store, runs: list[dict[str, Any]]) -> None:
        series = store.get_metric_series([run["_id"] for run in runs], self.metric) if runs else {}
        for run in runs:
            self._tell_run(run["_id"], run["status"], series.get(run["_id"], ([], [])))

    def _tell_run(self, run_id: int, status: str, series: tuple[list[int], list[float]]) -> None:
        trial_id = self._trial_id(run_id)
        steps, values = series
        told = self.unfinished.pop(run_id, 0)
        for step, value in zip(steps[told:], values[told:]):
            self.storage.set_trial_intermediate_value(trial_id, step, value)
            if self.spec.pruner in _REPLAYED:
                self.pruner.prune(self.study, self.storage.get_trial(trial_id))
        if status == RUNNING:
            self.unfinished[run_id] = max(told, len(steps))
        else:
            self.storage.set_trial_state_values(trial_id, _STATES.get(status, TrialState.FAIL))

    def _trial_id(self, run_id: int) -> int:
        if run_id not in self.trial_ids:
            self.trial_ids[run_id] = self.storage.create_new_trial(self.study_id)
        return self.trial_ids[run_id]


_kept: dict[tuple[str, int], SweepCurves] = {}
"""The curves of each sweep this process asked a pruner for, by store URI and sweep."""


def sweep_curves(store: Store, sweep_id: int, spec: SearchSpec) -> SweepCurves:
    """The curves this process keeps for the sweep (made on first use; caught up at each ask)."""
    key = (store.uri, sweep_id)
    if key not in _kept:
        _kept[key] = SweepCurves(sweep_id, spec)
    return _kept[key]
