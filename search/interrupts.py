"""Ctrl-C and SIGTERM: how a run stops, in one place.

A stop signal raises KeyboardInterrupt in the main thread, so the trial in progress is failed
(and run again on resume) like after Ctrl-C; `docker stop` sends SIGTERM. It also sets a
``threading.Event``: Python swallows an exception raised inside a finalizer ("Exception
ignored in ..."), and a signal handler can run there. The event is the backstop:
`StudyRunner.run(stop=...)` stops at its next check, and the swallowed interrupt is not
printed as a traceback.

Three users: the CLI (`sigterm_as_interrupt` around every command), a run in this process or
the parent of local workers (`catch_interrupts`), and each worker process
(`install_in_worker`: the parent passes Ctrl-C on once, as SIGTERM).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

_Handler = Callable[[int, Any], None]


def is_main_thread() -> bool:
    """Signal handlers can only be installed from the main thread."""
    return threading.current_thread() is threading.main_thread()


def _raising(stopping: threading.Event | None) -> _Handler:
    def interrupt(signum: int, frame: Any) -> None:
        if stopping is not None:
            stopping.set()
        raise KeyboardInterrupt

    return interrupt


def ignore_swallowed_interrupt(unraisable: Any) -> None:
    """``sys.unraisablehook``: an interrupt raised inside a finalizer cannot propagate; the
    stop event takes over, so it is not printed as a traceback. Anything else is printed."""
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        return
    sys.__unraisablehook__(unraisable)


@contextlib.contextmanager
def _handlers(handlers: dict[int, Any]) -> Iterator[None]:
    """Install signal handlers and the unraisable hook; restore the previous ones on exit."""
    previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
    previous_hook, sys.unraisablehook = sys.unraisablehook, ignore_swallowed_interrupt
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Around a CLI command: SIGTERM stops it like Ctrl-C (the trial in progress is failed)."""
    if not is_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raising(None))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def catch_interrupts() -> Iterator[threading.Event]:
    """Inside: Ctrl-C and SIGTERM raise KeyboardInterrupt *and* set the event yielded."""
    stopping = threading.Event()
    if not is_main_thread():
        yield stopping
        return
    handler = _raising(stopping)
    with _handlers({signal.SIGINT: handler, signal.SIGTERM: handler}):
        yield stopping


def install_in_worker() -> threading.Event:
    """In a local worker process, for its lifetime: Ctrl-C is ignored (it reaches the whole
    process group; the parent passes it on once, as SIGTERM, so a worker is never interrupted
    a second time while it records its failed trial), SIGTERM interrupts and sets the event
    returned."""
    stopping = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raising(stopping))
    sys.unraisablehook = ignore_swallowed_interrupt
    return stopping
