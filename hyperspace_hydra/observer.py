"""An observer of Sacred's kind that writes the run life cycle into a :class:`Store`.

The events and their arguments are Sacred's (``started``, ``heartbeat``,
``completed``, ``interrupted``, ``failed``, ``log_metrics``); the document written is
the one Sacred's MongoObserver writes, plus this project's fields, which the caller
passes once as ``extra`` when the run starts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from hyperspace_hydra.config import to_plain
from hyperspace_hydra.store import COMPLETED, FAILED, INTERRUPTED, Claim, MetricPoint, Store
from hyperspace_hydra.store.base import PRUNED

DOCUMENT_FORMAT = "hyperspace-1 (MongoObserver-0.7.0 compatible)"


class StoreObserver:
    """Records one run in ``store``; ``run_id`` is known after :meth:`started_event`.

    It has the events of Sacred's ``RunObserver`` that a recorded job sends, without
    subclassing it: importing Sacred costs half a second (it probes for pandas and
    more), which every ``hyperspace`` command would pay.

    As in Sacred, the caller sends a last heartbeat (full captured output, info)
    right before the final event; sent with :meth:`hold_heartbeat`, it is written in
    the final event's transaction. ``objective_of`` maps the plain result to the
    objective value (or None). With ``claim`` the run executes a queued job, and
    the final event ends the job too (see :meth:`Store.finish_run`). The final events
    return whether they finished the run as asked.
    """

    def __init__(
        self,
        store: Store,
        extra: Mapping[str, Any],
        objective_of: Callable[[Any], float | None],
        claim: Claim | None = None,
    ) -> None:
        self.store = store
        self.claim = claim
        self.run_id: int | None = None
        self.finished: bool | None = None
        """After the final event: whether it finished the run as asked (with ``claim``: and ended the job); None before."""
        self.final_status: str | None = None
        """The status the final event asked for; None before."""
        self._extra = dict(extra)
        self._objective_of = objective_of
        self._info: dict[str, Any] = {}
        self._held_beat: dict[str, Any] = {}

    def started_event(
        self,
        ex_info: Mapping[str, Any],
        command: str,
        host_info: Mapping[str, Any],
        start_time: dt.datetime,
        config: Mapping[str, Any],
        meta_info: Mapping[str, Any],
        _id: int | None,
    ) -> int:
        document = {
            **self._extra,
            "experiment": dict(ex_info),
            "command": command,
            "host": to_plain(host_info),
            "start_time": start_time,
            "heartbeat": start_time,
            "config": config,
            "meta": dict(meta_info),
            "info": {},
            "artifacts": [],
            "resources": [],
            "captured_out": "",
            "format": DOCUMENT_FORMAT,
        }
        self.run_id = self.store.start_run(document, claim=self.claim)
        return self.run_id

    def heartbeat_event(self, info: Mapping[str, Any], captured_out: str, beat_time: dt.datetime, result: Any) -> None:
        self.store.update_run(self._require_id(), self._beat(info, captured_out, beat_time, result), claim=self.claim)

    def hold_heartbeat(self, info: Mapping[str, Any], captured_out: str, beat_time: dt.datetime) -> None:
        """The last heartbeat, written together with the final event that must follow (one write instead of two)."""
        self._held_beat = self._beat(info, captured_out, beat_time, None)

    def _beat(self, info: Mapping[str, Any], captured_out: str, beat_time: dt.datetime, result: Any) -> dict[str, Any]:
        self._info.update(info)
        changes = {"info": to_plain(self._info), "captured_out": captured_out, "heartbeat": beat_time}
        if result is not None:
            changes["result"] = to_plain(result)
        return changes

    def completed_event(self, stop_time: dt.datetime, result: Any) -> bool:
        plain = to_plain(result)
        changes = {"stop_time": stop_time, "result": plain, "objective": self._objective_of(plain)}
        return self._finish(COMPLETED, changes)

    def pruned_event(self, stop_time: dt.datetime, result: Any, stopped_at: Mapping[str, Any] | None) -> bool:
        """Finish the run as PRUNED (not one of Sacred's events): ``stopped_at`` (the metric, step and value its pruner
        stopped it at) goes into ``info.pruned``; a result the task still returned is kept, but scores nothing."""
        if stopped_at is not None:
            self._info["pruned"] = dict(stopped_at)
        changes = {"stop_time": stop_time, "info": to_plain(self._info)}
        if result is not None:
            changes["result"] = to_plain(result)
        return self._finish(PRUNED, changes)

    def interrupted_event(self, interrupt_time: dt.datetime, status: str = INTERRUPTED) -> bool:
        return self._finish(status, {"stop_time": interrupt_time})

    def failed_event(self, fail_time: dt.datetime, fail_trace: list[str]) -> bool:
        return self._finish(FAILED, {"stop_time": fail_time, "fail_trace": list(fail_trace)})

    def log_metrics(self, metrics_by_name: Mapping[str, Mapping[str, list[Any]]], info: Mapping[str, Any]) -> None:
        points = [
            MetricPoint(name, step, value, timestamp)
            for name, series in metrics_by_name.items()
            for step, value, timestamp in zip(series["steps"], series["values"], series["timestamps"])
        ]
        self.store.add_metrics(self._require_id(), points, claim=self.claim)
        known = {entry["name"] for entry in self._info.get("metrics", [])}
        new = [{"name": name} for name in metrics_by_name if name not in known]
        self._info["metrics"] = [*self._info.get("metrics", []), *new]

    def _finish(self, status: str, changes: Mapping[str, Any]) -> bool:
        self.final_status = status
        self.finished = self.store.finish_run(self._require_id(), status, {**self._held_beat, **changes}, claim=self.claim)
        return self.finished

    def _require_id(self) -> int:
        if self.run_id is None:
            raise RuntimeError("started_event must come first")
        return self.run_id
