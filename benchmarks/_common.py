"""Shared helpers of the benchmark scripts: the no-op study, subprocesses, the queue, reporting.

Every script copies ``benchmarks/noop_study`` to a temporary directory (its stores and
outputs land there), measures our path and a baseline in the same run, and reports
each figure with :func:`report`: one JSON line on stdout, also appended to the
results file with a timestamp and the git commit, so versions can be compared.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hyperspace_hydra import Queue
from hyperspace_hydra.store import COMPLETED, JOB_FINAL_STATES, open_store

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
NOOP_STUDY = BENCHMARKS / "noop_study"
APP = "noop.run"
DEFAULT_OUTPUT = BENCHMARKS / "results.jsonl"
HYPERSPACE = Path(sys.executable).parent / "hyperspace"
STORE_ENV_VAR = "HYPERSPACE_STORE"

T = TypeVar("T")


# arguments and reporting


def argument_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser whose --help shows the script's docstring (with its full sizes) and offers ``--output``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help=f"append the JSON lines here (default {DEFAULT_OUTPUT.relative_to(REPO)})"
    )
    return parser


_started: dict[str, Any] = {}


def print_machine() -> None:
    """Print the core count (every figure depends on it) and note the start of the run.

    Figures reported afterwards record this moment's time and git state, so the commit is the
    one of the code being measured even if the checkout changes while the script runs.
    """
    _started.update(run_context())
    print(f"# cores: {os.cpu_count()}", flush=True)


def run_context() -> dict[str, Any]:
    """What each figure records about the run: time (UTC), commit, dirty flag, core count."""
    return {"timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **git_state(), "cores": os.cpu_count()}


@dataclass
class Figure:
    """One measured figure: ours against a baseline measured in the same run; lower is better for both."""

    benchmark: str
    ours: float
    baseline: float
    unit: str
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """ours / baseline (lower is better)."""
        return self.ours / self.baseline if self.baseline else float("inf")


def measure_on_stores(doc: str | None, measure: Callable[[str, str, int, int], Figure], repeats_help: str) -> None:
    """The whole command of a benchmark of a store holding ``--runs`` runs: ``measure(backend, uri, runs, repeats)``
    on each of ``--backends``, a temporary SQLite file and a throwaway PostgreSQL server; figures reported."""
    parser = argument_parser(doc)
    parser.add_argument("--runs", type=int, default=2000, help="runs in the store (full size: 100000)")
    parser.add_argument("--backends", nargs="+", default=["sqlite"], choices=["sqlite", "postgresql"], help="stores to measure (default sqlite)")
    parser.add_argument("--repeats", type=int, default=3, help=repeats_help)
    args = parser.parse_args()
    print_machine()
    figures = []
    with tempfile.TemporaryDirectory() as directory:
        if "sqlite" in args.backends:
            figures.append(measure("sqlite", f"sqlite:///{directory}/store.db", args.runs, args.repeats))
        if "postgresql" in args.backends:
            from postgres_cluster import PostgresCluster

            with PostgresCluster() as cluster:
                figures.append(measure("postgresql", cluster.uri, args.runs, args.repeats))
    report(figures, args.output, vars(args) | {"output": str(args.output)})


def report(figures: Iterable[Figure], output: Path, params: Mapping[str, Any]) -> None:
    """Print one JSON line per figure and append the same lines to ``output``.

    ``params`` are the sizes the script ran with; the run's time and git state are those noted
    by :func:`print_machine` (now, if it was not called).
    """
    context = {**(_started or run_context()), "params": dict(params)}
    lines = [json.dumps(_record(figure, context)) for figure in figures]
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "a", encoding="utf-8") as results:
        results.writelines(line + "\n" for line in lines)
    for line in lines:
        print(line, flush=True)


def _record(figure: Figure, context: Mapping[str, Any]) -> dict[str, Any]:
    record = {
        "benchmark": figure.benchmark,
        "ours": significant(figure.ours),
        "baseline": significant(figure.baseline),
        "ratio": significant(figure.ratio),
        "unit": figure.unit,
    }
    if figure.note:
        record["note"] = figure.note
    return {**record, **context, **({"details": figure.details} if figure.details else {})}


def significant(value: float, digits: int = 4) -> float:
    """``value`` rounded to ``digits`` significant digits (tiny and huge figures stay readable)."""
    return float(f"{value:.{digits}g}")


def git_state() -> dict[str, Any]:
    """The commit of this checkout and whether the working tree differs from it."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if commit else None}


def _git(*args: str) -> str | None:
    try:
        finished = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return finished.stdout.strip() if finished.returncode == 0 else None


def timed(function: Callable[[], T]) -> tuple[float, T]:
    """(seconds, result) of one call of ``function``."""
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's child processes that ended so far, with their own
    children once reaped (a worker's job processes): on a shared machine, CPU time moves far less
    with the load than wall clock does."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_processes(function: Callable[[], T]) -> tuple[float, float, T]:
    """(wall seconds, CPU seconds of the child processes it ran and waited for, result) of one call of ``function``."""
    cpu = children_cpu_seconds()
    wall, result = timed(function)
    return wall, children_cpu_seconds() - cpu, result


def durations(operation: Callable[[], object], repeats: int) -> list[float]:
    """Seconds each of ``repeats`` calls of ``operation`` took."""
    return [timed(operation)[0] for _ in range(repeats)]


def milliseconds_per(seconds: float, count: int) -> float:
    """``seconds`` spent on ``count`` items, in milliseconds per item."""
    return 1000.0 * seconds / count


# the no-op study and processes


@contextlib.contextmanager
def noop_study() -> Iterator[Path]:
    """A fresh copy of the no-op study in a temporary directory, removed afterwards.

    ``$HYPERSPACE_STORE`` is unset meanwhile, in this process and (through
    :func:`clean_env`) in the processes started, so each store is the one the script chose.
    """
    saved = os.environ.pop(STORE_ENV_VAR, None)
    with tempfile.TemporaryDirectory(prefix="hyperspace-bench-") as directory:
        study = Path(directory) / "noop_study"
        shutil.copytree(NOOP_STUDY, study, ignore=shutil.ignore_patterns(".hyperspace", "outputs", "multirun", "__pycache__"))
        try:
            yield study
        finally:
            if saved is not None:
                os.environ[STORE_ENV_VAR] = saved


@contextlib.contextmanager
def working_in(study: Path) -> Iterator[None]:
    """Run in-process work (``load_app``, ``Queue``) from ``study``, as a notebook started there would."""
    previous = Path.cwd()
    os.chdir(study)
    try:
        yield
    finally:
        os.chdir(previous)


def sqlite_uri(study: Path, name: str = "store") -> str:
    """An SQLite store in the study's ``.hyperspace`` directory."""
    return f"sqlite:///{study}/.hyperspace/{name}.db"


def clean_env() -> dict[str, str]:
    """This process's environment without ``$HYPERSPACE_STORE``."""
    return {key: value for key, value in os.environ.items() if key != STORE_ENV_VAR}


def run(command: list[str], cwd: Path, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in ``cwd``; raise with its output if it fails."""
    finished = subprocess.run(command, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout)
    if finished.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({finished.returncode}):\n{finished.stdout}{finished.stderr}")
    return finished


def run_study(study: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m noop.run args`` in ``study``."""
    return run([sys.executable, "-m", APP, *args], study)


def grid_override(jobs: int, start: int = 0) -> str:
    """The sweep override of ``jobs`` distinct no-op jobs (``message=range(start,start+jobs)``)."""
    return f"message=range({start},{start + jobs})"


@dataclass
class WorkerProcess:
    """A ``hyperspace worker`` process started by :func:`start_worker`, its output in ``log``."""

    process: subprocess.Popen[str]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait(self, timeout: float = 3600) -> None:
        """Wait until the worker exits; raise with its log if it failed."""
        if self.process.wait(timeout=timeout) != 0:
            raise RuntimeError(f"worker {self.pid} exited with {self.process.returncode}:\n{self.log.read_text()}")


def start_worker(study: Path, *args: str, name: str = "worker") -> WorkerProcess:
    """``hyperspace worker --app noop.run args`` in ``study``, its output in ``<name>.log`` there."""
    log = study / f"{name}.log"
    with open(log, "w", encoding="utf-8") as output:
        process = subprocess.Popen(
            [str(HYPERSPACE), "worker", "--app", APP, *args], cwd=study, env=clean_env(), stdout=output, stderr=subprocess.STDOUT, text=True
        )
    return WorkerProcess(process, log)


# the queue, from this process (run inside working_in(study))


def enqueue(store_uri: str, first: int, jobs: int) -> int:
    """Enqueue ``jobs`` no-op jobs (``message=first..``) through :class:`hyperspace_hydra.Queue`; return the sweep id."""
    queue = Queue(app=APP, store=store_uri)
    try:
        queue.submit_grid({"message": list(range(first, first + jobs))})
        if queue.last is None or len(queue.last.enqueued) != jobs:
            raise RuntimeError(f"expected {jobs} new jobs, {queue.last}")
        return queue.last.sweep_id
    finally:
        queue.close()


def wait_for_sweep(store_uri: str, sweep_id: int, timeout: float = 3600) -> dict[str, int]:
    """Poll the store until every job of the sweep has ended; return its counts by state.

    Raises if a job ended other than COMPLETED (the numbers would mean nothing).
    """
    deadline = time.monotonic() + timeout
    with open_store(store_uri) as store:
        while time.monotonic() < deadline:
            counts = store.get_sweep(sweep_id)["counts"]
            if set(counts) <= JOB_FINAL_STATES:
                if set(counts) != {COMPLETED}:
                    raise RuntimeError(f"sweep {sweep_id} ended with {counts}")
                return counts
            time.sleep(0.2)  # each poll opens a connection: keep the load on the store low
    raise TimeoutError(f"sweep {sweep_id} did not end within {timeout:g} s")


def completed_runs(store_uri: str) -> int:
    """How many COMPLETED runs the store holds (a check that every job was recorded)."""
    with open_store(store_uri) as store:
        return sum(stored["status"] == COMPLETED for stored in store.list_runs())
