"""A run's host and package information is what Sacred would record, gathered without importing Sacred."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import clean_env

from hyperspace_hydra import provenance

NVIDIA_SMI_XML = """<?xml version="1.0" ?>
<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">
<nvidia_smi_log>
    <timestamp>Mon Jan  1 00:00:00 2024</timestamp>
    <driver_version>535.104.05</driver_version>
    <cuda_version>12.2</cuda_version>
    <attached_gpus>2</attached_gpus>
    <gpu id="00000000:01:00.0">
        <product_name>NVIDIA A100-SXM4-40GB</product_name>
        <persistence_mode>Enabled</persistence_mode>
        <fb_memory_usage>
            <total>40960 MiB</total>
            <used>4 MiB</used>
        </fb_memory_usage>
    </gpu>
    <gpu id="00000000:02:00.0">
        <product_name>NVIDIA A100-SXM4-80GB</product_name>
        <persistence_mode>Disabled</persistence_mode>
        <fb_memory_usage>
            <total>Insufficient Permissions</total>
        </fb_memory_usage>
        <mig_devices>
            <mig_device>
                <fb_memory_usage>
                    <total>9728 MiB</total>
                </fb_memory_usage>
            </mig_device>
        </mig_devices>
    </gpu>
</nvidia_smi_log>
"""

linux_only = pytest.mark.skipif(platform.system() != "Linux", reason="elsewhere Sacred gathers the host information itself")


@linux_only
def test_the_host_information_is_what_sacred_gathers_here() -> None:
    from sacred.host_info import get_host_info

    gathered = provenance.linux_host_info()
    assert gathered == get_host_info() and list(gathered or {}) == list(get_host_info()), "same fields, values and order"
    assert gathered is not None and gathered["cpu"] and gathered["ENV"] == {}


def fake_nvidia_smi(directory: Path, exit_status: int = 0) -> str:
    """A PATH whose ``nvidia-smi`` prints :data:`NVIDIA_SMI_XML` (and exits with ``exit_status``)."""
    directory.mkdir()
    (directory / "report.xml").write_text(NVIDIA_SMI_XML)
    script = directory / "nvidia-smi"
    script.write_text(f'#!/bin/sh\n[ "$*" = "-q -x" ] || exit 2\ncat "{directory}/report.xml"\nexit {exit_status}\n')
    script.chmod(0o755)
    return f"{directory}{os.pathsep}{os.environ['PATH']}"


@linux_only
def test_gpus_are_read_from_nvidia_smi_as_sacred_reads_them_mig_instances_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sacred.host_info import get_host_info

    monkeypatch.setenv("PATH", fake_nvidia_smi(tmp_path / "bin"))
    gathered = provenance.linux_host_info()
    assert gathered is not None and gathered == get_host_info()
    assert gathered["gpus"] == {
        "driver_version": "535.104.05",
        "gpus": [
            {"model": "NVIDIA A100-SXM4-40GB", "total_memory": 40960, "persistence_mode": True},
            {"model": "NVIDIA A100-SXM4-80GB", "total_memory": 9728, "persistence_mode": False},
        ],
    }


@linux_only
def test_without_a_working_nvidia_smi_there_is_no_gpus_field_as_with_sacred(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sacred.host_info import get_host_info

    monkeypatch.setenv("PATH", fake_nvidia_smi(tmp_path / "bin", exit_status=1))
    gathered = provenance.linux_host_info()
    assert gathered is not None and "gpus" not in gathered and gathered == get_host_info()
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert provenance.nvidia_gpus() is None


def importlib_versions() -> list[str]:
    """What ``package_versions`` stored before it read headers itself: each distribution's metadata, parsed whole."""
    versions = {f"{dist.metadata['Name']}=={dist.version}" for dist in importlib.metadata.distributions() if dist.metadata["Name"]}
    return sorted(versions, key=str.lower)


def test_package_versions_are_those_importlib_metadata_reads() -> None:
    assert provenance.package_versions() == importlib_versions()
    assert any(version.startswith("hyperspace-hydra==") for version in provenance.package_versions()), "the editable install"


def test_package_versions_read_every_kind_of_metadata_as_importlib_metadata_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    layouts = {
        "Plain_Name-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: Plain_Name\nVersion: 1.0\n\nName: not-this\n",
        "folded-2.0.DIST-INFO/METADATA": "Metadata-Version: 2.1\nname: folded\n  continued \nVERSION: 2.0 \nName: second\n",
        "old-3.0-py3.11.egg-info/PKG-INFO": "Metadata-Version: 1.0\nName: old\nVersion: 3.0\n",
        "oldest-4.0.egg-info": "Metadata-Version: 1.0\nName: oldest\nVersion: 4.0\n",
        "nameless-5.0.dist-info/METADATA": "Metadata-Version: 2.1\nVersion: 5.0\n",
        "unversioned-6.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: unversioned\n",
        "late-7.0.dist-info/METADATA": "Metadata-Version: 2.1\nnot a header\nName: late\nVersion: 7.0\n",
        "crlf-8.0.dist-info/METADATA": "Metadata-Version: 2.1\r\nName: crlf\r\nVersion: 8.0\r\n",
        "empty-9.0.dist-info/RECORD": "",
    }
    for path, text in layouts.items():
        (site / path).parent.mkdir(parents=True, exist_ok=True)
        (site / path).write_text(text, newline="")
    with zipfile.ZipFile(tmp_path / "zipped.zip", "w") as zipped:  # a zip on sys.path is read by importlib.metadata
        zipped.writestr("zipped-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: zipped\nVersion: 1.0\n")
    monkeypatch.setattr(sys, "path", [str(site), str(tmp_path / "missing"), str(tmp_path / "zipped.zip")])
    provenance.package_versions.cache_clear()
    try:
        found = provenance.package_versions()
    finally:
        provenance.package_versions.cache_clear()
    assert found == ["      folded\ncontinued ==2.0 ", "crlf==8.0", "old==3.0", "oldest==4.0", "Plain_Name==1.0", "unversioned==None", "zipped==1.0"]
    try:
        expected = importlib_versions()
    except TypeError:  # an info directory without metadata stops importlib.metadata (Python 3.11); here it is left out
        (site / "empty-9.0.dist-info").rename(tmp_path / "empty")
        expected = importlib_versions()
    assert found == expected


def test_a_recorded_run_imports_neither_sacred_nor_pandas(probe_study: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "probe.run"], cwd=probe_study, env=clean_env(), capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in finished.stderr.splitlines() if line.startswith("import time:")}
    assert "hyperspace_hydra.recorder" in imported and "hyperspace_hydra.provenance" in imported, "the run was recorded"
    assert not {name for name in imported if name.split(".")[0] in ("sacred", "pandas")}
