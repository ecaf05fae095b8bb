"""Delivery attempts: outbox rows sealed under the live sessions and handed to channels.

An attempt seals each message once, for the recipients attempted now (connected, with a
live session: sealing for an offline member would advance its chain for nothing): one
body, a key wrap each (:meth:`PeerSessions.seal`).  Each envelope is handed to its
recipient's channel, which bundles it with whatever else is queued; from then on it is
*in flight* until the recipient's signed ACK, refusal, or a timeout answers it.  An
envelope whose session ended before it left is discarded, never sent
(:class:`~volli_nb.core.protocol.session.StaleSession`), and its row tried again.

Rows being attempted are *claimed*, so the retry loop leaves them to whoever attempts
them; every ``FLUSH_CHUNK`` messages the attempt yields once, so the channel sends what
is sealed so far while the rest is sealed (the peer stores the first while we seal the
last).  Failed attempts are counted together, in one statement
(:meth:`~volli_nb.core.store.message_queue.PersistentMessageQueue.fail_many`).
"""

from __future__ import annotations

import asyncio

from volli_nb.app.peer_sessions import PeerSessions
from volli_nb.app.storage_health import StorageHealth
from volli_nb.base import faults
from volli_nb.base.clock import Clock
from volli_nb.base.errors import StorageError, VolliError
from volli_nb.core.eventlog import EventLog
from volli_nb.core.groups.wire import payload_on_wire
from volli_nb.core.store.message_queue import PersistentMessageQueue, QueuedMessage
from volli_nb.core.store.outbox_batch import Failure
from volli_nb.net.network_store import NetworkStore

Key = tuple[str, bytes]  # (recipient, message id)
Handed = set[Key]  # handed to a channel by one attempt

FLUSH_CHUNK = 64  # messages sealed between turns of the loop (a flush's progress step)


class Attempts:
    """Attempts rows, and knows which are in flight and which are being attempted."""

    def __init__(
        self,
        queue: PersistentMessageQueue,
        network: NetworkStore,
        sessions: PeerSessions,
        log: EventLog,
        storage: StorageHealth,
        *,
        clock: Clock,
    ) -> None:
        self.queue, self.network, self.sessions = queue, network, sessions
        self.log, self.storage = log, storage
        self._clock = clock
        self.in_flight: dict[Key, int] = {}  # handed over, not answered yet: key → row id
        self.claimed: set[Key] = set()  # being attempted now (a burst, a sync, a flush)

    def busy(self, key: Key) -> bool:
        """In flight, or being attempted: not for the retry loop."""
        return key in self.in_flight or key in self.claimed

    def answered(self, peer_id: str, message_id: bytes) -> int | None:
        """An ACK, a refusal or a timeout answered it: no longer in flight (its row id)."""
        return self.in_flight.pop((peer_id, message_id), None)

    async def rows(
        self, rows: list[QueuedMessage], failures: list[Failure] | None = None
    ) -> Handed:
        """Attempt ``rows``; failures go to ``failures`` if given (the caller counts them),
        else are counted here.  The keys handed to a channel."""
        failed: list[Failure] = [] if failures is None else failures
        handed: Handed = set()
        by_message: dict[bytes, list[QueuedMessage]] = {}
        claimed = {(row.recipient, row.message_id) for row in rows} - self.claimed
        self.claimed |= claimed  # the retry loop leaves them to us
        for row in rows:
            by_message.setdefault(row.message_id, []).append(row)
        try:
            since_yield = 0
            for group in by_message.values():
                handed |= await self._message(group, failed)
                since_yield += len(group)
                if since_yield >= FLUSH_CHUNK:  # the channel sends what is sealed so far,
                    since_yield = 0  # while we seal the rest: both sides work at once
                    await asyncio.sleep(0)
        finally:
            self.claimed -= claimed
            if failures is None:
                self.count_failures(failed)
        return handed

    async def _message(self, rows: list[QueuedMessage], failed: list[Failure]) -> Handed:
        """One message's rows: sealed once for the recipients that can take it now."""
        ready = []
        for row in rows:
            if (row.recipient, row.message_id) in self.in_flight:
                continue
            if self.network.is_connected(row.recipient) and row.recipient in self.sessions:
                ready.append(row)
            else:
                failed.append(Failure(row.id, row.message_id, row.recipient, "peer offline"))
        if not ready:
            return set()
        first = ready[0]
        for row in ready:
            self.network.trace.sealing(row.recipient, row.message_id, len(row.payload))
        try:
            sealed, sessions = self.sessions.seal(
                [row.recipient for row in ready],
                conversation_id=first.conversation_id,
                message_id=first.message_id,
                counter=first.counter,
                timestamp_ms=int(self._clock() * 1000),
                plaintext=payload_on_wire(first.conversation_id, first.payload),
            )
        except VolliError as exc:
            for row in ready:
                self._failed(row, exc, failed)
            return set()
        faults.reach("sealed")  # a crash test may die here: sealed, not yet handed over
        handed: Handed = set()
        for row in ready:
            key = (row.recipient, row.message_id)
            self.in_flight[key] = row.id
            try:
                await self.network.send_sealed(row.recipient, sessions[row.recipient], sealed)
            except VolliError as exc:  # closed, or its session replaced: tried again later
                self.in_flight.pop(key, None)
                self._failed(row, exc, failed)
                continue
            handed.add(key)
            self.log.add(
                "message",
                f"sent {row.message_id.hex()[:8]}",
                peer_id=row.recipient,
                kind="message.sent",
                message_id=row.message_id.hex(),
                bytes=len(sealed.envelope),
                attempt=row.attempts + 1,
            )
        return handed

    def _failed(self, row: QueuedMessage, exc: VolliError, failed: list[Failure]) -> None:
        self.network.trace.gave_up(row.recipient, row.message_id, str(exc))
        reason = f"{type(exc).__name__}: {exc}"
        failed.append(Failure(row.id, row.message_id, row.recipient, reason))

    def count_failures(self, failures: list[Failure]) -> None:
        """One statement for a pass's failed attempts; a failed write is a storage state."""
        if not failures:
            return
        try:
            self.queue.fail_many(failures)
        except StorageError as exc:
            self.storage.failed(exc)
            return
        self.storage.succeeded()


__all__ = ["FLUSH_CHUNK", "Attempts", "Handed", "Key"]
