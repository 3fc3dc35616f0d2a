"""The one exception type for mistakes a user can make and fix."""

from hydra.errors import CompactHydraException


class HyperspaceError(CompactHydraException):
    """A problem the user can fix: bad input, a missing run, an unusable store.

    The message says what went wrong and what to do; the CLI prints it as one
    line without a traceback, and so does Hydra when one of our plugins (launcher,
    sweeper, callback) raises it inside ``python -m study.run``: Hydra prints a
    ``CompactHydraException`` as its message alone.
    """
