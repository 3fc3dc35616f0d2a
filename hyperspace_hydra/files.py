"""Files the commands write for the user (reports, plots): whole or not at all."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from hyperspace_hydra.errors import HyperspaceError


def write_whole(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (UTF-8) through a temporary file in the same directory renamed over it, so that
    ``path`` holds the whole text or what it held before (Ctrl-C, a full disk). Raises :class:`HyperspaceError`
    in one line when it cannot be written (a missing directory, no permission, no space)."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask decides, as for any new file
    except OSError as error:
        raise HyperspaceError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise HyperspaceError(f"cannot write {path}: {error.strerror or error}; nothing was written") from None
        raise
