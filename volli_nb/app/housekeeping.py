"""The profile's pruning timer, run from a task on the running loop.

:class:`~volli_nb.core.store.retention.Pruner` decides what to delete and when (by the
injected clock, so a test drives it with a virtual one); this runs it every few seconds
while the store is started, logs what it removed, and reports a failed write to the
profile's :class:`~volli_nb.app.storage_health.StorageHealth` instead of raising.  The
same tick expires the live sessions' skipped message keys (:class:`PeerSessions`), so
an idle channel does not keep them past their time.
"""

from __future__ import annotations

import asyncio
import contextlib

from volli_nb.app.peer_sessions import PeerSessions
from volli_nb.app.storage_health import StorageHealth
from volli_nb.base.clock import Clock
from volli_nb.base.errors import StorageError
from volli_nb.core.eventlog import EventLog
from volli_nb.core.store.retention import Pruned, Pruner

POLL = 5.0  # seconds between looks at the timer (it prunes every Retention.every)


class Housekeeping:
    def __init__(
        self,
        pruner: Pruner,
        storage: StorageHealth,
        log: EventLog,
        *,
        clock: Clock,
        sessions: PeerSessions | None = None,
    ) -> None:
        self.pruner, self.storage, self.log = pruner, storage, log
        self.sessions = sessions
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def run_once(self) -> Pruned | None:
        """Prune if the timer says so; what was pruned, or None."""
        if self.sessions is not None:
            self.sessions.expire()
        try:
            pruned = self.pruner.tick(self._clock())
        except StorageError as exc:
            self.storage.failed(exc)
            return None
        if pruned is not None and (pruned.seen or pruned.delivered):
            self.log.add(
                "queue",
                f"pruned {pruned.seen} seen id(s) and {pruned.delivered} delivered row(s)",
                kind="store.pruned",
                seen=pruned.seen,
                delivered=pruned.delivered,
            )
        return pruned

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        poll = min(POLL, self.pruner.retention.every)
        while True:
            self.run_once()
            await asyncio.sleep(poll)


__all__ = ["Housekeeping"]
