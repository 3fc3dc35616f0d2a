"""Hydra finds our plugins after a normal install and after the editable install the setup script makes."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from conftest import PROBE_STUDY, REPO

DISCOVERY_PROBE = f"""
import hydra_plugins.hyperspace_hydra_plugins as plugins, hyperspace_hydra
from hydra import compose, initialize_config_dir
from hyperspace_hydra.settings import effective_settings
with initialize_config_dir(config_dir={str(PROBE_STUDY / "conf")!r}, version_base="1.3"):
    config = compose("config", return_hydra_config=True)
print(plugins.__path__[0])
print(hyperspace_hydra.__file__)
print(config.hydra.callbacks.hyperspace._target_, effective_settings(config).direction)
"""


def _probe(env: dict[str, str], *python_flags: str, cwd: Path) -> list[str]:
    finished = subprocess.run([sys.executable, *python_flags, "-c", DISCOVERY_PROBE], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    return finished.stdout.splitlines()


def test_the_editable_install_is_found_by_hydra(tmp_path: Path) -> None:
    plugin_dir, library, registered = _probe(dict(os.environ), cwd=tmp_path)
    assert Path(plugin_dir) == REPO / "hydra_plugins" / "hyperspace_hydra_plugins"
    assert Path(library).is_relative_to(REPO)
    assert registered == "hyperspace_hydra.tracking.RecordingCallback Direction.minimize"


def test_a_normal_install_is_found_by_hydra(tmp_path: Path) -> None:
    target = tmp_path / "installed"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    ui = target / "hyperspace_hydra" / "ui"
    assert {"runs.html", "run.html", "queue.html"} <= {path.name for path in (ui / "templates").iterdir()}, "hyperspace ui's templates"
    assert {"ui.js", "ui.css"} <= {path.name for path in (ui / "static").iterdir()}, "and its script and style"
    metadata = next(target.glob("hyperspace_hydra-*.dist-info")).joinpath("METADATA").read_text()
    assert "Requires-Dist: hydra-core" in metadata and 'Requires-Dist: starlette>=0.37; extra == "ui"' in metadata, "requirements and extras survive"
    # -S: no site-packages processing, so the editable install's .pth entry is not on the path;
    # the dependencies come from the virtual environment's site-packages, our code only from target.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]])}
    plugin_dir, library, registered = _probe(env, "-S", cwd=tmp_path)
    assert Path(plugin_dir).is_relative_to(target) and Path(library).is_relative_to(target)
    assert registered == "hyperspace_hydra.tracking.RecordingCallback Direction.minimize"
