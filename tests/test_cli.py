"""The hyperspace command and the study's command line: output, store precedence, bad input."""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import fork_server
import pytest
import yaml
from conftest import (
    HYPERSPACE,
    PROBE_STUDY,
    clean_env,
    copy_study,
    enqueue,
    hyperspace,
    hyperspace_in_this_process,
    notebook,
    run_app,
    stored_runs,
    submit,
    wait_until,
)

from hyperspace_hydra.settings import DEFAULT_STORE_URI, resolve_store_uri
from hyperspace_hydra.store import COMPLETED, open_store


def _recorded_study(factory: pytest.TempPathFactory, *overrides: str) -> Path:
    """A copy of the probe study after ``--multirun overrides``, made once per session; tests get copies of it."""
    study = copy_study(PROBE_STUDY, factory.mktemp("recorded") / "probe_study")
    assert run_app(study, "probe.run", "--multirun", *overrides).returncode == 0
    return study


@pytest.fixture(scope="session")
def _two_runs_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _recorded_study(tmp_path_factory, "model=small,large")


@pytest.fixture
def two_runs(_two_runs_once: Path, tmp_path: Path) -> Path:
    """Runs 1-2: model small and large (a private copy of a study recorded once per session)."""
    return Path(shutil.copytree(_two_runs_once, tmp_path / "probe_study"))


def test_runs_ls_prints_a_table_of_what_differs(two_runs: Path) -> None:
    listing = hyperspace(two_runs, "runs", "ls")
    assert listing.returncode == 0, listing.stderr
    header, *rows = listing.stdout.splitlines()
    assert header.split() == ["id", "status", "task", "sweep", "depth", "width", "blocks", "optimizer", "lr", "betas", "result", "duration"]
    assert rows[0].split()[:2] == ["1", "COMPLETED"] and "1.5" in rows[0]
    assert rows[1].split()[3:6] == ["-", "12", "64"], "no sweep: a plain --multirun"


def test_runs_ls_json_has_one_object_per_run(two_runs: Path) -> None:
    lines = hyperspace(two_runs, "runs", "ls", "--json").stdout.splitlines()
    rows = [json.loads(line) for line in lines]
    assert [row["id"] for row in rows] == [1, 2]
    assert set(rows[0]) == {"id", "status", "task", "sweep", "config", "result", "duration", "job_id"}
    assert rows[1]["config"]["depth"] == 12 and rows[0]["result"] == 1.5 and rows[0]["duration"] > 0
    assert [json.loads(line)["id"] for line in hyperspace(two_runs, "runs", "ls", "--json", "--limit", "1").stdout.splitlines()] == [2]


@pytest.fixture(scope="session")
def _four_runs_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _recorded_study(tmp_path_factory, "model=small,large", "score=0.5,2.5")


@pytest.fixture
def four_runs(_four_runs_once: Path, tmp_path: Path) -> Path:
    """Runs 1-4: model small, small, large, large with score (the objective) 0.5, 2.5, 0.5, 2.5 (a private copy)."""
    return Path(shutil.copytree(_four_runs_once, tmp_path / "probe_study"))


def _listed_ids(study: Path, *args: str) -> list[int]:
    listing = hyperspace(study, "runs", "ls", "--json", *args)
    assert listing.returncode == 0, listing.stderr
    return [json.loads(line)["id"] for line in listing.stdout.splitlines()]


def test_runs_ls_filters_sorts_and_limits(four_runs: Path) -> None:
    assert _listed_ids(four_runs, "--where", "model.depth=12") == [3, 4]
    assert _listed_ids(four_runs, "--where", "model.depth=12", "--where", "score>1") == [4], "every --where must hold"
    assert _listed_ids(four_runs, "--where", "choices.model in [small]", "--sort", "-result") == [2, 1]
    assert _listed_ids(four_runs, "--sort", "-result", "--limit", "3") == [2, 4, 1], "ties in id order"
    assert _listed_ids(four_runs, "--where", "model.optimizer missing", "--limit", "1") == [4]
    assert _listed_ids(four_runs, "--status", "FAILED") == []


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (["runs", "ls", "--where", "model.depth>12"], "(no run matches)"),
        (["sweep", "ls"], "(no sweep yet)"),
        (["queue", "ls"], "(no job in the queue)"),
        (["queue", "workers"], "(no worker has registered)"),
    ],
)
def test_an_empty_table_says_so_rather_than_show_a_bare_header(four_runs: Path, command: list[str], said: str) -> None:
    table = hyperspace(four_runs, *command)
    assert (table.returncode, table.stdout.splitlines()[-1]) == (0, said), table.stderr


def test_runs_ls_filters_and_sorts_by_the_names_its_columns_show(four_runs: Path) -> None:
    assert _listed_ids(four_runs, "--where", "lr<0.05") == [1, 2], "lr is model.optimizer.lr"
    assert _listed_ids(four_runs, "--where", "depth=12", "--sort", "-score") == [4, 3]
    assert _listed_ids(four_runs, "--sort", "-lr", "--where", "score<1") == [1, 3], "runs without lr come last"
    assert _listed_ids(four_runs, "--where", "optimizer=probe.model.Optimizer") == [1, 2], "a _target_ by its node's name"
    durations = [json.loads(line)["duration"] for line in hyperspace(four_runs, "runs", "ls", "--json", "--sort", "duration").stdout.splitlines()]
    # SQLite sorts by durations computed with julianday, which reads each time to the nearest ms (a duration off by up
    # to 1 ms), and the listing rounds each duration to 1 ms: runs whose shown durations differ by 2 ms or less may come
    # in either order (seen: 0.006 before 0.004).
    assert len(durations) == 4 and all(first <= second + 0.0025 for first, second in zip(durations, durations[1:])), durations
    descending = [json.loads(line)["duration"] for line in hyperspace(four_runs, "runs", "ls", "--json", "--sort", "-duration").stdout.splitlines()]
    assert sorted(descending) == sorted(durations) and all(first + 0.0025 >= second for first, second in zip(descending, descending[1:])), descending
    assert _listed_ids(four_runs, "--sort", "-id", "--limit", "2") == [4, 3]
    assert _listed_ids(four_runs, "--where", "momentum missing") == [1, 2, 3, 4], "missing asks about any path"
    assert _listed_ids(four_runs, "--where", "momentum exists") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sort", "-bogus"], "error: no run has the sort path 'bogus': nothing is close"),
        (["--sort", "-lrr"], "error: no run has the sort path 'lrr': did you mean lr"),
        (["--where", "dept<3"], "error: no run has the filter path 'dept': did you mean depth"),
        (["--where", "_target_=x"], "error: the filter path '_target_' is ambiguous: it names model._target_, model.layer._target_, model.optimizer._target_"),
        (["--sort", "-duration", "--where", "duration>1"], "error: invalid filter 'duration>1': duration can be sorted by"),
        (["--where", "lr>zz"], "error: the filter on 'lr' compares with a string, but the runs hold a number there: it would match nothing"),
        (["--where", "result<low"], "error: the filter on 'result' compares with a string, but the runs hold a number there"),
    ],
)
def test_runs_ls_refuses_a_path_no_run_has(four_runs: Path, args: list[str], message: str) -> None:
    finished = hyperspace(four_runs, "runs", "ls", *args)
    assert finished.returncode == 2 and finished.stdout == ""
    assert finished.stderr.startswith(message) and finished.stderr.count("\n") == 1, finished.stderr


def test_runs_ls_shows_the_chosen_columns_as_a_table_or_csv(four_runs: Path) -> None:
    table = hyperspace(four_runs, "runs", "ls", "--columns", "depth,model.layer.width", "--where", "score=2.5")
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["id", "status", "task", "sweep", "depth", "width", "result", "duration"]
    assert [row.split()[:6] for row in rows] == [["2", "COMPLETED", "-", "-", "2", "8"], ["4", "COMPLETED", "-", "-", "12", "64"]]
    listing = hyperspace(four_runs, "runs", "ls", "--format", "csv", "--columns", "lr,betas,model.optimizer")
    rows = list(csv.DictReader(io.StringIO(listing.stdout)))
    assert list(rows[0]) == ["id", "status", "task", "sweep", "lr", "betas", "optimizer", "result", "duration"]
    first = rows[0]
    assert (first["lr"], first["betas"], first["optimizer"], first["result"]) == ("0.01", "[0.9, 0.999]", "probe.model.Optimizer", "0.5")
    assert rows[3]["lr"] == "" and rows[3]["task"] == "", "None is an empty cell"


def test_runs_diff_shows_config_code_and_results_side_by_side(four_runs: Path) -> None:
    shown = hyperspace(four_runs, "runs", "diff", "1", "4")
    assert shown.returncode == 0, shown.stderr
    lines = [line.split() for line in shown.stdout.splitlines()]
    assert lines[0] == ["config", "run", "1", "run", "4"]
    assert ["model.depth", "2", "12"] in lines and ["score", "0.5", "2.5"] in lines
    assert ["model.optimizer.lr", "0.01", "(absent)"] in lines and ["seed", "7", "7"] not in lines
    assert ["diff", "vs", "HEAD", "none", "none"] in lines, "neither copy of the study is in git: no diff to compare"
    assert ["objective", "0.5", "2.5"] in lines
    difference = json.loads(hyperspace(four_runs, "runs", "diff", "1", "4", "--json").stdout)
    entries = {entry["path"]: entry for entry in difference["config"]}
    assert difference["runs"] == [1, 4] and entries["model.depth"]["values"] == [2, 12]
    assert entries["model.optimizer.lr"] == {"path": "model.optimizer.lr", "values": [0.01, None], "present": [True, False]}
    assert difference["results"]["objective"] == [0.5, 2.5] and difference["code"]["diffs_differ"] is False
    assert hyperspace(four_runs, "runs", "diff", "2", "2").stdout.startswith("config: no differences")


def test_runs_show_prints_one_run_in_full_as_readable_text_at_100_columns(two_runs: Path) -> None:
    shown = hyperspace(two_runs, "runs", "show", "2")  # to a pipe, as to a file or less
    assert shown.returncode == 0
    document, output = shown.stdout.split("\n-- captured output ", 1)
    assert yaml.safe_load(document)["status"] == "COMPLETED" and "\nconfig:\n  model:\n" in document
    too_long = [line for line in shown.stdout.splitlines() if len(line) > 100]
    values = [line.strip().removeprefix("- ").split(": ", 1)[-1] for line in too_long]
    assert all(" " not in value for value in values), f"only an unbreakable value (a path) may run over: {too_long}"
    assert "hello from the task: hi" in output
    document = json.loads(hyperspace(two_runs, "runs", "show", "2", "--json").stdout)
    assert document["_id"] == 2 and document["config"]["model"]["depth"] == 12 and "loss" in document["metrics"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "show", "99"], "error: no run with id 99"),
        (["runs", "ls", "--store", "postgres://nowhere"], "error: invalid store URI"),
        (["runs", "ls", "--store", "sqlite:///README.md/store.db"], "error: no store at sqlite:///"),
        (["runs", "ls", "--store", ""], "error: --store is empty: give a store URI"),
        (["runs", "ls", "--sweep", "99"], "error: no sweep with id 99 in store sqlite:///"),
        (["runs", "ls", "--task", "digitz"], "error: no run of task 'digitz' in store sqlite:///"),
        (["report", "--sweep", "99"], "error: no sweep with id 99"),
        (["queue", "ls", "--sweep", "99"], "error: no sweep with id 99"),
        (["report", "-o", "missing/report.html"], "error: cannot write missing/report.html: No such file or directory"),
        (["runs", "ls", "--where", "model.depth"], "error: invalid filter 'model.depth': no operator found; expected PATH=VALUE"),
        (["runs", "ls", "--where", "score<[1]"], "error: invalid filter 'score<[1]': invalid condition on score: < compares"),
        (["runs", "ls", "--sort", "-a..b"], "error: invalid sort '-a..b': invalid path 'a..b'"),
        (["runs", "ls", "--columns", "nope"], "error: cannot show config column 'nope': no listed run has it"),
        (["runs", "ls", "--limit", "0"], "error: --limit must be more than 0 and at most 2147483647, not 0"),
        (["runs", "ls", "--limit", "99999999999999999999999999"], "error: --limit must be more than 0 and at most 2147483647, not 99999999999999999999999999"),
        (["runs", "diff", "1", "99"], "error: no run with id 99"),
    ],
)
def test_hyperspace_reports_bad_input_in_one_line(two_runs: Path, args: list[str], message: str) -> None:
    (two_runs / "README.md").write_text("a file, not a directory")
    finished = hyperspace(two_runs, *args)
    assert finished.returncode == 2
    assert finished.stderr.startswith(message) and finished.stderr.count("\n") == 1, finished.stderr


@pytest.mark.parametrize("command", [["runs", "ls"], ["sweep", "ls"], ["queue", "ls"], ["store", "check"], ["report"], ["runs", "show", "1"]])
def test_a_command_on_a_store_that_does_not_exist_says_so_and_creates_nothing(tmp_path: Path, command: list[str]) -> None:
    typo = hyperspace(tmp_path, *command, "--store", f"sqlite:///{tmp_path}/tpyo.db")
    assert typo.returncode == 2 and typo.stderr.startswith(f"error: no store at sqlite:///{tmp_path}/tpyo.db: nothing was recorded"), typo.stderr
    default = hyperspace(tmp_path, *command)
    assert default.returncode == 2 and default.stderr.startswith(f"error: no store at sqlite:///{tmp_path}/.hyperspace/store.db:"), default.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == [], "no store file, no .hyperspace directory, no report"


def _assert_clean_failure(finished, study: Path, message: str) -> None:
    assert finished.returncode != 0
    assert message in finished.stderr and "Traceback" not in finished.stderr, finished.stderr
    assert "hello from the task" not in finished.stdout, "the task did not run"
    assert not (study / ".hyperspace").exists() or not stored_runs(study), "nothing half-written"


def test_an_unknown_option_fails_cleanly(probe_study: Path) -> None:
    _assert_clean_failure(run_app(probe_study, "probe.run", "model=nope"), probe_study, "Could not find 'model/nope'")


def test_a_malformed_override_fails_cleanly(probe_study: Path) -> None:
    _assert_clean_failure(run_app(probe_study, "probe.run", "seed=[1"), probe_study, "no viable alternative at input '[1'")


def test_an_invalid_store_uri_stops_the_study_before_any_job(probe_study: Path) -> None:
    finished = run_app(probe_study, "probe.run", "hyperspace.store=mysql://x/y")
    _assert_clean_failure(finished, probe_study, "error: invalid store URI 'mysql://x/y'")
    assert finished.stderr.count("\n") == 1


def test_an_unwritable_store_path_stops_a_multirun_before_any_job(probe_study: Path) -> None:
    finished = run_app(probe_study, "probe.run", "--multirun", "hyperspace.store=sqlite:///conf/config.yaml/store.db", "message=a,b")
    _assert_clean_failure(finished, probe_study, "error: cannot open store")


def test_store_precedence_function() -> None:
    env = {"HYPERSPACE_STORE": "sqlite:////env.db"}
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("HYPERSPACE_STORE", raising=False)
        assert resolve_store_uri(None, None, "/start") == "sqlite:////start/.hyperspace/store.db"
        assert DEFAULT_STORE_URI.endswith(".hyperspace/store.db")
        assert resolve_store_uri(None, "sqlite:///conf.db", "/start") == "sqlite:////start/conf.db"
        patch.setenv("HYPERSPACE_STORE", env["HYPERSPACE_STORE"])
        assert resolve_store_uri(None, "sqlite:///conf.db", "/start") == "sqlite:////env.db"
        assert resolve_store_uri("sqlite:///cli.db", "sqlite:///conf.db", "/start") == "sqlite:////start/cli.db"


def test_the_study_override_beats_the_environment_which_beats_the_config_file(probe_study: Path) -> None:
    config = probe_study / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("hyperspace:\n", "hyperspace:\n  store: sqlite:///from_file.db\n"))
    env = clean_env(HYPERSPACE_STORE=f"sqlite:///{probe_study}/from_env.db")
    assert run_app(probe_study, "probe.run", "message=env", env=env).returncode == 0
    assert run_app(probe_study, "probe.run", "message=override", "hyperspace.store=sqlite:///from_cli.db", env=env).returncode == 0
    assert run_app(probe_study, "probe.run", "message=file").returncode == 0
    for name, message in (("from_env.db", "env"), ("from_cli.db", "override"), ("from_file.db", "file")):
        listing = hyperspace(probe_study, "runs", "ls", "--json", "--store", f"sqlite:///{name}")
        assert [json.loads(line)["id"] for line in listing.stdout.splitlines()] == [1], name
        shown = json.loads(hyperspace(probe_study, "runs", "show", "1", "--json", "--store", f"sqlite:///{name}").stdout)
        assert shown["config"]["message"] == message
    assert not (probe_study / ".hyperspace").exists()
    listing_from_env = hyperspace(probe_study, "runs", "ls", "--json", env=env)
    assert len(listing_from_env.stdout.splitlines()) == 1, "the CLI reads $HYPERSPACE_STORE too"


def test_store_check_reports_backend_schema_and_counts(two_runs: Path, postgres_uri: str) -> None:
    checked = hyperspace(two_runs, "store", "check")
    assert checked.returncode == 0, checked.stderr
    assert "backend: SQLite 3." in checked.stdout and "schema:  version 4" in checked.stdout and "runs:    2 completed" in checked.stdout
    assert "data:    ok (PRAGMA quick_check)" in checked.stdout
    not_yet = hyperspace(two_runs, "store", "check", "--store", postgres_uri)
    assert not_yet.returncode == 2 and not_yet.stderr.startswith("error: no store at postgresql://"), "a database without a store is not made one"
    open_store(postgres_uri).close()
    report = json.loads(hyperspace(two_runs, "store", "check", "--json", "--store", postgres_uri).stdout)
    assert report["backend"].startswith("PostgreSQL 1") and report["jobs"] == {} and report["runs"] == {}
    assert report["integrity"] is None, "PostgreSQL has no cheap check"


def test_store_check_of_an_unreachable_server_is_one_line(two_runs: Path) -> None:
    checked = hyperspace(two_runs, "store", "check", "--store", "postgresql://user:secret@127.0.0.1:1/db")
    assert checked.returncode == 2 and checked.stderr.count("\n") == 1
    assert checked.stderr.startswith("error: cannot open store postgresql://user:***@127.0.0.1:1/db") and "secret" not in checked.stderr


def test_backfill_adds_new_defaults_to_old_runs_and_reports_changed_ones(probe_study: Path) -> None:
    assert run_app(probe_study, "probe.run").returncode == 0
    model_source = probe_study / "probe" / "model.py"
    model_source.write_text(model_source.read_text().replace("dropout: float = 0.1,", "dropout: float = 0.2, momentum: float = 0.0,"))
    assert run_app(probe_study, "probe.run", "message=new").returncode == 0
    dry = hyperspace(probe_study, "backfill", "--app", "probe.run", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "run 1: + model.momentum=0.0; default changed, not applied: model.dropout 0.1 -> 0.2" in dry.stdout
    assert "1 of 2 run(s) of probe.run would be back-filled" in dry.stdout
    old_before = json.loads(hyperspace(probe_study, "runs", "show", "1", "--json").stdout)
    assert "momentum" not in old_before["config"]["model"], "a dry run writes nothing"
    assert hyperspace(probe_study, "backfill", "--app", "probe.run").returncode == 0
    old, new = (json.loads(hyperspace(probe_study, "runs", "show", str(run_id), "--json").stdout) for run_id in (1, 2))
    assert old["config"]["model"]["momentum"] == 0.0 and old["config"]["model"]["dropout"] == 0.1
    assert old["info"]["backfill"][0]["added"] == {"model.momentum": 0.0}
    assert old["info"]["backfill"][0]["original_config"] == old_before["config"]
    assert old["config_hash"] != old_before["config_hash"]
    filtered = hyperspace(probe_study, "runs", "ls", "--json", "--where", "model.momentum=0.0").stdout.splitlines()
    assert len(filtered) == 2, "after backfill filters treat old and new runs alike"
    again = hyperspace(probe_study, "backfill", "--app", "probe.run")
    assert "0 of 2 run(s) of probe.run back-filled" in again.stdout


def test_report_writes_one_self_contained_html_file_with_every_section(probe_study: Path) -> None:
    from html.parser import HTMLParser

    assert run_app(probe_study, "probe.run", "--multirun", "model=small,large", "score=1,2", "fail=false").returncode == 0
    assert run_app(probe_study, "probe.run", "fail=true").returncode != 0
    written = hyperspace(probe_study, "report", "--app", "probe.run", "-o", "report.html")
    assert written.returncode == 0, written.stderr
    page = (probe_study / "report.html").read_text()
    HTMLParser().feed(page)
    for section in ("Runs", "Objective against each varying parameter", "Parallel coordinates", "Metric curves of the 5 best runs", "Failures by error"):
        assert f"<h2>{section}</h2>" in page
    assert page.count('class="plotly-graph-div"') >= 4, "parameter plots, parallel coordinates and metric curves"
    assert "ValueError: task failed on purpose: hi" in page
    assert "<script src=" not in page, "every script is inline: it opens offline"
    bad = hyperspace(probe_study, "report", "--where", "score in 3")
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and bad.stderr.count("\n") == 1
    _assert_one_error_line(hyperspace(probe_study, "report", "--where", "lrr<1"), "error: no run has the filter path 'lrr': did you mean lr")
    short = hyperspace(probe_study, "report", "--where", "lr<1", "--where", "depth=2", "-o", "short.html")
    assert short.returncode == 0 and short.stdout == "wrote short.html (3 runs)\n", short.stderr


def _assert_one_error_line(finished, message: str, status: int = 2) -> None:
    """Exactly one stderr line, ``error: ...`` starting with ``message``; no traceback; the exit status."""
    assert finished.returncode == status, (finished.returncode, finished.stderr)
    lines = finished.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), finished.stderr
    assert "Traceback" not in finished.stdout


HUGE = "99999999999999999999999"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "show", HUGE], f"error: no run with id {HUGE}"),
        (["rerun", HUGE], f"error: no run with id {HUGE}"),
        (["runs", "diff", "1", HUGE], f"error: no run with id {HUGE}"),
        (["queue", "cancel", HUGE], f"error: no job with id {HUGE}"),
        (["queue", "cancel", "999", "1000"], "error: no job with id 999, 1000"),
        (["queue", "cancel", "--sweep", "999"], "error: no sweep with id 999"),
        (["queue", "pause", "--sweep", HUGE], f"error: no sweep with id {HUGE}"),
        (["queue", "resume", "999"], "error: no job with id 999"),
        (["queue", "retry", "999"], "error: no job with id 999"),
        (["queue", "wait", HUGE], f"error: no sweep with id {HUGE}"),
    ],
)
def test_ids_that_name_nothing_are_one_error_line(two_runs: Path, args: list[str], message: str) -> None:
    _assert_one_error_line(hyperspace(two_runs, *args), message)


def test_a_comparison_beyond_64_bit_integers_still_answers(two_runs: Path) -> None:
    assert _listed_ids(two_runs, "--where", f"seed<{HUGE}") == [1, 2]
    assert _listed_ids(two_runs, "--where", f"seed>-{HUGE}", "--where", f"id<{HUGE}") == [1, 2]
    assert _listed_ids(two_runs, "--where", f"seed>{HUGE}") == []


def test_queue_commands_count_existing_jobs_that_cannot_move_without_an_error(probe_study: Path) -> None:
    assert submit(probe_study, "model=small,large").returncode == 0
    cancelled = hyperspace(probe_study, "queue", "cancel", "1", "2")
    assert cancelled.returncode == 0 and cancelled.stdout == "2 job(s) cancelled\n", cancelled.stderr
    again = hyperspace(probe_study, "queue", "cancel", "--sweep", "1")
    assert again.returncode == 0 and again.stdout == "0 job(s) cancelled\n", "both exist: nothing left to cancel is no error"
    _assert_one_error_line(hyperspace(probe_study, "queue", "retry", "1", "3"), "error: no job with id 3")
    assert [json.loads(line)["state"] for line in hyperspace(probe_study, "queue", "ls", "--json").stdout.splitlines()] == ["CANCELLED"] * 2
    assert hyperspace(probe_study, "queue", "ls", "--state", "queued").stdout.splitlines()[-1] == "(no job matches)", "an empty table says so"


@pytest.fixture(scope="module")
def one_queued_job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the probe study with one queued job, shared by tests that must leave it queued."""
    study = copy_study(PROBE_STUDY, tmp_path_factory.mktemp("queued") / "probe_study")
    assert submit(study, "model=small").returncode == 0
    return study


def _a_worker_that_must_not_start(*args: object, **kwargs: object) -> None:
    raise AssertionError("the worker was not refused: it would have started serving")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--processes", "0"], "error: --processes must be more than 0 and at most 2147483647, not 0"),
        (["--processes", "-1"], "error: --processes must be more than 0 and at most 2147483647, not -1"),
        (["--processes", "99999999999999999999"], "error: --processes must be more than 0 and at most 2147483647, not 99999999999999999999"),
        (["--max-jobs", "0"], "error: --max-jobs must be more than 0"),
        (["--max-jobs", "2147483648"], "error: --max-jobs must be more than 0 and at most 2147483647, not 2147483648"),
        (["--lease", "0"], "error: --lease must be more than 0"),
        (["--lease", "1e300"], "error: --lease must be more than 0 and at most 31622400, not 1e+300"),
        (["--timeout", "inf"], "error: --timeout must be more than 0 and at most 31622400, not inf"),
        (["--timeout", "-5"], "error: --timeout must be more than 0"),
        (["--grace", "-1"], "error: --grace must be 0 or more and at most 31622400, not -1"),
        (["--grace", "nan"], "error: --grace must be 0 or more and at most 31622400, not nan"),
    ],
)
def test_worker_refuses_numbers_it_cannot_work_with(one_queued_job: Path, args: list[str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's checks of its arguments, called in this process (a worker process costs ~0.6 CPU s): a worker that
    was not refused fails the test instead of serving here."""
    monkeypatch.setattr("hyperspace_hydra.cli.worker.serve", _a_worker_that_must_not_start)
    _assert_one_error_line(hyperspace_in_this_process(one_queued_job, "worker", "--app", "probe.run", "--exit-when-empty", *args), message)
    assert json.loads(hyperspace(one_queued_job, "queue", "ls", "--json").stdout)["state"] == "QUEUED", "no job was taken"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["0"], "error: N must be more than 0 and at most 2147483647, not 0"),
        (["-3"], "error: N must be more than 0 and at most 2147483647, not -3"),
        (["99999999999999999999"], "error: N must be more than 0 and at most 2147483647, not 99999999999999999999"),
        (["2", "--gpus-per-worker", "0"], "error: --gpus-per-worker must be more than 0 and at most 2147483647, not 0"),
        (["2", "--mem-gb", "nan"], "error: --mem-gb must be more than 0 and at most 2147483647, not nan"),
        (["2", "--signal-delay", "-1"], "error: --signal-delay must be 0 or more and at most 31622400, not -1"),
        (["2", "--processes", "0"], "error: --processes must be more than 0 and at most 2147483647, not 0"),
    ],
)
def test_slurm_workers_refuses_numbers_before_submitting_anything(probe_study: Path, args: list[str], message: str) -> None:
    _assert_one_error_line(hyperspace(probe_study, "slurm", "workers", *args, "--app", "probe.run"), message)
    assert not (probe_study / ".hyperspace" / "slurm").exists(), "nothing was submitted"


def test_runs_show_prints_the_tail_of_a_huge_captured_output_quickly(tmp_path: Path) -> None:
    lines = [f"line {number} of the task's output\n" for number in range(700_000)]  # about 20 MB
    with open_store(f"sqlite:///{tmp_path}/store.db") as store:
        run_id = store.start_run({"config": {}, "captured_out": "".join(lines)})
    started = time.monotonic()
    shown = hyperspace(tmp_path, "runs", "show", str(run_id), "--store", f"sqlite:///{tmp_path}/store.db")
    assert shown.returncode == 0 and time.monotonic() - started < 15, shown.stderr
    assert shown.stdout.endswith(lines[-1]) and lines[-200] in shown.stdout and lines[-201] not in shown.stdout
    assert f"captured output: the last {len(''.join(lines[-200:])):,} of {len(''.join(lines)):,} characters (--full shows all)" in shown.stdout
    full = hyperspace(tmp_path, "runs", "show", str(run_id), "--full", "--store", f"sqlite:///{tmp_path}/store.db")
    assert full.returncode == 0 and full.stdout.endswith("".join(lines)), "--full: every line, in order"


def test_a_damaged_sqlite_store_is_found_by_store_check_and_one_error_line_everywhere(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/store.db"
    with open_store(uri) as store:
        for number in range(200):
            run_id = store.start_run({"config": {"n": number, "padding": "x" * 2000}, "captured_out": "y" * 3000})
            store.finish_run(run_id, COMPLETED, {"objective": float(number)})
    database = tmp_path / "store.db"
    assert not (tmp_path / "store.db-wal").exists(), "closing the store wrote everything into the file"
    size, page = database.stat().st_size, 4096
    with database.open("r+b") as file:  # the header stays fine; a fifth of the pages in the middle do not
        file.seek(size * 2 // 5 // page * page)
        file.write(b"\xff" * (size // 5 // page * page))
    assert hyperspace(tmp_path, "runs", "show", "1", "--store", uri).returncode == 0, "undamaged pages are still read"
    for args in (["store", "check"], ["runs", "ls"], ["runs", "show", "100"], ["runs", "ls", "--where", "n>150"]):
        finished = hyperspace(tmp_path, *args, "--store", uri)
        _assert_one_error_line(finished, f"error: store {uri} ")
        assert "database disk image is malformed" in finished.stderr or "is damaged" in finished.stderr, finished.stderr


def test_ctrl_c_while_a_big_grid_is_composed_is_one_line_and_enqueues_nothing(probe_study: Path) -> None:
    grid = fork_server.popen(
        [sys.executable, "-m", "probe.run", "--multirun", "hydra/launcher=hyperspace", "seed=range(0,20000)"],
        cwd=probe_study, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    wait_until(lambda: (probe_study / ".hyperspace" / "store.db").exists(), what="the multirun to open its store")
    time.sleep(1)  # well inside composing 20,000 jobs, which takes minutes
    grid.send_signal(signal.SIGINT)
    _, stderr = grid.communicate(timeout=60)
    assert (grid.returncode, stderr) == (130, "error: interrupted (Ctrl-C): nothing was enqueued\n")
    with open_store(f"sqlite:///{probe_study}/.hyperspace/store.db") as store:
        assert store.list_sweeps() == [] and store.list_jobs() == [], "no sweep, no job: nothing half-written"


def test_ctrl_c_in_a_hyperspace_command_is_one_line_with_status_130(probe_study: Path) -> None:
    assert enqueue(probe_study, "model=small").returncode == 0
    waiting = fork_server.popen([str(HYPERSPACE), "queue", "wait", "1"], cwd=probe_study, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until(lambda: (probe_study / ".hyperspace" / "store.db-shm").exists(), what="the command to open the store")  # then it waits for ever: no worker
    waiting.send_signal(signal.SIGINT)
    _, stderr = waiting.communicate(timeout=60)
    assert (waiting.returncode, stderr) == (130, "error: interrupted (Ctrl-C)\n")


def test_a_grid_value_that_does_not_resolve_is_one_line_naming_the_job(probe_study: Path) -> None:
    finished = enqueue(probe_study, "+note=a,b,${nope}")
    _assert_one_error_line(finished, "error: the job `+note=")
    assert "does not resolve: Interpolation key 'nope' not found (at note)" in finished.stderr
    with open_store(f"sqlite:///{probe_study}/.hyperspace/store.db") as store:
        assert store.list_sweeps() == [] and store.list_jobs() == [], "neither a and b nor the sweep were enqueued"


def test_a_seed_no_store_can_record_is_one_line_before_the_task_runs_or_anything_is_enqueued(probe_study: Path) -> None:
    refused = enqueue(probe_study, "seed=1,99999999999999999999999")
    _assert_one_error_line(refused, "error: seed must be a whole number from -2**63 to 2**63-1 (a run records it as a 64-bit integer), or null for none; not 99999999999999999999999")
    single = run_app(probe_study, "probe.run", "seed=-9223372036854775809")
    assert single.returncode == 2 and "error: seed must be a whole number from -2**63 to 2**63-1" in single.stderr and "hello from the task" not in single.stdout
    largest = run_app(probe_study, "probe.run", "seed=9223372036854775807")
    assert largest.returncode == 0, largest.stderr
    with open_store(f"sqlite:///{probe_study}/.hyperspace/store.db") as store:
        assert store.list_sweeps() == [] and store.list_jobs() == [], "neither seed was enqueued"
        assert [run["seed"] for run in store.list_runs()] == [2**63 - 1], "only the run that could be recorded ran"


def test_a_seed_that_seeds_nothing_is_one_line_before_the_task_runs_or_anything_is_enqueued(probe_study: Path) -> None:
    expected = "seed must be a whole number from -2**63 to 2**63-1 (a run records it as a 64-bit integer), or null for none; not"
    _assert_one_error_line(enqueue(probe_study, "seed=1,abc"), f"error: {expected} 'abc' (a str)")
    single = run_app(probe_study, "probe.run", "seed=1.5")
    assert single.returncode == 2 and f"{expected} 1.5 (a float)" in single.stderr and "hello from the task" not in single.stdout
    submitted = notebook(probe_study, "from hyperspace_hydra import Queue\nQueue(app='probe.run').submit(seed=True)")
    assert submitted.returncode == 1 and f"{expected} True (a bool)" in submitted.stderr, submitted.stderr
    assert run_app(probe_study, "probe.run", "seed=null").returncode == 0, "null: no seed"
    with open_store(f"sqlite:///{probe_study}/.hyperspace/store.db") as store:
        assert store.list_jobs() == [] and [run["seed"] for run in store.list_runs()] == [None]


def _leaf_parsers(parser: argparse.ArgumentParser, name: str = "hyperspace") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    subcommands = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if not subcommands:
        yield name, parser
    for action in subcommands:
        for command, subparser in action.choices.items():
            yield from _leaf_parsers(subparser, f"{name} {command}")


def test_every_commands_help_mentions_only_options_it_takes() -> None:
    from hyperspace_hydra.cli import _parser

    for name, parser in _leaf_parsers(_parser()):
        takes = {option for action in parser._actions for option in action.option_strings}
        mentioned = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", parser.format_help()))
        assert mentioned <= takes, f"{name} --help mentions {sorted(mentioned - takes)}, which it does not take"
