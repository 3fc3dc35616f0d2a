"""Complete configs: fill in target defaults, make them plain data, hash them.

A run's stored ``config`` is the composed config with, for every node that has a
``_target_``, the default value of each parameter of that target that the node does
not set (from the signature or, for dataclasses, the fields). A parameter added later
with a default that keeps the old behaviour therefore shows up in new runs with that
default, which keeps old and new runs comparable (``backfill`` fills past runs).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
import hashlib
import importlib
import inspect
import json
import re
import types
from collections.abc import Iterator, Mapping
from pathlib import PurePath
from typing import Any, Callable

import omegaconf.base
from omegaconf import Container, DictConfig, OmegaConf, open_dict, read_write

REPR_MARKER = "__repr__"
"""Key of the one-entry dict that stands for a value that is not plain data."""

_HYDRA_KEYS = frozenset({"_target_", "_recursive_", "_convert_", "_partial_", "_args_"})
_MEMORY_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
SETTINGS_KEY = "hyperspace"
"""Top-level node holding this tool's own settings; not part of a run's identity."""


def to_plain(value: Any) -> Any:
    """Return ``value`` as JSON-compatible data (dicts, lists, str, numbers, bool, None).

    Mappings become dicts with string keys, sequences lists, enums their name, paths
    strings, dataclass instances dicts. Anything else becomes ``{"__repr__": repr(value)}``
    with memory addresses removed, so the marker is stable from one run to the next.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else repr(value)
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: to_plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if _is_numpy_scalar(value):
        return value.item()
    return {REPR_MARKER: _MEMORY_ADDRESS.sub("", repr(value))}


def _is_numpy_scalar(value: Any) -> bool:
    return type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "shape", None) == ()


def target_defaults(target: Callable[..., Any] | type) -> dict[str, Any]:
    """Return the parameters of ``target`` that have a default, with those defaults.

    Dataclasses contribute their fields (``default`` or ``default_factory()``); other
    callables the parameters of their signature. ``*args``/``**kwargs`` and
    positional-only parameters are skipped since a config cannot name them.
    """
    if dataclasses.is_dataclass(target) and isinstance(target, type):
        return _dataclass_defaults(target)
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return {}
    return {
        name: parameter.default
        for name, parameter in signature.parameters.items()
        if parameter.default is not inspect.Parameter.empty
        and parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }


def _dataclass_defaults(cls: type) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        if field.default is not dataclasses.MISSING:
            defaults[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            defaults[field.name] = field.default_factory()
    return defaults


def fill_defaults(config: Any) -> Any:
    """Return a copy of plain-data ``config`` with target defaults written in, recursively.

    Values already set are kept. A target that cannot be imported is left as it is
    (instantiating it would fail anyway, with Hydra's own message). Defaults that are
    themselves ``_target_`` nodes (e.g. a dataclass default) are filled as well.
    """
    if isinstance(config, list):
        return [fill_defaults(item) for item in config]
    if not isinstance(config, dict):
        return config
    filled = {key: fill_defaults(value) for key, value in config.items()}
    target_path = filled.get("_target_")
    if isinstance(target_path, str):
        for name, default in _defaults_of(target_path).items():
            if name not in filled and name not in _HYDRA_KEYS:
                filled[name] = fill_defaults(to_plain(default))
    return filled


def _defaults_of(target_path: str) -> dict[str, Any]:
    target = import_target(target_path)
    return {} if target is None else target_defaults(target)


def import_target(path: str) -> Any | None:
    """The object a ``_target_`` path names (``package.module.Class.method``), or None when it cannot be imported."""
    try:
        steps = list(walk_target(path))
    except UnresolvedTarget:
        return None
    return steps[-1][1] if steps else None


class UnresolvedTarget(Exception):
    """A ``_target_`` path that names nothing; the message says where the walk stopped and why."""


def walk_target(path: str) -> Iterator[tuple[str, Any]]:
    """Resolve a ``_target_`` path step by step, as Hydra's ``_locate`` does, without calling the target.

    Yields ``(dotted path so far, object)``: first the module named by the first part, then
    for each further part the attribute of that name, or, when a module lacks it, its
    submodule of that name (imported). The last object is the target. The walk is lazy: a
    caller that stops iterating (a refused step) stops it before the next import or
    attribute lookup. Raises :class:`UnresolvedTarget` when a part names nothing.
    """
    parts = path.split(".")
    if not all(parts):
        raise UnresolvedTarget(f"{path!r} is not a dotted path")
    found = _import_module(parts[0])
    yield parts[0], found
    for index in range(1, len(parts)):
        parent, name = ".".join(parts[:index]), parts[index]
        found = _attribute_or_submodule(found, parent, name)
        yield f"{parent}.{name}", found


def _attribute_or_submodule(parent: Any, parent_path: str, name: str) -> Any:
    try:
        return getattr(parent, name)
    except AttributeError:
        if isinstance(parent, types.ModuleType):
            return _import_module(f"{parent_path}.{name}", missing=f"{parent_path} has no attribute or submodule {name!r}")
        raise UnresolvedTarget(f"{parent_path} has no attribute {name!r}") from None


def _import_module(name: str, missing: str | None = None) -> Any:
    """Import module ``name``; when it does not exist, the error says ``missing`` (if given)."""
    try:
        return importlib.import_module(name)
    except Exception as error:  # noqa: BLE001 - any failure to import means the path names nothing usable
        if missing is not None and isinstance(error, ModuleNotFoundError) and error.name == name:
            raise UnresolvedTarget(missing) from None
        raise UnresolvedTarget(f"cannot import {name}: {type(error).__name__}: {error}") from None


def identity_part(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a complete config that decides what a run computes.

    Everything but the tool's own settings node (store URI, objective name, capture
    mode), which change where and how a run is recorded, not its result.
    """
    return {key: value for key, value in config.items() if key != SETTINGS_KEY}


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of :func:`identity_part` of a complete config."""
    canonical = json.dumps(identity_part(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def flatten(config: Mapping[str, Any], prefix: str = "", into_lists: bool = False) -> dict[str, Any]:
    """Flatten nested dicts to dotted keys; a node's ``_target_`` is shown under the node's own key.

    ``{"aggregation": {"_target_": "m.Mean", "k": 1}}`` becomes
    ``{"aggregation": "m.Mean", "aggregation.k": 1}``. Lists stay values, unless
    ``into_lists``: then each item gets its index as a key (``blocks.0.width``).
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key == "_target_" and prefix:
            flat[prefix] = value
        elif isinstance(value, Mapping) and value and REPR_MARKER not in value:
            flat.update(flatten(value, dotted, into_lists))
        elif into_lists and isinstance(value, list) and value:
            flat.update(flatten({str(index): item for index, item in enumerate(value)}, dotted, into_lists))
        else:
            flat[dotted] = value
    return flat


def task_config(config: DictConfig) -> DictConfig:
    """The config the task function receives, as Hydra hands it over: a copy of ``config`` without its ``hydra`` node.

    The ``hydra`` node, most of a composed config, is not copied: deepcopy's memo stands an empty node in for it,
    which is then deleted as Hydra deletes it from its whole copy."""
    hydra_node = config._get_node("hydra")
    if hydra_node is None:
        return copy.deepcopy(config)
    task = copy.deepcopy(config, {id(hydra_node): DictConfig({})})
    with read_write(task), open_dict(task):
        del task["hydra"]
    return task


def task_data(config: DictConfig) -> dict[str, Any]:
    """``plain(task_config(config))``, without copying the ``hydra`` node first (~10x cheaper:
    recording and the worker's allowlist check read every job's task config this way).

    A config without interpolations is read as it stands (the values are what resolving would give); one with
    interpolations is resolved in a copy without the ``hydra`` node, where they resolve as in the task's config.
    """
    keys = [str(key) for key in config if key != "hydra"]
    as_given: dict[str, Any] = {key: _unresolved_plain(value) for key, value in config.items_ex(resolve=False, keys=keys)}  # type: ignore[misc]
    if not has_interpolation(as_given):
        return as_given
    return plain(OmegaConf.masked_copy(config, keys))


def _unresolved_plain(value: Any) -> Any:
    """A top-level value of :meth:`DictConfig.items_ex` (a node, or a leaf's value) as ``plain`` gives it, interpolations left as written."""
    if isinstance(value, Container):
        return OmegaConf.to_container(value, resolve=False, enum_to_str=True)
    return value.name if isinstance(value, enum.Enum) else value


def has_interpolation(value: Any) -> bool:
    """Whether plain data read without resolving holds an interpolation (or an escaped one: resolving unescapes it)."""
    return next(_interpolations(value), None) is not None


def _interpolations(value: Any) -> Iterator[str]:
    """The strings of plain data read without resolving that hold an interpolation (or an escaped one)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _interpolations(item)
    elif isinstance(value, list):
        for item in value:
            yield from _interpolations(item)
    elif isinstance(value, str) and "${" in value:
        yield value


def keep_interpolation_parses() -> None:
    """Make OmegaConf keep its parse of each interpolation it resolves (the latest :data:`_KEPT_PARSES` texts), in this
    process and in the processes it forks afterwards (see :func:`parse_interpolations`).

    OmegaConf parses an interpolation with ANTLR each time it resolves one. In a process forked from a worker, a first
    parse touches much of the parser's tables, each page of them then copied: ~2 ms CPU of a no-op job, since Hydra
    resolves its logging config, whose log file is an interpolation, for every job. A parse tree is only read while
    resolving, so one parse serves every resolution of the same text. This is the one change made to OmegaConf's
    objects here: ``omegaconf.base.parse``, which its resolution calls, is replaced by a cached version of itself.
    """
    if not hasattr(omegaconf.base.parse, "cache_info"):
        omegaconf.base.parse = functools.lru_cache(maxsize=_KEPT_PARSES)(omegaconf.base.parse)


_KEPT_PARSES = 1024


def parse_interpolations(value: Any) -> None:
    """Parse the interpolations of plain data ``value`` read from a config without resolving, to be kept (see
    :func:`keep_interpolation_parses`)."""
    for text in _interpolations(value):
        omegaconf.base.parse(text)


def plain(config: DictConfig) -> dict[str, Any]:
    """``config`` resolved into plain containers (enums as strings)."""
    return OmegaConf.to_container(config, resolve=True, enum_to_str=True)  # type: ignore[return-value]
