"""Every job of a study becomes one run in the store, whichever launcher runs it and however it ends."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fork_server
import pytest
from conftest import clean_env, hyperspace, python_in, run_app, stored_runs


def test_a_completed_run_stores_what_reproduces_it(probe_study: Path) -> None:
    finished = run_app(probe_study, "probe.run", "message=first")
    assert finished.returncode == 0, finished.stderr
    [run] = stored_runs(probe_study)
    assert run["status"] == "COMPLETED" and run["command"] == "main"
    assert run["overrides"] == ["message=first"] and run["choices"]["model"] == "small"
    assert run["config"]["model"]["dropout"] == 0.1, "signature default filled in"
    assert run["config"]["model"]["layer"] == {"_target_": "probe.model.Layer", "width": 8, "activation": "relu"}
    assert run["config"]["model"]["blocks"][0]["activation"] == "relu", "defaults filled inside lists"
    assert run["config"]["model"]["optimizer"]["betas"] == [0.9, 0.999], "dataclass default_factory filled in"
    assert "dropout" not in run["config_given"]["model"] and run["config_given"]["message"] == "first"
    assert len(run["config_hash"]) == 64 and run["seed"] == 7
    assert run["result"]["score"] == 1.5 and run["objective"] == 1.5
    assert "hello from the task: first" in run["captured_out"]
    assert "a log line from the task" in run["captured_out"], "fd capture includes logging"
    assert run["metrics"]["loss"]["steps"] == [0, 1, 2] and run["metrics"]["loss"]["values"][2] == pytest.approx(1 / 3)
    assert run["metrics"]["lr"]["steps"] == [10]
    assert {"name": "loss"} in run["info"]["metrics"]
    assert run["experiment"]["name"] == "probe.run"
    assert any(dependency.startswith("hydra-core==") for dependency in run["experiment"]["dependencies"])
    assert run["host"]["hostname"] and run["host"]["python_version"].startswith("3.")
    assert run["start_time"] <= run["heartbeat"] <= run["stop_time"]
    assert Path(run["output_dir"]).is_dir()
    assert run["job_id"] is None and run["fail_trace"] is None


def test_a_float_result_is_the_objective_without_configuration(probe_study: Path) -> None:
    assert run_app(probe_study, "probe.run", "result=float", "hyperspace.objective=null").returncode == 0
    [run] = stored_runs(probe_study)
    assert run["result"] == 0.25 and run["objective"] == 0.25


def test_the_seed_seeds_random_and_numpy(probe_study: Path) -> None:
    for seed in ("seed=7", "seed=7", "seed=8"):
        assert run_app(probe_study, "probe.run", seed).returncode == 0
    first, again, other = (run["result"] for run in stored_runs(probe_study))
    assert first == again
    assert first["draw"] != other["draw"] and first["numpy_draw"] != other["numpy_draw"]


def test_a_store_that_the_jobs_env_set_names_is_where_its_run_is_recorded(probe_study: Path) -> None:
    """The store is worked out when the run starts and reused when its job starts, unless ``$HYPERSPACE_STORE``
    changed in between, as the job's ``env_set`` may change it."""
    other = probe_study / "other.db"
    finished = run_app(probe_study, "probe.run", f"+hydra.job.env_set.HYPERSPACE_STORE='sqlite:///{other}'")
    assert finished.returncode == 0, finished.stderr
    with sqlite3.connect(other) as connection:
        assert connection.execute("SELECT status FROM runs").fetchall() == [("COMPLETED",)]
    assert stored_runs(probe_study) == [], "the store the config names was opened before the job, and holds no run"


def test_a_failing_task_is_recorded_failed_and_the_error_still_reaches_the_user(probe_study: Path) -> None:
    finished = run_app(probe_study, "probe.run", "fail=true")
    assert finished.returncode == 1
    assert "task failed on purpose" in finished.stderr
    [run] = stored_runs(probe_study)
    assert run["status"] == "FAILED" and run["stop_time"] is not None
    assert "ValueError: task failed on purpose: hi" in "".join(run["fail_trace"])
    assert "hello from the task" in run["captured_out"]


def _wait_for_status(store: Path, status: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = _latest_run(store) if store.exists() else None
        if row is not None and row["status"] == status:
            return row
        time.sleep(0.1)
    raise AssertionError(f"no {status} run in {store} after {timeout} s")


def _latest_run(store: Path) -> dict | None:
    with sqlite3.connect(store) as connection:
        connection.row_factory = sqlite3.Row
        try:
            row = connection.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        except sqlite3.OperationalError:  # the file exists, its tables are being created
            return None
    return dict(row) if row is not None else None


def _start_sleeping_task(study: Path, seconds: int) -> fork_server.Process:
    return fork_server.popen([sys.executable, "-m", "probe.run", f"sleep={seconds}"], cwd=study, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_run_is_recorded_interrupted(probe_study: Path, stop_signal: signal.Signals) -> None:
    process = _start_sleeping_task(probe_study, 60)
    store = probe_study / ".hyperspace" / "store.db"
    running = _wait_for_status(store, "RUNNING")
    deadline = time.monotonic() + 30
    while "sleeping" not in (_wait_for_status(store, "RUNNING")["captured_out"] or "") and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(stop_signal)
    process.communicate(timeout=60)
    assert process.returncode != 0
    [run] = stored_runs(probe_study)
    assert run["_id"] == running["id"] and run["status"] == "INTERRUPTED"
    assert run["stop_time"] is not None and "sleeping" in run["captured_out"]


def test_heartbeats_store_output_and_metrics_while_the_task_runs(probe_study: Path) -> None:
    process = _start_sleeping_task(probe_study, 4)
    store = probe_study / ".hyperspace" / "store.db"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            run = _wait_for_status(store, "RUNNING")
            if "sleeping" in (run["captured_out"] or ""):
                break
            time.sleep(0.1)
        assert "sleeping" in run["captured_out"] and run["heartbeat"] > run["start_time"]
        with sqlite3.connect(store) as connection:
            assert connection.execute("SELECT count(*) FROM metrics WHERE run_id = ?", (run["id"],)).fetchone()[0] == 4
    finally:
        process.communicate(timeout=60)
    assert process.returncode == 0


def test_the_basic_launcher_records_every_job_of_a_multirun(probe_study: Path) -> None:
    finished = run_app(probe_study, "probe.run", "--multirun", "model=small,large", "message=a,b")
    assert finished.returncode == 0, finished.stderr
    runs = stored_runs(probe_study)
    assert [run["status"] for run in runs] == ["COMPLETED"] * 4
    assert len({run["config_hash"] for run in runs}) == 4
    assert {(run["choices"]["model"], run["config"]["message"]) for run in runs} == {("small", "a"), ("small", "b"), ("large", "a"), ("large", "b")}
    assert all(f"hello from the task: {run['config']['message']}" in run["captured_out"] for run in runs)


def test_the_joblib_launcher_records_every_job_in_its_worker_processes(probe_study: Path) -> None:
    finished = run_app(probe_study, "probe.run", "--multirun", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "message=a,b,c", "fail=false,true")
    assert finished.returncode != 0, "a failing job fails the joblib sweep, as without recording"
    runs = stored_runs(probe_study)
    assert sorted(run["status"] for run in runs) == ["COMPLETED"] * 3 + ["FAILED"] * 3
    assert all(f"hello from the task: {run['config']['message']}" in run["captured_out"] for run in runs)
    assert all(run["metrics"]["loss"]["steps"] == [0, 1, 2] for run in runs)
    assert {run["experiment"]["name"] for run in runs} == {"probe.run"}, "named after the app, not joblib's worker __main__"


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_code_version_records_commit_dirty_flag_and_diff(probe_study: Path) -> None:
    _git(probe_study, "init", "-q")
    (probe_study / ".gitignore").write_text(".hyperspace/\noutputs/\n")
    _git(probe_study, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".gitignore", "probe", "conf")
    _git(probe_study, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "probe")
    assert run_app(probe_study, "probe.run").returncode == 0
    with (probe_study / "probe" / "run.py").open("a") as source:
        source.write("# an uncommitted change\n")
    (probe_study / "notes.txt").write_text("untracked")
    assert run_app(probe_study, "probe.run").returncode == 0
    clean_run, dirty_run = stored_runs(probe_study)
    clean, dirty = clean_run["code_version"], dirty_run["code_version"]
    head = _git(probe_study, "rev-parse", "HEAD")
    assert clean["commit"] == head and clean["diff"] is None
    assert dirty["commit"] == head and dirty["dirty"] is True
    assert "+# an uncommitted change" in dirty["diff"] and "notes.txt" in dirty["untracked"]
    commands = hyperspace(probe_study, "runs", "show", str(dirty_run["_id"]), "--reproduce").stdout
    assert f"git checkout {head}" in commands and "+# an uncommitted change" in commands and "notes.txt" in commands
    assert commands.rstrip().endswith("python -m probe.run")
    script = commands.replace(f"git checkout {head}", f"git stash -q && git checkout -q {head}").replace("python -m", f"{sys.executable} -m")
    reproduced = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=clean_env())
    assert reproduced.returncode == 0, reproduced.stderr
    assert len(stored_runs(probe_study)) == 3 and "# an uncommitted change" in (probe_study / "probe" / "run.py").read_text()


def test_a_new_parameter_with_a_default_appears_in_new_runs(probe_study: Path) -> None:
    assert run_app(probe_study, "probe.run").returncode == 0
    model_source = probe_study / "probe" / "model.py"
    model_source.write_text(model_source.read_text().replace("dropout: float = 0.1,", "dropout: float = 0.1, momentum: float = 0.0,"))
    assert run_app(probe_study, "probe.run").returncode == 0
    old, new = stored_runs(probe_study)
    assert "momentum" not in old["config"]["model"] and new["config"]["model"]["momentum"] == 0.0
    assert old["config_given"] == new["config_given"] and old["config_hash"] != new["config_hash"]


def test_a_recording_failure_is_logged_loudly_and_the_job_goes_on(probe_study: Path) -> None:
    (probe_study / "blocker").write_text("a file where the store's directory should be")
    code = (
        "from hydra.core.hydra_config import HydraConfig\n"
        "from omegaconf import open_dict\n"
        "from hyperspace_hydra.app import load_app\n"
        "from hyperspace_hydra.tracking import RecordingCallback\n"
        "config = load_app('probe.run').compose(['hyperspace.store=sqlite:///blocker/store.db'])\n"
        "with open_dict(config):\n"
        "    config.hydra.runtime.output_dir = 'out'\n"
        "HydraConfig.instance().set_config(config)\n"
        "RecordingCallback().on_job_start(config, task_function=print)\n"
        "print('the job goes on')\n"
    )  # the store is checked before a run starts; this is a store that fails only when the job starts
    started = python_in(probe_study, code)
    assert (started.returncode, started.stdout) == (0, "the job goes on\n"), started.stderr
    assert started.stderr == (
        f"hyperspace: this job is NOT recorded: HyperspaceError: cannot open store sqlite:///{probe_study}/blocker/store.db: "
        f"cannot create {probe_study}/blocker: File exists\n"
    )


def test_log_scalar_outside_a_recorded_run_does_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hyperspace_hydra import log_scalar
    from hyperspace_hydra.recorder import active_recorder

    monkeypatch.chdir(tmp_path)
    assert active_recorder() is None
    assert log_scalar("loss", 1.0) is None
    assert active_recorder() is None and list(tmp_path.iterdir()) == [], "no run started, no store created"


@pytest.mark.parametrize(
    ("name", "value", "step", "message"),
    [
        ("x", 1.0, 10**30, "log_scalar('x'): the step is a whole number from -2**63 to 2**63-1, not 1000000000000000000000000000000"),
        ("x", 1.0, 1.5, "log_scalar('x'): the step is a whole number from -2**63 to 2**63-1, not 1.5"),
        ("x", 1.0, True, "the step is a whole number"),
        ("x", "abc", None, "log_scalar('x'): the value is a number, not 'abc'"),
        ("x", None, None, "log_scalar('x'): the value is a number, not None"),
        ("", 1.0, None, "log_scalar: a metric's name is a non-empty string of at most 256 characters, not ''"),
        ("n" * 257, 1.0, None, "not a name of 257 characters"),
        (7, 1.0, None, "a metric's name is a non-empty string of at most 256 characters, not 7"),
    ],
)
def test_a_metric_point_no_store_could_keep_is_refused_when_logged(name: object, value: object, step: object, message: str) -> None:
    import numpy

    from hyperspace_hydra.metric_buffer import MetricBuffer

    buffer = MetricBuffer()
    with pytest.raises(ValueError, match=re.escape(message)):
        buffer.add(name, value, step)  # type: ignore[arg-type]
    assert buffer.take() == {}, "nothing of a refused point is kept"
    assert [buffer.add("x", value, step) for value, step in ((numpy.float32(0.5), numpy.int64(3)), (float("nan"), None), (1, 2**63 - 1))] == [3, 4, 2**63 - 1]
    with pytest.raises(ValueError, match="the step is a whole number"):  # the step after the largest: refused, not overflowed at the run's end
        buffer.add("x", 1.0)


def test_the_stored_config_is_plain_json_data(probe_study: Path) -> None:
    from hyperspace_hydra.store import open_store

    assert run_app(probe_study, "probe.run").returncode == 0
    with open_store(f"sqlite:///{probe_study}/.hyperspace/store.db") as store:
        [config] = [run["config"] for run in store.list_runs(fields=["config"])]
    assert json.loads(json.dumps(config)) == config, "only str keys, lists (no tuples) and JSON scalars"
    assert config["model"]["_target_"] == "probe.model.Model" and isinstance(config["model"]["dropout"], float)


def test_host_info_and_package_versions_are_gathered_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import sacred.host_info

    from hyperspace_hydra import provenance

    calls = []
    monkeypatch.setattr(sacred.host_info, "get_host_info", lambda: calls.append(1) or {"hostname": "h"})
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    provenance._sacred_host_info.cache_clear()
    try:
        assert provenance.host_info() == provenance.host_info() == {"hostname": "h"}
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
        assert provenance.host_info() == {"hostname": "h", "visible_gpus": ["1"]}, "a job's share of the GPUs is read at every call"
        assert len(calls) == 1
        assert provenance.package_versions() is provenance.package_versions()
    finally:
        provenance._sacred_host_info.cache_clear()


def test_a_process_opens_its_recording_store_once_and_a_forked_one_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from hyperspace_hydra.tracking import recording_store

    uri = f"sqlite:///{tmp_path}/store.db"
    first = recording_store(uri)
    assert recording_store(uri) is first
    monkeypatch.setattr(os, "getpid", lambda: -1)
    assert recording_store(uri) is not first


def counted(method: Callable[..., Any], calls: Counter[str]) -> Callable[..., Any]:
    """``method``, counting its calls in ``calls`` under its name."""

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[method.__name__] += 1
        return method(*args, **kwargs)

    return counting


def test_a_run_is_written_in_two_store_writes_plus_its_metrics(tmp_path: Path) -> None:
    from hyperspace_hydra.observer import StoreObserver
    from hyperspace_hydra.recorder import RunRecorder
    from hyperspace_hydra.store import open_store
    from hyperspace_hydra.store.base import utcnow

    store = open_store(f"sqlite:///{tmp_path}/store.db")
    writes: Counter[str] = Counter()
    for name in ("start_run", "update_run", "finish_run", "add_metrics"):
        setattr(store, name, counted(getattr(store, name), writes))
    recorder = RunRecorder(StoreObserver(store, {"task": "t"}, lambda result: result), "sys", heartbeat_seconds=60)
    run_id = recorder.start({"ex_info": {}, "command": "main", "host_info": {}, "start_time": utcnow(), "config": {}, "meta_info": {}})
    print("hello from the run")
    recorder.metrics.add("loss", 0.5)
    recorder.completed(0.25)
    assert writes == {"start_run": 1, "add_metrics": 1, "finish_run": 1}
    run = store.get_run(run_id)
    assert run["status"] == "COMPLETED" and run["objective"] == 0.25
    assert "hello from the run" in run["captured_out"] and run["info"] == {"metrics": [{"name": "loss"}]}
    assert run["start_time"] <= run["heartbeat"] <= run["stop_time"]


def test_runs_one_after_another_in_a_process_are_beaten_by_one_heartbeat_thread_and_never_after_their_end(tmp_path: Path) -> None:
    import threading

    from hyperspace_hydra.observer import StoreObserver
    from hyperspace_hydra.recorder import RunRecorder
    from hyperspace_hydra.store import open_store
    from hyperspace_hydra.store.base import utcnow

    store = open_store(f"sqlite:///{tmp_path}/store.db")
    beats: Counter[str] = Counter()
    store.update_run = counted(store.update_run, beats)  # type: ignore[method-assign]
    start_info = {"ex_info": {}, "command": "main", "host_info": {}, "start_time": utcnow(), "config": {}, "meta_info": {}}
    for _ in range(3):
        recorder = RunRecorder(StoreObserver(store, {"task": "t"}, lambda result: result), "sys", heartbeat_seconds=0.05)
        run_id = recorder.start(start_info)
        before = beats["update_run"]
        deadline = time.monotonic() + 30
        while beats["update_run"] < before + 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert beats["update_run"] >= before + 2, "the run is beaten while it runs"
        recorder.completed(1.0)
        ended = beats["update_run"]
        assert recorder.beat() and beats["update_run"] == ended, "a beat after the end writes nothing"
        time.sleep(0.2)
        assert beats["update_run"] == ended, "no heartbeat after the final event"
        assert store.get_run(run_id)["status"] == "COMPLETED"
        assert [thread.name for thread in threading.enumerate()].count("hyperspace-heartbeat") == 1


def test_a_heartbeat_under_way_when_the_run_ends_is_written_before_the_capture_closes_and_the_final_event(tmp_path: Path) -> None:
    import threading

    from hyperspace_hydra.observer import StoreObserver
    from hyperspace_hydra.recorder import RunRecorder
    from hyperspace_hydra.store import open_store
    from hyperspace_hydra.store.base import utcnow

    store = open_store(f"sqlite:///{tmp_path}/store.db")
    events: list[str] = []
    finish_run = store.finish_run
    store.finish_run = lambda *args, **kwargs: events.append("final") or finish_run(*args, **kwargs)  # type: ignore[method-assign]
    recorder = RunRecorder(StoreObserver(store, {"task": "t"}, lambda result: result), "fd", heartbeat_seconds=60)
    run_id = recorder.start({"ex_info": {}, "command": "main", "host_info": {}, "start_time": utcnow(), "config": {}, "meta_info": {}})
    recorder._exit_stack.callback(events.append, "capture closed")  # closed first of what the run holds
    output, reading, release = recorder._output, threading.Event(), threading.Event()
    assert output is not None

    class SlowOutput:
        def get(self) -> str | None:
            events.append("beat reads the output")
            reading.set()
            release.wait(30)
            events.append("beat has read it")
            return output.get()

    recorder._output = SlowOutput()
    os.write(1, b"before the beat\n")
    beat = threading.Thread(target=recorder.beat)
    beat.start()
    assert reading.wait(30)
    recorder._output = output
    threading.Timer(0.3, release.set).start()
    recorder.completed(1.0)  # in the main thread, as the callback ends a run
    beat.join(30)
    assert events == ["beat reads the output", "beat has read it", "capture closed", "final"]
    run = store.get_run(run_id)
    assert run["status"] == "COMPLETED" and "before the beat" in run["captured_out"]


def test_a_killed_run_of_the_basic_launcher_is_shown_and_stored_as_died_once_its_heartbeat_is_stale(probe_study: Path) -> None:
    task = fork_server.popen([sys.executable, "-m", "probe.run", "sleep=60"], cwd=probe_study, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    database = probe_study / ".hyperspace" / "store.db"
    deadline = time.monotonic() + 60
    while not (database.exists() and _statuses(database) == ["RUNNING"]):
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.1)
    task.kill()
    task.wait(timeout=30)
    assert [row["status"] for row in _listed(probe_study)] == ["RUNNING"], "a fresh heartbeat: maybe still alive"
    with sqlite3.connect(database) as connection:  # as if STALE_RUN_SECONDS had passed since its last heartbeat
        connection.execute("UPDATE runs SET heartbeat = datetime('now', '-125 seconds')")
    assert [row["status"] for row in _listed(probe_study)] == ["DIED"]
    assert _statuses(database) == ["DIED"], "stored, not only shown"


def _statuses(database: Path) -> list[str]:
    """The statuses of the store's runs; none while the store's tables are still being created."""
    try:
        with sqlite3.connect(database) as connection:
            return [status for (status,) in connection.execute("SELECT status FROM runs ORDER BY id")]
    except sqlite3.OperationalError:
        return []


def _listed(study: Path) -> list[dict[str, Any]]:
    listed = hyperspace(study, "runs", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines()]
