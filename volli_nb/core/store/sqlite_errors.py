"""SQLite's errors as typed :class:`StorageError`\\ s, and how long a write waits for a lock.

Only this process writes a profile (:mod:`.profile_lock`), so a write lock held by
someone else is another program: a ``sqlite3`` shell left in a transaction, a backup
tool.  SQLite waits for it for the busy timeout, inside the call, so the event loop
waits too: ten seconds froze every channel, long enough for the peer to drop the link
(no heartbeat).  A write now waits :data:`BUSY_TIMEOUT` at most and fails as
:class:`StorageBusy`; the work is retried as after any storage failure (the outbox on
its schedule, an incoming message by its sender, told by a signed refusal), and the
profile's storage state says why (:mod:`volli_nb.app.storage_health`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from volli_nb.base.errors import StorageBusy, StorageError, StorageFull

BUSY_TIMEOUT = 0.25  # seconds a write waits for another program's lock (the loop waits too)


def storage_error(path: Path, exc: sqlite3.Error) -> StorageError:
    """``exc`` typed: a closed file, a full disk, a lock another program holds, or else."""
    text = str(exc)
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in text:
        return StorageError(f"{path} is closed; open it again with Database.open()")
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "is full" in text:
        return StorageFull(
            f"{path}: the disk is full ({text}); free some space (see "
            "docs/operations.md for how much a profile needs)"
        )
    if "locked" in text or "busy" in text:
        return StorageBusy(
            f"{path} is locked by another program's write ({text}): a sqlite3 shell in an "
            "open transaction, a backup tool?  End its transaction or close it; this work "
            "is retried (the outbox on its schedule, incoming messages by their senders)"
        )
    return StorageError(f"SQLite error on {path}: {text}")


__all__ = ["BUSY_TIMEOUT", "storage_error"]
