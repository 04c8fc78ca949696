"""The one exception type that means "the user's input is wrong".

Anything raised as :class:`ConfigError` is reported as a single line naming the
problem, never with a traceback: it is the user's to fix, not ours.
"""


class ConfigError(ValueError):
    """A config or expression the runner refuses, with a message that says why."""


class JobTimeout(Exception):
    """A job ran past ``limits.time_s``."""


class JobError(RuntimeError):
    """A job whose routine raised, from the Python API: the one-line message the CLI logs.

    The exception the routine raised is its ``__cause__``.
    """
