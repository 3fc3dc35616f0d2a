"""A study's Hydra app, loaded by module name, composed and run without its command line.

``load_app("study.run")`` imports the module (from the current directory first, as
``python -m study.run`` would), finds the ``@hydra.main`` function and sets Hydra up
exactly as running that module does: the same config search path, the same job name.
Workers, the queue and ``compose()`` all build configs through here, so a job runs
the config that ``python -m study.run <overrides>`` would run.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from hydra import version
from hydra._internal.callbacks import Callbacks
from hydra._internal.deprecation_warning import deprecation_warning
from hydra._internal.hydra import Hydra
from hydra._internal.utils import create_automatic_config_search_path, detect_task_name
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobRuntime, JobStatus, _flush_loggers, configure_log, env_override
from hydra.errors import HydraException
from hydra.types import RunMode, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from hyperspace_hydra import config_yaml
from hyperspace_hydra.composer import QueuedJobComposer, SweepComposer, files_stamp, group_lookup, resolve_hydra_from
from hyperspace_hydra.config import has_interpolation, task_config
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.identity import given_and_complete
from hyperspace_hydra.settings import HyperspaceSettings, effective_settings


@dataclass
class App:
    """A study's Hydra app: its task function and where its configs are."""

    module: str
    task_function: TaskFunction
    config_path: str | None
    config_name: str | None
    _hydra: Hydra | None = field(default=None, repr=False)
    _callbacks: list[tuple[Any, Callbacks]] = field(default_factory=list, repr=False)
    _settings: tuple[tuple[tuple[str, int, int], ...], HyperspaceSettings] | None = field(default=None, repr=False)

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

    def settings(self) -> HyperspaceSettings:
        """The ``hyperspace`` settings in effect in the study's config without overrides (:func:`effective_settings` of
        ``compose([])``), composed once while the files of its config directory stay as they are: a command that asks
        for the store and then for the allowed targets composes once, not twice. Each call returns a copy of its own."""
        stamp = files_stamp(self.config_directory)
        if self._settings is None or self._settings[0] != stamp:
            self._settings = (stamp, effective_settings(self.compose([])))
        return copy.deepcopy(self._settings[1])

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
        """Run one job of a config from :meth:`compose` as ``Hydra.run`` does: run callbacks, then :func:`run_job`."""
        callbacks = self.callbacks(config)
        callbacks.on_run_start(config=config, config_name=self.config_name)
        result = run_job(self.task_function, config, callbacks)
        callbacks.on_run_end(config=config, config_name=self.config_name, job_return=result)
        return result


    def callbacks(self, config: DictConfig) -> Callbacks:
        """Hydra's callbacks of the full ``config`` (its ``hydra.callbacks``), instantiated once per distinct callbacks
        config and then reused, as Hydra's multirun instantiates them once for all its jobs. A worker asks before it forks,
        so its job processes find them instantiated (each its own copy). Callbacks configured with an interpolation (which
        may resolve differently for each job) are instantiated for every job, as ``Hydra.run`` does."""
        node = config.hydra.get("callbacks")
        given = OmegaConf.to_container(node, resolve=False) if isinstance(node, DictConfig) else None
        if not given or has_interpolation(given):
            return Callbacks(config)
        for known, callbacks in self._callbacks:
            if known == given:
                return callbacks
        callbacks = Callbacks(config)
        self._callbacks = [*self._callbacks[-(_CALLBACK_SETS_KEPT - 1) :], (given, callbacks)]
        return callbacks


_CALLBACK_SETS_KEPT = 4




def run_job(task_function: TaskFunction, config: DictConfig, callbacks: Callbacks) -> JobReturn:
    """Run the job of the full ``config`` in ``hydra.run.dir`` as Hydra's own ``run_job`` does (Hydra 1.3): the same
    steps in the same order (``HydraConfig``, output directory, working directory, logging, the ``.hydra`` files,
    ``env_set``, the job callbacks around the task), the same files byte for byte and the same :class:`JobReturn`.

    It differs only in what it copies. Hydra copies the ``hydra`` node four times per job (twice for ``HydraConfig``,
    twice more to hand the task a config without it); that was most of a no-op job's time. Here ``HydraConfig``
    holds the config's own ``hydra`` node (see :func:`~hyperspace_hydra.composer.resolve_hydra_from`), which is also
    the job's ``hydra_cfg``, and the task's copy leaves the ``hydra`` node out instead of copying and deleting it.
    """
    old_cwd = os.getcwd()
    previous = HydraConfig.instance().cfg
    resolve_hydra_from(config)
    hydra_cfg = HydraConfig.instance().cfg
    assert isinstance(hydra_cfg, DictConfig)
    output_dir = str(OmegaConf.select(config, "hydra.run.dir"))
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = os.path.abspath(output_dir)
    changes_directory = False
    try:
        job = JobReturn(cfg=task_config(config), hydra_cfg=hydra_cfg, overrides=OmegaConf.to_container(config.hydra.overrides.task))
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        changes_directory = _changes_directory(hydra_cfg)
        if changes_directory:
            os.chdir(output_dir)
        job.working_dir = os.getcwd()
        configure_log(config.hydra.job_logging, config.hydra.verbose)
        if config.hydra.output_subdir is not None:
            _save_configs(job, Path(config.hydra.runtime.output_dir) / str(config.hydra.output_subdir))
        with env_override(hydra_cfg.hydra.job.env_set):
            callbacks.on_job_start(config=config, task_function=task_function)
            try:
                job.return_value = task_function(job.cfg)
                job.status = JobStatus.COMPLETED
            except Exception as error:  # noqa: BLE001 - as Hydra: the job's return holds it
                job.return_value = error
                job.status = JobStatus.FAILED
        job.task_name = JobRuntime.instance().get("name")
        _flush_loggers()
        callbacks.on_job_end(config=config, job_return=job)
        return job
    finally:
        HydraConfig.instance().cfg = previous
        if changes_directory:
            os.chdir(old_cwd)


def _changes_directory(hydra_cfg: DictConfig) -> bool:
    """Whether the job runs in its output directory (``hydra.job.chdir``; unset: no from version_base 1.2 on, else yes, with Hydra's warning)."""
    chdir = hydra_cfg.hydra.job.chdir
    if chdir is None and not version.base_at_least("1.2"):
        deprecation_warning(message=_CHDIR_WARNING, stacklevel=3)
        return True
    return bool(chdir)


_CHDIR_WARNING = """\
Future Hydra versions will no longer change working directory at job runtime by default.
See https://hydra.cc/docs/1.2/upgrades/1.1_to_1.2/changes_to_job_working_dir/ for more information."""


def _save_configs(job: JobReturn, directory: Path) -> None:
    """The job's ``config.yaml``, ``hydra.yaml`` and ``overrides.yaml``, written as Hydra writes them."""
    directory.mkdir(parents=True, exist_ok=True)
    assert job.hydra_cfg is not None
    for name, node in (("config.yaml", job.cfg), ("hydra.yaml", job.hydra_cfg), ("overrides.yaml", job.hydra_cfg.hydra.overrides.task)):
        with open(directory / name, "w", encoding="utf-8") as file:
            file.write(config_yaml.to_yaml(node))


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

