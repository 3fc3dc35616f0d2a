"""A worker's resident memory after many jobs against after a few: does the supervisor grow?

One ``hyperspace worker`` (``--processes 1``, SQLite) runs in a copy of the no-op study.
The script enqueues SMALL no-op jobs (``Queue.submit_grid``), waits until the worker has
done them and reads the supervisor's resident memory (VmRSS in /proc/<pid>/status) while
it idles; then it enqueues LARGE - SMALL more, waits again and reads it again. Both
readings are taken with the worker idle, so they compare like with like; job processes
are forked children and not counted. The worker is then stopped with SIGTERM.

Figure (MiB, lower is better): ``ours`` = RSS after LARGE jobs, ``baseline`` = RSS after
SMALL jobs, ``ratio`` = after_large / after_small (1.0: no growth). ``details`` adds the
peak (VmHWM) and the growth in KiB.

Full size: --small 10 --large 1000. Default: --small 10 --large 60.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from _common import (
    Figure,
    WorkerProcess,
    argument_parser,
    enqueue,
    noop_study,
    print_machine,
    report,
    sqlite_uri,
    start_worker,
    wait_for_sweep,
    working_in,
)


def memory_kib(pid: int) -> dict[str, int]:
    """The ``Vm*`` lines of /proc/<pid>/status, in KiB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name.startswith("Vm"):
            fields[name] = int(value.split()[0])
    return fields


def run_batch(worker: WorkerProcess, store_uri: str, first: int, jobs: int) -> dict[str, int]:
    """Enqueue ``jobs`` jobs, wait until they are done and the worker is idle; return its memory then."""
    sweep_id = enqueue(store_uri, first, jobs)
    wait_for_sweep(store_uri, sweep_id)
    wait_until_idle(worker)
    return memory_kib(worker.pid)


def wait_until_idle(worker: WorkerProcess, timeout: float = 60) -> None:
    """Wait until the worker has reaped every job process (no child left but the process holding its SQLite store open)."""
    deadline = time.monotonic() + timeout
    while job_processes(worker.pid):
        if worker.process.poll() is not None:
            raise RuntimeError(f"the worker ended early:\n{worker.log.read_text()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker still has job processes after {timeout:g} s:\n{worker.log.read_text()}")
        time.sleep(0.05)


def job_processes(worker_pid: int) -> list[str]:
    """The pids of the worker's children, but for its store's anchor (``hyperspace_hydra/store/sqlite_anchor.py``)."""
    found = []
    for pid in Path(f"/proc/{worker_pid}/task/{worker_pid}/children").read_text().split():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:  # reaped meanwhile
            continue
        if b"sqlite_anchor.py" not in command:
            found.append(pid)
    return found


def stop(worker: WorkerProcess) -> None:
    """Stop the worker as a user would (SIGTERM) and wait for it."""
    worker.process.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)


def measure(small: int, large: int) -> tuple[dict[str, int], dict[str, int]]:
    """The worker's memory after ``small`` jobs and after ``large`` jobs in all."""
    with noop_study() as study, working_in(study):
        store_uri = sqlite_uri(study)
        worker = start_worker(study, "--store", store_uri)
        try:
            after_small = run_batch(worker, store_uri, 0, small)
            after_large = run_batch(worker, store_uri, small, large - small)
        finally:
            stop(worker)
    return after_small, after_large


def figures(small: int, large: int) -> list[Figure]:
    """The memory after LARGE jobs against after SMALL jobs, one worker."""
    after_small, after_large = measure(small, large)
    growth_kib = after_large["VmRSS"] - after_small["VmRSS"]
    details = {
        "small": small,
        "large": large,
        "rss_after_small_kib": after_small["VmRSS"],
        "rss_after_large_kib": after_large["VmRSS"],
        "peak_rss_kib": after_large["VmHWM"],
        "growth_kib": growth_kib,
    }
    note = "worker supervisor VmRSS, idle, after LARGE vs after SMALL jobs; 1.0 = no growth"
    return [
        Figure("worker_memory.rss_after_large_vs_small", after_large["VmRSS"] / 1024, after_small["VmRSS"] / 1024, "MiB", note, details)
    ]


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--small", type=int, default=10, help="jobs before the first reading (default 10; full size 10)")
    parser.add_argument("--large", type=int, default=60, help="jobs in all before the second reading (default 60; full size 1000)")
    args = parser.parse_args()
    if not 0 < args.small < args.large:
        parser.error("need 0 < --small < --large")
    print_machine()
    report(figures(args.small, args.large), args.output, {"small": args.small, "large": args.large})


if __name__ == "__main__":
    main()
