"""Receiving group traffic, where the review of issue 27 found it wrong: held messages
released twice, fetch answers that told a removed member too much, bodies and versions
not checked as the wire checks them (real stores, sessions and receivers; the courier
carries the frames)."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from group_courier import Courier, settle
from test_groups_app import queue_raw, run, texts

from volli_nb.app.group_fetches import Recently
from volli_nb.app.group_receiving import HOLD_MESSAGES, GroupPart
from volli_nb.base.errors import (
    BrokenGroupChain,
    MalformedBody,
    NotGroupMember,
    TooManyHeld,
    UsageError,
)
from volli_nb.core.body import encode_body
from volli_nb.core.groups import wire
from volli_nb.core.groups.record import derive_group_id, sign_record
from volli_nb.net.events import PeerOnline


def test_two_records_messages_in_one_frame_release_a_held_message_once(tmp_path: Path) -> None:
    """Dave holds Bob's message for version 2; Alice's versions 2 and 3 reach him as two
    records messages in one frame: the message is released once, the frame stored."""

    async def body(c: Courier) -> None:
        alice, bob, dave = c["alice"], c["bob"], c["dave"]
        gid = (await alice.create_group("study", [bob.peer_id])).group_id
        await c.deliver("alice", "bob")
        await alice.add_member(gid, dave.peer_id)  # records v2 for bob and dave
        await c.deliver("alice", "bob")
        await bob.send_message(gid, "hi dave")
        held = await c.deliver("bob", "dave")  # dave does not hold v2 yet: held
        assert len(held.stored) == 1 and len(dave.database.held_messages(gid)) == 1
        await alice.set_admin(gid, bob.peer_id)  # records v3 for bob and dave
        assert [r.conversation_id.endswith(".records") for r in c.waiting("alice", "dave")] == [
            True,
            True,
        ]
        verdict = await c.deliver("alice", "dave")  # both records messages in one frame
        assert not verdict.refused and len(verdict.stored) == 3  # two records, one released
        assert texts(c, "dave", gid) == ["hi dave"]
        assert dave.group(gid).version == 3 and dave.database.held_messages(gid) == []
        assert dave.storage.state == "ok"
        released = [e for e in dave.log.entries() if e.data.get("kind") == "group.released"]
        assert len(released) == 1

    run(tmp_path, ("alice", "bob", "dave"), body)


def test_a_fetch_never_answers_past_the_askers_removal(tmp_path: Path) -> None:
    """Carol, removed at version 2, asks Bob for version 1 (which lists her): the answer
    stops at her removal, so she never learns that Dave joined at version 3."""

    async def body(c: Courier) -> None:
        alice, bob, carol, dave = c["alice"], c["bob"], c["carol"], c["dave"]
        gid = (await alice.create_group("study", [bob.peer_id, carol.peer_id])).group_id
        await c.flood()
        chain = carol.group_book.chain(gid)
        assert chain is not None
        v1 = chain.tip
        await alice.remove_member(gid, carol.peer_id)  # v2
        await c.flood()
        await alice.add_member(gid, dave.peer_id)  # v3: carol is not told
        await c.deliver("alice", "bob")
        assert (carol.group(gid).version, bob.group(gid).version) == (2, 3)
        await queue_raw(c, "carol", "bob", wire.control_address(gid, wire.FETCH), v1.hash)
        await c.deliver("carol", "bob")
        answers = c.waiting("bob", "carol")
        assert len(answers) == 1
        chain_sent = wire.decode_chain(answers[0].payload, gid)
        assert [r.version for r in chain_sent] == [1, 2]  # up to her removal, not v3
        assert all(dave.peer_id not in r.member_ids for r in chain_sent)
        # a member still in the group is answered the whole way to the current version
        await queue_raw(c, "alice", "bob", wire.control_address(gid, wire.FETCH), v1.hash)
        await c.deliver("alice", "bob")
        full = wire.decode_chain(c.waiting("bob", "alice")[-1].payload, gid)
        assert [r.version for r in full] == [1, 2, 3]

    run(tmp_path, ("alice", "bob", "carol", "dave"), body)


def test_a_version_1_body_is_refused_in_a_group_as_on_the_wire(tmp_path: Path) -> None:
    """The receiver refuses version-1 (JSON) bodies on the wire; group messages too, under
    a record held (refused) or not (refused instead of held)."""

    async def body(c: Courier) -> None:
        alice, bob = c["alice"], c["bob"]
        gid = (await alice.create_group("study", [bob.peer_id])).group_id
        await c.flood()
        chain = alice.group_book.chain(gid)
        assert chain is not None
        legacy = b'{"type":"text","text":"old"}'
        await queue_raw(c, "alice", "bob", wire.message_address(chain.tip), legacy)
        verdict = await c.deliver("alice", "bob", raw=True)  # our sender would re-encode it
        assert [type(e) for _, e in verdict.refused] == [MalformedBody]
        unheard = sign_record(
            alice.identity, group_id=gid, version=2, prev_hash=chain.tip.hash,
            name="study", members=chain.tip.members, admins=chain.tip.admins,
        )  # fmt: skip
        await queue_raw(c, "alice", "bob", wire.message_address(unheard), legacy)
        verdict = await c.deliver("alice", "bob", c.waiting("alice", "bob")[-1:], raw=True)
        assert [type(e) for _, e in verdict.refused] == [MalformedBody]
        assert bob.database.held_messages(gid) == [] and texts(c, "bob", gid) == []

    run(tmp_path, ("alice", "bob"), body)


def test_a_held_message_naming_another_version_is_refused_on_release(tmp_path: Path) -> None:
    """Bob's message names version 2's hash as version 7: held by Dave (who does not hold
    version 2 yet), it is refused when the record comes, as it would be on arrival."""

    async def body(c: Courier) -> None:
        alice, bob, dave = c["alice"], c["bob"], c["dave"]
        gid = (await alice.create_group("study", [bob.peer_id])).group_id
        await c.deliver("alice", "bob")
        await alice.add_member(gid, dave.peer_id)  # v2, for bob now and dave later
        await c.deliver("alice", "bob")
        v2 = bob.group_book.chain(gid).tip  # type: ignore[union-attr]
        wrong = wire.message_address(v2).replace(".v2.", ".v7.")
        await queue_raw(c, "bob", "dave", wrong, encode_body("mislabelled"))
        await bob.send_message(gid, "labelled right")
        assert len((await c.deliver("bob", "dave")).stored) == 2  # both held
        assert len(dave.database.held_messages(gid)) == 2
        verdict = await c.deliver("alice", "dave")
        assert not verdict.refused and dave.group(gid).version == 2
        assert texts(c, "dave", gid) == ["labelled right"]
        assert dave.database.held_messages(gid) == []
        refused = [e.message for e in dave.log.entries() if e.data.get("kind") == "group.refused"]
        assert len(refused) == 1 and "BrokenGroupChain" in refused[0]
        await queue_raw(c, "bob", "dave", wrong, encode_body("again, on arrival"))
        verdict = await c.deliver("bob", "dave")
        assert [type(e) for _, e in verdict.refused] == [BrokenGroupChain]

    run(tmp_path, ("alice", "bob", "dave"), body)


def test_repeated_fetches_are_answered_once(tmp_path: Path) -> None:
    """A member's twenty fetches of one record (in one frame, and again in another) queue
    one answer, not twenty-one: a member cannot make us fill our outbox."""

    async def body(c: Courier) -> None:
        alice, bob, mallory = c["alice"], c["bob"], c["mallory"]
        gid = (await alice.create_group("study", [bob.peer_id, mallory.peer_id])).group_id
        await c.flood()
        chain = bob.group_book.chain(gid)
        assert chain is not None
        for _ in range(20):
            await queue_raw(
                c, "mallory", "bob", wire.control_address(gid, wire.FETCH), chain.tip.hash
            )
        assert len((await c.deliver("mallory", "bob")).stored) == 20
        await queue_raw(c, "mallory", "bob", wire.control_address(gid, wire.FETCH), chain.tip.hash)
        await c.deliver("mallory", "bob")
        assert len(c.waiting("bob", "mallory")) == 1
        await queue_raw(c, "alice", "bob", wire.control_address(gid, wire.FETCH), chain.tip.hash)
        await c.deliver("alice", "bob")
        assert len(c.waiting("bob", "alice")) == 1  # another member is answered on its own

    run(tmp_path, ("alice", "bob", "mallory"), body)


def test_what_was_asked_lately_is_remembered_within_bounds() -> None:
    recently = Recently(window=30.0, per_peer=3, peers=2)
    assert recently.first("p", "a", 0.0) and not recently.first("p", "a", 29.0)
    assert recently.first("p", "a", 30.0)
    assert recently.first("p", "b", 31.0) and recently.first("p", "c", 32.0)
    assert not recently.first("p", "d", 33.0)  # three recent keys: no more until one ages
    assert recently.first("p", "d", 60.5) and len(recently) == 3  # "a" (at 30) aged out
    assert recently.first("q", "a", 61.0)  # another peer has its own room
    assert not recently.first("r", "a", 62.0)  # two peers with recent keys: no third
    assert recently.first("r", "a", 120.0)


def test_a_wall_clock_stepped_back_does_not_silence_fetches_until_it_catches_up() -> None:
    """The times are the wall clock's: stepped back an hour, what was done "in the future"
    counted as recent for the hour, so a held message was not asked for again, and a peer
    (or the peers' bound) full of such entries blocked every other fetch too."""
    recently = Recently(window=30.0, per_peer=2, peers=1)
    assert recently.first("p", "a", 3600.0) and recently.first("p", "b", 3601.0)
    assert recently.first("p", "a", 0.0)  # stepped back an hour: asked again
    assert recently.first("p", "c", 1.0)  # "b" (at 3601) is not a recent key
    assert not recently.first("p", "a", 2.0)  # what is done now still counts
    assert recently.first("q", "a", 3600.0 + 30.0)  # p's keys aged out: room for q


def test_a_contact_cannot_fill_our_store_with_held_messages(tmp_path: Path) -> None:
    """Mallory, a contact in no group, sends 300 messages under records nobody has: 256
    are held, the rest refused (TooManyHeld) until those go; a few fetches are queued, not
    one each.  Under a group we hold, a non-member's message for a version we are past is
    not held at all."""

    async def body(c: Courier) -> None:
        alice, mallory, victim = c["alice"], c["mallory"], c["victim"]
        for n in range(300):
            gid = derive_group_id(bytes(32), n.to_bytes(16, "big"))
            address = f"{gid}.v1.{(bytes([n % 256]) * 32).hex()}"  # a record nobody has
            await queue_raw(c, "mallory", "victim", address, encode_body("x" * 100))
        verdict = await c.deliver("mallory", "victim")
        assert len(verdict.stored) == HOLD_MESSAGES == 256
        assert {type(e) for _, e in verdict.refused} == {TooManyHeld}
        assert len(verdict.refused) == 300 - HOLD_MESSAGES
        assert victim.database.held_from(mallory.peer_id)[0] == HOLD_MESSAGES
        assert len(c.waiting("victim", "mallory")) <= 16  # fetches: a few, not 256
        gid = (await alice.create_group("study", [victim.peer_id])).group_id
        await c.flood()
        stranger = f"{gid}.v1.{bytes(32).hex()}"  # v1, but not the v1 victim holds
        await queue_raw(c, "mallory", "victim", stranger, encode_body("let me in"))
        verdict = await c.deliver("mallory", "victim", c.waiting("mallory", "victim")[-1:])
        assert [type(e) for _, e in verdict.refused] == [NotGroupMember]
        assert victim.database.held_messages(gid) == []

    run(tmp_path, ("alice", "mallory", "victim"), body)


def test_a_chain_longer_than_one_records_message_keeps_working(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A records message carries MAX_CHAIN records (512; 4 here): past that, a change goes
    to the members as several, in order, and the group keeps working; a new member could
    not take it (its chain starts at version 1), so adding one is a UsageError, before
    anything is signed."""
    monkeypatch.setattr(wire, "MAX_CHAIN", 4)

    async def body(c: Courier) -> None:
        alice, bob, dave = c["alice"], c["bob"], c["dave"]
        gid = (await alice.create_group("study", [bob.peer_id])).group_id
        for n in range(6):  # versions 2..7
            await alice.set_admin(gid, bob.peer_id, admin=n % 2 == 0)
        sizes = [len(wire.decode_chain(r.payload, gid)) for r in c.waiting("alice", "bob")]
        assert sizes[-2:] == [4, 3]  # version 7's chain: two records messages
        await c.flood()
        assert (alice.group(gid).version, bob.group(gid).version) == (7, 7)
        await bob.send_message(gid, "still here")
        await c.flood()
        assert texts(c, "alice", gid) == ["still here"]
        with pytest.raises(UsageError):
            await alice.add_member(gid, dave.peer_id)
        assert alice.group(gid).version == 7 and c.waiting("alice", "dave") == []

    run(tmp_path, ("alice", "bob", "dave"), body)


def test_a_records_message_that_brings_nothing_new_reads_no_held_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone may resend a group's records; one that adds nothing made the receiver read,
    check and open every held message of the group again (255 held bodies of 128 KiB:
    ~150 ms a 247-byte message, without end).  Only records new to us release anything,
    and then only the messages held under them."""

    async def body(c: Courier) -> None:
        alice, mallory, victim = c["alice"], c["mallory"], c["victim"]
        gid = (await alice.create_group("study", [mallory.peer_id, victim.peer_id])).group_id
        await c.flood()
        chain = victim.group_book.chain(gid)
        future = f"{gid}.v{chain.version + 1}.{'07' * 32}"  # a record nobody has
        for _ in range(3):
            await queue_raw(c, "mallory", "victim", future, encode_body("held"))
        assert len((await c.deliver("mallory", "victim")).stored) == 3
        reads: list[object] = []
        real = type(victim.database).held_messages

        def counted(db: object, group_id: str, **kwargs: object) -> object:
            reads.append(kwargs.get("under"))
            return real(db, group_id, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(type(victim.database), "held_messages", counted)
        records = wire.control_address(gid, wire.RECORDS)
        await queue_raw(c, "mallory", "victim", records, wire.encode_chain(chain.path()))
        verdict = await c.deliver("mallory", "victim")
        assert len(verdict.stored) == 1 and reads == []  # absorbed; nothing held was read
        assert len(victim.database.held_messages(gid)) == 3

    run(tmp_path, ("alice", "mallory", "victim"), body)


def test_a_held_message_whose_fetch_died_with_the_process_is_asked_for_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dave's process dies after holding Bob's message, before it asks Bob for the record
    (the ``stored`` fault point: committed, not yet acknowledged).  Bob resends it, and
    Dave, seeing an id he holds, acknowledges it unopened: nothing else would ever ask
    for the record, so the message would stay held, never shown.  Bob's channel opening
    again asks for every record a message held from him waits for."""

    async def body(c: Courier) -> None:
        alice, bob, dave = c["alice"], c["bob"], c["dave"]
        gid = (await alice.create_group("study", [bob.peer_id])).group_id
        await c.deliver("alice", "bob")
        await alice.add_member(gid, dave.peer_id)
        await c.deliver("alice", "bob")  # bob has v2; dave nothing yet
        await bob.send_message(gid, "hi dave")
        with monkeypatch.context() as crash:  # nothing after the commit runs: no fetch, no ACK
            crash.setattr(GroupPart, "after", lambda _self, _emit: None)
            frame = c.frame("bob", "dave")
            assert len(dave.receiver.frame(bob.peer_id, frame).stored) == 1
        assert len(dave.database.held_messages(gid)) == 1 and not c.waiting("dave", "bob")
        again = await c.deliver("bob", "dave")  # bob resends; dave has it: acknowledged
        assert again.stored and not c.waiting("bob", "dave") and not c.waiting("dave", "bob")
        dave.network_store.report(PeerOnline(bob.peer_id))  # bob's channel opens again
        await settle()
        fetch = c.waiting("dave", "bob")
        assert [r.conversation_id for r in fetch] == [wire.control_address(gid, wire.FETCH)]
        await c.flood()
        assert texts(c, "dave", gid) == ["hi dave"] and dave.database.held_messages(gid) == []
        dave.network_store.report(PeerOnline(bob.peer_id))  # nothing held: nothing asked
        await settle()
        assert not c.waiting("dave", "bob")

    run(tmp_path, ("alice", "bob", "dave"), body)


def test_a_body_deflated_past_the_ratio_is_refused_not_stored_not_acknowledged(
    tmp_path: Path,
) -> None:
    """A contact's 12 KiB body that inflates to 12 MiB: refused on receipt, neither stored
    nor acknowledged; the same text sent by our own sender arrives (plain)."""
    from volli_nb.app.chat import dm_conversation_id
    from volli_nb.base.errors import OversizedInput
    from volli_nb.core.body import MAX_TEXT_BYTES

    async def body(c: Courier) -> None:
        alice, bob = c["alice"], c["bob"]
        dm = dm_conversation_id(alice.peer_id, bob.peer_id)
        packer = zlib.compressobj(9, zlib.DEFLATED, -15)
        bomb = b"\x02" + packer.compress(b"a" * MAX_TEXT_BYTES) + packer.flush()
        await queue_raw(c, "alice", "bob", dm, bomb)
        verdict = await c.deliver("alice", "bob", raw=True)  # a hostile sender's code
        assert [type(e) for _, e in verdict.refused] == [OversizedInput]
        assert not verdict.stored and bob.history(dm) == []
        assert len(c.waiting("alice", "bob")) == 1  # not acknowledged: still queued
        text = "a" * 300_000
        await alice.send_message(bob.peer_id, text)
        verdict = await c.deliver("alice", "bob", c.waiting("alice", "bob")[-1:])
        assert len(verdict.stored) == 1 and [m.text for m in bob.history(dm)] == [text]

    run(tmp_path, ("alice", "bob"), body)
