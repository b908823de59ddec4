"""The heartbeat of a running trial, recorded from a thread while the engine trains.

A trial whose heartbeat stops (its worker died) is failed as stale by the next worker that
recovers the queue, and its configuration is queued again.
"""

from __future__ import annotations

import threading

import optuna
from sqlalchemy.exc import SQLAlchemyError


class Heartbeat:
    """``with Heartbeat(storage, trial_id, interval):`` beats every ``interval`` seconds;
    no interval (heartbeats not enabled on the storage): does nothing."""

    def __init__(self, storage: optuna.storages.BaseStorage, trial_id: int,
                 interval: float | None):
        self._storage, self._trial_id, self._interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while True:
            try:
                self._storage.record_heartbeat(self._trial_id)  # type: ignore[attr-defined]
            except (SQLAlchemyError, optuna.exceptions.OptunaError):
                # A passing outage must not stop training: the next beat retries, and a
                # longer one lets the trial go stale, which is what it is for. Anything else
                # is a bug and ends the thread with a traceback.
                pass
            if self._stop.wait(self._interval):
                return

    def __enter__(self) -> Heartbeat:
        if self._interval:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
