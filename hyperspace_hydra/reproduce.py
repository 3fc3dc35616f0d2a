"""The shell commands that run a recorded run again exactly: same code, same overrides."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def reproduce_commands(run: Mapping[str, Any]) -> list[str]:
    """Commands to check out the run's code (applying its uncommitted diff) and run it with its overrides.

    Untracked files are not in git: they are listed in a comment. Runs outside a git
    work tree get only the run command.
    """
    code = run.get("code_version") or {}
    commands = []
    if code.get("commit"):
        commands += [f"cd {shlex.quote(code['repository'])}", f"git checkout {code['commit']}"]
        if code.get("diff"):
            commands.append(f"git apply <<'HYPERSPACE_DIFF'\n{code['diff'].rstrip()}\nHYPERSPACE_DIFF")
        if code.get("untracked"):
            commands.append(f"# untracked then, not in git: {' '.join(code['untracked'])}")
    study_dir = (run.get("meta") or {}).get("cwd") or str(Path((run.get("experiment") or {}).get("base_dir", ".")).parent)
    app = (run.get("experiment") or {}).get("name", "study.run")
    overrides = " ".join(shlex.quote(item) for item in run.get("overrides") or [])
    commands += [f"cd {shlex.quote(study_dir)}", f"python -m {app} {overrides}".rstrip()]
    return commands
