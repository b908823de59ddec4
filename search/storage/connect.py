"""Opening the storage, and the one retry policy for a database that went away.

Storage is Optuna's RDB storage; this module adds what a worker needs around it: one-line
errors when it cannot be reached, connection timeouts, tables created once when workers
start together, and `retrying` to wait out a server restart.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import optuna
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from search.errors import StorageError
from search.storage.locks import SCHEMA_LOCK, named_lock
from search.storage.sqlite import sqlite_path, use_wal
from search.storage.urls import (
    STORAGE_ENV,
    first_line,
    heartbeat_seconds,
    mask_password,
    remember_password,
    resolve_url,
)

CONNECT_TIMEOUT_SECONDS = 5
# How long a worker keeps retrying a storage call through a server outage before giving up.
OUTAGE_PATIENCE_SECONDS = 120.0

T = TypeVar("T")
# One logger name for the storage package: tests and users filter on "search.storage".
_log = logging.getLogger("search.storage")


def _engine_kwargs(url: str) -> dict[str, object]:
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        # Wait for a lock rather than fail at once when another process writes.
        return {"connect_args": {"timeout": 60}}
    kwargs: dict[str, object] = {"pool_pre_ping": True}  # survive a server restart
    if backend == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    return kwargs


def open_storage(url: str | None = None,
                 must_exist: bool = False) -> optuna.storages.RDBStorage:
    """Open (and create the tables of) the storage; a one-line error if it cannot be reached.

    ``must_exist``: the command reads an existing study (results, report, ...), so an SQLite
    file that does not exist is a mistyped path, not a new database: refused before anything
    (the file, its lock file) is created, and the database is left in its journal mode.
    """
    url = resolve_url(url)
    remember_password(url)
    shown = mask_password(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"storage URL {shown!r} is not a database URL; expected e.g. "
            "'sqlite:///noise-search.db' or 'postgresql+psycopg://user@host/db'"
        ) from None
    if must_exist:
        _require_database_file(parsed, shown)
    interval = heartbeat_seconds()
    # Heartbeats are what let a dead worker's trial be run again; Optuna marks them experimental.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        # Workers that start together on a fresh database would race to create its tables.
        with _schema_lock(url):
            storage = optuna.storages.RDBStorage(
                url,
                engine_kwargs=_engine_kwargs(url),
                heartbeat_interval=interval,
                grace_period=3 * interval,
            )
            if not must_exist:  # so that readers are never locked out by a commit
                use_wal(storage.engine)
            return storage
    except (SQLAlchemyError, ImportError, ValueError, OSError) as exc:
        raise StorageError(f"cannot open storage {shown}: {first_line(exc)}") from None


def _require_database_file(url: sa.engine.URL, shown: str) -> None:
    database = sqlite_path(url)
    if database is not None and not os.path.exists(database):
        raise StorageError(
            f"no such database file: {database!r} (storage {shown}); check --storage or "
            f"${STORAGE_ENV}, or start a study there with `noise-search run`")


@contextmanager
def _schema_lock(url: str) -> Iterator[None]:
    """The named lock on a database whose Optuna storage does not exist yet."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, **{
        k: v for k, v in _engine_kwargs(url).items() if k == "connect_args"})
    try:
        with named_lock(engine, SCHEMA_LOCK):
            yield
    finally:
        engine.dispose()


# SQLite's words for a write the file system refused: ENOSPC ("full") or another write error
# such as EFBIG, a file-size limit ("disk I/O error"). Not an outage: waiting rarely helps.
_SQLITE_WRITE_REFUSED = ("database or disk is full", "disk I/O error")


def _chain(exc: BaseException, depth: int = 8) -> Iterator[BaseException]:
    """``exc`` and what caused it, outermost first (Optuna wraps SQLAlchemy, which wraps the
    driver; a failure while rolling back can sit under another)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen and len(seen) < depth:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite failing to write its file (a full disk, a size limit)."""
    for err in _chain(exc):
        orig = getattr(err, "orig", None)
        if isinstance(orig, sqlite3.OperationalError) and any(
                words in str(orig) for words in _SQLITE_WRITE_REFUSED):
            return True
    return False


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached (worth retrying), not bad data.

    Besides the driver's connection errors: a session or connection that a dropped
    connection left unusable (``PendingRollbackError``, ``ResourceClosedError``) when the
    server goes away in the middle of a commit; Optuna rolls back, so the retry starts clean.
    """
    if is_disk_full(exc):
        return False
    for err in _chain(exc):
        if isinstance(err, DBAPIError) and (err.connection_invalidated
                                            or isinstance(err, sa.exc.OperationalError
                                                          | sa.exc.InterfaceError)):
            return True
        if isinstance(err, sa.exc.PendingRollbackError | sa.exc.ResourceClosedError):
            return True
    return False


def disk_full_message(exc: BaseException, what: str) -> str:
    """One line for a database file that cannot grow: what happened and what is kept."""
    return (f"cannot write to the database while {what}: {first_line(exc.__cause__ or exc)} "
            "(is the disk full?); what was recorded before is kept: free space and run the "
            "same command again to resume")


def retrying(call: Callable[[], T], what: str, patience: float | None = None) -> T:
    """Run a storage call, retrying while the database server is unreachable.

    A restart of the server or a dropped connection is waited out (with back-off) for up to
    ``patience`` seconds (default OUTAGE_PATIENCE_SECONDS, read at the call); then the worker
    stops with a one-line error. Errors that are not about reaching the server are raised at
    once. Calls must be safe to repeat.
    """
    if patience is None:
        patience = OUTAGE_PATIENCE_SECONDS
    deadline = time.monotonic() + patience
    delay = 0.25
    while True:
        try:
            return call()
        except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
            if is_disk_full(exc):
                raise StorageError(disk_full_message(exc, what)) from None
            if not is_outage(exc):
                raise
            reason = first_line(exc.__cause__ or exc)
            if delay == 0.25:
                _log.warning("noise-search: storage unreachable while %s; retrying for up to "
                             "%.0f s: %s", what, patience, reason)
            if time.monotonic() + delay > deadline:
                raise StorageError(
                    f"lost the storage while {what} and it did not come back within "
                    f"{patience:.0f} s: {reason}") from None
            time.sleep(delay)
            delay = min(2 * delay, 5.0)
