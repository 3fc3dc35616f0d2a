"""What makes a run reproducible beyond its config: host, packages, code version.

Each is gathered once per process and directory: the code a process runs is the code
it imported, so a later edit of the working tree must not be attributed to it, and
host probes such as ``nvidia-smi`` cost too much to repeat for every run.

Host and packages are what Sacred records (``host``, ``experiment.dependencies``), gathered
here without importing Sacred or parsing every package's metadata: a recorded run starts
in about half the time (Sacred's package imports everything, pandas included).
"""

from __future__ import annotations

import functools
import inspect
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

from hyperspace_hydra.slurm.environment import execution_info

_GIT_TIMEOUT_SECONDS = 10


def host_info() -> dict[str, Any]:
    """Sacred's host information (hostname, OS, CPU, GPUs, Python version), gathered once per process.

    Plus, when known, ``slurm`` (the SLURM job this process runs in) and ``visible_gpus``
    (``CUDA_VISIBLE_DEVICES``), read at every call: a worker's job process is given its
    share of the worker's GPUs after the rest was gathered (see
    :func:`hyperspace_hydra.slurm.execution_info`).
    """
    return {**_sacred_host_info(), **execution_info()}


@functools.cache
def _sacred_host_info() -> dict[str, Any]:
    """What Sacred's ``get_host_info()`` returns: on Linux gathered as Sacred does, without importing it.

    Sacred gathers itself where it has been imported already (the study uses it: its
    ``SETTINGS.HOST_INFO`` and host-info getters may have been changed, and it costs nothing more),
    on other systems, and when ``/proc/cpuinfo`` cannot be read (Sacred then asks ``py-cpuinfo``).
    ``ENV`` is empty, as with Sacred's default ``SETTINGS.HOST_INFO.CAPTURED_ENV`` (no variables).
    """
    if "sacred" not in sys.modules and platform.system() == "Linux":
        gathered = linux_host_info()
        if gathered is not None:
            return gathered
    from sacred.host_info import get_host_info

    return get_host_info()  # type: ignore[no-any-return]


def linux_host_info() -> dict[str, Any] | None:
    """Sacred's default host information on Linux (see :func:`_sacred_host_info`); None when ``/proc/cpuinfo`` cannot be read."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_bytes().decode()
    except (OSError, UnicodeDecodeError):
        return None
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "os": [platform.system(), platform.platform()],
        "python_version": platform.python_version(),
        "cpu": _cpu_model(cpuinfo),
    }
    gpus = nvidia_gpus()
    if gpus is not None:
        info["gpus"] = gpus
    info["ENV"] = {}
    return info


_MODEL_NAME = re.compile(r"^\s*model name\s*:")


def _cpu_model(cpuinfo: str) -> str | None:
    """The first ``model name`` of ``/proc/cpuinfo``'s text, None without one (as Sacred reads it)."""
    for line in cpuinfo.split("\n"):
        if _MODEL_NAME.match(line):
            return _MODEL_NAME.sub("", line, count=1).strip()
    return None


def nvidia_gpus() -> dict[str, Any] | None:
    """Sacred's ``gpus``: the driver version and each GPU's model, memory (MiB) and persistence mode that
    ``nvidia-smi -q -x`` reports; None when there is no ``nvidia-smi`` or it fails."""
    try:
        xml = subprocess.check_output(["nvidia-smi", "-q", "-x"]).decode("utf-8", "replace")
    except (OSError, subprocess.CalledProcessError):
        return None
    from xml.etree import ElementTree

    gpu_info: dict[str, Any] = {"gpus": []}
    for child in ElementTree.fromstring(xml):
        if child.tag == "driver_version":
            gpu_info["driver_version"] = child.text
        if child.tag != "gpu":
            continue
        memory = _text(child, "fb_memory_usage", "total")
        if memory == "Insufficient Permissions":  # a Multi-Instance GPU (MIG): the memory of its first instance
            memory = _text(child, "mig_devices", "mig_device", "fb_memory_usage", "total")
        gpu_info["gpus"].append(
            {"model": _text(child, "product_name"), "total_memory": int(memory.split()[0]), "persistence_mode": _text(child, "persistence_mode") == "Enabled"}
        )
    return gpu_info


def _text(element: Any, *path: str) -> Any:
    """The text of the element at ``path`` below ``element`` (an AttributeError where one is missing, as in Sacred)."""
    for tag in path:
        element = element.find(tag)
    return element.text


@functools.cache
def package_versions() -> list[str]:
    """Every installed distribution as ``name==version``, sorted (Sacred's ``dependencies`` shape).

    The distributions ``importlib.metadata.distributions()`` finds, each named by its metadata's
    ``Name`` and ``Version``, read from the headers of its ``METADATA`` (or ``PKG-INFO``) file,
    not from its whole text (long descriptions included) through the email parser.
    """
    versions = set()
    for name, version in _distribution_headers():
        if name:
            versions.add(f"{name}=={version}")
    return sorted(versions, key=str.lower)


def _distribution_headers() -> Iterator[tuple[str | None, str | None]]:
    """``Name`` and ``Version`` of each distribution on ``sys.path``, where ``importlib.metadata`` looks.

    Directories are listed here; anything else it can read (a zip file, an ``.egg``, a finder
    of ``sys.meta_path`` of its own) is left to ``importlib.metadata``.
    """
    import importlib.machinery

    for entry in sys.path:
        directory = entry or "."
        if os.path.isdir(directory) and not directory.lower().endswith(".egg"):
            for child in _listing(directory):
                if child.lower().endswith((".dist-info", ".egg-info")):
                    headers = _metadata_headers(os.path.join(directory, child))
                    if headers is not None:
                        yield headers
        elif os.path.exists(directory):
            yield from _metadata_names(path=[entry])
    for finder in sys.meta_path:
        if finder is not importlib.machinery.PathFinder and hasattr(finder, "find_distributions"):
            yield from _metadata_names(finder=finder)


def _listing(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []


def _metadata_names(path: list[str] | None = None, finder: Any = None) -> Iterator[tuple[str | None, str | None]]:
    """Name and version of the distributions ``importlib.metadata`` finds on ``path``, or that ``finder`` finds."""
    import importlib.metadata

    found = finder.find_distributions(importlib.metadata.DistributionFinder.Context()) if finder else importlib.metadata.distributions(path=path or [])
    for dist in found:
        yield dist.metadata["Name"], dist.version


def _metadata_headers(info: str) -> tuple[str | None, str | None] | None:
    """``Name`` and ``Version`` of the ``.dist-info``/``.egg-info`` at ``info`` (an old ``.egg-info`` is a file
    itself), as the email parser reads them; None when it has no metadata to read."""
    for candidate in (os.path.join(info, "METADATA"), os.path.join(info, "PKG-INFO"), info):
        try:
            with open(candidate, encoding="utf-8") as metadata:
                return _name_and_version(metadata)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
            continue
    return None


def _name_and_version(lines: Iterator[str]) -> tuple[str | None, str | None]:
    """The first ``Name`` and ``Version`` headers (case-insensitive) of RFC 822 headers, read up to the first
    line that is not a header, each value as ``importlib.metadata`` gives it (continuation lines joined)."""
    headers: list[list[str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if headers:
                headers[-1][1] += line
            continue
        key, colon, value = line.partition(":")
        if not colon or not _HEADER_NAME.fullmatch(key):
            break
        if key:
            headers.append([key.lower(), value.lstrip(" \t")])
    return _header(headers, "name"), _header(headers, "version")


_HEADER_NAME = re.compile(r"[\041-\071\073-\176]*")


def _header(headers: list[list[str]], key: str) -> str | None:
    value = next((value.rstrip("\r\n") for name, value in headers if name == key), None)
    if value and "\n" in value:  # a folded value, re-indented as importlib.metadata does
        import textwrap

        return textwrap.dedent(" " * 8 + value)
    return value


@functools.cache
def code_version(directory: str) -> dict[str, Any]:
    """The git state of ``directory``: commit, dirty flag and, when dirty, the diff against HEAD.

    ``dirty`` also counts untracked files; their content is not in the diff, so the
    untracked paths are listed. Outside a git work tree every field is None.
    """
    root = _git(directory, "rev-parse", "--show-toplevel")
    if root is None:
        return {"repository": None, "commit": None, "dirty": None, "diff": None, "untracked": None}
    commit = _git(directory, "rev-parse", "HEAD")
    status = _git(directory, "status", "--porcelain") or ""
    dirty = bool(status.strip())
    untracked = [line[3:] for line in status.splitlines() if line.startswith("??")]
    diff = _git(directory, "diff", "HEAD") if dirty and commit else None
    return {"repository": root, "commit": commit, "dirty": dirty, "diff": diff, "untracked": untracked}


def _git(directory: str, *args: str) -> str | None:
    try:
        completed = subprocess.run(
            ["git", *args],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.strip() if args[0] != "diff" else completed.stdout


def source_directory(task_function: Callable[..., Any], fallback: Path | None = None) -> str:
    """The directory whose git state describes a study's code: that of its task function's file.

    Falls back to ``fallback`` (default: the current directory) for functions without a file
    on disk (built-ins, or a function a launcher pickled by value, whose file reads ``<dynamic-code>``).
    """
    path = defining_file(task_function)
    return str(Path(path).resolve().parent) if path is not None else str(fallback or Path.cwd())


def defining_file(function: Callable[..., Any]) -> str | None:
    """The existing file ``function`` is defined in, or None."""
    try:
        path = inspect.getfile(function)
    except TypeError:
        return None
    return path if Path(path).is_file() else None
