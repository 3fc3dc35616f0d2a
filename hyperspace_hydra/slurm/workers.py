"""Workers on SLURM: N ``hyperspace worker`` processes submitted as one job array through submitit.

Each array element runs :class:`SlurmWorkerJob` on a node: a worker in the study's
directory that drains the queue exactly as ``hyperspace worker`` does. SLURM decides how
long it may live:

- ``scancel`` and preemption send SIGTERM to every process of the job; the worker stops
  claiming, its running job's run ends INTERRUPTED and the job goes back to the queue
  (not counted as an attempt), and the worker exits before SLURM's ``KillWait`` is up.
- Before the time limit SLURM sends SIGUSR2 (``--signal=USR2@<signal delay>``, which
  submitit asks for): the same, then with ``resubmit`` the worker puts its own SLURM
  job back in SLURM's queue (``scontrol requeue``), so it comes back and goes on draining
  (SLURM holds a requeued job for about two minutes before it may start again).
  A job longer than a worker's time limit is interrupted again at every limit: give
  workers a time limit above the longest job.

The running job's process is stopped at once by default (``grace`` 0): SLURM's grace
period is short, and a job that can resume from its own checkpoints loses only the
time since its last one.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hyperspace_hydra.app import load_app
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.slurm.environment import slurm_job_id
from hyperspace_hydra.worker import WorkerOptions, serve

JOB_NAME = "hyperspace-worker"
"""The SLURM job name of every worker job (``hyperspace slurm ls`` lists jobs by it)."""

_TIME_LIMIT = re.compile(r"^(?:(?P<days>\d+)-)?(?P<parts>\d+(?::\d+){0,2})$")


@dataclass(frozen=True)
class SlurmResources:
    """What each worker job asks SLURM for."""

    partition: str | None = None
    time_minutes: int = 240
    gpus_per_worker: int | None = None
    cpus_per_worker: int | None = None
    mem_gb: float | None = None
    signal_delay_s: int = 90

    def executor_parameters(self) -> dict[str, Any]:
        """These resources as submitit ``SlurmExecutor`` parameters (unset ones left to SLURM's defaults)."""
        parameters: dict[str, Any] = {"time": self.time_minutes, "signal_delay_s": self.signal_delay_s}
        optional = {
            "partition": self.partition,
            "gpus_per_node": self.gpus_per_worker,
            "cpus_per_task": self.cpus_per_worker,
            "mem": f"{math.ceil(self.mem_gb * 1024)}M" if self.mem_gb is not None else None,  # sbatch takes whole units
        }
        parameters.update({name: value for name, value in optional.items() if value is not None})
        return parameters


@dataclass
class SlurmWorkerJob:
    """What each element of the worker array runs on its node (pickled by submitit)."""

    app: str
    directory: str
    store_uri: str
    options: WorkerOptions
    extra_allowed: tuple[str, ...] = ()
    resubmit: bool = False

    def __call__(self, index: int) -> dict[str, int]:
        """Run worker number ``index`` until it stops; return how many jobs ended in each state."""
        os.chdir(self.directory)
        if self.directory not in sys.path:
            sys.path.insert(0, self.directory)
        say = _say_as(index)
        worker = serve(load_app(self.app), self.store_uri, self.options, self.extra_allowed, say=say)
        if worker.stop_signal == signal.SIGUSR2 and self.resubmit:
            _requeue_this_job(say)
        return worker.outcomes


def submit_workers(count: int, job: SlurmWorkerJob, resources: SlurmResources, folder: Path) -> list[Any]:
    """Submit ``count`` workers as one SLURM job array; return submitit's jobs (logs and pickles in ``folder``)."""
    import submitit

    if resources.signal_delay_s >= resources.time_minutes * 60:
        raise HyperspaceError(
            f"the signal delay ({resources.signal_delay_s} s) must be shorter than the time limit ({resources.time_minutes} min): "
            "SLURM would warn the workers as soon as they start"
        )
    check_slurm_conf()
    executor = submitit.SlurmExecutor(folder=folder)
    executor.update_parameters(job_name=JOB_NAME, array_parallelism=count, **resources.executor_parameters())
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's errors; they are in the exception
            return executor.map_array(job, range(count))
    except (submitit.core.utils.FailedJobError, OSError) as error:
        raise HyperspaceError(f"sbatch failed: {_last_line(str(error))}") from None


def check_slurm_conf() -> None:
    """A clear error when ``SLURM_CONF`` names a missing file (SLURM's clients would retry for a minute)."""
    configured = os.environ.get("SLURM_CONF")
    if configured and not Path(configured).is_file():
        raise HyperspaceError(f"SLURM_CONF is {configured}, which is not a file; point it at the cluster's slurm.conf or unset it")


def parse_time_limit(text: str) -> int:
    """A SLURM time limit (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM[:SS]``) in minutes, seconds rounded up."""
    match = _TIME_LIMIT.match(text.strip())
    if match is None:
        raise HyperspaceError(f"invalid time limit {text!r}: expected MINUTES, HH:MM:SS or DAYS-HH:MM:SS (e.g. 4:00:00)")
    parts = [int(part) for part in match["parts"].split(":")]
    if match["days"] is None:
        units = {1: (60,), 2: (60, 1), 3: (3600, 60, 1)}[len(parts)]
    else:
        units = (3600, 60, 1)[: len(parts)]
    seconds = int(match["days"] or 0) * 86400 + sum(part * unit for part, unit in zip(parts, units))
    if seconds <= 0:
        raise HyperspaceError(f"invalid time limit {text!r}: it must be positive")
    return math.ceil(seconds / 60)


def _requeue_this_job(say: Callable[[str], None]) -> None:
    """Put this SLURM job back in SLURM's queue, then leave without a result (as submitit does)."""
    job_id = slurm_job_id()
    if job_id is None:
        return
    subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=60, capture_output=True)
    say(f"SLURM job {job_id} requeued: it will start again and go on draining the queue")
    raise SystemExit(-1)


def _say_as(index: int) -> Callable[[str], None]:
    def say(line: str) -> None:
        print(f"[worker {index}] {line}", flush=True)

    return say


def _last_line(text: str) -> str:
    """The last non-empty line of a command's error output (where sbatch and squeue say what is wrong)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def list_worker_jobs() -> list[dict[str, str]]:
    """The worker jobs SLURM knows (pending and running), from ``squeue``: id, state, elapsed, limit, nodes or reason."""
    fields = ("slurm_job", "state", "elapsed", "time_limit", "nodes_or_reason")
    check_slurm_conf()
    try:
        result = subprocess.run(
            ["squeue", "--noheader", f"--name={JOB_NAME}", "--format=%i|%T|%M|%l|%R"],
            capture_output=True, text=True, timeout=60, check=True,
        )
    except subprocess.CalledProcessError as error:
        raise HyperspaceError(f"squeue failed: {_last_line(error.stderr or str(error))}") from None
    except OSError as error:
        raise HyperspaceError(f"squeue failed: {error}") from None
    return [dict(zip(fields, line.split("|", len(fields) - 1))) for line in result.stdout.splitlines() if line.strip()]


def slurm_job_of_worker(worker: str | None) -> str | None:
    """The SLURM job id in a worker's name (see :func:`hyperspace_hydra.worker.worker_name`), if any."""
    if not worker or ":slurm-" not in worker:
        return None
    return worker.rsplit(":slurm-", 1)[1]
