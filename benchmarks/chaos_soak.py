"""Chaos soak (not part of the test suite): many jobs while workers are SIGKILLed and the database restarts.

Runs ``--jobs`` no-op jobs of benchmarks/noop_study on a throwaway PostgreSQL server
(tests/postgres_cluster.py) with ``--workers`` workers, twice in one run:

- calm: the workers drain the queue undisturbed (the baseline);
- chaos: every ``--kill-every`` seconds a random worker is SIGKILLed (the worker only: its job
  process must die with it) and a new one started, and the server restarts once, halfway.

Prints completed/expected, died (jobs whose every attempt, 3 by default, was killed: the queue's
documented end for them, so the chaos stops once no job is queued or running), duplicates (jobs
with more than one COMPLETED run), orphans (job processes still alive after every worker ended),
runs left RUNNING, kills, and jobs/s of both runs. The figure: seconds per job with chaos against
calm (the cost of the chaos; the correctness counts are in its details and must read completed +
died = expected, 0 duplicates, 0 orphans, 0 RUNNING).

Small default sizes finish in about two minutes.
Full size: --jobs 1000 --workers 4
"""

from __future__ import annotations

import contextlib
import random
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from _common import Figure, argument_parser, enqueue, noop_study, print_machine, report, start_worker, working_in
from worker_throughput import create_database, postgres_server

from hyperspace_hydra.store import COMPLETED, DIED, QUEUED, RUNNING, open_store

WORKER_ARGS = ("--exit-when-empty", "--lease", "3")


@dataclass
class Outcome:
    """What one run of the soak found."""

    seconds: float
    jobs: int
    completed: int
    died: int
    duplicates: int
    orphans: int
    running_left: int
    kills: int = 0
    pids: list[int] = field(default_factory=list, repr=False)

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.seconds


def soak(study: Path, store_uri: str, jobs: int, workers: int, chaos: Callable[[Callable[[], None]], int] | None) -> Outcome:
    """Drain ``jobs`` jobs with ``workers`` workers; ``chaos(replace_one)`` disturbs them and returns its kill count."""
    with working_in(study):
        enqueue(store_uri, 0, jobs)
    started = time.monotonic()
    running = [start_worker(study, *WORKER_ARGS, "--store", store_uri, name=f"w{index}") for index in range(workers)]
    rng = random.Random(0)

    def replace_one() -> None:
        alive = [worker for worker in running if worker.process.poll() is None]
        if alive:
            victim = rng.choice(alive)
            victim.process.send_signal(signal.SIGKILL)
            victim.process.wait()
        running.append(start_worker(study, *WORKER_ARGS, "--store", store_uri, name=f"w{len(running)}"))

    kills = chaos(replace_one) if chaos else 0
    for worker in running:
        if worker.process.poll() is None:
            worker.wait()
    seconds = time.monotonic() - started
    pids = [int(pid) for worker in running for pid in re.findall(r"started \(attempt \d+, pid (\d+)\)", worker.log.read_text())]
    return _count(store_uri, jobs, seconds, kills, pids)


def _count(store_uri: str, jobs: int, seconds: float, kills: int, pids: list[int]) -> Outcome:
    with open_store(store_uri) as store:
        runs = store.list_runs(fields=["status", "job_id"])
        states = Counter(job["state"] for job in store.list_jobs())
    per_job = Counter(run["job_id"] for run in runs if run["status"] == COMPLETED)
    return Outcome(
        seconds=seconds, jobs=jobs, completed=states.get(COMPLETED, 0), died=states.get(DIED, 0), duplicates=sum(count > 1 for count in per_job.values()),
        orphans=len(_alive(pids)), running_left=sum(run["status"] == RUNNING for run in runs), kills=kills, pids=pids,
    )  # fmt: skip


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                alive.append(pid)
    return alive


def kills_and_a_restart(kill_every: float, restart: Callable[[], None], store_uri: str, jobs: int) -> Callable[[Callable[[], None]], int]:
    """Chaos: kill and replace a worker every ``kill_every`` s until the queue is drained; restart the server at half-way."""

    def disturb(replace_one: Callable[[], None]) -> int:
        kills, restarted = 0, False
        with open_store(store_uri) as store:
            while QUEUED in (states := [job["state"] for job in store.list_jobs()]) or RUNNING in states:
                time.sleep(kill_every)
                if not restarted and states.count(COMPLETED) >= jobs // 2:
                    restart()
                    restarted = True
                    continue
                replace_one()
                kills += 1
        return kills

    return disturb


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--jobs", type=int, default=200, help="jobs per run (full size: 1000)")
    parser.add_argument("--workers", type=int, default=3, help="workers at a time (full size: 4)")
    parser.add_argument("--kill-every", type=float, default=1.0, help="seconds between kills (default 1)")
    args = parser.parse_args()
    print_machine()
    with noop_study() as study, postgres_server() as cluster:
        calm = soak(study, create_database(cluster), args.jobs, args.workers, None)
        chaotic_store = create_database(cluster)
        disturb = kills_and_a_restart(args.kill_every, lambda: cluster.restart(down_seconds=1), chaotic_store, args.jobs)
        chaos = soak(study, chaotic_store, args.jobs, args.workers, disturb)
    details = {
        name: {key: getattr(outcome, key) for key in ("jobs", "completed", "died", "duplicates", "orphans", "running_left", "kills")}
        | {"jobs_per_second": round(outcome.jobs_per_second, 2)}
        for name, outcome in (("calm", calm), ("chaos", chaos))
    }
    print(f"# chaos: {chaos.completed}/{chaos.jobs} completed, {chaos.died} died (killed on each of their attempts), {chaos.duplicates} duplicates, {chaos.orphans} orphans, "
          f"{chaos.running_left} left RUNNING, {chaos.kills} kills; {chaos.jobs_per_second:.1f} vs {calm.jobs_per_second:.1f} jobs/s calm")  # fmt: skip
    figure = Figure("chaos_soak.seconds_per_job", ours=chaos.seconds / chaos.jobs, baseline=calm.seconds / calm.jobs, unit="s",
                    note="chaos (kills + a server restart) against calm draining of the same jobs", details=details)  # fmt: skip
    report([figure], args.output, vars(args) | {"output": str(args.output)})


if __name__ == "__main__":
    main()
