"""Receiving: verify and decrypt, store, notify once, and only then acknowledge.

Each incoming envelope is opened (:func:`~volli_nb.core.crypto.envelope.open_envelope`),
stored with its id in the replay seen-set in one transaction, handed to the
``on_message`` handlers once, and acknowledged.  The ACK goes out only after the row is
committed, so a crash between the two means a retransmission, which the persisted
seen-set turns into a second ACK and no second message.  A received frame may bundle
many messages: :meth:`Receiver.batch` makes the whole frame one commit, with its ACKs
and handler calls queued until that commit succeeded.  What cannot be stored (a full
disk) is refused in a signed frame the sender acts on, and reported once per change of
state (:class:`~volli_nb.app.storage_health.StorageHealth`), not once per message.

The seen-set is read once per message (:class:`SeenOnce`): the session asks it first
(to ACK a retransmission without handing it up), and the receiver reuses that answer
for the replay check and the store, which writes without reading anything back.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

from volli_nb.app.chat import RECEIVED, ChatMessage, received_members
from volli_nb.app.storage_health import StorageHealth
from volli_nb.base.clock import Clock
from volli_nb.base.errors import DuplicateMessageId, ReplayError, StorageError, VolliError
from volli_nb.base.listeners import Listeners
from volli_nb.core.body import decode_body
from volli_nb.core.crypto import envelope as envelopes
from volli_nb.core.crypto.identity import Identity, PublicIdentity
from volli_nb.core.eventlog import EventLog
from volli_nb.core.store.database import Database
from volli_nb.core.store.history import ReceivedRow
from volli_nb.net.events import IncomingEnvelope
from volli_nb.net.network_store import NetworkStore

logger = logging.getLogger(__name__)


class SeenOnce:
    """Who used a message id (the seen-set), asked once per received message.

    The session's question (:meth:`by`) is remembered until the receiver takes it
    (:meth:`take`) for the same id; nothing awaits in between, so the answer is still
    true.  An answer never taken (the session dropped the message) is forgotten once
    ``limit`` accumulate, and a take without a question asks the database."""

    def __init__(self, database: Database, limit: int = 4096) -> None:
        self.database, self.limit = database, limit
        self._asked: dict[bytes, str | None] = {}

    def by(self, message_id: bytes) -> str | None:
        if len(self._asked) >= self.limit:
            self._asked.clear()
        found = self._asked[message_id] = self.database.seen_by(message_id)
        return found

    def take(self, message_id: bytes) -> str | None:
        if message_id in self._asked:
            return self._asked.pop(message_id)
        return self.database.seen_by(message_id)


class Receiver:
    """Turns incoming envelopes into stored, acknowledged chat messages."""

    def __init__(
        self,
        database: Database,
        identity: Identity,
        contacts: Callable[[str], PublicIdentity | None],
        network: NetworkStore,
        log: EventLog,
        *,
        clock: Clock,
        storage: StorageHealth | None = None,
        seen: SeenOnce | None = None,
    ) -> None:
        self.database, self.identity, self.network, self.log = database, identity, network, log
        self.seen = seen if seen is not None else SeenOnce(database)
        self.storage = storage if storage is not None else StorageHealth(database, log)
        self._storage_error: StorageError | None = None  # in this batch
        self._stored = False  # this batch wrote a message
        self._contacts = contacts
        self._clock = clock
        self._handlers = Listeners[[ChatMessage]]("on_message handler", logger)
        self._after_commit: list[Callable[[], None]] | None = None
        self._batch_contacts: dict[str, PublicIdentity | None] = {}  # read once per bundle
        self._rows: list[ReceivedRow] = []  # a bundle's messages, written at its end
        self._known_conversations: set[tuple[str, tuple[str, ...]]] = set()
        network.on_message(self.incoming)
        network.batch = self.batch

    def on_message(self, handler: Callable[[ChatMessage], None]) -> Callable[[], None]:
        return self._handlers.add(handler)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """One received frame (a bundle of messages): one commit; ACKs and handlers after it.

        Acknowledging only after the commit keeps the rule that an ACK means "stored"."""
        if self._after_commit is not None:  # nested: the outer batch does it all
            yield
            return
        self._after_commit, self._storage_error, self._stored = [], None, False
        self._batch_contacts.clear()
        self._rows = []
        try:
            with self.database.transaction():
                yield
                if self._rows:  # two batched statements; failing, the frame is refused
                    self.database.insert_received_many(self._rows)
            pending = self._after_commit
        except BaseException as exc:
            self._known_conversations.clear()  # what the batch created was rolled back
            if not isinstance(exc, StorageError):
                raise
            first = self._storage_error or exc  # "disk full" says more than "no transaction"
            self.storage.failed(first)
            if first is exc:
                raise
            raise first from exc
        finally:
            self._after_commit = None
            self._batch_contacts.clear()
        self._storage_state(self._storage_error, self._stored)
        for action in pending:
            action()

    def _storage_state(self, error: StorageError | None, stored: bool) -> None:
        """After a commit (outside the transaction: a full disk gets a WAL checkpoint)."""
        if error is not None:
            self.storage.failed(error)
        elif stored:
            self.storage.succeeded()

    def later(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the current batch committed (at once outside a batch)."""
        if self._after_commit is None:
            action()
        else:
            self._after_commit.append(action)

    def incoming(self, incoming: IncomingEnvelope) -> None:
        """Open, check, store, then ACK; anything refused is neither stored nor ACKed.

        Checked before anything is stored: the envelope came from its sender's own channel
        under its own id (before the replay check, so only a sender's own retransmission
        earns a second ACK), its body decodes as the display will decode it, and its
        conversation id is one this sender may use (:func:`received_members`)."""
        net, peer_id, message_id = self.network, incoming.peer_id, incoming.message_id
        used_by = self.seen.take(message_id)  # the one read of the seen-set
        try:
            opened = self._open(incoming, used_by)
            text = decode_body(opened.plaintext)  # as the display will decode it
            members = self._members(opened)
        except ReplayError as exc:
            if used_by != peer_id:
                net.reject(peer_id, message_id, DuplicateMessageId(f"{exc}, from someone else"))
                return
            self.later(lambda: net.accept(peer_id, message_id))  # the ACK was lost: ack again
            return
        except VolliError as exc:
            net.reject(peer_id, message_id, exc)
            return
        try:
            stored = self._store(opened, members)
        except StorageError as exc:  # refused in a signed frame; reported once, as a state
            net.reject(peer_id, message_id, exc, quiet=True)
            if self._after_commit is None:
                self._storage_state(exc, False)
            else:
                self._storage_error = exc
            return
        except VolliError as exc:  # e.g. a member set that differs from the conversation's
            net.reject(peer_id, message_id, exc)
            return
        self._stored = self._stored or stored
        if self._after_commit is None and stored:
            self.storage.succeeded()
        self.later(lambda: net.accept(peer_id, message_id))
        if not stored:
            return
        self.log.add(
            "message",
            f"received {message_id.hex()[:8]}",
            peer_id=peer_id,
            kind="message.received",
            message_id=message_id.hex(),
            bytes=len(incoming.envelope),
            conversation=opened.conversation_id,
        )
        message = ChatMessage(
            message_id, opened.conversation_id, peer_id, "in", text, opened.timestamp_ms, RECEIVED
        )
        self.later(lambda: self._handlers.emit(message))

    def _open(self, incoming: IncomingEnvelope, used_by: str | None) -> envelopes.OpenedMessage:
        """Verify and decrypt, answering the replay check with ``used_by`` (who used the
        id, read once); another id inside the envelope is looked up, and refused."""

        def seen(mid: bytes) -> bool:
            known = used_by if mid == incoming.message_id else self.database.seen_by(mid)
            return known is not None

        return envelopes.open_envelope(
            incoming.envelope,
            self.identity,
            contacts=self._contact,
            now_ms=int(self._clock() * 1000),
            seen=seen,
            channel=(incoming.peer_id, incoming.message_id),
        )

    def _contact(self, peer_id: str) -> PublicIdentity | None:
        """A sender's pinned identity, read once per bundle (nothing awaits inside one)."""
        if self._after_commit is None:
            return self._contacts(peer_id)
        if peer_id not in self._batch_contacts:
            self._batch_contacts[peer_id] = self._contacts(peer_id)
        return self._batch_contacts[peer_id]

    def _members(self, opened: envelopes.OpenedMessage) -> list[str]:
        members = sorted({*opened.recipients, opened.sender.peer_id})
        if (opened.conversation_id, tuple(members)) in self._known_conversations:
            return members  # a burst checks its conversation once
        found = self.database.get_conversation(opened.conversation_id)
        return received_members(
            opened.conversation_id,
            opened.sender.peer_id,
            self.identity.peer_id,
            opened.recipients,
            found.members if found is not None else None,
        )

    def _store(self, opened: envelopes.OpenedMessage, members: list[str]) -> bool:
        """Store what was opened; its id was not seen (``open_envelope`` checked), so the
        row and its seen entry are written without reading anything first: inside a
        bundle, with the bundle's other messages just before its commit."""
        known = (opened.conversation_id, tuple(members))
        row = ReceivedRow(
            opened.message_id,
            opened.conversation_id,
            opened.sender.peer_id,
            opened.counter,
            opened.timestamp_ms,
            opened.plaintext,
        )
        if self._after_commit is not None:  # the bundle's transaction covers it all
            if known not in self._known_conversations:  # a burst checks its conversation once
                self.database.ensure_conversation(opened.conversation_id, members)
            self._rows.append(row)
        else:
            with self.database.transaction():
                if known not in self._known_conversations:
                    self.database.ensure_conversation(opened.conversation_id, members)
                self.database.insert_received_many([row])
        self._known_conversations.add(known)  # committed (or inside a batch, see above)
        return True


__all__ = ["Receiver", "SeenOnce"]
