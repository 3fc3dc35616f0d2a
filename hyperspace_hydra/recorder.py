"""Record one run while it executes: start, heartbeats, captured output, metrics, end.

A :class:`RunRecorder` is launcher-agnostic: the Hydra callback creates one when a job
starts and finishes it when the job ends; a process that dies in between (Ctrl-C,
SIGTERM, ``sys.exit`` in the task) finishes it as INTERRUPTED from an ``atexit`` hook.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any, Callable

from hyperspace_hydra.capture import CapturedOutput, as_a_terminal_shows, capture_output
from hyperspace_hydra.metric_buffer import MetricBuffer
from hyperspace_hydra.observer import StoreObserver
from hyperspace_hydra.store import INTERRUPTED
from hyperspace_hydra.store.base import ClaimLostError, utcnow

log = logging.getLogger("hyperspace_hydra")

_active: RunRecorder | None = None

StepWatcher = Callable[[int, float], bool]
"""Asked with each step and value of the metric it watches; True when the run should stop (a search's pruner)."""


def active_recorder() -> RunRecorder | None:
    """The recorder of the run executing in this process, if any."""
    return _active


class RunRecorder:
    """Drives a :class:`StoreObserver` through one run's life cycle.

    Store writes happen from the task's thread and from the process's heartbeat thread (see
    :class:`_Heart`); a lock keeps them one at a time. ``capture`` is a Sacred capture mode (fd, sys, no; see :mod:`hyperspace_hydra.capture`).
    A run costs two writes to the store (start, end, with the last heartbeat in the
    end's write) plus one per heartbeat and one per batch of metrics.
    """

    def __init__(self, observer: StoreObserver, capture: str, heartbeat_seconds: float) -> None:
        self.observer = observer
        self.metrics = MetricBuffer()
        self._capture_mode = capture
        self.heartbeat_seconds = heartbeat_seconds
        self._lock = threading.Lock()
        self._exit_stack = contextlib.ExitStack()
        self._output: CapturedOutput | None = None
        self._captured = ""
        self._finished = False
        self._watched: tuple[str, StepWatcher] | None = None
        self.stopped_at: dict[str, Any] | None = None
        """The metric, step and value at which the run's watcher said it should stop; None while it runs on."""
        self.stops_itself = False
        """Whether the task asks itself whether to stop (``should_stop``) instead of being stopped by ``Pruned``."""

    def start(self, start_info: Mapping[str, Any]) -> int:
        """Write the RUNNING run (``start_info`` holds started_event's arguments), start capture and heartbeats."""
        global _active
        run_id = self.observer.started_event(**start_info, _id=None)
        self._output = self._exit_stack.enter_context(capture_output(self._capture_mode))
        self._exit_stack.enter_context(sigterm_exits())
        _heart().add(self)
        _active = self
        return run_id

    @property
    def run_id(self) -> int | None:
        """The run's id in its store (None before :meth:`start`)."""
        return self.observer.run_id

    def watch(self, name: str, watcher: StepWatcher) -> None:
        """Ask ``watcher`` at each point of metric ``name`` whether the run should stop (until it says so once)."""
        self._watched = (name, watcher)

    def record_point(self, name: str, value: float, step: int | None) -> bool:
        """Buffer a metric point; True when it is a point of the watched metric and the run should stop."""
        step = self.metrics.add(name, value, step)
        if self._watched is None or name != self._watched[0]:
            return False
        if self.stopped_at is None and self._watched[1](step, float(value)):
            self.stopped_at = {"metric": name, "step": step, "value": float(value)}
        return self.stopped_at is not None

    def completed(self, result: Any) -> None:
        """Finish the run as COMPLETED with the task's return value."""
        self._finish(lambda now: self.observer.completed_event(now, result))

    def failed(self, error: BaseException) -> None:
        """Finish the run as FAILED with the exception's traceback."""
        trace = traceback.format_exception(type(error), error, error.__traceback__)
        self._finish(lambda now: self.observer.failed_event(now, trace))

    def pruned(self, result: Any) -> None:
        """Finish the run as PRUNED (its pruner stopped it; see :attr:`stopped_at`), keeping a result it returned."""
        self._finish(lambda now: self.observer.pruned_event(now, result, self.stopped_at))

    def interrupted(self) -> None:
        """Finish the run as INTERRUPTED (the process is stopping before the task returned)."""
        self._finish(lambda now: self.observer.interrupted_event(now, INTERRUPTED))

    def _finish(self, final_event: Callable[[dt.datetime], bool]) -> None:
        global _active
        if self._finished:
            return
        self._finished = True
        _active = None
        _heart().remove(self)
        with self._lock:
            pass  # a beat under way (begun before the run finished) ends before the capture closes; later ones write nothing
        self._exit_stack.close()
        with self._lock:
            self._write_metrics()
            self.observer.hold_heartbeat({}, self._captured_output(), utcnow())
            final_event(utcnow())

    def beat(self) -> bool:
        """Write a heartbeat (with the metrics buffered since the last write) unless the run has finished; False
        when the run must beat no more (its attempt lost its job: the task is being stopped)."""
        try:
            with self._lock:
                if not self._finished:  # the final event, waiting for this lock or done, has the last word
                    self._write_heartbeat()
        except ClaimLostError as error:
            log.error("hyperspace: %s; stopping the task", error)
            os.kill(os.getpid(), signal.SIGTERM)  # ends the task through _exit_on_sigterm: the attempt writes nothing more
            return False
        except Exception as error:  # noqa: BLE001 - keep beating; the run itself must go on
            log.error("hyperspace: heartbeat of run %s could not be written: %s", self.observer.run_id, error)
        return True

    def _write_heartbeat(self) -> None:
        self._write_metrics()
        self.observer.heartbeat_event({}, self._captured_output(), utcnow(), None)

    def _write_metrics(self) -> None:
        pending = self.metrics.take()
        if pending:
            self.observer.log_metrics(pending, {})

    def _captured_output(self) -> str:
        """All output captured so far, as a terminal would show it."""
        self._captured += (self._output.get() if self._output is not None else None) or ""
        return as_a_terminal_shows(self._captured)


class _Heart:
    """The thread that beats the heartbeats of the runs recording in this process, every ``heartbeat_seconds`` of
    each, the first that long after its start. One thread for the whole process, started with its first run and kept:
    a thread started for every run cost a run more than its store writes. A forked child starts its own."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._due: dict[RunRecorder, float] = {}
        self._thread: threading.Thread | None = None

    def add(self, recorder: RunRecorder) -> None:
        with self._changed:
            self._due[recorder] = time.monotonic() + recorder.heartbeat_seconds
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._beat_forever, name="hyperspace-heartbeat", daemon=True)
                self._thread.start()
            self._changed.notify()

    def remove(self, recorder: RunRecorder) -> None:
        """Beat ``recorder`` no more (a beat under way ends before its final event: see :meth:`RunRecorder.beat`)."""
        with self._changed:
            self._due.pop(recorder, None)

    def _beat_forever(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                while not (due := [recorder for recorder, at in self._due.items() if at <= now]):
                    self._changed.wait(min(self._due.values()) - now if self._due else None)
                    now = time.monotonic()
                for recorder in due:
                    self._due[recorder] = now + recorder.heartbeat_seconds
            for recorder in due:  # outside the condition: a slow write never holds up a run's start or end
                if not recorder.beat():
                    self.remove(recorder)


_the_heart: _Heart | None = None


def _heart() -> _Heart:
    global _the_heart
    if _the_heart is None:
        _the_heart = _Heart()
    return _the_heart


def _forget_the_heart() -> None:
    """In a forked child: the heartbeat thread stayed in the parent (and its lock may be held there)."""
    global _the_heart
    _the_heart = None


os.register_at_fork(after_in_child=_forget_the_heart)


@contextlib.contextmanager
def sigterm_exits() -> Any:
    """While a run (or a local search) executes in the main thread, let SIGTERM exit as ``SystemExit(143)``, unwinding
    ``finally`` blocks and then ``atexit`` hooks (the default is to die without either). A handler someone else set is
    left as it is."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@atexit.register
def interrupt_unfinished_run() -> None:
    """Finish the run still executing in this process, if any, as INTERRUPTED (the process is ending)."""
    recorder = _active
    if recorder is None:
        return
    try:
        recorder.interrupted()
    except Exception as error:  # noqa: BLE001 - the interpreter is exiting; report and go
        log.error("hyperspace: could not mark run %s INTERRUPTED: %s", recorder.observer.run_id, error)
