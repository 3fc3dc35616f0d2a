"""hyperspace_hydra: record, queue and tune Hydra experiments.

Task code needs nothing from here; :func:`log_scalar` and :class:`Scenario` are
optional sugar. :class:`Queue` and :func:`compose` serve notebooks; the rest is used
through the Hydra plugins and the ``hyperspace`` CLI.
"""

from hyperspace_hydra.app import compose
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.queue import Queue
from hyperspace_hydra.scenario import Scenario
from hyperspace_hydra.store import open_store
from hyperspace_hydra.tracking import log_scalar

__version__ = "0.1.0"

__all__ = ["HyperspaceError", "Queue", "Scenario", "__version__", "compose", "log_scalar", "open_store"]
