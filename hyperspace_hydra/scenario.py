"""Optional base class for a study's scenarios (any callable target works as well)."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

from hyperspace_hydra.tracking import log_scalar


class Scenario(abc.ABC):
    """A template of a task: builds data and model from swappable pieces, trains, evaluates.

    A task config names a subclass as its ``_target_`` with the data parameters; the
    study's entry point instantiates it and calls :meth:`run` with the instantiated
    pieces (aggregation, classifier, schedule, ...) and the seed. The return value is
    the run's result: a float, or a dict of metrics one of which is the objective
    (``hyperspace.objective``).
    """

    @abc.abstractmethod
    def run(self, seed: int, **pieces: Any) -> float | Mapping[str, float]:
        """Build, train and evaluate; return the metric(s)."""

    def log_scalar(self, name: str, value: float, step: int | None = None) -> None:
        """Record one point of a metric series of the current run (see :func:`hyperspace_hydra.log_scalar`)."""
        log_scalar(name, value, step)
