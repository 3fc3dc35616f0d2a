"""What makes a run reproducible beyond its config: host, packages, code version.

Each is gathered once per process and directory: the code a process runs is the code
it imported, so a later edit of the working tree must not be attributed to it, and
host probes such as ``nvidia-smi`` cost too much to repeat for every run.
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import subprocess
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
    from sacred.host_info import get_host_info

    return get_host_info()


@functools.cache
def package_versions() -> list[str]:
    """Every installed distribution as ``name==version``, sorted (Sacred's ``dependencies`` shape)."""
    versions = {
        f"{dist.metadata['Name']}=={dist.version}"
        for dist in importlib.metadata.distributions()
        if dist.metadata["Name"]
    }
    return sorted(versions, key=str.lower)


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
