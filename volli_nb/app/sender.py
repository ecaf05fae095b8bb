"""Sending: persist in the outbox, seal per attempt, send if online, retry on schedule.

Sending follows the seed's diagram: encrypt for each recipient → persist in the outbox
→ if the peer is online, send over its data channel → a signed ACK marks it delivered;
otherwise it stays pending and the retry loop resends it at 1 s, 5 s, 15 s and 60 s,
then leaves it ``stuck`` for a manual retry.  A peer coming online gets its pending
messages at once (:meth:`Sender.flush`), not at their retry time.  The retry loop sleeps
until the next due time by the injected clock (at most ``retry_tick``), woken early when
the queue's schedule changes (a row added, retried, released) or a peer comes online.

One way down: a send resolves its recipients once, writes the message, its counter
and its outbox rows in one transaction, and attempts the rows as written (nothing is
read back); statuses are read without opening payloads.

One refinement: the outbox keeps the *plaintext* sealed at rest with the storage key,
and every attempt seals a fresh envelope to the recipient's current keys with the same
message id.  A retry days later is then still fresh for the receiver's replay window,
and key rotation can come later without touching the queue.  A group message is sealed
once for all its members per ``SEAL_REUSE`` seconds, not once per member.

A signed refusal from the recipient is not a failed attempt: :mod:`.refusals` holds or
pauses the row and says why, and clock readings release held rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from volli_nb.app.chat import ChatMessage, SyncReport, overall_status
from volli_nb.app.contacts import ContactBook
from volli_nb.app.flush_progress import FlushProgress
from volli_nb.app.recipients import Recipients
from volli_nb.app.refusals import REFUSAL_PAUSE, RefusalPolicy
from volli_nb.app.storage_health import StorageHealth
from volli_nb.base.clock import Clock
from volli_nb.base.errors import (
    NotFound,
    StorageError,
    TransportClosed,
    UsageError,
    VolliError,
)
from volli_nb.base.listeners import Listeners
from volli_nb.core.body import encode_body
from volli_nb.core.crypto import envelope as envelopes
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.eventlog import EventLog
from volli_nb.core.message_id import new_message_id
from volli_nb.core.store import outbox_away
from volli_nb.core.store.database import Database
from volli_nb.core.store.message_queue import (
    OutgoingMessage,
    PersistentMessageQueue,
    QueuedMessage,
    Status,
)
from volli_nb.net.events import (
    ClockSkew,
    Delivered,
    DeliveryRefused,
    NetworkEvent,
    PeerOffline,
    PeerOnline,
    Undelivered,
)
from volli_nb.net.network_store import NetworkStore

logger = logging.getLogger(__name__)

MAX_TEXT_BYTES = 12 * 1024 * 1024
SEAL_REUSE = 30.0  # seconds an envelope is reused for further recipients of its message
SEAL_CACHE = 64  # group envelopes kept for reuse (most recent)


class Sender:
    """The outbox's side of a profile: send, attempt, seal, sync, retry, flush, delivery."""

    def __init__(
        self,
        database: Database,
        identity: Identity,
        queue: PersistentMessageQueue,
        network: NetworkStore,
        contacts: ContactBook,
        log: EventLog,
        *,
        clock: Clock,
        later: Callable[[Callable[[], None]], None],
        retry_tick: float = 1.0,
        storage: StorageHealth | None = None,
        refusal_pause: float = REFUSAL_PAUSE,
    ) -> None:
        self.database, self.identity, self.queue = database, identity, queue
        self.network, self.contacts, self.log = network, contacts, log
        self._clock = clock
        self._later = later  # after the current receive batch commits (see Receiver.later)
        self._retry_tick = retry_tick
        self._retry_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # replaced by start(): an Event belongs to one loop
        self._pass_at = float("-inf")  # when the last retry pass looked for due rows
        queue.on_schedule = self._wake_up
        self._in_flight: dict[tuple[str, bytes], int] = {}
        self._sealed: dict[bytes, tuple[float, bytes]] = {}
        self._delivered = Listeners[[bytes, str]]("on_delivered handler", logger)
        self.storage = storage if storage is not None else StorageHealth(database, log)
        self.refusals = RefusalPolicy(
            queue, network, log, self.display_name, clock=clock, pause=refusal_pause
        )
        network.on_event(self._on_network_event)

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    def display_name(self, peer_id: str) -> str:
        contact = self.database.get_contact(peer_id)
        return (contact.name if contact else None) or peer_id[:8]

    # --- the retry loop ---------------------------------------------------------

    def start(self) -> None:
        """Start the retry loop on the running event loop (idempotent)."""
        if self._retry_task is None or self._retry_task.done():
            self._wake = asyncio.Event()
            self._retry_task = asyncio.get_running_loop().create_task(self._retry_loop())

    def _wake_up(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._retry_task is not None:
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry_task
            self._retry_task = None

    async def _retry_loop(self) -> None:
        while True:
            self._wake.clear()  # what changes from here on wakes the next sleep
            wait = self._retry_tick
            try:
                await self.process_due()
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
        clock; at most ``retry_tick`` (a safety net, and the pace of a frozen test clock)."""
        now = self._clock()
        due = self.queue.next_due_at(after=min(self._pass_at, now))  # due since: go again
        return self._retry_tick if due is None else min(max(due - now, 0.0), self._retry_tick)

    async def process_due(self) -> int:
        """Attempt every message whose retry time has come (the retry loop's body).

        Rows in flight are skipped before their payload is read; rows for offline peers
        count a failed attempt in one transaction."""
        attempted = 0
        offline = []
        recipients = Recipients(self)
        self._pass_at = now = self._clock()
        for row_id, recipient, message_id in self.queue.due_keys(now):
            if (recipient, message_id) in self._in_flight:
                continue
            attempted += 1
            if not self.network.is_connected(recipient):
                offline.append(row_id)
                continue
            with contextlib.suppress(NotFound):
                await self.attempt(self.queue.get(row_id), recipients)
        if offline:
            with self.database.transaction():
                for row_id in offline:
                    self._attempt_failed(row_id, "peer offline")
            self.storage.succeeded()  # that was a write
        return attempted

    # --- sending ----------------------------------------------------------------

    async def send_message(
        self, conversation: str, content: str, *, compress: bool = True
    ) -> ChatMessage:
        body = encode_body(content, compress=compress)
        if len(body) > MAX_TEXT_BYTES:
            raise UsageError(f"message is {len(body)} bytes; the limit is {MAX_TEXT_BYTES}")
        found = self.contacts.find_conversation(conversation)
        conversation_id, members = found.id, self.contacts.others(found)
        recipients = Recipients(self, found)
        message_id = new_message_id()
        now_ms = int(self._clock() * 1000)
        with self.database.transaction():
            counter = self.database.next_counter(conversation_id)
            self.database.store_sent(
                message_id, conversation_id, self.peer_id, counter, now_ms, body
            )
            rows = [
                self.queue.add(
                    OutgoingMessage(message_id, conversation_id, peer, body, counter),
                    in_history=True,  # the body just stored: sealed once, pointed at
                )
                for peer in members
            ]
        self.log.add(
            "queue",
            f"queued {message_id.hex()[:8]} for {len(rows)} recipient(s)",
            kind="message.queued",
            message_id=message_id.hex(),
            conversation=conversation_id,
            recipients=members,
            bytes=len(body),
        )
        settled = None in rows  # a fresh id makes fresh rows, unless a member is listed twice
        for row in rows:
            if row is not None and await self.attempt(row, recipients):
                settled = settled or (row.recipient, message_id) not in self._in_flight
        # Rows still in flight (or failed once) are pending: read only if something answered.
        statuses = set(self.delivery_status(message_id).values()) if settled else {"pending"}
        status = overall_status(statuses, none="mixed")
        return ChatMessage(
            message_id, conversation_id, self.peer_id, "out", content, now_ms, status
        )

    async def attempt(self, row: QueuedMessage, recipients: Recipients | None = None) -> bool:
        """One delivery attempt: seal a fresh envelope and hand it to the session.
        ``recipients`` remembers the conversations resolved for a burst of attempts."""
        key = (row.recipient, row.message_id)
        if key in self._in_flight:
            return False
        if not self.network.is_connected(row.recipient):
            self._attempt_failed(row.id, "peer offline")
            return False
        try:
            self.network.trace.sealing(row.recipient, row.message_id, len(row.payload))
            data = self.seal(row, recipients)
            self._in_flight[key] = row.id
            await self.network.send_envelope(row.recipient, row.message_id, data)
        except VolliError as exc:
            self.network.trace.gave_up(row.recipient, row.message_id, str(exc))
            self._in_flight.pop(key, None)
            self._attempt_failed(row.id, f"{type(exc).__name__}: {exc}")
            return False
        self.log.add(
            "message",
            f"sent {row.message_id.hex()[:8]}",
            peer_id=row.recipient,
            kind="message.sent",
            message_id=row.message_id.hex(),
            bytes=len(data),
            attempt=row.attempts + 1,
        )
        return True

    def _attempt_failed(self, row_id: int, reason: str) -> None:
        """Count a failed attempt, unless an ACK (or a discard) settled the row meanwhile."""
        with contextlib.suppress(UsageError, NotFound):
            self.queue.mark_failed(row_id, reason)

    def seal(self, row: QueuedMessage, recipients: Recipients | None = None) -> bytes:
        """The envelope for an attempt; in a group, one seal serves every member for a while.

        An envelope is addressed to all members at once, so a group message is sealed
        once per SEAL_REUSE seconds, not once per member (which made fan-out quadratic).
        A retry after that reseals, so a late retry is still fresh for the receiver."""
        now = self._clock()
        cached = self._sealed.get(row.message_id)
        if cached is not None and now - cached[0] < SEAL_REUSE:
            return cached[1]
        peers = (recipients or Recipients(self)).of(row.conversation_id, row.recipient)
        data = envelopes.seal(
            self.identity,
            peers,
            conversation_id=row.conversation_id,
            plaintext=row.payload,
            counter=row.counter,
            timestamp_ms=int(now * 1000),
            message_id=row.message_id,
        )
        if len(peers) > 1:
            self._sealed[row.message_id] = (now, data)
            while len(self._sealed) > SEAL_CACHE:
                del self._sealed[next(iter(self._sealed))]
        return data

    async def sync_messages(self) -> SyncReport:
        """Every pending message to a connected peer goes out now."""
        sent = waiting = stuck = 0
        recipients = Recipients(self)
        for row in self.queue.get_pending():
            if row.status == Status.STUCK:
                stuck += 1
            elif row.status == Status.HELD:  # refused: waits for its cause to change
                waiting += 1
            elif (row.recipient, row.message_id) in self._in_flight:
                continue
            elif self.network.is_connected(row.recipient):
                sent += await self.attempt(row, recipients)
            else:
                waiting += 1
        return SyncReport(sent, len(self._in_flight), waiting, stuck)

    async def flush(self, peer_id: str) -> None:
        """A peer came online: its pending messages go out at once, not at their retry time."""
        rows = [r for r in self.queue.for_recipient(peer_id) if r.status == Status.PENDING]
        progress = FlushProgress.maybe(
            self.network.progress,
            peer_id,
            self.contacts.display_name(peer_id),
            [r.message_id for r in rows],
            self.network.on_event,
        )
        recipients = Recipients(self)
        for row in rows:
            await self.attempt(row, recipients)
            if progress is not None:
                progress.sent()
        if rows:
            self.log.add("queue", f"flushed {len(rows)} pending message(s)", peer_id=peer_id)

    # --- delivery ---------------------------------------------------------------

    def on_delivered(self, handler: Callable[[bytes, str], None]) -> Callable[[], None]:
        return self._delivered.add(handler)

    def delivery_status(self, message_id: bytes) -> dict[str, str]:
        return {peer: str(status) for peer, status in self.queue.statuses(message_id).items()}

    async def wait_delivered(self, message_id: bytes, timeout: float) -> dict[str, str]:
        changed = asyncio.Event()
        remove = self.on_delivered(lambda mid, _peer: changed.set() if mid == message_id else None)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    status = self.delivery_status(message_id)
                    if status and all(s == Status.DELIVERED for s in status.values()):
                        return status
                    changed.clear()
                    await changed.wait()
        except TimeoutError:
            raise TransportClosed(
                f"message {message_id.hex()[:8]} not acknowledged within {timeout:g} s: "
                f"{self.delivery_status(message_id)}"
            ) from None
        finally:
            remove()

    def _on_network_event(self, event: NetworkEvent) -> None:
        if isinstance(event, Delivered):
            self._acknowledged(event)
        elif isinstance(event, Undelivered):
            row_id = self._in_flight.pop((event.peer_id, event.message_id), None)
            if row_id is not None:
                with contextlib.suppress(VolliError):
                    self.queue.mark_failed(row_id, event.reason)
        elif isinstance(event, PeerOnline):
            self._wake_up()
            asyncio.get_running_loop().create_task(self.flush(event.peer_id))
            outbox_away.release_returned(self.queue, event.peer_id)  # before flush reads
        elif isinstance(event, PeerOffline):
            self.log.add("queue", f"{event.peer_id} offline: messages wait in the outbox")
        elif isinstance(event, DeliveryRefused):
            for message_id in event.message_ids:
                self._in_flight.pop((event.peer_id, message_id), None)
            self.refusals.refused(event)
        elif isinstance(event, ClockSkew):
            self.refusals.clock_reading(event)

    def _acknowledged(self, event: Delivered) -> None:
        newly = []
        with self.database.transaction():  # one commit for every id the ACK covers
            for message_id in event.message_ids:
                self._in_flight.pop((event.peer_id, message_id), None)
                if self.queue.acknowledge(message_id, event.peer_id):
                    newly.append(message_id)
        for message_id in newly:
            self.log.add(
                "queue",
                f"delivered {message_id.hex()[:8]}",
                peer_id=event.peer_id,
                kind="message.delivered",
                message_id=message_id.hex(),
            )

        def notify() -> None:
            for message_id in newly:
                self._delivered.emit(message_id, event.peer_id)

        self._later(notify)


__all__ = ["MAX_TEXT_BYTES", "SEAL_CACHE", "SEAL_REUSE", "Sender"]
