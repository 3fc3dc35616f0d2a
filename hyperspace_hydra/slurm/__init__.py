"""SLURM: what a SLURM job's environment tells (``environment``: job ids, GPUs, file systems; read by
recording and workers) and starting queue workers as a SLURM job array (``workers``, on top of the worker)."""
