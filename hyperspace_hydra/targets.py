"""Which code a queued job may make Hydra import and call: the ``_target_`` allowlist.

Configs in a shared store are untrusted input: anyone who can write a job can put
``_target_: os.system`` in it. A worker composes each job and checks every target
before anything of the job is imported or called. Checked are ``_target_`` values
anywhere in the config (task part and ``hydra`` node, e.g. callbacks) and the
factories of Hydra's logging configs (``()`` and ``class`` keys).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hyperspace_hydra.app import task_data

ALWAYS_ALLOWED = ("hyperspace_hydra", "hydra._internal.core_plugins", "hydra_plugins")
"""Our own code, Hydra's core launcher/sweeper and installed Hydra plugins."""
LOGGING_ALLOWED = ("logging",)
"""What the logging configs may name besides the allowed packages (the standard library's handlers)."""
_LOGGING_NODES = ("job_logging", "hydra_logging")
_HYDRA_NODES = ("callbacks", "launcher", "sweeper", *_LOGGING_NODES)
"""The parts of the ``hydra`` node that name code Hydra imports and calls."""


def allowed_packages(study_package: str, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The packages a worker of ``study_package`` lets jobs name: the study's, ours, and ``extra``."""
    return (study_package, *ALWAYS_ALLOWED, *extra)


def refusal(config: DictConfig, allowed: Sequence[str]) -> str | None:
    """Why the full job ``config`` may not run here, or None when every target is allowed.

    The task part is resolved first (a task config that does not resolve is refused
    as a whole). In the ``hydra`` node values are checked as written: an
    interpolated target is refused unless its text is allowed.
    """
    HydraConfig.instance().set_config(config)
    try:
        task = task_data(config)
    except OmegaConfBaseException as error:
        return f"refused: the job's config does not resolve: {' '.join(str(error).split())}"
    hydra_nodes = {name: OmegaConf.to_container(config.hydra[name]) for name in _HYDRA_NODES if config.hydra.get(name) is not None}
    refused = [f"{path}={target!r}" for path, target in _targets(task) if not _is_allowed(target, allowed)]
    refused += [f"hydra.{path}={target!r}" for path, target in _targets(hydra_nodes) if not _is_allowed(target, allowed)]
    for node in _LOGGING_NODES:
        refused += [
            f"hydra.{node}.{path}={factory!r}"
            for path, factory in _logging_factories(hydra_nodes.get(node) or {})
            if not _is_allowed(factory, (*allowed, *LOGGING_ALLOWED))
        ]
    if not refused:
        return None
    return f"refused: {', '.join(refused)} outside the allowed packages ({', '.join(allowed)}); allow more with hyperspace.allowed_targets in the study's config or worker --allow"


def allowed_target_paths(config: DictConfig) -> list[str]:
    """The ``_target_`` strings of the task part of a config that :func:`refusal` accepted."""
    task = task_data(config)
    return [target for _, target in _targets(task) if isinstance(target, str)]


def _is_allowed(target: Any, allowed: Sequence[str]) -> bool:
    if not isinstance(target, str):
        return False
    return any(target == package or target.startswith(package + ".") for package in allowed)


def _targets(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                yield child, value
            else:
                yield from _targets(value, child)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _targets(value, f"{path}[{index}]")


def _logging_factories(logging_config: Any) -> Iterator[tuple[str, Any]]:
    for section in ("formatters", "filters", "handlers"):
        for name, entry in (logging_config.get(section) or {}).items():
            if isinstance(entry, dict):
                for key in ("()", "class"):
                    if key in entry:
                        yield f"{section}.{name}.{key}", entry[key]
