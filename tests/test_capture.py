"""Output capture in ``fd`` mode: everything written to descriptors 1 and 2 is captured and still shown."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from hyperspace_hydra.capture import _Collected

SCRIPT = textwrap.dedent(
    """
    import json, os, subprocess, sys
    from hyperspace_hydra.capture import capture_output

    texts = []
    with capture_output("fd") as output:
        print("from python")
        os.write(1, "from C, é".encode()[:-1])  # a character split across two writes
        os.write(1, "é".encode()[-1:] + b"\\n")
        print("to stderr", file=sys.stderr)
        subprocess.run([sys.executable, "-c", "print('from a child process')"], check=True)
        texts.append(output.get())
    texts.append(output.get())  # what the pipes still held is read on leaving
    os.write(1, b"after\\n")
    with open(sys.argv[1], "w") as saved:
        json.dump("".join(texts), saved)
    """
)


def test_a_line_written_in_pieces_is_never_cut_by_the_other_descriptors_output() -> None:
    collected = _Collected()
    collected.add(1, "from C, é".encode()[:-1])  # a character split across two writes
    collected.add(2, b"to stderr\n")  # the other copier's thread came first
    collected.add(1, "é".encode()[-1:] + b"\nhalf a li")
    collected.add(2, b"\rprogress 10%\rprogress 20%")
    assert collected.get() == "to stderr\nfrom C, é\n\rprogress 10%\r", "whole lines only, while the capture goes on"
    collected.finish()
    assert collected.get() == "half a liprogress 20%", "the rest once it has ended"


def test_fd_capture_takes_python_c_level_and_child_output_and_still_shows_it(tmp_path: Path) -> None:
    captured_file = tmp_path / "captured.json"
    finished = subprocess.run([sys.executable, "-c", SCRIPT, str(captured_file)], capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr
    captured = json.loads(captured_file.read_text(encoding="utf-8"))
    for line in ("from python", "from C, é", "to stderr", "from a child process"):
        assert line in captured, captured
        assert line in finished.stdout + finished.stderr, "still shown where the output went before"
    assert "after" not in captured and finished.stdout.endswith("after\n"), "the descriptors are restored"


LINGERING = textwrap.dedent(
    """
    import subprocess, sys, time
    from hyperspace_hydra.capture import capture_output

    with capture_output("fd") as output:
        child = subprocess.Popen([sys.executable, "-c", "import time; print('child', flush=True); time.sleep(30)"])
        time.sleep(1)
    print(repr(output.get()), flush=True)
    child.kill()
    """
)


def test_a_child_process_that_keeps_the_pipe_open_does_not_hold_up_the_run(tmp_path: Path) -> None:
    started = time.monotonic()
    finished = subprocess.run([sys.executable, "-c", LINGERING], capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr
    assert time.monotonic() - started < 15, "leaving the capture waits about a second, not for the child"
    assert "'child\\n'" in finished.stdout, finished.stdout


REUSED = textwrap.dedent(
    """
    import json, os, subprocess, sys, threading, time
    from hyperspace_hydra.capture import capture_output

    def copiers():
        return sum(thread.name.startswith("hyperspace-capture-") for thread in threading.enumerate())

    texts, counts = [], []
    for index in range(3):
        with capture_output("fd") as output:
            os.write(1, f"run {index}\\n".encode())
            os.write(2, f"err {index}\\n".encode())
        texts.append(output.get())
        counts.append(copiers())
    with capture_output("fd") as output:  # a child keeps the pipe of descriptor 1 open past the capture's end
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(2); print('late child', flush=True)"])
    texts.append(output.get())
    with capture_output("fd") as output:
        print("after the child", flush=True)
        child.wait()
        time.sleep(0.2)
    texts.append(output.get())
    pid = os.fork()
    if pid == 0:  # a forked child captures with copiers of its own
        with capture_output("fd") as output:
            print("in the fork", flush=True)
        with open(sys.argv[1] + ".fork", "w") as saved:
            json.dump(output.get(), saved)
        os._exit(0)
    os.waitpid(pid, 0)
    with open(sys.argv[1], "w") as saved:
        json.dump({"texts": texts, "counts": counts}, saved)
    """
)


def test_captures_one_after_another_reuse_their_copying_threads_and_each_takes_only_its_own_output(tmp_path: Path) -> None:
    saved = tmp_path / "captured.json"
    finished = subprocess.run([sys.executable, "-c", REUSED, str(saved)], capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr
    captured = json.loads(saved.read_text(encoding="utf-8"))
    for index, text in enumerate(captured["texts"][:3]):  # two pipes: the writes to stdout and stderr come in either order
        assert sorted([f"run {index}\n", f"err {index}\n"]) == sorted(text.splitlines(keepends=True)), text
    assert captured["counts"] == [2, 2, 2], "the copying threads are kept, not started again"
    assert captured["texts"][3] == "" and captured["texts"][4] == "after the child\n", "a child's late output belongs to no later capture"
    assert "late child" in finished.stdout, "still shown"
    assert json.loads((tmp_path / "captured.json.fork").read_text(encoding="utf-8")) == "in the fork\n"


TERMINAL_TEXTS = [
    "", "plain\nlines\n", "10%\r20%\r30%\n", "abc\b\bX\n", "\b\b\bstart", "progress\r", "a\rb\r\n", "a\r\rb", "ab\r\n\r",
    "x\b\r\by\n\rz\r", "long line\rshort\n", "\r", "\b", "\n\r\n\b\n", "é\bü\rö\r",
]  # fmt: skip


def test_captured_text_is_shown_as_sacred_shows_it_with_returns_and_backspaces_applied() -> None:
    import random

    from sacred.utils import apply_backspaces_and_linefeeds

    from hyperspace_hydra.capture import as_a_terminal_shows

    draw = random.Random(16)
    texts = [*TERMINAL_TEXTS, *("".join(draw.choice("ab\r\b\n") for _ in range(draw.randrange(12))) for _ in range(2000))]
    for text in texts:
        assert as_a_terminal_shows(text) == apply_backspaces_and_linefeeds(text), repr(text)
    assert as_a_terminal_shows("10%\r20%\r30%\ndone\r") == "30%\ndone\r", "the last state of a progress bar; a final return is kept"
