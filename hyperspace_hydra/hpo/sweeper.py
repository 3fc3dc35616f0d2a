"""What ``hydra/sweeper=hyperspace`` does: a search, in a local loop or through the queue.

With any launcher but ours the sweeper runs a loop here: ask ``n_jobs`` points,
launch them, tell the results, until ``n_trials`` are done. With
``hydra/launcher=hyperspace`` it records a search sweep in the store, enqueues the
first ``n_jobs`` trials and returns; workers enqueue each next trial as trials end
(see :mod:`hyperspace_hydra.hpo.search`). Either way the sampler starts from every
compatible past run in the store (``warm_start``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from hyperspace_hydra.bounds import MAX_COUNT, MAX_SEED, require_not_negative, require_positive
from hyperspace_hydra.composer import Compose, SweepComposer, group_lookup, multirun_composer, resolve_hydra_from
from hyperspace_hydra.config import to_plain
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.hpo import NO_PRUNER, SEARCH
from hyperspace_hydra.hpo.base import search_bases
from hyperspace_hydra.hpo.pruners import check_pruner
from hyperspace_hydra.hpo.search import ObjectiveMissingError, advance, history, scored_trial, trial_job_overrides
from hyperspace_hydra.hpo.space import parse_space, trial_overrides
from hyperspace_hydra.hpo.tuner import SearchSpec, Trial, ask, best_index, check_sampler, new_seed
from hyperspace_hydra.identity import app_name, missing_objective, objective_value
from hyperspace_hydra.job_process import SWEEP_VARIABLE, store_uri_for
from hyperspace_hydra.queue import new_job
from hyperspace_hydra.recorder import sigterm_exits
from hyperspace_hydra.settings import QUEUE_LAUNCHER_TARGET, effective_settings, redact_credentials
from hyperspace_hydra.store import COMPLETED, INTERRUPTED, RUNNING, Store, open_store
from hyperspace_hydra.store.base import EXHAUSTED, PRUNED

log = logging.getLogger("hyperspace_hydra")


@dataclass
class SearchOptions:
    """The sweeper's options (``hydra.sweeper.*``)."""

    n_trials: int = 20
    n_jobs: int = 2
    sampler: str = "tpe"
    direction: str | None = None
    metric: str | None = None
    seed: int | None = None
    warm_start: bool = True
    params: dict[str, str] = field(default_factory=dict)
    history_ignore: list[str] = field(default_factory=list)
    pruner: str = "none"
    pruner_options: dict[str, Any] = field(default_factory=dict)
    pruning_metric: str | None = None


def search(options: SearchOptions, config: DictConfig, hydra_context: HydraContext, task_function: TaskFunction, arguments: Sequence[str]) -> Any:
    """Run or start the search that ``--multirun`` with ``arguments`` asks for; every parameter is checked before anything runs."""
    composer = multirun_composer(hydra_context.config_loader, config)
    study = app_name(config, task_function)
    spec = search_spec(options, config, arguments, composer.compose, group_lookup(hydra_context.config_loader), study)
    launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context, task_function=task_function)
    uri = store_uri_for(config)
    with open_store(uri) as store:
        sweep_id = store.enqueue(study, [], {"kind": SEARCH, "command": _command(), "spec": spec.to_json(), "state": RUNNING}, dedupe=False).sweep_id
        assert sweep_id is not None, "enqueueing no jobs creates the (empty) sweep"
        if OmegaConf.select(config, "hydra.launcher._target_") == QUEUE_LAUNCHER_TARGET:
            return _start_queued_search(store, sweep_id, spec, composer, study)
        return _local_search(store, sweep_id, spec, launcher)


def _command() -> str:
    return " ".join(redact_credentials(arg) for arg in sys.argv)


def search_spec(
    options: SearchOptions, config: DictConfig, arguments: Sequence[str], compose: Compose, is_group: Callable[[str], bool], study: str
) -> SearchSpec:
    """The search of app ``study`` that the options and command-line ``arguments`` describe; settings default to the
    study's ``hyperspace`` node.

    ``compose`` composes a job's full config (the sweep's composer), ``is_group`` tells config
    groups from config paths; with them the parameters are checked and the bases composed
    (:func:`~hyperspace_hydra.hpo.base.search_bases`).
    """
    _check_numbers(options)
    check_sampler(options.sampler)
    check_pruner(options.pruner, options.pruner_options)
    given = [*(f"{name}={value}" for name, value in options.params.items()), *arguments]
    space, fixed = parse_space(given)
    if not space:
        raise HyperspaceError("no search space: give at least one interval(...), range(...) or choice(...) override")
    found = search_bases(space, given, fixed, compose, is_group, options.history_ignore)
    settings = effective_settings(config)
    direction = options.direction or settings.direction.value
    if direction not in ("minimize", "maximize"):
        raise HyperspaceError(f"direction must be minimize or maximize, not {direction!r}")
    metric = options.metric or settings.objective
    if options.pruner != NO_PRUNER and not (options.pruning_metric or metric):
        raise HyperspaceError(f"pruner {options.pruner!r} needs the metric it watches: set hydra.sweeper.pruning_metric=NAME (a metric the task logs with log_scalar)")
    return SearchSpec(
        space=space,
        fixed=found.fixed,
        n_trials=options.n_trials,
        n_jobs=options.n_jobs,
        sampler=options.sampler,
        direction=direction,
        metric=metric,
        seed=options.seed if options.seed is not None else new_seed(),
        task=_task(fixed, config),
        warm_start=options.warm_start,
        output_dir=str(config.hydra.sweep.dir),
        groups=found.groups,
        added=found.added,
        history_ignore=list(options.history_ignore),
        bases=found.bases,
        pruner=options.pruner,
        pruner_options=dict(options.pruner_options),
        pruning_metric=options.pruning_metric,
        study=study,
    )


def _check_numbers(options: SearchOptions) -> None:
    """Refuse a budget or a number of trials at a time that is not a count (0, negative, absurdly large), and a seed
    that Optuna's samplers do not take, before the sweep is created."""
    require_positive(("hydra.sweeper.n_trials", options.n_trials), ("hydra.sweeper.n_jobs", options.n_jobs), most=MAX_COUNT)
    if options.seed is not None:
        require_not_negative("hydra.sweeper.seed", options.seed, most=MAX_SEED)


def _task(fixed: Sequence[str], config: DictConfig) -> str | None:
    for override in fixed:
        key, _, value = override.partition("=")
        if key.lstrip("+~") == "task":
            return value
    return OmegaConf.select(config, "hydra.runtime.choices.task")


def _local_search(store: Store, sweep_id: int, spec: SearchSpec, launcher: Launcher) -> list[Sequence[JobReturn]]:
    """Ask, launch, tell until the budget is spent or the space exhausted; the runs are recorded as the sweep's.

    The sweep ends COMPLETED or EXHAUSTED, or INTERRUPTED when anything stops it from the moment it exists: Ctrl-C,
    or SIGTERM (``kill``, a scheduler's time limit), between trials as well as in one, and while the history is read.
    """
    trials: list[Trial] = []
    returns = []
    ending = INTERRUPTED
    with sigterm_exits():
        try:
            past = history(store, spec)
            log.info(f"Search sweep {sweep_id}: {len(spec.space)} parameter(s) with {spec.sampler}, {spec.n_trials} trials, {spec.n_jobs} at a time, {past.describe()}")
            while len(trials) < spec.n_trials:
                points = ask(spec, past.trials, trials, min(spec.n_jobs, spec.n_trials - len(trials)))
                if not points:
                    log.info(f"Every point of the space was tried ({len(trials)} trials): the search ends early")
                    break
                batch = launcher.launch([[*trial_job_overrides(spec, point), _sweep_override(sweep_id)] for point in points], initial_job_idx=len(trials))
                pruned = _pruned_runs(store, sweep_id) if spec.pruner != NO_PRUNER else {}
                trials += [_told(point, job_return, spec.metric, pruned, sweep_id, len(trials) + index) for index, (point, job_return) in enumerate(zip(points, batch))]
                returns.append(batch)
            ending = COMPLETED if len(trials) >= spec.n_trials else EXHAUSTED
        finally:
            store.end_sweep(sweep_id, ending)
    _log_best(trials, spec)
    return returns


def _sweep_override(sweep_id: int) -> str:
    """The Hydra override that names the sweep to the recording callback of a local search's job (not a task override)."""
    return f"++hydra.job.env_set.{SWEEP_VARIABLE}={sweep_id}"


def _pruned_runs(store: Store, sweep_id: int) -> dict[str, dict[str, Any]]:
    """The sweep's pruned runs, by output directory (how a job's return finds its run)."""
    return {run["output_dir"]: run for run in store.list_runs(sweep_id=sweep_id, status=PRUNED, fields=["output_dir", "status", "info"])}


def _told(point: Mapping[str, Any], job_return: JobReturn, metric: str | None, pruned: Mapping[str, dict[str, Any]], sweep_id: int, index: int) -> Trial:
    """The trial ``#index`` of the sweep as its job ended; :class:`ObjectiveMissingError` when it completed with a result
    that has no place for the objective."""
    run = pruned.get(str(job_return.hydra_cfg.hydra.runtime.output_dir)) if pruned and job_return.hydra_cfg is not None else None
    if run is not None:
        return scored_trial(dict(point), run, metric)
    if job_return.status != JobStatus.COMPLETED:
        return Trial(dict(point), failed=True)
    result = to_plain(job_return._return_value)
    missing = missing_objective(result, metric)
    if missing is not None:
        raise ObjectiveMissingError(sweep_id, f"trial #{index} completed, but {missing}")
    value = objective_value(result, metric)
    return Trial(dict(point), value, failed=value is None)


def _log_best(trials: Sequence[Trial], spec: SearchSpec) -> None:
    index = best_index(trials, spec.direction)
    if index is None:
        log.info("No trial produced a value")
        return
    best, done = trials[index], sum(trial.score is not None for trial in trials)
    pruned = sum(trial.pruned for trial in trials)
    log.info(f"Best of {done} trials{f' ({pruned} more pruned)' if pruned else ''}: {best.score:.6g} at {' '.join(trial_overrides(best.params))}")


def _start_queued_search(store: Store, sweep_id: int, spec: SearchSpec, composer: SweepComposer, study: str) -> list[Any]:
    def make_job(overrides: list[str], output_dir: str) -> Any:
        job_config = composer.compose(overrides)
        with open_dict(job_config):
            job_config.hydra.job.num = 0
        resolve_hydra_from(job_config)
        return new_job(job_config, overrides, output_dir=output_dir)

    first = advance(store, sweep_id, make_job)
    log.info(f"Search sweep {sweep_id}: {spec.n_trials} trials of {len(spec.space)} parameter(s) with {spec.sampler}, {len(first)} enqueued now, each next one when a trial ends")
    log.info(f"Follow it: hyperspace sweep show {sweep_id}   Work it: hyperspace worker --app {study}")
    return []
