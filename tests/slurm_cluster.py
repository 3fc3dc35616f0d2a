"""A real, throwaway single-node SLURM cluster for tests, with accounting.

Everything lives in one temporary directory: a MUNGE daemon with its own key and socket, a
MariaDB server on a private socket and port (the accounting database), ``slurmdbd``,
``slurmctld`` and ``slurmd``, all as root, with no systemd and no cgroups. The binaries come
from Debian's ``slurm-wlm``, ``slurmdbd``, ``munge`` and ``mariadb-server`` packages
(``scripts/setup.sh`` installs them when run as root).

Accounting matters: without it submitit cannot learn that a cancelled or killed job ended
and waits for it forever. Every client (``sbatch``, ``squeue``, ``sacct``, ``scancel``, also
when submitit runs them) needs ``SLURM_CONF``; ``cluster.environment()`` gives it.

Two partitions over the node: ``debug`` (the default) and ``long``. The node announces 8 CPUs (the machine may have fewer; ``SlurmdParameters=config_overrides``)
so that several one-CPU jobs run at once, and two fake GPUs (``gres.conf`` over two empty
files), so that SLURM sets ``CUDA_VISIBLE_DEVICES`` for jobs that ask for a GPU.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

PARTITION = "debug"
OTHER_PARTITION = "long"
NODE_CPUS = 8
NODE_GPUS = 2
KILL_WAIT = 5
"""Seconds SLURM waits between SIGTERM and SIGKILL when it cancels a job."""
REQUIRED_PROGRAMS = ("munged", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd", "sbatch", "sacct")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def missing_programs() -> list[str]:
    """The programs a cluster needs that are not installed (searched on PATH and in /usr/sbin)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])
    return [program for program in REQUIRED_PROGRAMS if shutil.which(program, path=path) is None]


class SlurmCluster:
    """A one-node SLURM cluster in a temporary directory; ``with SlurmCluster() as cluster:`` starts and stops it."""

    def __init__(self) -> None:
        self.directory: Path | None = None
        self.node = socket.gethostname().split(".")[0]
        self._pid_files: list[Path] = []
        self._mariadb: subprocess.Popen | None = None

    @property
    def conf(self) -> Path:
        """The cluster's ``slurm.conf``."""
        return self._path("slurm.conf")

    def environment(self) -> dict[str, str]:
        """``os.environ`` plus ``SLURM_CONF`` (and /usr/sbin on PATH): what every SLURM client needs."""
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": f"{os.environ.get('PATH', '')}:/usr/sbin"}

    def start(self) -> SlurmCluster:
        """Start MUNGE, MariaDB, slurmdbd, slurmctld and slurmd; return once the node takes jobs."""
        missing = missing_programs()
        if missing:
            raise RuntimeError(
                f"SLURM test cluster: missing {', '.join(missing)}; install Debian's slurm-wlm, slurmdbd, munge and "
                "mariadb-server packages (or run scripts/setup.sh as root)"
            )
        self.directory = Path(tempfile.mkdtemp(prefix="hyperspace-slurm-", dir="/tmp"))
        try:
            for part in ("state", "spool", "mysql", "log"):
                self._path(part).mkdir()
            self._start_munge()
            self._start_mariadb()
            self._write_configs()
            self._start_daemon("slurmdbd", "slurmdbd.pid")
            self._wait_for(lambda: self._port_open(self._ports["dbd"]), "slurmdbd to listen")
            self._start_daemon("slurmctld", "slurmctld.pid")
            self._start_daemon("slurmd", "slurmd.pid")
            self._wait_for(self._node_idle, "the node to become idle")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every daemon (SIGTERM, then SIGKILL) and remove the directory; nothing when already stopped."""
        if self.directory is None:
            return
        with contextlib.suppress(OSError, subprocess.SubprocessError, RuntimeError):
            subprocess.run(["scancel", "--full", "--user", "root"], env=self.environment(), capture_output=True, timeout=10, check=False)
            self._wait_for(self._queue_empty, "the cancelled jobs to end", timeout=KILL_WAIT + 10)  # else slurmstepd outlives slurmd
        self._stop_daemons()
        if self._mariadb is not None:  # throwaway data: no clean shutdown (MariaDB's takes ~10 s)
            self._mariadb.kill()
            self._mariadb.wait()
            self._mariadb = None
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = None
        self._pid_files = []

    def run(self, *command: str, timeout: float = 30) -> str:
        """Run a SLURM client command (``squeue``, ``scontrol``...) against this cluster and return its stdout."""
        result = subprocess.run(list(command), env=self.environment(), capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()

    # -- daemons -------------------------------------------------------------------------------

    def _start_munge(self) -> None:
        """A MUNGE daemon with a fresh key on a private socket."""
        key = self._path("munge.key")
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._launch(
            "munged", "--force", f"--key-file={key}", f"--socket={self._path('munge.socket')}",
            f"--pid-file={self._path('munged.pid')}", f"--log-file={self._path('log/munged.log')}",
            f"--seed-file={self._path('munged.seed')}",
        )
        self._pid_files.append(self._path("munged.pid"))
        self._wait_for(lambda: self._path("munge.socket").exists(), "munged's socket")

    def _start_mariadb(self) -> None:
        """A MariaDB server on 127.0.0.1 and a private socket, with grant tables off (throwaway accounting data)."""
        datadir = self._path("mysql")
        self._check(["mariadb-install-db", f"--datadir={datadir}", "--user=root", "--auth-root-authentication-method=normal",
                     "--skip-test-db"], "mariadb-install-db")
        self._ports = {"mysql": free_port(), "dbd": free_port(), "ctld": free_port(), "slurmd": free_port()}
        with open(self._path("log/mariadb.log"), "ab") as log:
            self._mariadb = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={datadir}", f"--socket={self._path('mysql.sock')}",
                 f"--port={self._ports['mysql']}", "--bind-address=127.0.0.1", "--user=root",
                 "--skip-grant-tables", "--innodb-flush-log-at-trx-commit=0", "--skip-log-bin"],
                stdout=log, stderr=log, start_new_session=True,
            )
        self._wait_for(lambda: self._port_open(self._ports["mysql"]), "MariaDB to listen")

    def _start_daemon(self, program: str, pid_name: str) -> None:
        """Start a SLURM daemon (it forks into the background and writes its pid file)."""
        self._pid_files.append(self._path(pid_name))
        self._launch(program)
        self._wait_for(lambda: self._path(pid_name).exists(), f"{program}'s pid file")

    def _launch(self, program: str, *args: str) -> None:
        """Run a daemon that forks itself into the background; raise with its output when it fails to start."""
        self._check([program, *args], program)

    def _check(self, command: list[str], name: str) -> None:
        """Run ``command`` with the cluster's environment; RuntimeError with its output on failure."""
        result = subprocess.run(command, env=self.environment(), capture_output=True, text=True, timeout=120, cwd=self.directory)
        if result.returncode != 0:
            raise RuntimeError(f"{name} failed ({result.returncode}): {result.stdout}{result.stderr}{self.logs()}")

    def _stop_daemons(self, grace: float = 10.0) -> None:
        """SIGTERM every daemon named in a pid file at once; SIGKILL those still alive after ``grace`` seconds."""
        pids = [pid for pid in map(_read_pid, self._pid_files) if pid is not None]
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while pids and time.monotonic() < deadline:
                pids = [pid for pid in pids if _alive(pid)]
                time.sleep(0.05)

    # -- configuration -------------------------------------------------------------------------

    def _write_configs(self) -> None:
        """slurm.conf, slurmdbd.conf (mode 600, as slurmdbd demands) and gres.conf with two fake GPUs."""
        for index in range(NODE_GPUS):  # character devices like /dev/null: slurmd accepts nothing else
            os.mknod(self._path(f"gpu{index}"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
        self._path("gres.conf").write_text(f"AutoDetect=off\nNodeName={self.node} Name=gpu File={self.directory}/gpu[0-{NODE_GPUS - 1}]\n")
        self.conf.write_text(self._slurm_conf())
        dbd = self._path("slurmdbd.conf")
        dbd.write_text(self._slurmdbd_conf())
        dbd.chmod(0o600)

    def _slurm_conf(self) -> str:
        munge = self._path("munge.socket")
        lines = {
            "ClusterName": "hyperspace",
            "SlurmctldHost": self.node,
            "SlurmUser": "root",
            "SlurmdUser": "root",
            "AuthType": "auth/munge",
            "AuthInfo": f"socket={munge}",
            "CredType": "cred/munge",
            "SlurmctldPort": self._ports["ctld"],
            "SlurmdPort": self._ports["slurmd"],
            "StateSaveLocation": self._path("state"),
            "SlurmdSpoolDir": self._path("spool"),
            "SlurmctldPidFile": self._path("slurmctld.pid"),
            "SlurmdPidFile": self._path("slurmd.pid"),
            "SlurmctldLogFile": self._path("log/slurmctld.log"),
            "SlurmdLogFile": self._path("log/slurmd.log"),
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_Core",
            "SlurmdParameters": "config_overrides",
            "GresTypes": "gpu",
            "MpiDefault": "none",
            "ReturnToService": 2,
            "KillWait": KILL_WAIT,
            "MinJobAge": 300,
            "SchedulerParameters": "sched_interval=1",
            "JobAcctGatherType": "jobacct_gather/none",
            "AccountingStorageType": "accounting_storage/slurmdbd",
            "AccountingStorageHost": "localhost",
            "AccountingStoragePort": self._ports["dbd"],
            "AccountingStoragePass": munge,
        }
        node = f"NodeName={self.node} CPUs={NODE_CPUS} RealMemory=4096 Gres=gpu:{NODE_GPUS} State=UNKNOWN"
        partitions = [
            f"PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
            f"PartitionName={OTHER_PARTITION} Nodes={self.node} MaxTime=INFINITE State=UP",
        ]
        return "".join(f"{key}={value}\n" for key, value in lines.items()) + "\n".join([node, *partitions]) + "\n"

    def _slurmdbd_conf(self) -> str:
        lines = {
            "AuthType": "auth/munge",
            "AuthInfo": f"socket={self._path('munge.socket')}",
            "DbdHost": "localhost",
            "DbdPort": self._ports["dbd"],
            "SlurmUser": "root",
            "PidFile": self._path("slurmdbd.pid"),
            "LogFile": self._path("log/slurmdbd.log"),
            "StorageType": "accounting_storage/mysql",
            "StorageHost": "127.0.0.1",
            "StoragePort": self._ports["mysql"],
            "StorageUser": "root",
            "StorageLoc": "slurm_acct_db",
        }
        return "".join(f"{key}={value}\n" for key, value in lines.items())

    # -- helpers -------------------------------------------------------------------------------

    def _path(self, name: str) -> Path:
        assert self.directory is not None, "the cluster is not started"
        return self.directory / name

    def _node_idle(self) -> bool:
        result = subprocess.run(["sinfo", "-h", "-o", "%T"], env=self.environment(), capture_output=True, text=True, timeout=10)
        return result.returncode == 0 and result.stdout.strip() == "idle"

    def _queue_empty(self) -> bool:
        result = subprocess.run(["squeue", "-h"], env=self.environment(), capture_output=True, text=True, timeout=10)
        return result.returncode == 0 and not result.stdout.strip()

    @staticmethod
    def _port_open(port: int) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    def _wait_for(self, condition, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.1)
        raise RuntimeError(f"SLURM test cluster: timed out waiting for {what}{self.logs()}")

    def logs(self) -> str:
        """The tail of every daemon log, for error messages."""
        if self.directory is None or not self._path("log").exists():
            return ""
        tails = [f"\n--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]) for log in sorted(self._path("log").iterdir())]
        return "".join(tails)


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
