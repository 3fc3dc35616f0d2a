"""Which code a queued job may make Hydra import and call: the ``_target_`` allowlist.

Configs in a shared store are untrusted input: anyone who can write a job can put
``_target_: os.system`` in it. A worker composes each job and checks every target
before anything of the job is called. Checked are ``_target_`` values anywhere in the
config (task part and ``hydra`` node, e.g. callbacks) and the factories of Hydra's
logging configs (``()`` and ``class`` keys).

A target is checked for what it resolves to, not for its text: ``pkg.settings.os.system``
lies in ``pkg`` as text but calls ``os.system``. So a target is resolved as Hydra resolves
it (:func:`hyperspace_hydra.config.walk_target`), and every step of the walk must be a
module of an allowed package (or a parent package of one) or an object defined in an
allowed package. Only modules named inside the allowed packages are imported; nothing is
called.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hyperspace_hydra.composer import resolve_hydra_from
from hyperspace_hydra.config import UnresolvedTarget, task_data, walk_target

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
    interpolated target is refused unless its text is allowed. Checking resolves every
    target, so their modules are imported here (a worker's forked jobs inherit them).
    """
    resolve_hydra_from(config)
    try:
        task = task_data(config)
    except OmegaConfBaseException as error:
        return f"refused: the job's config does not resolve: {' '.join(str(error).split())}"
    hydra_nodes = {name: OmegaConf.to_container(config.hydra[name]) for name in _HYDRA_NODES if config.hydra.get(name) is not None}
    checked = [(path, target, allowed) for path, target in _targets(task)]
    checked += [(f"hydra.{path}", target, allowed) for path, target in _targets(hydra_nodes)]
    for node in _LOGGING_NODES:
        checked += [(f"hydra.{node}.{path}", factory, (*allowed, *LOGGING_ALLOWED)) for path, factory in _logging_factories(hydra_nodes.get(node) or {})]
    refused = [f"{path}={target!r} {reason}" for path, target, allowed_here in checked if (reason := target_refusal(target, allowed_here))]
    if not refused:
        return None
    return f"refused: {'; '.join(refused)} (allowed packages: {', '.join(allowed)}; allow more with hyperspace.allowed_targets in the study's config or worker --allow)"


def target_refusal(target: Any, allowed: Sequence[str]) -> str | None:
    """Why the ``_target_`` (or logging factory) ``target`` may not be called, or None when it may.

    Allowed: a dotted path inside one of the ``allowed`` packages whose every step (see
    :func:`hyperspace_hydra.config.walk_target`) is a module inside, or a parent package
    of, an allowed package, or an object defined inside one (:func:`defining_module`).
    A path outside them is refused before anything is imported; one that does not
    resolve is refused with the reason.
    """
    if not isinstance(target, str):
        return "is not a dotted path"
    if not _inside(target, allowed):
        return "is outside the allowed packages"
    try:
        for walked, step in walk_target(target):
            if not _step_allowed(step, allowed):
                return f"resolves through {walked}, {_described(step)}, outside the allowed packages"
    except UnresolvedTarget as error:
        return f"does not resolve: {error}"
    return None


def defining_module(thing: Any) -> str:
    """The module ``thing`` comes from: a module's own name; for a bound method or
    classmethod its owner's module (for a built-in function, the module it is bound to);
    else ``thing.__module__`` (a class's, a function's, or what a wrapper such as
    ``functools.lru_cache`` copied from the function it wraps), without one its type's."""
    if inspect.ismodule(thing):
        return thing.__name__
    owner = thing.__self__ if inspect.ismethod(thing) or inspect.isbuiltin(thing) else None
    if owner is not None:
        return defining_module(owner if inspect.ismodule(owner) or isinstance(owner, type) else type(owner))
    module = getattr(thing, "__module__", None)
    return module if isinstance(module, str) else type(thing).__module__


def _step_allowed(step: Any, allowed: Sequence[str]) -> bool:
    module = defining_module(step)
    leads_to_allowed = inspect.ismodule(step) and any(package.startswith(module + ".") for package in allowed)
    return _inside(module, allowed) or leads_to_allowed


def _described(step: Any) -> str:
    return f"the module {step.__name__}" if inspect.ismodule(step) else f"defined in {defining_module(step)}"


def _inside(dotted: str, allowed: Sequence[str]) -> bool:
    return any(dotted == package or dotted.startswith(package + ".") for package in allowed)


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
