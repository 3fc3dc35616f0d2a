"""Python processes for the fast lane, forked from a server that imported the heavy libraries once.

Most tests start real processes: the study's app, ``hyperspace worker``, a notebook's ``python -c``. A fresh interpreter
spends ~0.4-0.5 CPU s importing Hydra, OmegaConf, SQLAlchemy, Optuna and this project before it does anything; the
fast lane starts ~300 of them. When ``HYPERSPACE_TEST_FORK_SERVER`` is ``1`` (``scripts/test.sh --fast`` sets it),
:func:`run` and :func:`popen` fork such a process from a server process (one per test process) that has imported
those libraries and this project's modules (:data:`PRELOADED`), but nothing of a study. The child is a real process of
its own, with its own pid, session (when asked), signals, descriptors, directory, environment and ``sys.argv``; it
imports the study's modules as a fresh interpreter would, and exits as one does (``atexit``, non-daemon threads joined,
its exit status or signal). What differs from a fresh interpreter: the preloaded modules are there already, imported
in the server's order and under its environment, and the hash seed is the server's. (A child that skipped the
interpreter's tear-down at exit would save ~30-40 ms, but the objects alive then would not be finalized: a store's
SQLite connection left its ``-wal`` and ``-shm`` files behind, which a fresh process removes.) So a process whose environment
differs from the server's in what an interpreter or those libraries read at start-up (``PYTHON*``, the locale, thread
counts) is started fresh, and ``.ci/run`` (the whole suite) starts every process fresh: an import that works only in
some order, or a module that reads its process when imported, shows there.

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
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

PRELOADED = (
    "hydra",
    "hydra._internal.hydra",
    "hydra._internal.config_loader_impl",
    "hydra.core.utils",
    "hydra.utils",
    "hydra.experimental.callback",
    "hydra._internal.core_plugins.basic_launcher",
    "hydra._internal.core_plugins.basic_sweeper",
    "hydra._internal.core_plugins.file_config_source",
    "hydra._internal.core_plugins.structured_config_source",
    "omegaconf",
    "yaml",
    "sqlalchemy",
    "sqlalchemy.dialects.sqlite.pysqlite",
    "optuna",
    "numpy.random",
    "hyperspace_hydra.cli",
    "hyperspace_hydra.worker",
    "hyperspace_hydra.tracking",
    "hyperspace_hydra.store.sql",
    "hydra_plugins.hyperspace_hydra_plugins.hyperspace_config",
    "hydra_plugins.hyperspace_hydra_plugins.hyperspace_launcher",
    "hydra_plugins.hyperspace_hydra_plugins.hyperspace_sweeper",
)
"""The libraries and this project's modules that nearly every process the tests start imports: none of them starts a
thread, reads the environment or the directory, or keeps anything of its process when imported (nothing at the top
level of this project's modules does)."""

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

Output = int | IO[Any] | None
"""Where a child's standard output or error goes, as :class:`subprocess.Popen` takes it: ``None`` (this process's),
a descriptor or file, :data:`subprocess.DEVNULL`, :data:`subprocess.PIPE`, or (error) :data:`subprocess.STDOUT`."""


class ForkedProcess:
    """A process forked by the server: the part of :class:`subprocess.Popen` (``text=True``) the tests use (``pid``,
    ``returncode``, ``stdout``, ``stderr``, ``poll``, ``wait``, ``communicate``, ``send_signal``, ``terminate``,
    ``kill``). Its exit status arrives from the server, its parent."""

    def __init__(self, args: list[str], pid: int, status_socket: socket.socket, pipes: dict[str, int]) -> None:
        self.args = args
        self.pid = pid
        self.returncode: int | None = None
        self.stdout: IO[str] | None = open(pipes["stdout"]) if "stdout" in pipes else None  # noqa: SIM115 - the process's, as Popen's
        self.stderr: IO[str] | None = open(pipes["stderr"]) if "stderr" in pipes else None  # noqa: SIM115
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

    def communicate(self, timeout: float | None = None) -> tuple[str | None, str | None]:
        """The rest of what the process writes to its pipes, up to their ends, once it has ended (``Popen.communicate``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        read = [_read_to_end(stream) for stream in (self.stdout, self.stderr)]
        outputs = [reading(deadline) if reading else None for reading in read]
        if any(output is _TIMED_OUT for output in outputs):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return outputs[0], outputs[1]  # type: ignore[return-value]

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


Process = ForkedProcess | subprocess.Popen[str]
"""A process that :func:`popen` started."""

_TIMED_OUT = object()


def _read_to_end(stream: IO[str] | None) -> Callable[[float | None], Any] | None:
    """For a pipe, a function that returns all that is left in it once every writer has closed it (or
    :data:`_TIMED_OUT` at a deadline), read meanwhile by a thread; ``None`` for no pipe."""
    if stream is None:
        return None
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: (chunks.append(stream.read()), stream.close()), daemon=True)
    reader.start()

    def result(deadline: float | None) -> Any:
        reader.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return _TIMED_OUT if reader.is_alive() else chunks[0]

    return result


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

    def fork(self, request: dict[str, Any], stdout: Output, stderr: Output) -> ForkedProcess:
        """Have the server fork a process for ``request``, with this process's standard input and the output given."""
        ours, its = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with _ChildOutput(stdout, stderr) as output:
            socket.send_fds(self._control, [json.dumps(request).encode()], [its.fileno(), *output.descriptors])
            its.close()
            pid = json.loads(ours.recv(_MESSAGE_BYTES))["pid"]
            return ForkedProcess(request["argv"], pid, ours, output.pipes)


class _ChildOutput:
    """The descriptors to give a child for its standard input, output and error, as ``subprocess`` makes them of
    :data:`Output`; those opened for it are closed on leaving, but the read ends of its pipes (:attr:`pipes`)."""

    def __init__(self, stdout: Output, stderr: Output) -> None:
        self._opened: list[int] = []
        self.pipes: dict[str, int] = {}
        standard_input = 0 if _is_open(0) else self._open_null(os.O_RDONLY)
        out = self._descriptor("stdout", stdout, 1)
        error = out if stderr == subprocess.STDOUT else self._descriptor("stderr", stderr, 2)
        self.descriptors = [standard_input, out, error]

    def _descriptor(self, name: str, output: Output, inherited: int) -> int:
        if output is None:
            return inherited
        if output == subprocess.DEVNULL:
            return self._open_null(os.O_WRONLY)
        if output == subprocess.PIPE:
            self.pipes[name], write = os.pipe()
            self._opened.append(write)
            return write
        return output if isinstance(output, int) else output.fileno()

    def _open_null(self, flags: int) -> int:
        self._opened.append(os.open(os.devnull, flags))
        return self._opened[-1]

    def __enter__(self) -> _ChildOutput:
        return self

    def __exit__(self, *_: object) -> None:
        for descriptor in self._opened:
            os.close(descriptor)


def _is_open(descriptor: int) -> bool:
    try:
        os.fstat(descriptor)
    except OSError:
        return False
    return True


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


def popen(
    argv: Sequence[str], *, cwd: Path | str, env: dict[str, str], stdout: Output = None, stderr: Output = None, start_new_session: bool = False
) -> Process:
    """``subprocess.Popen(argv, ..., text=True)``, forked by the server when it can be."""
    server = _forking_server(env)
    request = _request(argv, cwd, env, start_new_session) if server else None
    if server is None or request is None:
        return subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=stdout, stderr=stderr, text=True, start_new_session=start_new_session)
    return server.fork(request, stdout, stderr)


def run(argv: Sequence[str], *, cwd: Path | str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(argv, ..., capture_output=True, text=True, timeout=timeout)``, forked by the server when it
    can be."""
    process = popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    return subprocess.CompletedProcess(list(argv), process.wait(), out, err)


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


def _warm_the_parsers() -> None:
    """Parse overrides of every kind with Hydra's override parser and interpolations with OmegaConf's, as nearly every
    child does: ANTLR builds a grammar's decision tables on its first parses, in memory the children then share
    (~13 ms a child otherwise). Parsers only: nothing is composed or registered."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import grammar_parser

    OverridesParser.create().parse_overrides(
        ["a=1", "b.c=x,y", "+d=[1,2]", "++e={f:1}", "~g", "h=range(0,3)", "i=interval(0,1)", "j=choice(a,b)", "k='s t'", "l=${m}", "n/o=p"]
    )
    for text in ("${a}", "${a.b}-${c}", "${now:%H-%M}", "${oc.env:HOME,x}", "x_${a}_y"):
        grammar_parser.parse(text)


if __name__ == "__main__":
    sys.path.pop(0)  # this file's directory: the tests', not the child's
    sys.path.insert(0, "")
    for name in PRELOADED:
        __import__(name)
    _warm_the_parsers()
    gc.freeze()  # a child's collections, and its exit's, leave the preloaded objects alone (~0.2 s a child otherwise)
    _become(_serve(socket.socket(fileno=int(sys.argv[1]))))  # then this process ends as the interpreter ends any
