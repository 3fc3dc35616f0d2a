"""The YAML of a job's ``.hydra`` files, byte for byte as ``OmegaConf.to_yaml`` writes it, each mapping entry written once.

Writing ``hydra.yaml`` was the largest step of running a no-op job: PyYAML's emitter is pure Python,
and libyaml's does not fold long strings as it does, so it cannot stand in. But the entries of the
top mapping (of ``hydra`` in ``hydra.yaml``) are written one after the other, each from the start of
a line at the same indentation, so a document is the concatenation of its entries' texts, and most
entries are the same for every job of a sweep (help texts, logging, launcher, sweeper). Their texts
are kept, by entry and value, in this process. A worker writes the entries of each config it
composes in full before it forks (:func:`remember`), so its job processes write only the entries
that differ (the run's directory, overrides and runtime).
"""

from __future__ import annotations

from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf._utils import get_omega_conf_dumper

_HYDRA = "hydra"
_KEPT_ENTRIES = 1024
_entries: dict[tuple[str | None, str], str] = {}
"""The text of each entry written so far, by the mapping it is in (None: the top) and ``repr`` of its key and value
(``repr`` tells 1, 1.0, True and '1' apart, which ``==`` does not)."""


def to_yaml(node: Any) -> str:
    """``OmegaConf.to_yaml(node)`` of an OmegaConf config ``node``, byte for byte (see the module docstring)."""
    container = OmegaConf.to_container(node, resolve=False, enum_to_str=True)
    if isinstance(container, dict) and container:
        inner = container.get(_HYDRA) if len(container) == 1 else None
        if isinstance(inner, dict) and inner:
            return f"{_HYDRA}:\n" + "".join(_entry(_HYDRA, key, value) for key, value in inner.items())
        return "".join(_entry(None, key, value) for key, value in container.items())
    return _dump(container)


def remember(config: DictConfig) -> None:
    """Write, and keep, the entries of the ``.hydra`` files of a job of the full ``config`` (``config.yaml``: the config
    without its ``hydra`` node; ``hydra.yaml``: that node), so that processes forked afterwards find them written."""
    container = OmegaConf.to_container(config, resolve=False, enum_to_str=True)
    assert isinstance(container, dict)
    hydra = container.pop(_HYDRA, None)
    for key, value in container.items():
        _entry(None, key, value)
    for key, value in (hydra or {}).items():
        _entry(_HYDRA, key, value)


def _entry(inside: str | None, key: Any, value: Any) -> str:
    known = (inside, repr((key, value)))
    text = _entries.get(known)
    if text is None:
        if inside is None:
            text = _dump({key: value})
        else:
            text = _dump({inside: {key: value}}).removeprefix(f"{inside}:\n")
        if len(_entries) >= _KEPT_ENTRIES:
            _entries.clear()
        _entries[known] = text
    return text


def _dump(container: Any) -> str:
    """What ``OmegaConf.to_yaml`` makes of ``container``."""
    return yaml.dump(container, default_flow_style=False, allow_unicode=True, sort_keys=False, Dumper=get_omega_conf_dumper())  # type: ignore[no-any-return]
