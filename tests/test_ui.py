"""``hyperspace ui``: the real command serving a real store, driven by a real headless Chromium (Debian's, never a
downloaded one), plus the command's own errors. A screenshot of each page lands in the test's tmp dir."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fork_server
import mongomock
import mongomock.gridfs
import pytest
from conftest import HYPERSPACE, clean_env, enqueue, hyperspace, hyperspace_process, run_app, run_worker, start_worker, wait_until

from hyperspace_hydra.store import Store, open_store
from hyperspace_hydra.store.base import MetricPoint, NewJob, WorkerBeat, WorkerInfo, utcnow
from hyperspace_hydra.store.mongo import MongoStore
from hyperspace_hydra.store.sql_schema import WORKERS
from hyperspace_hydra.ui import views

mongomock.gridfs.enable_gridfs_integration()  # lets pymongo's GridFS work on mongomock's databases
GATED_STUDY = Path(__file__).resolve().parent / "apps" / "gated_study"
LIVE_SECONDS = 2
"""How soon a change in the store must show on an open page (the issue's bar)."""
XSS = "<script>window.xss=1</script> & <b>bold</b>"


@contextmanager
def ui_server(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """``hyperspace ui --port 0 ARGS`` started in ``cwd``; yields its URL, then stops it with Ctrl-C (SIGINT)."""
    server = fork_server.popen([str(HYPERSPACE), "ui", "--port", "0", *args], cwd=cwd, env=env or clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first_line = server.stdout.readline()
        match = re.search(r"http://\S+/", first_line)
        assert match, f"no URL in {first_line!r}; stderr: {server.stderr.read() if server.poll() is not None else ''}"
        yield match.group(0).rstrip("/")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


def screenshot(page: Any, tmp_path: Path, name: str) -> None:
    """Save the page as it looks now under the test's tmp dir (a test artifact, not committed)."""
    page.screenshot(path=str(tmp_path / "screenshots" / f"{name}.png"))


def _probe_runs(probe_study: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    return run_app(probe_study, "probe.run", "--multirun", *overrides)


def _column(page: Any, name: str) -> list[str]:
    page.wait_for_selector("#runs thead th")  # the table is there, not a page still loading
    headers = page.locator("#runs thead th").all_inner_texts()
    index = next(number for number, text in enumerate(headers) if text.split()[0] == name)
    return page.locator(f"#runs tbody tr td:nth-child({index + 1})").all_inner_texts()


def _sort_by(page: Any, column: str, arrow: str) -> None:
    """Click ``column``'s header and wait for the page it leads to: sorted by that column, its header marked ``arrow``
    (reading the table before that reads the page before, or one still loading)."""
    page.click(f"#runs th a[data-column={column}]")
    page.wait_for_selector(f"#runs th a[data-column={column}]:has-text('{arrow}')")


@pytest.mark.browser
def test_runs_page_sorts_by_a_clicked_column_and_filters_with_the_where_syntax(probe_study: Path, page: Any, tmp_path: Path) -> None:
    assert _probe_runs(probe_study, "score=2,3,1", "seed=1,2").returncode == 0
    with ui_server(probe_study) as url:
        page.goto(url + "/runs")
        assert _column(page, "id") == ["6", "5", "4", "3", "2", "1"], "newest first"
        _sort_by(page, "score", "▲")
        assert _column(page, "score") == ["1", "1", "2", "2", "3", "3"]
        _sort_by(page, "score", "▼")
        assert _column(page, "score") == ["3", "3", "2", "2", "1", "1"]
        screenshot(page, tmp_path, "runs-sorted")

        page.fill("#where", "score>1; seed=2")
        page.press("#where", "Enter")
        page.wait_for_url(re.compile(r"where="))
        assert _column(page, "score") == ["3", "2"], "the filter, and the sort kept"
        assert page.locator("#filter-error").count() == 0

        page.fill("#where", "scor>1")
        page.press("#where", "Enter")
        page.wait_for_selector("#filter-error")
        error = page.inner_text("#filter-error")
        assert error.startswith("error: no run has the filter path 'scor': did you mean score?"), error
        assert "\n" not in error.strip()
        assert page.locator("#runs").count() == 0
        screenshot(page, tmp_path, "runs-bad-filter")


@pytest.mark.browser
def test_a_new_run_shows_on_an_open_runs_page_and_chosen_rows_stay_chosen(probe_study: Path, page: Any, tmp_path: Path) -> None:
    assert _probe_runs(probe_study, "score=1,2").returncode == 0
    with ui_server(probe_study) as url:
        page.goto(url + "/runs")
        page.check("input.choose[value='1']")
        page.check("input.choose[value='2']")
        assert _probe_runs(probe_study, "score=3").returncode == 0
        page.wait_for_selector("#runs tr[data-run-id='3']", timeout=LIVE_SECONDS * 1000)
        assert _column(page, "id") == ["3", "2", "1"] and page.url == url + "/runs", "swapped in, no reload"
        assert page.is_checked("input.choose[value='1']") and page.is_enabled("#compare-selected")
        page.click("#compare-selected")
        page.wait_for_url(re.compile(r"/compare\?ids=2,1$"))


@pytest.mark.browser
def test_status_facet_lists_only_runs_with_that_status(probe_study: Path, page: Any, tmp_path: Path) -> None:
    _probe_runs(probe_study, "fail=false,true")  # the failing run makes the multirun exit non-zero: one run of each
    with ui_server(probe_study) as url:
        page.goto(url + "/runs")
        assert sorted(_column(page, "status")) == ["COMPLETED", "FAILED"]
        page.click(".facets a:text-is('FAILED')")
        page.wait_for_url(re.compile(r"status=FAILED"))
        assert _column(page, "status") == ["FAILED"]


@pytest.mark.browser
def test_a_run_whose_config_and_output_hold_markup_shows_it_as_text(probe_study: Path, page: Any, tmp_path: Path) -> None:
    assert _probe_runs(probe_study, f"message='{XSS}',hi").returncode == 0  # two runs: the message is a varying column
    with ui_server(probe_study) as url:
        for path in ("/runs", "/runs/1"):
            page.goto(url + path)
            assert page.evaluate("window.xss") is None, f"{path}: a script from the store ran"
            assert page.locator("main b").count() == 0, f"{path}: markup from the store was rendered"
            assert XSS in page.inner_text("main")
        assert XSS in page.inner_text("#output"), "the captured output too"
        screenshot(page, tmp_path, "run-with-markup")


def _start_gated_worker(study: Path) -> fork_server.Process:
    with open(study / "worker.log", "w") as log:
        return fork_server.popen([str(HYPERSPACE), "worker", "--app", "gated.run"], cwd=study, env=clean_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.browser
def test_an_open_run_page_shows_output_and_metric_points_as_a_worker_runs_it(tmp_path: Path, page: Any) -> None:
    study = Path(shutil.copytree(GATED_STUDY, tmp_path / "gated_study", ignore=shutil.ignore_patterns("__pycache__", ".hyperspace")))
    gate = tmp_path / "gate"
    queued = run_app(study, "gated.run", "--multirun", "hydra/launcher=hyperspace", f"gate={gate}")
    assert queued.returncode == 0, queued.stderr
    worker = _start_gated_worker(study)
    try:
        with open_store(f"sqlite:///{study / '.hyperspace' / 'store.db'}") as store:
            wait_until(lambda: "waiting at the gate" in (store.get_run(1)["captured_out"] or "") if store.list_runs(1) else False, what="the run to start")
        with ui_server(study) as url:
            runs_page = page.context.new_page()
            runs_page.goto(url + "/runs")
            assert runs_page.inner_text("#runs tr[data-run-id='1'] td.status") == "RUNNING"

            page.goto(url + "/runs/1")
            assert page.inner_text("#status") == "RUNNING"
            assert "waiting at the gate" in page.inner_text("#output")
            assert "through the gate" not in page.inner_text("#output")
            assert page.locator("[data-metric=progress]").count() == 0
            screenshot(page, tmp_path, "run-running")

            gate.touch()
            page.wait_for_function("document.getElementById('output').textContent.includes('through the gate')", timeout=LIVE_SECONDS * 1000 + 1000)
            page.wait_for_selector("[data-metric=progress][data-points='1']", timeout=LIVE_SECONDS * 1000)
            assert page.locator("[data-metric=progress] .scatterlayer .point").count() == 1, "the point is drawn"
            screenshot(page, tmp_path, "run-metric-point")

            gate.with_name("gate.end").touch()
            page.wait_for_function("document.getElementById('status').textContent === 'COMPLETED'", timeout=LIVE_SECONDS * 1000 + 3000)
            runs_page.wait_for_function(
                "document.querySelector(\"#runs tr[data-run-id='1'] td.status\").textContent === 'COMPLETED'", timeout=LIVE_SECONDS * 1000 + 1000
            )
            assert runs_page.inner_text("#runs tr[data-run-id='1'] td.result") == "1", "the row's result came with its status"
            assert page.url.endswith("/runs/1") and runs_page.url.endswith("/runs"), "no reload, no navigation"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)


@pytest.mark.browser
def test_queue_page_pauses_resumes_and_cancels_a_sweep_only_with_allow_actions(probe_study: Path, page: Any, tmp_path: Path) -> None:
    assert enqueue(probe_study, "score=1,2,3").returncode == 0
    with ui_server(probe_study) as url:
        page.goto(url + "/queue")
        assert "3 queued" in page.inner_text("#sweeps tr[data-sweep-id='1']")
        assert page.locator("button.sweep-action").count() == 0, "read-only: no buttons"
        refused = page.request.post(url + "/actions/sweeps/1/pause", headers={"X-Hyperspace-Token": "guess"})
        assert refused.status == 403 and "--allow-actions" in refused.json()["error"]
        screenshot(page, tmp_path, "queue-read-only")

    with ui_server(probe_study, "--allow-actions") as url:
        no_token = page.request.post(url + "/actions/sweeps/1/pause", headers={"X-Hyperspace-Token": "guess"})
        assert no_token.status == 403, "another site cannot know the token"
        assert page.request.get(url + "/actions/sweeps/1/pause").status == 405, "actions are POST only"
        assert _job_states(probe_study) == ["QUEUED"] * 3, "refused requests changed nothing"

        page.goto(url + "/queue")
        page.click("button.sweep-action[data-action=pause]")
        page.wait_for_function("document.getElementById('action-message').textContent === 'sweep 1: 3 job(s) paused'")
        page.wait_for_function("document.querySelector(\"#sweeps tr[data-sweep-id='1']\").textContent.includes('3 paused')", timeout=LIVE_SECONDS * 1000)
        assert _job_states(probe_study) == ["PAUSED"] * 3
        screenshot(page, tmp_path, "queue-paused")

        page.click("button.sweep-action[data-action=resume]")
        page.wait_for_function("document.querySelector(\"#sweeps tr[data-sweep-id='1']\").textContent.includes('3 queued')", timeout=LIVE_SECONDS * 1000)
        assert _job_states(probe_study) == ["QUEUED"] * 3

        page.once("dialog", lambda dialog: dialog.dismiss())
        page.click("button.sweep-action[data-action=cancel]")
        assert _job_states(probe_study) == ["QUEUED"] * 3, "cancel asks first: dismissed, nothing changes"
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("button.sweep-action[data-action=cancel]")
        page.wait_for_function("document.getElementById('action-message').textContent === 'sweep 1: 3 job(s) cancelled'")  # not 0: the dismissed one did not
        assert _job_states(probe_study) == ["CANCELLED"] * 3


@pytest.mark.browser
def test_queue_page_shows_the_worker_of_a_running_job_and_cancels_the_job(probe_study: Path, page: Any, tmp_path: Path) -> None:
    assert enqueue(probe_study, "sleep=60").returncode == 0
    worker = start_worker(probe_study)
    try:
        wait_until(lambda: _job_states(probe_study) == ["RUNNING"], what="the job to start")
        with ui_server(probe_study, "--allow-actions") as url:
            page.goto(url + "/queue")
            cells = _worker_cells(page)
            assert cells[1:8] == [socket.gethostname(), str(worker.pid), "-", "working", "1", "1", "1"], cells
            screenshot(page, tmp_path, "queue-worker")
            page.once("dialog", lambda dialog: dialog.accept())
            page.click("button.job-action[data-action=cancel][data-job-id='1']")
            page.wait_for_function("document.getElementById('action-message').textContent === 'job 1: 1 job(s) cancelled'")
            assert _job_states(probe_study) == ["CANCELLED"]
            page.wait_for_function("document.querySelector('#workers tbody td.worker-state').textContent === 'idle'", timeout=(LIVE_SECONDS + 1) * 1000)
            assert _worker_cells(page)[5] == "-", "an idle worker holds no job"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)


@pytest.mark.browser
def test_queue_page_pauses_and_resumes_one_job_of_a_sweep(probe_study: Path, page: Any, tmp_path: Path) -> None:
    assert enqueue(probe_study, "score=1,2,3").returncode == 0
    with ui_server(probe_study) as url:
        page.goto(url + "/queue")
        assert page.locator("#waiting tbody tr").count() == 3 and page.locator("button.job-action").count() == 0, "read-only: no buttons"
        refused = page.request.post(url + "/actions/jobs/2/pause", headers={"X-Hyperspace-Token": "guess"})
        assert refused.status == 403 and _job_states(probe_study) == ["QUEUED"] * 3

    with ui_server(probe_study, "--allow-actions") as url:
        page.goto(url + "/queue")
        assert page.locator("#waiting tr[data-job-id='2'] button").all_inner_texts() == ["pause job", "cancel job"]
        page.click("#waiting button.job-action[data-action=pause][data-job-id='2']")
        page.wait_for_function("document.getElementById('action-message').textContent === 'job 2: 1 job(s) paused'")
        assert _job_states(probe_study) == ["QUEUED", "PAUSED", "QUEUED"], "only that job"
        page.wait_for_function("document.querySelector(\"#waiting tr[data-job-id='2']\").textContent.includes('PAUSED')", timeout=LIVE_SECONDS * 1000)
        assert "2 queued" in page.inner_text("#sweeps tr[data-sweep-id='1']") and "1 paused" in page.inner_text("#sweeps tr[data-sweep-id='1']")
        assert page.locator("#waiting tr[data-job-id='2'] button").all_inner_texts() == ["resume job", "cancel job"]
        screenshot(page, tmp_path, "queue-job-paused")

        page.click("#waiting button.job-action[data-action=resume][data-job-id='2']")
        page.wait_for_function("document.getElementById('action-message').textContent === 'job 2: 1 job(s) resumed'")
        assert _job_states(probe_study) == ["QUEUED"] * 3
        page.wait_for_function("document.querySelector(\"#waiting tr[data-job-id='2']\").textContent.includes('QUEUED')", timeout=LIVE_SECONDS * 1000)


@pytest.mark.browser
def test_queue_page_shows_a_workers_slurm_job_and_its_lease_renewed_live(probe_study: Path, page: Any, tmp_path: Path) -> None:
    assert enqueue(probe_study, "sleep=60").returncode == 0
    worker = start_worker(probe_study, "--lease", "4", env=clean_env(SLURM_JOB_ID="4242"))
    try:
        wait_until(lambda: _job_states(probe_study) == ["RUNNING"], what="the job to start")
        with ui_server(probe_study) as url:
            page.goto(url + "/queue")
            cells = _worker_cells(page)
            assert cells[1:8] == [socket.gethostname(), str(worker.pid), "4242", "working", "1", "1", "1"], cells
            assert cells[0].endswith(":slurm-4242") and 0 < float(cells[8]) <= 4, "seconds left of a 4 s lease, by the store's clock"
            assert 0 <= float(cells[9]) < 2, "seen at its last renewal, by the store's clock"
            page.wait_for_timeout(5000)  # longer than the lease: only renewals keep it running
            cells = _worker_cells(page)
            assert 0 < float(cells[8]) <= 4 and 0 <= float(cells[9]) < 2.5, f"renewed every second, shown within the page's poll: {cells}"
            screenshot(page, tmp_path, "queue-worker-lease")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)


@pytest.mark.browser
def test_queue_page_shows_an_idle_worker_then_that_it_stopped(probe_study: Path, page: Any, tmp_path: Path) -> None:
    worker = start_worker(probe_study)
    wait_until(lambda: hyperspace(probe_study, "queue", "workers").returncode == 0, what="the worker's store")  # the UI serves only a store that exists
    try:
        with ui_server(probe_study) as url:
            page.goto(url + "/queue")
            page.wait_for_function("document.querySelector('#workers tbody td.worker-state')?.textContent === 'idle'", timeout=(LIVE_SECONDS + 30) * 1000)
            cells = _worker_cells(page)
            assert cells[1:6] == [socket.gethostname(), str(worker.pid), "-", "idle", "-"] and 0 <= float(cells[9]) < 31, cells
            screenshot(page, tmp_path, "queue-idle-worker")
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=60) == 0
            page.wait_for_function("document.querySelector('#workers tbody td.worker-state').textContent === 'stopped'", timeout=LIVE_SECONDS * 1000)
            answer = json.loads(_get(url + "/queue.json")[1])
            assert [(row["pid"], row["state"], row["held"]) for row in answer["workers"]] == [(worker.pid, "stopped", [])]
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)


def _worker_cells(page: Any) -> list[str]:
    """The cells of the first row of the Queue page's workers table."""
    return page.locator("#workers tbody tr").first.locator("td").all_inner_texts()


def _job_states(study: Path) -> list[str]:
    listing = hyperspace(study, "queue", "ls", "--json")
    assert listing.returncode == 0, listing.stderr
    return [json.loads(line)["state"] for line in listing.stdout.splitlines()]


@pytest.mark.browser
def test_queue_page_lists_failed_jobs_with_their_error_and_retries_one_or_the_sweep(probe_study: Path, page: Any, tmp_path: Path) -> None:
    assert enqueue(probe_study, "fail=true", "message=broken,bent").returncode == 0
    run_worker(probe_study)
    with ui_server(probe_study, "--allow-actions") as url:
        page.goto(url + "/queue")
        failed = page.inner_text("#failed tbody")
        assert failed.count("FAILED") == 2 and "task failed on purpose: broken" in failed and "task failed on purpose: bent" in failed
        assert page.locator("#sweeps button.sweep-action").all_inner_texts() == ["retry"], "nothing to pause, resume or cancel"
        screenshot(page, tmp_path, "queue-failed")

        page.click("button.job-action[data-action=retry][data-job-id='2']")
        page.wait_for_function("document.getElementById('action-message').textContent === 'job 2: 1 job(s) queued again'")
        assert _job_states(probe_study) == ["FAILED", "QUEUED"]
        page.click("button.sweep-action[data-action=retry]")
        page.wait_for_function("document.getElementById('action-message').textContent === 'sweep 1: 1 job(s) queued again'")
        assert _job_states(probe_study) == ["QUEUED", "QUEUED"]
        page.wait_for_function("document.querySelector('#failed tbody').textContent.includes('no failed job')", timeout=LIVE_SECONDS * 1000)

        unknown = page.request.post(url + "/actions/jobs/99/retry", headers={"X-Hyperspace-Token": page.input_value("#action-token")})
        assert unknown.status == 404 and unknown.json()["error"].startswith("no job with id 99")


def _empty_default_store(directory: Path) -> Path:
    """``directory``, holding the default store, empty: ``hyperspace ui`` serves only a store that exists."""
    open_store(f"sqlite:///{directory}/.hyperspace/store.db").close()
    return directory


def test_a_store_that_does_not_exist_is_one_error_line(tmp_path: Path) -> None:
    answer = hyperspace_process(tmp_path, "ui", "--port", "0", "--store", f"sqlite:///{tmp_path}/tpyo.db")
    assert answer.returncode == 2 and answer.stderr.startswith(f"error: no store at sqlite:///{tmp_path}/tpyo.db: "), answer.stderr
    assert not list(tmp_path.iterdir())


def test_a_port_beyond_65535_is_one_error_line(tmp_path: Path) -> None:
    answer = hyperspace(_empty_default_store(tmp_path), "ui", "--port", "99999999")
    assert (answer.returncode, answer.stderr) == (2, "error: --port must be from 0 (any free port) to 65535, not 99999999\n")


def test_a_port_in_use_is_one_error_line(tmp_path: Path) -> None:
    _empty_default_store(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        answer = hyperspace(tmp_path, "ui", "--port", str(port))
    assert answer.returncode == 2
    assert answer.stderr == f"error: cannot listen on 127.0.0.1:{port}: Address already in use (another program uses it: choose another with --port)\n"


def test_ctrl_c_stops_the_server_with_one_line_and_status_130(tmp_path: Path) -> None:
    server = fork_server.popen([str(HYPERSPACE), "ui", "--port", "0"], cwd=_empty_default_store(tmp_path), env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert "http://127.0.0.1:" in server.stdout.readline()
    server.send_signal(signal.SIGINT)
    _, stderr = server.communicate(timeout=30)
    assert (server.returncode, stderr) == (130, "error: interrupted (Ctrl-C)\n")


def test_another_host_than_this_machine_gets_a_warning(tmp_path: Path) -> None:
    server = fork_server.popen(
        [str(HYPERSPACE), "ui", "--host", "0.0.0.0", "--port", "0"], cwd=_empty_default_store(tmp_path), env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert "http://0.0.0.0:" in server.stdout.readline()
    server.send_signal(signal.SIGINT)
    _, stderr = server.communicate(timeout=30)
    assert stderr.startswith("warning: listening on 0.0.0.0: anyone who reaches this address can read every run in the store\n")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_runs_json_pages_through_the_store_in_the_chosen_order(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(uri) as store:
        for number in range(120):
            run_id = store.start_run({"task": "t", "config": {"lr": number % 7, "depth": number % 2}})
            store.finish_run(run_id, "COMPLETED", {"objective": float(number % 10)})
    with ui_server(tmp_path, "--store", uri) as url:
        pages = [json.loads(_get(f"{url}/runs.json?page={page}")[1]) for page in (1, 2, 3)]
        assert [[row["id"] for row in page["rows"]] for page in pages] == [list(range(120, 70, -1)), list(range(70, 20, -1)), list(range(20, 0, -1))]
        assert [page["has_next"] for page in pages] == [True, True, False]
        assert pages[0]["columns"] == ["lr", "depth"]

        sorted_page = json.loads(_get(f"{url}/runs.json?sort=-result&where=depth%3D1&page=2")[1])
        expected = sorted((n + 1 for n in range(120) if n % 2 == 1), key=lambda run_id: (-((run_id - 1) % 10), run_id))[50:60]
        assert [row["id"] for row in sorted_page["rows"]] == expected
        assert not sorted_page["has_next"]

        status, answer = _get(f"{url}/runs.json?status=WEIRD")
        assert json.loads(answer)["error"].startswith("unknown status 'WEIRD'")
        assert _get(f"{url}/runs/999")[0] == 404
        status, answer = _get(f"{url}/runs.json?page=99999999999999999999")
        assert status == 200 and json.loads(answer)["rows"] == [], "a page far beyond the last is empty, not a server error"


def test_credentials_in_a_run_never_reach_a_page(probe_study: Path) -> None:
    secret_uri = "postgresql://me:s3cr3t@db.example/study"
    assert _probe_runs(probe_study, f"message={secret_uri},hi").returncode == 0
    with ui_server(probe_study) as url:
        for path in ("/runs", "/runs.json", "/runs/1", "/runs/1.json", "/api/runs/1/live"):
            status, text = _get(url + path)
            assert status == 200 and "postgresql://me:***@db.example/study" in text and "s3cr3t" not in text, path


def _fill(store: Store) -> None:
    """Two finished runs (one with a metric series, one failed), a queued sweep of two jobs and an idle worker."""
    now = utcnow()
    for lr, status in ((0.1, "COMPLETED"), (0.01, "FAILED")):
        run_id = store.start_run({"task": "digits", "config": {"optimizer": {"lr": lr}}, "config_given": {}, "start_time": now})
        store.add_metrics(run_id, [MetricPoint("loss", step, 1.0 / (step + 1), now) for step in range(3)])
        store.finish_run(run_id, status, {"objective": lr, "stop_time": now, "fail_trace": ["Traceback\n", "ValueError: lr too small\n"] if status == "FAILED" else None})
    jobs = [NewJob([f"optimizer.lr={lr}"], {"optimizer": {"lr": lr}}, f"hash-{lr}") for lr in (0.2, 0.3)]
    store.enqueue("study.run", jobs, {"kind": "grid"})
    store.register_worker(WorkerInfo("node-7:4242:abc:slurm-99", "study.run", "node-7", 4242, slurm_job="99"))


@contextmanager
def in_process_ui(store: Store) -> Iterator[str]:
    """The UI's app over ``store`` served by uvicorn in a thread of this process (for mongomock, which no other process reaches)."""
    import uvicorn

    from hyperspace_hydra.ui.app import create_app

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(store), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="the server to start")
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()


@contextmanager
def _served(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    if backend == "mongomock":
        with MongoStore("mongodb://localhost/hyperspace_ui", client=mongomock.MongoClient()) as store:
            _fill(store)
            with in_process_ui(store) as url:
                yield url
        return
    uri = f"sqlite:///{tmp_path / 'store.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_uri")
    with open_store(uri) as store:
        _fill(store)
    with ui_server(tmp_path, "--store", uri) as url:
        yield url


@pytest.mark.browser
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "mongomock"])
def test_each_page_loads_on_every_backend(backend: str, page: Any, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    with _served(backend, tmp_path, request) as url:
        page.goto(url + "/runs?sort=lr")
        assert _column(page, "lr") == ["0.01", "0.1"] and _column(page, "status") == ["FAILED", "COMPLETED"]
        screenshot(page, tmp_path, f"runs-{backend}")
        page.goto(url + "/runs/1")
        page.wait_for_selector("[data-metric=loss][data-points='3']")
        assert page.inner_text("#status") == "COMPLETED" and page.inner_text("#result") == "0.1"
        screenshot(page, tmp_path, f"run-{backend}")
        page.goto(url + "/queue")
        assert "2 queued" in page.inner_text("#sweeps") and "no failed job" in page.inner_text("#failed"), "the failed run had no job"
        assert _worker_cells(page)[1:6] == ["node-7", "4242", "99", "idle", "-"], "the registered worker"
        screenshot(page, tmp_path, f"queue-{backend}")


@pytest.mark.browser
def test_sweep_page_plots_a_search_with_log_axes_where_the_space_is_log(probe_study: Path, page: Any, tmp_path: Path) -> None:
    search = ["hydra/sweeper=hyperspace", "hyperspace.objective=score", "hyperspace.direction=maximize", "score=tag(log, interval(0.01, 10))",
              "model=choice(small, large)", "hydra.sweeper.n_trials=5", "hydra.sweeper.seed=1"]  # fmt: skip
    assert _probe_runs(probe_study, *search).returncode == 0
    assert _probe_runs(probe_study, "score=3").returncode == 0  # a run outside the sweep
    with ui_server(probe_study) as url:
        page.goto(url + "/sweeps")
        page.click("#sweeps a[href='/sweeps/1']")
        page.wait_for_selector("[data-figure=history][data-points]")
        facts = page.inner_text("#search")
        assert "tpe, maximize score" in facts and "5 completed of a budget of 5" in facts and "FloatDistribution(high=10.0, log=True" in facts
        for figure in ("history", "slice", "parallel", "importance"):
            page.wait_for_selector(f"[data-figure={figure}] .main-svg")
        assert page.evaluate("document.querySelector('[data-figure=slice]').layout.xaxis2.type") == "log", "score's space is log"
        best_line = page.evaluate("document.querySelector('[data-figure=history]').data.map((trace) => trace.name)")
        assert "Best Value" in best_line
        screenshot(page, tmp_path, "sweep-search")

        page.goto(url + "/sweeps")
        assert page.inner_text("#sweeps tr[data-sweep-id='1'] td:nth-child(5)").strip() == "5/5", "run without the queue: trials of the budget"
        assert page.inner_text("#sweeps tr[data-sweep-id='1'] td.counts") == "runs: 5 completed"
        page.click("#sweeps a[href='/sweeps/1']")
        assert re.search(r"runs \(run without the queue\):\s+5/5 ended: 5 completed", page.inner_text("#live"))
        page.click("a:text-is('its runs')")
        page.wait_for_url(re.compile(r"sweep=1"))
        assert len(_column(page, "id")) == 5, "the sweep's runs, not the run outside it"


@pytest.mark.browser
def test_sweep_page_and_sweep_plots_show_a_searched_option_with_markup_as_text(probe_study: Path, page: Any, tmp_path: Path) -> None:
    search = ["hydra/sweeper=hyperspace", "hyperspace.objective=score", "score=interval(0, 10)",
              "message=choice('<b>bold</b>', plain)", "hydra.sweeper.n_trials=6", "hydra.sweeper.seed=2"]  # fmt: skip
    assert _probe_runs(probe_study, *search).returncode == 0
    plots = tmp_path / "plots.html"
    assert hyperspace(probe_study, "sweep", "show", "1", "--plot", str(plots)).returncode == 0
    written = plots.read_text().replace("\\u002f", "/")  # plotly writes / in its JSON as \u002f
    assert "<b>bold</b>" not in written and "&lt;b&gt;bold&lt;/b&gt;" in written
    with ui_server(probe_study) as url:
        page.goto(url + "/sweeps/1")
        page.wait_for_selector("[data-figure=slice] .main-svg")
        ticks = page.locator("[data-figure=slice] .xtick text").all_text_contents()
        assert any("<b>bold</b>" in tick for tick in ticks), ticks
        assert page.locator("[data-figure=slice] .xtick text tspan[style*=bold]").count() == 0, "shown as text, not made bold"


@pytest.mark.browser
def test_compare_shows_config_differences_results_and_overlaid_curves_of_the_chosen_runs(probe_study: Path, page: Any, tmp_path: Path) -> None:
    assert _probe_runs(probe_study, "score=1,2", "steps=3,5").returncode == 0
    with ui_server(probe_study) as url:
        page.goto(url + "/runs")
        assert page.is_disabled("#compare-selected")
        page.check("input.choose[value='1']")
        assert page.is_disabled("#compare-selected"), "one run is no comparison"
        page.check("input.choose[value='4']")
        page.click("#compare-selected")
        page.wait_for_url(re.compile(r"/compare\?ids=4,1$"))
        differences = page.inner_text("#config-diff tbody")
        assert "score\t2\t1" in differences and "steps\t5\t3" in differences
        assert "hyperspace" not in differences, "the tool's settings are left out, as runs diff does"
        assert "result\t2\t1" in page.inner_text("#results")
        page.wait_for_selector("[data-metric=loss][data-curves='2']")
        assert page.evaluate("document.querySelector('[data-metric=loss]').data.map((trace) => trace.x.length)") == [5, 3]
        screenshot(page, tmp_path, "compare")

        page.goto(url + "/compare?ids=1")
        assert page.inner_text(".error") == "error: compare needs two or more run ids: choose runs on the Runs page"


@pytest.mark.browser
def test_task_facet_keeps_only_the_runs_of_the_chosen_task(tmp_path: Path, page: Any) -> None:
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(uri) as store:
        for task in ("imdb", "digits", "imdb"):
            store.finish_run(store.start_run({"task": task, "config": {}}), "COMPLETED", {"objective": 1.0})
    with ui_server(tmp_path, "--store", uri) as url:
        page.goto(url + "/runs")
        assert page.locator(".facets:has-text('task:') a").all_inner_texts() == ["all", "digits", "imdb"]
        page.click(".facets a:text-is('imdb')")
        page.wait_for_url(re.compile(r"task=imdb"))
        assert _column(page, "id") == ["3", "1"] and set(_column(page, "task")) == {"imdb"}


@pytest.mark.browser
def test_run_page_marks_the_config_values_filled_in_from_code_defaults(probe_study: Path, page: Any, tmp_path: Path) -> None:
    assert _probe_runs(probe_study, "score=2").returncode == 0
    with ui_server(probe_study) as url:
        page.goto(url + "/runs/1")
        defaults = page.locator(".tree li.default:not(:has(ul))").all_inner_texts()
        assert {"dropout: 0.1", "lr: 0.01", "width: 8"} <= {text.strip() for text in defaults}, "signature defaults of the probe's targets"
        given = page.locator(".tree li:not(.default):not(:has(ul))").all_inner_texts()
        assert {"score: 2", "message: hi", "depth: 2"} <= {text.strip() for text in given}
        assert page.evaluate("getComputedStyle(document.querySelector('.tree li.default .value')).color") != page.evaluate(
            "getComputedStyle(document.querySelector('.tree li:not(.default) .value')).color"
        ), "shown apart"
        assert "score=2" in page.inner_text("#reproduce")
        screenshot(page, tmp_path, "run-config-tree")


@pytest.mark.browser
def test_runs_page_names_its_columns_as_runs_ls_and_a_config_key_named_status_is_its_own_column(tmp_path: Path, page: Any) -> None:
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(uri) as store:
        for draft, lr in (("draft", 0.1), ("final", 0.01)):
            run_id = store.start_run({"task": "digits", "config": {"status": draft, "optimizer": {"lr": lr}}})
            store.finish_run(run_id, "COMPLETED", {"objective": lr})
    listed = hyperspace(tmp_path, "runs", "ls", "--format", "csv", "--store", uri)
    assert listed.returncode == 0, listed.stderr
    runs_ls_header = listed.stdout.splitlines()[0].split(",")
    assert runs_ls_header == ["id", "status", "task", "sweep", "config.status", "lr", "result", "duration"]
    with ui_server(tmp_path, "--store", uri) as url:
        page.goto(url + "/runs")
        assert [text.split()[0] for text in page.locator("#runs thead th").all_inner_texts()[1:]] == runs_ls_header
        assert _column(page, "status") == ["COMPLETED", "COMPLETED"] and _column(page, "config.status") == ["final", "draft"]
        assert page.locator("#runs th a[data-column='config.status']").count() == 0, "the store cannot sort by it: no link"
        _sort_by(page, "lr", "▲")
        assert _column(page, "lr") == ["0.01", "0.1"] and _column(page, "config.status") == ["final", "draft"]
        answer = json.loads(_get(url + "/runs.json")[1])
        assert answer["header"] == runs_ls_header and answer["cells"][0][4] == "final"


def test_queue_overview_reads_only_the_waiting_jobs_it_shows_and_counts_the_rest(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path}/store.db") as store:
        jobs = [NewJob([f"score={number}"], {"score": number}, f"h{number}") for number in range(views.WAITING_JOBS_SHOWN + 7)]
        enqueued = store.enqueue("probe.run", jobs, {"kind": "grid"}).enqueued
        store.change_jobs(["QUEUED"], "PAUSED", job_ids=enqueued[-3:])
        overview = views.queue_overview(store)
    assert [job["id"] for job in overview["waiting"]] == enqueued[: views.WAITING_JOBS_SHOWN]
    assert overview["waiting_total"] == len(jobs)


def test_queue_overview_shows_each_registered_worker_with_the_jobs_it_holds_and_a_silent_one_gone(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path}/store.db") as store:
        store.enqueue("probe.run", [NewJob(["score=1"], {"score": 1}, "h1")], {"kind": "grid"})
        for name in ("busy", "silent"):
            store.register_worker(WorkerInfo(name, "probe.run", "node", 1, lease_seconds=10))
        job = store.claim("probe.run", "busy", 10)
        store.renew_leases([job.claim], 10, WorkerBeat("busy"))
        with store._writer.begin() as connection:
            connection.execute(WORKERS.update().where(WORKERS.c.name == "silent").values(last_seen=store.server_time() - dt.timedelta(seconds=21)))
        workers = {row["worker"]: row for row in views.queue_overview(store)["workers"]}
    assert workers["busy"]["state"] == "working" and workers["silent"]["state"] == "gone" and workers["silent"]["seen_ago"] >= 21
    [held] = workers["busy"]["held"]
    assert (held["job"], held["sweep"], held["run"]) == (job.claim.job_id, 1, None) and 8 < held["lease_left"] <= 10
