"""The ``hyperspace`` settings node of a study, and where its store is.

A study opts in with one line in its primary config's defaults list::

    defaults:
      - hyperspace        # records every run in the store

That config (registered in Hydra's ConfigStore by our plugin) adds a ``hyperspace``
node whose every setting is ``???`` (unset) and enables the recording callback. The
study's own ``hyperspace`` node sets what it wants; OmegaConf's merge never copies a
``???`` over a value, so the study's values hold wherever ``- hyperspace`` sits in its
defaults list (before or after ``_self_``), and a command-line override wins over both.
Readers take :func:`effective_settings`: the node over the defaults of
:class:`HyperspaceSettings`, checked (an unknown key or a bad value is one error).

Store precedence, highest first: an explicit choice on the command line
(``--store URI`` for ``hyperspace``, the override ``hyperspace.store=URI`` for a
study), then the environment variable ``HYPERSPACE_STORE``, then a ``store`` written
in the study's config files, then the default ``sqlite:///.hyperspace/store.db``.
Relative SQLite paths are relative to the directory the command was started from.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from hyperspace_hydra.config import SETTINGS_KEY
from hyperspace_hydra.errors import HyperspaceError

STORE_ENV_VAR = "HYPERSPACE_STORE"
MAX_HEARTBEAT_SECONDS = 30.0
"""The longest heartbeat interval: a run outside the queue silent for 120 s (four of them) is ended as DIED."""
DEFAULT_STORE_URI = "sqlite:///.hyperspace/store.db"
CALLBACK_TARGET = "hyperspace_hydra.tracking.RecordingCallback"
PRUNING_CALLBACK_TARGET = "hyperspace_hydra.hpo.pruning.PruningCallback"
"""Runs after the recording callback starts a job's run: lets a search's pruner watch the trial (hpo/pruning.py)."""
QUEUE_LAUNCHER_TARGET = "hydra_plugins.hyperspace_hydra_plugins.hyperspace_launcher.HyperspaceLauncher"
"""``hydra/launcher=hyperspace``: the launcher that enqueues jobs for workers (a search started with it enqueues its trials)."""


class Direction(enum.Enum):
    """Whether a larger or a smaller objective is better."""

    minimize = "minimize"
    maximize = "maximize"


class CaptureMode(enum.Enum):
    """How a run's output is captured (Sacred's modes).

    ``fd`` tees the process's file descriptors (catches logging, C extensions and
    subprocesses); ``sys`` wraps ``sys.stdout``/``sys.stderr`` only; ``no`` captures nothing.
    """

    fd = "fd"
    sys = "sys"
    no = "no"


@dataclass
class HyperspaceSettings:
    """The ``hyperspace`` node of a study's config.

    ``objective`` names the returned metric that is the run's objective; when it is
    unset the objective is the returned float, or the only entry of a returned dict.
    ``allowed_targets`` adds packages whose callables queued jobs may name as
    ``_target_`` (the study's own package and hyperspace_hydra always may); workers
    read it from the study's config files only, never from a job's overrides.
    """

    store: Optional[str] = None
    objective: Optional[str] = None
    direction: Direction = Direction.minimize
    capture: CaptureMode = CaptureMode.fd
    heartbeat_seconds: float = 10.0
    allowed_targets: List[str] = field(default_factory=list)


_SETTING_NAMES = [setting.name for setting in dataclasses.fields(HyperspaceSettings)]


def register_configs() -> None:
    """Register the ``hyperspace`` config (settings node, recording and pruning callbacks) in Hydra's ConfigStore.

    Every setting is registered as ``???``: a value here would override the study's own
    whenever ``- hyperspace`` comes after ``_self_``. The node is untyped so that the
    study's values are checked in one place, :func:`effective_settings`, whatever the order.
    """
    unset = {name: MISSING for name in _SETTING_NAMES}
    callbacks = {"hyperspace": {"_target_": CALLBACK_TARGET}, "hyperspace_pruning": {"_target_": PRUNING_CALLBACK_TARGET}}
    node = {SETTINGS_KEY: unset, "hydra": {"callbacks": callbacks}}
    ConfigStore.instance().store(name="hyperspace", node=node, package="_global_", provider="hyperspace_hydra")


def effective_settings(config: DictConfig | Mapping[str, Any]) -> HyperspaceSettings:
    """The settings a study's ``config`` asks for: its ``hyperspace`` node over the defaults.

    ``config`` is a composed config (with or without its ``hydra`` node) or its plain
    data. A setting the node leaves unset (``???``, or absent) takes the default of
    :class:`HyperspaceSettings`. Every reader of the settings goes through here, so they
    all agree. Raises :class:`HyperspaceError` naming an unknown setting or a bad value.
    """
    node = config.get(SETTINGS_KEY)
    try:
        given = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    except OmegaConfBaseException as error:
        raise _settings_error(error) from None
    return copy.deepcopy(_settings_given(json.dumps(given or {}, sort_keys=True, default=repr)))  # the caller may change its copy


@functools.lru_cache(maxsize=32)
def _settings_given(given: str) -> HyperspaceSettings:
    """The checked settings of a ``hyperspace`` node given as canonical JSON: a job reads its settings several
    times (~3 ms each through OmegaConf's structured merge), the same node every time."""
    try:
        settings: HyperspaceSettings = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(HyperspaceSettings), json.loads(given)))  # type: ignore[assignment]
    except OmegaConfBaseException as error:
        raise _settings_error(error) from None
    if not 0 < settings.heartbeat_seconds <= MAX_HEARTBEAT_SECONDS:
        raise HyperspaceError(
            f"{SETTINGS_KEY}.heartbeat_seconds must lie in (0, {MAX_HEARTBEAT_SECONDS:g}], not {settings.heartbeat_seconds:g}: "
            "a run silent for four times that long is taken for dead"
        )
    return settings


def _settings_error(error: OmegaConfBaseException) -> HyperspaceError:
    if isinstance(error, ConfigKeyError):
        return HyperspaceError(f"{SETTINGS_KEY}.{error.key} is not a setting; the settings are {', '.join(_SETTING_NAMES)} (fix the study's {SETTINGS_KEY} node or the override)")
    reason = str(error.msg).splitlines()[0]
    return HyperspaceError(f"{SETTINGS_KEY}.{error.key}: {reason} (fix the study's {SETTINGS_KEY} node or the override)")


def resolve_store_uri(explicit: str | None, configured: str | None, start_dir: Path | str) -> str:
    """Pick the store URI by the documented precedence and make SQLite paths absolute.

    ``explicit`` is a command-line choice, ``configured`` a value from the study's
    config files, ``start_dir`` the directory the command was started from.
    """
    uri = explicit or os.environ.get(STORE_ENV_VAR) or configured or DEFAULT_STORE_URI
    return absolute_sqlite_uri(uri, Path(start_dir))


_URI_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*\\?://[^/:@\s\\]*)(?P<colon>\\?:)[^/\s]*@")


def redact_credentials(text: str) -> str:
    """``text`` with the password of every URI in it replaced by ``***`` (for records and logs), also in a
    Hydra override, which escapes the colons (``db=postgresql\\://me\\:secret@host/db``)."""
    return _URI_PASSWORD.sub(r"\g<scheme>\g<colon>***@", text)


def absolute_sqlite_uri(uri: str, start_dir: Path) -> str:
    """Return ``uri`` with a relative ``sqlite:///`` path made absolute against ``start_dir``."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri == "sqlite:///:memory:":
        return uri
    path = uri[len(prefix):]
    if path.startswith("/"):
        return uri
    return prefix + str((start_dir / path).resolve())
