"""search.interrupts: a stop signal interrupts the run and leaves a backstop event."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from search.interrupts import catch_interrupts, sigterm_as_interrupt


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_raises_and_sets_the_event_then_handlers_are_restored(signum):
    before = signal.getsignal(signum), sys.unraisablehook
    with pytest.raises(KeyboardInterrupt):
        with catch_interrupts() as stopping:
            os.kill(os.getpid(), signum)
            for _ in range(1000):  # the handler runs between bytecodes
                pass
    assert stopping.is_set()
    assert (signal.getsignal(signum), sys.unraisablehook) == before


def test_an_interrupt_swallowed_in_a_finalizer_is_not_printed(capsys):
    class Finalized:
        def __del__(self) -> None:
            raise KeyboardInterrupt

    with catch_interrupts():
        Finalized()  # collected at once: Python reports the exception through unraisablehook
    assert "KeyboardInterrupt" not in capsys.readouterr().err


def test_sigterm_stops_a_command_like_ctrl_c():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass
    assert signal.getsignal(signal.SIGTERM) == before
