"""What a SLURM job's environment tells: what a run records about the SLURM job it ran in, a worker's GPUs, network file systems.

Runs launched by Hydra's submitit launcher and jobs run by SLURM-launched workers
(:mod:`hyperspace_hydra.slurm.workers`) record ``host.slurm`` (job id, array job id and
index, partition, node, cluster, the GPUs SLURM gave the job) and ``host.visible_gpus``
(``CUDA_VISIBLE_DEVICES`` as the job saw it), next to Sacred's host information.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

_JOB_VARIABLES = {
    "job_id": "SLURM_JOB_ID",
    "array_job_id": "SLURM_ARRAY_JOB_ID",
    "array_task_id": "SLURM_ARRAY_TASK_ID",
    "job_name": "SLURM_JOB_NAME",
    "partition": "SLURM_JOB_PARTITION",
    "node": "SLURMD_NODENAME",
    "cluster": "SLURM_CLUSTER_NAME",
    "gpus": "SLURM_JOB_GPUS",
}
_NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "lustre", "gpfs", "beegfs", "ceph", "glusterfs", "fuse.sshfs", "9p")

_SQLITE_PREFIX = "sqlite:///"


def slurm_job(environ: Mapping[str, str] = os.environ) -> dict[str, str | None] | None:
    """The SLURM job this process runs in (ids, partition, node, cluster, GPUs), or None outside SLURM."""
    if "SLURM_JOB_ID" not in environ:
        return None
    return {field: environ.get(variable) for field, variable in _JOB_VARIABLES.items()}


def slurm_job_id(environ: Mapping[str, str] = os.environ) -> str | None:
    """The job id ``scontrol``/``scancel`` take: ``<array job id>_<index>`` for an array element, else the job id."""
    if environ.get("SLURM_ARRAY_JOB_ID") and environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{environ['SLURM_ARRAY_JOB_ID']}_{environ['SLURM_ARRAY_TASK_ID']}"
    return environ.get("SLURM_JOB_ID")


def visible_gpus(environ: Mapping[str, str] = os.environ) -> list[str] | None:
    """The GPUs this process may use according to ``CUDA_VISIBLE_DEVICES``, or None when it is not set."""
    value = environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return [gpu.strip() for gpu in value.split(",") if gpu.strip()]


def gpu_shares(gpus: Sequence[str] | None, processes: int) -> list[list[str]] | None:
    """The visible GPUs split into one equal, disjoint share per job process (in order), or None to
    leave them shared: one process, no ``CUDA_VISIBLE_DEVICES``, or GPUs that do not split evenly."""
    if not gpus or processes < 2 or len(gpus) % processes:
        return None
    size = len(gpus) // processes
    return [list(gpus[start : start + size]) for start in range(0, len(gpus), size)]


def execution_info(environ: Mapping[str, str] = os.environ) -> dict[str, object]:
    """What a run records next to Sacred's host info: ``slurm`` and ``visible_gpus``, each only when known."""
    info: dict[str, object] = {}
    job = slurm_job(environ)
    if job is not None:
        info["slurm"] = job
    gpus = visible_gpus(environ)
    if gpus is not None:
        info["visible_gpus"] = gpus
    return info


def network_filesystem(path: Path, mounts_file: Path = Path("/proc/mounts")) -> str | None:
    """The type of the network filesystem ``path`` lives on (``nfs4``, ``lustre``...), or None for a local one."""
    try:
        lines = mounts_file.read_text().splitlines()
    except OSError:
        return None
    resolved = str(path.resolve())
    best_mount, best_type = "", None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount, fstype = fields[1], fields[2]
        inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best_mount):
            best_mount, best_type = mount, fstype
    return best_type if best_type in _NETWORK_FILESYSTEMS else None


def sqlite_store_warning(store_uri: str) -> str | None:
    """The loud warning for jobs on SLURM nodes that write to a SQLite store, or None for other stores."""
    if not store_uri.startswith(_SQLITE_PREFIX):
        return None
    path = Path(store_uri[len(_SQLITE_PREFIX):])
    filesystem = network_filesystem(path.parent if path.parent.exists() else Path.cwd())
    where = f"on a {filesystem} filesystem" if filesystem else "on a local filesystem that only jobs on this machine reach"
    return (
        f"WARNING: the store is SQLite ({path}, {where}). SLURM jobs reach a SQLite store only through a "
        "shared filesystem, and SQLite's file locking is unreliable over NFS and similar filesystems "
        "(lost or corrupted writes). Use PostgreSQL or MongoDB with SLURM (hyperspace.store=postgresql://...)."
    )
