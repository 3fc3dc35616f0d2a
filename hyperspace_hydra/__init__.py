"""hyperspace_hydra: record, queue and tune Hydra experiments.

Task code needs nothing from here; :func:`log_scalar` (with :func:`should_stop` and
:class:`Pruned` for a search's pruner) and :class:`Scenario` are optional sugar. :class:`Queue` and :func:`compose` serve notebooks, and so do
:func:`runs` and :func:`metrics` (pandas DataFrames; filters as :class:`Condition` or
strings); the rest is used through the Hydra plugins and the ``hyperspace`` CLI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hyperspace_hydra.analysis import metrics, runs
    from hyperspace_hydra.app import compose
    from hyperspace_hydra.errors import HyperspaceError
    from hyperspace_hydra.queue import Queue
    from hyperspace_hydra.scenario import Scenario
    from hyperspace_hydra.store import Condition, open_store
    from hyperspace_hydra.tracking import Pruned, log_scalar, should_stop

__version__ = "0.1.0"

_HOMES = {
    "metrics": "analysis",
    "runs": "analysis",
    "compose": "app",
    "HyperspaceError": "errors",
    "Queue": "queue",
    "Scenario": "scenario",
    "Condition": "store",
    "open_store": "store",
    "log_scalar": "tracking",
    "Pruned": "tracking",
    "should_stop": "tracking",
}
"""The module each public name lives in; a name is imported on first use, so that
``import hyperspace_hydra`` (done by every plugin and ``hyperspace`` command) stays light."""

__all__ = [
    "Condition", "HyperspaceError", "Pruned", "Queue", "Scenario", "__version__", "compose", "log_scalar", "metrics", "open_store", "runs",
    "should_stop",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'hyperspace_hydra' has no attribute {name!r}")
    return getattr(importlib.import_module(f"hyperspace_hydra.{_HOMES[name]}"), name)
