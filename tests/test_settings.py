"""The study's own ``hyperspace`` settings hold wherever ``- hyperspace`` sits in its defaults list."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import run_app, stored_runs
from omegaconf import OmegaConf

from hyperspace_hydra import HyperspaceError
from hyperspace_hydra.settings import CaptureMode, Direction, HyperspaceSettings, effective_settings

STUDY_APP = """\
import hydra


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):
    return {"score": cfg.x, "loss": -cfg.x}


if __name__ == "__main__":
    main()
"""

DEFAULTS = {
    "after _self_": "defaults:\n  - _self_\n  - hyperspace\n",
    "before _self_": "defaults:\n  - hyperspace\n  - _self_\n",
}


def scratch_study(root: Path, defaults: str, settings: str = "  direction: maximize\n  objective: score\n") -> Path:
    """A plain ``@hydra.main`` study written from scratch: ``python -m app`` returns ``{score: x, loss: -x}``."""
    root.mkdir()
    (root / "app.py").write_text(STUDY_APP)
    (root / "conf").mkdir()
    (root / "conf" / "config.yaml").write_text(f"{defaults}\nx: 3.0\n\nhyperspace:\n{settings}")
    return root


def test_unset_settings_take_the_defaults_and_set_ones_are_checked() -> None:
    composed = OmegaConf.create({"x": "y.db", "hyperspace": {"store": "sqlite:///${x}", "direction": "maximize", "capture": "???"}})
    assert effective_settings(composed) == HyperspaceSettings(store="sqlite:///y.db", direction=Direction.maximize, capture=CaptureMode.fd)
    assert effective_settings({"hyperspace": {"heartbeat_seconds": "???"}}) == HyperspaceSettings()
    assert effective_settings({}) == HyperspaceSettings(), "a study without a hyperspace node gets the defaults"


def test_each_reader_gets_its_own_settings_and_a_bad_node_fails_every_time() -> None:
    """Settings are worked out once per node (a job reads them several times): the copies stay apart."""
    node = {"hyperspace": {"allowed_targets": ["mine"], "direction": "maximize"}}
    first = effective_settings(node)
    first.allowed_targets.append("changed")
    first.direction = Direction.minimize
    assert effective_settings(node) == HyperspaceSettings(allowed_targets=["mine"], direction=Direction.maximize)
    assert effective_settings({"hyperspace": {"direction": "minimize"}}).direction == Direction.minimize
    for _ in range(2):
        with pytest.raises(HyperspaceError, match="hyperspace.directon is not a setting"):
            effective_settings({"hyperspace": {"directon": "maximize"}})


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"directon": "maximize"}, "hyperspace.directon is not a setting; the settings are store, objective, direction"),
        ({"direction": "maximise"}, "hyperspace.direction: Invalid value 'maximise', expected one of [minimize, maximize]"),
        ({"heartbeat_seconds": "often"}, "hyperspace.heartbeat_seconds: Value 'often' of type 'str' could not be converted to Float"),
        ({"heartbeat_seconds": 60}, "hyperspace.heartbeat_seconds must lie in (0, 30], not 60"),
        ({"heartbeat_seconds": 0}, "hyperspace.heartbeat_seconds must lie in (0, 30], not 0"),
    ],
)
def test_a_bad_setting_is_one_clear_error(node: dict, message: str) -> None:
    with pytest.raises(HyperspaceError) as raised:
        effective_settings({"hyperspace": node})
    assert message in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("position", list(DEFAULTS))
def test_the_studys_settings_are_recorded_and_shown_wherever_hyperspace_sits(tmp_path: Path, position: str) -> None:
    study = scratch_study(tmp_path / "study", DEFAULTS[position], "  direction: maximize\n  objective: score\n  capture: sys\n")
    shown = run_app(study, "app", "--cfg", "job")
    assert "direction: maximize" in shown.stdout and "objective: score" in shown.stdout and "capture: sys" in shown.stdout, shown.stdout
    assert "heartbeat_seconds: ???" in shown.stdout, "a setting the study leaves unset shows as ???"
    assert run_app(study, "app").returncode == 0
    overridden = run_app(study, "app", "hyperspace.direction=minimize", "hyperspace.objective=loss")
    assert overridden.returncode == 0, overridden.stderr
    own, by_override = stored_runs(study)
    assert own["config"]["hyperspace"] == {"store": None, "objective": "score", "direction": "maximize", "capture": "sys", "heartbeat_seconds": 10.0, "allowed_targets": []}
    assert own["objective"] == 3.0
    assert by_override["config"]["hyperspace"]["direction"] == "minimize" and by_override["objective"] == -3.0, "the command line wins"


@pytest.mark.parametrize("position", list(DEFAULTS))
def test_a_search_maximises_what_the_study_says_to_maximise(tmp_path: Path, position: str) -> None:
    study = scratch_study(tmp_path / "study", DEFAULTS[position])
    searched = run_app(study, "app", "--multirun", "hydra/sweeper=hyperspace", "x=interval(0, 10)", "hydra.sweeper.n_trials=4", "hydra.sweeper.seed=3")
    assert searched.returncode == 0, searched.stderr
    best = float(re.search(r"Best of 4 trials: (\S+)", searched.stdout).group(1))
    objectives = [run["objective"] for run in stored_runs(study)]
    assert len(set(objectives)) == 4 and best == pytest.approx(max(objectives), rel=1e-5)


@pytest.mark.parametrize("position", list(DEFAULTS))
@pytest.mark.parametrize(("settings", "message"), [("  directon: maximize\n", "hyperspace.directon is not a setting"), ("  direction: maximise\n", "hyperspace.direction: Invalid value 'maximise'")])
def test_a_typo_in_the_studys_settings_stops_the_run_in_one_line(tmp_path: Path, position: str, settings: str, message: str) -> None:
    study = scratch_study(tmp_path / "study", DEFAULTS[position], settings)
    finished = run_app(study, "app")
    assert finished.returncode == 2 and finished.stderr.startswith(f"error: {message}"), finished.stderr
    assert len(finished.stderr.splitlines()) == 1, "one line, no traceback"
    assert not (study / ".hyperspace").exists(), "nothing recorded"
