"""A network partition between one worker and PostgreSQL: the worker runs in a network namespace of its own and
reaches the database through a relay on the host; the partition is a blackhole route on the host, so the worker's
packets arrive and every answer is silently dropped (nothing is refused, as on a real network that splits).
Its queries must fail after the store's dead-connection limits instead of hanging, its job goes to the other worker
once its lease expires, and when the network heals it carries on: every job completes exactly once."""

from __future__ import annotations

import socket
import subprocess
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import clean_env, python_in, start_worker, wait_until

from hyperspace_hydra.store import open_store

JOBS = 16
FAST_DEAD_CONNECTION = "connect_timeout=3&tcp_user_timeout=3000&keepalives_idle=2&keepalives_interval=1&keepalives_count=2"


@dataclass(frozen=True)
class Namespace:
    """A network namespace joined to the host by a veth pair: the host is ``host_ip``, the namespace ``inside_ip``."""

    name: str
    host_ip: str
    inside_ip: str

    def partition(self) -> None:
        _ip("route", "add", "blackhole", f"{self.inside_ip}/32")

    def heal(self) -> None:
        _ip("route", "del", "blackhole", f"{self.inside_ip}/32")


def _ip(*args: str, namespace: str | None = None) -> subprocess.CompletedProcess[str]:
    command = ["ip", *(["netns", "exec", namespace, "ip"] if namespace else []), *args]
    return subprocess.run(command, check=True, capture_output=True, text=True)


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    name = f"hs{uuid.uuid4().hex[:8]}"
    subnet = f"10.{200 + uuid.uuid4().int % 50}.{uuid.uuid4().int % 250}"
    try:
        _ip("netns", "add", name)
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"cannot make a network namespace here ({getattr(error, 'stderr', None) or error}): needs root and iproute2")
    host_end, inside_end = f"{name}h", f"{name}n"
    try:
        _ip("link", "add", host_end, "type", "veth", "peer", "name", inside_end)
        _ip("link", "set", inside_end, "netns", name)
        _ip("addr", "add", f"{subnet}.1/24", "dev", host_end)
        _ip("link", "set", host_end, "up")
        _ip("addr", "add", f"{subnet}.2/24", "dev", inside_end, namespace=name)
        _ip("link", "set", inside_end, "up", namespace=name)
        _ip("link", "set", "lo", "up", namespace=name)
        yield Namespace(name, f"{subnet}.1", f"{subnet}.2")
    finally:
        subprocess.run(["ip", "route", "del", "blackhole", f"{subnet}.2/32"], capture_output=True)
        subprocess.run(["ip", "link", "del", host_end], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


class TcpRelay:
    """Listens on ``address`` and forwards each connection, byte for byte, to ``target``."""

    def __init__(self, address: str, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server((address, 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            upstream = socket.create_connection(self.target)
            for source, destination in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, destination), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, destination: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                destination.sendall(data)
        except OSError:
            pass
        finally:
            source.close()
            destination.close()


def test_a_partitioned_worker_hangs_nowhere_and_no_job_completes_twice(probe_study: Path, postgres_uri: str, namespace: Namespace) -> None:
    server = urllib.parse.urlsplit(postgres_uri)
    relay = TcpRelay(namespace.host_ip, (server.hostname or "127.0.0.1", server.port or 5432))
    netloc = server.netloc.rsplit("@", 1)[0] + f"@{namespace.host_ip}:{relay.port}" if "@" in server.netloc else f"{namespace.host_ip}:{relay.port}"
    through_relay = urllib.parse.urlunsplit(server._replace(netloc=netloc, query=FAST_DEAD_CONNECTION))
    direct = clean_env(HYPERSPACE_STORE=postgres_uri)
    code = f"from hyperspace_hydra import Queue\nQueue(app='probe.run').submit_grid({{'message': list(range({JOBS}))}}, ['sleep=0.5'])"
    assert python_in(probe_study, code, env=direct).returncode == 0
    worker_args = ("--exit-when-empty", "--lease", "4")
    cut_off = start_worker(
        probe_study, *worker_args, log_name="cut_off.log", env=clean_env(HYPERSPACE_STORE=through_relay), prefix=["ip", "netns", "exec", namespace.name]
    )
    with open_store(postgres_uri) as store:
        wait_until(lambda: any(job["state"] == "RUNNING" for job in store.list_jobs()), what="the worker in the namespace to take a job")
        namespace.partition()
        other = start_worker(probe_study, *worker_args, log_name="other.log", env=direct)
        wait_until(lambda: sum(job["state"] == "COMPLETED" for job in store.list_jobs()) >= JOBS // 2, timeout=120, what="the other worker to go on alone")
        namespace.heal()
        assert other.wait(timeout=300) == 0, (probe_study / "other.log").read_text()
        assert cut_off.wait(timeout=300) == 0, (probe_study / "cut_off.log").read_text()
        jobs = store.list_jobs()
        completed = [run for run in store.list_runs() if run["status"] == "COMPLETED"]
        assert [job["state"] for job in jobs] == ["COMPLETED"] * JOBS
        assert sorted(run["job_id"] for run in completed) == sorted(job["id"] for job in jobs), "one completed run per job"
        assert not [run for run in store.list_runs() if run["status"] == "RUNNING"]
    log = (probe_study / "cut_off.log").read_text()
    assert "retrying" in log, f"the worker in the namespace met the partition and waited it out:\n{log}"
