"""GroupBook: create and change a group's membership, and send to it, over pairwise sessions.

A group is pairwise fan-out (docs/groups.md).  Its membership is a chain of signed
records (:mod:`volli_nb.core.groups`): creating or changing it signs the next record,
stores it, and sends the whole chain to every member of the new version and of the old
one (so a removed member learns it), as a *records* control message through the outbox.
Receiving is :mod:`.group_receiving`.

**Sending** writes the message once (history), and one outbox row per member of the
current version but us, each row carrying the message's address
``grp-<id>.v<n>.<record hash>``: every attempt seals under that address, so the message
stays bound to the version it was sent under however late it leaves.  Sealing follows
the outbox's rules: only the members attempted now (connected, with a live session) get
a key wrap, in one envelope with one body ciphertext (:meth:`Sender.attempt_rows`);
offline members' rows wait on the 1/5/15/60 s schedule; delivery is per member.  A member
removed by the current version has no row for any later message, so no key for it.

**Lazy mesh.**  Members connect when a message needs them: a send (or records to
deliver) asks the shared signaling room to pair with each member not connected now
(:meth:`RoomSession.request_pair`: the smaller peer id offers, the other asks it to), and
a member who comes back into the room while rows wait for it is asked again.  Without a
shared room, pair by codes; rows wait in the outbox meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from typing import Any

from volli_nb.app.chat import ChatMessage, overall_status
from volli_nb.app.contacts import ContactBook
from volli_nb.app.group_info import GroupInfo, describe_change, group_info
from volli_nb.app.rooms import PresenceChange, RoomSession
from volli_nb.app.sender import Sender
from volli_nb.base.clock import Clock
from volli_nb.base.errors import NotFound, UnknownPeer, UsageError
from volli_nb.core.body import check_text, encode_body
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.crypto.primitives import Random, random_bytes
from volli_nb.core.eventlog import EventLog
from volli_nb.core.groups import wire
from volli_nb.core.groups.chain import GroupChain
from volli_nb.core.groups.record import GroupMember, MembershipRecord, genesis, is_group_id
from volli_nb.core.message_id import new_message_id
from volli_nb.core.store.database import Database
from volli_nb.core.store.message_queue import OutgoingMessage, QueuedMessage
from volli_nb.net.network_store import NetworkStore

logger = logging.getLogger(__name__)


class GroupBook:
    """One profile's groups: their chains, the API to change them, and sending to them."""

    def __init__(
        self,
        database: Database,
        identity: Identity,
        sender: Sender,
        network: NetworkStore,
        contacts: ContactBook,
        log: EventLog,
        *,
        clock: Clock,
    ) -> None:
        self.database, self.identity, self.sender = database, identity, sender
        self.network, self.contacts, self.log = network, contacts, log
        self._clock = clock
        self._chains: dict[str, GroupChain] = {}
        self._room: RoomSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.random: Random = random_bytes  # a new group's origin (tests fix it)

    @property
    def me(self) -> str:
        return self.identity.peer_id

    def now(self) -> float:
        return self._clock()

    # --- reading ------------------------------------------------------------------

    def chain(self, group_id: str) -> GroupChain | None:
        """The group's chain as held (loaded once from the profile), or None."""
        found = self._chains.get(group_id)
        if found is None and is_group_id(group_id):
            found = self.database.load_group(group_id)
            if found is not None:
                self._chains[group_id] = found
        return found

    def adopt(self, chain: GroupChain) -> None:
        """A chain the receiver stored (committed): the one held from now on."""
        self._chains[chain.group_id] = chain

    def _held(self, group_id: str) -> GroupChain:
        chain = self.chain(group_id)
        if chain is None:
            raise NotFound(f"no group {group_id!r}; the store's .groups() lists them")
        return chain

    def group(self, group_id: str) -> GroupInfo:
        """A group's current version: members, admins, version and record hash."""
        return group_info(self._held(group_id), self.me)

    def groups(self) -> list[GroupInfo]:
        return [self.group(g) for g in self.database.group_ids()]

    def name(self, peer_id: str) -> str:
        return "me" if peer_id == self.me else self.contacts.display_name(peer_id)

    # --- changing membership -----------------------------------------------------------

    async def create_group(self, name: str, members: Iterable[str]) -> GroupInfo:
        """A new group of us (its admin) and ``members`` (contacts' peer ids)."""
        first = genesis(self.identity, name, [self._member(p) for p in members], random=self.random)
        chain = GroupChain(first)
        await self._commit(chain, None, first, also=())
        return group_info(chain, self.me)

    async def add_member(self, group_id: str, peer_id: str, *, admin: bool = False) -> GroupInfo:
        """Add a contact to the group (we must be an admin); ``admin`` makes it one too."""
        tip = self._held(group_id).tip
        if peer_id in tip.member_ids and (not admin or peer_id in tip.admins):
            raise UsageError(f"{self.name(peer_id)} is already a member of {tip.name!r}")
        if peer_id not in tip.member_ids and tip.version >= wire.MAX_CHAIN:
            raise UsageError(
                f"{tip.name!r} has {tip.version} versions: a new member takes the chain from "
                f"version 1 in one records message (at most {wire.MAX_CHAIN}); create a new "
                "group for them"
            )
        members = {m.peer_id: m for m in tip.members}
        members[peer_id] = members.get(peer_id) or self._member(peer_id)
        admins = {*tip.admins, peer_id} if admin else set(tip.admins)
        return await self._change(group_id, members.values(), admins)

    async def set_admin(self, group_id: str, peer_id: str, admin: bool = True) -> GroupInfo:
        """Make a member an admin (or no longer one)."""
        tip = self._held(group_id).tip
        if peer_id not in tip.member_ids:
            raise UsageError(f"{self.name(peer_id)} is not a member of {tip.name!r}")
        admins = {*tip.admins, peer_id} if admin else set(tip.admins) - {peer_id}
        return await self._change(group_id, tip.members, admins)

    async def remove_member(self, group_id: str, peer_id: str) -> GroupInfo:
        """Remove a member (we must be an admin): it gets no key for any later message."""
        tip = self._held(group_id).tip
        if peer_id not in tip.member_ids:
            raise UsageError(f"{self.name(peer_id)} is not a member of {tip.name!r}")
        if peer_id == self.me:
            return await self.leave_group(group_id)
        members = [m for m in tip.members if m.peer_id != peer_id]
        return await self._change(group_id, members, set(tip.admins) - {peer_id})

    async def leave_group(self, group_id: str) -> GroupInfo:
        """Leave: a record without us.  The last admin hands admin to the next member."""
        tip = self._held(group_id).tip
        if self.me not in tip.member_ids:
            raise UsageError(f"not a member of {tip.name!r}")
        members = [m for m in tip.members if m.peer_id != self.me]
        if not members:
            raise UsageError(f"we are the last member of {tip.name!r}; nothing to leave")
        admins = set(tip.admins) - {self.me}
        if not admins:  # signed by us as an admin of the version before: allowed
            admins = {members[0].peer_id}
        return await self._change(group_id, members, admins)

    def _member(self, peer_id: str) -> GroupMember:
        if peer_id == self.me:
            return GroupMember(self.identity.public.identity_key)
        contact = self.contacts.contact(peer_id)
        if contact is None:
            raise UnknownPeer(f"{peer_id!r} is not a contact; pair with it (or meet in a room)")
        return GroupMember(contact.identity_key)

    async def _change(
        self, group_id: str, members: Iterable[GroupMember], admins: set[str]
    ) -> GroupInfo:
        chain = self._held(group_id).copy()
        before = chain.tip
        record = chain.propose(self.identity, members=members, admins=admins)
        chain.apply(record)
        await self._commit(chain, before, record, also=before.member_ids)
        return group_info(chain, self.me)

    async def _commit(
        self,
        chain: GroupChain,
        before: MembershipRecord | None,
        record: MembershipRecord,
        *,
        also: Iterable[str],
    ) -> None:
        """Store the new version and queue the chain to its members and ``also`` in one
        commit (a version stored but never queued, by a crash or a full disk between the
        two, was never sent: its members did not learn it), then send."""
        recipients = sorted({*record.member_ids, *also} - {self.me})
        with self.database.transaction():
            self.database.save_group(chain.tip, [record])
            self.database.ensure_conversation(chain.group_id, [self.me], chain.tip.name)
            rows = self._queue_records(chain.group_id, recipients, chain.path())
        self.adopt(chain)
        self.log.add(
            "group",
            f"{chain.tip.name!r} {record.short()}: {describe_change(before, record, self.name)}",
            kind="group.changed",
            group=chain.group_id,
            version=record.version,
            record=record.hash.hex(),
        )
        await self._send(rows)

    # --- sending -----------------------------------------------------------------------

    async def send_message(self, group_id: str, text: str, *, compress: bool = True) -> ChatMessage:
        """One message to every member of the current version (see the module docstring)."""
        tip = self._held(group_id).tip
        if self.me not in tip.member_ids:
            raise UsageError(
                f"not a member of {tip.name!r} (version {tip.version}): a message cannot be "
                "sent under a membership that excludes us"
            )
        members = [m for m in tip.member_ids if m != self.me]
        if not members:
            raise UsageError(f"{tip.name!r} has no other member")
        body = encode_body(check_text(text), compress=compress)
        message_id = new_message_id(self.me)
        now_ms = int(self._clock() * 1000)
        address = wire.message_address(tip)
        with self.database.transaction():
            counter = self.database.next_counter(group_id)
            self.database.store_sent(message_id, group_id, self.me, counter, now_ms, body)
            rows = [
                self.sender.queue.add(
                    OutgoingMessage(message_id, address, peer, body, counter), in_history=True
                )
                for peer in members
            ]
        self.log.add(
            "queue",
            f"queued {message_id.hex()[:8]} for {len(members)} member(s) of {tip.name!r}",
            kind="message.queued",
            message_id=message_id.hex(),
            conversation=group_id,
            recipients=members,
            bytes=len(body),
            group=group_id,
            version=tip.version,
        )
        written = [r for r in rows if r is not None]
        self._fan_out(message_id, tip.name, written)
        await self._send(written)
        status = overall_status(
            set(self.sender.delivery_status(message_id).values()), none="pending"
        )
        return ChatMessage(message_id, group_id, self.me, "out", text, now_ms, status)

    def _fan_out(self, message_id: bytes, name: str, rows: list[QueuedMessage]) -> None:
        """The fan-out, for the event log and the sequence diagram: who gets a key wrap in
        the one envelope sealed now, and who waits in the outbox (offline, or no session)."""
        now = [r.recipient for r in rows if self.network.is_connected(r.recipient)]
        now = [p for p in now if p in self.sender.sessions]
        later = [r.recipient for r in rows if r.recipient not in now]
        self.log.add(
            "group",
            f"fan-out of {message_id.hex()[:8]} to {name!r}: one body, {len(now)} key wrap(s) "
            f"now, {len(later)} member(s) waiting in the outbox",
            kind="group.fanout",
            message_id=message_id.hex(),
            now=now,
            waiting=later,
        )

    async def push(
        self, group_id: str, recipients: list[str], records: list[MembershipRecord]
    ) -> None:
        """Records control messages (the chain ``records``, in as many as it takes) to each
        of ``recipients``, queued in one commit."""
        with self.database.transaction():
            rows = self._queue_records(group_id, recipients, records)
        await self._send(rows)

    def _queue_records(
        self, group_id: str, recipients: list[str], records: list[MembershipRecord]
    ) -> list[QueuedMessage]:
        if not recipients:
            return []
        bodies = wire.encode_chains(records)
        return [r for b in bodies for r in self._queue(group_id, wire.RECORDS, recipients, b)]

    async def fetch(self, group_id: str, peer_id: str, record_hash: bytes) -> None:
        """Ask ``peer_id`` for the chain up to the record a held message names."""
        self.log.add(
            "group",
            f"asked {self.name(peer_id)} for record {record_hash.hex()[:8]} of {group_id}",
            peer_id=peer_id,
            kind="group.fetch",
            group=group_id,
        )
        await self._control(group_id, wire.FETCH, [peer_id], record_hash)

    def later(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` on the loop (the receiver decides synchronously)."""
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _control(self, group_id: str, kind: str, recipients: list[str], body: bytes) -> None:
        await self._send(self._queue(group_id, kind, recipients, body))

    def _queue(
        self, group_id: str, kind: str, recipients: list[str], body: bytes
    ) -> list[QueuedMessage]:
        """One control message's outbox rows (in the caller's transaction, if any)."""
        address = wire.control_address(group_id, kind)
        message_id = new_message_id(self.me)
        with self.database.transaction():
            counter = self.database.next_counter(address)
            rows = [
                self.sender.queue.add(OutgoingMessage(message_id, address, peer, body, counter))
                for peer in recipients
            ]
        return [r for r in rows if r is not None]

    async def _send(self, rows: list[QueuedMessage]) -> None:
        self.reach(r.recipient for r in rows)
        await self.sender.attempt_rows(rows)

    # --- the lazy mesh ---------------------------------------------------------------------

    def watch(self, room: RoomSession) -> None:
        """Pair through ``room`` when members are needed; ask again when one comes back."""
        self._room = room
        room.on_presence(self._presence)

    def reach(self, peers: Iterable[str]) -> None:
        """Ask the room to connect each of ``peers`` not connected now (lazily)."""
        room = self._room
        if room is None:
            return
        for peer in peers:
            if not self.network.is_connected(peer) and peer in room.online:
                room.request_pair(peer)

    def _presence(self, change: PresenceChange) -> None:
        if change.present and self.sender.queue.for_recipient(change.peer_id):
            self.reach([change.peer_id])

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


__all__ = ["GroupBook", "GroupInfo"]
