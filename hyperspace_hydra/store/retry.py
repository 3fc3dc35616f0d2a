"""Ride out a store that is briefly unreachable or unwritable (database restart, network blip, full disk).

Backends raise :class:`StoreUnavailableError` when the database cannot be reached or
written while opening the store or during an operation (for SQLite: disk full, file
read-only, locked beyond the busy timeout, I/O error, a damaged page). :func:`open_retrying` opens a store
and wraps it in a :class:`RetryingStore`, which repeats such operations with
exponential backoff until they succeed or a time budget is spent. Workers and the
recording callback use it; one-shot CLI commands fail at once with one line.

Retrying is safe for the operations that matter: finishing a run or ending a job is
conditional on the current state, so a repeat after an unacknowledged success does
nothing; a claim whose acknowledgement was lost comes back to the queue when its
lease expires. A lost acknowledgement of ``start_run`` can leave an orphan RUNNING
run, of ``add_metrics`` repeated points.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any, Callable, TypeVar

from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.settings import redact_credentials
from hyperspace_hydra.store.base import Store

log = logging.getLogger("hyperspace_hydra")

DEFAULT_BUDGET_SECONDS = 300.0
_FIRST_DELAY = 0.2
_LONGEST_DELAY = 10.0
_T = TypeVar("_T")


class StoreUnavailableError(HyperspaceError):
    """The store's database could not be reached or written; it may work again soon (or once someone frees space)."""


def retry_while_unavailable(operation: Callable[[], _T], what: str, budget: float = DEFAULT_BUDGET_SECONDS) -> _T:
    """Call ``operation`` until it does not raise :class:`StoreUnavailableError` or ``budget`` seconds are spent.

    Waits 0.2 s after the first failure, doubling up to 10 s; each failure is logged
    as a warning. Raises the last error when the budget is spent.
    """
    deadline = time.monotonic() + budget
    delay = _FIRST_DELAY
    while True:
        try:
            return operation()
        except StoreUnavailableError as error:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("hyperspace: %s failed (%s); retrying in %.1f s", what, error, delay)
            time.sleep(delay)
            delay = min(delay * 2, _LONGEST_DELAY)


class RetryingStore:
    """A :class:`Store` whose operations are retried while its database is unavailable.

    Every other error reaches the caller at once.
    """

    def __init__(self, store: Store, budget: float = DEFAULT_BUDGET_SECONDS) -> None:
        self.store = store
        self.uri = store.uri
        self._budget = budget

    def __getattr__(self, name: str) -> Any:
        operation = getattr(self.store, name)
        if not callable(operation) or name.startswith("_"):
            return operation

        @functools.wraps(operation)
        def retrying(*args: Any, **kwargs: Any) -> Any:
            return retry_while_unavailable(lambda: operation(*args, **kwargs), f"{name} on {redact_credentials(self.uri)}", self._budget)

        return retrying

    def close(self) -> None:
        """Close the wrapped store."""
        self.store.close()

    def __enter__(self) -> RetryingStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_retrying(uri: str, budget: float = DEFAULT_BUDGET_SECONDS) -> RetryingStore:
    """Open the store at ``uri``, waiting out an unavailable database, wrapped in a :class:`RetryingStore`."""
    from hyperspace_hydra.store import open_store

    store = retry_while_unavailable(lambda: open_store(uri), f"opening {redact_credentials(uri)}", budget)
    return RetryingStore(store, budget)
