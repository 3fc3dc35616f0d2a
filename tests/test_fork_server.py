"""The fast lane's forked processes behave as fresh ones do in what the tests look at (tests/fork_server.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import fork_server
import pytest
from conftest import HYPERSPACE, clean_env


@pytest.fixture(autouse=True)
def _forking(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server on, whichever lane runs these tests."""
    monkeypatch.setattr(fork_server, "ENABLED", True)


SHOW_PROCESS = """\
import json, os, random, sys
print(json.dumps({"argv": sys.argv, "path0": sys.path[0], "cwd": os.getcwd(), "env": os.environ.get("PROBE"),
                  "pid": os.getpid(), "sid": os.getsid(0), "random": random.random(), "main": __name__,
                  "preloaded": "sqlalchemy" in sys.modules}))
sys.stderr.write("to stderr\\r\\n")
sys.exit(3)
"""


def test_a_forked_process_has_the_directory_environment_arguments_and_exit_status_it_was_given(tmp_path: Path) -> None:
    finished = [fork_server.run([sys.executable, "-c", SHOW_PROCESS, "an argument"], cwd=tmp_path, env=clean_env(PROBE="é"), timeout=60) for _ in range(2)]
    shown = [json.loads(process.stdout) for process in finished]
    assert [process.returncode for process in finished] == [3, 3]
    assert [process.stderr for process in finished] == ["to stderr\n", "to stderr\n"]
    assert {(s["path0"], s["cwd"], s["env"], s["main"], s["preloaded"]) for s in shown} == {("", str(tmp_path), "é", "__main__", True)}
    assert shown[0]["argv"] == ["-c", "an argument"]
    assert shown[0]["pid"] != shown[1]["pid"] and os.getpid() not in (shown[0]["pid"], shown[0]["sid"])
    assert shown[0]["random"] != shown[1]["random"], "each process seeds its own random numbers"


def test_a_module_and_a_script_run_as_main_with_their_own_directory_first_on_the_path(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "main.py").write_text("import sys\nprint(__name__, sys.argv[1:], sys.path[0])\n")
    (tmp_path / "script.py").write_text("import sys\nprint(__name__, sys.argv, sys.path[0])\n")
    module = fork_server.run([sys.executable, "-m", "pkg.main", "x"], cwd=tmp_path, env=clean_env(), timeout=60)
    script = fork_server.run([sys.executable, str(tmp_path / "script.py"), "y"], cwd="/", env=clean_env(), timeout=60)
    assert module.stdout == f"__main__ ['x'] {tmp_path}\n", module.stderr
    assert script.stdout == f"__main__ ['{tmp_path / 'script.py'}', 'y'] {tmp_path}\n", script.stderr


def test_an_installed_command_runs_forked_and_an_uncaught_exception_is_status_1_with_its_traceback(tmp_path: Path) -> None:
    assert fork_server._request([str(HYPERSPACE), "--help"], tmp_path, {}, False) is not None
    helped = fork_server.run([str(HYPERSPACE), "--help"], cwd=tmp_path, env=clean_env(), timeout=60)
    assert helped.returncode == 0 and "usage: hyperspace" in helped.stdout
    failed = fork_server.run([sys.executable, "-c", "raise ValueError('boom')"], cwd=tmp_path, env=clean_env(), timeout=60)
    assert failed.returncode == 1 and failed.stderr.endswith("ValueError: boom\n")


def test_a_started_process_in_its_own_session_is_signalled_waited_for_and_timed_out(tmp_path: Path) -> None:
    with open(tmp_path / "log", "w") as log:
        process = fork_server.popen(
            [sys.executable, "-c", "import os, time; print(os.getsid(0), flush=True); time.sleep(60)"],
            cwd=tmp_path, env=clean_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    assert isinstance(process, fork_server.ForkedProcess)
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(timeout=0.2)
    assert process.poll() is None
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == -signal.SIGTERM
    assert (tmp_path / "log").read_text() == f"{process.pid}\n"
    with pytest.raises(subprocess.TimeoutExpired):
        fork_server.run([sys.executable, "-c", "import time; time.sleep(60)"], cwd=tmp_path, env=clean_env(), timeout=0.5)


def test_what_the_server_cannot_run_as_a_fresh_process_would_starts_fresh(tmp_path: Path) -> None:
    assert fork_server._request(["echo", "hi"], tmp_path, {}, False) is None
    changed_startup = clean_env(PYTHONHASHSEED="0")
    assert fork_server._forking_server(changed_startup) is None
    finished = fork_server.run([sys.executable, "-c", "import sys; print(sys.flags.hash_randomization, 'sqlalchemy' in sys.modules)"], cwd=tmp_path, env=changed_startup, timeout=60)
    assert finished.stdout == "0 False\n"


def test_pipes_give_a_line_at_a_time_and_communicate_gives_the_rest_once_the_process_ends(tmp_path: Path) -> None:
    code = "import sys\nprint('first', flush=True)\nprint('second\\r\\nthird')\nsys.exit(4)"
    process = fork_server.popen([sys.executable, "-c", code], cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert isinstance(process, fork_server.ForkedProcess) and process.stderr is None and process.stdout is not None
    assert process.stdout.readline() == "first\n"
    assert process.communicate(timeout=60) == ("second\nthird\n", None)
    assert process.returncode == 4
    merged = fork_server.popen(
        [sys.executable, "-c", "import sys; print('out', flush=True); print('err', file=sys.stderr)"],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert merged.communicate(timeout=60) == ("out\nerr\n", None)


ENDINGS = {
    "a thread and atexit": ("import atexit, threading, time\natexit.register(print, 'at exit')\nthreading.Thread(target=lambda: (time.sleep(0.3), print('thread'))).start()", 0, "thread\nat exit\n", ""),
    "a message": ("import sys\nprint('out')\nsys.exit('a message')", 1, "out\n", "a message\n"),
    "a status": ("raise SystemExit(3)", 3, "", ""),
    "ctrl-c": ("raise KeyboardInterrupt", -signal.SIGINT, "", "KeyboardInterrupt\n"),
}


@pytest.mark.parametrize("forked", [True, False], ids=["forked", "fresh"])
@pytest.mark.parametrize(("code", "status", "out", "error_ends"), ENDINGS.values(), ids=list(ENDINGS))
def test_a_forked_process_ends_as_an_interpreter_ends_its_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forked: bool, code: str, status: int, out: str, error_ends: str
) -> None:
    monkeypatch.setattr(fork_server, "ENABLED", forked)  # fresh: the expectation is the interpreter's own
    ended = fork_server.run([sys.executable, "-c", code], cwd=tmp_path, env=clean_env(), timeout=60)
    assert (ended.returncode, ended.stdout) == (status, out) and ended.stderr.endswith(error_ends), ended.stderr
