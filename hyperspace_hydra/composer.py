"""Compose the jobs of one sweep, composing from scratch only when a job's shape is new.

Hydra composes each job of a sweep from scratch (defaults list, config files,
merges), although the jobs of a grid usually differ only in the values of a few
existing keys. :class:`SweepComposer` composes the first job of each *shape* (its
overrides with the values of plain ``key=value`` overrides left out) in full, and
every later job of that shape as a copy of it with the job's own values set, exactly
as Hydra's override step sets them. The result is the config a full compose gives:
same values, same ``hydra.overrides.task`` and ``hydra.job.override_dirname``.

Anything a copy could get wrong is composed in full: a job whose varying overrides
choose a config group, add or delete keys (``+``, ``++``, ``~``), touch ``hydra``, set
a dict, a list or an interpolation, sweep, name a key that is not a plain value
reached through plain dict nodes, or overlap another override's key; and a job whose
values the copy does not accept, so that Hydra reports the error.
"""

from __future__ import annotations

import copy
import functools
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra._internal.config_loader_impl import get_overrides_dirname
from hydra.core.config_loader import ConfigLoader
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.errors import HydraException
from omegaconf import DictConfig, Node, OmegaConf, ValueNode, flag_override, open_dict

from hyperspace_hydra.overrides import format_override, override_text

Compose = Callable[[list[str]], DictConfig]
"""Composes the full config (with its ``hydra`` node) of one job from its overrides."""

_PLAIN_KEY = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")
_PRIMITIVES = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class _Job:
    """A job's parsed overrides, those that only set a value, and its shape (None: compose it in full)."""

    overrides: list[Override]
    values: list[Override]
    shape: tuple[str, ...] | None


@dataclass(frozen=True)
class JobConfig:
    """A job's full config, on its way: ``make()`` returns it; ``composed`` is it when it was composed in full already.

    Otherwise ``make()`` sets the job's values on the base config of its shape (see :class:`SweepComposer`). Called in
    a process forked after :meth:`SweepComposer.prepare` (a worker's job process), it sets them on that base itself,
    which the process owns after the fork: the per-job copy of the whole config, ``hydra`` node included, is never made.
    Called in the preparing process it copies the base first, as :meth:`SweepComposer.compose` does. It composes in full
    when the base does not accept the values (Hydra's error then says why).
    """

    composed: DictConfig | None
    make: Callable[[], DictConfig]


class SweepComposer:
    """Composes the jobs of one sweep; see the module docstring.

    ``compose`` is the full compose (Hydra's ``load_sweep_config`` or :meth:`App.compose`),
    ``group_exists`` tells whether a key names a config group (the config loader's
    repository answers it). A copy gets the resolver cache (``${now:...}``) of
    ``cache_from`` as ``load_sweep_config`` gives each job the master config's; without
    it, an empty one, as a fresh compose has. Each returned config is a new object,
    the caller's to change.
    """

    def __init__(self, compose: Compose, group_exists: Callable[[str], bool], cache_from: DictConfig | None = None) -> None:
        self._compose = compose
        self._group_exists = group_exists
        self._cache_from = cache_from
        self._groups: dict[str, bool] = {}
        self._parser = OverridesParser.create()
        self._bases: dict[tuple[str, ...], DictConfig] = {}

    def compose(self, overrides: Sequence[str]) -> DictConfig:
        """The full config of the job with ``overrides``, as ``compose`` would return it."""
        return self.prepare(overrides).make()

    def prepare(self, overrides: Sequence[str]) -> JobConfig:
        """:meth:`compose` in two steps, for a caller that forks in between: a job whose shape is new is composed now,
        any other is only looked up (see :class:`JobConfig`)."""
        job = self._job(overrides)
        base = self._bases.get(job.shape) if job.shape is not None else None
        if base is not None:
            return JobConfig(None, functools.partial(self._from_base, base, job, list(overrides), os.getpid()))
        config = self._compose(list(overrides))
        if job.shape is not None and job.shape not in self._bases and all(_is_plain_leaf(config, value.key_or_group) for value in job.values):
            self._bases[job.shape] = copy.deepcopy(config)
        return JobConfig(config, lambda: config)

    def _from_base(self, base: DictConfig, job: _Job, overrides: list[str], preparer: int) -> DictConfig:
        """The job's config from its shape's ``base``: the base itself in a process forked from the ``preparer`` (it owns
        its copy of memory), else a copy; composed in full when the base does not accept the job's values."""
        config = base if os.getpid() != preparer else copy.deepcopy(base)
        if not _set_values(config, job):
            return self._compose(overrides)
        self._reset_cache(config)
        return config

    def _reset_cache(self, config: DictConfig) -> None:
        OmegaConf.clear_cache(config)
        if self._cache_from is not None:
            OmegaConf.copy_cache(from_config=self._cache_from, to_config=config)

    def _job(self, overrides: Sequence[str]) -> _Job:
        try:
            parsed = self._parser.parse_overrides(list(overrides))
        except HydraException:
            return _Job([], [], None)  # the full compose reports it
        keys = [override.key_or_group for override in parsed]
        if any(_overlaps(key, other) for index, key in enumerate(keys) for other in keys[index + 1:]):
            return _Job(parsed, [], None)
        values = [override for override in parsed if self._sets_a_value(override)]
        shape = tuple(f"{override.key_or_group}=" if override in values else f"={override_text(override)}" for override in parsed)
        return _Job(parsed, values, shape)

    def _sets_a_value(self, override: Override) -> bool:
        """Whether the override only sets a plain value of an existing key (what a copy can do)."""
        key = override.key_or_group
        if override.type != OverrideType.CHANGE or override.package is not None or override.is_sweep_override():
            return False
        if not _PLAIN_KEY.match(key) or key.split(".")[0] == "hydra":
            return False
        value = override.value()
        if not isinstance(value, _PRIMITIVES) or (isinstance(value, str) and "${" in value):
            return False
        if key not in self._groups:
            self._groups[key] = self._group_exists(key)
        return not self._groups[key]


def _overlaps(key: str, other: str) -> bool:
    """Whether two override keys name the same node or one lies inside the other."""
    return key == other or key.startswith(f"{other}.") or other.startswith(f"{key}.")


def _set_values(config: DictConfig, job: _Job) -> bool:
    """Set the job's values in ``config`` (a copy of its shape's base) as Hydra's override step would; False when
    ``config`` does not accept one (it may then hold some of them)."""
    try:
        for override in job.values:
            OmegaConf.update(config, override.key_or_group, override.value(), merge=True)
    except Exception:  # noqa: BLE001 - in any doubt compose in full, which reports Hydra's own error
        return False
    task_overrides = [override for override in job.overrides if not override.is_hydra_override()]
    config.hydra.overrides.task = [override_text(override) for override in task_overrides]
    naming = config.hydra.job.config.override_dirname
    config.hydra.job.override_dirname = get_overrides_dirname(
        overrides=task_overrides, kv_sep=naming.kv_sep, item_sep=naming.item_sep, exclude_keys=naming.exclude_keys
    )
    return True


def _is_plain_leaf(config: DictConfig, key: str) -> bool:
    """Whether ``key`` holds a plain value (no interpolation) reached through plain dict nodes."""
    node: Node | None = config
    for part in key.split("."):
        if not isinstance(node, DictConfig) or node._is_missing() or node._is_none() or node._is_interpolation():
            return False
        node = node._get_node(part)
    return isinstance(node, ValueNode) and not node._is_interpolation()


def resolve_hydra_from(config: DictConfig) -> None:
    """Make ``${hydra:...}`` interpolations resolve from ``config``'s ``hydra`` node, as Hydra does before it runs a job.

    Hydra keeps that node in one process-wide singleton (``HydraConfig``): composing a job outside
    ``run_job`` (to enqueue it, to check its targets) must set it before the job's config is resolved.
    This is the one place this library sets it. It sets what Hydra's ``HydraConfig.set_config`` sets (the
    ``hydra`` node made read-only, under a config of its own whose parent link leads back to ``config``),
    but holds ``config``'s own ``hydra`` node instead of a copy: that copy was the largest cost of
    composing and running a job, and nothing changes a read-only node.
    """
    node = config._get_node("hydra")
    assert isinstance(node, DictConfig)
    OmegaConf.set_readonly(node, True)
    holder = OmegaConf.create()
    with flag_override(holder, "no_deepcopy_set_nodes", True):
        holder["hydra"] = node  # re-parents the node to the holder: linked back to config below, as Hydra does
    node._set_parent(config)
    HydraConfig.instance().cfg = holder  # type: ignore[assignment]


def multirun_composer(config_loader: ConfigLoader, master: DictConfig) -> SweepComposer:
    """The composer of the ``--multirun`` sweep of ``master``, through which ``config_loader`` composes its jobs too.

    The one entry point of a ``--multirun``: the sweeper composes its search's bases and trials with
    it, the queue launcher the jobs it enqueues. Hydra's sweepers and launchers compose each job
    with ``config_loader.load_sweep_config(master, overrides)``; from the first call on, that method,
    **on this config loader object only**, sends the jobs of ``master``'s sweep through this
    composer (copies for jobs that differ only in values; errors still raised by a full compose) and
    any other master config to Hydra's own method. This stand-in is the one change made to Hydra's
    objects here; only the latest sweep's composer is kept.
    """
    router = vars(config_loader).get("load_sweep_config")
    if not isinstance(router, _SweepRouter):
        router = _SweepRouter(config_loader.load_sweep_config)
        config_loader.load_sweep_config = router  # type: ignore[method-assign]
    if router.master is not master:
        router.master = master
        router.composer = SweepComposer(lambda overrides: router.full_compose(master, overrides), group_lookup(config_loader), cache_from=master)
    assert router.composer is not None
    return router.composer


class _SweepRouter:
    """Stands in for a config loader's ``load_sweep_config``; see :func:`multirun_composer`."""

    def __init__(self, full_compose: Callable[[DictConfig, list[str]], DictConfig]) -> None:
        self.full_compose = full_compose
        self.master: DictConfig | None = None
        self.composer: SweepComposer | None = None

    def __call__(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        if master_config is self.master and self.composer is not None:
            return self.composer.compose(sweep_overrides)
        return self.full_compose(master_config, sweep_overrides)


def group_lookup(config_loader: ConfigLoader) -> Callable[[str], bool]:
    """Whether a key names a config group, as the config loader's repository knows it (every key, if it cannot tell)."""
    repository = getattr(config_loader, "repository", None)
    return repository.group_exists if repository is not None else lambda _key: True


class QueuedJobComposer:
    """Composes the jobs a worker takes, as ``compose([*overrides, "hydra.run.dir=<dir>"])`` would.

    A :class:`SweepComposer` per sweep (those of the latest ``keep`` sweeps), so that the
    jobs of a grid are copies of one composed config; the job's output directory is then
    set as that override sets it. Before every job the study's config files are checked
    (path, size and modification time of each file under ``config_dir``): any change
    drops every cached config, so a job retried after a fix of the config files gets the
    fixed config.
    """

    def __init__(self, compose: Compose, group_exists: Callable[[str], bool], config_dir: Path | None, keep: int = 8) -> None:
        self._compose = compose
        self._group_exists = group_exists
        self._config_dir = config_dir
        self._keep = keep
        self._composers: dict[int | None, SweepComposer] = {}
        self._files = files_stamp(config_dir)

    def compose(self, overrides: Sequence[str], sweep_id: int | None, run_dir: str | None = None) -> DictConfig:
        """The full config of a job of sweep ``sweep_id`` that runs in ``run_dir``; without a
        ``run_dir``, as ``compose(overrides)`` (e.g. to enqueue a search's next trial)."""
        return self.prepare(overrides, sweep_id, run_dir).make()

    def prepare(self, overrides: Sequence[str], sweep_id: int | None, run_dir: str | None = None) -> JobConfig:
        """:meth:`compose` in two steps, for a worker that forks the job's process in between (see :class:`JobConfig`)."""
        files = files_stamp(self._config_dir)
        if files != self._files:
            self._files = files
            self._composers.clear()
        prepared = self._composer(sweep_id).prepare(overrides)
        if run_dir is None:
            return prepared
        if prepared.composed is not None:
            _set_run_dir(prepared.composed, run_dir)
            return prepared
        return JobConfig(None, functools.partial(_in_run_dir, prepared.make, run_dir))

    def _composer(self, sweep_id: int | None) -> SweepComposer:
        if sweep_id not in self._composers:
            if len(self._composers) >= self._keep:
                del self._composers[next(iter(self._composers))]
            self._composers[sweep_id] = SweepComposer(self._compose, self._group_exists)
        return self._composers[sweep_id]


def _in_run_dir(make: Callable[[], DictConfig], run_dir: str) -> DictConfig:
    config = make()
    _set_run_dir(config, run_dir)
    return config


def _set_run_dir(config: DictConfig, run_dir: str) -> None:
    """Set ``hydra.run.dir`` as the override ``hydra.run.dir=<run_dir>`` would."""
    with open_dict(config.hydra):
        config.hydra.run.dir = run_dir
        config.hydra.overrides.hydra.append(format_override("hydra.run.dir", run_dir))


def files_stamp(directory: Path | None) -> tuple[tuple[str, int, int], ...]:
    """Path, size and modification time of every file under ``directory`` (empty without one)."""
    if directory is None or not directory.is_dir():
        return ()
    stats = ((str(path), path.stat()) for path in directory.rglob("*") if path.is_file())
    return tuple(sorted((name, stat.st_size, stat.st_mtime_ns) for name, stat in stats))
