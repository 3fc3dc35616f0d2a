"""The Hydra callback that lets a search's pruner watch each of its trials (registered with the ``hyperspace`` config).

In every process that runs a job (basic, joblib or submitit launcher, a queue worker's job process), after the
recording callback has started the job's run: if the job is a trial of a search sweep with a pruner, the run's
recorder is told to ask the pruner at each value of the pruning metric (see :mod:`hyperspace_hydra.hpo.pruners`);
:func:`hyperspace_hydra.log_scalar` then raises :class:`hyperspace_hydra.Pruned` when the trial should stop.
Anything else costs one read of the sweep, and Optuna is imported only for a search that prunes.
"""

from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from hyperspace_hydra.hpo import prunes
from hyperspace_hydra.job_process import known_sweep, sweep_of
from hyperspace_hydra.recorder import RunRecorder, active_recorder

log = logging.getLogger("hyperspace_hydra")


class PruningCallback(Callback):
    """Asks a search's pruner, in the trial's own process, whether the trial should stop (see the module docstring)."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_id = sweep_of(config)
        recorder = active_recorder()
        if sweep_id is None or recorder is None or recorder.run_id is None:
            return
        try:
            watch_for_pruning(recorder, sweep_id)
        except Exception as error:  # noqa: BLE001 - Hydra would only warn; the trial runs on, unpruned
            log.error("hyperspace: this trial cannot be pruned: %s: %s", type(error).__name__, error)


def watch_for_pruning(recorder: RunRecorder, sweep_id: int) -> None:
    """If sweep ``sweep_id`` is a search with a pruner, have the recorder of its running trial ask it at each value of the pruning metric."""
    store = recorder.observer.store
    sweep = known_sweep(sweep_id) or store.get_sweep(sweep_id)
    if not prunes(sweep):
        return
    from hyperspace_hydra.hpo.pruners import sweep_curves  # Optuna loads only for a search that prunes
    from hyperspace_hydra.hpo.tuner import SearchSpec, pruning_metric

    spec = SearchSpec.from_json(sweep["spec"])
    curves, run_id, metric = sweep_curves(store, sweep_id, spec), recorder.run_id, pruning_metric(spec)
    assert run_id is not None and metric is not None
    recorder.watch(metric, lambda step, value: curves.should_prune(store, run_id, step, value))
