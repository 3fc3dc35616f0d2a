"""``hydra/launcher=hyperspace``: enqueue a ``--multirun`` sweep for workers (logic in hyperspace_hydra.launcher)."""

# No "from __future__ import annotations": Hydra's plugin scan executes this module before
# it is in sys.modules, and dataclasses then cannot resolve string annotations.
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from hyperspace_hydra.settings import QUEUE_LAUNCHER_TARGET


@dataclass
class HyperspaceLauncherConf:
    """Options of the queue launcher: duplicate detection, priority, attempts before DIED."""

    _target_: str = QUEUE_LAUNCHER_TARGET
    dedupe: bool = True
    priority: int = 0
    max_attempts: int = 3


ConfigStore.instance().store(group="hydra/launcher", name="hyperspace", node=HyperspaceLauncherConf, provider="hyperspace_hydra")


class HyperspaceLauncher(Launcher):
    """Enqueues every job of the sweep in the study's store; workers run them."""

    def __init__(self, dedupe: bool = True, priority: int = 0, max_attempts: int = 3) -> None:
        self.options: dict[str, Any] = {"dedupe": dedupe, "priority": priority, "max_attempts": max_attempts}
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hyperspace_hydra.composer import multirun_composer
        from hyperspace_hydra.launcher import stop_cleanly_on_interrupt

        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        multirun_composer(hydra_context.config_loader, config)  # before the sweeper validates the first batch
        stop_cleanly_on_interrupt()

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hyperspace_hydra.launcher import enqueue_sweep

        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        return enqueue_sweep(self.config, self.hydra_context, self.task_function, job_overrides, initial_job_idx, **self.options)
