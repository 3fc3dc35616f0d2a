"""Python processes for the fast lane, forked from a server that imported the heavy libraries once.

Most tests start real processes: the study's app, ``hyperspace worker``, a notebook's ``python -c``. A fresh interpreter
spends ~0.35-0.5 CPU s importing Hydra, OmegaConf, SQLAlchemy and Optuna before it does anything; the fast lane starts
~240 of them. When ``HYPERSPACE_TEST_FORK_SERVER`` is ``1`` (``scripts/test.sh --fast`` sets it), :func:`run` and
:func:`start` fork such a process from a server process (one per test process) that has imported those libraries and
nothing of this project or of a study. The child is a real process of its own, with its own pid, session (when asked),
signals, descriptors, directory, environment and ``sys.argv``; it imports this project's modules and the study's as a
fresh interpreter would, and exits as one does (``atexit``, non-daemon threads joined, its exit status or signal).
What differs from a fresh interpreter: the preloaded modules are there already, imported under the server's
environment, and the hash seed is the server's. So a process whose environment differs from the server's in what an
interpreter or those libraries read at start-up (``PYTHON*``, the locale, thread counts) is started fresh, and
``.ci/run`` (the whole suite) starts every process fresh.

The server (this file run as a script) forks a child per request and reports its pid and then its exit status on a
socket of the request's own; :class:`ForkedProcess` is the test's side of it, with :class:`subprocess.Popen`'s methods
that the tests use.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PRELOADED = (
    "hydra",
    "hydra._internal.hydra",
    "hydra._internal.config_loader_impl",
    "hydra.core.utils",
    "hydra.utils",
    "omegaconf",
    "yaml",
    "sqlalchemy",
    "sqlalchemy.dialects.sqlite.pysqlite",
    "optuna",
    "numpy",
)
"""Libraries that nearly every process the tests start imports, and that start no thread when imported."""

ENABLED = os.environ.get("HYPERSPACE_TEST_FORK_SERVER") == "1"
_ENVIRONMENT = dict(os.environ)
"""The test process's environment as it started, which its server starts with (a test may change ``os.environ``)."""
_STARTUP_PREFIXES = ("PYTHON", "LC_", "LANG")
_STARTUP_SUFFIXES = ("_NUM_THREADS",)
_MESSAGE_BYTES = 1 << 20


def _read_at_startup(name: str) -> bool:
    """Whether an interpreter or a preloaded library reads the environment variable ``name`` when it starts."""
    return name.startswith(_STARTUP_PREFIXES) or name.endswith(_STARTUP_SUFFIXES)


def _startup_environment(env: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if _read_at_startup(name)}


# The test's side.


class ForkedProcess:
    """A process forked by the server: the part of :class:`subprocess.Popen` the tests use (``pid``, ``returncode``,
    ``poll``, ``wait``, ``send_signal``, ``terminate``, ``kill``). Its exit status arrives from the server, its parent."""

    def __init__(self, args: Sequence[str], pid: int, status_socket: socket.socket) -> None:
        self.args = list(args)
        self.pid = pid
        self.returncode: int | None = None
        self._status_socket = status_socket

    def poll(self) -> int | None:
        """The exit status if the process has ended, else ``None``."""
        return self._status(timeout=0)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to end and return its exit status (``-N`` for signal N), as ``Popen.wait`` does."""
        status = self._status(timeout)
        if status is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return status

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the process unless it has ended."""
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _status(self, timeout: float | None) -> int | None:
        if self.returncode is None:
            self._status_socket.settimeout(timeout)
            with contextlib.suppress(TimeoutError, BlockingIOError):
                message = self._status_socket.recv(_MESSAGE_BYTES)
                self.returncode = json.loads(message)["status"]
                self._status_socket.close()
        return self.returncode


class _Server:
    """The server process of this test process, started at its first use."""

    def __init__(self) -> None:
        ours, its = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.environment = _startup_environment(_ENVIRONMENT)
        self._process = subprocess.Popen(
            [sys.executable, __file__, str(its.fileno())],
            env=_ENVIRONMENT, pass_fds=[its.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        its.close()
        self._control = ours

    def fork(self, request: dict[str, Any], stdout: int, stderr: int) -> ForkedProcess:
        """Have the server fork a process for ``request`` with this process's standard input and the output given."""
        ours, its = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        stdin = _standard_input()
        try:
            socket.send_fds(self._control, [json.dumps(request).encode()], [its.fileno(), stdin, stdout, stderr])
        finally:
            its.close()
            if stdin != 0:
                os.close(stdin)
        pid = json.loads(ours.recv(_MESSAGE_BYTES))["pid"]
        return ForkedProcess(request["argv"], pid, ours)


_server: _Server | None = None


def _forking_server(env: dict[str, str]) -> _Server | None:
    """The server that can fork a process with ``env``, or ``None`` when it must start fresh."""
    global _server
    if not ENABLED:
        return None
    if _server is None:
        _server = _Server()
    return _server if _startup_environment(env) == _server.environment else None


def _request(argv: Sequence[str], cwd: Path | str, env: dict[str, str], new_session: bool) -> dict[str, Any] | None:
    """What the server needs to run ``argv`` as ``python``, or ``None`` for a command it cannot run: ``python -m
    module``, ``python -c code``, ``python script.py`` and a Python script run by its ``#!`` line (an installed command
    such as ``hyperspace``)."""
    argv = [str(part) for part in argv]
    if argv[0] == sys.executable and len(argv) > 2 and argv[1] in ("-m", "-c"):
        kind, target, args = {"-m": "module", "-c": "code"}[argv[1]], argv[2], argv[3:]
    elif argv[0] == sys.executable and len(argv) > 1 and argv[1].endswith(".py"):
        kind, target, args = "script", argv[1], argv[2:]
    elif Path(argv[0]).is_file() and Path(argv[0]).read_bytes().startswith(f"#!{sys.executable}\n".encode()):
        kind, target, args = "script", argv[0], argv[1:]
    else:
        return None
    return {"argv": argv, "kind": kind, "target": target, "args": args, "cwd": str(cwd), "env": env, "new_session": new_session}


def start(
    argv: Sequence[str], *, cwd: Path | str, env: dict[str, str], stdout: int, stderr: int, start_new_session: bool = False
) -> ForkedProcess | subprocess.Popen[str]:
    """``argv`` started with its output on the descriptors given: forked by the server when it can be, else as
    :class:`subprocess.Popen` starts it."""
    server = _forking_server(env)
    request = _request(argv, cwd, env, start_new_session) if server else None
    if server is None or request is None:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=stdout, stderr=stderr, text=True, start_new_session=start_new_session)
    return server.fork(request, stdout, stderr)


def _standard_input() -> int:
    """This process's standard input descriptor, which a child started by ``subprocess`` inherits; ``/dev/null``
    opened anew if it has none."""
    try:
        os.fstat(0)
    except OSError:
        return os.open(os.devnull, os.O_RDONLY)
    return 0


def run(argv: Sequence[str], *, cwd: Path | str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """``argv`` run to its end with its output captured as text, as ``subprocess.run(..., capture_output=True,
    text=True, timeout=timeout)`` does; forked by the server when it can be."""
    server = _forking_server(env)
    request = _request(argv, cwd, env, False) if server else None
    if server is None or request is None:
        return subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    deadline = time.monotonic() + timeout
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    try:
        process = server.fork(request, out_write, err_write)
    finally:
        os.close(out_write)
        os.close(err_write)
    try:
        out, err = _read_to_end([out_read, err_read], deadline)
        status = process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        raise subprocess.TimeoutExpired(list(argv), timeout) from None
    return subprocess.CompletedProcess(list(argv), status, _text(out), _text(err))


def _read_to_end(descriptors: list[int], deadline: float) -> list[bytes]:
    """Everything written to the pipes until every writer closed them; closes them."""
    read: dict[int, bytearray] = {descriptor: bytearray() for descriptor in descriptors}
    with selectors.DefaultSelector() as selector:
        for descriptor in descriptors:
            selector.register(descriptor, selectors.EVENT_READ)
        try:
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise subprocess.TimeoutExpired("", 0)
                for key, _ in selector.select(remaining):
                    chunk = os.read(key.fd, 65536)
                    if chunk:
                        read[key.fd] += chunk
                    else:
                        selector.unregister(key.fd)
        finally:
            for descriptor in descriptors:
                os.close(descriptor)
    return [bytes(read[descriptor]) for descriptor in descriptors]


def _text(output: bytes) -> str:
    """Output decoded as ``text=True`` decodes it (universal newlines)."""
    return output.decode().replace("\r\n", "\n").replace("\r", "\n")


# The server's side (this file run as a script).


def _serve(control: socket.socket) -> dict[str, Any]:
    """Fork a child for each request on ``control`` and report its pid and then its exit status on the request's
    socket; return only in a child, with its request. Ends the server when the test process closes ``control``."""
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    reporting: dict[int, socket.socket] = {}
    while True:
        ready = _readable([control.fileno(), wake_read])
        if wake_read in ready:
            os.read(wake_read, 4096)
            _report_ended(reporting)
        if control.fileno() not in ready:
            continue
        message, descriptors, _, _ = socket.recv_fds(control, _MESSAGE_BYTES, 4)
        if not message:
            sys.exit(0)
        status_socket = socket.socket(fileno=descriptors[0])
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            for kept in (control, *reporting.values()):
                kept.close()
            os.close(wake_read)
            os.close(wake_write)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            status_socket.close()
            for target, descriptor in enumerate(descriptors[1:]):
                os.dup2(descriptor, target)
                os.close(descriptor)
            return json.loads(message)
        for descriptor in descriptors[1:]:
            os.close(descriptor)
        status_socket.send(json.dumps({"pid": pid}).encode())
        reporting[pid] = status_socket


def _readable(descriptors: list[int]) -> set[int]:
    with selectors.DefaultSelector() as selector:
        for descriptor in descriptors:
            selector.register(descriptor, selectors.EVENT_READ)
        return {key.fd for key, _ in selector.select()}


def _report_ended(reporting: dict[int, socket.socket]) -> None:
    """Reap every ended child and send its exit status (as ``Popen.returncode``) to its test."""
    while True:
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        status_socket = reporting.pop(pid)
        with contextlib.suppress(OSError):  # the test process may have ended meanwhile
            status_socket.send(json.dumps({"status": os.waitstatus_to_exitcode(wait_status)}).encode())
        status_socket.close()


def _become(request: dict[str, Any]) -> None:
    """Run the request's command in this (forked) process, as a fresh ``python`` would run it."""
    import random

    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    if request["new_session"]:
        os.setsid()
    random.seed()  # a fresh process's own, not the server's state that every child would share
    if "numpy.random" in sys.modules:
        sys.modules["numpy.random"].seed()
    kind, target, args = request["kind"], request["target"], request["args"]
    if kind == "module":
        import runpy

        sys.argv, sys.path[0] = ["-m", *args], os.getcwd()
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    elif kind == "script":
        import runpy

        sys.argv, sys.path[0] = [target, *args], str(Path(target).resolve().parent)
        runpy.run_path(target, run_name="__main__")
    else:
        import types

        sys.argv, sys.path[0] = ["-c", *args], ""
        main = types.ModuleType("__main__")
        sys.modules["__main__"] = main
        exec(compile(target, "<string>", "exec"), main.__dict__)


if __name__ == "__main__":
    sys.path.pop(0)  # this file's directory: the tests', not the child's
    sys.path.insert(0, "")
    for name in PRELOADED:
        __import__(name)
    gc.freeze()  # a child's collections, and its exit's, leave the preloaded objects alone (~0.2 s a child otherwise)
    _become(_serve(socket.socket(fileno=int(sys.argv[1]))))
