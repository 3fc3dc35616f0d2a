"""The worker: claim a job, run it as a Hydra job in a child process, repeat.

One supervisor process per worker, single-threaded, reading top to bottom in
:meth:`Worker.run`. It imports the study once; each job runs in a child forked from
it, so a job that segfaults, calls ``os._exit`` or hangs never takes the worker
down, and no job sees another's module state. The child composes nothing itself:
the supervisor composes in full the first job of each shape of a sweep, checks every
``_target_`` against the allowlist, then forks; a later job of that shape is made in its
child, which owns a copy of the shape's config after the fork, and checked there (see
:class:`~hyperspace_hydra.composer.JobConfig`). What every child would otherwise do
alike is done once before the forks: the study's targets and callbacks, the ``.hydra``
files' unchanging YAML, the parses of the configs' interpolations, the store's recording statements compiled. The child runs
callbacks and the job exactly as ``python -m study.run`` does
(:func:`hyperspace_hydra.app.run_job`: Hydra's ``run_job`` with fewer copies, the same
files), and the recording callback ends the job together with its run, through the
worker's own store object where the backend allows it.

Signals: the first SIGTERM, SIGINT or SIGUSR2 stops claiming and gives running jobs
``grace`` seconds; then (or at a second signal) they get SIGTERM, which records their
runs INTERRUPTED and puts their jobs back in the queue. Children live in their own
process group, so a Ctrl-C in the terminal reaches only the supervisor. SIGUSR2 is what
SLURM sends before a time limit or a preemption (as submitit asks it to); SLURM signals
every process of a job, so children ignore SIGUSR2 and leave the decision to the supervisor.

A job never outlives its worker, nor its claim: a child asks the kernel to SIGKILL it when the
worker dies (``PR_SET_PDEATHSIG`` on Linux), and a thread in the child kills its process group
as soon as its parent changes (other systems, or a death signal that came too late), or once
the worker has not renewed its lease in time (the worker is stopped, or blocked on a store
that does not answer): the child ends shortly before the store's lease can expire, and the
worker, when it comes back, puts the job back in the queue. A child whose claim is lost (job cancelled) gets SIGTERM at the next claim check, within about
a second, so that its run records its end, and SIGKILL :data:`_LOST_JOB_SECONDS` later if it is still
there; the worker does not wait for it meanwhile (see :meth:`Worker._stop_lost_jobs`). So two attempts of
one job never run at once: a new attempt starts only after the lease of the old one expired, and by then
the old one is gone.

Each attempt this worker made is counted once, by its own outcome: the state its run gave the
job (PRUNED for a search's trial that its pruner stopped: its job is COMPLETED, its run PRUNED), FAILED or TIMEOUT from the worker, REQUEUED when the worker stopped it, or LOST when its
claim was lost (the line then also says what became of the job).

Store errors (database unreachable, disk full, read-only or damaged file) never crash the
worker: every store call is retried with backoff (:mod:`hyperspace_hydra.store.retry`), one
warning line per failure, and the worker resumes where it was once the store works again.

GPUs: with ``processes`` > 1 and GPUs listed in ``CUDA_VISIBLE_DEVICES``, each running
job gets its own equal share of them (:func:`hyperspace_hydra.slurm.gpu_shares`).
"""

from __future__ import annotations

import mmap
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import hydra._internal.logging_config  # noqa: F401 - Hydra imports it in each job's logging set-up: loaded once before the forks
from omegaconf import DictConfig, OmegaConf

from hyperspace_hydra import config_yaml, job_process, provenance, recorder, tracking  # noqa: F401 - tracking: the callback every job instantiates, loaded once before the forks
from hyperspace_hydra.app import App
from hyperspace_hydra.capture import c_library
from hyperspace_hydra.composer import JobConfig
from hyperspace_hydra.config import keep_interpolation_parses, parse_interpolations
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.hpo import SEARCH, prunes
from hyperspace_hydra.queue import new_job
from hyperspace_hydra.settings import redact_credentials
from hyperspace_hydra.slurm.environment import gpu_shares, slurm_job_id, visible_gpus
from hyperspace_hydra.store import CANCELLED, COMPLETED, DIED, FAILED, QUEUED, RUNNING, TIMEOUT, Claim, ClaimedJob, Condition, Store, utcnow
from hyperspace_hydra.store.base import JOB_STATE_AFTER_RUN, PRUNED, WorkerBeat, WorkerInfo
from hyperspace_hydra.store.retry import RetryingStore, open_retrying
from hyperspace_hydra.store.sqlite_anchor import Anchor, hold_open
from hyperspace_hydra.targets import allowed_packages, refusal

_SHORTEST_POLL = 0.05
_TAKEN_AWAY = (CANCELLED, QUEUED, RUNNING, DIED)
"""States of a job whose claim this worker lost to someone else (a job that ended itself is just reaped)."""
LOST = "LOST"
"""The outcome of an attempt whose claim was lost (the job was cancelled, or requeued after its lease expired)."""
REQUEUED = "REQUEUED"
"""The outcome of an attempt that this worker stopped and put back in the queue."""
_LONGEST_LEASE_CHECK = 1.0
"""Claims are checked (and leases renewed) at least this often, so a cancelled job stops within about a second."""
_WORKER_WATCH_SECONDS = 0.5
_LOST_JOB_SECONDS = 5.0
"""How long a job whose claim was lost (cancelled, or taken over) may take to record its end after SIGTERM, before SIGKILL.

What it does in that time is a few milliseconds of work on a quiet machine: stop its output capture, write its metrics
and its run's end (one transaction), exit. One second was too short on a loaded machine (the job was killed before
its run recorded INTERRUPTED), and the worker does not wait for it (its loop renews the other jobs' leases and reaps
them meanwhile), so the grace costs only the job's process slot while it lasts. Five seconds cover a loaded machine
and a store that is busy for a moment, and keep "a cancelled job stops within seconds" true: at most the claim check
(:data:`_LONGEST_LEASE_CHECK`) plus this. Whatever the stopping job still tries to write is fenced by its lost claim."""
_PR_SET_PDEATHSIG = 1
_STOP_WAIT_SECONDS = 10.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)


@dataclass
class WorkerOptions:
    """How a worker behaves; the CLI's ``hyperspace worker`` options."""

    processes: int = 1
    exit_when_empty: bool = False
    max_jobs: int | None = None
    timeout: float | None = None
    lease: float = 60.0
    grace: float = 30.0
    poll: float = 1.0
    allowed: tuple[str, ...] = ()


class _ClaimDeadline:
    """Until when (``time.monotonic()``, one clock for all processes of a machine) a job's claim surely
    holds, in memory shared by the worker, which moves it on with every renewal, and the job process,
    which ends itself once it has passed and says so here first (:meth:`give_up`).

    The worker sets it a margin before the store's lease can end at the earliest (see
    :meth:`Worker._claim_surely_held_until`). A renewal may come after the job process gave up but before the worker
    reaps it, moving the deadline on: so the worker asks :meth:`given_up`, not whether the deadline passed.
    """

    _DEADLINE = struct.Struct("d")

    def __init__(self, deadline: float) -> None:
        self._memory = mmap.mmap(-1, self._DEADLINE.size + 1)  # anonymous and shared: a forked child sees every move
        self.move_to(deadline)

    def move_to(self, deadline: float) -> None:
        self._memory[: self._DEADLINE.size] = self._DEADLINE.pack(deadline)

    def seconds_left(self) -> float:
        return self._DEADLINE.unpack(self._memory[: self._DEADLINE.size])[0] - time.monotonic()

    def passed(self) -> bool:
        return self.seconds_left() <= 0

    def give_up(self) -> None:
        """In the job process: record that it stops itself because the deadline passed."""
        self._memory[self._DEADLINE.size] = 1

    def given_up(self) -> bool:
        """Whether the job process stopped itself because the deadline passed (:meth:`give_up`)."""
        return self._memory[self._DEADLINE.size] == 1


class _RunEnding:
    """How the job process's run ended its job (the run's status and id), in memory shared with the worker: a job
    process writes it just before it exits, so that the worker counts the attempt without reading the job back."""

    _FORMAT = "16sq"

    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, struct.calcsize(self._FORMAT))  # anonymous and shared, zeros: nothing written

    def write(self, status: str, run_id: int) -> None:
        self._memory[:] = struct.pack(self._FORMAT, status.encode(), run_id)

    def read(self) -> tuple[str, int] | None:
        status, run_id = struct.unpack(self._FORMAT, self._memory[:])
        return (status.rstrip(b"\0").decode(), run_id) if status.strip(b"\0") else None


@dataclass
class _RunningJob:
    job: ClaimedJob
    pid: int
    started: float
    log_path: Path
    claim_deadline: _ClaimDeadline
    gpus: list[str] | None = None
    run_ending: _RunEnding = field(default_factory=_RunEnding)
    kill_at: float | None = None
    """Set once its claim was lost and it got SIGTERM: when (``time.monotonic()``) it gets SIGKILL if still there."""


@dataclass
class _Counters:
    claimed: int = 0
    finished: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class Worker:
    """Drains the queue of one study from one store (see the module docstring)."""

    def __init__(self, app: App, store: Store | RetryingStore, options: WorkerOptions, say: Callable[[str], None] = print) -> None:
        self.app = app
        self.store = store
        self.options = options
        self.name = worker_name()
        self.stop_signal: int | None = None
        """The signal that stopped this worker (None while it runs, or when it stopped by itself)."""
        self._say = say
        self._running: dict[int, _RunningJob] = {}
        self._counters = _Counters()
        self._sweeps: dict[int, dict[str, Any]] = {}
        """The kind and spec (which never change) of each sweep whose jobs this worker ran, by id."""
        self._composer = app.queued_job_composer()
        self._gpu_shares = gpu_shares(visible_gpus(), options.processes)
        self._stop_requested_at: float | None = None
        self._next_lease_work = 0.0
        self._last_beat: tuple[float, bool, bool] = (-float("inf"), False, False)
        """When this worker last told the registry it is there (``time.monotonic()``), and whether it was working and stopping."""
        self._wakeup_read, self._wakeup_write = os.pipe()
        self._rehearsed = False
        """Whether the store has rehearsed a job's recording in this process (see :meth:`_rehearse_recording`)."""
        self._anchor: Anchor | None = None
        """The process that holds an SQLite store open while this worker runs (see :mod:`~hyperspace_hydra.store.sqlite_anchor`)."""

    def run(self) -> int:
        """Work until told to stop, the queue is empty (``exit_when_empty``) or ``max_jobs`` are done."""
        _gather_provenance_once(self.app)
        keep_interpolation_parses()
        c_library()  # loaded here once: each job process calls it (its death signal, its output capture)
        previous = self._install_signal_handlers()
        self._say(f"worker {self.name}: study {self.app.module}, store {redact_credentials(self.store.uri)}, {self.options.processes} process(es)")
        self._say_clock_offset()
        self._say_gpu_placement()
        self.store.register_worker(self._info())
        self._last_beat = (time.monotonic(), False, False)
        self._anchor = hold_open(self.store.uri)  # closing the connection before each fork then checkpoints nothing
        try:
            self._loop()
            self.store.worker_stopped(self.name)
        finally:
            if self._anchor is not None:
                self._anchor.stop()
            self._restore_signal_handlers(previous)
        summary = ", ".join(f"{count} {state}" for state, count in sorted(self._counters.outcomes.items())) or "no jobs"
        self._say(f"worker {self.name}: stopped after {summary}")
        return 0

    @property
    def outcomes(self) -> dict[str, int]:
        """How many of this worker's attempts ended each way so far: the state the attempt gave its job
        (``PRUNED`` for a trial its pruner stopped), ``REQUEUED`` (stopped by the worker and put back) or ``LOST`` (its claim was lost)."""
        return dict(self._counters.outcomes)

    def _info(self) -> WorkerInfo:
        """This worker as the registry of workers holds it (see :meth:`Store.register_worker`)."""
        return WorkerInfo(self.name, self.app.module, socket.gethostname(), os.getpid(), slurm_job_id(), self.options.processes, self.options.lease)

    def _loop(self) -> None:
        idle_wait = _SHORTEST_POLL
        while True:
            self._reap_finished()
            self._kill_timed_out()
            self._lease_work()
            if self._stop_requested_at is not None:
                if self._stopped():
                    return
                self._wait(_SHORTEST_POLL)
                continue
            started = self._start_next() if self._may_claim() else False
            if started:
                idle_wait = _SHORTEST_POLL
                continue
            if not self._running and (self._max_jobs_reached() or (self.options.exit_when_empty and self._queue_drained())):
                return
            self._wait(min(idle_wait, self._next_deadline() - time.monotonic()))  # leases are renewed and lost jobs killed on time, however long the poll
            idle_wait = min(idle_wait * 2, self.options.poll)

    # claiming and starting

    def _may_claim(self) -> bool:
        return len(self._running) < self.options.processes and not self._max_jobs_reached()

    def _max_jobs_reached(self) -> bool:
        return self.options.max_jobs is not None and self._counters.claimed >= self.options.max_jobs

    def _queue_drained(self) -> bool:
        """No job of the study is QUEUED, nor RUNNING under a lease that may still expire and requeue it."""
        return not self.store.list_jobs(study=self.app.module, states=[QUEUED, RUNNING])

    def _start_next(self) -> bool:
        asked = time.monotonic()
        job = self.store.claim(self.app.module, self.name, self.options.lease)
        if job is None:
            return False
        self._last_beat = (self._last_beat[0], True, self._last_beat[2])  # the claim told the registry: working until a beat says otherwise
        self._counters.claimed += 1
        output_dir = Path(job.output_dir or f"outputs/queue/{job.claim.job_id}")
        try:
            config = self._composer.prepare(job.overrides, job.sweep_id, str(output_dir))
        except HyperspaceError as error:
            self._end_without_running(job, _does_not_compose(error))
            return True
        if config.composed is not None:  # composed here in full: its targets' modules, its callbacks and its files' YAML are made here, once for its jobs
            refused = refusal(config.composed, self.options.allowed)
            if refused:
                self._end_without_running(job, refused)
                return True
            self._prepare_forks(config.composed)
        output_dir.mkdir(parents=True, exist_ok=True)
        log_path = output_dir / "job.log"
        gpus = self._free_gpu_share()
        claim_deadline = _ClaimDeadline(self._claim_surely_held_until(asked))
        self._rehearse_recording(job)
        if job.sweep_id is not None:
            self._sweep(job.sweep_id)  # read once here: its job processes need not read it
        if not self._still_held(job, claim_deadline):
            return True
        run_ending = _RunEnding()
        pid = self._fork_job(job, config, log_path, gpus, claim_deadline, run_ending)
        self._running[pid] = _RunningJob(job, pid, time.monotonic(), log_path, claim_deadline, gpus, run_ending)
        overrides = " ".join(redact_credentials(item) for item in job.overrides) or "(no overrides)"
        self._say(f"job {job.claim.job_id} started (attempt {job.attempts + 1}, pid {pid}): {overrides}")
        return True

    def _prepare_forks(self, config: DictConfig) -> None:
        """Make once, for the job processes of ``config``'s jobs to inherit, what each would make alike: its callbacks, its
        ``.hydra`` files' YAML and the parses of its interpolations. Optional: whatever fails here is made (and fails the
        job) in the job process, as before."""
        try:
            self.app.callbacks(config)
            config_yaml.remember(config)
            parse_interpolations(OmegaConf.to_container(config, resolve=False))
        except Exception:  # noqa: BLE001 - a callback that cannot be instantiated fails its job, not the worker
            return

    def _still_held(self, job: ClaimedJob, claim_deadline: _ClaimDeadline) -> bool:
        """Whether ``job``'s claim holds just before its process is forked. When the steps since the claim (composing,
        reading the store, waiting out an outage) outlasted ``claim_deadline``, the lease is renewed first: a process
        forked past its deadline would stop itself at once. A claim lost meanwhile is counted LOST, and no process starts."""
        if not claim_deadline.passed():
            return True
        asked = time.monotonic()
        if job.claim.job_id in self.store.renew_leases([job.claim], self.options.lease):
            self._count_lost(job.claim.job_id, "its claim was lost before its process started")
            return False
        claim_deadline.move_to(self._claim_surely_held_until(asked))
        return True

    def _rehearse_recording(self, job: ClaimedJob) -> None:
        """Before the first fork, let the store prepare what every job process executes to record its run
        (:meth:`Store.rehearse_job_run`: the SQL store compiles its statements once here, not in every job process)."""
        if self._rehearsed or not self.store.usable_after_fork:
            return
        try:
            self.store.rehearse_job_run(job.claim)
        except HyperspaceError:
            return  # the job records its run all the same, and the next job asks again
        self._rehearsed = True

    def _end_without_running(self, job: ClaimedJob, reason: str) -> None:
        self.store.end_job(job.claim, FAILED, reason)
        self._count(job.claim.job_id, FAILED, reason)
        self._advance_search(job)

    def _free_gpu_share(self) -> list[str] | None:
        """A share of the GPUs that no running job has (None when the GPUs are not split)."""
        if self._gpu_shares is None:
            return None
        taken = [running.gpus for running in self._running.values()]
        return next(share for share in self._gpu_shares if share not in taken)

    def _say_clock_offset(self) -> None:
        """How far this host's clock is from the store's: leases are timed on the store's, so an offset changes
        nothing there; it only shifts the start and stop times that runs record from this host's clock."""
        offset = (self.store.server_time() - utcnow()).total_seconds()
        self._say(f"worker {self.name}: clock offset to the store {offset:+.3f} s (leases use the store's clock)")

    def _say_gpu_placement(self) -> None:
        gpus = visible_gpus()
        if self._gpu_shares is not None:
            self._say(f"worker {self.name}: each job sees its own share of the GPUs: {' | '.join(','.join(share) for share in self._gpu_shares)}")
        elif gpus and self.options.processes > 1:
            self._say(f"worker {self.name}: {len(gpus)} GPU(s) do not split evenly over {self.options.processes} processes: every job sees all of them")

    def _fork_job(
        self, job: ClaimedJob, config: JobConfig, log_path: Path, gpus: list[str] | None, claim_deadline: _ClaimDeadline, run_ending: _RunEnding
    ) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        worker_pid = os.getpid()
        pid = os.fork()
        if pid == 0:
            os._exit(self._run_in_child(job, config, log_path, gpus, worker_pid, claim_deadline, run_ending))
        return pid

    def _run_in_child(
        self,
        job: ClaimedJob,
        config: JobConfig,
        log_path: Path,
        gpus: list[str] | None,
        worker_pid: int,
        claim_deadline: _ClaimDeadline,
        run_ending: _RunEnding,
    ) -> int:
        """Runs in the forked child; returns its exit status (never returns to the loop).

        The status is :data:`job_process.CLAIM_LOST_EXIT_STATUS` when the run ended after the job's claim was lost,
        else 0 when the run ended the job, the task returned or the job could not run (see :meth:`_full_config`),
        1 when anything raised.
        """
        try:
            os.setpgid(0, 0)
            _redirect_output(log_path)
            _die_with_worker(worker_pid, claim_deadline, os.dup(2))
            if gpus is not None:
                os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
            signal.set_wakeup_fd(-1)
            os.close(self._wakeup_read)
            os.close(self._wakeup_write)
            if self._anchor is not None:
                self._anchor.leave_to_worker()
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGUSR2, signal.SIG_IGN)
            sweep = self._sweeps.get(job.sweep_id) if job.sweep_id is not None else None
            job_process.bind_queued_job(job_process.QueuedJob(self.store.uri, job.claim, job.sweep_id, self._store_for_job_processes(), sweep))
            self.app.run(self._full_config(job, config))
            status = 0
        except SystemExit as stop:  # e.g. the attempt lost its job before the task began (the callback says why)
            status = stop.code if isinstance(stop.code, int) else 1
        except BaseException:  # noqa: BLE001 - the child must end through os._exit, whatever happened
            traceback.print_exc()
            status = 1
        recorder.interrupt_unfinished_run()
        ended = job_process.run_that_ended_the_queued_job()
        if ended is not None:
            run_ending.write(*ended)
        sys.stdout.flush()
        sys.stderr.flush()
        return job_process.CLAIM_LOST_EXIT_STATUS if job_process.queued_job_ended_by_its_run() is False else status

    def _full_config(self, job: ClaimedJob, config: JobConfig) -> DictConfig:
        """In the job's process: its full config. One that the worker did not compose in full is made here from the base
        config of its shape (see :class:`~hyperspace_hydra.composer.JobConfig`) and checked against the allowlist here (a
        value may change a target). When it does not compose or is refused, this process ends the job FAILED with the
        reason and exits (status 0, or :data:`job_process.CLAIM_LOST_EXIT_STATUS` when the claim was lost meanwhile)."""
        try:
            full = config.make()
        except HyperspaceError as error:
            reason = _does_not_compose(error)
        else:
            refused = refusal(full, self.options.allowed) if config.composed is None else None
            if refused is None:
                return full
            reason = refused
        print(f"hyperspace: job {job.claim.job_id} does not run: {reason}", file=sys.stderr)
        store = self._store_for_job_processes() or open_retrying(self.store.uri)
        raise SystemExit(0 if store.end_job(job.claim, FAILED, reason) else job_process.CLAIM_LOST_EXIT_STATUS)

    def _store_for_job_processes(self) -> RetryingStore | None:
        """This worker's store, for a job process to record through, when a forked process may use it."""
        if not self.store.usable_after_fork:
            return None
        return self.store if isinstance(self.store, RetryingStore) else RetryingStore(self.store)

    # watching running jobs

    def _reap_finished(self) -> None:
        """Count the attempts whose processes exited; SIGKILL the lost jobs' processes whose grace is over."""
        for pid, running in list(self._running.items()):
            waited, status = os.waitpid(pid, os.WNOHANG)
            if waited == 0:
                if running.kill_at is not None and time.monotonic() >= running.kill_at:
                    _kill_group(pid)
                    os.waitpid(pid, 0)  # at once: nothing can delay a SIGKILL
                    del self._running[pid]
                    self._count_lost(running.job.claim.job_id, "killed: this worker no longer holds it (cancelled or taken over), and it did not stop in time")
                continue
            del self._running[pid]
            if running.kill_at is not None:
                self._count_lost(running.job.claim.job_id, "stopped, this worker no longer holds it (cancelled or taken over)")
            else:
                self._count_ended_attempt(running, status)
                self._advance_search(running.job)

    def _next_deadline(self) -> float:
        """When (``time.monotonic()``) the loop must act next whatever happens: lease work, or killing a lost job."""
        return min([self._next_lease_work, *(running.kill_at for running in self._running.values() if running.kill_at is not None)])

    def _count_ended_attempt(self, running: _RunningJob, status: int) -> None:
        """Count the outcome of an attempt whose process exited with ``status``.

        A process that stopped itself because its claim deadline passed (this worker was late to renew
        the lease, :func:`_stopped_itself_unrenewed`): the job goes back to the queue. Else, while the claim holds, the process ended
        without recording its end (a crash): the worker fails the job. Otherwise a process that exited 0 ended the job with its run
        (it says how in its :class:`_RunEnding`; without that, the job is read back); any other status means the claim was lost
        first (the process says so with :data:`job_process.CLAIM_LOST_EXIT_STATUS` when its run ended DIED or INTERRUPTED
        instead of ending the job).
        """
        claim = running.job.claim
        if _stopped_itself_unrenewed(status, running.claim_deadline):
            self._requeue_unrenewed(running)
            return
        exited_cleanly = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        ended = running.run_ending.read() if exited_cleanly else None
        if ended is not None:  # the common case: the run ended the job, and the process said how
            run_status, run_id = ended
            outcome = PRUNED if run_status == PRUNED else JOB_STATE_AFTER_RUN[run_status]
            self._count(claim.job_id, outcome, f"{time.monotonic() - running.started:.1f} s, run {run_id}")
            return
        job = self._job(claim.job_id) if exited_cleanly else None  # a read: no write transaction when the job was ended
        if job is None or _still_held(job, claim):
            reason = _exit_reason(status, running.log_path)
            if self.store.end_job(claim, FAILED, reason):
                self._count(claim.job_id, FAILED, reason)
                return
            if not exited_cleanly:
                self._count_lost(claim.job_id, "this worker's claim was lost (cancelled or taken over) before its attempt ended")
                return
            job = self._job(claim.job_id)
        self._count(claim.job_id, self._outcome(job), f"{time.monotonic() - running.started:.1f} s, {_job_detail(job)}")

    def _outcome(self, job: dict[str, Any]) -> str:
        """The state an attempt gave its ended ``job``, PRUNED for a trial its pruner stopped (its job is COMPLETED)."""
        if job["state"] != COMPLETED or job["sweep_id"] is None or not prunes(self._sweep(job["sweep_id"])):
            return str(job["state"])
        return PRUNED if self.store.count_runs(status=PRUNED, where=[Condition("id", "=", job["run_id"])]) else COMPLETED

    def _job(self, job_id: int) -> dict[str, Any]:
        [job] = self.store.list_jobs(job_ids=[job_id])
        return job

    def _requeue_unrenewed(self, running: _RunningJob) -> None:
        """Put back a job whose process stopped itself because this worker did not renew its lease in time."""
        reason = "the job process stopped itself: its worker did not renew the lease in time"
        if self.store.end_job(running.job.claim, QUEUED, reason):
            self._count(running.job.claim.job_id, REQUEUED, reason)
        else:
            self._count_lost(running.job.claim.job_id, f"{reason}, and the claim was lost")

    def _count_lost(self, job_id: int, why: str) -> None:
        job = self._job(job_id)
        detail = _job_detail(job)
        self._count(job_id, LOST, f"{why}; the job is now {job['state']}" + (f" ({detail})" if detail else ""))

    def _kill_timed_out(self) -> None:
        if self.options.timeout is None:
            return
        now = time.monotonic()
        for pid, running in list(self._running.items()):
            if now - running.started > self.options.timeout and running.kill_at is None:  # a lost job's own deadline is sooner
                _kill_group(pid)
                os.waitpid(pid, 0)
                del self._running[pid]
                reason = f"timed out after {self.options.timeout:g} s"
                if self.store.end_job(running.job.claim, TIMEOUT, reason):
                    self._count(running.job.claim.job_id, TIMEOUT, reason)
                else:
                    self._count_lost(running.job.claim.job_id, f"{reason}, but this worker's claim was already lost")
                self._advance_search(running.job)

    def _lease_work(self) -> None:
        """Renew this worker's leases, stop the jobs whose claim was lost, requeue jobs of lost workers."""
        now = time.monotonic()
        if now < self._next_lease_work:
            return
        self._next_lease_work = now + min(max(self.options.lease / 4, 0.2), _LONGEST_LEASE_CHECK)
        if self._running or self._idle_beat_due(now):
            self._renew_leases(now)
        for job_id in self.store.requeue_expired():
            self._say(f"job {job_id} requeued: its worker was lost")
        for run_id in self.store.end_stale_runs():
            self._say(f"run {run_id} DIED: no heartbeat from its process (not a queued job)")

    def _renew_leases(self, now: float) -> None:
        """Renew the leases of the running jobs (none: an idle worker) and, in the same call, tell the registry that this
        worker is there, working, idle or stopping; stop the jobs whose claim was lost."""
        stopping = self._stop_requested_at is not None
        held = [running for running in self._running.values() if running.kill_at is None]
        lost = self.store.renew_leases([running.job.claim for running in held], self.options.lease, WorkerBeat(self.name, stopping))
        self._last_beat = (now, bool(self._running), stopping)
        for running in held:
            if running.job.claim.job_id not in lost:
                running.claim_deadline.move_to(self._claim_surely_held_until(now))
        self._stop_lost_jobs(lost)

    def _idle_beat_due(self, now: float) -> bool:
        """Whether a worker without jobs should tell the registry it is there: it just became idle or started stopping,
        or half a lease passed since it last did (so a live worker is never taken for gone, see :data:`~hyperspace_hydra.store.base.WORKER_GONE_LEASES`)."""
        last, was_working, was_stopping = self._last_beat
        return was_working or was_stopping != (self._stop_requested_at is not None) or now - last >= self.options.lease / 2

    def _claim_surely_held_until(self, asked: float) -> float:
        """When a claim or renewal asked at ``asked`` may expire at the earliest, less a margin (a quarter
        of the lease, at most a second) for a job process that notices late."""
        return asked + self.options.lease - min(self.options.lease / 4, _LONGEST_LEASE_CHECK)

    def _stop_lost_jobs(self, lost: set[int]) -> None:
        """Stop the processes of jobs whose claim was lost to someone else (jobs that ended themselves are reaped):
        SIGTERM now, so that their runs record their end; :meth:`_reap_finished` counts them once they exited, or
        SIGKILLs them when :data:`_LOST_JOB_SECONDS` passed. The loop goes on meanwhile: a job that takes its time to
        stop never delays the lease renewals of the others."""
        taken = {job["id"] for job in self.store.list_jobs(job_ids=sorted(lost)) if job["state"] in _TAKEN_AWAY} if lost else set()
        for pid, running in self._running.items():
            if running.job.claim.job_id in taken and running.kill_at is None:
                _signal_group(pid, signal.SIGTERM)
                running.kill_at = time.monotonic() + _LOST_JOB_SECONDS

    def _advance_search(self, job: ClaimedJob) -> None:
        """When a trial of a search sweep ends, enqueue the next trial(s) of that sweep."""
        if job.sweep_id is None:
            return
        if self._sweep(job.sweep_id)["kind"] != SEARCH:
            return
        from hyperspace_hydra.hpo.search import ObjectiveMissingError, advance  # Optuna loads only in workers that serve a search

        try:
            added = advance(self.store, job.sweep_id, lambda overrides, output_dir: new_job(self._composer.compose(overrides, job.sweep_id), overrides, output_dir=output_dir))
        except ObjectiveMissingError as stopped:  # the sweep has ended: its other trials run out, none is added
            self._say(str(stopped))
            return
        if added:
            self._say(f"search sweep {job.sweep_id}: enqueued trial job(s) {', '.join(map(str, added))}")

    def _sweep(self, sweep_id: int) -> dict[str, Any]:
        """The kind and spec of sweep ``sweep_id``, read once."""
        if sweep_id not in self._sweeps:
            sweep = self.store.get_sweep(sweep_id)
            self._sweeps[sweep_id] = {"kind": sweep["kind"], "spec": sweep["spec"]}
        return self._sweeps[sweep_id]

    def _count(self, job_id: int, state: str, detail: str) -> None:
        self._counters.finished += 1
        self._counters.outcomes[state] = self._counters.outcomes.get(state, 0) + 1
        self._say(f"job {job_id} {state}: {detail}")

    # stopping

    def _install_signal_handlers(self) -> dict[signal.Signals, Any]:
        os.set_blocking(self._wakeup_write, False)
        previous = {signum: signal.getsignal(signum) for signum in (*_STOP_SIGNALS, signal.SIGCHLD)}
        signal.set_wakeup_fd(self._wakeup_write)
        for signum in _STOP_SIGNALS:
            signal.signal(signum, self._request_stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the loop through the wakeup fd
        return previous

    def _restore_signal_handlers(self, previous: dict[signal.Signals, Any]) -> None:
        signal.set_wakeup_fd(-1)
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _request_stop(self, signum: int, _frame: object) -> None:
        if self._stop_requested_at is None:
            self._stop_requested_at = time.monotonic()
            self.stop_signal = signum
            self._say(f"worker {self.name}: {signal.Signals(signum).name}, no new jobs; {len(self._running)} running get {self.options.grace:g} s")
        else:
            self._stop_requested_at = -float("inf")  # a second signal ends the grace period now

    def _stopped(self) -> bool:
        if not self._running:
            return True
        if time.monotonic() - self._stop_requested_at < self.options.grace:  # type: ignore[operator]
            return False
        self._interrupt_running()
        return True

    def _interrupt_running(self) -> None:
        for pid in self._running:
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_WAIT_SECONDS
        while self._running and time.monotonic() < deadline:
            for pid, running in list(self._running.items()):
                waited, status = os.waitpid(pid, os.WNOHANG)
                if waited:
                    del self._running[pid]
                    self._requeue(running, "interrupted: the worker stopped", status)
            self._wait(_SHORTEST_POLL)
        for pid, running in list(self._running.items()):
            _kill_group(pid)
            os.waitpid(pid, 0)
            del self._running[pid]
            self._requeue(running, "killed: the worker stopped and the job did not end in time", None)

    def _requeue(self, running: _RunningJob, reason: str, status: int | None) -> None:
        """Put a stopped job back in the queue; ``status`` is None for a job process the worker had to kill.

        A job process that ended on the worker's SIGTERM has normally requeued its job itself,
        its run INTERRUPTED; the worker requeues the job when it did not.
        """
        job_id = running.job.claim.job_id
        if running.kill_at is not None:  # its claim was lost before the worker stopped: it was being stopped already
            self._count_lost(job_id, f"{reason}, after this worker's claim was lost")
        elif status is not None and _lost_its_claim(status):
            self._count_lost(job_id, f"{reason}, after this worker's claim was lost")
        elif self.store.end_job(running.job.claim, QUEUED, reason) or status is not None:
            self._count(job_id, REQUEUED, reason)
        else:
            self._count_lost(job_id, f"{reason}, but this worker's claim was already lost")

    def _wait(self, seconds: float) -> None:
        """Sleep up to ``seconds`` (none if negative); a signal (a child exiting, SIGTERM) wakes it at once."""
        readable, _, _ = select.select([self._wakeup_read], [], [], max(seconds, 0.0))
        if readable:
            os.read(self._wakeup_read, 512)


def serve(app: App, store_uri: str, options: WorkerOptions, extra_allowed: Sequence[str] = (), say: Callable[[str], None] = print) -> Worker:
    """Run a worker for ``app`` on the store at ``store_uri`` until it stops; return it (see ``stop_signal``).

    The ``_target_`` allowlist is the study's package, its ``hyperspace.allowed_targets`` and
    ``extra_allowed``; store calls are retried with backoff while the store is unreachable.
    """
    configured = app.settings().allowed_targets
    options = replace(options, allowed=allowed_packages(app.package, [*configured, *extra_allowed]))
    with open_retrying(store_uri) as store:
        worker = Worker(app, store, options, say=say)
        worker.run()
    return worker


def worker_name() -> str:
    """``host:pid:random``, plus ``:slurm-<job id>`` inside a SLURM job (``hyperspace slurm ls`` matches it)."""
    name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    job_id = slurm_job_id()
    return f"{name}:slurm-{job_id}" if job_id else name


def _gather_provenance_once(app: App) -> None:
    """Fill the per-process caches of host, packages and code version before forking, so jobs inherit them."""
    provenance.host_info()
    provenance.package_versions()
    provenance.code_version(provenance.source_directory(app.task_function))


def _die_with_worker(worker_pid: int, claim_deadline: _ClaimDeadline, log_fd: int) -> None:
    """Make this job process die when the worker ``worker_pid`` (its parent) does, or fails to renew its claim in time;
    the reason for the latter is written to ``log_fd`` (the job's log, not the run's captured output: no thread
    of this process could copy it there before the process group is killed).

    On Linux the kernel's parent-death signal kills it the moment the worker dies; a worker that
    died before that was set is caught by the check that follows. A watcher thread kills the
    process group when ``claim_deadline`` passes, and within half a second of the parent changing
    (where the death signal is missing). Processes the task starts itself are not covered when the
    death signal strikes: they must watch their own parent, as PyTorch's data-loader workers do.
    """
    if sys.platform.startswith("linux"):
        c_library().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != worker_pid:
        os.killpg(0, signal.SIGKILL)
    watcher = threading.Thread(target=_kill_group_when_unclaimed, args=(worker_pid, claim_deadline, log_fd), name="hyperspace-claim-watch", daemon=True)
    watcher.start()


def _kill_group_when_unclaimed(worker_pid: int, claim_deadline: _ClaimDeadline, log_fd: int) -> None:
    """Kill this process group once the worker is gone or its claim on the job may have expired."""
    while os.getppid() == worker_pid:
        left = claim_deadline.seconds_left()
        if left <= 0:
            claim_deadline.give_up()
            os.write(log_fd, b"hyperspace: the worker did not renew this job's lease in time; stopping before another attempt may start\n")
            break
        time.sleep(min(left, _WORKER_WATCH_SECONDS))
    os.killpg(0, signal.SIGKILL)


def _stopped_itself_unrenewed(status: int, claim_deadline: _ClaimDeadline) -> bool:
    """Whether a job process's wait ``status`` and its ``claim_deadline`` say that it killed itself because its claim's
    deadline passed (this worker was late to renew the lease): SIGKILLed, after it gave up or once the deadline passed
    (a kill by anyone else after the deadline counts the same: the claim may have expired)."""
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    return killed and (claim_deadline.given_up() or claim_deadline.passed())


def _does_not_compose(error: HyperspaceError) -> str:
    return f"the job does not compose: {error}"


def _still_held(job: dict[str, Any], claim: Claim) -> bool:
    """Whether ``job`` (as the store lists it) is still RUNNING under ``claim``: its process did not end it."""
    return bool(job["state"] == RUNNING and job["token"] == claim.token)


def _lost_its_claim(status: int) -> bool:
    """Whether a job process's wait ``status`` says its run ended after the job's claim was lost."""
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == job_process.CLAIM_LOST_EXIT_STATUS


def _job_detail(job: dict[str, object]) -> str:
    """A job's run, else its error, for an outcome line."""
    return f"run {job['run_id']}" if job["run_id"] else str(job["error"] or "")


def _redirect_output(log_path: Path) -> None:
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)


def _exit_reason(status: int, log_path: Path) -> str:
    if os.WIFSIGNALED(status):
        what = f"the job process was killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
    else:
        what = f"the job process exited with status {os.waitstatus_to_exitcode(status)}"
    return f"{what} before recording its end; last output: {_tail(log_path)}"


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(none)"
    return " | ".join(line for line in text.strip().splitlines()[-lines:]) or "(none)"


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass


def _kill_group(pid: int) -> None:
    _signal_group(pid, signal.SIGKILL)


