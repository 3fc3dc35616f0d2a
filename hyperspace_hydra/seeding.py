"""Seed the usual random number generators from a run's ``seed``."""

from __future__ import annotations

import random
import sys


def seed_everything(seed: int) -> None:
    """Seed ``random``, numpy (if installed) and torch (only if already imported).

    torch is never imported here: importing it costs seconds, and a task that does
    not use it has nothing to seed.
    """
    random.seed(seed)
    try:
        import numpy
    except ImportError:
        pass
    else:
        numpy.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
