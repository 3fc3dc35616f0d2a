"""The ``_target_`` allowlist judges what a target resolves to, not its text."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from omegaconf import open_dict, read_write

from hyperspace_hydra.app import load_app
from hyperspace_hydra.targets import ALWAYS_ALLOWED, LOGGING_ALLOWED, refusal, target_refusal

TRUSTED_TASKS = """\
import functools
import os
from os import makedirs, system
from pathlib import Path

import lazy_outsider


def train(lr=0.1):
    return lr


@functools.lru_cache
def cached_train(lr=0.1):
    return lr


class Model:
    run = staticmethod(os.system)

    @classmethod
    def build(cls):
        return cls()

    @staticmethod
    def make():
        return Model()

    def fit(self):
        return self


model = Model()
print_later = functools.partial(print, "later")
"""

LAZY_OUTSIDER = """\
from pathlib import Path


def __getattr__(name):
    Path({evidence!r}).write_text(name)
    raise AttributeError(name)
"""


@pytest.fixture
def trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package ``trusted`` (the allowed one) whose module ``tasks`` imports code of other packages,
    and ``lazy_outsider``, a module outside it whose attribute lookups leave evidence; both removed afterwards."""
    (tmp_path / "trusted").mkdir()
    (tmp_path / "trusted" / "__init__.py").write_text("")
    (tmp_path / "trusted" / "tasks.py").write_text(TRUSTED_TASKS)
    (tmp_path / "trusted" / "broken.py").write_text("import not_installed\n")
    (tmp_path / "lazy_outsider.py").write_text(LAZY_OUTSIDER.format(evidence=str(tmp_path / "looked_up")))
    (tmp_path / "outsider.py").write_text(f"from pathlib import Path\nPath({str(tmp_path / 'imported')!r}).write_text('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [name for name in sys.modules if name.split(".")[0] in ("trusted", "lazy_outsider", "outsider")]:
        del sys.modules[name]


@pytest.mark.parametrize(
    "target",
    ["trusted.tasks.train", "trusted.tasks.cached_train", "trusted.tasks.Model", "trusted.tasks.Model.build", "trusted.tasks.Model.make", "trusted.tasks.model.fit", "trusted.tasks.model"],
)
def test_what_the_allowed_package_defines_is_allowed(trusted: Path, target: str) -> None:
    assert target_refusal(target, ["trusted"]) is None


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("trusted.tasks.os.makedirs", "resolves through trusted.tasks.os, the module os, outside the allowed packages"),
        ("trusted.tasks.Path", "resolves through trusted.tasks.Path, defined in pathlib, outside"),
        ("trusted.tasks.makedirs", "resolves through trusted.tasks.makedirs, defined in os, outside"),
        ("trusted.tasks.system", "resolves through trusted.tasks.system, defined in posix, outside"),
        ("trusted.tasks.Model.run", "resolves through trusted.tasks.Model.run, defined in posix, outside"),
        ("trusted.tasks.print_later", "resolves through trusted.tasks.print_later, defined in functools, outside"),
        ("trusted.tasks.Path.home", "resolves through trusted.tasks.Path, defined in pathlib, outside"),
    ],
)
def test_a_path_through_the_allowed_package_to_code_of_another_is_refused(trusted: Path, target: str, reason: str) -> None:
    assert reason in target_refusal(target, ["trusted"])


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("trusted.nope.train", "does not resolve: trusted has no attribute or submodule 'nope'"),
        ("trusted.broken.train", "does not resolve: cannot import trusted.broken: ModuleNotFoundError: No module named 'not_installed'"),
        ("trusted.tasks.Model.nope", "does not resolve: trusted.tasks.Model has no attribute 'nope'"),
        ("trusted..train", "does not resolve: 'trusted..train' is not a dotted path"),
        (3, "is not a dotted path"),
    ],
)
def test_a_target_that_does_not_resolve_is_refused_with_the_reason(trusted: Path, target: object, reason: str) -> None:
    assert target_refusal(target, ["trusted"]) == reason


def test_nothing_outside_the_allowed_packages_is_imported_or_looked_up(trusted: Path) -> None:
    assert target_refusal("outsider.anything", ["trusted"]) == "is outside the allowed packages"
    assert not (trusted / "imported").exists() and "outsider" not in sys.modules
    assert "the module lazy_outsider" in target_refusal("trusted.tasks.lazy_outsider.anything", ["trusted"])
    assert not (trusted / "looked_up").exists(), "the walk stops at the refused step"


def test_the_packages_always_allowed_are_judged_by_the_same_rule() -> None:
    assert target_refusal("hydra._internal.core_plugins.basic_launcher.BasicLauncher", ALWAYS_ALLOWED) is None
    assert target_refusal("hyperspace_hydra.tracking.RecordingCallback", ALWAYS_ALLOWED) is None
    assert "defined in hydra.core.utils" in target_refusal("hydra._internal.core_plugins.basic_launcher.run_job", ALWAYS_ALLOWED)
    assert "the module os" in target_refusal("hyperspace_hydra.settings.os.makedirs", ALWAYS_ALLOWED)
    assert "the module json" in target_refusal("hyperspace_hydra.config.json.loads", ALWAYS_ALLOWED)
    assert target_refusal("logging.handlers.RotatingFileHandler", (*ALWAYS_ALLOWED, *LOGGING_ALLOWED)) is None


def test_callbacks_and_logging_factories_of_a_job_are_resolved_too(probe_study: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(probe_study)
    monkeypatch.syspath_prepend(str(probe_study))
    app = load_app("probe.run")
    marker = ["+hydra.callbacks.marker._target_=probe.callbacks.MultirunEndMarker", "+hydra.callbacks.marker.path=x"]
    allowed = ("probe", *ALWAYS_ALLOWED)
    assert refusal(app.compose(marker), allowed) is None, "the study's own callback and Hydra's logging handlers pass"
    config = app.compose([*marker, "+hydra.callbacks.evil._target_=probe.run.os.makedirs"])
    formatters = config.hydra.job_logging.formatters
    with read_write(formatters), open_dict(formatters):
        formatters.evil = {"()": "probe.run.logging.os.system"}
    refused = refusal(config, allowed)
    assert "hydra.callbacks.evil._target_='probe.run.os.makedirs' resolves through probe.run.os, the module os" in refused
    assert "hydra.job_logging.formatters.evil.()='probe.run.logging.os.system' resolves through probe.run.logging.os, the module os" in refused
    for name in [name for name in sys.modules if name.split(".")[0] == "probe"]:
        del sys.modules[name]
