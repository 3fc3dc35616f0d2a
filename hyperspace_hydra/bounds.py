"""The limits a number given by a user must respect, checked in one place so that every refusal reads the same.

A number outside its limits is a typo (``1e20`` processes, a negative budget) and would fail half way through,
or, worse, be accepted and run for ever: it is refused in one line before anything starts."""

from __future__ import annotations

from hyperspace_hydra.errors import HyperspaceError

MAX_COUNT = 2**31 - 1
"""The largest count a user gives (``--limit``, ``--processes``, ``--max-jobs``, workers, GPUs, CPUs, a search's
``n_trials`` and ``n_jobs``): what the integer columns of every store hold."""
MAX_SECONDS = 366 * 24 * 3600
"""The longest time in seconds an option takes (``--lease``, ``--timeout``, ``--grace``, ``--signal-delay``): a year.
A longer one is a typo, and a lease that long would overflow the date it expires at."""
MAX_SEED = 2**31 - 1
"""The largest sampler seed: a search seeds each ask with its seed plus the number of trials told, and Optuna's
samplers take seeds below 2**32."""


def require_positive(*options: tuple[str, float | None], most: int) -> None:
    """Raise :class:`HyperspaceError` for the first ``(option, value)`` given a number that is not more than 0 (NaN
    too) or is more than ``most``."""
    for option, value in options:
        if value is not None and not 0 < value <= most:  # `not`: NaN is refused too
            raise HyperspaceError(f"{option} must be more than 0 and at most {most}, not {_shown(value)}")


def require_not_negative(option: str, value: float, most: int) -> None:
    """Raise :class:`HyperspaceError` if ``value`` of ``option`` is less than 0 (NaN too) or more than ``most``."""
    if not 0 <= value <= most:
        raise HyperspaceError(f"{option} must be 0 or more and at most {most}, not {_shown(value)}")


def _shown(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
