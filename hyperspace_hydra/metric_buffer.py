"""Metric series logged by a running task, buffered until the next store write."""

from __future__ import annotations

import operator
import threading
from typing import Any

from hyperspace_hydra.store.base import METRIC_NAME_LENGTH, STEP_RANGE, utcnow


class MetricBuffer:
    """Collects ``(name, step, value)`` points; steps count up per name when not given.

    Safe to call from the task's thread while a heartbeat thread takes the points.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_step: dict[str, int] = {}
        self._pending: dict[str, dict[str, list[Any]]] = {}

    def add(self, name: str, value: float, step: int | None = None) -> int:
        """Buffer one point and return its step; ``step`` defaults to the name's previous step + 1 (first: 0).

        A point that no store could keep raises ``ValueError`` here, in the task, naming what is wrong (see
        :func:`checked_point`), instead of failing the write of the run's end later."""
        with self._lock:
            if step is None:
                step = self._last_step.get(name, -1) + 1
            step, number = checked_point(name, value, step)
            self._last_step[name] = step
            series = self._pending.setdefault(name, {"steps": [], "values": [], "timestamps": []})
            series["steps"].append(step)
            series["values"].append(number)
            series["timestamps"].append(utcnow())
        return step

    def take(self) -> dict[str, dict[str, list[Any]]]:
        """Return and forget the buffered points, in Sacred's ``metrics_by_name`` shape."""
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending


def checked_point(name: Any, value: Any, step: Any) -> tuple[int, float]:
    """The step and value of a point of series ``name`` as stored; ``ValueError`` for a name that is not a
    non-empty string of at most :data:`METRIC_NAME_LENGTH` characters, a step that is not a whole number of 64
    bits (an int, a numpy or torch integer; ``1.5`` is not truncated), or a value that ``float()`` refuses
    (NaN and infinities are numbers; a one-element tensor is one)."""
    if not isinstance(name, str) or not 0 < len(name) <= METRIC_NAME_LENGTH:
        given = f"a name of {len(name)} characters" if isinstance(name, str) and name else repr(name)
        raise ValueError(f"log_scalar: a metric's name is a non-empty string of at most {METRIC_NAME_LENGTH} characters, not {given:.60}")
    try:
        whole = operator.index(step)
    except TypeError:
        whole = None
    if whole is None or isinstance(step, bool) or whole not in STEP_RANGE:
        raise ValueError(f"log_scalar({name!r:.60}): the step is a whole number from -2**63 to 2**63-1, not {step!r:.60}")
    try:
        return whole, float(value)
    except (TypeError, ValueError):
        raise ValueError(f"log_scalar({name!r:.60}): the value is a number, not {value!r:.60}") from None
