"""The one exception type for mistakes a user can make and fix."""


class HyperspaceError(Exception):
    """A problem the user can fix: bad input, a missing run, an unusable store.

    The message says what went wrong and what to do; the CLI prints it as one
    line without a traceback.
    """
