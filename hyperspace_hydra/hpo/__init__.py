"""Hyper-parameter search with Optuna samplers, informed by every compatible past run.

``space`` parses Hydra-style search spaces, ``history`` finds past runs that lie in
a space, ``tuner`` rebuilds an Optuna study from the store and asks for the next
trials; the sweeper plugin and the worker drive it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hyperspace_hydra.store.base import COMPLETED, PRUNED

SEARCH = "search"
"""The kind of a search sweep (kept here, free of Optuna, for modules that only need the name)."""
NO_PRUNER = "none"
"""The pruner of a search that prunes nothing (``hydra.sweeper.pruner``, the default)."""


def prunes(sweep: Mapping[str, Any]) -> bool:
    """Whether a sweep (as :meth:`Store.get_sweep` gives it) is a search with a pruner."""
    return bool(sweep["kind"] == SEARCH and (sweep["spec"] or {}).get("pruner", NO_PRUNER) != NO_PRUNER)


def pruned_apart(job_counts: Mapping[str, int], pruned: int) -> dict[str, int]:
    """A queued search's jobs per state with its ``pruned`` trials (whose jobs COMPLETED) counted apart as PRUNED."""
    if not pruned:
        return dict(job_counts)
    return {**job_counts, COMPLETED: job_counts.get(COMPLETED, 0) - pruned, PRUNED: pruned}
