"""The files of one profile on disk: what may be opened, and how a new one appears.

A profile is created only where nothing exists yet: an empty file or a folder given as a
profile is refused (an empty file once silently became a new identity).  A new profile is
built in a temporary file beside the final path and renamed over it in one step, so a
crash or a racing opener never sees half a profile.  An existing one's header is read
without writing a byte (a refused passphrase leaves no trace).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from volli_nb.base.errors import StorageError, StorageFull
from volli_nb.core.store.keyring import WrappedKey
from volli_nb.core.store.known_schema import SCHEMA_QUERY, check_schema, read_schema

if TYPE_CHECKING:
    from volli_nb.core.store.sealed_db import SealedDatabase

FORMAT = "volli-profile"

SIDE_FILES = ("", "-wal", "-shm", "-journal")


def check_not_folder(path: Path) -> None:
    if path.is_dir():
        raise StorageError(f"{path} is a folder; give the path of a profile file inside it")


def check_not_empty(path: Path) -> None:
    if path.stat().st_size == 0:
        raise StorageError(
            f"{path} is an empty file (0 bytes), not a profile; a new profile is created "
            "only where no file exists: delete it, or pick another path"
        )


def temporary_path(path: Path) -> Path:
    """Where a new profile is built (only under the profile's lock, so never shared)."""
    return path.with_name(f".{path.name}.new")


def remove_with_side_files(path: Path) -> None:
    """``path`` and SQLite's -wal, -shm and -journal files beside it, if present."""
    for suffix in SIDE_FILES:
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + suffix).unlink()


def durable_rename(temp: Path, path: Path) -> None:
    """``temp`` becomes ``path`` in one step, and is on disk before we go on."""
    _fsync(temp)
    os.replace(temp, path)
    _fsync(path.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = [
    "check_not_empty",
    "check_not_folder",
    "durable_rename",
    "remove_with_side_files",
    "temporary_path",
]


def read_header(path: Path, cls: type[SealedDatabase]) -> tuple[int, WrappedKey]:
    """Schema version and keyring, through a read-only connection that cannot write, once
    the schema was found to be what ``cls``'s migrations make for that version
    (:func:`~volli_nb.core.store.known_schema.check_schema`: before the passphrase is
    tried, and before a migration could fire a planted trigger).  ``meta`` and
    ``keyring`` are read only once known to be tables (a view could lie).

    With no ``-wal``/``-shm`` beside the file, no connection has it open (WAL keeps
    both while one does), so it is read as immutable: even SQLite's empty side
    files are not created, and a refused passphrase leaves no trace at all.
    """
    live = any(path.with_name(path.name + s).exists() for s in ("-wal", "-shm"))
    uri = path.resolve().as_uri() + ("?mode=ro" if live else "?mode=ro&immutable=1")
    try:
        conn = sqlite3.connect(uri, uri=True)
        conn.execute("PRAGMA trusted_schema=OFF")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open {path} read-only: {exc}") from exc
    try:
        schema = read_schema(conn.execute(SCHEMA_QUERY).fetchall())
        tables = {o.name for o in schema if o.type == "table"}
        if not {"meta", "keyring"} <= tables:
            raise StorageError(
                f"{path} is an SQLite file but not a volli profile; pick another path"
            )
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        cursor = conn.execute("SELECT * FROM keyring WHERE id = 1")
        names = [d[0] for d in cursor.description]
        row = cursor.fetchone()
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path} is not a readable volli profile ({exc})") from exc
    except UnicodeDecodeError as exc:  # a name (or SQLite's message quoting it) not UTF-8
        raise StorageError(
            f"{path} is not a readable volli profile (its schema holds bytes that are not "
            f"UTF-8, at {exc.start}); restore it from a backup"
        ) from exc
    finally:
        conn.close()
    version = str(meta.get("schema_version", ""))
    if meta.get("format") != FORMAT or not version.isdigit() or row is None:
        raise StorageError(f"{path}: the profile header is damaged; restore it from a backup")
    if int(version) <= len(cls.MIGRATIONS):  # (a newer one is refused by the caller)
        check_schema(path, schema, cls, int(version))
    return int(version), WrappedKey.from_row(dict(zip(names, row, strict=True)))


def connect(path: Path, timeout: float) -> sqlite3.Connection:
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        conn.execute("PRAGMA trusted_schema=OFF")  # see known_schema: no side effects
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA secure_delete=ON")  # erased payloads and old key wraps are zeroed
    except sqlite3.Error as exc:
        if conn is not None:  # a failed open keeps no file handle
            conn.close()
        if _no_room(path, exc):  # SQLite says "disk I/O error" when -shm cannot grow
            raise StorageFull(
                f"cannot open {path}: the disk is full ({exc}); free some space (see "
                "docs/operations.md for how much a profile needs)"
            ) from exc
        raise StorageError(
            f"cannot open {path} for writing: {exc}; check the directory exists and is writable"
        ) from exc
    return conn


MIN_FREE = 1024 * 1024  # bytes: less than this beside a failed open is a full disk


def _no_room(path: Path, exc: sqlite3.Error) -> bool:
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return True
    try:
        disk = os.statvfs(path.parent)
    except OSError:
        return False
    return disk.f_bavail * disk.f_frsize < MIN_FREE
