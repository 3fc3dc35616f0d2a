"""The hyperspace command and the study's command line: output, store precedence, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import clean_env, hyperspace, run_app, stored_runs

from hyperspace_hydra.settings import DEFAULT_STORE_URI, resolve_store_uri


@pytest.fixture
def two_runs(probe_study: Path) -> Path:
    assert run_app(probe_study, "probe.run", "--multirun", "model=small,large").returncode == 0
    return probe_study


def test_runs_ls_prints_a_table_of_what_differs(two_runs: Path) -> None:
    listing = hyperspace(two_runs, "runs", "ls")
    assert listing.returncode == 0, listing.stderr
    header, *rows = listing.stdout.splitlines()
    assert header.split() == ["id", "status", "task", "depth", "width", "blocks", "optimizer", "lr", "betas", "result", "duration"]
    assert rows[0].split()[:2] == ["1", "COMPLETED"] and "1.5" in rows[0]
    assert rows[1].split()[3:5] == ["12", "64"]


def test_runs_ls_json_has_one_object_per_run(two_runs: Path) -> None:
    lines = hyperspace(two_runs, "runs", "ls", "--json").stdout.splitlines()
    rows = [json.loads(line) for line in lines]
    assert [row["id"] for row in rows] == [1, 2]
    assert set(rows[0]) == {"id", "status", "task", "config", "result", "duration", "job_id"}
    assert rows[1]["config"]["depth"] == 12 and rows[0]["result"] == 1.5 and rows[0]["duration"] > 0
    assert [json.loads(line)["id"] for line in hyperspace(two_runs, "runs", "ls", "--json", "--limit", "1").stdout.splitlines()] == [2]


def test_runs_show_prints_one_run_in_full(two_runs: Path) -> None:
    shown = hyperspace(two_runs, "runs", "show", "2")
    assert shown.returncode == 0
    assert "'status': 'COMPLETED'" in shown.stdout and "captured output" in shown.stdout
    assert "hello from the task: hi" in shown.stdout
    document = json.loads(hyperspace(two_runs, "runs", "show", "2", "--json").stdout)
    assert document["_id"] == 2 and document["config"]["model"]["depth"] == 12 and "loss" in document["metrics"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "show", "99"], "error: no run with id 99"),
        (["runs", "ls", "--store", "postgres://nowhere"], "error: invalid store URI"),
        (["runs", "ls", "--store", "sqlite:///README.md/store.db"], "error: cannot open store"),
    ],
)
def test_hyperspace_reports_bad_input_in_one_line(two_runs: Path, args: list[str], message: str) -> None:
    (two_runs / "README.md").write_text("a file, not a directory")
    finished = hyperspace(two_runs, *args)
    assert finished.returncode == 2
    assert finished.stderr.startswith(message) and finished.stderr.count("\n") == 1, finished.stderr


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
    assert "backend: SQLite 3." in checked.stdout and "schema:  version 1" in checked.stdout and "runs:    2 completed" in checked.stdout
    report = json.loads(hyperspace(two_runs, "store", "check", "--json", "--store", postgres_uri).stdout)
    assert report["backend"].startswith("PostgreSQL 1") and report["jobs"] == {} and report["runs"] == {}


def test_store_check_of_an_unreachable_server_is_one_line(two_runs: Path) -> None:
    checked = hyperspace(two_runs, "store", "check", "--store", "postgresql://user:secret@127.0.0.1:1/db")
    assert checked.returncode == 2 and checked.stderr.count("\n") == 1
    assert checked.stderr.startswith("error: cannot open store postgresql://user:***@127.0.0.1:1/db") and "secret" not in checked.stderr
