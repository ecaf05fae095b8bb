"""Groups in the app, with real stores, sessions and receivers (the courier carries frames):
creating and changing membership, sending, holding and fetching, removal, refusals."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from group_courier import Courier

from volli_nb.base.errors import (
    ForgedGroupRecord,
    NotGroupAdmin,
    NotGroupMember,
    StorageFull,
    UsageError,
)
from volli_nb.core.body import encode_body
from volli_nb.core.groups import wire
from volli_nb.core.groups.record import GroupMember, decode_record, sign_record
from volli_nb.core.store.message_queue import OutgoingMessage


def run(tmp: Path, names: tuple[str, ...], body: Callable[[Courier], Awaitable[None]]) -> None:
    async def main() -> None:
        courier = Courier.scratch(tmp, *names)
        try:
            await body(courier)
        finally:
            await courier.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def texts(courier: Courier, name: str, group_id: str) -> list[str]:
    return [m.text for m in courier[name].history(group_id)]


def test_a_group_is_created_changed_and_sent_to(tmp_path: Path) -> None:
    async def body(c: Courier) -> None:
        alice, bob, carol = c["alice"], c["bob"], c["carol"]
        group = await alice.create_group("study", [bob.peer_id, carol.peer_id])
        gid = group.group_id
        assert group.version == 1 and group.admins == (alice.peer_id,) and group.is_admin
        await c.flood()
        for store in (bob, carol):
            assert store.group(gid).record_hash == group.record_hash
            assert store.group(gid).members == group.members
        sent = await alice.send_message(gid, "hello group")
        await bob.send_message(gid, "hi from bob")
        await c.flood()
        for name in ("alice", "bob", "carol"):
            assert sorted(texts(c, name, gid)) == ["hello group", "hi from bob"]
        assert alice.delivery_status(sent.message_id) == {
            bob.peer_id: "delivered",
            carol.peer_id: "delivered",
        }
        assert [g.group_id for g in carol.groups()] == [gid]
        alice.pruner.prune(alice.clock() + 7200)  # delivered rows go; the record says who had it
        assert alice.history(gid)[0].status == "delivered"
        # every copy of a message is one envelope's wrap, bound to the record's hash
        entry = next(e for e in alice.log.entries() if e.data.get("kind") == "message.queued")
        assert entry.data["version"] == 1

    run(tmp_path, ("alice", "bob", "carol"), body)


def test_a_removed_member_gets_no_key_for_later_messages(tmp_path: Path) -> None:
    async def body(c: Courier) -> None:
        alice, bob, carol = c["alice"], c["bob"], c["carol"]
        gid = (await alice.create_group("study", [bob.peer_id, carol.peer_id])).group_id
        await c.flood()
        await alice.remove_member(gid, carol.peer_id)
        await c.flood()
        assert carol.group(gid).version == 2 and not carol.group(gid).is_member
        assert any(e.data.get("kind") == "group.removed" for e in carol.log.entries())
        after = await alice.send_message(gid, "after carol left")
        from_bob = await bob.send_message(gid, "bob too")
        assert set(alice.delivery_status(after.message_id)) == {bob.peer_id}  # no row for carol
        assert set(bob.delivery_status(from_bob.message_id)) == {alice.peer_id}
        await c.flood()
        assert texts(c, "carol", gid) == []
        with pytest.raises(UsageError):  # a member cannot send under a record that excludes it
            await carol.send_message(gid, "still here?")
        # and a receiver refuses a message sealed by a removed member under an old version
        v1 = alice.group_book.chain(gid).path()[0]  # type: ignore[union-attr]
        await queue_raw(c, "carol", "bob", wire.message_address(v1), encode_body("x"))
        verdict = await c.deliver("carol", "bob")
        assert [type(e) for _, e in verdict.refused] == [NotGroupMember]

    run(tmp_path, ("alice", "bob", "carol"), body)


async def queue_raw(c: Courier, sender: str, recipient: str, address: str, body: bytes) -> None:
    """A row as a hostile (or outdated) sender's own code would queue it."""
    from volli_nb.core.message_id import new_message_id

    s = c[sender]
    s.message_queue.enqueue(
        OutgoingMessage(new_message_id(s.peer_id), address, c[recipient].peer_id, body, 1)
    )


def test_a_message_under_an_unknown_version_is_held_fetched_and_released_in_order(
    tmp_path: Path,
) -> None:
    async def body(c: Courier) -> None:
        alice, bob, dave = c["alice"], c["bob"], c["dave"]
        gid = (await alice.create_group("study", [bob.peer_id])).group_id
        await c.deliver("alice", "bob")
        await alice.add_member(gid, dave.peer_id)
        await c.deliver("alice", "bob")  # bob has v2; dave has nothing yet
        for text in ("one", "two", "three"):
            await bob.send_message(gid, text)
        verdict = await c.deliver("bob", "dave")  # three messages under a record dave lacks
        assert len(verdict.stored) == 3 and texts(c, "dave", gid) == []
        assert [e.data["kind"] for e in dave.log.entries() if e.data.get("kind") == "group.held"]
        fetch = c.waiting("dave", "bob")
        assert [r.conversation_id for r in fetch] == [wire.control_address(gid, wire.FETCH)]
        await c.deliver("dave", "bob")  # the fetch; bob answers with the chain
        got: list[str] = []
        dave.on_message(lambda m: got.append(m.text))
        await c.deliver("bob", "dave")
        assert got == ["one", "two", "three"] == texts(c, "dave", gid)
        assert dave.group(gid).version == 2
        again = await c.deliver("bob", "dave", c.waiting("bob", "dave"))  # nothing left
        assert not again.stored

    run(tmp_path, ("alice", "bob", "dave"), body)


def test_forged_and_non_admin_records_are_refused_by_type(tmp_path: Path) -> None:
    async def body(c: Courier) -> None:
        alice, bob, carol = c["alice"], c["bob"], c["carol"]
        gid = (await alice.create_group("study", [bob.peer_id, carol.peer_id])).group_id
        await c.flood()
        v1 = alice.group_book.chain(gid).tip  # type: ignore[union-attr]
        members = [*v1.members, GroupMember(c["bob"].identity.public.identity_key)]
        sneaky = sign_record(
            bob.identity, group_id=gid, version=2, prev_hash=v1.hash, name=v1.name,
            members={m.peer_id: m for m in members}.values(), admins=[bob.peer_id],
        )  # type: ignore[arg-type]  # fmt: skip
        forged = decode_record(sneaky.raw[:-64] + bytes(64))
        records = wire.control_address(gid, wire.RECORDS)
        for record in (sneaky, forged, v1):
            await queue_raw(c, "bob", "carol", records, wire.encode_chain([record]))
        kinds = []
        for row in c.waiting("bob", "carol"):
            verdict = await c.deliver("bob", "carol", [row])
            kinds.append([type(e) for _, e in verdict.refused])
        assert kinds == [[NotGroupAdmin], [ForgedGroupRecord], []]  # v1 again: known, no-op
        assert carol.group(gid).version == 1
        with pytest.raises(UsageError):  # the API refuses before signing
            await bob.add_member(gid, bob.peer_id, admin=True)

    run(tmp_path, ("alice", "bob", "carol"), body)


@pytest.mark.parametrize("alice_removes", [True, False])
def test_two_admins_changing_at_once_end_the_same_everywhere(
    tmp_path: Path, alice_removes: bool
) -> None:
    """Alice and Bob, both admins of version 2, change it at once: one removes Carol, the
    other adds Dave.  Alice's wins (the senior admin: since version 1), whichever arrives
    first and whichever change is hers, every member ends on it, and the loser's author
    alone is told."""

    async def body(c: Courier) -> None:
        alice, bob, carol, dave = c["alice"], c["bob"], c["carol"], c["dave"]
        gid = (await alice.create_group("study", [bob.peer_id, carol.peer_id])).group_id
        await alice.set_admin(gid, bob.peer_id)
        await c.flood()
        remover, adder = (alice, bob) if alice_removes else (bob, alice)
        await remover.remove_member(gid, carol.peer_id)  # both from version 2, before
        await adder.add_member(gid, dave.peer_id)  # either hears of the other
        held = alice.group_book.chain(gid)
        assert held is not None
        mine = {s.name: s.group_book.chain(gid).tip for s in (remover, adder)}  # type: ignore[union-attr]
        winner = min(mine.values(), key=held.precedence)
        assert winner.signer == alice.peer_id  # the senior admin's change
        await c.deliver(remover.name, "carol")  # carol and dave hear their own news first
        await c.deliver(adder.name, "dave")
        await c.flood()
        assert {s.group(gid).record_hash for s in c.stores.values()} == {winner.hash.hex()}
        assert (dave.peer_id in winner.member_ids) == (not alice_removes)
        conflicts = {
            s.name: [e.message for e in s.log.entries() if e.data.get("kind") == "group.conflict"
                     and e.category == "error"]
            for s in (alice, bob)
        }  # fmt: skip
        assert len(conflicts["bob"]) == 1 and conflicts["alice"] == []
        assert "apply it again" in conflicts["bob"][0]
        # bob applies his change again, on top: it sticks everywhere
        if alice_removes:
            await bob.add_member(gid, dave.peer_id)
        else:
            await bob.remove_member(gid, carol.peer_id)
        await c.flood()
        final = {frozenset(s.group(gid).members) for s in (alice, bob, dave)}
        assert final == {frozenset({alice.peer_id, bob.peer_id, dave.peer_id})}
        assert not carol.group(gid).is_member  # told of her removal, then of nothing more

    run(tmp_path, ("alice", "bob", "carol", "dave"), body)


def test_a_change_whose_records_cannot_be_queued_is_not_stored_either(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new version was committed, then its records messages were queued in a
    transaction of their own: a crash or a full disk between the two left a version stored
    (and held) that no member was ever sent, and the caller's retry said "already a
    member".  Now one commit: the write fails, the change is not made, and a retry sends it."""

    async def body(c: Courier) -> None:
        alice, bob, carol = c["alice"], c["bob"], c["carol"]
        gid = (await alice.create_group("study", [bob.peer_id])).group_id
        await c.flood()
        queue = alice.group_book.sender.queue

        def full(*_args: object, **_kwargs: object) -> None:
            raise StorageFull("the disk is full (simulated)")

        with monkeypatch.context() as m:
            m.setattr(queue, "add", full)
            with pytest.raises(StorageFull):
                await alice.add_member(gid, carol.peer_id)
        stored = alice.database.load_group(gid)
        assert stored is not None and stored.tip.version == 1  # nothing half-done at rest
        assert alice.group(gid).version == 1 and c.waiting("alice", "bob") == []
        await alice.add_member(gid, carol.peer_id)  # the retry is the change, sent
        await c.flood()
        assert {s.group(gid).version for s in (alice, bob, carol)} == {2}
        assert carol.group(gid).is_member

    run(tmp_path, ("alice", "bob", "carol"), body)
