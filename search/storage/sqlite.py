"""SQLite specifics: which file a URL names, and WAL mode where the file system allows it.

In WAL mode (write-ahead log) readers never wait for a writer and a writer never waits for
readers: a `sqlite3` query on the study database works while workers record trials and save
figures (in the default rollback-journal mode a commit locks readers out, "database is
locked"). WAL needs shared memory between the processes that open the file, which network
file systems (NFS, SMB/CIFS, ...) do not provide: there the database keeps the rollback
journal, and the README says to use PostgreSQL for workers on several machines.
"""

from __future__ import annotations

import logging
import os

import sqlalchemy as sa

# Types in /proc/self/mountinfo of file systems that may be shared between machines.
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "ceph", "glusterfs",
    "fuse.glusterfs", "fuse.sshfs", "fuse.s3fs", "fuse.rclone", "lustre", "gpfs", "davfs",
    "fuse.davfs2"})

_log = logging.getLogger("search.storage")


def sqlite_path(url: sa.engine.URL) -> str | None:
    """The database file an SQLite URL names (None: not SQLite, in memory, or a URI)."""
    database = url.database if url.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def filesystem_type(path: str) -> str | None:
    """The type of the file system holding ``path`` (Linux; None where it cannot be told)."""
    target = os.path.realpath(path)
    best, kind = "", None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields = line.split()
                if "-" not in fields:
                    continue
                point = fields[4].encode().decode("unicode_escape")  # "\040" is a space
                fstype = fields[fields.index("-") + 1]
                inside = target == point or target.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, kind = point, fstype
    except OSError:
        return None
    return kind


def use_wal(engine: sa.Engine) -> None:
    """Switch the database file to WAL mode (it stays so) unless it is on a network file
    system. Raises SQLAlchemyError when the database cannot be reached."""
    database = sqlite_path(engine.url)
    if database is None:
        return
    kind = filesystem_type(os.path.dirname(os.path.abspath(database)))
    if kind in NETWORK_FILESYSTEMS:
        _log.info("noise-search: %s is on %s, a network file system: SQLite keeps its "
                  "rollback journal (readers may wait for writers)", database, kind)
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
