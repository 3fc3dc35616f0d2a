"""``hydra/sweeper=hyperspace``: hyper-parameter search with Optuna samplers (logic in hyperspace_hydra.hpo)."""

# No "from __future__ import annotations": Hydra's plugin scan executes this module before
# it is in sys.modules, and dataclasses then cannot resolve string annotations.
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class HyperspaceSweeperConf:
    """Search options; ``params`` holds a search space in config (name: ``interval(...)`` etc.); ``pruner``
    (``median``, ``percentile``, ``successive_halving``, ``hyperband``, ``threshold`` or ``none``) stops bad trials
    early, with Optuna's options for it in ``pruner_options``, watching ``pruning_metric`` (default: the objective)."""

    _target_: str = "hydra_plugins.hyperspace_hydra_plugins.hyperspace_sweeper.HyperspaceSweeper"
    n_trials: int = 20
    n_jobs: int = 2
    sampler: str = "tpe"
    direction: Optional[str] = None
    metric: Optional[str] = None
    seed: Optional[int] = None
    warm_start: bool = True
    params: Dict[str, str] = field(default_factory=dict)
    history_ignore: List[str] = field(default_factory=list)
    pruner: str = "none"
    pruner_options: Dict[str, Any] = field(default_factory=dict)
    pruning_metric: Optional[str] = None


ConfigStore.instance().store(group="hydra/sweeper", name="hyperspace", node=HyperspaceSweeperConf, provider="hyperspace_hydra")


class HyperspaceSweeper(Sweeper):
    """Asks an Optuna sampler, warm-started from the store, for each next trial."""

    def __init__(self, **options: Any) -> None:
        from hyperspace_hydra.hpo.sweeper import SearchOptions

        self.options = SearchOptions(
            **{
                **options,
                "params": dict(options.get("params") or {}),
                "history_ignore": list(options.get("history_ignore") or []),
                "pruner_options": dict(options.get("pruner_options") or {}),
            }
        )
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.task_function: Optional[TaskFunction] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def sweep(self, arguments: List[str]) -> Any:
        from hyperspace_hydra.hpo.sweeper import search

        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        return search(self.options, self.config, self.hydra_context, self.task_function, arguments)
