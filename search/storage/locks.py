"""The one named lock every process on a storage respects.

PostgreSQL: a transaction-level advisory lock keyed by the name, released at commit or when
the connection dies with its process. SQLite: an exclusive ``flock`` on a file next to the
database, released when the process dies. Other backends are not locked. The study queue
(one lock per study name), table creation (":schema") and the SQL view all use it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator

import sqlalchemy as sa

from search.storage.sqlite import sqlite_path

# Table creation. A study of this name would only share the lock (wait longer), never break it.
SCHEMA_LOCK = ":schema"


def lock_key(name: str) -> int:
    """The advisory-lock key of ``name``: the same in every process and every version."""
    digest = hashlib.sha256(f"noise-search:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_in_transaction(conn: sa.Connection, name: str) -> None:
    """Take the named lock inside ``conn``'s open PostgreSQL transaction (until it ends)."""
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(name)})


@contextlib.contextmanager
def named_lock(engine: sa.Engine, name: str) -> Iterator[None]:
    """Hold the lock ``name`` on ``engine``'s database while the block runs."""
    if engine.url.get_backend_name() == "postgresql":
        with engine.connect() as conn, conn.begin():
            lock_in_transaction(conn, name)
            yield
        return
    database = _sqlite_file(engine.url)
    with _file_lock(database) if database else contextlib.nullcontext():
        yield


def _sqlite_file(url: sa.engine.URL) -> str | None:
    """The database file of an SQLite URL whose directory exists (None: nothing to lock)."""
    database = sqlite_path(url)
    if database is None:
        return None
    return database if os.path.isdir(os.path.dirname(os.path.abspath(database))) else None


@contextlib.contextmanager
def _file_lock(database: str) -> Iterator[None]:
    """An exclusive flock on a file next to the database; the kernel drops it with the process.

    One lock file per database, whatever the name: SQLite serialises writers anyway, so
    finer locks would buy nothing.
    """
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
