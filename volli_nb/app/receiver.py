"""Receiving: one frame up, one verdict down; stored before acknowledged.

The network hands over each received frame once (:class:`FrameReceived`: a signed
bundle of envelopes, its ids parsed) and takes one :class:`Verdict` back.  Per frame:

1. the ids' owners are read from the seen-set in one query;
2. the channel's ratchet opens the bundle (:meth:`ChannelKeys.open`: the signature once,
   then each envelope in order; nothing is adopted yet);
3. what opened is checked as the display will need it (the body decodes, the
   conversation is one this sender may use), then stored with its seen entries in one
   transaction; a frame that stores nothing opens no transaction;
4. after the commit the ratchet adopts the new state (:meth:`ChannelKeys.commit`), and
   the verdict acknowledges what was stored plus confirmed duplicates (ids this sender
   stored before: the first ACK was lost); everything else is refused, with a signed
   REFUSE where the sender can act on the reason.

An ACK therefore always means "stored": a crash before the commit leaves nothing
acknowledged and the state unadopted; the sender seals the messages again.  A message
id held from another sender is refused (:class:`DuplicateMessageId`), never
acknowledged.  A missing message key for an id never stored starts a fresh handshake
on the channel (the states may have gone out of step); the sender seals it again.
What cannot be stored (a full disk) is refused in a signed frame the sender acts on,
and reported once per change of state (:class:`~volli_nb.app.storage_health.StorageHealth`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from volli_nb.app.chat import RECEIVED, ChatMessage, received_members
from volli_nb.app.group_receiving import GroupPart, GroupReceiving
from volli_nb.app.peer_sessions import PeerSessions
from volli_nb.app.storage_health import StorageHealth
from volli_nb.base import faults
from volli_nb.base.clock import Clock
from volli_nb.base.errors import (
    DuplicateMessageId,
    MessageKeyUnavailable,
    PeerError,
    ReplayError,
    StorageError,
    TooManySkipped,
    VolliError,
)
from volli_nb.base.listeners import Listeners
from volli_nb.core.body import decode_body
from volli_nb.core.crypto.envelope import OpenedMessage
from volli_nb.core.eventlog import EventLog
from volli_nb.core.protocol.events import FrameReceived, Verdict
from volli_nb.core.store.database import Database
from volli_nb.core.store.history import ReceivedRow
from volli_nb.net.network_store import NetworkStore

logger = logging.getLogger(__name__)

Refusal = tuple[bytes, VolliError]


class Receiver:
    """Turns received frames into stored, acknowledged chat messages."""

    def __init__(
        self,
        database: Database,
        sessions: PeerSessions,
        network: NetworkStore,
        log: EventLog,
        *,
        clock: Clock,
        storage: StorageHealth | None = None,
    ) -> None:
        self.database, self.sessions, self.network, self.log = database, sessions, network, log
        self.storage = storage if storage is not None else StorageHealth(database, log)
        self._clock = clock
        self._handlers = Listeners[[ChatMessage]]("on_message handler", logger)
        self._members: dict[str, tuple[str, ...]] = {}  # conversation id → members, stored
        self.groups: GroupReceiving | None = None  # group traffic, set by the app
        sessions.on_frame = self.frame

    def on_message(self, handler: Callable[[ChatMessage], None]) -> Callable[[], None]:
        return self._handlers.add(handler)

    def frame(self, peer_id: str, received: FrameReceived) -> Verdict:
        """One frame's verdict (see the module docstring); never raises."""
        keys = self.sessions.get(peer_id, received.session_id)
        if keys is None:  # the channel's session ended meanwhile: the sender seals again
            return Verdict()
        try:
            used_by = self.database.seen_among(received.message_ids)
        except StorageError as exc:  # a tampered seen-set row: no id is taken for a duplicate
            self.storage.failed(exc)
            return Verdict((), tuple((mid, exc) for mid in received.message_ids))
        try:
            opening = keys.open(
                received.bundle, now_ms=self._now_ms(), seen=lambda mid: mid in used_by
            )
        except PeerError as exc:  # the whole frame: a bad signature, a stranger's envelope
            self._log_refused(peer_id, received.message_ids, exc)
            return Verdict()
        refused: list[Refusal] = []
        before: list[bytes] = []  # stored by an earlier frame: acknowledged again
        again: list[bytes] = []  # an id twice in this frame: acknowledged if the first is stored
        for item in opening.result.refused:
            error, owner = item.error, used_by.get(item.message_id)
            if isinstance(error, ReplayError) and owner in (peer_id, None):
                (before if owner else again).append(item.message_id)
                continue
            if isinstance(error, ReplayError):
                error = DuplicateMessageId(f"{error}, from someone else")
            refused.append((item.message_id, error))
        group = self._group_part(peer_id, opening.result.messages, refused)
        rows, messages, created = self._checked(peer_id, tuple(group.others), refused)
        rows, messages = [*rows, *group.rows], [*messages, *group.messages]  # group traffic
        faults.reach("opened")  # a crash test may die here: opened, nothing stored
        stored = {row.message_id for row in rows} | set(group.absorbed)
        if stored:
            try:
                self._store(rows, created, group)
            except StorageError as exc:  # refused in a signed frame; reported once, as a state
                self.storage.failed(exc)
                refused += [(mid, exc) for mid in [*stored, *(d for d in again if d in stored)]]
                keys.commit(opening)  # their keys are spent: the sender seals them anew, and
                return Verdict(tuple(before), tuple(refused))  # our chain must keep pace
            self.storage.succeeded()
        keys.commit(opening)
        faults.reach("stored")  # a crash test may die here: stored, not yet acknowledged
        self._after(peer_id, received, messages, refused)
        group.after(self._handlers.emit)
        acked = [*before, *stored, *(d for d in again if d in stored)]
        return Verdict(tuple(acked), tuple(refused))

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _checked(
        self, peer_id: str, opened: tuple[OpenedMessage, ...], refused: list[Refusal]
    ) -> tuple[list[ReceivedRow], list[ChatMessage], dict[str, tuple[str, ...]]]:
        """What may be stored: the body decodes as the display will decode it, and the
        conversation is one this sender may use (:func:`received_members`); also the
        conversations the rows create."""
        rows: list[ReceivedRow] = []
        messages: list[ChatMessage] = []
        created: dict[str, tuple[str, ...]] = {}
        allowed: dict[tuple[object, ...], tuple[str, ...]] = {}  # a bundle is one burst:
        me = self.sessions.identity.peer_id  # its messages share a few checks
        for m in opened:
            try:
                text = decode_body(m.plaintext, legacy=False)  # the wire: version 2 only
                existing = created.get(m.conversation_id) or self._conversation(m.conversation_id)
                key = (m.conversation_id, m.sender, tuple(m.recipients), existing)
                members = allowed.get(key)
                if members is None:
                    members = allowed[key] = tuple(
                        received_members(m.conversation_id, m.sender, me, m.recipients, existing)
                    )
            except VolliError as exc:
                refused.append((m.message_id, exc))
                continue
            if existing is None:
                created[m.conversation_id] = members
            rows.append(
                ReceivedRow(
                    m.message_id, m.conversation_id, m.sender, m.counter, m.timestamp_ms,
                    m.plaintext,
                )
            )  # fmt: skip
            messages.append(
                ChatMessage(
                    m.message_id, m.conversation_id, peer_id, "in", text, m.timestamp_ms,
                    RECEIVED,
                )
            )  # fmt: skip
        return rows, messages, created

    def _conversation(self, conversation_id: str) -> tuple[str, ...] | None:
        """A stored conversation's members, read once and then remembered (membership
        does not change yet)."""
        members = self._members.get(conversation_id)
        if members is None:
            found = self.database.get_conversation(conversation_id)
            if found is None:
                return None
            members = self._members[conversation_id] = tuple(found.members)
        return members

    def _group_part(
        self, peer_id: str, opened: tuple[OpenedMessage, ...], refused: list[Refusal]
    ) -> GroupPart:
        """Group traffic is decided apart (:mod:`.group_receiving`); the rest goes on here."""
        if self.groups is None:
            return GroupPart(others=list(opened))
        return self.groups.split(peer_id, opened, refused)

    def _store(
        self, rows: list[ReceivedRow], created: dict[str, tuple[str, ...]], group: GroupPart
    ) -> None:
        """Every row and its seen entry, and the conversations they create: one commit."""
        with self.database.transaction():
            group.write()  # records, held messages, seen entries (before the rows)
            for conversation_id, members in created.items():
                self.database.ensure_conversation(conversation_id, members)
            self.database.insert_received_many(rows)
        self._members.update(created)  # committed

    def _after(
        self,
        peer_id: str,
        received: FrameReceived,
        messages: list[ChatMessage],
        refused: list[Refusal],
    ) -> None:
        """Committed: log, tell the handlers, and re-key if the states went out of step."""
        sizes = {e.envelope.message_id: len(e.raw) for e in received.bundle.envelopes}
        for message in messages:
            self.log.add(
                "message",
                f"received {message.short_id}",
                peer_id=peer_id,
                kind="message.received",
                message_id=message.message_id.hex(),
                bytes=sizes.get(message.message_id, 0),
                conversation=message.conversation_id,
            )
        if refused:
            for message_id, error in refused:
                self._log_refused(peer_id, (message_id,), error)
            if any(isinstance(e, MessageKeyUnavailable | TooManySkipped) for _, e in refused):
                self.log.add(  # (a chain too far ahead: refusals the sender sealed anew)
                    "dtls",
                    "a message key was missing, or too far ahead, for a message never stored: "
                    "re-keying",
                    peer_id=peer_id,
                    kind="session.rekey",
                )
                self.network.rekey(peer_id)
        for message in messages:
            self._handlers.emit(message)

    def _log_refused(self, peer_id: str, ids: tuple[bytes, ...], error: VolliError) -> None:
        if isinstance(error, StorageError):
            return  # reported once per change of state, by StorageHealth
        self.log.add(
            "error",
            f"rejected message: {type(error).__name__}: {error}",
            peer_id=peer_id,
            message_id=ids[0].hex() if len(ids) == 1 else None,
            count=len(ids),
        )


__all__ = ["Receiver"]
