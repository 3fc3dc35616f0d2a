"""Composing a sweep once per shape gives exactly what composing every job in full gives."""

from __future__ import annotations

import copy
import dataclasses
import enum
import os
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationKeyError

from hyperspace_hydra.app import App
from hyperspace_hydra.composer import JobConfig, SweepComposer, group_lookup, multirun_composer
from hyperspace_hydra.config import plain, task_config, task_data
from hyperspace_hydra.overrides import format_override
from hyperspace_hydra.queue import new_job
from hyperspace_hydra.store import open_store

CONFIG = """\
defaults:
  - model: small
  - hyperspace
  - _self_

seed: 1
lr: 0.1
name: run
flag: false
maybe: null
scaled: ${lr}
label: ${name}-${seed}
stamp: ${now:%H:%M:%S.%f}
nested:
  a:
    b: 1
    c: [1, 2]
  d: ${nested.a.b}
"""
MODELS = {"small": "_target_: json.JSONEncoder\n", "large": "_target_: json.JSONEncoder\nindent: 4\n"}

VALUE_SWEEPS = {
    "top-level values": [["lr=0.1", "seed=1"], ["lr=0.2", "seed=2"], ["lr=1", "seed=3"], ["lr=abc", "seed=-4"]],
    "nested values": [["nested.a.b=2"], ["nested.a.b=3"], ["nested.a.b=x"]],
    "a fixed group choice": [["model=large", "lr=1"], ["model=large", "lr=2"]],
    "a fixed hydra key": [["hydra.job.name=fixed", "lr=1"], ["hydra.job.name=fixed", "lr=2"]],
    "a fixed addition": [["+extra=1", "lr=1"], ["+extra=1", "lr=2"]],
    "a fixed deletion": [["~flag", "lr=1"], ["~flag", "lr=2"]],
    "typed settings": [["hyperspace.capture=sys", "hyperspace.heartbeat_seconds=1"], ["hyperspace.capture=no", "hyperspace.heartbeat_seconds=2.5"]],
    "null, booleans and quoted strings": [["maybe=null", "flag=true", "name='a b'"], ["maybe=3", "flag=false", "name='x,y'"], ["maybe='3'", "flag=1", "name=''"]],
    "a value of a group's node": [["model._target_=json.JSONDecoder"], ["model._target_=json.JSONEncoder"]],
}
OTHER_SWEEPS = {
    "a varying group choice": [["model=small", "lr=1"], ["model=large", "lr=1"], ["model=small", "lr=2"], ["model=large", "lr=3"]],
    "interpolated values": [["lr=2"], ["lr=${seed}"], ["lr=3"], ["lr='${name}'"], ["maybe=1", "name=x"], ["maybe='${lr}'", "name=y"]],
    "a varying hydra key": [["hydra.job.name=x", "lr=1"], ["hydra.job.name=y", "lr=2"]],
    "varying additions": [["+extra=1"], ["+extra=2"], ["++lr=1"], ["++lr=2"]],
    "lists and dicts": [["nested.a.c=[1]"], ["nested.a.c=[2,3]"], ["nested.a={b:5}"], ["nested.a={b:6}"]],
    "a value over a dict node": [["nested.a=1"], ["nested.a=2"]],
    "overlapping keys": [["nested.a.b=1", "nested.a.b=2"], ["nested.a.b=3", "nested.a.b=4"], ["model=large", "model.indent=1"], ["model=large", "model.indent=2"]],
    "an unknown key": [["nope=1"], ["nope=2"], ["model.indent=2"], ["model.indent=3"]],
    "a value the settings refuse": [["hyperspace.heartbeat_seconds=1"], ["hyperspace.heartbeat_seconds=abc"], ["hyperspace.capture=maybe"]],
    "a bad override": [["lr=1"], ["lr=[1"]],
}


def task_function(cfg: DictConfig) -> None:
    """The test app's task (never run)."""


@pytest.fixture
def app(tmp_path: Path) -> App:
    conf = tmp_path / "conf"
    (conf / "model").mkdir(parents=True)
    (conf / "config.yaml").write_text(CONFIG)
    for name, text in MODELS.items():
        (conf / "model" / f"{name}.yaml").write_text(text)
    return App("test_composer", task_function, str(conf), "config")


def outcome(compose: Callable[[list[str]], DictConfig], overrides: Sequence[str]) -> Any:
    """Everything a job's config decides (but timestamps): the config itself, its job (complete config, hash), its flags, or the error."""
    try:
        config = compose(list(overrides))
        config.stamp = "now"
        job = new_job(config, overrides)
    except Exception as error:  # noqa: BLE001 - the error itself is what must match
        return type(error), str(error)
    return OmegaConf.to_yaml(config), job.config, job.config_hash, OmegaConf.is_struct(config)


def timestamps(config: DictConfig) -> tuple[str, str]:
    return str(config.hydra.sweep.dir), str(config.stamp)


def counting(compose: Callable[[list[str]], DictConfig]) -> tuple[Callable[[list[str]], DictConfig], list[int]]:
    calls = [0]

    def counted(overrides: list[str]) -> DictConfig:
        calls[0] += 1
        return compose(overrides)

    return counted, calls


def assert_same_as_full(composer: SweepComposer, full: Callable[[list[str]], DictConfig], sweep: Sequence[Sequence[str]]) -> None:
    for overrides in sweep:
        assert outcome(composer.compose, overrides) == outcome(full, overrides), overrides


@pytest.mark.parametrize("name", list(VALUE_SWEEPS))
def test_a_sweep_over_values_composes_once_and_gives_every_full_config(app: App, name: str) -> None:
    compose, full_composes = counting(app.compose)
    assert_same_as_full(SweepComposer(compose, group_lookup(app.hydra().config_loader)), app.compose, VALUE_SWEEPS[name])
    assert full_composes[0] == 1


@pytest.mark.parametrize("name", list(OTHER_SWEEPS))
def test_other_sweeps_give_every_full_config_or_error(app: App, name: str) -> None:
    assert_same_as_full(SweepComposer(app.compose, group_lookup(app.hydra().config_loader)), app.compose, OTHER_SWEEPS[name])


def test_a_varying_group_composes_once_per_choice(app: App) -> None:
    compose, full_composes = counting(app.compose)
    composer = SweepComposer(compose, group_lookup(app.hydra().config_loader))
    for overrides in OTHER_SWEEPS["a varying group choice"]:
        composer.compose(overrides)
    assert full_composes[0] == 2


@pytest.mark.parametrize("sweep", [*VALUE_SWEEPS.values(), *OTHER_SWEEPS.values()], ids=[*VALUE_SWEEPS, *OTHER_SWEEPS])
def test_multirun_jobs_are_those_of_load_sweep_config(app: App, sweep: list[list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    master = app.compose(["lr=1,2", "hydra.sweep.dir=multirun/${now:%H-%M-%S-%f}"], run_mode=RunMode.MULTIRUN)
    loader = app.hydra().config_loader
    load_sweep_config = loader.load_sweep_config
    counted, full_composes = counting(lambda overrides: load_sweep_config(master, overrides))
    monkeypatch.setattr(loader, "load_sweep_config", lambda _master, overrides: counted(overrides))
    assert_same_as_full(multirun_composer(loader, master), lambda overrides: load_sweep_config(master, overrides), sweep)
    assert full_composes[0] == 1 or sweep not in VALUE_SWEEPS.values()


def test_multirun_jobs_share_the_master_configs_timestamps(app: App) -> None:
    master = app.compose(["lr=1,2", "hydra.sweep.dir=multirun/${now:%H-%M-%S-%f}"], run_mode=RunMode.MULTIRUN)
    timestamps(master)  # resolving caches them, as Hydra's sweeper does when it creates the sweep directory
    composer = multirun_composer(app.hydra().config_loader, master)
    assert {timestamps(composer.compose([f"lr={lr}"])) for lr in (1, 2, 3)} == {timestamps(master)}


def test_queued_jobs_get_timestamps_of_their_own(app: App) -> None:
    composer = SweepComposer(app.compose, group_lookup(app.hydra().config_loader))
    first = timestamps(composer.compose(["lr=1"]))
    second = timestamps(composer.compose(["lr=2"]))
    assert first[1] != second[1]


def test_a_returned_config_can_be_changed_without_changing_later_ones(app: App) -> None:
    composer = SweepComposer(app.compose, group_lookup(app.hydra().config_loader))
    first = composer.compose(["lr=1"])
    first.lr = 99
    first.hydra.job.name = "changed"
    assert outcome(composer.compose, ["lr=2"]) == outcome(app.compose, ["lr=2"])


def multirun_enqueue(app: App, store: Path, *overrides: str) -> None:
    """``--multirun overrides hydra/launcher=hyperspace`` in this process, into the SQLite store at ``store``
    (Hydra's sweep directory beside it: this process's working directory is not the test's)."""
    hydra_overrides = ["hydra/launcher=hyperspace", f"hydra.sweep.dir={store.parent}/multirun"]
    app.hydra().multirun(app.config_name, app.task_function, [*overrides, *hydra_overrides, f"hyperspace.store=sqlite:///{store}"])


def test_the_launcher_composes_a_grid_over_values_in_full_once_validation_included(app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loader = app.hydra().config_loader
    full = loader.load_sweep_config
    calls: list[list[str]] = []
    monkeypatch.setattr(loader, "load_sweep_config", lambda master, overrides: calls.append(overrides) or full(master, overrides))
    multirun_enqueue(app, tmp_path / "store.db", "lr=1,2,3", "seed=4,5")
    assert len(calls) == 1, "Hydra's batch validation and the launcher share one composer: one full compose for the grid"
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        jobs = store.list_jobs()
    master = app.compose(["lr=1,2,3", "seed=4,5", "hydra/launcher=hyperspace"], run_mode=RunMode.MULTIRUN)
    assert len(jobs) == 6
    for job in jobs:
        expected = full(master, job["overrides"])
        expected.stamp = job["config"]["stamp"]  # ${now:} differs between processes' composes, nothing else may
        assert job["config"] == new_job(expected, job["overrides"]).config


def test_the_launchers_validation_still_refuses_a_bad_value_in_a_later_job(app: App, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:  # the launcher's one error line, not Hydra's report of an exception
        multirun_enqueue(app, tmp_path / "store.db", "hyperspace.heartbeat_seconds=1,abc")
    assert stopped.value.code == 2 and "heartbeat_seconds" in capsys.readouterr().err
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        assert store.list_jobs() == []


def test_after_a_sweep_the_config_loader_composes_other_masters_in_full(app: App, tmp_path: Path) -> None:
    multirun_enqueue(app, tmp_path / "store.db", "lr=1,2")
    other = app.compose(["lr=7,8", "hydra.job.name=other"], run_mode=RunMode.MULTIRUN)  # a sweep's jobs take the master's hydra overrides
    job = app.hydra().config_loader.load_sweep_config(other, ["lr=8"])
    assert (job.lr, job.hydra.job.name) == (8, "other")


RUN_DIRS = ["outputs/queue/1", "/tmp/a dir, with: odd=chars'", "outputs/${not_interpolated}"]


@pytest.mark.parametrize("sweep", [*VALUE_SWEEPS.values(), *OTHER_SWEEPS.values()], ids=[*VALUE_SWEEPS, *OTHER_SWEEPS])
def test_a_worker_composes_each_queued_job_as_a_full_compose_with_its_run_dir(app: App, sweep: list[list[str]]) -> None:
    composer = app.queued_job_composer()
    for index, overrides in enumerate(sweep):
        run_dir = RUN_DIRS[index % len(RUN_DIRS)]
        with_run_dir = [*overrides, format_override("hydra.run.dir", run_dir)]
        ours = outcome(lambda overrides, run_dir=run_dir: composer.compose(overrides, 1, run_dir), overrides)
        full = outcome(app.compose, with_run_dir)
        assert without_prefix(ours, overrides) == without_prefix(full, with_run_dir), overrides
        next_trial = outcome(lambda overrides: composer.compose(overrides, 1), overrides)
        assert next_trial == outcome(app.compose, overrides), overrides


def without_prefix(result: Any, overrides: list[str]) -> Any:
    """An error outcome without the ``<app> <overrides>: `` that App.compose puts before Hydra's message,
    and with ``<overrides>`` where new_job names the job by the overrides it was given."""
    if isinstance(result[0], type) and issubclass(result[0], Exception):
        given = " ".join(overrides)
        return result[0], result[1].removeprefix(f"test_composer {given}: ").replace(f"the job `{given}`", "the job `<overrides>`")
    return result


def test_a_worker_composes_a_sweep_over_values_once_and_each_sweep_apart(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    compose, full_composes = counting(app.compose)
    monkeypatch.setattr(app, "compose", compose)
    composer = app.queued_job_composer()
    for lr in (1, 2, 3):
        composer.compose([f"lr={lr}"], 1, f"outputs/{lr}")
    composer.compose(["lr=4"], 2, "outputs/4")
    assert full_composes[0] == 2


def test_a_worker_sees_a_config_file_edit_at_its_next_job(app: App) -> None:
    composer = app.queued_job_composer()
    assert composer.compose(["lr=1"], 1, "outputs/1").name == "run"
    config_file = app.config_directory / "config.yaml"
    config_file.write_text(config_file.read_text().replace("name: run", "name: fixed"))
    assert composer.compose(["lr=2"], 1, "outputs/2").name == "fixed"


@pytest.mark.parametrize("overrides", [overrides for sweep in VALUE_SWEEPS.values() for overrides in sweep], ids=str)
def test_task_data_is_the_plain_task_config(app: App, overrides: list[str]) -> None:
    config = app.compose(overrides)
    config.stamp = "now"  # a resolver of the time: the same in both reads
    assert task_data(config) == plain(task_config(config))


class Colour(enum.Enum):
    RED = 1


@dataclasses.dataclass
class Typed:
    colour: Colour = Colour.RED
    size: int = 3
    unset: Any = "???"


PLAIN_CONFIGS = {
    "values, nodes, lists": ({"lr": 0.1, "model": {"_target_": "m.M", "layers": [1, {"w": 2}]}, "top": [1, 2], "none": None}, False),
    "a typed node with an enum and a missing value": ({"typed": Typed(), "missing": "???"}, False),
    "an interpolation": ({"lr": 0.1, "copy": "${lr}", "nested": {"up": "${..lr}"}}, True),
    "an escaped interpolation": ({"text": "\\${not_a_key}"}, True),
    "an interpolation in a list": ({"lr": 2, "items": [1, "${lr}"]}, True),
}


@pytest.mark.parametrize("content, interpolates", PLAIN_CONFIGS.values(), ids=list(PLAIN_CONFIGS))
def test_task_data_reads_a_config_without_interpolations_as_it_stands_and_resolves_one_with_them(
    content: dict[str, Any], interpolates: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = OmegaConf.create({**content, "hydra": {"job": {"name": "x"}, "runtime": {"choices": {"a": "b"}}}})
    expected = plain(task_config(config))
    masked_copies = []
    masked_copy = OmegaConf.masked_copy
    monkeypatch.setattr(OmegaConf, "masked_copy", lambda *args: masked_copies.append(args) or masked_copy(*args))
    assert task_data(config) == expected
    assert bool(masked_copies) == interpolates, "only a config with interpolations is copied to be resolved"
    assert "hydra" not in expected and (expected.get("typed") is None or expected["typed"]["colour"] == "RED")


def test_the_task_config_is_a_copy_without_the_hydra_node_as_hydra_hands_it_to_the_task() -> None:
    config = OmegaConf.create({"lr": None, "model": {"depth": 3, "name": "${model.depth}"}, "hydra": {"job": {"name": None}}})
    OmegaConf.set_struct(config, True)
    task = task_config(config)
    assert plain(task) == {"lr": None, "model": {"depth": 3, "name": 3}} and OmegaConf.is_struct(task)
    task.model.depth = 4
    assert config.model.depth == 3 and "hydra" in config, "a copy: the config is as it was"
    no_hydra = OmegaConf.create({"lr": None, "model": {"depth": 3}})
    assert plain(task_config(no_hydra)) == plain(no_hydra), "without a hydra node, None stays None"


def test_task_data_resolves_no_interpolation_into_the_hydra_node_as_the_task_config_does() -> None:
    config = OmegaConf.create({"name": "${hydra.job.name}", "hydra": {"job": {"name": "x"}}})
    with pytest.raises(InterpolationKeyError):
        plain(task_config(config))
    with pytest.raises(InterpolationKeyError):
        task_data(config)


def _made_in_a_forked_process(prepared: JobConfig, overrides: list[str]) -> tuple[Any, int]:
    """The outcome of ``prepared.make()`` called in a forked process (pickled back), and how many full configs it copied there."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        copies, deepcopy = [0], copy.deepcopy

        def counted(value: Any, *args: Any, **kwargs: Any) -> Any:
            copies[0] += isinstance(value, DictConfig) and "hydra" in value
            return deepcopy(value, *args, **kwargs)

        try:
            copy.deepcopy = counted
            try:
                made: Any = prepared.make()
            except Exception as error:  # noqa: BLE001 - outcome() compares the error
                made = error
            copy.deepcopy = deepcopy
            os.write(write_end, pickle.dumps((outcome(lambda _: _returned(made), overrides), copies[0])))
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        result: tuple[Any, int] = pickle.loads(pipe.read())
    os.waitpid(pid, 0)
    return result


def _returned(made: Any) -> DictConfig:
    if isinstance(made, Exception):
        raise made
    return made  # type: ignore[no-any-return]


def test_a_job_process_sets_its_values_on_the_base_config_it_owns_after_the_fork(app: App) -> None:
    composer = app.queued_job_composer()
    sweep = VALUE_SWEEPS["top-level values"]
    for index, overrides in enumerate(sweep):
        run_dir = f"outputs/{index}"
        prepared = composer.prepare(overrides, 1, run_dir)
        assert (prepared.composed is None) == (index > 0), "only a shape's first job is composed before the fork"
        made, copies = _made_in_a_forked_process(prepared, overrides)
        assert made == outcome(app.compose, [*overrides, format_override("hydra.run.dir", run_dir)]), overrides
        assert index == 0 or copies == 0, "a job process copies no config"
    again = outcome(lambda overrides: composer.compose(overrides, 1, "outputs/1"), sweep[1])
    assert again == outcome(app.compose, [*sweep[1], format_override("hydra.run.dir", "outputs/1")]), "the worker's base config is as it was"


def test_callbacks_are_instantiated_once_per_callbacks_config_and_for_every_job_when_interpolated(app: App) -> None:
    plain = ["+hydra.callbacks.probe._target_=collections.OrderedDict", "+hydra.callbacks.probe.width=3"]
    first, again = app.callbacks(app.compose(["lr=1", *plain])), app.callbacks(app.compose(["lr=2", *plain]))
    assert first is again and first.callbacks[-1] == {"width": 3}, "one instance for every job of the same callbacks"
    assert app.callbacks(app.compose(["lr=1", "+hydra.callbacks.probe._target_=collections.OrderedDict"])) is not first
    interpolated = ["+hydra.callbacks.probe._target_=collections.OrderedDict", "+hydra.callbacks.probe.lr=${lr}"]
    one, other = app.callbacks(app.compose(["lr=1", *interpolated])), app.callbacks(app.compose(["lr=2", *interpolated]))
    assert (one.callbacks[-1], other.callbacks[-1]) == ({"lr": 1}, {"lr": 2}), "an interpolated callback is made for each job"


def test_the_apps_settings_are_composed_once_until_a_config_file_changes(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    compose, full_composes = counting(app.compose)
    monkeypatch.setattr(app, "compose", compose)
    first = app.settings()
    first.heartbeat_seconds = 99
    assert app.settings().heartbeat_seconds == 10 and full_composes[0] == 1, "composed once; each caller gets a copy of its own"
    config_file = app.config_directory / "config.yaml"
    config_file.write_text(config_file.read_text() + "hyperspace:\n  heartbeat_seconds: 3\n")
    assert app.settings().heartbeat_seconds == 3 and full_composes[0] == 2
