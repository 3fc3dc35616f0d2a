"""Shared helpers: copies of the studies in temporary directories, run as real subprocesses."""

from __future__ import annotations

import contextlib
import gc
import importlib
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import fork_server
import psycopg
import pytest
import yaml
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from postgres_cluster import PostgresCluster
from psycopg import sql
from slurm_cluster import SlurmCluster

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_STUDY = REPO / "examples" / "aggregation_study"
PROBE_STUDY = Path(__file__).resolve().parent / "apps" / "probe_study"
HYPERSPACE = Path(sys.executable).parent / "hyperspace"


def copy_study(source: Path, destination: Path) -> Path:
    """A copy of a study without its store and Hydra output."""
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns(".hyperspace", "outputs", "multirun", "__pycache__"))
    return destination


@pytest.fixture
def probe_study(tmp_path: Path) -> Path:
    """A private copy of the probe study (its store and outputs land in the copy)."""
    return copy_study(PROBE_STUDY, tmp_path / "probe_study")


@pytest.fixture
def example_study(tmp_path: Path) -> Path:
    """A private copy of the example study."""
    return copy_study(EXAMPLE_STUDY, tmp_path / "aggregation_study")


def clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "HYPERSPACE_STORE"}
    env.update(extra)
    return env


def run_app(study: Path, module: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module args`` in ``study`` and return the finished process."""
    return fork_server.run([sys.executable, "-m", module, *args], cwd=study, env=env or clean_env(), timeout=timeout)


IN_A_PROCESS = frozenset({"worker", "rerun", "ui"})
"""Commands that run a study's jobs or serve: :func:`hyperspace` always starts them as a real process."""


def hyperspace(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The ``hyperspace`` command in ``cwd``: its exit status and output, as from :func:`hyperspace_process`.

    A command that does not run jobs or serve (``runs``, ``queue``, ``sweep``, ``store``, ``backfill``, ``report``,
    ``import``, ``slurm``) is the CLI's ``main`` called in this process, about 40 times cheaper than a process
    that imports Hydra, SQLAlchemy and the rest again; the commands in :data:`IN_A_PROCESS` run as one.
    """
    if not args or args[0] in IN_A_PROCESS:
        return hyperspace_process(cwd, *args, env=env)
    return _call_cli(cwd, list(args), env or clean_env())


def hyperspace_in_this_process(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Any ``hyperspace`` command, :data:`IN_A_PROCESS` ones too, called in this process as :func:`hyperspace` calls the
    others: for what such a command decides before it runs a job or serves (its arguments), where its process is not
    what is tested. The test makes sure that it cannot go on to run or serve here (patch what it would start)."""
    return _call_cli(cwd, list(args), env or clean_env())


def hyperspace_process(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``hyperspace`` command in ``cwd`` as a real process."""
    return fork_server.run([str(HYPERSPACE), *args], cwd=cwd, env=env or clean_env(), timeout=120)


def _call_cli(cwd: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI's ``main(args)`` run here as in a fresh ``hyperspace`` process started in ``cwd`` with ``env``."""
    from hyperspace_hydra.cli import main

    with _as_a_process_in(cwd, env) as (out, err):
        try:
            status = main(args)
        except SystemExit as exit:  # argparse's usage errors and --help: the status (and message) the interpreter makes of it
            status = _exit_status(exit.code)
    return subprocess.CompletedProcess([str(HYPERSPACE), *args], status, out.getvalue(), err.getvalue())


def _exit_status(code: object) -> int:
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


def notebook(study: Path, code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Python ``code`` run in this process as :func:`python_in` runs it in a new one, in the study's directory: an
    exception is exit status 1 with its traceback on stderr. For notebook code whose process is not what is tested
    (``Queue(...).submit``), about 1 s of imports cheaper."""
    namespace = {"__name__": "__main__"}
    with _as_a_process_in(study, env or clean_env()) as (out, err):
        try:
            exec(compile(code, "<notebook>", "exec"), namespace)
            status = 0
        except Exception:
            traceback.print_exc()
            status = 1
        namespace.clear()
        gc.collect()  # as at a process's exit, what the code left open (a Queue's store) is closed
    return subprocess.CompletedProcess([sys.executable, "-c", code], status, out.getvalue(), err.getvalue())


def _printed_by_an_unconfigured_process(record: logging.LogRecord) -> bool:
    """Whether a process that configured no logging prints ``record`` (Python's last resort): only if no logger on its
    way to the root has a handler (the CLI gives psycopg's a NullHandler, to silence what it reports itself)."""
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None and logger is not logging.getLogger():
        if logger.handlers or not logger.propagate:
            return False
        logger = logger.parent
    return True


@contextlib.contextmanager
def _as_a_process_in(cwd: Path, env: dict[str, str]) -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """This process made to look like a fresh one started in ``cwd`` with ``env`` (with ``cwd`` first on
    ``sys.path``), its output and its logging (at warning or above, as an unconfigured process's) captured in the
    two buffers yielded. What the code changes of this process (directory, environment, ``sys.path``, the study's
    modules it imported, Hydra's global instance and config) is put back afterwards."""
    out, err = io.StringIO(), io.StringIO()
    log_handler = logging.StreamHandler(err)
    log_handler.setLevel(logging.WARNING)
    log_handler.addFilter(_printed_by_an_unconfigured_process)
    saved_env, saved_path, saved_hydra_config = dict(os.environ), list(sys.path), HydraConfig.instance().cfg
    _forget_modules_of(cwd)
    sys.path.insert(0, str(cwd))
    importlib.invalidate_caches()
    os.environ.clear()
    os.environ.update(env)
    logging.getLogger().addHandler(log_handler)
    try:
        with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield out, err
    finally:
        logging.getLogger().removeHandler(log_handler)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path
        _forget_modules_of(cwd)
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = saved_hydra_config


def _forget_modules_of(directory: Path) -> None:
    """Unload the modules of the packages in ``directory`` (a study's code), so that the next import reads its files
    again: another test's copy of the study, or this one changed, is not served from ``sys.modules``."""
    inside = f"{directory.resolve()}{os.sep}"
    for name in [name for name, module in sys.modules.items() if (getattr(module, "__file__", None) or "").startswith(inside)]:
        del sys.modules[name]


def stored_runs(study: Path) -> list[dict[str, Any]]:
    """Every run in the study's default store, as ``runs show --json`` documents."""
    listing = hyperspace(study, "runs", "ls", "--json")
    assert listing.returncode == 0, listing.stderr
    ids = [json.loads(line)["id"] for line in listing.stdout.splitlines()]
    return [json.loads(hyperspace(study, "runs", "show", str(run_id), "--json").stdout) for run_id in ids]


def enqueue(study: Path, *overrides: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Enqueue a ``--multirun`` of the probe study with the hyperspace launcher."""
    return run_app(study, "probe.run", "--multirun", "hydra/launcher=hyperspace", *overrides, env=env)


def submit(study: Path, *overrides: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The jobs :func:`enqueue` would enqueue for ``overrides`` (``key=value`` or ``key=a,b``: one sweep with a job for
    each combination, in the launcher's order), submitted through the notebook API in this process (:func:`notebook`:
    ``Queue(...).submit_grid``), ~0.7 CPU s cheaper than a process. For tests about what becomes of queued jobs; the
    launcher and its process have tests of their own."""
    grid: dict[str, list[Any]] = {}
    for override in overrides:
        key, equals, values = override.partition("=")
        assert equals and key.replace(".", "_").isidentifier(), f"a plain key=value override, not {override!r}"
        grid[key] = [yaml.safe_load(value) for value in values.split(",")]
    return notebook(study, f"from hyperspace_hydra import Queue\nprint(Queue(app='probe.run').submit_grid({grid!r}))", env)


def start_worker(
    study: Path, *args: str, log_name: str = "worker.log", env: dict[str, str] | None = None, prefix: Sequence[str] = ()
) -> fork_server.Process:
    """A worker of the probe study in its own session, its output in a file of the study; ``prefix`` runs it
    through another command (``ip netns exec NAME``)."""
    with open(study / log_name, "w") as log:
        worker = fork_server.popen(
            [*prefix, str(HYPERSPACE), "worker", "--app", "probe.run", *args],
            cwd=study, env=env or clean_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    _started_workers.append(worker)
    return worker


_started_workers: list[fork_server.Process] = []
"""The workers the running test started (see :func:`_no_worker_outlives_its_test`)."""


@pytest.fixture(autouse=True)
def _no_worker_outlives_its_test() -> Iterator[None]:
    """A test that fails half way leaves no worker behind: one still running afterwards is killed with its jobs (its
    process group). A worker left running would take jobs of later tests' stores and load the machine for ever."""
    yield
    while _started_workers:
        worker = _started_workers.pop()
        if worker.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def run_worker(study: Path, *args: str, timeout: float = 300, env: dict[str, str] | None = None) -> str:
    """Run a worker until the queue is empty; return its output."""
    worker = start_worker(study, "--exit-when-empty", *args, env=env)
    assert worker.wait(timeout=timeout) == 0, (study / "worker.log").read_text()
    return (study / "worker.log").read_text()


def wait_until(condition: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    """Poll ``condition`` (a store query) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def python_in(study: Path, code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` in the study's directory, as a notebook there would."""
    return fork_server.run([sys.executable, "-c", code], cwd=study, env=env or clean_env(), timeout=120)


@pytest.fixture
def store(backend: Any) -> Iterator[Any]:
    """A store opened on the ``backend`` fixture of the test module (the store contract and Mongo tests define it)."""
    with backend.open() as opened:
        yield opened


# A real, throwaway PostgreSQL server (tests/postgres_cluster.py).


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL server started once for the session and removed at its end."""
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture
def postgres_uri(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """The URI of a new, empty database on the session's server; the database is dropped after the test."""
    database = f"t_{uuid.uuid4().hex}"
    _administer(postgres_cluster, "CREATE DATABASE {}", database)
    yield postgres_cluster.uri_for(database)
    _administer(postgres_cluster, "DROP DATABASE {} WITH (FORCE)", database)


def _administer(cluster: PostgresCluster, statement: str, database: str) -> None:
    """Run ``statement`` about ``database`` (its ``{}``) outside a transaction, from the maintenance database."""
    with psycopg.connect(cluster.uri_for("postgres"), autocommit=True) as connection:
        connection.execute(sql.SQL(statement).format(sql.Identifier(database)))


# A real, throwaway single-node SLURM cluster with accounting (tests/slurm_cluster.py).


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A SLURM cluster started once for the session and removed at its end."""
    with SlurmCluster() as cluster:
        yield cluster


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` (``scripts/test.sh --fast``): half as many test processes again as there are cores.

    Many tests spend part of their time waiting for workers, leases and sleeping jobs; with one test process per
    core, a core idles while its test waits (the fast lane kept 1.4 of 2 cores busy). ``PYTEST_XDIST_AUTO_NUM_WORKERS``
    still decides when it is set.
    """
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return max(2, len(os.sched_getaffinity(0)) * 3 // 2)


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Iterator[None]:
    """Collect with bytecode writing on, whatever ``PYTHONDONTWRITEBYTECODE`` says, so that pytest keeps the test
    modules as it rewrote their asserts (``tests/__pycache__``) and later test processes read them instead of rewriting
    them (~2 CPU s a process: the fast lane starts three). Only collection: what the tests import or start is as set."""
    writes = sys.dont_write_bytecode
    sys.dont_write_bytecode = False
    try:
        return (yield)
    finally:
        sys.dont_write_bytecode = writes


_MARK_BY_FIXTURE = {"postgres_cluster": "postgres", "slurm_cluster": "slurm"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test that needs a throwaway server with that server's marker (see setup.cfg)."""
    for item in items:
        for fixture, marker in _MARK_BY_FIXTURE.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


_LEFT_BEHIND = ("multirun", "outputs", ".hyperspace")
"""What Hydra and the store write into the working directory; no test may leave them in the repository."""
_existing_key = pytest.StashKey[set[str]]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_existing_key] = {name for name in _LEFT_BEHIND if (REPO / name).exists()}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a test wrote Hydra output or a store into the repository instead of a tmp dir."""
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller checks once
    written = {name for name in _LEFT_BEHIND if (REPO / name).exists()} - session.config.stash[_existing_key]
    if written:
        print(f"\nerror: a test wrote {', '.join(sorted(written))} into {REPO}; tests must write only under tmp dirs", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# A real headless Chromium (Debian's, never a downloaded one), driven by Playwright.

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
"""Without the background-networking flags Chromium waits on a closed network and pages load slowly."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium for this module's tests."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: scripts/install_test_servers.sh installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh 1400×900 page; every page error fails the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.set_default_timeout(10_000)
    yield opened
    context.close()
    assert not errors, errors
