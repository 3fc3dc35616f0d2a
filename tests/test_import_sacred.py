"""Importing Sacred's runs: real Sacred experiments recorded by its own FileStorageObserver and MongoObserver."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gridfs
import mongomock
import mongomock.gridfs
import pymongo
import pytest
from conftest import hyperspace, run_app
from sacred import Experiment
from sacred.observers import FileStorageObserver, MongoObserver
from test_store_contract import MONGO_SERVER_ENV

from hyperspace_hydra import HyperspaceError
from hyperspace_hydra.cli import main as cli_main
from hyperspace_hydra.config import config_hash
from hyperspace_hydra.sacred_import import (
    SACRED_FIELDS,
    ClassKeys,
    ImportOptions,
    file_storage_runs,
    import_runs,
    import_sacred,
    mongo_runs,
)
from hyperspace_hydra.store import COMPLETED, FAILED, RUNNING, Condition, open_store
from hyperspace_hydra.store.mongo import MongoStore
from hyperspace_hydra.store_copy import copy_store

mongomock.gridfs.enable_gridfs_integration()

LONG_OUTPUT_LINES = 20_000
SACRED_CONFIG = {
    "lr": 0.1,
    "model": {"className": "Model", "depth": 12, "layer": {"className": "Layer", "width": 64}},
    "other": {"className": "Missing", "size": 3},
}
CLASS_KEYS = ClassKeys("className", "probe.model.")


def run_sacred_experiments(*observers: Any) -> None:
    """A legacy study as Sacred recorded it: a completed run with metric series and long output, then a failed run."""
    experiment = Experiment("legacy", save_git_info=False)
    experiment.add_config(SACRED_CONFIG)
    experiment.observers.extend(observers)

    @experiment.main
    def main(_run: Any, lr: float, model: dict) -> dict:
        for step in range(3):
            _run.log_scalar("loss", 1.0 / (step + 1), step)
        _run.log_scalar("accuracy", 0.75, 10)
        for line in range(LONG_OUTPUT_LINES):
            print(f"epoch line {line} of a long output")
        if lr > 1:
            raise ValueError("learning rate too high")
        return {"score": lr * 2, "depth": model["depth"]}

    experiment.run(options={"--capture": "sys"})
    with pytest.raises(ValueError, match="too high"):
        experiment.run(config_updates={"lr": 5.0}, options={"--capture": "sys"})


def _sacred_file(directory: Path, run: int, name: str) -> Any:
    return json.loads((directory / str(run) / name).read_text())


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_file_storage_runs_are_imported_whole_as_runs_of_the_study(probe_study: Path, tmp_path: Path) -> None:
    sacred_dir = tmp_path / "sacred_runs"
    run_sacred_experiments(FileStorageObserver(str(sacred_dir)))
    store_uri = f"sqlite:///{tmp_path}/imported.db"
    args = ("import", "sacred", str(sacred_dir), "--store", store_uri, "--app", "probe.run", "--task", "legacy_task", "--target-prefix", "probe.model.")
    imported = hyperspace(probe_study, *args)
    assert imported.returncode == 0, imported.stderr
    missing = "other.className='Missing': probe.model.Missing does not resolve (probe.model has no attribute or submodule 'Missing'); left as it is"
    assert f"{missing} (in 2 run(s))" in imported.stdout.splitlines()
    assert imported.stdout.splitlines()[-1] == "2 run(s) imported, 0 already imported before"

    with open_store(store_uri) as store:
        runs = store.list_runs()
        assert [run["info"]["sacred_id"] for run in runs] == [1, 2]
        for run in runs:
            sacred_id = run["info"]["sacred_id"]
            sacred = _sacred_file(sacred_dir, sacred_id, "run.json")
            assert run["status"] == sacred["status"] and run["command"] == "main" and run["host"] == sacred["host"]
            assert (run["start_time"], run["stop_time"]) == (_time(sacred["start_time"]), _time(sacred["stop_time"]))
            assert run["heartbeat"] == _time(sacred["heartbeat"]) and run["meta"] == sacred["meta"]
            assert run["experiment"] == {**sacred["experiment"], "name": "probe.run"}, "the study's app names it, so backfill treats it as the study's"
            assert run["info"]["sacred_experiment"] == "legacy" and run["info"]["imported_from"] == str(sacred_dir)
            assert run["captured_out"] == (sacred_dir / str(sacred_id) / "cout.txt").read_text()
            sacred_metrics = _sacred_file(sacred_dir, sacred_id, "metrics.json")
            assert store.get_metrics(run["_id"]) == {
                name: {"steps": series["steps"], "values": series["values"], "timestamps": list(map(_time, series["timestamps"]))}
                for name, series in sacred_metrics.items()
            }
            assert sorted(entry["name"] for entry in run["info"]["metrics"]) == ["accuracy", "loss"]
            sacred_config = _sacred_file(sacred_dir, sacred_id, "config.json")
            assert run["info"]["sacred_config"] == sacred_config
            assert run["config_given"] == {
                **sacred_config,
                "model": {"_target_": "probe.model.Model", "depth": 12, "layer": {"_target_": "probe.model.Layer", "width": 64}},
                "other": {"className": "Missing", "size": 3},
            }, "a class name that resolves becomes _target_; one that does not is left as it is"
            assert run["config"]["model"] == {
                "_target_": "probe.model.Model", "depth": 12, "dropout": 0.1, "blocks": None,
                "layer": {"_target_": "probe.model.Layer", "width": 64, "activation": "relu"},
            }, "today's defaults filled in"  # fmt: skip
            assert run["info"]["backfill"][0]["added"] == {"model.dropout": 0.1, "model.blocks": None, "model.layer.activation": "relu"}
            assert run["info"]["backfill"][0]["original_config"] == run["config_given"]
            assert run["config_hash"] == config_hash(run["config"]) and run["seed"] == sacred_config["seed"]
            assert run["task"] == "legacy_task" and run["choices"] == {"model": "large"}
        completed, failed = runs
        assert completed["status"] == COMPLETED and completed["result"] == {"score": 0.2, "depth": 12} and completed["objective"] == 0.2
        assert f"epoch line {LONG_OUTPUT_LINES - 1} of a long output" in completed["captured_out"]  # Sacred keeps no output of a failed run
        assert failed["status"] == FAILED and failed["result"] is None and failed["objective"] is None
        assert failed["fail_trace"] == _sacred_file(sacred_dir, 2, "run.json")["fail_trace"] and "learning rate too high" in failed["fail_trace"][-1]
        assert failed["config_given"]["lr"] == 5.0

    again = hyperspace(probe_study, *args)
    assert again.returncode == 0 and again.stdout.splitlines()[-1] == "0 run(s) imported, 2 already imported before"
    listing = hyperspace(probe_study, "runs", "ls", "--store", store_uri, "--json")
    assert [(row["id"], row["status"], row["task"]) for row in map(json.loads, listing.stdout.splitlines())] == [
        (1, COMPLETED, "legacy_task"),
        (2, FAILED, "legacy_task"),
    ]
    selected = hyperspace(probe_study, "runs", "ls", "--store", store_uri, "--where", "info.sacred_id=2", "--json")
    assert [json.loads(line)["id"] for line in selected.stdout.splitlines()] == [2], selected.stderr
    for run_id, expected in ((1, f"epoch line {LONG_OUTPUT_LINES - 1} of a long output"), (2, "learning rate too high")):
        shown = hyperspace(probe_study, "runs", "show", str(run_id), "--store", store_uri)
        assert shown.returncode == 0 and expected in shown.stdout
    difference = json.loads(hyperspace(probe_study, "runs", "diff", "1", "2", "--store", store_uri, "--json").stdout)
    assert {entry["path"]: entry["values"] for entry in difference["config"]}["lr"] == [0.1, 5.0]
    report = hyperspace(probe_study, "report", "--store", store_uri, "--app", "probe.run", "-o", str(tmp_path / "report.html"))
    assert report.returncode == 0 and "learning rate too high" in (tmp_path / "report.html").read_text(), report.stderr


@pytest.fixture(params=["mongomock", "mongodb"])
def sacred_database(request: pytest.FixtureRequest) -> Iterator[tuple[Any, str]]:
    """A database for Sacred's MongoObserver and its URI: on mongomock, and on a real server when one is configured."""
    if request.param == "mongomock":
        yield mongomock.MongoClient()["sacred"], "mongodb://localhost/sacred"
        return
    server = os.environ.get(MONGO_SERVER_ENV)
    if not server:
        pytest.skip(f"no MongoDB server: set {MONGO_SERVER_ENV}=mongodb://host/db to import from a real one")
    with pymongo.MongoClient(server) as client:
        name = f"sacred_{uuid.uuid4().hex}"
        yield client[name], f"{server.rsplit('/', 1)[0]}/{name}"
        client.drop_database(name)


def test_mongo_observer_runs_are_imported_whole_and_the_source_is_only_read(
    sacred_database: tuple[Any, str], probe_study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database, uri = sacred_database
    run_sacred_experiments(MongoObserver.create_from(database.runs, gridfs.GridFS(database), metrics_collection=database.metrics))
    before = {name: list(database[name].find()) for name in database.list_collection_names()}
    monkeypatch.syspath_prepend(str(probe_study))  # the study's code, where class names resolve
    with open_store(f"sqlite:///{tmp_path}/imported.db") as store:
        report = import_runs(store, mongo_runs(database), uri, ImportOptions(task="legacy_task", class_keys=CLASS_KEYS))
        missing = "other.className='Missing': probe.model.Missing does not resolve (probe.model has no attribute or submodule 'Missing'); left as it is"
        assert report.imported == {1: 1, 2: 2} and report.unresolved == {missing: 2}
        for sacred in database.runs.find():
            run = store.get_run(report.imported[sacred["_id"]])
            for field in ("command", "host", "status", "meta", "resources", "format", "fail_trace", "captured_out"):
                assert run[field] == sacred.get(field), field
            for field in ("start_time", "heartbeat", "stop_time"):
                assert run[field] == sacred[field], field
            assert run["experiment"] == {**sacred["experiment"], "sources": [[name, str(file_id)] for name, file_id in sacred["experiment"]["sources"]]}
            assert run["result"] == sacred["result"] and run["info"]["sacred_id"] == sacred["_id"] and run["info"]["imported_from"] == uri
            assert run["config"]["model"]["_target_"] == "probe.model.Model" and run["config"]["other"] == {"className": "Missing", "size": 3}
            assert run["config_hash"] is None and run["choices"] is None, "without the study's app nothing is completed or hashed"
            assert run["task"] == "legacy_task"
            assert (f"epoch line {LONG_OUTPUT_LINES - 1}" in run["captured_out"]) == (run["status"] == COMPLETED)
            metrics = {series["name"]: series for series in database.metrics.find({"run_id": sacred["_id"]})}
            assert store.get_metrics(run["_id"]) == {
                name: {"steps": series["steps"], "values": series["values"], "timestamps": series["timestamps"]} for name, series in metrics.items()
            }
        assert import_runs(store, mongo_runs(database), uri, ImportOptions()).already_imported == 2
        assert len(store.list_runs()) == 2
    assert {name: list(database[name].find()) for name in database.list_collection_names()} == before, "the Sacred database is only read"


def test_a_damaged_sacred_run_stops_the_import_naming_it_and_a_rerun_goes_on(probe_study: Path, tmp_path: Path) -> None:
    sacred_dir = tmp_path / "sacred_runs"
    run_sacred_experiments(FileStorageObserver(str(sacred_dir)))
    good_run = (sacred_dir / "2" / "run.json").read_text()
    (sacred_dir / "2" / "run.json").write_text(good_run[: len(good_run) // 2])
    store_uri = f"sqlite:///{tmp_path}/imported.db"
    failed = hyperspace(probe_study, "import", "sacred", str(sacred_dir), "--store", store_uri)
    assert failed.returncode == 2 and failed.stderr.count("\n") == 1
    assert failed.stderr.startswith(f"error: Sacred run 2 of {sacred_dir}: ValueError: {sacred_dir}/2/run.json is not valid JSON")
    with open_store(store_uri) as store:
        assert [run["info"]["sacred_id"] for run in store.list_runs()] == [1]
    (sacred_dir / "2" / "run.json").write_text(good_run.replace('"status": "FAILED"', '"status": "RUNNING"'))
    unfinished = hyperspace(probe_study, "import", "sacred", str(sacred_dir), "--store", store_uri)
    assert unfinished.stdout.splitlines()[-2:] == ["not finished in Sacred, not imported: run(s) 2", "0 run(s) imported, 1 already imported before"]
    (sacred_dir / "2" / "run.json").write_text(good_run)
    resumed = hyperspace(probe_study, "import", "sacred", str(sacred_dir), "--store", store_uri)
    assert resumed.stdout.splitlines()[-1] == "1 run(s) imported, 1 already imported before"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nowhere",), "error: nowhere is neither a directory (Sacred's FileStorageObserver) nor a mongodb:// URI"),
        ((".",), "holds no Sacred runs: expected a FileStorageObserver directory"),
        ((".", "--class-key", "cls"), "error: --class-key needs --target-prefix"),
        (("mongodb://user:secret@127.0.0.1:1/sacred?serverSelectionTimeoutMS=200",), "error: cannot read Sacred database mongodb://user:***@127.0.0.1:1/sacred"),
    ],
)
def test_bad_sources_and_options_are_one_error_line(probe_study: Path, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = hyperspace(probe_study, "import", "sacred", *args, "--store", f"sqlite:///{tmp_path}/s.db")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr and "secret" not in result.stderr


def test_the_command_imports_from_a_mongodb_uri(probe_study: Path, tmp_path: Path) -> None:
    server = os.environ.get(MONGO_SERVER_ENV)
    if not server:
        pytest.skip(f"no MongoDB server: set {MONGO_SERVER_ENV}=mongodb://host/db to import from a real one")
    name = f"sacred_{uuid.uuid4().hex}"
    uri = f"{server.rsplit('/', 1)[0]}/{name}"
    with pymongo.MongoClient(server) as client:
        try:
            run_sacred_experiments(MongoObserver(url=server, db_name=name))
            store_uri = f"sqlite:///{tmp_path}/imported.db"
            imported = hyperspace(probe_study, "import", "sacred", uri, "--store", store_uri)
            assert imported.returncode == 0 and imported.stdout.splitlines()[-1] == "2 run(s) imported, 0 already imported before", imported.stderr
            with open_store(store_uri) as store:
                assert [(run["info"]["sacred_id"], run["status"]) for run in store.list_runs()] == [(1, COMPLETED), (2, FAILED)]
        finally:
            client.drop_database(name)


PROBE_CONFIG_IN_SACRED = {
    "seed": 7, "message": "hi", "steps": 3, "sleep": 0, "fail": False, "crash": None, "score": 4.0, "result": "dict",
    "model": {
        "className": "Model", "depth": 2, "layer": {"className": "Layer"},
        "blocks": [{"className": "Layer", "width": 4}], "optimizer": {"className": "Optimizer"},
    },
}  # fmt: skip
"""The probe study's config as an older version of it, on Sacred, would have recorded it: classes named by ``className``."""


def test_imported_runs_that_match_the_search_are_its_history(probe_study: Path, tmp_path: Path) -> None:
    sacred_dir = tmp_path / "sacred_runs"
    for message in ("hi", "from another setup"):
        experiment = Experiment("probe_on_sacred", save_git_info=False)
        experiment.add_config({**PROBE_CONFIG_IN_SACRED, "message": message})
        experiment.observers.append(FileStorageObserver(str(sacred_dir)))
        experiment.main(lambda score: {"score": score})
        experiment.run()
    imported = hyperspace(probe_study, "import", "sacred", str(sacred_dir), "--app", "probe.run", "--target-prefix", "probe.model.")
    assert imported.returncode == 0 and imported.stdout.splitlines()[-1] == "2 run(s) imported, 0 already imported before", imported.stderr
    search = ["--multirun", "hydra/sweeper=hyperspace", "hyperspace.direction=maximize", "score=interval(0, 10)", "hydra.sweeper.n_trials=1"]
    searched = run_app(probe_study, "probe.run", *search)
    assert searched.returncode == 0, searched.stderr
    assert "1 past run(s) as history, 1 excluded (1: message differs)" in searched.stdout + searched.stderr


def test_a_database_sacred_wrote_opens_as_a_store_whose_runs_are_listed_without_task_or_hash(tmp_path: Path) -> None:
    client = mongomock.MongoClient()
    database = client["sacred"]
    run_sacred_experiments(MongoObserver.create_from(database.runs, gridfs.GridFS(database), metrics_collection=database.metrics))
    store = MongoStore("mongodb://localhost/sacred", client=client)
    runs = store.list_runs()
    assert [(run["_id"], run["status"], run["task"], run["config_hash"]) for run in runs] == [(1, COMPLETED, None, None), (2, FAILED, None, None)]
    assert runs[0]["config"] == {**SACRED_CONFIG, "seed": runs[0]["config"]["seed"]} and runs[0]["result"] == {"score": 0.2, "depth": 12}
    assert store.get_metrics(1)["loss"]["values"] == [1.0, 0.5, 1 / 3]
    assert store.start_run({}) == 3, "new runs continue after Sacred's ids"
    with pytest.raises(HyperspaceError, match="is the store itself: its Sacred runs are listed as they are; --in-place makes them runs of the store"):
        import_sacred(store, "mongodb://localhost/sacred", ImportOptions())


def test_a_database_sacred_wrote_can_be_copied_from_as_it_is(tmp_path: Path) -> None:
    client = mongomock.MongoClient()
    database = client["sacred"]
    run_sacred_experiments(MongoObserver.create_from(database.runs, gridfs.GridFS(database), metrics_collection=database.metrics))
    before = {name: list(database[name].find()) for name in database.list_collection_names()}
    with MongoStore("mongodb://localhost/sacred", client=client, read_only=True) as source, open_store(f"sqlite:///{tmp_path}/copy.db") as destination:
        report = copy_store(source, destination)
        assert (report.copied, report.verified, report.source) == (2, True, {COMPLETED: 1, FAILED: 1})
        copied = destination.get_run(1)
        assert copied["config"] == database.runs.find_one({"_id": 1})["config"] and copied["task"] is None
        assert destination.get_metrics(1)["loss"]["steps"] == [0, 1, 2]
    assert {name: list(database[name].find()) for name in database.list_collection_names()} == before, "the Sacred database is only read"


# A database Sacred wrote, opened as the store itself and upgraded in place

SACRED_URI = "mongodb://localhost/sacred"


@pytest.fixture
def sacred_store_client(monkeypatch: pytest.MonkeyPatch) -> mongomock.MongoClient:
    """A mongomock client whose database ``sacred`` Sacred's MongoObserver wrote (a completed and a failed run, and a
    QUEUED one), and that the CLI, run in this process, connects to for any ``mongodb://`` store."""
    client = mongomock.MongoClient()
    database = client["sacred"]
    observer = MongoObserver.create_from(database.runs, gridfs.GridFS(database), metrics_collection=database.metrics)
    run_sacred_experiments(observer)
    queued = Experiment("legacy", save_git_info=False)
    queued.observers.append(observer)
    queued.main(lambda: None)
    queued.run(options={"--queue": True})
    monkeypatch.setattr("hyperspace_hydra.store.mongo._connect", lambda uri: client)
    return client


def _collections(database: Any) -> dict[str, list[dict[str, Any]]]:
    return {name: list(database[name].find()) for name in sorted(database.list_collection_names())}


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli_main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def probe_app(probe_study: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The probe study as the current directory, its code importable in this process (and forgotten afterwards)."""
    monkeypatch.chdir(probe_study)
    monkeypatch.syspath_prepend(str(probe_study))
    yield probe_study
    for name in [name for name in sys.modules if name.split(".")[0] == "probe"]:
        del sys.modules[name]


def test_runs_ls_and_show_list_the_runs_sacred_wrote_with_task_and_hash_unknown(
    sacred_store_client: mongomock.MongoClient, capsys: pytest.CaptureFixture[str]
) -> None:
    database = sacred_store_client["sacred"]
    database.runs.update_one({"_id": 3}, {"$set": {"status": RUNNING, "heartbeat": dt.datetime(2020, 1, 1)}})
    before = database.runs.find_one({"_id": 3})
    status, out, err = _cli(capsys, "runs", "ls", "--store", SACRED_URI, "--json")
    assert status == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(row["id"], row["status"], row["task"], row["result"]) for row in rows] == [
        (1, COMPLETED, None, {"score": 0.2, "depth": 12}), (2, FAILED, None, None), (3, RUNNING, None, None),
    ]  # fmt: skip
    assert database.runs.find_one({"_id": 3}) == before, "a run Sacred is recording (or lost) is Sacred's to finish"
    status, out, err = _cli(capsys, "runs", "ls", "--store", SACRED_URI)
    assert status == 0 and out.splitlines()[1].split()[:3] == ["1", COMPLETED, "-"], "an unknown task shows as -"
    status, out, err = _cli(capsys, "runs", "show", "2", "--store", SACRED_URI)
    assert status == 0 and "task: null" in out and "config_hash: null" in out and "learning rate too high" in out, err


def test_import_in_place_upgrades_sacred_runs_keeping_sacred_fields_and_a_rerun_skips_them(
    sacred_store_client: mongomock.MongoClient, probe_study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = sacred_store_client["sacred"]
    before = _collections(database)
    monkeypatch.syspath_prepend(str(probe_study))  # the study's code, where class names resolve
    options = ImportOptions(task="legacy_task", class_keys=CLASS_KEYS)
    with open_store(SACRED_URI) as store:
        report = import_sacred(store, SACRED_URI, options, in_place=True)
        assert report.imported == {1: 1, 2: 2} and report.unfinished == [3] and report.already_imported == 0
        for sacred in before["runs"]:
            upgraded = database.runs.find_one({"_id": sacred["_id"]})
            if sacred["status"] == "QUEUED":
                assert upgraded == sacred, "a run Sacred has not finished is left as it is"
                continue
            for field in (*SACRED_FIELDS, *(set(sacred) - set(SACRED_FIELDS))):
                if field not in ("config", "info"):
                    assert upgraded.get(field) == sacred.get(field), f"Sacred's {field} stays as it is"
            assert {key: upgraded["info"][key] for key in sacred["info"]} == sacred["info"], "Sacred's info keys stay as they are"
            assert upgraded["info"]["sacred_id"] == sacred["_id"] and upgraded["info"]["imported_from"] == SACRED_URI
            assert upgraded["info"]["sacred_config"] == sacred["config"]
            assert upgraded["config"]["model"] == {
                "_target_": "probe.model.Model", "depth": 12, "layer": {"_target_": "probe.model.Layer", "width": 64},
            } and upgraded["config"]["other"] == SACRED_CONFIG["other"]  # fmt: skip
            assert upgraded["config_given"] == upgraded["config"] and upgraded["seed"] == sacred["config"]["seed"]
            assert (upgraded["task"], upgraded["config_hash"], upgraded["choices"]) == ("legacy_task", None, None)
            assert upgraded["objective"] is None and upgraded["job_id"] is None and upgraded["overrides"] is None
            run = store.get_run(sacred["_id"])
            assert run["task"] == "legacy_task" and run["config"] == upgraded["config"]
            assert store.get_metrics(sacred["_id"]) == {
                series["name"]: {key: series[key] for key in ("steps", "values", "timestamps")}
                for series in before["metrics"] if series["run_id"] == sacred["_id"]
            }  # fmt: skip
        after = _collections(database)
        assert {name: after[name] for name in ("metrics", "fs.files", "fs.chunks")} == {
            name: before[name] for name in ("metrics", "fs.files", "fs.chunks")
        }, "metrics and Sacred's source files stay as they are"
        again = import_sacred(store, SACRED_URI, options, in_place=True)
        assert (again.imported, again.already_imported, again.unfinished) == ({}, 2, [3])
        assert _collections(database)["runs"] == after["runs"], "a second upgrade changes nothing"

    experiment = Experiment("legacy", save_git_info=False)  # Sacred goes on recording into the upgraded database
    experiment.observers.append(MongoObserver.create_from(database.runs, gridfs.GridFS(database), metrics_collection=database.metrics))
    experiment.main(lambda: 1.0)
    assert experiment.run().observers[0].run_entry["_id"] == 4
    with open_store(SACRED_URI) as store:
        assert database.counters.find_one({"_id": "runs"})["seq"] == 3, "the store has handed out no id since Sacred took 4"
        assert store.start_run({}) == 5, "a new run's id moves past the ids Sacred took meanwhile"


def test_import_in_place_with_the_app_makes_them_runs_of_the_study(
    sacred_store_client: mongomock.MongoClient, probe_app: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = sacred_store_client["sacred"]
    before = {run["_id"]: run for run in database.runs.find()}
    args = ("import", "sacred", SACRED_URI, "--in-place", "--app", "probe.run", "--target-prefix", "probe.model.")
    status, out, err = _cli(capsys, *args)
    assert status == 0, err
    assert out.splitlines()[-2:] == ["not finished in Sacred, not upgraded: run(s) 3", "2 run(s) upgraded, 0 already upgraded before"]
    for run_id in (1, 2):
        upgraded = database.runs.find_one({"_id": run_id})
        assert upgraded["experiment"] == {**before[run_id]["experiment"], "name": "probe.run"}, "sources keep their GridFS ids"
        assert upgraded["info"]["sacred_experiment"] == "legacy"
        assert upgraded["config"]["model"]["dropout"] == 0.1 and upgraded["config"]["model"]["layer"]["activation"] == "relu"
        assert upgraded["info"]["backfill"][0]["original_config"] == upgraded["config_given"]
        assert upgraded["config_hash"] == config_hash(upgraded["config"]) and upgraded["choices"] == {"model": "large"}
    status, out, err = _cli(capsys, "runs", "ls", "--store", SACRED_URI, "--where", "choices.model=large", "--json")
    assert status == 0 and [json.loads(line)["id"] for line in out.splitlines()] == [1, 2], err
    status, out, err = _cli(capsys, *args)
    assert status == 0 and out.splitlines()[-1] == "0 run(s) upgraded, 2 already upgraded before"
    status, out, err = _cli(capsys, "import", "sacred", SACRED_URI, "--store", SACRED_URI)
    assert status == 2 and "is the store itself" in err and "--in-place" in err
    status, out, err = _cli(capsys, "import", "sacred", str(probe_app), "--in-place")
    assert status == 2 and err.startswith("error: --in-place upgrades the runs of a MongoDB store that Sacred wrote")


def test_an_upgrade_in_place_stopped_by_ctrl_c_leaves_each_run_upgraded_or_untouched(
    sacred_store_client: mongomock.MongoClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = sacred_store_client["sacred"]
    before = {run["_id"]: run for run in database.runs.find()}
    upgrade = MongoStore.upgrade_sacred_run

    def interrupted_at_the_second(store: MongoStore, run_id: Any, fields: Any) -> bool:
        if run_id == 2:
            raise KeyboardInterrupt
        return upgrade(store, run_id, fields)

    with monkeypatch.context() as patched:
        patched.setattr(MongoStore, "upgrade_sacred_run", interrupted_at_the_second)
        status, _, err = _cli(capsys, "import", "sacred", SACRED_URI, "--in-place")
    assert status == 130 and err == "error: interrupted (Ctrl-C)\n"
    assert database.runs.find_one({"_id": 1})["info"]["sacred_id"] == 1
    assert database.runs.find_one({"_id": 2}) == before[2], "the run being upgraded is untouched"
    status, out, err = _cli(capsys, "import", "sacred", SACRED_URI, "--in-place")
    assert status == 0 and out.splitlines()[-1] == "1 run(s) upgraded, 1 already upgraded before", err
    assert database.runs.find_one({"_id": 2})["info"]["sacred_id"] == 2


def _without_times_of_backfill(run: dict[str, Any]) -> dict[str, Any]:
    info = {**run["info"], "backfill": [{**entry, "at": None} for entry in run["info"].get("backfill", [])]}
    return {**run, "info": info}


def test_runs_imported_without_the_app_are_adopted_by_backfill_as_an_import_with_it_would_have_made_them(probe_study: Path, tmp_path: Path) -> None:
    sacred_dir = tmp_path / "sacred_runs"
    run_sacred_experiments(FileStorageObserver(str(sacred_dir)))
    with_app, without_app = f"sqlite:///{tmp_path}/with_app.db", f"sqlite:///{tmp_path}/without_app.db"
    common = ("import", "sacred", str(sacred_dir), "--task", "legacy_task", "--target-prefix", "probe.model.")
    assert hyperspace(probe_study, *common, "--store", with_app, "--app", "probe.run").returncode == 0
    assert hyperspace(probe_study, *common, "--store", without_app).returncode == 0
    with open_store(without_app) as store:
        before = store.list_runs()
    assert [(run["config_hash"], run["choices"], run["experiment"]["name"]) for run in before] == [(None, None, "legacy")] * 2

    dry = hyperspace(probe_study, "backfill", "--app", "probe.run", "--store", without_app, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        *(
            f"run {run_id}: adopted as a run of probe.run: task='legacy_task'; choices={{'model': 'large'}}; "
            "+ model.layer.activation='relu'; + model.dropout=0.1; + model.blocks=None"
            for run_id in (1, 2)
        ),
        "0 of 0 run(s) of probe.run would be back-filled",
        "2 run(s) imported without --app would be adopted as runs of probe.run",
    ]
    with open_store(without_app) as store:
        assert store.list_runs() == before, "a dry run writes nothing"

    done = hyperspace(probe_study, "backfill", "--app", "probe.run", "--store", without_app)
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "2 run(s) imported without --app adopted as runs of probe.run", done.stderr
    with open_store(without_app) as adopted, open_store(with_app) as imported:
        assert list(map(_without_times_of_backfill, adopted.list_runs())) == list(map(_without_times_of_backfill, imported.list_runs()))
        assert adopted.list_runs(where=[Condition("choices.model", "=", "large")], fields=["status"]) == [
            {"_id": 1, "status": COMPLETED}, {"_id": 2, "status": FAILED},
        ]  # fmt: skip
    again = hyperspace(probe_study, "backfill", "--app", "probe.run", "--store", without_app)
    assert again.stdout.splitlines() == ["0 of 2 run(s) of probe.run back-filled"], "adopted runs are the study's runs now"


def test_source_files_and_artifacts_are_recorded_by_where_they_are_and_their_sha256(probe_study: Path, tmp_path: Path) -> None:
    sacred_dir, database = tmp_path / "sacred_runs", mongomock.MongoClient()["sacred"]
    artifact = tmp_path / "weights.bin"
    artifact.write_bytes(bytes(range(256)) * 5000)
    experiment = Experiment("with_files", save_git_info=False)
    experiment.observers.extend([FileStorageObserver(str(sacred_dir)), MongoObserver.create_from(database.runs, gridfs.GridFS(database))])
    experiment.main(lambda _run: _run.add_artifact(str(artifact), "weights.bin"))
    experiment.run()
    sacred = database.runs.find_one()
    base_dir = Path(sacred["experiment"]["base_dir"])
    assert "test_import_sacred.py" in [name for name, _ in sacred["experiment"]["sources"]]
    expected = [
        *(("source", name, _sha256(base_dir / name), (base_dir / name).stat().st_size) for name, _ in sacred["experiment"]["sources"]),
        ("artifact", "weights.bin", _sha256(artifact), artifact.stat().st_size),
    ]
    with open_store(f"sqlite:///{tmp_path}/files.db") as store:
        for source, runs in ((str(sacred_dir), file_storage_runs(sacred_dir)), (SACRED_URI, mongo_runs(database))):
            [run_id] = import_runs(store, runs, source, ImportOptions()).imported.values()
            files = store.get_run(run_id)["info"]["sacred_files"]
            assert [(file["kind"], file["name"], file["sha256"], file["size"]) for file in files] == expected, source
            if source == SACRED_URI:
                gridfs_ids = [str(file_id) for _, file_id in sacred["experiment"]["sources"]] + [str(sacred["artifacts"][0]["file_id"])]
                assert [file["gridfs_id"] for file in files] == gridfs_ids
            else:
                assert [_sha256(Path(file["path"])) for file in files] == [sha256 for *_, sha256, _ in expected], "each path holds Sacred's copy"
    (sacred_dir / "1" / "weights.bin").unlink()
    [run] = file_storage_runs(sacred_dir)
    assert run.files[-1] == {"kind": "artifact", "name": "weights.bin", "path": str(sacred_dir / "1" / "weights.bin"), "sha256": None, "size": None}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
