"""Metric series logged by a running task, buffered until the next store write."""

from __future__ import annotations

import threading
from typing import Any

from hyperspace_hydra.store.base import utcnow


class MetricBuffer:
    """Collects ``(name, step, value)`` points; steps count up per name when not given.

    Safe to call from the task's thread while a heartbeat thread takes the points.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_step: dict[str, int] = {}
        self._pending: dict[str, dict[str, list[Any]]] = {}

    def add(self, name: str, value: float, step: int | None = None) -> int:
        """Buffer one point and return its step; ``step`` defaults to the name's previous step + 1 (first: 0)."""
        with self._lock:
            if step is None:
                step = self._last_step.get(name, -1) + 1
            self._last_step[name] = step
            series = self._pending.setdefault(name, {"steps": [], "values": [], "timestamps": []})
            series["steps"].append(int(step))
            series["values"].append(float(value))
            series["timestamps"].append(utcnow())
        return int(step)

    def take(self) -> dict[str, dict[str, list[Any]]]:
        """Return and forget the buffered points, in Sacred's ``metrics_by_name`` shape."""
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending
