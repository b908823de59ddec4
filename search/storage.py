"""Storage URLs: where studies live, how they are opened, and passwords kept out of output.

Storage is Optuna's RDB storage (DESIGN.md decision 5): an SQLite file by
default, PostgreSQL when several workers or machines share a study.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator
from typing import TypeVar

import optuna
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from search.errors import NoiseSearchError

DEFAULT_STORAGE = "sqlite:///noise-search.db"
STORAGE_ENV = "NOISE_SEARCH_STORAGE"
HEARTBEAT_ENV = "NOISE_SEARCH_HEARTBEAT"
DEFAULT_HEARTBEAT_SECONDS = 10
CONNECT_TIMEOUT_SECONDS = 5
# How long a worker keeps retrying a storage call through a server outage before giving up.
OUTAGE_PATIENCE_SECONDS = 120.0

T = TypeVar("T")
_log = logging.getLogger(__name__)

_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*(?=@)")


def resolve_url(url: str | None) -> str:
    """--storage beats $NOISE_SEARCH_STORAGE beats the SQLite file in the working directory."""
    return url or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


_PASSWORD_IN_CONNINFO = re.compile(r"(?P<head>\bpassword\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)
# Passwords of the storage URLs this process opened: masked wherever they appear, even
# outside a URL (a driver may quote its connection parameters in an error message).
_SECRETS: set[str] = set()


def mask_password(text: str) -> str:
    """Replace the password of every URL in ``text`` with ***, and every known password too."""
    text = _PASSWORD_IN_URL.sub(r"\g<head>***", text)
    text = _PASSWORD_IN_CONNINFO.sub(r"\g<head>***", text)
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return text


def _remember_password(url: str) -> None:
    try:
        password = make_url(url).password
    except ArgumentError:
        return
    if password and len(str(password)) >= 3:  # a one-letter password would mask half the text
        _SECRETS.add(str(password))


def heartbeat_seconds() -> int:
    raw = os.environ.get(HEARTBEAT_ENV, str(DEFAULT_HEARTBEAT_SECONDS))
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise NoiseSearchError(
            f"${HEARTBEAT_ENV} must be a whole number of seconds >= 1; got {raw!r}")
    return value


def _engine_kwargs(url: str) -> dict[str, object]:
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        # Wait for a lock rather than fail at once when another process writes.
        return {"connect_args": {"timeout": 60}}
    kwargs: dict[str, object] = {"pool_pre_ping": True}  # survive a server restart
    if backend == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    return kwargs


def open_storage(url: str | None = None) -> optuna.storages.RDBStorage:
    """Open (and create the tables of) the storage; a one-line error if it cannot be reached."""
    url = resolve_url(url)
    _remember_password(url)
    shown = mask_password(url)
    try:
        make_url(url)
    except ArgumentError:
        raise NoiseSearchError(
            f"storage URL {shown!r} is not a database URL; expected e.g. "
            "'sqlite:///noise-search.db' or 'postgresql+psycopg://user@host/db'"
        ) from None
    interval = heartbeat_seconds()
    # Heartbeats are what let a dead worker's trial be run again; Optuna marks them experimental.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        # Workers that start together on a fresh database would race to create its tables.
        with _schema_lock(url):
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=_engine_kwargs(url),
                heartbeat_interval=interval,
                grace_period=3 * interval,
            )
    except (SQLAlchemyError, ImportError, ValueError, OSError) as exc:
        reason = mask_password(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise NoiseSearchError(f"cannot open storage {shown}: {reason}") from None


# -- surviving a passing outage ------------------------------------------------------------------


def _is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached (worth retrying), not bad data."""
    for err in (exc, exc.__cause__, exc.__context__):
        if isinstance(err, DBAPIError) and (err.connection_invalidated
                                            or isinstance(err, sa.exc.OperationalError
                                                          | sa.exc.InterfaceError)):
            return True
    return False


def retrying(call: Callable[[], T], what: str,
             patience: float = OUTAGE_PATIENCE_SECONDS) -> T:
    """Run a storage call, retrying while the database server is unreachable.

    A restart of the server or a dropped connection is waited out (with back-off) for up to
    ``patience`` seconds; then the worker stops with a one-line error. Errors that are not about
    reaching the server are raised at once. Calls must be safe to repeat.
    """
    deadline = time.monotonic() + patience
    delay = 0.25
    while True:
        try:
            return call()
        except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
            if not _is_transient(exc):
                raise
            cause = exc.__cause__ or exc
            reason = mask_password(str(cause).strip().splitlines()[0] if str(cause)
                                   else type(cause).__name__)
            if delay == 0.25:
                _log.warning("noise-search: storage unreachable while %s; retrying for up to "
                             "%.0f s: %s", what, patience, reason)
            if time.monotonic() + delay > deadline:
                raise NoiseSearchError(
                    f"lost the storage while {what} and it did not come back within "
                    f"{patience:.0f} s: {reason}") from None
            time.sleep(delay)
            delay = min(2 * delay, 5.0)


# -- one worker at a time on the queue -----------------------------------------------------------


def _lock_key(name: str) -> int:
    digest = hashlib.sha256(f"noise-search:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _sqlite_file(url: sa.engine.URL) -> str | None:
    """The database file of an SQLite URL whose directory exists (None: nothing to lock)."""
    database = url.database if url.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database if os.path.isdir(os.path.dirname(os.path.abspath(database))) else None


@contextlib.contextmanager
def _file_lock(database: str) -> Iterator[None]:
    """An exclusive flock on a file next to the database; the kernel drops it with the process."""
    try:
        handle = open(f"{database}.lock", "a")
    except OSError:  # a read-only directory: nobody writes there, so there is nothing to guard
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _schema_lock(url: str) -> Iterator[None]:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool, **{
            k: v for k, v in _engine_kwargs(url).items() if k == "connect_args"})
        try:
            with engine.connect() as conn, conn.begin():
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                             {"key": _lock_key(":schema")})
                yield
        finally:
            engine.dispose()
        return
    database = _sqlite_file(parsed)
    with _file_lock(database) if database else contextlib.nullcontext():
        yield


@contextlib.contextmanager
def study_lock(storage: optuna.storages.RDBStorage, study_name: str) -> Iterator[None]:
    """Hold a lock on ``study_name`` that every process using this storage respects.

    Creating a study and filling or popping its queue are check-then-act sequences; under this
    lock two workers that start (or recover) at the same moment cannot both act.
    PostgreSQL: a transaction-level advisory lock keyed by the study name, released at commit
    or when the connection dies with its worker. SQLite: an exclusive ``flock`` on a file next
    to the database, released when the process dies. Other backends are not locked; the worker
    loop still refuses to train a configuration that is already done or held by another trial.
    """
    engine: sa.engine.Engine = storage.engine
    backend = engine.url.get_backend_name()
    if backend == "postgresql":
        with engine.connect() as conn:
            with conn.begin():
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                             {"key": _lock_key(study_name)})
                yield
        return
    database = _sqlite_file(engine.url)
    with _file_lock(database) if database else contextlib.nullcontext():
        yield
