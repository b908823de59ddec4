"""Storage URLs: where studies live, how they are opened, and passwords kept out of output.

Storage is Optuna's RDB storage (DESIGN.md decision 5): an SQLite file by
default, PostgreSQL when several workers or machines share a study.
"""

from __future__ import annotations

import os
import re
import warnings

import optuna
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from search.errors import NoiseSearchError

DEFAULT_STORAGE = "sqlite:///noise-search.db"
STORAGE_ENV = "NOISE_SEARCH_STORAGE"
HEARTBEAT_ENV = "NOISE_SEARCH_HEARTBEAT"
DEFAULT_HEARTBEAT_SECONDS = 10
CONNECT_TIMEOUT_SECONDS = 5

_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*(?=@)")


def resolve_url(url: str | None) -> str:
    """--storage beats $NOISE_SEARCH_STORAGE beats the SQLite file in the working directory."""
    return url or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


def mask_password(text: str) -> str:
    """Replace the password of every URL in ``text`` with ***."""
    return _PASSWORD_IN_URL.sub(r"\g<head>***", text)


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
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=_engine_kwargs(url),
            heartbeat_interval=interval,
            grace_period=3 * interval,
        )
    except (SQLAlchemyError, ImportError, ValueError, OSError) as exc:
        reason = mask_password(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise NoiseSearchError(f"cannot open storage {shown}: {reason}") from None
