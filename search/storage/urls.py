"""Storage URLs: which database, its secrets kept out of every output, environment settings.

Storage is Optuna's RDB storage (docs/ARCHITECTURE.md, "Storage is Optuna's"): an SQLite
file by default, PostgreSQL when several workers or machines share a study.
"""

from __future__ import annotations

import os
import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from search.errors import StorageError

DEFAULT_STORAGE = "sqlite:///noise-search.db"
STORAGE_ENV = "NOISE_SEARCH_STORAGE"
HEARTBEAT_ENV = "NOISE_SEARCH_HEARTBEAT"
DEFAULT_HEARTBEAT_SECONDS = 10

_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*(?=@)")
_PASSWORD_IN_CONNINFO = re.compile(r"(?P<head>\bpassword\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)
# Passwords of the storage URLs this process opened: masked wherever they appear, even
# outside a URL (a driver may quote its connection parameters in an error message).
_SECRETS: set[str] = set()


def resolve_url(url: str | None) -> str:
    """--storage beats $NOISE_SEARCH_STORAGE beats the SQLite file in the working directory."""
    return url or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


def mask_password(text: str) -> str:
    """Replace the password of every URL in ``text`` with ***, and every known password too."""
    text = _PASSWORD_IN_URL.sub(r"\g<head>***", text)
    text = _PASSWORD_IN_CONNINFO.sub(r"\g<head>***", text)
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return text


def remember_password(url: str) -> None:
    """Mask this URL's password from now on, wherever it appears."""
    try:
        password = make_url(url).password
    except ArgumentError:
        return
    if password and len(str(password)) >= 3:  # a one-letter password would mask half the text
        _SECRETS.add(str(password))


def first_line(exc: BaseException) -> str:
    """An exception as one masked line: what a person is shown."""
    text = str(exc).strip()
    return mask_password(text.splitlines()[0] if text else type(exc).__name__)


def heartbeat_seconds() -> int:
    """$NOISE_SEARCH_HEARTBEAT: seconds between a running trial's heartbeats."""
    raw = os.environ.get(HEARTBEAT_ENV, str(DEFAULT_HEARTBEAT_SECONDS))
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise StorageError(
            f"${HEARTBEAT_ENV} must be a whole number of seconds >= 1; got {raw!r}")
    return value


def check_shareable(url: str) -> None:
    """Refuse a storage that other processes cannot open (in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise StorageError(
            "--workers needs a storage the worker processes can share; an in-memory SQLite "
            "database is private to one process. Use an SQLite file or PostgreSQL")
