"""Capture what a run prints while still showing it: Sacred's capture modes, ``fd`` without a ``tee`` process.

``capture_output(mode)`` is a context manager giving an object whose ``get()`` returns the output
captured since the last call. ``sys`` (Python's ``sys.stdout``/``sys.stderr`` only) and ``no`` are
Sacred's own. ``fd`` captures at the file-descriptor level, so output of C extensions and of
child processes is captured too: Sacred does it by starting two ``tee`` processes per run
(~8 ms); here each of the descriptors 1 and 2 is pointed at a pipe that a thread of this process
copies to where the descriptor pointed before and into the captured text, in the order it comes,
a whole line at a time (a line written in pieces is never cut by the other descriptor's output).
On exit the descriptors are restored and what is still in the pipes is read, unless a child
process the task left running keeps a pipe open: then the copy goes on in the background and
the text stops there, after a short wait (as Sacred waits for its ``tee`` processes). Each capture
has pipes of its own; the copying threads are kept for the next capture of the process (starting
two threads cost a run more than anything else of the capture), except one still copying a pipe
that a child process holds open, which ends once that pipe closes.

:func:`as_a_terminal_shows` turns captured text into what a terminal shows (Sacred's
``apply_backspaces_and_linefeeds``), so that a run in ``fd`` mode never imports Sacred.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import functools
import os
import queue
import sys
import threading
from collections.abc import Iterator
from typing import Any, Protocol

_STREAMS = (1, 2)
_READ_SIZE = 65536
_LAST_READ_SECONDS = 1.0
"""How long leaving the capture waits for the pipes to drain (a child process of the task may hold them open)."""
_LONGEST_HELD = 65536
"""The longest part of a line a capture holds back until its end comes (see :class:`_Collected`)."""


class CapturedOutput(Protocol):
    """What a capture yields: ``get()`` returns the text captured since the previous call."""

    def get(self) -> str | None: ...


def capture_output(mode: str) -> contextlib.AbstractContextManager[CapturedOutput]:
    """Capture in Sacred's ``mode`` (``fd``, ``sys`` or ``no``), see the module docstring."""
    if mode == "fd":
        return _captured_descriptors()
    from sacred.stdout_capturing import get_stdcapturer  # Sacred loads only in a recorded job

    _, capturer = get_stdcapturer(mode)
    return capturer()  # type: ignore[no-any-return]


class _Collected:
    """Text copied from the pipes, in whole lines: each descriptor's bytes are decoded as UTF-8 on their own, however
    they were split, and a line (up to ``\n``, or ``\r`` as a progress bar redraws it) goes in once it is complete. Two
    threads copy the two pipes, so without this a line written in pieces (a character split across two writes) could
    be cut by the other descriptor's output. What is left of a line goes in when the capture ends (:meth:`finish`), or
    once it grows past :data:`_LONGEST_HELD` characters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._text: list[str] = []
        self._decoders: dict[int, codecs.IncrementalDecoder] = {}
        self._held: dict[int, str] = {}
        self._finished = False

    def add(self, fd: int, chunk: bytes) -> None:
        with self._lock:
            decoder = self._decoders.setdefault(fd, codecs.getincrementaldecoder("utf-8")(errors="replace"))
            text = self._held.pop(fd, "") + decoder.decode(chunk)
            end = max(text.rfind("\n"), text.rfind("\r")) + 1
            if self._finished or len(text) - end > _LONGEST_HELD:
                end = len(text)
            self._text.append(text[:end])
            if end < len(text):
                self._held[fd] = text[end:]

    def finish(self) -> None:
        """Add what each descriptor still held: the capture has ended (a copier still copying adds the rest at once)."""
        with self._lock:
            self._finished = True
            for fd, decoder in self._decoders.items():
                self._text.append(self._held.pop(fd, "") + decoder.decode(b"", final=True))

    def get(self) -> str:
        _flush_buffers()
        with self._lock:
            text, self._text = "".join(self._text), []
        return text


@contextlib.contextmanager
def _captured_descriptors() -> Iterator[_Collected]:
    collected = _Collected()
    _flush_buffers()
    saved = {fd: os.dup(fd) for fd in _STREAMS}
    copying: list[tuple[_Copier, threading.Event]] = []
    try:
        for fd in _STREAMS:
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            copier = _Copier.idle_one(fd)
            copying.append((copier, copier.copy(read_end, os.dup(saved[fd]), collected)))
        yield collected
    finally:
        _flush_buffers()
        for fd, original in saved.items():
            os.dup2(original, fd)  # closes the pipe's write end held at fd: its copier reads to the end
        for copier, done in copying:
            if done.wait(_LAST_READ_SECONDS):
                copier.keep()
            else:
                copier.retire()  # a child process holds the pipe: the copy goes on, then the thread ends
        collected.finish()
        for original in saved.values():
            os.close(original)


class _Copier:
    """A thread that copies the pipes handed to it, one at a time (see :func:`_copy`), kept between captures."""

    _idle: dict[int, list[_Copier]] = {}
    _idle_lock = threading.Lock()

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._pipes: queue.SimpleQueue[tuple[int, int, _Collected, threading.Event] | None] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name=f"hyperspace-capture-{fd}", daemon=True).start()

    @classmethod
    def idle_one(cls, fd: int) -> _Copier:
        """A copier for descriptor ``fd``: one kept from an earlier capture of this process, else a new one."""
        with cls._idle_lock:
            kept = cls._idle.get(fd)
            if kept:
                return kept.pop()
        return cls(fd)

    def copy(self, read_end: int, original: int, collected: _Collected) -> threading.Event:
        """Copy the pipe ``read_end`` until it closes (see :func:`_copy`); the event is set once it has."""
        done = threading.Event()
        self._pipes.put((read_end, original, collected, done))
        return done

    def keep(self) -> None:
        """Keep this copier, done with its pipe, for the next capture."""
        with self._idle_lock:
            self._idle.setdefault(self.fd, []).append(self)

    def retire(self) -> None:
        """End the thread once it is done with the pipe it copies."""
        self._pipes.put(None)

    def _serve(self) -> None:
        while (pipe := self._pipes.get()) is not None:
            read_end, original, collected, done = pipe
            try:
                _copy(self.fd, read_end, original, collected)
            finally:
                done.set()

    @classmethod
    def forget_all(cls) -> None:
        """In a forked child: the copiers' threads stayed in the parent."""
        cls._idle, cls._idle_lock = {}, threading.Lock()


os.register_at_fork(after_in_child=_Copier.forget_all)


def _copy(fd: int, read_end: int, original: int, collected: _Collected) -> None:
    """Copy the pipe to ``original`` (the copier's own duplicate of where the descriptor pointed) and into ``collected``
    until it closes; then close both (they are the copier's, so a copy going on in the background never writes to a
    descriptor number the process has reused)."""
    try:
        while chunk := os.read(read_end, _READ_SIZE):
            collected.add(fd, chunk)
            _write_all(original, chunk)
    finally:
        os.close(read_end)
        os.close(original)


def _write_all(fd: int, data: bytes) -> None:
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        pass  # where the output went is gone (a closed terminal): the capture goes on


def _flush_buffers() -> None:
    """Push what Python and C's stdio hold in their buffers into the descriptors."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(Exception):
        c_library().fflush(None)


@functools.cache
def c_library() -> Any:
    """C's standard library, as loaded in this process once (a worker loads it before its forks: its job processes call it)."""
    return ctypes.CDLL(None)


def as_a_terminal_shows(text: str) -> str:
    """``text`` with its carriage returns and backspaces applied line by line, as a terminal would show it (a progress
    bar's last state); a carriage return that ends the text is kept, so that the next output joins it. Sacred's
    ``apply_backspaces_and_linefeeds``, skipping the lines that hold neither."""
    lines = text.split("\n")
    last = len(lines) - 1
    return "\n".join(line if "\r" not in line and "\b" not in line else _overwritten(line, index == last) for index, line in enumerate(lines))


def _overwritten(line: str, ends_the_text: bool) -> str:
    chars: list[str] = []
    cursor = 0
    final = len(line) - 1
    for index, char in enumerate(line):
        if char == "\b":
            cursor = max(0, cursor - 1)
            continue
        if char == "\r":
            if not (ends_the_text and index == final):
                cursor = 0
                continue
            cursor = len(chars)
        if cursor == len(chars):
            chars.append(char)
        else:
            chars[cursor] = char
        cursor += 1
    return "".join(chars)
