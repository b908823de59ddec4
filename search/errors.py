"""The one exception type a person sees as a message instead of a traceback."""

from __future__ import annotations


class NoiseSearchError(Exception):
    """A problem the user can act on: bad input, unknown study, unreachable storage.

    The CLI prints ``str(error)`` on one line and exits non-zero; nothing else
    catches it, so library callers get a normal exception.
    """

    exit_code = 2
