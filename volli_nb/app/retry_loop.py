"""The outbox's retry loop: a task that attempts due rows, then sleeps until the next one.

It sleeps until the next due row by the injected clock (at most ``tick``: a safety net,
and the pace of a frozen test clock), woken early when the queue's schedule changes (a
row added, retried, released) or a peer comes online.  A failed write is a storage
state, reported once per change; any other failure is logged and the loop goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from volli_nb.app.storage_health import StorageHealth
from volli_nb.base.clock import Clock
from volli_nb.base.errors import StorageError
from volli_nb.core.store.message_queue import PersistentMessageQueue

logger = logging.getLogger(__name__)


class RetryLoop:
    def __init__(
        self,
        queue: PersistentMessageQueue,
        attempt_due: Callable[[float], Awaitable[int]],
        storage: StorageHealth,
        *,
        clock: Clock,
        tick: float,
    ) -> None:
        self.queue, self.storage = queue, storage
        self._attempt_due = attempt_due
        self._clock = clock
        self.tick = tick
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # replaced by start(): an Event belongs to one loop
        self._pass_at = float("-inf")  # when the last pass looked for due rows
        queue.on_schedule = self.wake_up

    def start(self) -> None:
        """Start on the running event loop (idempotent)."""
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())

    def wake_up(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def attempt_due(self) -> int:
        """One pass: attempt every row whose time has come; how many were attempted."""
        self._pass_at = now = self._clock()
        return await self._attempt_due(now)

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # what changes from here on wakes the next sleep
            wait = self.tick
            try:
                await self.attempt_due()
                wait = self.next_wait()
            except StorageError as exc:  # a state, reported once per change
                self.storage.failed(exc)
            except Exception:
                logger.exception("retry loop iteration failed")
            with contextlib.suppress(TimeoutError):  # not wait_for: on 3.11 it can swallow
                async with asyncio.timeout(wait):  # a cancel that meets a set event
                    await self._wake.wait()

    def next_wait(self) -> float:
        """Seconds until the next row not already being attempted is due, by the injected
        clock; at most ``tick``."""
        now = self._clock()
        due = self.queue.next_due_at(after=min(self._pass_at, now))  # due since: go again
        return self.tick if due is None else min(max(due - now, 0.0), self.tick)


__all__ = ["RetryLoop"]
