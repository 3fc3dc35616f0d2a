"""What identifies a job and what it is judged by: its config as given and as complete, its seed, its objective, its study's name.

Pure functions of a composed config (no per-process state), used by recording, enqueueing,
search history and backfill alike, so that all of them see a job the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hydra.types import TaskFunction
from omegaconf import DictConfig

from hyperspace_hydra.config import SETTINGS_KEY, fill_defaults, plain, task_data, to_plain
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.settings import effective_settings, redact_credentials


def given_and_complete(config: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The task config of the full ``config`` as plain data: as composed, and with target defaults filled in.

    The ``hyperspace`` node holds the effective settings (see :func:`effective_settings`),
    with any password in ``hyperspace.store`` replaced by ``***``.
    """
    return _given_and_complete_of(task_data(config))


def task_given_and_complete(task: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`given_and_complete` of a task config (one without its ``hydra`` node, see :func:`task_config`)."""
    return _given_and_complete_of(plain(task))


def _given_and_complete_of(task: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    given = _with_effective_settings(to_plain(task))
    _check_seed(given)
    return given, fill_defaults(given)


SEED_RANGE = range(-(2**63), 2**63)
"""The seeds a run can have: every store keeps a run's ``seed`` as a 64-bit integer."""


class BadSeedError(HyperspaceError):
    """A top-level ``seed`` that seeds nothing or that no store can record (a string, a float, beyond 64 bits): the job
    must not run, neither unseeded under a seed it names nor unrecorded."""


def _check_seed(config: Mapping[str, Any]) -> None:
    seed = config.get("seed")
    whole = seed_of(config)
    if seed is not None and (whole is None or whole not in SEED_RANGE):  # never None in a range: that scans it whole
        shown = f"{seed!r} (a {type(seed).__name__})" if not isinstance(seed, int) or isinstance(seed, bool) else str(seed)
        raise BadSeedError(f"seed must be a whole number from -2**63 to 2**63-1 (a run records it as a 64-bit integer), or null for none; not {shown}")


def _with_effective_settings(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with its ``hyperspace`` node as the settings in effect (the composed node
    leaves unset ones ``???``), the store's password replaced (records must not hold credentials)."""
    if SETTINGS_KEY not in config:
        return config
    settings = to_plain(effective_settings(config))
    if settings["store"] is not None:
        settings["store"] = redact_credentials(settings["store"])
    return {**config, SETTINGS_KEY: settings}


def seed_of(config: Mapping[str, Any]) -> int | None:
    """The top-level ``seed`` of a complete config when it is an int (a bool is not)."""
    seed = config.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def objective_value(result: Any, key: str | None) -> float | None:
    """The objective in a plain result: ``result[key]``, else the result if it is a number,
    else the only value of a one-entry dict; None when there is no such number."""
    if isinstance(result, Mapping):
        if key is not None:
            value = result.get(key)
        else:
            value = next(iter(result.values())) if len(result) == 1 else None
    else:
        value = result if key is None else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def missing_objective(result: Any, key: str | None) -> str | None:
    """Why a plain result has no place for the objective at all (None when it has one, whatever is there).

    The result lacks the key (``{"loss": ..}`` with objective ``acc``), is not a mapping while a key is named, or,
    with no key named, is neither a number nor a mapping of one value. A key that is present with no number (None,
    NaN from a diverged run) is the task's own answer for this run, not a missing objective."""
    if key is not None:
        if isinstance(result, Mapping):
            return None if key in result else f"its result has no {key!r} (it has {_keys(result)})"
        return f"it returned {_kind(result)}, not a mapping with {key!r}"
    if isinstance(result, Mapping):
        return None if len(result) == 1 else f"it returned {_keys(result)} and no objective is named among them"
    return None if isinstance(result, (int, float)) and not isinstance(result, bool) else f"it returned {_kind(result)}, not a number"


def _keys(result: Mapping[str, Any]) -> str:
    return ", ".join(sorted(map(str, result))) or "no key"


def _kind(result: Any) -> str:
    return "nothing" if result is None else f"a {type(result).__name__} ({result!r:.40})"


def app_name(config: DictConfig, task_function: TaskFunction, main: MainModule | None = None) -> str:
    """The study's app module (``study.run``) as ``python -m`` would name it, else Hydra's job name.

    A task function defined in ``__main__`` is named after the module run as ``python -m``:
    that of ``main`` when given (the sweep's process: in a job that a launcher such as
    submitit or joblib runs in another process, ``__main__`` is that launcher's), else this
    process's.
    """
    module = task_function.__module__
    if module == "__main__":
        return (main or MainModule.of_this_process()).name or str(config.hydra.job.name)
    return module


@dataclass(frozen=True)
class MainModule:
    """A process's ``__main__``: the module run as ``python -m`` (None for a script) and its file."""

    name: str | None
    file: str | None

    @classmethod
    def of_this_process(cls) -> MainModule:
        """This process's ``__main__``."""
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        return cls(spec.name if spec is not None else None, getattr(main, "__file__", None))
