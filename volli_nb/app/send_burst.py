"""A burst of ``send_message`` calls: one transaction for all of them, then one attempt.

Calls made before the event loop runs the burst's task join the burst: a
``gather`` of sends, tasks started from one callback, a notebook cell that starts
several.  The burst resolves each conversation (and checks its members are contacts)
once, reserves the counters, writes every message and outbox row in a few multi-row
statements (:func:`~volli_nb.core.store.outbox_batch.write_sent`) and commits once; then
the rows are attempted together, each message sealed once under the live sessions.

**The rule (durability).**  ``send_message`` returns only after the transaction that
holds its message committed, so a message it returned survives a crash until its
recipients acknowledge it.  A message whose call had not returned when the process died
may be lost: it was never reported accepted.  A call cancelled before the commit sends
nothing; one cancelled after it is sent like the others.  A caller that awaits each
send before the next makes bursts of one (it waits for each commit): one transaction
each, not shared.  A failed write fails every call of the burst with its error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from volli_nb.base.clock import Clock
from volli_nb.core.eventlog import EventLog
from volli_nb.core.message_id import new_message_id
from volli_nb.core.store.database import Database
from volli_nb.core.store.message_queue import PersistentMessageQueue, QueuedMessage
from volli_nb.core.store.outbox_batch import NewMessage, write_sent

Resolve = Callable[[str], tuple[str, tuple[str, ...]]]
"""A conversation id or a contact's peer id → (conversation id, the other members)."""
Attempt = Callable[[list[QueuedMessage]], Awaitable[set[tuple[str, bytes]]]]
"""Attempt rows; the (recipient, message id) handed to a channel."""
Settle = Callable[[bytes, list[QueuedMessage], set[tuple[str, bytes]]], str]
"""A message's status once its rows were attempted."""


@dataclass
class _Burst:
    resolve: Resolve
    entries: list[tuple[NewMessage, asyncio.Future[str]]] = field(default_factory=list)
    resolved: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)

    def conversation(self, conversation: str) -> tuple[str, tuple[str, ...]]:
        """Resolved once per burst (contacts and conversation read once)."""
        found = self.resolved.get(conversation)
        if found is None:
            found = self.resolved[conversation] = self.resolve(conversation)
        return found


class SendBursts:
    """Turns concurrent ``send_message`` calls into bursts (see the module docstring)."""

    def __init__(
        self,
        database: Database,
        queue: PersistentMessageQueue,
        log: EventLog,
        me: str,
        *,
        clock: Clock,
        resolve: Resolve,
        attempt: Attempt,
        settle: Settle,
    ) -> None:
        self.database, self.queue, self.log, self.me = database, queue, log, me
        self._clock = clock
        self._resolve, self._attempt, self._settle = resolve, attempt, settle
        self._open: _Burst | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(self, conversation: str, body: bytes) -> tuple[NewMessage, str]:
        """Write ``body`` to ``conversation`` with the burst under way; the message and its
        status once committed and attempted.  Resolution errors raise here, at once."""
        burst = self._joinable()
        conversation_id, members = burst.conversation(conversation)
        message = NewMessage(
            new_message_id(self.me), conversation_id, members, body, int(self._clock() * 1000)
        )
        done = asyncio.get_running_loop().create_future()
        burst.entries.append((message, done))
        return message, await done

    def _joinable(self) -> _Burst:
        if self._open is None:
            self._open = _Burst(self._resolve)
            task = asyncio.get_running_loop().create_task(self._run(self._open))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return self._open

    async def drain(self) -> None:
        """Wait for the bursts under way (before the database closes).  A finished task
        stays in the set until its done callback runs; on Python 3.12+ gathering only
        finished tasks does not yield, so waiting on the whole set would spin for ever."""
        while pending := [task for task in self._tasks if not task.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self, burst: _Burst) -> None:
        if self._open is burst:
            self._open = None  # from here on, a new call starts the next burst
        entries = [(m, done) for m, done in burst.entries if not done.cancelled()]
        if not entries:
            return
        try:
            with self.database.transaction():
                written = write_sent(self.queue, self.me, [m for m, _ in entries])
        except BaseException as exc:  # every call of the burst gets the error
            for _, done in entries:
                if not done.done():
                    done.set_exception(exc) if isinstance(exc, Exception) else done.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        for message, _ in entries:
            self._queued(message)
        handed: set[tuple[str, bytes]] = set()
        try:
            handed = await self._attempt([row for rows in written for row in rows])
        finally:
            for (message, done), rows in zip(entries, written, strict=True):
                status = "pending"
                with contextlib.suppress(Exception):  # a status read that fails: pending
                    status = self._settle(message.message_id, rows, handed)
                if not done.done():
                    done.set_result(status)

    def _queued(self, message: NewMessage) -> None:
        self.log.add(
            "queue",
            f"queued {message.message_id.hex()[:8]} for {len(message.recipients)} recipient(s)",
            kind="message.queued",
            message_id=message.message_id.hex(),
            conversation=message.conversation_id,
            recipients=list(message.recipients),
            bytes=len(message.body),
        )


__all__ = ["SendBursts"]
