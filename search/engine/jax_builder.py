"""The jax engine: every repeat of a model of your own (``model.builder``) trained at once,
in one compiled JAX program (search.engine._replicas), in a process of its own.

Why a process of its own: Keras chooses its backend once per process, when it is first
imported (``KERAS_BACKEND``), and the rest of noise-search runs Keras on TensorFlow (the
builder checked against the data, the keras engine, the report); a test session or a
benchmark holds both engines. So training runs in a child process started with
``KERAS_BACKEND=jax``, once per process that trains (each worker of ``--workers`` starts its
own) and kept for that process's life, so that JAX, Keras, the repeats' initial values and
the compiled programs load once. It is sent (spec, data, configuration, repeats) over a
pipe -- the data only when it changes -- and answers with the TrainResult, or with the
exception it raised (a builder's UserCodeError stays one line; ``--debug`` shows the
child's traceback too).

Interrupts: Ctrl-C reaches the child as well (the terminal signals the whole process
group); it ignores SIGINT and is stopped by its parent, which is interrupted while it waits,
kills the child, and goes on with the interrupt as ever (the trial is failed and run again);
a fresh child trains the next trial. A child whose parent died exits.

``predict`` is keras_builder's: the final weights are ``model.get_weights()``'s less the
noise layers', so a model built with Keras's own noise layers takes them as they are.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from search.engine import keras_builder
from search.engine._jax_limits import ABOUT, MODELS, NAME, SITES, check
from search.errors import NoiseSearchError, debugging

if TYPE_CHECKING:
    import numpy as np

    from search.data import Dataset
    from search.engine._common import TrainResult
    from search.noise import NoiseConfig
    from search.spec import StudySpec

__all__ = ["ABOUT", "MODELS", "NAME", "SITES", "check", "predict", "stop", "train"]


class RemoteTraceback(Exception):
    """The traceback of an exception raised in the jax engine's process (chained to it)."""

    def __str__(self) -> str:
        return str(self.args[0])


class _Child:
    """The jax engine's process and our end of its pipe (a socket pair: one channel each way,
    pickled messages by multiprocessing's Connection). A plain subprocess, not a
    multiprocessing one: nothing of the caller's ``__main__`` is imported again there."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        # Its stderr goes to a file (--debug: to ours): TensorFlow, which draws [robustness]'s
        # noise there, writes lines no log level stops; the file is shown if the process dies.
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from search.engine.jax_builder import main; main()",
             str(theirs.fileno()), str(os.getpid())],
            env=_child_environment(), pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
            stderr=None if debugging() else self.log)
        theirs.close()  # so that its death is an end of file here
        self.conn = Connection(ours.detach())
        self.data: Dataset | None = None

    def alive(self) -> bool:
        return self.process.poll() is None

    def exchange(self, request: tuple[Any, ...], data: Dataset) -> tuple[str, Any, str]:
        """Send one request and wait for its answer, watching the process meanwhile."""
        self.conn.send(request)
        self.data = data
        while not self.conn.poll(0.5):
            if not self.alive():
                raise self.stopped()
        try:
            answer: tuple[str, Any, str] = self.conn.recv()
        except EOFError:
            raise self.stopped() from None
        return answer

    def stopped(self) -> NoiseSearchError:
        """Why it stopped on its own, with what it wrote to stderr."""
        code = self.process.wait()
        self.log.seek(0)
        sys.stderr.write(self.log.read().decode(errors="replace")[-4000:])
        how = (f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}")
        return NoiseSearchError(f"the jax engine's training process stopped ({how}); if it "
                                "ran out of memory, set 'study.max_replicas' lower")

    def stop(self) -> None:
        if self.alive():
            self.process.kill()
        self.process.wait()
        self.conn.close()
        self.log.close()


def _child_environment() -> dict[str, str]:
    """The environment the child starts with: Keras on JAX, this ``search`` package first on
    its path; one XLA thread when the workers share the cores one each (search.workers)."""
    env = dict(os.environ, KERAS_BACKEND="jax")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (root, env.get("PYTHONPATH"))))
    if env.get("TF_NUM_INTRAOP_THREADS") == "1":
        env["XLA_FLAGS"] = (f"{env.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen=false "
                            "intra_op_parallelism_threads=1").strip()
    return env


_CHILD: _Child | None = None


def train(spec: StudySpec, data: Dataset, config: NoiseConfig, *,
          repeats: range | None = None) -> TrainResult:
    """Repeats ``repeats`` (default all) of ``config`` in the jax engine's process."""
    global _CHILD
    if _CHILD is not None and not _CHILD.alive():
        stop()  # it died between trials: a fresh one
    if _CHILD is None:
        _CHILD = _Child()
    child = _CHILD
    request = (spec, None if data is child.data else data, config, repeats)
    try:
        kind, value, text = child.exchange(request, data)
    except BaseException:
        # Interrupted, or the process died, mid-request: it may be training still.
        _CHILD = None
        child.stop()
        raise
    if kind == "error":
        raise value from RemoteTraceback(text)
    result: TrainResult = value
    return result


@atexit.register
def stop() -> None:
    """Stop the jax engine's process, if this process started one (also at exit)."""
    global _CHILD
    if _CHILD is not None:
        _CHILD.stop()
        _CHILD = None


def predict(spec: StudySpec, data: Dataset, weights: Sequence[np.ndarray],
            x: np.ndarray) -> np.ndarray:
    """Clean forward pass of the builder's model with ``weights`` on ``x`` (keras_builder's,
    on this process's Keras)."""
    return keras_builder.predict(spec, data, weights, x)


# --- the child process -------------------------------------------------------------------------

def main() -> None:
    """Entry of the jax engine's process: ``python -c ... FD PARENT_PID``."""
    serve(Connection(int(sys.argv[1])), int(sys.argv[2]))


def serve(conn: Any, parent: int) -> None:
    """Train what the parent sends until its end of the pipe closes. Started with
    KERAS_BACKEND=jax (_child_environment)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this one stops
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    trainer: Any = None
    data: Dataset | None = None
    while True:
        try:
            spec, sent, config, repeats = conn.recv()
        except EOFError:
            return
        data = sent if sent is not None else data
        try:
            if trainer is None:
                trainer = _load_trainer()
            answer: tuple[str, Any, str] = ("ok", trainer.train(spec, data, config, repeats),
                                            "")
        except Exception as exc:  # noqa: BLE001 -- every error goes back to the parent
            answer = ("error", exc, traceback.format_exc())
        try:
            conn.send(answer)
        except Exception:  # noqa: BLE001 -- an exception that does not pickle: as text
            error = RuntimeError(f"{type(answer[1]).__name__}: {answer[1]}")
            conn.send(("error", error, answer[2]))


def _load_trainer() -> Any:
    from search.usercode import load_tensorflow

    load_tensorflow()  # quietly: a builder's file, or [robustness]'s noise, may import it
    from search.engine import _replicas

    return _replicas


def _watch_parent(parent: int) -> None:
    """A child whose parent died (SIGKILL) exits instead of lingering."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)
