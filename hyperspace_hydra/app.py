"""A study's Hydra app, loaded by module name, composed and run without its command line.

``load_app("study.run")`` imports the module (from the current directory first, as
``python -m study.run`` would), finds the ``@hydra.main`` function and sets Hydra up
exactly as running that module does: the same config search path, the same job name.
Workers, the queue and ``compose()`` all build configs through here, so a job runs
the config that ``python -m study.run <overrides>`` would run.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from hydra._internal.callbacks import Callbacks
from hydra._internal.hydra import Hydra
from hydra._internal.utils import create_automatic_config_search_path, detect_task_name
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import JobReturn, run_job
from hydra.errors import HydraException
from hydra.types import HydraContext, RunMode, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from hyperspace_hydra.composer import QueuedJobComposer, SweepComposer, group_lookup
from hyperspace_hydra.config import task_config
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.identity import given_and_complete


@dataclass
class App:
    """A study's Hydra app: its task function and where its configs are."""

    module: str
    task_function: TaskFunction
    config_path: str | None
    config_name: str | None
    _hydra: Hydra | None = field(default=None, repr=False)

    @property
    def package(self) -> str:
        """The app's top-level package (``study`` for ``study.run``)."""
        return self.module.split(".", 1)[0]

    def hydra(self) -> Hydra:
        """The Hydra instance for this app (created once, made the global one)."""
        if self._hydra is None or not GlobalHydra.instance().is_initialized():
            GlobalHydra.instance().clear()
            calling_file = inspect.getfile(self.task_function)
            search_path = create_automatic_config_search_path(calling_file, None, self.config_path)
            self._hydra = Hydra.create_main_hydra2(task_name=detect_task_name(calling_file, None), config_search_path=search_path)
        return self._hydra

    def compose(self, overrides: Sequence[str], run_mode: RunMode = RunMode.RUN) -> DictConfig:
        """The full config (with its ``hydra`` node) for ``overrides``, as a run of the app would compose it.

        Raises :class:`HyperspaceError` with Hydra's message when it does not compose.
        """
        try:
            config = self.hydra().compose_config(self.config_name, list(overrides), run_mode=run_mode, from_shell=False)
        except (HydraException, OmegaConfBaseException, ValueError) as error:
            raise HyperspaceError(f"{self.module} {' '.join(overrides)}: {_one_line(error)}") from error
        with open_dict(config.hydra):
            config.hydra.mode = run_mode
        return config

    def sweep_composer(self) -> SweepComposer:
        """Composes many jobs as :meth:`compose` does, those that differ only in values as copies of one
        (see :mod:`hyperspace_hydra.composer`)."""
        return SweepComposer(self.compose, group_lookup(self.hydra().config_loader))

    def queued_job_composer(self) -> QueuedJobComposer:
        """Composes queued jobs for a worker (see :class:`hyperspace_hydra.composer.QueuedJobComposer`)."""
        return QueuedJobComposer(self.compose, group_lookup(self.hydra().config_loader), self.config_directory)

    @property
    def config_directory(self) -> Path | None:
        """The study's primary config directory (``config_path`` next to the task function's file), if it has one."""
        if self.config_path is None or self.config_path.startswith("pkg://"):
            return None
        return (Path(inspect.getfile(self.task_function)).parent / self.config_path).resolve()

    def run(self, config: DictConfig) -> JobReturn:
        """Run one job of a config from :meth:`compose` as ``Hydra.run`` does: run callbacks, ``run_job``."""
        callbacks = Callbacks(config)
        callbacks.on_run_start(config=config, config_name=self.config_name)
        result = run_job(
            hydra_context=HydraContext(config_loader=self.hydra().config_loader, callbacks=callbacks),
            task_function=self.task_function,
            config=config,
            job_dir_key="hydra.run.dir",
            job_subdir_key=None,
        )
        callbacks.on_run_end(config=config, config_name=self.config_name, job_return=result)
        return result






def load_app(module: str) -> App:
    """Import ``module`` (the current directory is searched first) and return its Hydra app.

    Raises :class:`HyperspaceError` when it cannot be imported or has no ``@hydra.main`` function.
    """
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        imported = importlib.import_module(module)
    except ImportError as error:
        raise HyperspaceError(f"cannot import app {module!r} from {Path.cwd()}: {error} (run from the study's directory)") from error
    for value in vars(imported).values():
        hydra_arguments = _hydra_main_arguments(value)
        if hydra_arguments is not None:
            return App(module, hydra_arguments["task_function"], hydra_arguments["config_path"], hydra_arguments["config_name"])
    raise HyperspaceError(f"app {module!r} has no function decorated with @hydra.main")


def _hydra_main_arguments(value: Any) -> dict[str, Any] | None:
    """The arguments of ``@hydra.main`` kept in the closure of the function it returns, if ``value`` is one."""
    code, closure = getattr(value, "__code__", None), getattr(value, "__closure__", None)
    if code is None or not closure or getattr(value, "__wrapped__", None) is None:
        return None
    cells = dict(zip(code.co_freevars, closure))
    if not {"task_function", "config_path", "config_name"} <= set(cells):
        return None
    return {name: cells[name].cell_contents for name in ("task_function", "config_path", "config_name")}


def compose(app: str, overrides: Sequence[str] = (), complete: bool = False) -> DictConfig:
    """The config a worker would run for ``overrides`` of the study app ``app`` (without the ``hydra`` node).

    With ``complete``, the config as a run of it is stored (``runs show``): every parameter a
    ``_target_`` takes from its code defaults filled in, and the ``hyperspace`` settings in effect.
    """
    config = load_app(app).compose(overrides)
    if complete:
        return OmegaConf.create(given_and_complete(config)[1])
    return task_config(config)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())

