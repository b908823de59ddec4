"""Loading TensorFlow without its start-up messages on the user's terminal.

TensorFlow's C++ libraries write their start-up notes to file descriptor 2 while they load,
before TF_CPP_MIN_LOG_LEVEL is read; the only way to keep them off the terminal is to hold
the descriptor meanwhile. `search.engine.load` (an engine module imports TensorFlow) and
`load_tensorflow` (whoever else may import it first: a user's builder or loader file, a
worker) both hold it here. This module imports nothing of the package but `errors`, so
anything may import it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
from collections.abc import Iterator

from search.errors import debugging


def quiet_tensorflow_logging() -> None:
    """TensorFlow's C++ logging below FATAL (XLA's notes while compiling, "failed call to
    cuInit" on a machine without a GPU) is not for users; it is read when TensorFlow loads,
    so an entry point (the CLI, the API's run) calls this first. --debug leaves it alone."""
    if not debugging():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# What TensorFlow wrote to stderr while this process imported it (see `stderr_captured`).
startup_messages: list[str] = []


@contextlib.contextmanager
def stderr_captured() -> Iterator[None]:
    """File descriptor 2 goes to a temporary file while the block runs; its text is kept in
    `startup_messages`, and written out after all if the block fails.

    TensorFlow's C++ start-up messages ("All log messages before absl::InitializeLog() is
    called ...", oneDNN, "Could not find cuda drivers") are written to fd 2 while its shared
    libraries load, before TF_CPP_MIN_LOG_LEVEL is read: only redirecting the descriptor
    keeps them off the user's terminal. With --debug nothing is redirected.
    """
    if debugging():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    failed = False
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace")
            startup_messages.append(text)
            if failed and text:  # the import failed: what it said may be why
                sys.stderr.write(text)


def load_tensorflow() -> None:
    """Import TensorFlow now, unless it is already, its C++ start-up messages kept off the
    terminal (``--debug`` shows them).

    The first import of TensorFlow in a process writes six lines to file descriptor 2
    ("All log messages before absl::InitializeLog() ...", oneDNN, "Could not find cuda
    drivers", each twice) that TF_CPP_MIN_LOG_LEVEL does not stop; `stderr_captured` holds
    the descriptor while TensorFlow loads, as `engine.load` does for an engine. Whoever may
    import it next -- a builder's or a loader's file, the Keras engines (which import Keras
    lazily), a worker process -- calls this first; a run imports TensorFlow anyway, so this
    only moves the import earlier.
    """
    if "tensorflow" in sys.modules:
        return
    with stderr_captured():
        importlib.import_module("tensorflow")
