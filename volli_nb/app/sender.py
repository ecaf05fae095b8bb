"""Sending: persist in the outbox, seal per attempt under the live session, retry on schedule.

Sending follows the seed's diagram: encrypt for each recipient → persist in the outbox
→ if the peer is online, send over its data channel → a signed ACK marks it delivered;
otherwise it stays pending and the retry loop resends it at 1 s, 5 s, 15 s and 60 s,
then leaves it ``stuck`` for a manual retry.  A peer coming online gets its pending
messages at once (:meth:`Sender.flush`), not at their retry time.  The retry loop sleeps
until the next due time by the injected clock (at most ``retry_tick``), woken early when
the queue's schedule changes (a row added, retried, released) or a peer comes online.

One way down, in bursts (:mod:`.send_burst`): concurrent ``send_message`` calls share
one transaction (recipients resolved once, counters, messages and outbox rows written
in a few multi-row statements, nothing read back), and each call returns once it is
committed and attempted.  A retry pass, a flush chunk and a sync attempt their rows
together and count all their failures in one statement; an ACK delivers all its ids in
one.  Statuses are read without opening payloads, and only when something answered.

The outbox keeps the *plaintext* sealed at rest with the storage key, and every attempt
(:mod:`.attempts`) seals a fresh envelope under the recipients' live sessions (the
channels' ratchets, see :mod:`.peer_sessions`) with the same message id, so the receiver
deduplicates.

A signed refusal from the recipient is not a failed attempt: :mod:`.refusals` holds or
pauses the row and says why, and clock readings release held rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection

from volli_nb.app.attempts import FLUSH_CHUNK, Attempts, Handed
from volli_nb.app.chat import ChatMessage, SyncReport, overall_status
from volli_nb.app.contacts import ContactBook
from volli_nb.app.flush_progress import FlushProgress
from volli_nb.app.peer_sessions import PeerSessions
from volli_nb.app.refusals import REFUSAL_PAUSE, RefusalPolicy
from volli_nb.app.retry_loop import RetryLoop
from volli_nb.app.send_burst import SendBursts
from volli_nb.app.storage_health import StorageHealth
from volli_nb.base.clock import Clock
from volli_nb.base.errors import (
    StorageError,
    TransportClosed,
    UnknownPeer,
    VolliError,
)
from volli_nb.base.listeners import Listeners
from volli_nb.core.body import MAX_TEXT_BYTES, check_text, encode_body
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.eventlog import EventLog
from volli_nb.core.store import outbox_away
from volli_nb.core.store.database import Database
from volli_nb.core.store.message_queue import PersistentMessageQueue, QueuedMessage, Status
from volli_nb.core.store.outbox_batch import Failure
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


class Sender:
    """The outbox's side of a profile: send, attempt, seal, sync, retry, flush, delivery."""

    def __init__(
        self,
        database: Database,
        identity: Identity,
        queue: PersistentMessageQueue,
        network: NetworkStore,
        sessions: PeerSessions,
        contacts: ContactBook,
        log: EventLog,
        *,
        clock: Clock,
        retry_tick: float = 1.0,
        storage: StorageHealth | None = None,
        refusal_pause: float = REFUSAL_PAUSE,
    ) -> None:
        self.database, self.identity, self.queue = database, identity, queue
        self.network, self.contacts, self.log = network, contacts, log
        self.sessions = sessions
        self._clock = clock
        self._flushing: dict[str, int] = {}  # peers whose backlog a flush is sending
        self._rekeyed: list[int] = []  # rows a re-key handed back, made due in one batch
        self._delivered = Listeners[[bytes, str]]("on_delivered handler", logger)
        self.storage = storage if storage is not None else StorageHealth(database, log)
        self.attempts = Attempts(queue, network, sessions, log, self.storage, clock=clock)
        self._in_flight = self.attempts.in_flight  # handed over, not answered yet
        self.bursts = SendBursts(
            database, queue, log, identity.peer_id, clock=clock, resolve=self._recipients,
            attempt=self.attempts.rows, settle=self._settle,
        )  # fmt: skip
        self.retries = RetryLoop(
            queue, self._attempt_due, self.storage, clock=clock, tick=retry_tick
        )
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

    # --- the retry loop (see :mod:`.retry_loop`) ------------------------------

    def start(self) -> None:
        """Start the retry loop on the running event loop (idempotent)."""
        self.retries.start()

    async def stop(self) -> None:
        await self.bursts.drain()
        await self.retries.stop()

    def next_wait(self) -> float:
        """Seconds until the retry loop's next pass (see :meth:`RetryLoop.next_wait`)."""
        return self.retries.next_wait()

    async def process_due(self) -> int:
        """Attempt every message whose retry time has come (the retry loop's body)."""
        return await self.retries.attempt_due()

    async def _attempt_due(self, now: float) -> int:
        """One retry pass: rows in flight are skipped before their payload is read (the
        others are read in one statement), and every failure of the pass is counted in
        one statement."""
        attempted = 0
        failures: list[Failure] = []
        due = []
        for row_id, recipient, message_id in self.queue.due_keys(now):
            key = (recipient, message_id)
            if self.attempts.busy(key) or recipient in self._flushing:
                continue  # attempted already, or by a burst or a flush under way
            attempted += 1
            if self.network.is_connected(recipient):
                due.append(row_id)
            else:
                failures.append(Failure(row_id, message_id, recipient, "peer offline"))
        try:
            await self.attempts.rows(self.queue.get_many(due), failures)
        finally:
            self.attempts.count_failures(failures)
        return attempted

    # --- sending ----------------------------------------------------------------

    async def send_message(
        self, conversation: str, content: str, *, compress: bool = True
    ) -> ChatMessage:
        """Write the message and attempt it; returns once it is committed (see
        :mod:`.send_burst`: concurrent calls share one transaction)."""
        body = encode_body(check_text(content), compress=compress)
        message, status = await self.bursts.send(conversation, body)
        return ChatMessage(
            message.message_id, message.conversation_id, self.peer_id, "out", content,
            message.timestamp_ms, status,
        )  # fmt: skip

    def _recipients(self, conversation: str) -> tuple[str, tuple[str, ...]]:
        """(conversation id, the members a message goes to); each must be a contact: one
        we cannot seal for is the caller's to fix now."""
        found = self.contacts.find_conversation(conversation)
        members = tuple(self.contacts.others(found))
        for member in members:
            if self.contacts.contact(member) is None:
                raise UnknownPeer(f"conversation member {member} is not a contact")
        return found.id, members

    def _settle(self, message_id: bytes, rows: list[QueuedMessage], handed: Handed) -> str:
        """A fresh message's status after its first attempt: pending, unless a row handed
        to a channel was answered meanwhile (only then are the statuses read)."""
        keys = [(row.recipient, message_id) for row in rows]
        if not any(key in handed and key not in self._in_flight for key in keys):
            return "pending"
        return overall_status(set(self.delivery_status(message_id).values()), none="mixed")

    async def attempt(self, row: QueuedMessage) -> bool:
        """One delivery attempt of one row (see :meth:`attempt_rows`)."""
        return await self.attempt_rows([row]) == 1

    async def attempt_rows(self, rows: list[QueuedMessage]) -> int:
        """Delivery attempts for a burst of rows: each message sealed once, under the live
        sessions of the recipients attempted now, and handed to each of their channels;
        the failures counted in one statement.  How many were handed over."""
        return len(await self.attempts.rows(rows))

    async def sync_messages(self) -> SyncReport:
        """Every pending message to a connected peer goes out now."""
        waiting = stuck = 0
        ready = []
        for row in self.queue.get_pending():
            if row.status == Status.STUCK:
                stuck += 1
            elif row.status == Status.HELD:  # refused: waits for its cause to change
                waiting += 1
            elif (row.recipient, row.message_id) in self._in_flight:
                continue
            elif self.network.is_connected(row.recipient):
                ready.append(row)
            else:
                waiting += 1
        sent = await self.attempt_rows(ready)
        return SyncReport(sent, len(self._in_flight), waiting, stuck)

    async def _flushed(self, peer_id: str) -> None:
        """:meth:`flush`, for a peer already counted as flushing."""
        try:
            await self._flush(peer_id)
        finally:
            self._flushing[peer_id] -= 1
            if not self._flushing[peer_id]:
                del self._flushing[peer_id]

    async def flush(self, peer_id: str) -> None:
        """A peer came online: its pending messages go out at once, not at their retry time.

        A chunk at a time, read (one statement), attempted (its failures one statement)
        and left to the channel while the next is sealed, so the peer starts storing the
        first while we seal the rest; the retry loop leaves this peer's rows alone."""
        self._flushing[peer_id] = self._flushing.get(peer_id, 0) + 1
        await self._flushed(peer_id)

    async def _flush(self, peer_id: str) -> None:
        keys = self.queue.pending_keys(peer_id)
        progress = FlushProgress.maybe(
            self.network.progress,
            peer_id,
            self.contacts.display_name(peer_id),
            [message_id for _, message_id in keys],
            self.network.on_event,
        )
        for start in range(0, len(keys), FLUSH_CHUNK):
            chunk = [row_id for row_id, _ in keys[start : start + FLUSH_CHUNK]]
            rows = [r for r in self.queue.get_many(chunk) if r.status == Status.PENDING]
            await self.attempt_rows(rows)
            if progress is not None:
                progress.sent(len(chunk))
        if keys:
            self.log.add("queue", f"flushed {len(keys)} pending message(s)", peer_id=peer_id)

    # --- delivery ---------------------------------------------------------------

    def on_delivered(self, handler: Callable[[bytes, str], None]) -> Callable[[], None]:
        return self._delivered.add(handler)

    def delivery_status(self, message_id: bytes) -> dict[str, str]:
        return {peer: str(status) for peer, status in self.queue.statuses(message_id).items()}

    async def wait_delivered(
        self, message_id: bytes, timeout: float, to: Collection[str] | None = None
    ) -> dict[str, str]:
        changed = asyncio.Event()
        remove = self.on_delivered(lambda mid, _peer: changed.set() if mid == message_id else None)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    status = self.delivery_status(message_id)
                    wanted = status.keys() if to is None else to
                    if wanted and all(status.get(p) == Status.DELIVERED for p in wanted):
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
            if row_id is not None and not event.failed:  # a re-key: due now, not failed
                self._due_again(row_id)
            elif row_id is not None:
                with contextlib.suppress(VolliError):
                    self.queue.mark_failed(row_id, event.reason)
        elif isinstance(event, PeerOnline):
            self._flushing[event.peer_id] = self._flushing.get(event.peer_id, 0) + 1  # at once:
            asyncio.get_running_loop().create_task(self._flushed(event.peer_id))  # the retry
            self.retries.wake_up()  # loop's next pass leaves this peer's rows to the flush
            outbox_away.release_returned(self.queue, event.peer_id)  # before flush reads
        elif isinstance(event, PeerOffline):
            name, peer_id = self.display_name(event.peer_id), event.peer_id
            self.log.add("queue", f"{name} offline: messages wait in the outbox", peer_id=peer_id)
        elif isinstance(event, DeliveryRefused):
            for message_id in event.message_ids:
                self._in_flight.pop((event.peer_id, message_id), None)
            self.refusals.refused(event)
        elif isinstance(event, ClockSkew):
            self.refusals.clock_reading(event)

    def _due_again(self, row_id: int) -> None:
        """A re-key hands its in-flight rows back one event each, all in one call: they
        are made due at once together, just after (a flushed row may be due in 60 s)."""
        if not self._rekeyed:
            asyncio.get_running_loop().call_soon(self._make_due)
        self._rekeyed.append(row_id)

    def _make_due(self) -> None:
        rows, self._rekeyed = self._rekeyed, []
        try:
            self.queue.due_now(rows)  # (wakes the retry loop)
        except StorageError as exc:  # the loop's safety tick still finds them, later
            self.storage.failed(exc)
        self.retries.wake_up()

    def _acknowledged(self, event: Delivered) -> None:
        for message_id in event.message_ids:
            self._in_flight.pop((event.peer_id, message_id), None)
        try:
            newly = self.queue.acknowledge_many(event.message_ids, event.peer_id)  # one statement
        except StorageError as exc:  # a full disk: the rows stay pending, and a later
            self.storage.failed(exc)  # attempt's duplicate is acknowledged again
            return
        self.storage.succeeded()
        for message_id in newly:
            self.log.add(
                "queue",
                f"delivered {message_id.hex()[:8]}",
                peer_id=event.peer_id,
                kind="message.delivered",
                message_id=message_id.hex(),
            )

        for message_id in newly:
            self._delivered.emit(message_id, event.peer_id)


__all__ = ["MAX_TEXT_BYTES", "Sender"]
