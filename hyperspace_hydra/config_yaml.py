"""The YAML of a job's ``.hydra`` files, byte for byte as ``OmegaConf.to_yaml`` writes it, each mapping entry written once.

Writing ``hydra.yaml`` was the largest step of running a no-op job: PyYAML's emitter is pure Python,
and libyaml's does not fold long strings as it does, so it cannot stand in. But the entries of a
block mapping are written one after the other, each from the start of a line at the indentation of
its depth, so a document is the concatenation of its entries' texts, and the text of an entry whose
value is a non-empty mapping is its key's line followed by the texts of that mapping's entries. Most
entries are the same for every job of a sweep (help texts, logging, launcher, sweeper, most of
``runtime`` and ``job``), and their texts are kept, by where they are, key and value, in this
process. A worker writes the entries of each config it composes in full before it forks
(:func:`remember`), so its job processes write only the entries that differ, at whatever depth: the
run's directory, its overrides, ``job.override_dirname``, ``runtime.output_dir``, the swept values.
"""

from __future__ import annotations

from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf._utils import get_omega_conf_dumper

_HYDRA = "hydra"
_KEPT_ENTRIES = 1024
_INDENT = "  "
_entries: dict[tuple[str, str], str] = {}
"""The text of each entry written so far, by ``repr`` of the keys of the mappings it is in (from the top) and ``repr``
of its key and value (``repr`` tells 1, 1.0, True and '1' apart, which ``==`` does not)."""
_key_lines: dict[tuple[str, str], str | None] = {}
"""The line of each key whose value is a non-empty mapping, by ``repr`` of where it is and of the key; None for a key
that PyYAML does not write on one line of its own (then its entry is written whole)."""


def to_yaml(node: Any) -> str:
    """``OmegaConf.to_yaml(node)`` of an OmegaConf config ``node``, byte for byte (see the module docstring)."""
    container = OmegaConf.to_container(node, resolve=False, enum_to_str=True)
    if isinstance(container, dict) and container:
        return _mapping_text((), container)
    return _dump(container)


def remember(config: DictConfig) -> None:
    """Write, and keep, the entries of the ``.hydra`` files of a job of the full ``config`` (``config.yaml``: the config
    without its ``hydra`` node; ``hydra.yaml``: that node), so that processes forked afterwards find them written."""
    container = OmegaConf.to_container(config, resolve=False, enum_to_str=True)
    assert isinstance(container, dict)
    hydra = container.pop(_HYDRA, None)
    _mapping_text((), container)
    if hydra:
        _mapping_text((), {_HYDRA: hydra})


def _mapping_text(path: tuple[Any, ...], mapping: dict[Any, Any]) -> str:
    """The text of the entries of ``mapping``, found in the document at the keys ``path``."""
    return "".join(_entry(path, key, value) for key, value in mapping.items())


def _entry(path: tuple[Any, ...], key: Any, value: Any) -> str:
    known = (repr(path), repr((key, value)))
    text = _entries.get(known)
    if text is None:
        line = _key_line(path, key) if isinstance(value, dict) and value else None
        if line is not None:
            text = line + _mapping_text((*path, key), value)
        else:
            text = _dump_at(path, {key: value})
        if len(_entries) >= _KEPT_ENTRIES:
            _entries.clear()
        _entries[known] = text
    return text


def _key_line(path: tuple[Any, ...], key: Any) -> str | None:
    """The line PyYAML writes for ``key`` at ``path`` when its value is a non-empty mapping (whose entries follow on lines
    of their own), or None when it does not write the key alone on one line (a complex key)."""
    known = (repr(path), repr(key))
    if known not in _key_lines:
        indent = _INDENT * len(path)
        line, _, rest = _dump_at(path, {key: {0: 0}}).partition("\n")
        _key_lines[known] = f"{line}\n" if rest == f"{indent}{_INDENT}0: 0\n" and line.startswith(indent) else None
    return _key_lines[known]


def _dump_at(path: tuple[Any, ...], mapping: dict[Any, Any]) -> str:
    """The text of the entries of ``mapping`` where the keys ``path`` lead (each with its one line, see :func:`_key_line`)."""
    document: dict[Any, Any] = mapping
    for key in reversed(path):
        document = {key: document}
    lines = "".join(_key_lines[(repr(path[:depth]), repr(key))] or "" for depth, key in enumerate(path))
    text = _dump(document)
    assert text.startswith(lines), "the keys of a path are written on their lines"
    return text[len(lines) :]


def _dump(container: Any) -> str:
    """What ``OmegaConf.to_yaml`` makes of ``container``."""
    return yaml.dump(container, default_flow_style=False, allow_unicode=True, sort_keys=False, Dumper=get_omega_conf_dumper())  # type: ignore[no-any-return]
