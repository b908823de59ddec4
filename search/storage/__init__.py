"""Where studies live: URLs and secrets (urls), opening and retries (connect), one lock (locks).

``from search.storage import open_storage`` etc. keep working: the package re-exports what
callers use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import optuna

from search.storage.connect import (
    disk_full_message,
    is_disk_full,
    is_outage,
    open_storage,
    retrying,
)
from search.storage.locks import named_lock
from search.storage.urls import (
    DEFAULT_STORAGE,
    STORAGE_ENV,
    check_shareable,
    heartbeat_seconds,
    mask_password,
    resolve_url,
)

__all__ = ["DEFAULT_STORAGE", "STORAGE_ENV", "check_shareable", "disk_full_message",
           "heartbeat_seconds", "is_disk_full", "is_outage",
           "mask_password", "named_lock", "open_storage", "resolve_url", "retrying",
           "study_lock"]


@contextmanager
def study_lock(storage: optuna.storages.RDBStorage, study_name: str) -> Iterator[None]:
    """Hold the lock on ``study_name`` that every process using this storage respects.

    Creating a study and filling or popping its queue are check-then-act sequences; under this
    lock two workers that start (or recover) at the same moment cannot both act. Backends
    other than PostgreSQL and SQLite are not locked; the worker loop still refuses to train a
    configuration that is already done or held by another trial.
    """
    with named_lock(storage.engine, study_name):
        yield
