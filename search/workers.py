"""Several local worker processes on one study, reporting to one progress display.

`noise-search run --workers N` starts N processes (``spawn``: each has its own TensorFlow),
each a `StudyRunner` on the same storage; the queue in the storage splits the grid between
them exactly as it does between machines. Finished configurations travel back to the parent
over a queue, so the parent alone prints. Ctrl-C / SIGTERM in the parent is passed on once to
every worker as SIGTERM: each fails its trial in progress (to be run again on resume) and
exits. A worker that dies without notice leaves a trial that goes stale and is run by another.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from search.errors import NoiseSearchError
from search.interrupts import catch_interrupts, install_in_worker
from search.storage import check_shareable, mask_password

if TYPE_CHECKING:
    from search.spec import StudySpec
    from search.study.runner import TrialOutcome

# Exit codes of a worker process.
_OK, _ERROR, _INTERRUPTED = 0, 2, 130


def run_workers(spec: StudySpec, url: str, n: int,
                on_done: Callable[[TrialOutcome], None] | None = None) -> None:
    """Run ``n`` worker processes on the study until its queue is done.

    Raises NoiseSearchError if a worker stopped with an error (the others finish first), and
    KeyboardInterrupt after stopping the workers if the parent is interrupted.
    """
    check_shareable(url)
    with catch_interrupts() as stopping:
        _supervise(spec, url, n, on_done, stopping)


def _supervise(spec: StudySpec, url: str, n: int,
               on_done: Callable[[TrialOutcome], None] | None,
               stopping: threading.Event) -> None:
    ctx = multiprocessing.get_context("spawn")
    events: Any = ctx.Queue()
    threads = str(max(1, (os.cpu_count() or 1) // n))
    procs = [ctx.Process(target=_worker, args=(spec, url, events, i, threads),
                         name=f"noise-search-worker-{i}") for i in range(n)]
    for proc in procs:
        proc.start()
    errors: list[str] = []
    try:
        while True:
            if stopping.is_set():
                raise KeyboardInterrupt
            try:
                kind, payload = events.get(timeout=0.5)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    break
                continue
            if kind == "done" and on_done is not None:
                on_done(payload)
            elif kind == "error":
                errors.append(payload)
    except KeyboardInterrupt:
        _stop(procs)
        raise
    finally:
        for proc in procs:
            proc.join()
        events.close()
    if errors:
        raise NoiseSearchError(errors[0])
    lost = [p for p in procs if p.exitcode not in (_OK, None)]
    if lost:
        codes = ", ".join(f"{p.name}: {_describe_exit(p.exitcode)}" for p in lost)
        raise NoiseSearchError(f"{len(lost)} of {n} workers stopped early ({codes}); "
                               "run the same command again to finish the study")


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _stop(procs: list[Any]) -> None:
    """Pass the interrupt on, once: each worker fails its trial in progress and exits."""
    for proc in procs:
        if proc.is_alive() and proc.pid is not None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def _watch_parent(parent: int) -> None:
    """A worker whose parent died (SIGKILL) stops like an interrupted one instead of lingering."""
    while True:
        threading.Event().wait(1.0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)
            return


def _worker(spec: StudySpec, url: str, events: Any, index: int, threads: str) -> None:
    """Body of one worker process."""
    stop_requested = install_in_worker()
    # N workers share the cores instead of each starting a thread per core (before TF loads).
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", threads)
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    code = _OK
    try:
        from search.startup import load_tensorflow
        from search.storage import open_storage
        from search.study.runner import StudyRunner

        load_tensorflow()  # quietly, before a builder or the Keras engine imports it
        runner = StudyRunner(spec, open_storage(url))
        runner.run(on_done=lambda outcome: events.put(("done", outcome)), stop=stop_requested)
    except KeyboardInterrupt:
        code = _INTERRUPTED
    except NoiseSearchError as exc:
        events.put(("error", mask_password(str(exc))))
        code = _ERROR
    events.close()
    events.join_thread()  # what was reported reaches the parent before the process ends
    raise SystemExit(code)
