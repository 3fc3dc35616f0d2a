"""A real, throwaway PostgreSQL server for tests: ``initdb`` in a temporary directory, run with ``pg_ctl``.

Uses the server binaries of Debian's ``postgresql`` package (``scripts/setup.sh`` installs it when
run as root). Debian's ``initdb`` refuses to run as root, so as root the server runs as the
``postgres`` system user the package creates.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

DATABASE = "hyperspace_test"
SUPERUSER = "postgres"
SYSTEM_USER = "postgres"
DEBIAN_VERSIONS = Path("/usr/lib/postgresql")


def find_bin_dir() -> Path:
    """The directory with ``initdb`` and ``pg_ctl``: the newest ``/usr/lib/postgresql/<version>/bin``, else PATH."""
    debian = [path for path in DEBIAN_VERSIONS.glob("*/bin") if (path / "initdb").exists() and (path / "pg_ctl").exists()]
    if debian:
        return max(debian, key=lambda path: tuple(int(part) for part in path.parent.name.split(".") if part.isdigit()))
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).resolve().parent
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or on PATH; "
        "install Debian's 'postgresql' package (apt-get install postgresql, or run scripts/setup.sh as root)"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresCluster:
    """A PostgreSQL server in a temporary directory, on 127.0.0.1 only, trusting every local connection.

    ``with PostgresCluster() as cluster:`` starts it and stops it (removing its files) at the end;
    ``cluster.uri`` points at its empty database ``hyperspace_test``.
    """

    def __init__(self) -> None:
        self.bin_dir = find_bin_dir()
        self.directory: Path | None = None
        self.port = 0

    @property
    def uri(self) -> str:
        """The URI of the database ``hyperspace_test``."""
        return self.uri_for(DATABASE)

    def uri_for(self, database: str) -> str:
        """The URI of ``database`` on this server, as the superuser."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresCluster:
        """Create the cluster in a new temporary directory, start the server and create ``hyperspace_test``."""
        self.directory = Path(tempfile.mkdtemp(prefix="hyperspace-postgres-", dir="/tmp"))
        try:
            self._give_to_server_user(self.directory)
            self.port = free_port()
            self._as_server_user("initdb", "-D", "data", "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync")
            self._configure()
            self._pg_ctl("start")
            self._run([str(self.bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, DATABASE])
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self, down_seconds: float = 0.0) -> None:
        """Restart the server on the same port, keeping its data (open connections are closed).

        With ``down_seconds`` the server stays stopped that long, so clients meet refused connections.
        """
        self._pg_ctl("stop", "-m", "fast")
        time.sleep(down_seconds)
        self._pg_ctl("start")

    def stop(self) -> None:
        """Stop the server if it runs and remove its directory; does nothing when already stopped."""
        if self.directory is None:
            return
        try:
            if (self.directory / "data" / "postmaster.pid").exists():
                self._pg_ctl("stop", "-m", "fast")
        finally:
            shutil.rmtree(self.directory)
            self.directory = None

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()

    def _configure(self) -> None:
        """Listen on 127.0.0.1:port and on a unix socket in the cluster's directory; skip fsync (throwaway data)."""
        settings = f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.directory}'\nfsync = off\n"
        with open(self.directory / "data" / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(settings)

    def _pg_ctl(self, action: str, *options: str) -> None:
        """Run ``pg_ctl action`` on the cluster and wait for it; the server logs to ``server.log``."""
        self._as_server_user("pg_ctl", action, "-w", "-D", "data", "-l", "server.log", *options)

    def _as_server_user(self, program: str, *args: str) -> None:
        """Run one of the server binaries in the cluster's directory, as ``postgres`` when we are root."""
        sudo = ["runuser", "-u", SYSTEM_USER, "--"] if os.geteuid() == 0 else []
        self._run([*sudo, str(self.bin_dir / program), *args])

    def _run(self, command: list[str]) -> None:
        """Run ``command`` in the cluster's directory; raise RuntimeError with its output (and the server log) on failure."""
        result = subprocess.run(command, cwd=self.directory, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log = self.directory / "server.log"
            server_log = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}{server_log}")

    @staticmethod
    def _give_to_server_user(directory: Path) -> None:
        """As root, hand ``directory`` to the ``postgres`` system user, which runs the server."""
        if os.geteuid() != 0:
            return
        try:
            user = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise RuntimeError(f"system user {SYSTEM_USER!r} not found; install Debian's 'postgresql' package, which creates it") from None
        os.chown(directory, user.pw_uid, user.pw_gid)
