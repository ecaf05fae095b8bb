"""MessagesStore: the seed's ``messagesStore``, tying identity, storage, queue and network.

Sending follows the seed's diagram: encrypt for each recipient → persist in
the outbox → if the peer is online, send over its data channel → a signed ACK
marks it delivered; otherwise it stays pending and the retry loop resends it
at 1 s, 5 s, 15 s and 60 s, then leaves it ``stuck`` for a manual retry.

One refinement: the outbox keeps the *plaintext* sealed at rest with the
storage key, and every attempt seals a fresh envelope to the recipient's
current keys with the same message id.  A retry days later is then still
fresh for the receiver's replay window, and key rotation can come later
without touching the queue.

Receiving: verify and decrypt → store (message and replay seen-set in one
transaction) → notify handlers once → ACK.  The ACK goes out only after the
row is committed, so a crash between the two means a retransmission, which
the persisted seen-set turns into a second ACK and no second message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.utils

from volli_nb.app.flush_progress import FlushProgress
from volli_nb.base.clock import Clock, system_clock
from volli_nb.base.errors import (
    BadPairingCode,
    NotFound,
    ReplayError,
    TransportClosed,
    UnknownPeer,
    UsageError,
    VolliError,
)
from volli_nb.core import pairing_code as pairing
from volli_nb.core.body import check_body, decode_body, encode_body
from volli_nb.core.crypto import envelope as envelopes
from volli_nb.core.crypto.identity import Identity, PublicIdentity, contact_safety_number
from volli_nb.core.eventlog import EventLog
from volli_nb.core.store.database import KDF_MODERATE, Database, KdfCost
from volli_nb.core.store.message_queue import (
    OutgoingMessage,
    PersistentMessageQueue,
    QueuedMessage,
    Status,
)
from volli_nb.net.network_store import (
    Delivered,
    IncomingEnvelope,
    NetworkConfig,
    NetworkEvent,
    NetworkStore,
    PeerOffline,
    PeerOnline,
    Undelivered,
)

log = logging.getLogger(__name__)

MAX_TEXT_BYTES = 12 * 1024 * 1024
SEAL_REUSE = 30.0  # seconds an envelope is reused for further recipients of its message
SEAL_CACHE = 64  # group envelopes kept for reuse (most recent)


@dataclass(frozen=True)
class ChatMessage:
    """A message as the UI shows it."""

    message_id: bytes
    conversation_id: str
    sender: str
    direction: str  # "in" or "out"
    text: str
    timestamp_ms: int
    status: str  # "received", or for "out": delivered / pending / stuck / ...

    @property
    def short_id(self) -> str:
        return self.message_id.hex()[:8]


@dataclass(frozen=True)
class SyncReport:
    sent: int
    in_flight: int
    waiting_offline: int
    stuck: int


def dm_conversation_id(a: str, b: str) -> str:
    """The one conversation id two peers share for their direct messages."""
    first, second = sorted((a, b))
    return f"dm-{first}-{second}"


class MessagesStore:
    """One profile: its identity, its SQLite file, its outbox and its peer connections."""

    def __init__(
        self,
        database: Database,
        identity: Identity,
        *,
        name: str | None = None,
        config: NetworkConfig | None = None,
        clock: Clock = system_clock,
        retry_tick: float = 0.2,
        log: EventLog | None = None,
    ) -> None:
        self.database = database
        self.identity = identity
        self.name = name or identity.peer_id[:8]
        self.clock = clock
        self.log = log if log is not None else EventLog()
        self.message_queue = PersistentMessageQueue(database, clock=clock, log=self.log)
        self.network_store = NetworkStore(
            identity, self.contact, config=config, seen=database.is_seen, log=self.log
        )
        self.progress = self.network_store.progress  # long operations, for the surfaces
        self.network_store.on_message(self._on_incoming)
        self.network_store.on_event(self._on_network_event)
        self.network_store.batch = self._receive_batch
        self._after_commit: list[Callable[[], None]] | None = None
        self._handlers: list[Callable[[ChatMessage], None]] = []
        self._delivery_handlers: list[Callable[[bytes, str], None]] = []
        self._in_flight: dict[tuple[str, bytes], int] = {}
        self._sealed: dict[bytes, tuple[float, bytes]] = {}
        self._known_conversations: set[tuple[str, tuple[str, ...]]] = set()
        self._retry_tick = retry_tick
        self._retry_task: asyncio.Task[None] | None = None
        self.room_session: Any = None  # a rooms.RoomSession once join() was called

    @classmethod
    def open(
        cls,
        path: str | Path,
        passphrase: str,
        *,
        name: str | None = None,
        kdf: KdfCost = KDF_MODERATE,
        config: NetworkConfig | None = None,
        clock: Clock = system_clock,
        **kwargs: Any,
    ) -> MessagesStore:
        """Open (or create) a profile; a new profile gets a fresh identity."""
        database = Database.open(path, passphrase, kdf=kdf, clock=clock)
        secret = database.load_identity_secret()
        if secret is None:
            identity = Identity.generate()
            database.save_identity(
                identity.to_secret_bytes(),
                identity.peer_id,
                identity.public.identity_key,
                identity.public.device_key,
            )
        else:
            identity = Identity.from_secret_bytes(secret)
        return cls(database, identity, name=name, config=config, clock=clock, **kwargs)

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    def __repr__(self) -> str:
        return (
            f"<MessagesStore {self.name} peer_id={self.peer_id} "
            f"online={self.network_store.connected_peers()} "
            f"pending={len(self.message_queue.get_pending())}>"
        )

    # --- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        """Start the retry loop on the running event loop (idempotent)."""
        if self._retry_task is None or self._retry_task.done():
            self._retry_task = asyncio.get_running_loop().create_task(self._retry_loop())

    async def close(self) -> None:
        """Close every connection (bounded) and stop the retry loop; the file stays."""
        if self._retry_task is not None:
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry_task
            self._retry_task = None
        if self.room_session is not None:
            await self.room_session.close()
            self.room_session = None
        await self.network_store.disconnect()
        self.database.close()

    async def __aenter__(self) -> MessagesStore:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- contacts and pairing -----------------------------------------------

    def contact(self, peer_id: str) -> PublicIdentity | None:
        row = self.database.get_contact(peer_id)
        if row is None:
            return None
        return PublicIdentity(row.identity_key, row.device_key, row.device_signature)

    def add_contact(self, peer: PublicIdentity, *, name: str | None = None) -> str:
        """Pin ``peer``'s keys (KeyMismatch if the id is pinned to another key)."""
        peer.verify()
        if peer.peer_id == self.peer_id:
            raise UsageError("this is our own identity; pair with the other side's code")
        self.database.add_contact(
            peer.peer_id, peer.identity_key, peer.device_key, peer.device_signature, name=name
        )
        self.database.ensure_conversation(
            dm_conversation_id(self.peer_id, peer.peer_id), [self.peer_id, peer.peer_id], name
        )
        return peer.peer_id

    def safety_number(self, peer_id: str) -> str:
        peer = self.contact(peer_id)
        if peer is None:
            raise NotFound(f"no contact {peer_id!r}")
        return contact_safety_number(self.identity.public, peer)

    async def create_pairing_code(self) -> str:
        """Start pairing: an offer code to paste into the other side's
        :meth:`accept_pairing_code`.  Works for new and known contacts alike."""
        self.start()
        token = "pair-" + nacl.utils.random(6).hex()
        offer = await self.network_store.connect_to_peer(token)
        self.log.add("signaling", f"pairing code created ({token})")
        return pairing.encode_code("offer", offer.sdp, self.identity.public, self.name, token)

    async def accept_pairing_code(self, code: str) -> str:
        """Accept the other side's offer code; returns an answer code to paste back."""
        self.start()
        parsed = pairing.decode_code(code, expect="offer")
        self.add_contact(parsed.identity, name=parsed.name)
        answer = await self.network_store.connect_to_peer(parsed.peer_id, parsed.sdp)
        self.log.add("signaling", f"accepted offer from {parsed.name}", peer_id=parsed.peer_id)
        return pairing.encode_code(
            "answer", answer.sdp, self.identity.public, self.name, parsed.ref
        )

    async def complete_pairing(self, code: str) -> str:
        """Apply the answer code; returns the new contact's peer id."""
        parsed = pairing.decode_code(code, expect="answer")
        if parsed.ref is None or parsed.ref not in self.network_store.peers:
            raise BadPairingCode(
                "this answer does not match an open offer from this profile; "
                "create a new code with create_pairing_code() and start again"
            )
        self.add_contact(parsed.identity, name=parsed.name)
        await self.network_store.accept_answer(parsed.ref, parsed.sdp, answered_by=parsed.peer_id)
        return parsed.peer_id

    async def join(self, room: str, url: str, *, auto_pair: bool = True) -> list[str]:
        """Join a room on a ``volli-signal`` server: publish presence, and pair with
        the peers there (and those who come later) unless ``auto_pair`` is False.
        Returns the peer ids already present."""
        from volli_nb.app.rooms import RoomSession

        self.start()
        if self.room_session is None or self.room_session.url != url:
            if self.room_session is not None:
                await self.room_session.close()
            self.room_session = await RoomSession(self, url, auto_pair=auto_pair).start()
        present: list[str] = await self.room_session.join(room)
        return present

    async def wait_connected(self, peer_id: str, timeout: float = 15.0) -> None:
        """Wait until the channel to ``peer_id`` is open and its binding verified."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        failures = self.network_store.failures
        before = failures.get(peer_id)
        while not self.network_store.is_connected(peer_id):
            if failures.get(peer_id) is not before:
                raise TransportClosed(f"connection to {peer_id} ended: {failures[peer_id]}")
            if loop.time() > end:
                raise TransportClosed(
                    f"no verified connection to {peer_id} within {timeout:g} s: "
                    + self.network_store.diagnose(peer_id)
                )
            await asyncio.sleep(0.02)

    # --- sending ------------------------------------------------------------

    def conversation_with(self, peer_id: str) -> str:
        if self.database.get_contact(peer_id) is None:
            raise UnknownPeer(f"{peer_id!r} is not a contact; pair with it first")
        conversation_id = dm_conversation_id(self.peer_id, peer_id)
        self.database.ensure_conversation(conversation_id, [self.peer_id, peer_id])
        return conversation_id

    def _resolve_conversation(self, conversation: str) -> tuple[str, list[str]]:
        found = self.database.get_conversation(conversation)
        if found is None and self.database.get_contact(conversation) is not None:
            found = self.database.get_conversation(self.conversation_with(conversation))
        if found is None:
            raise NotFound(
                f"no conversation or contact {conversation!r}; see conversations() or contacts"
            )
        recipients = [m for m in found.members if m != self.peer_id]
        if not recipients:
            raise UsageError(f"conversation {found.id!r} has no other member")
        return found.id, recipients

    async def send_message(
        self, conversation: str, content: str, *, compress: bool = True
    ) -> ChatMessage:
        """Encrypt, persist, and send now if the peer is online (else it waits in the outbox).

        ``conversation`` is a conversation id or a contact's peer id.  A large text that
        compresses well is deflated before encryption (see :mod:`volli_nb.core.body` for the
        length-leak trade-off); ``compress=False`` keeps it as is."""
        self.start()
        body = encode_body(content, compress=compress)
        if len(body) > MAX_TEXT_BYTES:
            raise UsageError(f"message is {len(body)} bytes; the limit is {MAX_TEXT_BYTES}")
        conversation_id, recipients = self._resolve_conversation(conversation)
        message_id = nacl.utils.random(16)
        now_ms = int(self.clock() * 1000)
        with self.database.transaction():
            counter = self.database.next_counter(conversation_id)
            self.database.store_sent(
                message_id, conversation_id, self.peer_id, counter, now_ms, body
            )
            rows = [
                self.message_queue.enqueue(
                    OutgoingMessage(message_id, conversation_id, recipient, body, counter)
                )
                for recipient in recipients
            ]
        self.log.add(
            "queue",
            f"queued {message_id.hex()[:8]} for {len(rows)} recipient(s)",
            kind="message.queued",
            message_id=message_id.hex(),
            conversation=conversation_id,
            recipients=recipients,
            bytes=len(body),
        )
        for row_id in rows:
            await self._attempt(self.message_queue.get(row_id))
        statuses = set(self.delivery_status(message_id).values())
        status = statuses.pop() if len(statuses) == 1 else "mixed"
        return ChatMessage(
            message_id, conversation_id, self.peer_id, "out", content, now_ms, status
        )

    async def _attempt(self, row: QueuedMessage) -> bool:
        """One delivery attempt: seal a fresh envelope and hand it to the session."""
        key = (row.recipient, row.message_id)
        if key in self._in_flight:
            return False
        if not self.network_store.is_connected(row.recipient):
            self._attempt_failed(row.id, "peer offline")
            return False
        try:
            self.network_store.trace.sealing(row.recipient, row.message_id, len(row.payload))
            data = self._seal(row)
            self._in_flight[key] = row.id
            await self.network_store.send_envelope(row.recipient, row.message_id, data)
        except VolliError as exc:
            self.network_store.trace.gave_up(row.recipient, row.message_id, str(exc))
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
            self.message_queue.mark_failed(row_id, reason)

    def _seal(self, row: QueuedMessage) -> bytes:
        """The envelope for an attempt; in a group, one seal serves every member for a while.

        An envelope is addressed to all members at once, so a group message is sealed
        once per SEAL_REUSE seconds, not once per member (which made fan-out quadratic).
        A retry after that reseals, so a late retry is still fresh for the receiver."""
        now = self.clock()
        cached = self._sealed.get(row.message_id)
        if cached is not None and now - cached[0] < SEAL_REUSE:
            return cached[1]
        conversation = self.database.get_conversation(row.conversation_id)
        members = conversation.members if conversation else [row.recipient]
        recipients = []
        for member in members:
            if member == self.peer_id:
                continue
            peer = self.contact(member)
            if peer is None:
                raise UnknownPeer(f"conversation member {member} is not a contact")
            recipients.append(peer)
        data = envelopes.seal(
            self.identity,
            recipients,
            conversation_id=row.conversation_id,
            plaintext=row.payload,
            counter=row.counter,
            timestamp_ms=int(now * 1000),
            message_id=row.message_id,
        )
        if len(recipients) > 1:
            self._sealed[row.message_id] = (now, data)
            while len(self._sealed) > SEAL_CACHE:
                del self._sealed[next(iter(self._sealed))]
        return data

    async def sync_messages(self) -> SyncReport:
        """Force a sync attempt now: every pending message to a connected peer goes out."""
        self.start()
        sent = waiting = stuck = 0
        for row in self.message_queue.get_pending():
            if row.status == Status.STUCK:
                stuck += 1
            elif (row.recipient, row.message_id) in self._in_flight:
                continue
            elif self.network_store.is_connected(row.recipient):
                sent += await self._attempt(row)
            else:
                waiting += 1
        return SyncReport(sent, len(self._in_flight), waiting, stuck)

    async def process_due(self) -> int:
        """Attempt every message whose retry time has come (the retry loop's body).

        Rows in flight are skipped before their payload is read; rows for offline peers
        count a failed attempt in one transaction."""
        attempted = 0
        offline = []
        for row_id, recipient, message_id in self.message_queue.due_keys(self.clock()):
            if (recipient, message_id) in self._in_flight:
                continue
            attempted += 1
            if not self.network_store.is_connected(recipient):
                offline.append(row_id)
                continue
            with contextlib.suppress(NotFound):
                await self._attempt(self.message_queue.get(row_id))
        if offline:
            with self.database.transaction():
                for row_id in offline:
                    self._attempt_failed(row_id, "peer offline")
        return attempted

    async def _retry_loop(self) -> None:
        while True:
            try:
                await self.process_due()
            except Exception:
                log.exception("retry loop iteration failed")
            await asyncio.sleep(self._retry_tick)

    # --- receiving and delivery -----------------------------------------------

    def on_message(self, handler: Callable[[ChatMessage], None]) -> Callable[[], None]:
        """Call ``handler`` once per new incoming message; returns the remover."""
        self._handlers.append(handler)
        return lambda: self._handlers.remove(handler) if handler in self._handlers else None

    def on_delivered(self, handler: Callable[[bytes, str], None]) -> Callable[[], None]:
        """Call ``handler(message_id, recipient)`` on each signed ACK; returns the remover."""
        self._delivery_handlers.append(handler)
        return lambda: (
            self._delivery_handlers.remove(handler) if handler in self._delivery_handlers else None
        )

    async def wait_delivered(self, message_id: bytes, timeout: float = 15.0) -> dict[str, str]:
        """Wait until every recipient acknowledged ``message_id``; returns the statuses."""
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

    @contextlib.contextmanager
    def _receive_batch(self) -> Iterator[None]:
        """One received frame (a bundle of messages): one commit; ACKs and handlers after it.

        Acknowledging only after the commit keeps the rule that an ACK means "stored"."""
        if self._after_commit is not None:  # nested: the outer batch does it all
            yield
            return
        self._after_commit = []
        try:
            with self.database.transaction():
                yield
            pending = self._after_commit
        except BaseException:
            self._known_conversations.clear()  # what the batch created was rolled back
            raise
        finally:
            self._after_commit = None
        for action in pending:
            action()

    def _later(self, action: Callable[[], None]) -> None:
        if self._after_commit is None:
            action()
        else:
            self._after_commit.append(action)

    def _on_incoming(self, incoming: IncomingEnvelope) -> None:
        net = self.network_store
        try:
            opened = envelopes.open_envelope(
                incoming.envelope,
                self.identity,
                contacts=self.contact,
                now_ms=int(self.clock() * 1000),
                seen=self.database.is_seen,
            )
            if (
                opened.sender.peer_id != incoming.peer_id
                or opened.message_id != incoming.message_id
            ):
                raise UnknownPeer("envelope sender or id does not match the channel it came on")
            check_body(opened.plaintext)
        except ReplayError:  # the ACK was lost: ack again
            self._later(lambda: net.accept(incoming.peer_id, incoming.message_id))
            return
        except VolliError as exc:
            net.reject(incoming.peer_id, incoming.message_id, exc)
            return
        members = sorted({*opened.recipients, opened.sender.peer_id})
        try:
            stored = self._store_received(opened, members)
        except VolliError as exc:  # e.g. a member set that differs from the conversation's
            net.reject(incoming.peer_id, incoming.message_id, exc)
            return
        self._later(lambda: net.accept(incoming.peer_id, incoming.message_id))
        if not stored:
            return
        self.log.add(
            "message",
            f"received {opened.message_id.hex()[:8]}",
            peer_id=incoming.peer_id,
            kind="message.received",
            message_id=opened.message_id.hex(),
            bytes=len(incoming.envelope),
            conversation=opened.conversation_id,
        )
        message = self._chat(self.database.get_message(opened.message_id))
        self._later(lambda: self._notify(message))

    def _notify(self, message: ChatMessage) -> None:
        for handler in list(self._handlers):
            try:
                handler(message)
            except Exception:
                log.exception("on_message handler failed")

    def _store_received(self, opened: envelopes.OpenedMessage, members: list[str]) -> bool:
        known = (opened.conversation_id, tuple(members))
        with self.database.transaction():
            if known not in self._known_conversations:  # a burst checks its conversation once
                self.database.ensure_conversation(opened.conversation_id, members)
            stored = self.database.store_received(
                opened.message_id,
                opened.conversation_id,
                opened.sender.peer_id,
                opened.counter,
                opened.timestamp_ms,
                opened.plaintext,
            )
        self._known_conversations.add(known)  # committed (or inside a batch, see below)
        return stored

    def _on_network_event(self, event: NetworkEvent) -> None:
        if isinstance(event, Delivered):
            newly = []
            with self.database.transaction():  # one commit for every id the ACK covers
                for message_id in event.message_ids:
                    self._in_flight.pop((event.peer_id, message_id), None)
                    if self.message_queue.acknowledge(message_id, event.peer_id):
                        newly.append(message_id)
            for message_id in newly:
                self.log.add(
                    "queue",
                    f"delivered {message_id.hex()[:8]}",
                    peer_id=event.peer_id,
                    kind="message.delivered",
                    message_id=message_id.hex(),
                )
            self._later(lambda: self._notify_delivered(newly, event.peer_id))
        elif isinstance(event, Undelivered):
            row_id = self._in_flight.pop((event.peer_id, event.message_id), None)
            if row_id is not None:
                with contextlib.suppress(VolliError):
                    self.message_queue.mark_failed(row_id, event.reason)
        elif isinstance(event, PeerOnline):
            self.database.touch_contact(event.peer_id, self.clock())
            asyncio.get_running_loop().create_task(self._flush(event.peer_id))
        elif isinstance(event, PeerOffline):
            self.log.add("queue", f"{event.peer_id} offline: messages wait in the outbox")

    def _notify_delivered(self, message_ids: list[bytes], peer_id: str) -> None:
        for message_id in message_ids:
            for handler in list(self._delivery_handlers):
                try:
                    handler(message_id, peer_id)
                except Exception:
                    log.exception("on_delivered handler failed")

    async def _flush(self, peer_id: str) -> None:
        """A peer came online: its pending messages go out at once, not at their retry time."""
        rows = [r for r in self.message_queue.for_recipient(peer_id) if r.status == Status.PENDING]
        contact = self.database.get_contact(peer_id)
        name = (contact.name if contact else None) or peer_id[:8]
        progress = FlushProgress.maybe(
            self.progress, peer_id, name, [r.message_id for r in rows], self.network_store.on_event
        )
        for row in rows:
            await self._attempt(row)
            if progress is not None:
                progress.sent()
        if rows:
            self.log.add("queue", f"flushed {len(rows)} pending message(s)", peer_id=peer_id)

    # --- what the UI reads --------------------------------------------------

    def delivery_status(self, message_id: bytes) -> dict[str, str]:
        return {
            row.recipient: str(row.status) for row in self.message_queue.for_message(message_id)
        }

    def _chat(self, stored: Any) -> ChatMessage:
        if stored.direction == "out":
            statuses = set(self.delivery_status(stored.message_id).values())
            status = statuses.pop() if len(statuses) == 1 else ("mixed" if statuses else "sent")
        else:
            status = "received"
        return ChatMessage(
            stored.message_id,
            stored.conversation_id,
            stored.sender,
            stored.direction,
            decode_body(stored.body),
            stored.timestamp_ms,
            status,
        )

    def history(self, conversation: str, *, limit: int | None = None) -> list[ChatMessage]:
        conversation_id, _ = self._resolve_conversation(conversation)
        return [self._chat(m) for m in self.database.history(conversation_id, limit=limit)]

    def conversations(self) -> list[Any]:
        return list(self.database.list_conversations())

    @property
    def contacts(self) -> list[Any]:
        return list(self.database.list_contacts())
