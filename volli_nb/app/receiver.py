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
from volli_nb.net.events import IncomingEnvelope
from volli_nb.net.network_store import NetworkStore

logger = logging.getLogger(__name__)


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
    ) -> None:
        self.database, self.identity, self.network, self.log = database, identity, network, log
        self.storage = storage if storage is not None else StorageHealth(database, log)
        self._storage_error: StorageError | None = None  # in this batch
        self._stored = False  # this batch wrote a message
        self._contacts = contacts
        self._clock = clock
        self._handlers = Listeners[[ChatMessage]]("on_message handler", logger)
        self._after_commit: list[Callable[[], None]] | None = None
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
        try:
            with self.database.transaction():
                yield
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
        try:
            opened = envelopes.open_envelope(
                incoming.envelope,
                self.identity,
                contacts=self._contacts,
                now_ms=int(self._clock() * 1000),
                seen=self.database.is_seen,
                channel=(peer_id, message_id),
            )
            text = decode_body(opened.plaintext)  # as the display will decode it
            members = self._members(opened)
        except ReplayError as exc:
            if self.database.seen_by(message_id) != peer_id:
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
        self._known_conversations.add(known)  # committed (or inside a batch, see above)
        return stored


__all__ = ["Receiver"]
