"""Plain overrides of parameters that exist only as code defaults of a ``_target_``.

A study's config often names a class by ``_target_`` and leaves most of its parameters to the
class's signature or dataclass fields: ``optimizer.momentum`` is then not in the composed
config, and Hydra refuses ``optimizer.momentum=0.9`` ("Could not override … use +"), on the
command line of a run as well as among the fixed overrides of a ``--multirun`` (which Hydra
applies to the primary config before any sweeper or launcher starts).

:func:`install` makes Hydra's composition read such an override as ``++optimizer.momentum=0.9``
when, and only when, the config is a study's (it has the ``hyperspace`` node), the path is
missing from it, and the path exists once the target defaults of the nearest node above it
are filled in, as recording fills them (:func:`hyperspace_hydra.config.fill_defaults`). Every
other override, and every config of an app that does not use this tool, is composed exactly
as Hydra composes it, errors included. The override is recorded as the user wrote it, so a
reproduce command and ``override_dirname`` stay the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig, OmegaConf

from hyperspace_hydra.config import fill_defaults, flatten
from hyperspace_hydra.settings import SETTINGS_KEY

ApplyOverrides = Callable[[list[Override], DictConfig], None]


def install() -> None:
    """Make Hydra's composition take a plain override of a defaults-only target parameter (module docstring); idempotent."""
    hydra_apply = ConfigLoaderImpl._apply_overrides_to_config
    if getattr(hydra_apply, "reads_target_defaults", False):
        return
    ConfigLoaderImpl._apply_overrides_to_config = staticmethod(_reading_target_defaults(hydra_apply))  # type: ignore[method-assign,assignment]


def _reading_target_defaults(hydra_apply: ApplyOverrides) -> ApplyOverrides:
    def apply(overrides: list[Override], cfg: DictConfig) -> None:
        if SETTINGS_KEY in cfg:
            overrides = [_as_force_add(override) if is_defaults_only(cfg, override) else override for override in overrides]
        hydra_apply(overrides, cfg)

    apply.reads_target_defaults = True  # type: ignore[attr-defined]
    return apply


def _as_force_add(override: Override) -> Override:
    return dataclasses.replace(override, type=OverrideType.FORCE_ADD)


def is_defaults_only(cfg: DictConfig, override: Override) -> bool:
    """Whether ``override`` plainly sets a path that ``cfg`` lacks but a target default of a node above it provides."""
    if override.type != OverrideType.CHANGE or override.package is not None:
        return False
    path = override.key_or_group
    if path.startswith("hydra.") or _selected(cfg, path) is not _MISSING:
        return False
    parts = path.split(".")
    for depth in range(len(parts) - 1, 0, -1):
        node = _selected(cfg, ".".join(parts[:depth]))
        if isinstance(node, DictConfig):
            return _provides(node, ".".join(parts[depth:]))
    return False


def _provides(node: DictConfig, rest: str) -> bool:
    """Whether the node, with its target defaults filled in, has the dotted path ``rest``."""
    flat = flatten(fill_defaults(OmegaConf.to_container(node, resolve=False)), into_lists=True)
    return rest in flat or any(key.startswith(rest + ".") for key in flat)


def _selected(cfg: DictConfig, path: str) -> Any:
    """The node or value at ``path``, or ``_MISSING`` when there is none (or the path runs through a non-mapping)."""
    try:
        return OmegaConf.select(cfg, path, default=_MISSING, throw_on_missing=False)
    except Exception:  # noqa: BLE001 - OmegaConf raises several kinds for a path through a list or a value
        return _MISSING


_MISSING: Any = object()
