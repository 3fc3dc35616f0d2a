"""The queue end to end with real processes: enqueue, workers, crashes, signals, steering, security."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import clean_env, enqueue, hyperspace, notebook, python_in, run_app, run_worker, start_worker, submit, wait_until

from hyperspace_hydra import worker
from hyperspace_hydra.store import Store, open_store
from hyperspace_hydra.store.base import PRUNED


@pytest.fixture
def store(probe_study: Path) -> Iterator[Store]:
    """The probe study's default store, opened from the test process."""
    with open_store(f"sqlite:///{probe_study}/.hyperspace/store.db") as opened:
        yield opened


def states(store: Store) -> list[str]:
    return [job["state"] for job in store.list_jobs()]


def test_the_launcher_enqueues_a_grid_and_returns_at_once(probe_study: Path, store: Store, tmp_path: Path) -> None:
    marker = tmp_path / "multirun-ended"
    finished = enqueue(probe_study, "model=small,large", "message=a,b", "+hydra.callbacks.marker._target_=probe.callbacks.MultirunEndMarker", f"+hydra.callbacks.marker.path={marker}")
    assert finished.returncode == 0, finished.stderr
    output = finished.stdout + finished.stderr
    assert "Enqueued 4 jobs as sweep 1" in output and "hyperspace queue wait 1" in output
    assert "hello from the task" not in output, "nothing ran"
    jobs = store.list_jobs()
    assert [job["state"] for job in jobs] == ["QUEUED"] * 4 and {job["study"] for job in jobs} == {"probe.run"}
    assert jobs[0]["overrides"][:2] == ["model=small", "message=a"] and jobs[0]["output_dir"].endswith("/0")
    assert store.list_runs() == []
    assert marker.read_text() == "multirun ended", "on_multirun_end callbacks ran"


def test_a_grid_with_one_invalid_job_enqueues_nothing(probe_study: Path, store: Store) -> None:
    finished = enqueue(probe_study, "model=small,nope")
    assert finished.returncode != 0 and "Could not find 'model/nope'" in finished.stderr
    submitted = notebook(probe_study, "from hyperspace_hydra import Queue\nQueue(app='probe.run').submit_grid({'model': ['small', 'nope']})")
    assert submitted.returncode != 0 and "Could not find 'model/nope'" in submitted.stderr
    assert store.list_jobs() == []


def test_a_grid_that_gives_a_key_no_value_is_an_error_not_an_enqueue_of_nothing(probe_study: Path, store: Store) -> None:
    submitted = notebook(probe_study, "from hyperspace_hydra import Queue\nQueue(app='probe.run').submit_grid({'message': ['a', 'b'], 'score': []})")
    assert submitted.returncode != 0 and "the grid gives score no value: a grid of no job enqueues nothing" in submitted.stderr, submitted.stderr
    assert store.list_jobs() == [] and store.list_sweeps() == []


@pytest.mark.soak  # a load test: 200 jobs, ~20 CPU s; concurrent claims and workers are in the fast lane's other tests
def test_200_jobs_on_3_workers_each_complete_exactly_once(probe_study: Path, store: Store) -> None:
    submitted = notebook(probe_study, "from hyperspace_hydra import Queue\nprint(len(Queue(app='probe.run').submit_grid({'message': list(range(200))}, ['steps=1'])))")
    assert submitted.stdout.strip() == "200", submitted.stderr
    workers = [start_worker(probe_study, "--exit-when-empty", log_name=f"worker{n}.log") for n in range(3)]
    assert [worker.wait(timeout=600) for worker in workers] == [0, 0, 0]
    jobs = store.list_jobs()
    assert [job["state"] for job in jobs] == ["COMPLETED"] * 200
    runs = store.list_runs()
    assert len(runs) == 200 and {run["status"] for run in runs} == {"COMPLETED"}
    assert sorted(run["job_id"] for run in runs) == sorted(job["id"] for job in jobs)
    assert {job["run_id"]: job["id"] for job in jobs} == {run["_id"]: run["job_id"] for run in runs}
    workers_used = {job["worker"] for job in jobs}
    assert len(workers_used) == 3, "all three workers took jobs"


def test_a_killed_worker_job_is_requeued_and_completed_once(probe_study: Path, store: Store) -> None:
    notebook(probe_study, "from hyperspace_hydra import Queue\nQueue(app='probe.run').submit(['sleep=4'])")
    doomed = start_worker(probe_study, "--lease", "2", log_name="doomed.log")
    wait_until(lambda: [run for run in store.list_runs() if run["status"] == "RUNNING"], what="the job to start")
    subprocess.run(["pkill", "-KILL", "-s", str(doomed.pid)], check=True)  # the worker and its job process
    doomed.wait(timeout=30)
    survivor = start_worker(probe_study, "--lease", "2", log_name="survivor.log")
    wait_until(lambda: states(store) == ["COMPLETED"], what="another worker to complete the job")
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(timeout=60) == 0
    [job] = store.list_jobs()
    assert job["attempts"] == 1 and "requeued: its worker was lost" in (probe_study / "survivor.log").read_text()
    runs = store.list_runs()
    assert [run["status"] for run in runs] == ["DIED", "COMPLETED"]
    assert runs[0]["fail_trace"] == ["worker lost: the job's lease expired"]
    assert {run["job_id"] for run in runs} == {job["id"]} and job["run_id"] == runs[1]["_id"]


def test_crashing_hanging_and_failing_jobs_never_take_the_worker_down(probe_study: Path, store: Store) -> None:
    for overrides in (["crash=segfault"], ["crash=exit"], ["fail=true"], ["sleep=60"], ["message=fine"]):
        assert notebook(probe_study, f"from hyperspace_hydra import Queue\nQueue(app='probe.run').submit({overrides!r})").returncode == 0
    output = run_worker(probe_study, "--timeout", "3")
    segfault, exited, failed, hung, fine = store.list_jobs()
    assert (segfault["state"], exited["state"], failed["state"], hung["state"], fine["state"]) == ("FAILED", "FAILED", "FAILED", "TIMEOUT", "COMPLETED"), output
    assert "killed by signal SIGSEGV" in segfault["error"]
    assert "exited with status 3" in exited["error"]
    assert "timed out after 3 s" in hung["error"]
    runs = {run["job_id"]: run for run in store.list_runs()}
    assert runs[segfault["id"]]["status"] == "FAILED" and "SIGSEGV" in runs[segfault["id"]]["fail_trace"][0]
    assert "ValueError: task failed on purpose" in "".join(runs[failed["id"]]["fail_trace"])
    assert runs[hung["id"]]["status"] == "TIMEOUT" and "sleeping" in runs[hung["id"]]["captured_out"]
    assert runs[fine["id"]]["status"] == "COMPLETED"


def test_sigterm_lets_a_running_job_finish_within_the_grace_period(probe_study: Path, store: Store) -> None:
    notebook(probe_study, "from hyperspace_hydra import Queue\nq = Queue(app='probe.run')\nq.submit(['sleep=2'])\nq.submit(['message=later'])")
    worker = start_worker(probe_study, "--grace", "60")
    wait_until(lambda: "RUNNING" in states(store), what="the first job to start")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    assert states(store) == ["COMPLETED", "QUEUED"], "no new job was claimed after SIGTERM"


def test_after_the_grace_period_a_job_is_interrupted_and_requeued(probe_study: Path, store: Store) -> None:
    notebook(probe_study, "from hyperspace_hydra import Queue\nQueue(app='probe.run').submit(['sleep=60'])")
    worker = start_worker(probe_study, "--grace", "1")
    wait_until(lambda: [run for run in store.list_runs() if "sleeping" in (run["captured_out"] or "")], what="the job to sleep")
    worker.send_signal(signal.SIGINT)
    assert worker.wait(timeout=60) == 0
    [job] = store.list_jobs()
    assert job["state"] == "QUEUED" and job["attempts"] == 0
    [run] = store.list_runs()
    assert run["status"] == "INTERRUPTED" and run["job_id"] == job["id"]
    assert (probe_study / "worker.log").read_text().rstrip().endswith("stopped after 1 REQUEUED")


def _listed_workers(study: Path, *args: str) -> list[dict[str, Any]]:
    listing = hyperspace(study, "queue", "workers", "--json", *args)
    assert listing.returncode == 0, listing.stderr
    return [json.loads(line) for line in listing.stdout.splitlines()]


def test_the_registry_shows_an_idle_worker_then_its_job_then_that_it_stopped(probe_study: Path, store: Store) -> None:
    worker = start_worker(probe_study, "--processes", "2", "--grace", "5", env=clean_env(SLURM_JOB_ID="4242"))
    try:
        [idle] = wait_until(lambda: [row for row in _listed_workers(probe_study) if row["state"] == "idle"], what="the idle worker to show")
        assert (idle["host"], idle["pid"], idle["slurm_job"], idle["study"], idle["jobs"], idle["processes"]) == (socket.gethostname(), worker.pid, "4242", "probe.run", [], 2)
        assert idle["worker"].endswith(":slurm-4242") and 0 <= idle["seen_ago"] < 31, "seen within half a lease (60 s) by the store's clock"
        assert submit(probe_study, "sleep=60").returncode == 0
        [working] = wait_until(lambda: [row for row in store.list_workers() if row["state"] == "working"], what="the worker to hold its job")
        assert working["job_ids"] == [1] and working["seen_seconds_ago"] < 2, "a working worker is seen with every lease renewal"
        table = hyperspace(probe_study, "queue", "workers").stdout
        assert "working" in table and "4242" in table and str(worker.pid) in table, table
        worker.send_signal(signal.SIGTERM)
        wait_until(lambda: [row["job_ids"] for row in store.list_workers() if row["state"] == "stopping"] == [[1]], what="the worker to say it is stopping")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    [stopped] = _listed_workers(probe_study)
    assert (stopped["state"], stopped["jobs"]) == ("stopped", [])
    assert [row["worker"] for row in _listed_workers(probe_study, "--app", "probe.run")] == [stopped["worker"]], "the workers of the study"


def test_a_worker_whose_job_ended_before_its_next_lease_renewal_is_idle_at_once(probe_study: Path, store: Store) -> None:
    worker = start_worker(probe_study)  # leases of 60 s: an idle worker beats every 30 s, a working one every second
    try:
        wait_until(lambda: [row for row in store.list_workers() if row["state"] == "idle"], what="the idle worker to show")
        assert submit(probe_study, "message=quick").returncode == 0
        wait_until(lambda: states(store) == ["COMPLETED"], what="the quick job to complete")
        # the claim said working; the lease renewal after the job says idle (within a second), not the beat half a lease later
        wait_until(lambda: [row for row in store.list_workers() if row["state"] == "idle" and not row["job_ids"]], timeout=5, what="the worker to be idle again")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0


def test_pause_resume_cancel_retry_and_wait(probe_study: Path, store: Store) -> None:
    assert submit(probe_study, "message=a,b,c").returncode == 0
    assert submit(probe_study, "fail=true", "message=d").returncode == 0
    assert hyperspace(probe_study, "queue", "pause", "--sweep", "1").stdout.strip() == "3 job(s) paused"
    run_worker(probe_study)
    assert states(store) == ["PAUSED"] * 3 + ["FAILED"]
    assert hyperspace(probe_study, "queue", "wait", "2").returncode == 1, "a sweep with a failed job"
    assert hyperspace(probe_study, "queue", "cancel", "1").stdout.strip() == "1 job(s) cancelled"
    assert hyperspace(probe_study, "queue", "cancel").returncode == 2, "cancel needs a selection"
    assert hyperspace(probe_study, "queue", "resume", "--sweep", "1").stdout.strip() == "2 job(s) resumed"
    assert hyperspace(probe_study, "queue", "retry").stdout.strip() == "1 job(s) queued again"
    listing = [json.loads(line) for line in hyperspace(probe_study, "queue", "ls", "--json").stdout.splitlines()]
    assert [row["state"] for row in listing] == ["CANCELLED", "QUEUED", "QUEUED", "QUEUED"]
    run_worker(probe_study)
    assert hyperspace(probe_study, "queue", "wait", "1").returncode == 1, "job 1 was cancelled"
    assert states(store) == ["CANCELLED", "COMPLETED", "COMPLETED", "FAILED"]
    assert hyperspace(probe_study, "queue", "ls", "--state", "FAILED").stdout.count("FAILED") == 1


def test_pause_resume_cancel_and_retry_one_job_by_its_id(probe_study: Path, store: Store) -> None:
    assert submit(probe_study, "message=a,b,c").returncode == 0
    assert hyperspace(probe_study, "queue", "pause", "2").stdout.strip() == "1 job(s) paused"
    assert states(store) == ["QUEUED", "PAUSED", "QUEUED"]
    assert hyperspace(probe_study, "queue", "resume", "1", "2").stdout.strip() == "1 job(s) resumed", "job 1 was not paused"
    assert hyperspace(probe_study, "queue", "cancel", "3").stdout.strip() == "1 job(s) cancelled"
    assert hyperspace(probe_study, "queue", "retry", "3").stdout.strip() == "0 job(s) queued again", "cancelled is not failed"
    assert states(store) == ["QUEUED", "QUEUED", "CANCELLED"]
    unknown = hyperspace(probe_study, "queue", "pause", "7")
    assert unknown.returncode != 0 and unknown.stderr.startswith("error: no job with id 7") and states(store)[1] == "QUEUED"


def test_wait_exits_zero_when_every_job_completed(probe_study: Path, store: Store) -> None:
    assert submit(probe_study, "message=a,b").returncode == 0
    worker = start_worker(probe_study, "--exit-when-empty")
    waited = hyperspace(probe_study, "queue", "wait", "1")
    assert waited.returncode == 0 and "2 completed" in waited.stdout
    assert worker.wait(timeout=60) == 0


def test_duplicates_are_skipped_unless_asked(probe_study: Path, store: Store) -> None:
    assert enqueue(probe_study, "message=a,b").returncode == 0
    run_worker(probe_study)
    again = enqueue(probe_study, "message=a,b,c")
    assert "Enqueued 1 jobs as sweep 2" in again.stderr + again.stdout and "2 skipped as duplicates" in again.stderr + again.stdout
    repeated = enqueue(probe_study, "message=a,c")
    assert "Nothing enqueued" in repeated.stdout and "all 2 jobs duplicate queued, running or completed work" in repeated.stdout
    assert len(store.list_sweeps()) == 2, "an enqueue of duplicates only leaves no empty sweep"
    forced = enqueue(probe_study, "message=a,b", "hydra.launcher.dedupe=false")
    assert "Enqueued 2 jobs as sweep 3" in forced.stderr + forced.stdout
    submitted = notebook(probe_study, "from hyperspace_hydra import Queue\nq = Queue(app='probe.run')\nprint(q.submit(['message=a']), q.last.skipped, q.submit(['message=a'], dedupe=False))")
    assert submitted.stdout.split("\n")[0].startswith("[] 1 ["), submitted.stderr


def test_targets_outside_the_allowlist_are_refused_before_anything_runs(probe_study: Path, store: Store, tmp_path: Path) -> None:
    evidence = tmp_path / "pwned"
    code = (
        "from hyperspace_hydra import Queue\n"
        "q = Queue(app='probe.run')\n"
        f"q.submit(['+model.command=touch {evidence}'], conf={{'model': {{'_target_': 'os.system'}}}})\n"
        f"q.submit(['+hydra.callbacks.evil._target_=os.system', '+hydra.callbacks.evil.command=touch {evidence}'])\n"
        f"q.submit(['hyperspace.allowed_targets=[os]', 'message=self-allowed', '+model.command=touch {evidence}'], conf={{'model': {{'_target_': 'os.system'}}}})\n"
        "q.submit(['message=fine'])\n"
    )
    assert notebook(probe_study, code).returncode == 0
    output = run_worker(probe_study)
    task_target, callback_target, self_allowed, fine = store.list_jobs()
    assert task_target["state"] == callback_target["state"] == self_allowed["state"] == "FAILED", output
    assert "refused" in self_allowed["error"], "a job cannot extend the allowlist through its own overrides"
    assert "refused: model._target_='os.system'" in task_target["error"]
    assert "hydra.callbacks.evil._target_='os.system'" in callback_target["error"]
    assert fine["state"] == "COMPLETED"
    assert not evidence.exists()
    assert [run["job_id"] for run in store.list_runs()] == [fine["id"]], "refused jobs have no run"


def test_a_target_is_judged_by_what_it_resolves_to_and_a_refusal_says_why(probe_study: Path, store: Store, tmp_path: Path) -> None:
    through_model, through_callback = tmp_path / "made-by-model", tmp_path / "made-by-callback"
    code = (
        "from hyperspace_hydra import Queue\n"
        "q = Queue(app='probe.run')\n"
        f"q.submit(['~model', '+model._target_=hyperspace_hydra.settings.os.makedirs', '+model.name={through_model}'])\n"
        f"q.submit(['+hydra.callbacks.evil._target_=probe.run.os.makedirs', '+hydra.callbacks.evil.name={through_callback}'])\n"
        "q.submit(['~model', '+model._target_=hyperspace_hydra.config.json.loads', '+model.s=1'])\n"
        "q.submit(['model._target_=probe.model.Modle'])\n"
        "q.submit(['message=legit'])\n"
    )
    assert notebook(probe_study, code).returncode == 0
    run_worker(probe_study)
    listed = hyperspace(probe_study, "queue", "ls", "--json")
    module_attribute, callback, other_package, unresolved, legit = (json.loads(line) for line in listed.stdout.splitlines())
    assert "model._target_='hyperspace_hydra.settings.os.makedirs' resolves through hyperspace_hydra.settings.os, the module os" in module_attribute["error"]
    assert "hydra.callbacks.evil._target_='probe.run.os.makedirs' resolves through probe.run.os, the module os" in callback["error"]
    assert "resolves through hyperspace_hydra.config.json, the module json" in other_package["error"]
    assert "model._target_='probe.model.Modle' does not resolve: probe.model has no attribute or submodule 'Modle'" in unresolved["error"]
    assert [job["state"] for job in (module_attribute, callback, other_package, unresolved)] == ["FAILED"] * 4
    assert not through_model.exists() and not through_callback.exists()
    assert legit["state"] == "COMPLETED" and legit["error"] is None
    assert [run["job_id"] for run in store.list_runs()] == [legit["id"]]


def test_a_job_made_from_its_sweeps_base_config_is_refused_in_its_own_process_before_anything_runs(probe_study: Path, store: Store, tmp_path: Path) -> None:
    evidence = tmp_path / "made-by-model"
    grid = {"model._target_": ["probe.model.Model", "probe.run.os.makedirs"]}  # the second job is a copy of the first's config
    assert notebook(probe_study, f"from hyperspace_hydra import Queue\nQueue(app='probe.run').submit_grid({grid!r}, ['+model.name={evidence}'])").returncode == 0
    output = run_worker(probe_study)
    allowed, refused = store.list_jobs()
    assert allowed["state"] == "COMPLETED", output
    assert refused["state"] == "FAILED" and "refused: model._target_='probe.run.os.makedirs' resolves through probe.run.os" in refused["error"]
    assert re.search(rf"job {refused['id']} FAILED: .*refused: model._target_=", output), output
    assert "does not run: refused" in (probe_study / "outputs" / "queue" / str(refused["id"]) / "job.log").read_text()
    assert not evidence.exists()
    assert [run["job_id"] for run in store.list_runs()] == [allowed["id"]], "the refused job has no run"


def test_notebook_submit_takes_overrides_or_the_seed_form(probe_study: Path, store: Store) -> None:
    code = (
        "from hyperspace_hydra import Queue, compose\n"
        "q = Queue(app='probe.run')\n"
        "print(q.submit(['message=plain']))\n"
        "print(q.submit(model='large', conf={'model': {'layer': {'width': 3}, 'dropout': 0.25}, 'message': \"it's 1\"}))\n"
        "print(compose(app='probe.run', overrides=['model=large'])['model']['depth'])\n"
    )
    submitted = notebook(probe_study, code)
    assert submitted.stdout.split() == ["[1]", "[2]", "12"], submitted.stderr
    run_worker(probe_study)
    plain, seed_form = store.list_runs()
    assert plain["config"]["message"] == "plain"
    assert seed_form["config"]["model"]["depth"] == 12 and seed_form["config"]["model"]["layer"]["width"] == 3
    assert seed_form["config"]["message"] == "it's 1" and seed_form["config"]["model"]["dropout"] == 0.25, "a code default is a key too"
    assert seed_form["choices"]["model"] == "large"


def test_a_key_the_config_lacks_in_a_submitted_dict_is_an_error_and_nothing_is_enqueued(probe_study: Path, store: Store) -> None:
    code = "from hyperspace_hydra import Queue\nQueue(app='probe.run').submit(['message=typo'], conf={'model': {'layer': {'widht': 3}}})"
    submitted = notebook(probe_study, code)
    assert submitted.returncode == 1
    assert "Could not override 'model.layer.widht'" in submitted.stderr, submitted.stderr
    assert store.list_jobs() == [] and store.list_sweeps() == []


def test_rerun_gives_the_same_metric_here_and_from_the_queue(probe_study: Path, store: Store) -> None:
    assert run_app(probe_study, "probe.run", "message=original").returncode == 0
    rerun = hyperspace(probe_study, "rerun", "1")
    assert rerun.returncode == 0, rerun.stderr
    queued = hyperspace(probe_study, "rerun", "1", "seed=8", "--queue")
    assert "queued again as job 1" in queued.stdout, queued.stderr
    run_worker(probe_study)
    original, again, changed = store.list_runs()
    assert again["result"] == original["result"] and again["config"]["message"] == "original"
    assert changed["job_id"] == 1 and changed["seed"] == 8 and changed["result"]["draw"] != original["result"]["draw"]


def test_rerun_warns_when_the_code_changed(probe_study: Path) -> None:
    assert run_app(probe_study, "probe.run").returncode == 0
    model_source = probe_study / "probe" / "model.py"
    model_source.write_text(model_source.read_text().replace("dropout: float = 0.1,", "dropout: float = 0.2,"))
    rerun = hyperspace(probe_study, "rerun", "1")
    assert "warning: the config files or code defaults changed since run 1: model.dropout: 0.1 -> 0.2" in rerun.stderr


def test_runs_ls_json_links_runs_to_jobs(probe_study: Path) -> None:
    assert run_app(probe_study, "probe.run").returncode == 0
    assert submit(probe_study, "message=queued").returncode == 0
    run_worker(probe_study)
    rows = [json.loads(line) for line in hyperspace(probe_study, "runs", "ls", "--json").stdout.splitlines()]
    assert [row["job_id"] for row in rows] == [None, 1]


def test_store_credentials_stay_out_of_run_records(probe_study: Path) -> None:
    code = (
        "import json, sys\n"
        "from hyperspace_hydra.app import load_app\n"
        "from hyperspace_hydra.identity import given_and_complete\n"
        "sys.argv = ['probe.run', '--store', 'postgresql://bob:s3cret@db/x']\n"
        "config = load_app('probe.run').compose(['hyperspace.store=postgresql://bob:s3cret@db/x'])\n"
        "print(json.dumps(given_and_complete(config)))\n"
    )
    described = python_in(probe_study, code)
    assert described.returncode == 0, described.stderr
    assert "s3cret" not in described.stdout and "postgresql://bob:***@db/x" in described.stdout


def test_max_jobs_and_extra_allowed_packages(probe_study: Path, store: Store) -> None:
    submit = "from hyperspace_hydra import Queue\nQueue(app='probe.run').submit([{message!r}], conf={{'model': {{'_target_': 'collections.OrderedDict'}}}})"
    assert notebook(probe_study, submit.format(message="message=first")).returncode == 0
    assert notebook(probe_study, submit.format(message="message=second")).returncode == 0
    output = run_worker(probe_study, "--max-jobs", "1", "--allow", "collections")
    assert states(store) == ["COMPLETED", "QUEUED"], output
    config = probe_study / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("hyperspace:\n", "hyperspace:\n  allowed_targets: [collections]\n"))
    assert notebook(probe_study, submit.format(message="hyperspace.allowed_targets=[os]")).returncode == 0
    run_worker(probe_study)
    assert states(store) == ["COMPLETED", "COMPLETED", "COMPLETED"], "the study's config files extend the allowlist"


def test_a_job_is_recorded_in_the_store_it_was_claimed_from(probe_study: Path, store: Store) -> None:
    code = "from hyperspace_hydra import Queue\nQueue(app='probe.run').submit(['hyperspace.store=sqlite:///elsewhere.db'])"
    assert notebook(probe_study, code).returncode == 0
    run_worker(probe_study)
    [run] = store.list_runs()
    assert run["status"] == "COMPLETED" and run["job_id"] == 1
    assert not (probe_study / "elsewhere.db").exists()


def test_a_worker_with_several_processes_gives_each_running_job_its_own_share_of_the_gpus(probe_study: Path, store: Store) -> None:
    assert submit(probe_study, "sleep=1", "score=1,2,3,4").returncode == 0
    output = run_worker(probe_study, "--processes", "2", env=clean_env(CUDA_VISIBLE_DEVICES="0,1,2,3"))
    assert "each job sees its own share of the GPUs: 0,1 | 2,3" in output
    runs = store.list_runs()
    assert len(runs) == 4 and {tuple(run["host"]["visible_gpus"]) for run in runs} == {("0", "1"), ("2", "3")}
    overlapping = [(run, other) for run, other in itertools.combinations(runs, 2) if run["start_time"] < other["stop_time"] and other["start_time"] < run["stop_time"]]
    assert overlapping, "two jobs ran at once"
    assert all(run["host"]["visible_gpus"] != other["host"]["visible_gpus"] for run, other in overlapping)


def test_gpus_that_do_not_split_evenly_over_the_processes_stay_shared(probe_study: Path, store: Store) -> None:
    assert submit(probe_study, "score=1,2").returncode == 0
    output = run_worker(probe_study, "--processes", "2", env=clean_env(CUDA_VISIBLE_DEVICES="0,1,2"))
    assert "3 GPU(s) do not split evenly over 2 processes: every job sees all of them" in output
    assert [run["host"]["visible_gpus"] for run in store.list_runs()] == [["0", "1", "2"]] * 2


def test_compose_gives_the_config_a_worker_runs_or_with_complete_the_one_a_run_stores(probe_study: Path) -> None:
    code = (
        "import json\n"
        "from omegaconf import OmegaConf\n"
        "from hyperspace_hydra import compose\n"
        "for complete in (False, True):\n"
        "    print(json.dumps(OmegaConf.to_container(compose('probe.run', ['model.depth=3'], complete=complete))))\n"
    )
    composed = notebook(probe_study, code)
    assert composed.returncode == 0, composed.stderr
    as_run, as_stored = (json.loads(line) for line in composed.stdout.splitlines())
    assert "hydra" not in as_run and as_run["model"]["depth"] == 3 and as_run["model"]["layer"] == {"_target_": "probe.model.Layer"}
    assert as_stored["model"]["layer"] == {"_target_": "probe.model.Layer", "width": 8, "activation": "relu"}, "code defaults filled in"
    assert as_run["hyperspace"]["direction"] == "???" and as_stored["hyperspace"]["direction"] == "minimize", "the settings in effect"


def worker_in_a_new_process(study: Path, before: str, after: str) -> subprocess.CompletedProcess[str]:
    """A worker of the probe study, run until its queue is empty in a new Python process, with the code ``before`` run
    before it serves and ``after`` once it stopped (to watch what the worker and its job processes do)."""
    serving = "serve(load_app('probe.run'), 'sqlite:///.hyperspace/store.db', WorkerOptions(exit_when_empty=True), say=lambda _: None)"
    code = ["import os", "from hyperspace_hydra.app import load_app", "from hyperspace_hydra.worker import WorkerOptions, serve", before, serving, after]
    return python_in(study, "\n".join(code))


def test_a_workers_job_processes_resolve_interpolations_without_parsing_them_again(probe_study: Path, store: Store) -> None:
    assert enqueue(probe_study, "message=a,b", "+note=${message}/${seed}").returncode == 0
    watching = (
        "from omegaconf.grammar.gen.OmegaConfGrammarParser import OmegaConfGrammarParser\n"
        "parses = os.open('parses.txt', os.O_WRONLY | os.O_CREAT | os.O_APPEND)\n"
        "parse = OmegaConfGrammarParser.configValue\n"
        "def noted(parser):\n"
        "    os.write(parses, f'{os.getpid()}\\n'.encode())\n"
        "    return parse(parser)\n"
        "OmegaConfGrammarParser.configValue = noted"
    )
    worked = worker_in_a_new_process(probe_study, watching, "print(os.getpid())")
    assert worked.returncode == 0, worked.stderr
    assert states(store) == ["COMPLETED"] * 2
    assert [run["config"]["note"] for run in store.list_runs()] == ["a/7", "b/7"], "each job resolved its interpolations"
    parsed_by = (probe_study / "parses.txt").read_text().split()
    assert parsed_by and set(parsed_by) == {worked.stdout.strip()}, "parsed in the worker only, before its forks"


def test_a_job_process_tells_its_worker_how_its_run_ended_the_job_through_memory_they_share() -> None:
    ending = worker._RunEnding()
    assert ending.read() is None, "nothing said: the worker reads the job back"
    pid = os.fork()
    if pid == 0:
        ending.write(PRUNED, 12)
        os._exit(0)
    os.waitpid(pid, 0)
    assert ending.read() == (PRUNED, 12)


def test_a_callback_that_cannot_be_instantiated_fails_its_job_not_the_worker(probe_study: Path, store: Store) -> None:
    broken = "['+hydra.callbacks.broken._target_=probe.model.Layer', '+hydra.callbacks.broken.no_such_argument=1']"
    assert notebook(probe_study, f"from hyperspace_hydra import Queue\nq = Queue(app='probe.run')\nq.submit({broken})\nq.submit(['message=fine'])").returncode == 0
    output = run_worker(probe_study)
    failed, fine = store.list_jobs()
    assert failed["state"] == "FAILED" and "no_such_argument" in failed["error"], output
    assert fine["state"] == "COMPLETED", output
