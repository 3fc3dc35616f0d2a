"""Runs as pandas DataFrames, for notebooks: :func:`runs` and :func:`metrics`.

pandas is an optional extra (``pip install 'hyperspace-hydra[analysis]'``), imported only
when one of these functions is called. The store is resolved as for the CLI: ``store`` if
given (a URI or an open :class:`~hyperspace_hydra.store.Store`), else ``$HYPERSPACE_STORE``,
else ``sqlite:///.hyperspace/store.db`` in the current directory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.filters import parse_condition, parse_sort, resolve_paths
from hyperspace_hydra.results import run_rows, run_table
from hyperspace_hydra.settings import resolve_store_uri
from hyperspace_hydra.store import Store, open_store
from hyperspace_hydra.store.base import Condition

if TYPE_CHECKING:
    import pandas

def runs(
    store: Store | str | None = None,
    task: str | None = None,
    sweep: int | None = None,
    status: str | None = None,
    where: Sequence[str | Condition] = (),
    sort: str | None = None,
    limit: int | None = None,
    all_columns: bool = False,
) -> pandas.DataFrame:
    """The table of ``hyperspace runs ls``: one row per run with id, status, task, its config
    values, result (the objective when the run has one, else its whole result) and duration
    (seconds), under the same column names.

    The config columns are those whose values differ among the runs, named by their shortest
    unique dotted suffix; with ``all_columns``, every value of the config (without the
    ``hyperspace`` settings) under its full dotted path. A config column whose name is also a
    run column gets ``config.`` in front. ``where`` holds filters in the
    syntax of ``runs ls --where`` (``"classifier.C<1"``) or :class:`Condition` objects; ``sort``
    and ``limit`` work as in ``runs ls`` (``sort="-result"``: highest objective first). Paths may
    be short names as the columns show them, and a path no run has is an error
    (:func:`~hyperspace_hydra.filters.resolve_paths`). The store does the filtering, ordering
    and limiting.
    """
    pandas = _pandas("runs")
    with _opened(store) as opened:
        conditions, order = resolve_paths(opened, _conditions(where), parse_sort(sort) if sort else None, task=task, sweep_id=sweep, status=status)
        found = opened.list_runs(limit, where=conditions, sort=order, task=task, sweep_id=sweep, status=status)
    names, rows = run_rows(found, every=all_columns)
    header, cells = run_table(rows, names)
    return pandas.DataFrame(cells, columns=header)


def metrics(run_id: int, store: Store | str | None = None) -> pandas.DataFrame:
    """The metric series of a run, one row per point: name, step, value, timestamp (naive UTC), by name then step."""
    pandas = _pandas("metrics")
    with _opened(store) as opened:
        series = opened.get_metrics(run_id)
    rows = [
        (name, step, value, timestamp)
        for name, points in series.items()
        for step, value, timestamp in zip(points["steps"], points["values"], points["timestamps"])
    ]
    return pandas.DataFrame(rows, columns=["name", "step", "value", "timestamp"])


def _conditions(where: str | Sequence[str | Condition]) -> list[Condition]:
    filters = [where] if isinstance(where, str) else where  # one filter given as a string, not a list of its characters
    return [item if isinstance(item, Condition) else parse_condition(item) for item in filters]


def _pandas(caller: str) -> Any:
    try:
        import pandas
    except ImportError:
        raise HyperspaceError(f"pandas is needed for {caller}(): pip install 'hyperspace-hydra[analysis]'") from None
    return pandas


@contextlib.contextmanager
def _opened(store: Store | str | None) -> Iterator[Store]:
    """``store`` itself when it is open (its owner closes it), else the store it names, closed afterwards."""
    if isinstance(store, Store):
        yield store
        return
    with open_store(resolve_store_uri(store, None, Path.cwd()), create=False) as opened:
        opened.end_stale_runs()  # runs whose process died unseen are DIED, not RUNNING, in what we return
        yield opened
