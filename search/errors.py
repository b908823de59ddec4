"""The exception types a person sees as a one-line message instead of a traceback.

Every error a user can act on is a NoiseSearchError; the subclasses say which part of the
input or the environment to look at, for callers that want to tell them apart. The CLI
prints ``str(error)`` on one line and exits with ``exit_code``; nothing else catches them,
so library callers get normal exceptions.
"""

from __future__ import annotations

import os

# `noise-search --debug` sets it (worker processes inherit it): errors also print their
# traceback, and TensorFlow's start-up messages reach the terminal (search.engine.load).
DEBUG_ENV = "NOISE_SEARCH_DEBUG"


def debugging() -> bool:
    """Whether --debug (or $NOISE_SEARCH_DEBUG=1) asked to see what is normally hidden."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


class NoiseSearchError(Exception):
    """A problem the user can act on: bad input, unknown study, unreachable storage."""

    exit_code = 2


class SpecError(NoiseSearchError):
    """A study file or --set override that cannot be used; the message says why
    (search.spec raises it, before any storage is opened)."""


class StorageError(NoiseSearchError):
    """The storage cannot be opened, reached or shared as asked."""


class StudyError(NoiseSearchError):
    """The study named does not exist, does not match, or has nothing to show yet."""


class ReportError(NoiseSearchError):
    """The report cannot be written where asked."""
