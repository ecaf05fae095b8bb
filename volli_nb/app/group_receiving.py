"""Receiving group traffic: records, fetches and messages, decided per frame before the commit.

The receiver hands each frame's opened messages here first (:meth:`GroupReceiving.split`);
those with a ``grp-`` conversation id are decided now and the rest go on as before.  The
decision is pure of side effects: what to store comes back as a :class:`GroupPart` whose
``write`` runs inside the receiver's one transaction and whose ``after`` runs once it
committed, so a group's chain in memory moves only with the file.

- **records**: the chain is applied to a copy of the held one (:meth:`GroupChain.apply`);
  any record refused refuses the whole message, with its typed error.  A group we did not
  hold is taken only if we are a member of its newest version.  A record of ours that
  lost a concurrent change is reported (``group.conflict``), to be applied again.
- **messages** under a record we hold: admitted if its sender and we are members of that
  record, every recipient too, and the sender is still a member of the current version
  (:class:`NotGroupMember` otherwise); stored as a chat line of the group.
- **messages under a record we do not hold**: held (stored, sealed, acknowledged; at
  most 256 messages and 32 MiB a sender, and not from a non-member under a version we
  are past), and the chain fetched from their sender; released in the sender's order,
  with the same checks, in the frame that brings the record (once per group, after all
  the frame's records of it: two records messages in one frame must not release a
  message twice).
- **fetches**: answered, to a member of the record asked for, with the chain up to it and
  on while it lists the asker: never past the asker's removal; the same answer to the
  same peer once in 30 s (:mod:`.group_fetches`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from volli_nb.app import group_log
from volli_nb.app.chat import RECEIVED, ChatMessage
from volli_nb.app.group_fetches import Recently, answer
from volli_nb.base.errors import (
    BrokenGroupChain,
    NotGroupMember,
    TooManyHeld,
    VolliError,
)
from volli_nb.core.body import check_body, decode_body
from volli_nb.core.crypto.envelope import OpenedMessage
from volli_nb.core.groups import wire
from volli_nb.core.groups.chain import Applied, GroupChain
from volli_nb.core.groups.record import MembershipRecord
from volli_nb.core.store.groups import HeldMessage
from volli_nb.core.store.history import ReceivedRow
from volli_nb.net.events import NetworkEvent, PeerOnline

if TYPE_CHECKING:
    from volli_nb.app.groups import GroupBook

Refusal = tuple[bytes, VolliError]
HOLD_MESSAGES = 256  # held at most per sender, all groups together (its retries bring more)
HOLD_BYTES = 32 * 2**20  # and their bodies at most


@dataclass
class GroupPart:
    """A frame's group traffic, decided: rows to store as chat messages, ids consumed
    otherwise (acknowledged as stored), and what to do in and after the transaction."""

    others: list[OpenedMessage] = field(default_factory=list)
    rows: list[ReceivedRow] = field(default_factory=list)
    messages: list[ChatMessage] = field(default_factory=list)
    absorbed: list[bytes] = field(default_factory=list)
    writes: list[Callable[[], None]] = field(default_factory=list)
    afters: list[Callable[[Callable[[ChatMessage], None]], None]] = field(default_factory=list)
    holding: dict[str, tuple[int, int]] = field(default_factory=dict)  # sender → held now
    grown: dict[str, list[bytes]] = field(default_factory=dict)  # group → records new here

    def write(self) -> None:
        """Inside the receiver's transaction, before its rows are inserted."""
        for step in self.writes:
            step()

    def after(self, emit: Callable[[ChatMessage], None]) -> None:
        """Committed: adopt chains, log, fetch, and show released messages (``emit``)."""
        for step in self.afters:
            step(emit)


class GroupReceiving:
    """The receiver's side of :class:`~.groups.GroupBook` (see the module docstring)."""

    def __init__(self, groups: GroupBook) -> None:
        self.groups = groups
        self.database = groups.database
        self._asked = Recently()  # peer → records fetched from it lately
        self._answered = Recently()  # peer → last records of the answers it got lately
        groups.network.on_event(self._online)

    def _online(self, event: NetworkEvent) -> None:
        """A peer's channel opened: ask it again for every record its held messages wait
        for.  A fetch is asked only after the commit that holds the message, so a process
        that dies in between (and acknowledges the resent message as one it holds) would
        otherwise never ask: the message would stay held, never shown."""
        if not isinstance(event, PeerOnline):
            return
        try:
            waiting = self.database.held_records(event.peer_id)
        except VolliError as exc:  # an edited file: said where the user looks, not raised
            self.groups.log.add("group", f"held messages not read: {exc}", peer_id=event.peer_id,
                                kind="group.held_unreadable")  # fmt: skip
            return
        for group_id, record_hash in waiting:
            self._ask(event.peer_id, group_id, record_hash)

    @property
    def me(self) -> str:
        return self.groups.me

    def split(
        self, peer_id: str, opened: tuple[OpenedMessage, ...], refused: list[Refusal]
    ) -> GroupPart:
        """Decide this frame's group messages; refusals go to ``refused``, the rest to
        ``GroupPart.others``."""
        part = GroupPart()
        work: dict[str, GroupChain] = {}  # chains as this frame leaves them
        mine = [m for m in opened if wire.is_group_conversation(m.conversation_id)]
        part.others = [m for m in opened if not wire.is_group_conversation(m.conversation_id)]
        records = [m for m in mine if m.conversation_id.endswith(".records")]
        rest = [m for m in mine if not m.conversation_id.endswith(".records")]
        for m in records:  # first: the frame's other messages may be sent under them
            self._decide(part, work, peer_id, m, refused)
        for group_id, hashes in part.grown.items():  # once a group, after all its records
            self._release(part, work[group_id], group_id, peer_id, hashes)
        for m in rest:
            self._decide(part, work, peer_id, m, refused)
        return part

    def _decide(
        self, part: GroupPart, work: dict[str, GroupChain], peer_id: str, m: OpenedMessage,
        refused: list[Refusal],
    ) -> None:  # fmt: skip
        try:
            address = wire.parse_address(m.conversation_id)
            if address.kind == wire.RECORDS:
                self._records(part, work, peer_id, m, address.group_id)
            elif address.kind == wire.FETCH:
                self._fetch_asked(part, work, peer_id, m, address.group_id)
            else:
                self._message(part, work, peer_id, m, address)
        except VolliError as exc:
            refused.append((m.message_id, exc))

    def _chain(self, work: dict[str, GroupChain], group_id: str) -> GroupChain | None:
        return work.get(group_id) or self.groups.chain(group_id)

    # --- records --------------------------------------------------------------------

    def _records(
        self, part: GroupPart, work: dict[str, GroupChain], peer_id: str, m: OpenedMessage,
        group_id: str,
    ) -> None:  # fmt: skip
        records = wire.decode_chain(m.plaintext, group_id)
        held = self._chain(work, group_id)
        chain = held.copy() if held is not None else GroupChain(records[0])
        new = [] if held is not None else [records[0]]
        applied: list[Applied] = []
        for record in records[len(new) :]:
            if chain.get(record.hash) is None:
                applied.append(chain.apply(record))  # a typed error refuses the message
                new.append(record)
        if held is None and self.me not in chain.tip.member_ids:
            raise NotGroupMember(f"records of {group_id}, a group whose members do not include us")
        work[group_id] = chain
        part.absorbed.append(m.message_id)
        if new:  # only records new to us can release a held message: nothing else reads them
            part.grown.setdefault(group_id, []).extend(record.hash for record in new)

        def write() -> None:
            self.database.mark_seen(m.message_id, peer_id)
            if new:
                self.database.save_group(chain.tip, new)
                self.database.ensure_conversation(group_id, [self.me], chain.tip.name)

        def after(_emit: Callable[[ChatMessage], None]) -> None:
            self.groups.adopt(chain)
            group_log.applied(self.groups, peer_id, held, new, applied)
            self._tell_losers(chain, applied)

        part.writes.append(write)
        part.afters.append(after)

    def _release(
        self, part: GroupPart, chain: GroupChain, group_id: str, peer_id: str,
        hashes: list[bytes],
    ) -> None:  # fmt: skip
        """Held messages under the records (``hashes``) this frame brought, as ``chain``
        leaves them: admitted, in the senders' order (by time, then counter), or dropped
        with the reason; once a group and frame, so no held message is released twice.
        Only the new records' messages are read: a records message that brings nothing
        new (anyone may resend one) must not make us open every held message again."""
        released, dropped = self._releasable(chain, group_id, hashes)
        part.rows += [row for row, _ in released]

        def write() -> None:
            self.database.drop_held([row.message_id for row, _ in released], unsee=True)
            self.database.drop_held([d.message_id for d, _ in dropped], unsee=False)

        def after(emit: Callable[[ChatMessage], None]) -> None:
            for held_message, error in dropped:
                group_log.dropped(self.groups, held_message, error)
            if released:
                self.groups.log.add(
                    "group",
                    f"released {len(released)} held message(s) of {group_id}: their record came",
                    peer_id=peer_id,
                    kind="group.released",
                    message_ids=[row.message_id.hex() for row, _ in released],
                )
            for _, message in released:
                emit(message)

        part.writes.append(write)
        part.afters.append(after)

    def _releasable(
        self, chain: GroupChain, group_id: str, hashes: list[bytes]
    ) -> tuple[list[tuple[ReceivedRow, ChatMessage]], list[tuple[HeldMessage, VolliError]]]:
        released, dropped = [], []
        for held in self.database.held_messages(group_id, under=hashes):
            record = chain.get(held.record_hash)
            if record is None:
                continue
            try:
                self._admit(chain, record, held.version, held.sender, held.recipients)
                text = decode_body(held.body, legacy=False)  # it came from the wire
            except VolliError as exc:
                dropped.append((held, exc))
                continue
            row = ReceivedRow(held.message_id, group_id, held.sender, held.counter,
                              held.timestamp_ms, held.body)  # fmt: skip
            message = ChatMessage(held.message_id, group_id, held.sender, "in", text,
                                  held.timestamp_ms, RECEIVED)  # fmt: skip
            released.append((row, message))
        return released, dropped

    # --- messages ---------------------------------------------------------------------

    def _message(
        self, part: GroupPart, work: dict[str, GroupChain], peer_id: str, m: OpenedMessage,
        address: wire.GroupAddress,
    ) -> None:  # fmt: skip
        group_id = address.group_id
        chain = self._chain(work, group_id)
        record = chain.get(address.record_hash) if chain is not None else None
        if record is None:
            check_body(m.plaintext, legacy=False)  # hold nothing the release would refuse
            self._may_hold(part, chain, m, address)
            self._hold(part, peer_id, m, address)
            return
        assert chain is not None
        self._admit(chain, record, address.version, m.sender, m.recipients)
        text = decode_body(m.plaintext, legacy=False)  # the wire: version 2 only
        part.rows.append(
            ReceivedRow(m.message_id, group_id, m.sender, m.counter, m.timestamp_ms, m.plaintext)
        )
        part.messages.append(
            ChatMessage(m.message_id, group_id, peer_id, "in", text, m.timestamp_ms, RECEIVED)
        )

    def _admit(
        self, chain: GroupChain, record: MembershipRecord, version: int, sender: str,
        recipients: tuple[str, ...],
    ) -> None:  # fmt: skip
        """:class:`NotGroupMember` unless this message may be shown (module docstring);
        :class:`BrokenGroupChain` if its address names ``record`` with another version."""
        where = f"{record.group_id} {record.short()}"
        if record.version != version:
            raise BrokenGroupChain(f"a message names {where} as version {version}")
        members = set(record.member_ids)
        if sender not in members:
            raise NotGroupMember(f"{sender} sent under {where}, which does not list it")
        if self.me not in members:
            raise NotGroupMember(f"{sender} sent to us under {where}, which does not list us")
        if not set(recipients) <= members:
            raise NotGroupMember(f"{sender} sealed a message of {where} for non-members")
        if sender not in chain.tip.member_ids:
            raise NotGroupMember(
                f"{sender} is no longer a member ({chain.tip.short()} removed it); its message "
                f"under {where} is refused"
            )

    def _may_hold(
        self, part: GroupPart, chain: GroupChain | None, m: OpenedMessage,
        address: wire.GroupAddress,
    ) -> None:  # fmt: skip
        """A stranger's (or anyone's) messages must not fill our store: :class:`NotGroupMember`
        for a version we are past from a non-member, :class:`TooManyHeld` past the limits."""
        past = chain is not None and address.version <= chain.version
        if past and chain is not None and m.sender not in chain.tip.member_ids:
            raise NotGroupMember(
                f"{m.sender} sent under a v{address.version} record of {address.group_id} "
                f"we do not hold, and is not a member of v{chain.version}: not held"
            )
        count, size = part.holding.get(m.sender) or self.database.held_from(m.sender)
        count, size = count + 1, size + len(m.plaintext)
        if count > HOLD_MESSAGES or size > HOLD_BYTES:
            raise TooManyHeld(
                f"{m.sender} has {count - 1} message(s) held for group records not held yet "
                f"(at most {HOLD_MESSAGES}, {HOLD_BYTES // 2**20} MiB): refused until released"
            )
        part.holding[m.sender] = (count, size)

    def _hold(
        self, part: GroupPart, peer_id: str, m: OpenedMessage, address: wire.GroupAddress
    ) -> None:
        held = HeldMessage(m.message_id, address.group_id, address.record_hash, address.version,
                           m.sender, m.counter, m.timestamp_ms, m.recipients,
                           m.plaintext)  # fmt: skip
        part.absorbed.append(m.message_id)
        part.writes.append(lambda: self.database.hold_group_message(held))

        def after(_emit: Callable[[ChatMessage], None]) -> None:
            self.groups.log.add(
                "group",
                f"held {m.message_id.hex()[:8]}: sent under {address.group_id} "
                f"v{address.version} {address.record_hash.hex()[:8]}, a record not held yet",
                peer_id=peer_id,
                kind="group.held",
                message_id=m.message_id.hex(),
                group=address.group_id,
            )
            self._ask(peer_id, address.group_id, address.record_hash)

        part.afters.append(after)

    def _ask(self, peer_id: str, group_id: str, record_hash: bytes) -> None:
        if not self._asked.first(peer_id, record_hash, self.groups.now()):
            return
        self.groups.later(self.groups.fetch(group_id, peer_id, record_hash))

    # --- fetches ----------------------------------------------------------------------

    def _fetch_asked(
        self, part: GroupPart, work: dict[str, GroupChain], peer_id: str, m: OpenedMessage,
        group_id: str,
    ) -> None:  # fmt: skip
        wanted = wire.decode_fetch(m.plaintext)
        chain = self._chain(work, group_id)
        record = chain.get(wanted) if chain is not None else None
        part.absorbed.append(m.message_id)
        part.writes.append(lambda: self.database.mark_seen(m.message_id, peer_id))

        def after(_emit: Callable[[ChatMessage], None]) -> None:
            if chain is None or record is None or peer_id not in record.member_ids:
                self.groups.log.add(
                    "group",
                    f"fetch of {group_id} {wanted.hex()[:8]} not answered: not held, or "
                    "not for a member of it",
                    peer_id=peer_id,
                    kind="group.fetch_refused",
                )
                return
            path = answer(chain, record, peer_id)
            if self._answered.first(peer_id, path[-1].hash, self.groups.now()):
                self.groups.later(self.groups.push(group_id, [peer_id], path))

        part.afters.append(after)

    def _tell_losers(self, chain: GroupChain, applied: list[Applied]) -> None:
        """A change of ours lost: whoever only it listed (a member it added) has heard of
        it from us alone, so we send them the winning chain (they end where all do)."""
        for result in applied:
            for loser in result.lost:
                only = set(loser.member_ids) - set(chain.tip.member_ids) - {self.me}
                if loser.signer == self.me and only:
                    self.groups.later(self.groups.push(chain.group_id, sorted(only), chain.path()))


__all__ = ["GroupPart", "GroupReceiving"]
