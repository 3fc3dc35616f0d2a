"""The one exception type for mistakes a user can make and fix."""

from hydra.errors import CompactHydraException


class HyperspaceError(CompactHydraException):
    """A problem the user can fix: bad input, a missing run, an unusable store.

    The message says what went wrong and what to do; the CLI prints it as one
    line without a traceback, and so does Hydra when one of our plugins (launcher,
    sweeper, callback) raises it inside ``python -m study.run``: Hydra prints a
    ``CompactHydraException`` as its message alone.
    """


def one_line(error: BaseException) -> str:
    """What went wrong, on one line: a :class:`HyperspaceError`'s message, else the kind and message of the
    error (of the database driver's own error, when a library wrapped it with the statement it ran)."""
    if isinstance(error, HyperspaceError):
        return " ".join(str(error).split())
    original = getattr(error, "orig", None) or error
    return f"{type(original).__name__}: {' '.join(str(original).split())}"
