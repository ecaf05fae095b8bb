"""The profile's pruning timer, run from a task on the running loop.

:class:`~volli_nb.core.store.retention.Pruner` decides what to delete and when (by the
injected clock, so a test drives it with a virtual one); this runs it every few seconds
while the store is started, logs what it removed, and reports a failed write to the
profile's :class:`~volli_nb.app.storage_health.StorageHealth` instead of raising.  The
same tick expires the live sessions' skipped message keys (:class:`PeerSessions`), so
an idle channel does not keep them past their time.  Any other failure of a tick is
logged (each distinct one once) and the next tick runs as usual: an exception must not
end the task, or pruning would stop, unseen, for the rest of the process's life.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from volli_nb.app.peer_sessions import PeerSessions
from volli_nb.app.storage_health import StorageHealth
from volli_nb.base.clock import Clock
from volli_nb.base.errors import StorageError
from volli_nb.core.eventlog import EventLog
from volli_nb.core.store.retention import Pruned, Pruner

logger = logging.getLogger(__name__)
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
        self._failing: str | None = None  # the failure last logged, until a tick works

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
            try:
                self.run_once()
                self._failing = None
            except Exception as exc:  # a bug here must not stop every later prune
                self._failed(exc, poll)
            await asyncio.sleep(poll)

    def _failed(self, exc: Exception, poll: float) -> None:
        why = f"{type(exc).__name__}: {exc}"
        if why == self._failing:
            return
        self._failing = why
        logger.error("housekeeping tick failed", exc_info=exc)
        self.log.add(
            "error",
            f"housekeeping failed ({why}); trying again every {poll:g} s",
            kind="housekeeping.failed",
        )


__all__ = ["Housekeeping"]
