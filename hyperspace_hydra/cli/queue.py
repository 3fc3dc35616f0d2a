"""``hyperspace queue ls|workers|pause|resume|cancel|retry|wait``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

from hyperspace_hydra.cli.common import add_app_option, add_store_option, open_store_for
from hyperspace_hydra.cli.output import describe_counts, print_json_lines, print_table, progress_bar
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.hpo import SEARCH
from hyperspace_hydra.settings import redact_credentials
from hyperspace_hydra.store import (
    CANCELLED,
    COMPLETED,
    DIED,
    FAILED,
    INTERRUPTED,
    JOB_FINAL_STATES,
    PAUSED,
    QUEUED,
    RUNNING,
    TIMEOUT,
    Store,
)

_WAIT_POLL_SECONDS = 0.5

STATE_CHANGES = {
    "pause": ((QUEUED,), PAUSED, "paused"),
    "resume": ((PAUSED,), QUEUED, "resumed"),
    "cancel": ((QUEUED, PAUSED, RUNNING), CANCELLED, "cancelled"),
    "retry": ((FAILED, DIED, TIMEOUT), QUEUED, "queued again"),
}
"""Per queue command (also the web UI's actions): the states a job may be in to be moved, the state it moves to, what was done."""
_HELP = {
    "pause": "hold queued jobs (workers skip them)",
    "resume": "queue paused jobs again",
    "cancel": "cancel queued, paused and running jobs (running ones are stopped by their worker)",
    "retry": "put failed, timed-out and died jobs back in the queue",
}


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register the ``queue`` commands."""
    queue = commands.add_parser("queue", help="look at and steer the job queue").add_subparsers(title="queue commands")

    ls = queue.add_parser("ls", help="table of jobs")
    _add_common(ls)
    ls.add_argument("--sweep", type=int, metavar="ID", help="only the jobs of this sweep")
    ls.add_argument("--state", action="append", type=str.upper, choices=sorted({QUEUED, PAUSED, RUNNING, *JOB_FINAL_STATES}), help="only jobs in this state (repeatable; any case)")
    ls.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    ls.set_defaults(handler=_ls)

    workers = queue.add_parser("workers", help="table of the workers: working, idle, stopping, stopped or gone, with their jobs")
    _add_common(workers)
    workers.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    workers.set_defaults(handler=_workers)

    for command, (_, _, _) in STATE_CHANGES.items():
        change = queue.add_parser(command, help=_HELP[command])
        _add_common(change)
        change.add_argument("--sweep", type=int, metavar="ID", help="the jobs of this sweep")
        change.add_argument("job_ids", type=int, nargs="*", metavar="JOB", help="these jobs")
        if command == "cancel":
            change.add_argument("--all", action="store_true", help="every job (cancel needs a selection or --all)")
        change.set_defaults(handler=_change, command=command)

    wait = queue.add_parser("wait", help="block until no job of a sweep can still run; exit 0 only if every job completed")
    _add_common(wait)
    wait.add_argument("sweep_id", type=int, metavar="SWEEP")
    wait.add_argument("--include-paused", action="store_true", help="also wait for paused jobs (until someone resumes or cancels them)")
    wait.set_defaults(handler=_wait)


def _add_common(parser: argparse.ArgumentParser) -> None:
    add_store_option(parser, with_app=True)
    add_app_option(parser)


def job_row(job: dict[str, Any]) -> dict[str, Any]:
    """What ``queue ls`` shows of a job (no config, no credentials)."""
    return {
        "id": job["id"], "study": job["study"], "sweep": job["sweep_id"], "state": job["state"],
        "priority": job["priority"], "attempts": job["attempts"], "worker": job["worker"], "run": job["run_id"],
        "overrides": [redact_credentials(item) for item in job["overrides"]], "created": job["created_at"],
        "error": redact_credentials(job["error"]) if job["error"] else None,
    }  # fmt: skip


def _ls(args: argparse.Namespace) -> None:
    with open_store_for(args) as store:
        if args.sweep is not None:
            store.get_sweep(args.sweep)  # a sweep that does not exist is an error, not an empty table
        rows = [job_row(job) for job in store.list_jobs(study=args.app, sweep_id=args.sweep, states=args.state)]
    if args.json:
        print_json_lines(rows)
        return
    columns = ["id", "study", "sweep", "state", "priority", "attempts", "worker", "run", "overrides", "error"]
    table = [[*(row[name] for name in columns[:-2]), " ".join(row["overrides"]), _short(row["error"])] for row in rows]
    empty = "no job matches" if args.app or args.sweep is not None or args.state else "no job in the queue"
    print_table(columns, table, right_aligned=("id", "sweep", "priority", "attempts", "run"), empty=empty)


def worker_row(worker: dict[str, Any]) -> dict[str, Any]:
    """What ``queue workers`` shows of a registered worker (see :meth:`Store.list_workers`): ``seen_ago`` is the
    seconds since it last said it was there, by the store's clock."""
    return {
        "worker": worker["name"], "study": worker["study"], "host": worker["host"], "pid": worker["pid"],
        "slurm_job": worker["slurm_job"], "state": worker["state"], "jobs": worker["job_ids"], "processes": worker["processes"],
        "lease": worker["lease_seconds"], "started": worker["started_at"], "last_seen": worker["last_seen"], "seen_ago": worker["seen_seconds_ago"],
    }  # fmt: skip


def _workers(args: argparse.Namespace) -> None:
    with open_store_for(args) as store:
        rows = [worker_row(worker) for worker in store.list_workers(study=args.app)]
    if args.json:
        print_json_lines(rows)
        return
    columns = ["worker", "host", "pid", "slurm_job", "state", "jobs", "seen_ago", "started"]
    table = [[*(row[name] for name in columns[:5]), " ".join(map(str, row["jobs"])), row["seen_ago"], row["started"]] for row in rows]
    headers = ["worker", "host", "pid", "SLURM job", "state", "jobs", "seen (s ago)", "started (UTC)"]
    print_table(headers, table, right_aligned=("pid", "seen (s ago)"), empty="no worker has registered")


def _short(text: str | None, limit: int = 80) -> str | None:
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


def _change(args: argparse.Namespace) -> None:
    from_states, to_state, done = STATE_CHANGES[args.command]
    if args.command == "cancel" and not (args.all or args.sweep or args.job_ids):
        raise HyperspaceError("cancel needs --sweep ID, job ids or --all")
    with open_store_for(args) as store:
        _require_selection(store, args.sweep, args.job_ids, done)
        moved = store.change_jobs(from_states, to_state, sweep_id=args.sweep, job_ids=args.job_ids or None)
        stopped = args.command == "cancel" and args.sweep is not None and end_growing_sweep(store, args.sweep)
    print(f"{moved} job(s) {done}" + (f"; search sweep {args.sweep} gets no more trials" if stopped else ""))


def end_growing_sweep(store: Store, sweep_id: int) -> bool:
    """Cancel a sweep that grows as it goes (a search), so that no process adds trials to it; whether it was one."""
    return store.get_sweep(sweep_id)["state"] == RUNNING and store.end_sweep(sweep_id, CANCELLED)


def _require_selection(store: Store, sweep_id: int | None, job_ids: Sequence[int], done: str) -> None:
    """Raise :class:`HyperspaceError` for a sweep or job ids that do not exist: a typo must not pass for "0 job(s) moved".

    Existing jobs in a state the command does not move are no error: they are counted as not moved.
    """
    if sweep_id is not None:
        store.get_sweep(sweep_id)  # raises for an unknown sweep
    found = {job["id"] for job in store.list_jobs(job_ids=job_ids)} if job_ids else set()
    unknown = sorted(set(job_ids) - found)
    if unknown:
        raise HyperspaceError(
            f"no job with id {', '.join(map(str, unknown))} in store {redact_credentials(store.uri)}: nothing {done} "
            "(hyperspace queue ls lists the jobs)"
        )


def _wait(args: argparse.Namespace) -> int:
    with open_store_for(args) as store:
        sweep = store.get_sweep(args.sweep_id)
        budget = _budget(sweep)
        with progress_bar(f"sweep {args.sweep_id}", described=True) as progress:
            bar = progress.add_task(describe_counts(sweep["counts"]), total=budget or sum(sweep["counts"].values()))
            while True:
                sweep = store.get_sweep(args.sweep_id)
                counts = sweep["counts"]
                progress.update(bar, total=max(budget, sum(counts.values())), completed=sum(counts.get(state, 0) for state in JOB_FINAL_STATES), description=describe_counts(counts))
                if _settled(sweep, args.include_paused):
                    break
                store.requeue_expired()
                time.sleep(_WAIT_POLL_SECONDS)
    print(describe_counts(counts))
    problem = _unfinished(sweep, budget)
    if problem:
        print(f"not every job completed: {problem}")
    return 1 if problem else 0


def _settled(sweep: dict[str, Any], include_paused: bool) -> bool:
    """Whether no job of the sweep can still run: none queued or running (or paused, with ``include_paused``),
    and a search sweep will add no more trials (it ended, or what holds it back is paused)."""
    counts = sweep["counts"]
    if any(counts.get(state) for state in (QUEUED, RUNNING, *((PAUSED,) if include_paused else ()))):
        return False
    return sweep["state"] != RUNNING or bool(counts.get(PAUSED))


def _unfinished(sweep: dict[str, Any], budget: int) -> str | None:
    """Why a settled sweep did not complete (jobs that did not, a search stopped short of its budget), or None."""
    counts = sweep["counts"]
    others = {state: count for state, count in counts.items() if state != COMPLETED and count}
    if others:
        hint = f" (hyperspace queue resume --sweep {sweep['id']})" if PAUSED in others else ""
        return ", ".join(f"{count} {state.lower()}" for state, count in others.items()) + hint
    if sweep["state"] in (CANCELLED, INTERRUPTED) and counts.get(COMPLETED, 0) < budget:
        return f"the search was {sweep['state'].lower()} after {counts.get(COMPLETED, 0)} of {budget} trials (hyperspace sweep show {sweep['id']})"
    return None


def _budget(sweep: dict[str, Any]) -> int:
    """How many jobs the sweep will have in the end: a search sweep's trial budget, else what it has now."""
    if sweep["kind"] == SEARCH:
        return int(sweep["spec"]["n_trials"])
    return sum(sweep["counts"].values())
