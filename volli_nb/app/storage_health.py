"""Storage failure is a state: reported once when it starts and once when it ends.

A full disk fails every write, so reporting per write drowned a receiver's terminal in
tracebacks (two per frame) while the sender learned nothing.  Now the receiver refuses
what it cannot store with a signed ``storage_full`` refusal (the sender retries later,
see :mod:`volli_nb.app.refusals`), and :class:`StorageHealth` turns the failures into
one state: one log line and one event-log entry (``kind="storage.full"``,
``"storage.busy"`` (another program holds the profile's write lock) or
``"storage.failing"``, then ``"storage.ok"``) per change, a typed
:class:`StorageStatus` for the dashboard, and on a full disk one attempt to give space
back by checkpointing the WAL into the main file and truncating it.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from volli_nb.base.errors import StorageBusy, StorageError, StorageFull
from volli_nb.base.listeners import Listeners
from volli_nb.core.eventlog import EventLog
from volli_nb.core.store.database import Database

logger = logging.getLogger(__name__)

OK, FULL, BUSY, FAILING = "ok", "full", "busy", "failing"


@dataclass(frozen=True)
class StorageStatus:
    """The profile's storage changed state (``ok``, ``full``, ``busy`` or ``failing``)."""

    state: str
    reason: str
    free_bytes: int | None  # on the profile's filesystem, when it changed
    checkpointed: bool = False  # a full disk: the WAL was folded in and truncated


class StorageHealth:
    """The state of one profile's storage, from the writes that failed or succeeded."""

    def __init__(self, database: Database, log: EventLog) -> None:
        self.database, self.log = database, log
        self.state = OK
        self.reason = ""
        self._changes = Listeners[[StorageStatus]]("storage status handler", logger)

    def on_change(self, handler: Callable[[StorageStatus], None]) -> Callable[[], None]:
        return self._changes.add(handler)

    def failed(self, error: StorageError) -> None:
        """A write failed; call it outside a transaction (the checkpoint needs that)."""
        state = FULL if isinstance(error, StorageFull) else FAILING
        state = BUSY if isinstance(error, StorageBusy) else state
        if state == self.state:
            return
        self.state, self.reason = state, str(error)
        checkpointed = state == FULL and self._checkpoint()
        status = StorageStatus(state, str(error), self._free(), checkpointed)
        action = "WAL checkpointed; " if checkpointed else ""
        text = (
            f"storage {state}: {error}; {action}incoming messages are refused (their senders "
            "are told and retry) until a write succeeds"
        )
        logger.warning("%s", text)
        self.log.add("error", text, kind=f"storage.{state}", free_bytes=status.free_bytes)
        self._changes.emit(status)

    def succeeded(self) -> None:
        """A write went through: if storage was failing, it works again."""
        if self.state == OK:
            return
        self.state, self.reason = OK, ""
        status = StorageStatus(OK, "a write succeeded", self._free())
        logger.info("storage works again (%s bytes free)", status.free_bytes)
        self.log.add(
            "error", "storage works again", kind="storage.ok", free_bytes=status.free_bytes
        )
        self._changes.emit(status)

    def _checkpoint(self) -> bool:
        """Fold the WAL into the main file and truncate it: space back, if pages allow."""
        with contextlib.suppress(StorageError):
            busy = self.database.fetch("PRAGMA wal_checkpoint(TRUNCATE)")[0][0]
            return not busy
        return False

    def _free(self) -> int | None:
        try:
            return shutil.disk_usage(self.database.path.parent).free
        except OSError:
            return None


__all__ = ["BUSY", "FAILING", "FULL", "OK", "StorageHealth", "StorageStatus"]
