"""SLURM against a real single-node cluster (tests/slurm_cluster.py): the submitit launcher's runs
recorded, and workers submitted as a SLURM job array draining the queue, cancelled and signalled."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import clean_env, copy_study, enqueue, hyperspace, run_app, wait_until
from slurm_cluster import OTHER_PARTITION, SlurmCluster

from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.slurm.environment import execution_info, gpu_shares, network_filesystem, slurm_job_id, sqlite_store_warning
from hyperspace_hydra.slurm.workers import parse_time_limit
from hyperspace_hydra.store import COMPLETED, open_store
from hyperspace_hydra.store.base import PRUNED

CURVE_STUDY = Path(__file__).resolve().parent / "apps" / "curve_study"


@pytest.fixture
def slurm_env(slurm_cluster: SlurmCluster, postgres_uri: str) -> dict[str, str]:
    """The environment of a user on the cluster's login node, with a PostgreSQL store."""
    return clean_env(SLURM_CONF=str(slurm_cluster.conf), PATH=slurm_cluster.environment()["PATH"], HYPERSPACE_STORE=postgres_uri)


def _jobs(uri: str) -> list[dict[str, Any]]:
    with open_store(uri) as store:
        return store.list_jobs()


def _runs(uri: str) -> list[dict[str, Any]]:
    with open_store(uri) as store:
        return store.list_runs()


def _submit_workers(study: Path, env: dict[str, str], count: int, *options: str, app: str = "probe.run") -> list[str]:
    """``hyperspace slurm workers`` of ``app`` in the study; return the workers' SLURM job ids (``7_0``, ``7_1``; ``9`` for one)."""
    submitted = hyperspace(study, "slurm", "workers", str(count), "--app", app, "--time", "10", "--folder", str(study / "submitit"), *options, env=env)
    assert submitted.returncode == 0, submitted.stderr
    return submitted.stdout.split("SLURM jobs: ")[1].split()


def _slurm_states(cluster: SlurmCluster, job_ids: list[str]) -> dict[str, str]:
    """Each job's state as accounting knows it (``sacct``), e.g. {"3_0": "COMPLETED"} ("CANCELLED by 0" as CANCELLED)."""
    lines = cluster.run("sacct", "--noheader", "--parsable2", "--allocations", "--jobs", ",".join(job_ids), "--format=JobID,State").splitlines()
    return {job: state.split()[0] for job, state in (line.split("|")[:2] for line in lines if line)}


def _all_ended(cluster: SlurmCluster, job_ids: list[str]) -> dict[str, str] | None:
    states = _slurm_states(cluster, job_ids)
    ended = {job: state for job, state in states.items() if state not in ("PENDING", "RUNNING", "REQUEUED")}
    return ended if set(ended) == set(job_ids) else None


def _worker_logs(study: Path) -> str:
    return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')}" for path in sorted((study / "submitit").glob("*.out")))


def _release_when_requeued(cluster: SlurmCluster, job_id: str) -> None:
    """Wait until SLURM has requeued ``job_id``, then let it start in 2 s instead of SLURM's ~2 min hold.

    Not at once: slurmd refuses a job whose credential was revoked in the same second as the new one
    is issued ("Job credential revoked"), and the requeue revokes the old attempt's credential."""
    wait_until(lambda: "BeginTime" in cluster.run("squeue", "--noheader", "--jobs", job_id, "--format=%r"), timeout=60, what=f"SLURM to requeue job {job_id}")
    cluster.run("scontrol", "update", f"JobId={job_id}", "StartTime=now+2")


def _cluster_report(cluster: SlurmCluster, study: Path) -> str:
    """What the cluster and the jobs' logs say, for a failing test's message."""
    queue = cluster.run("squeue", "--all", "--format=%i %T %r %S %j")
    accounting = cluster.run("sacct", "--duplicates", "--format=JobID,JobName%20,State,ExitCode,Start,End")
    logs = "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')}" for path in sorted((study / "submitit").glob("*.err")))
    return f"\nsqueue:\n{queue}\nsacct:\n{accounting}\n{_worker_logs(study)}\n{logs}{cluster.logs()}"


def test_submitit_launcher_runs_are_recorded_with_their_slurm_job_and_gpu(probe_study: Path, slurm_env: dict[str, str]) -> None:
    swept = run_app(
        probe_study, "probe.run", "--multirun", "hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=5",
        "hydra.launcher.gpus_per_node=1", f"hydra.launcher.submitit_folder={probe_study / 'submitit'}", "score=1,2,3",
        env=slurm_env, timeout=300,
    )  # fmt: skip
    assert swept.returncode == 0, swept.stderr
    assert "WARNING: the store is SQLite" not in swept.stderr
    runs = _runs(slurm_env["HYPERSPACE_STORE"])
    assert sorted(run["result"]["score"] for run in runs) == [1, 2, 3]
    assert {run["status"] for run in runs} == {"COMPLETED"}
    assert {run["experiment"]["name"] for run in runs} == {"probe.run"}, "named after the app, not submitit's __main__"
    assert {Path(run["experiment"]["mainfile"]).name for run in runs} == {"run.py"}
    slurm = [run["host"]["slurm"] for run in runs]
    assert len({job["array_job_id"] for job in slurm}) == 1
    assert sorted(job["array_task_id"] for job in slurm) == ["0", "1", "2"]
    assert len({job["job_id"] for job in slurm}) == 3
    for run in runs:
        assert run["host"]["visible_gpus"] == [run["host"]["slurm"]["gpus"]]
        assert run["host"]["slurm"]["gpus"] in ("0", "1")


def test_submitit_launcher_warns_loudly_about_a_sqlite_store(probe_study: Path, slurm_env: dict[str, str]) -> None:
    env = {key: value for key, value in slurm_env.items() if key != "HYPERSPACE_STORE"}
    swept = run_app(
        probe_study, "probe.run", "--multirun", "hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=5",
        f"hydra.launcher.submitit_folder={probe_study / 'submitit'}", "score=1",
        env=env, timeout=300,
    )  # fmt: skip
    assert swept.returncode == 0, swept.stderr
    assert "WARNING: the store is SQLite" in swept.stderr
    assert "unreliable over NFS" in swept.stderr


def test_slurm_workers_drain_a_queue_exactly_once_and_exit_when_empty(probe_study: Path, slurm_cluster: SlurmCluster, slurm_env: dict[str, str]) -> None:
    uri = slurm_env["HYPERSPACE_STORE"]
    assert enqueue(probe_study, "score=range(0,20)", env=slurm_env).returncode == 0
    workers = _submit_workers(probe_study, slurm_env, 2, "--exit-when-empty", "--gpus-per-worker", "1")
    ended = wait_until(lambda: _all_ended(slurm_cluster, workers), timeout=180, what="both worker jobs to end")
    assert set(ended.values()) == {"COMPLETED"}, _worker_logs(probe_study)
    jobs = _jobs(uri)
    assert len(jobs) == 20 and {job["state"] for job in jobs} == {"COMPLETED"}
    runs = _runs(uri)
    assert sorted(run["job_id"] for run in runs) == sorted(job["id"] for job in jobs)  # one run per job: exactly once
    assert {f"{run['host']['slurm']['array_job_id']}_{run['host']['slurm']['array_task_id']}" for run in runs} == set(workers)
    assert {run["host"]["slurm"]["array_task_id"] for run in runs} == {"0", "1"}, "both workers took jobs"
    assert all(len(run["host"]["visible_gpus"]) == 1 for run in runs)
    gpus = {run["host"]["slurm"]["array_task_id"]: run["host"]["visible_gpus"] for run in runs}
    assert gpus["0"] != gpus["1"], "each worker's jobs see only that worker's GPU"


def test_slurm_workers_run_a_search_whose_pruner_stops_bad_trials_and_the_freed_worker_takes_the_next(
    tmp_path: Path, slurm_cluster: SlurmCluster, slurm_env: dict[str, str]
) -> None:
    study, uri = copy_study(CURVE_STUDY, tmp_path / "curve_study"), slurm_env["HYPERSPACE_STORE"]
    search = ["--multirun", "hydra/sweeper=hyperspace", "hydra/launcher=hyperspace", "lr=interval(0, 1)", "hydra.sweeper.seed=3", "hydra.sweeper.n_trials=12"]
    # The median pruner may prune from the third trial on (5 by default), so that a trial is pruned while the budget
    # still has trials to give, whatever the order in which the two workers end theirs.
    pruner = ["hydra.sweeper.pruner=median", "+hydra.sweeper.pruner_options.n_startup_trials=2"]
    assert run_app(study, "curve.run", *search, *pruner, "sleep=0.05", env=slurm_env).returncode == 0
    workers = _submit_workers(study, slurm_env, 2, "--exit-when-empty", app="curve.run")
    ended = wait_until(lambda: _all_ended(slurm_cluster, workers), timeout=300, what="both worker jobs to end")
    assert set(ended.values()) == {"COMPLETED"}, _worker_logs(study)
    jobs, runs = _jobs(uri), {run["_id"]: run for run in _runs(uri)}
    assert len(jobs) == 12 and {job["state"] for job in jobs} == {COMPLETED} and all(job["attempts"] == 0 for job in jobs), "budget exact, never retried"
    pruned = [runs[job["run_id"]] for job in jobs if runs[job["run_id"]]["status"] == PRUNED]
    assert pruned and all(run["info"]["pruned"]["step"] < 11 and run["host"]["slurm"]["array_job_id"] for run in pruned), _worker_logs(study)
    first_pruned = min(run["stop_time"] for run in pruned)
    assert any(job["created_at"] >= first_pruned for job in jobs), "the sweep tops up when a trial is pruned"
    assert sum(f"job {job['id']} PRUNED: " in _worker_logs(study) for job in jobs) == len(pruned), "the workers say which trials were pruned"


def test_a_slurm_worker_with_two_processes_gives_each_running_job_one_of_its_two_gpus(
    probe_study: Path, slurm_cluster: SlurmCluster, slurm_env: dict[str, str]
) -> None:
    uri = slurm_env["HYPERSPACE_STORE"]
    assert enqueue(probe_study, "sleep=2", "score=1,2,3,4", env=slurm_env).returncode == 0
    [worker] = _submit_workers(probe_study, slurm_env, 1, "--exit-when-empty", "--gpus-per-worker", "2", "--processes", "2")
    assert wait_until(lambda: _all_ended(slurm_cluster, [worker]), timeout=180, what="the worker to end") == {worker: "COMPLETED"}
    runs = _runs(uri)
    assert len(runs) == 4 and {run["status"] for run in runs} == {"COMPLETED"}
    assert {tuple(run["host"]["visible_gpus"]) for run in runs} == {("0",), ("1",)}, _worker_logs(probe_study)
    assert {run["host"]["slurm"]["gpus"] for run in runs} == {"0,1"}, "SLURM gave the worker both"


def test_a_cancelled_worker_requeues_its_job_and_the_other_worker_completes_it(
    probe_study: Path, slurm_cluster: SlurmCluster, slurm_env: dict[str, str]
) -> None:
    uri = slurm_env["HYPERSPACE_STORE"]
    assert enqueue(probe_study, "sleep=4", "score=1,2,3", env=slurm_env).returncode == 0
    workers = _submit_workers(probe_study, slurm_env, 2, "--exit-when-empty")
    running = wait_until(lambda: [job for job in _jobs(uri) if job["state"] == "RUNNING"] if len(_running(uri)) == 2 else None, timeout=120, what="two jobs running")
    listed = hyperspace(probe_study, "slurm", "ls", "--json", env=slurm_env)
    assert listed.returncode == 0, listed.stderr
    listed_rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(row["slurm_job"] for row in listed_rows) == workers
    assert all(row["state"] == "RUNNING" and len(row["jobs"]) == 1 for row in listed_rows)
    assert all(row["worker"]["state"] == "working" and row["worker"]["name"].endswith(f":slurm-{row['slurm_job']}") for row in listed_rows), listed_rows

    victim = next(job for job in running if job["worker"].endswith(f":slurm-{workers[0]}"))
    # cancelled before its run starts, a job runs nothing: wait for the run the cancel must interrupt
    wait_until(lambda: [run for run in _runs(uri) if run["job_id"] == victim["id"] and run["status"] == "RUNNING"], timeout=60, what="the victim job's run to start")
    slurm_cluster.run("scancel", workers[0])
    ended = wait_until(lambda: _all_ended(slurm_cluster, workers), timeout=180, what="both worker jobs to end")
    assert ended == {workers[0]: "CANCELLED", workers[1]: "COMPLETED"}, _worker_logs(probe_study)
    jobs = {job["id"]: job for job in _jobs(uri)}
    assert {job["state"] for job in jobs.values()} == {"COMPLETED"}
    assert jobs[victim["id"]]["attempts"] == victim["attempts"], "an interrupted job is not counted as a failed attempt"
    victim_runs = sorted((run for run in _runs(uri) if run["job_id"] == victim["id"]), key=lambda run: run["_id"])
    assert [run["status"] for run in victim_runs] == ["INTERRUPTED", "COMPLETED"]
    assert victim_runs[1]["host"]["slurm"]["array_task_id"] == "1"


def test_a_preemption_signal_interrupts_the_running_job_requeues_it_and_the_worker_exits(
    probe_study: Path, slurm_cluster: SlurmCluster, slurm_env: dict[str, str]
) -> None:
    uri = slurm_env["HYPERSPACE_STORE"]
    assert enqueue(probe_study, "sleep=60", env=slurm_env).returncode == 0
    [worker] = _submit_workers(probe_study, slurm_env, 1)
    wait_until(lambda: [run for run in _runs(uri) if run["status"] == "RUNNING"], timeout=120, what="the job's run to start")
    slurm_cluster.run("scancel", "--signal=USR2", worker)
    ended = wait_until(lambda: _all_ended(slurm_cluster, [worker]), timeout=60, what="the worker job to end")
    assert ended == {worker: "COMPLETED"}, _worker_logs(probe_study)
    [job] = _jobs(uri)
    assert (job["state"], job["attempts"]) == ("QUEUED", 0)
    [run] = _runs(uri)
    assert run["status"] == "INTERRUPTED"
    assert "SIGUSR2" in _worker_logs(probe_study)


def test_with_resubmit_a_signalled_worker_comes_back_and_finishes_the_queue(
    probe_study: Path, slurm_cluster: SlurmCluster, slurm_env: dict[str, str]
) -> None:
    uri = slurm_env["HYPERSPACE_STORE"]
    assert enqueue(probe_study, "sleep=5", env=slurm_env).returncode == 0
    [worker] = _submit_workers(probe_study, slurm_env, 1, "--resubmit", "--exit-when-empty")
    wait_until(lambda: [run for run in _runs(uri) if run["status"] == "RUNNING"], timeout=120, what="the job's run to start")
    slurm_cluster.run("scancel", "--signal=USR2", worker)
    _release_when_requeued(slurm_cluster, worker)
    try:
        wait_until(lambda: [job for job in _jobs(uri) if job["state"] == "COMPLETED"], timeout=180, what="the job to complete")
    except AssertionError as error:
        raise AssertionError(f"{error}{_cluster_report(slurm_cluster, probe_study)}") from None
    assert wait_until(lambda: _all_ended(slurm_cluster, [worker]), timeout=60, what="the worker to end") == {worker: "COMPLETED"}
    assert sorted(run["status"] for run in _runs(uri)) == ["COMPLETED", "INTERRUPTED"]
    assert "requeued: it will start again" in _worker_logs(probe_study)


def test_slurm_workers_ask_slurm_for_the_requested_resources(probe_study: Path, slurm_cluster: SlurmCluster, slurm_env: dict[str, str]) -> None:
    workers = _submit_workers(
        probe_study, slurm_env, 2, "--partition", OTHER_PARTITION, "--time", "1:30:00", "--cpus-per-worker", "2", "--mem-gb", "1.5",
        "--gpus-per-worker", "1", "--exit-when-empty",
    )  # fmt: skip
    for worker in workers:
        shown = dict(item.split("=", 1) for item in slurm_cluster.run("scontrol", "--oneliner", "show", "job", worker).split() if "=" in item)
        assert (shown["JobName"], shown["Partition"], shown["TimeLimit"]) == ("hyperspace-worker", OTHER_PARTITION, "01:30:00")
        assert (shown["NumCPUs"], shown["MinMemoryNode"]) == ("2", "1.50G")
        assert shown["TresPerNode"] == "gres:gpu:1"
    wait_until(lambda: _all_ended(slurm_cluster, workers), timeout=120, what="the workers to end on an empty queue")


def test_slurm_commands_without_a_cluster_fail_with_one_line(probe_study: Path, slurm_cluster: SlurmCluster, slurm_env: dict[str, str]) -> None:
    missing = {**slurm_env, "SLURM_CONF": str(probe_study / "missing-slurm.conf")}
    broken_conf = probe_study / "broken-slurm.conf"
    broken_conf.write_text(slurm_cluster.conf.read_text().replace("SlurmctldHost=", "SlurmctldHost=nowhere-"))
    broken = {**slurm_env, "SLURM_CONF": str(broken_conf)}
    for env, message in ((missing, "SLURM_CONF is "), (broken, "sbatch failed: ")):
        failed = hyperspace(probe_study, "slurm", "workers", "1", "--app", "probe.run", env=env)
        assert failed.returncode == 2, failed.stdout
        [line] = failed.stderr.strip().splitlines()
        assert line.startswith(f"error: {message}"), line
    failed = hyperspace(probe_study, "slurm", "ls", env=missing)
    [line] = failed.stderr.strip().splitlines()
    assert failed.returncode == 2 and line.startswith("error: SLURM_CONF is "), line


def _running(uri: str) -> list[dict[str, Any]]:
    return [job for job in _jobs(uri) if job["state"] == "RUNNING"]


# Pure parts, no cluster needed.


def test_execution_info_records_the_slurm_job_and_visible_gpus() -> None:
    environ = {"SLURM_JOB_ID": "12", "SLURM_ARRAY_JOB_ID": "10", "SLURM_ARRAY_TASK_ID": "2", "CUDA_VISIBLE_DEVICES": "1,3"}
    info = execution_info(environ)
    assert info["slurm"]["job_id"] == "12" and info["slurm"]["array_task_id"] == "2"
    assert info["visible_gpus"] == ["1", "3"]
    assert slurm_job_id(environ) == "10_2"
    assert slurm_job_id({"SLURM_JOB_ID": "12"}) == "12"
    assert execution_info({}) == {}


@pytest.mark.parametrize(
    ("gpus", "processes", "shares"),
    [
        (["0", "1", "2", "3"], 2, [["0", "1"], ["2", "3"]]),
        (["5", "7"], 2, [["5"], ["7"]]),
        (["0", "1", "2", "3", "4", "5"], 3, [["0", "1"], ["2", "3"], ["4", "5"]]),
        (["0", "1", "2"], 2, None),
        (["0"], 2, None),
        (["0", "1"], 1, None),
        ([], 2, None),
        (None, 2, None),
    ],
)
def test_gpus_split_into_equal_shares_per_process_or_stay_shared(gpus: list[str] | None, processes: int, shares: list[list[str]] | None) -> None:
    assert gpu_shares(gpus, processes) == shares


def test_sqlite_warning_names_the_filesystem(tmp_path: Path) -> None:
    assert sqlite_store_warning("postgresql://u@h/db") is None
    mounts = tmp_path / "mounts"
    mounts.write_text(f"server:/export {tmp_path} nfs4 rw 0 0\n/dev/sda1 / ext4 rw 0 0\n")
    assert network_filesystem(tmp_path / "store.db", mounts) == "nfs4"
    assert network_filesystem(Path("/usr"), mounts) is None
    assert "WARNING: the store is SQLite" in sqlite_store_warning(f"sqlite:///{tmp_path}/store.db")


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("90", 90), ("4:00:00", 240), ("1:30", 2), ("0:00:30", 1), ("1-12:00:00", 2160), ("2-0", 2880), ("1-1:30", 1530)],
)
def test_time_limits_read_as_sbatch_reads_them(text: str, minutes: int) -> None:
    assert parse_time_limit(text) == minutes


@pytest.mark.parametrize("text", ["4h", "", "0", "1:2:3:4"])
def test_bad_time_limits_are_one_clear_error(text: str) -> None:
    with pytest.raises(HyperspaceError, match="invalid time limit"):
        parse_time_limit(text)


def test_slurm_workers_refuse_bad_input_before_submitting(probe_study: Path, slurm_env: dict[str, str]) -> None:
    for options, message in ((["2", "--time", "4h"], "invalid time limit"), (["0"], "N must be more than 0"), (["1", "--time", "1"], "signal delay")):
        refused = hyperspace(probe_study, "slurm", "workers", *options, "--app", "probe.run", env=slurm_env)
        assert refused.returncode == 2
        [line] = refused.stderr.strip().splitlines()
        assert line.startswith("error: ") and message in line


def test_a_worker_warned_before_its_time_limit_requeues_its_job(probe_study: Path, slurm_cluster: SlurmCluster, slurm_env: dict[str, str]) -> None:
    """No scancel here: SLURM itself sends SIGUSR2 --signal-delay seconds before the time limit."""
    uri = slurm_env["HYPERSPACE_STORE"]
    assert enqueue(probe_study, "sleep=300", env=slurm_env).returncode == 0
    submitted = hyperspace(
        probe_study, "slurm", "workers", "1", "--app", "probe.run", "--time", "2", "--signal-delay", "105",
        "--folder", str(probe_study / "submitit"), env=slurm_env,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    [worker] = submitted.stdout.split("SLURM jobs: ")[1].split()
    ended = wait_until(lambda: _all_ended(slurm_cluster, [worker]), timeout=110, what="the worker job to end")
    assert ended == {worker: "COMPLETED"}, _worker_logs(probe_study)
    [job] = _jobs(uri)
    assert (job["state"], job["attempts"]) == ("QUEUED", 0)
    assert [run["status"] for run in _runs(uri)] == ["INTERRUPTED"]


def test_slurm_workers_warn_loudly_about_a_sqlite_store_and_still_work_on_a_shared_disk(
    probe_study: Path, slurm_cluster: SlurmCluster, slurm_env: dict[str, str]
) -> None:
    env = {key: value for key, value in slurm_env.items() if key != "HYPERSPACE_STORE"}
    assert enqueue(probe_study, "score=1,2", env=env).returncode == 0
    submitted = hyperspace(probe_study, "slurm", "workers", "1", "--app", "probe.run", "--exit-when-empty", "--folder", str(probe_study / "submitit"), env=env)
    assert submitted.returncode == 0, submitted.stderr
    assert "WARNING: the store is SQLite" in submitted.stderr and "unreliable over NFS" in submitted.stderr
    [worker] = submitted.stdout.split("SLURM jobs: ")[1].split()
    assert wait_until(lambda: _all_ended(slurm_cluster, [worker]), timeout=120, what="the worker to end") == {worker: "COMPLETED"}
    assert {job["state"] for job in _jobs(f"sqlite:///{probe_study}/.hyperspace/store.db")} == {"COMPLETED"}


@pytest.mark.parametrize("requeues", [0, 1])
def test_a_preempted_submitit_launcher_job_is_recorded_interrupted_and_again_when_submitit_requeues_it(
    probe_study: Path, slurm_cluster: SlurmCluster, slurm_env: dict[str, str], requeues: int
) -> None:
    uri = slurm_env["HYPERSPACE_STORE"]
    sweep = subprocess.Popen(
        [sys.executable, "-m", "probe.run", "--multirun", "hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=5",
         f"hydra.launcher.max_num_timeout={requeues}", f"hydra.launcher.submitit_folder={probe_study / 'submitit'}", "sleep=6"],
        cwd=probe_study, env=slurm_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        [run] = wait_until(lambda: [run for run in _runs(uri) if run["status"] == "RUNNING"], timeout=120, what="the run to start")
        job_id = run["host"]["slurm"]["job_id"]
        slurm_cluster.run("scancel", "--signal=USR2", job_id)  # what SLURM sends a preempted job (submitit's convention)
        if requeues:
            _release_when_requeued(slurm_cluster, job_id)
        output, _ = sweep.communicate(timeout=180)
    finally:
        sweep.kill()
    statuses = [run["status"] for run in sorted(_runs(uri), key=lambda run: run["_id"])]
    if requeues:
        assert sweep.returncode == 0, output + _cluster_report(slurm_cluster, probe_study)
        assert statuses == ["INTERRUPTED", "COMPLETED"]
    else:
        assert sweep.returncode != 0, "Hydra reports the job that submitit did not requeue"
        assert statuses == ["INTERRUPTED"]
