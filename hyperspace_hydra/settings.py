"""The ``hyperspace`` settings node of a study, and where its store is.

A study opts in with one line in its primary config's defaults list::

    defaults:
      - hyperspace        # records every run in the store

That config (registered in Hydra's ConfigStore by our plugin) adds a typed
``hyperspace`` node and enables the recording callback.

Store precedence, highest first: an explicit choice on the command line
(``--store URI`` for ``hyperspace``, the override ``hyperspace.store=URI`` for a
study), then the environment variable ``HYPERSPACE_STORE``, then a ``store`` written
in the study's config files, then the default ``sqlite:///.hyperspace/store.db``.
Relative SQLite paths are relative to the directory the command was started from.
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from hydra.core.config_store import ConfigStore

STORE_ENV_VAR = "HYPERSPACE_STORE"
DEFAULT_STORE_URI = "sqlite:///.hyperspace/store.db"
CALLBACK_TARGET = "hyperspace_hydra.tracking.RecordingCallback"


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


def register_configs() -> None:
    """Register the ``hyperspace`` config (settings node + recording callback) in Hydra's ConfigStore."""
    node = {"hyperspace": HyperspaceSettings, "hydra": {"callbacks": {"hyperspace": {"_target_": CALLBACK_TARGET}}}}
    ConfigStore.instance().store(name="hyperspace", node=node, package="_global_", provider="hyperspace_hydra")


def resolve_store_uri(explicit: str | None, configured: str | None, start_dir: Path | str) -> str:
    """Pick the store URI by the documented precedence and make SQLite paths absolute.

    ``explicit`` is a command-line choice, ``configured`` a value from the study's
    config files, ``start_dir`` the directory the command was started from.
    """
    uri = explicit or os.environ.get(STORE_ENV_VAR) or configured or DEFAULT_STORE_URI
    return absolute_sqlite_uri(uri, Path(start_dir))


_URI_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://[^/:@\s]*):[^/\s]*@")


def redact_credentials(text: str) -> str:
    """``text`` with the password of every URI in it replaced by ``***`` (for records and logs)."""
    return _URI_PASSWORD.sub(r"\g<scheme>:***@", text)


def absolute_sqlite_uri(uri: str, start_dir: Path) -> str:
    """Return ``uri`` with a relative ``sqlite:///`` path made absolute against ``start_dir``."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri == "sqlite:///:memory:":
        return uri
    path = uri[len(prefix):]
    if path.startswith("/"):
        return uri
    return prefix + str((start_dir / path).resolve())
