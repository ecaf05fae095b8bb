"""Membership records (pure core): ids nobody can squat, signatures, the chain, and the rule
for two concurrent changes, each defect with its own typed error."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace

import pytest

from volli_nb.base.errors import (
    BrokenGroupChain,
    ConversationRefused,
    ForgedGroupRecord,
    GroupRecordsMissing,
    MalformedGroupRecord,
    NotGroupAdmin,
    ReplayedGroupRecord,
    RevokedGroupRecord,
    SquattedGroupId,
    StaleGroupRecord,
    UnknownGroup,
    UsageError,
)
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.groups import wire
from volli_nb.core.groups.chain import GroupChain, rank
from volli_nb.core.groups.record import (
    GroupMember,
    MembershipRecord,
    decode_record,
    derive_group_id,
    encode_record,
    genesis,
    is_group_id,
    sign_record,
)


def ident(n: int) -> Identity:
    return Identity(bytes([n]) * 32, bytes([n + 100]) * 32)


ALICE, BOB, CAROL, DAVE, MALLORY = (ident(i) for i in range(1, 6))


def member(who: Identity) -> GroupMember:
    return GroupMember(who.public.identity_key)


def counter_random(first: int) -> Callable[[int], bytes]:
    counter = itertools.count(first)
    return lambda n: next(counter).to_bytes(n, "big")


def start(name: str = "class", seed: int = 1) -> tuple[GroupChain, MembershipRecord]:
    first = genesis(ALICE, name, [member(BOB), member(CAROL)], random=counter_random(seed))
    return GroupChain(first), first


def everyone(*who: Identity) -> list[GroupMember]:
    return [member(w) for w in who]


def signed(
    who: Identity,
    after: MembershipRecord,
    members: list[GroupMember],
    *,
    version: int | None = None,
    prev_hash: bytes | None = None,
    admins: tuple[str, ...] | list[str] | None = None,
    name: str = "x",
) -> MembershipRecord:
    """A record by ``who`` (by default the version after ``after``), not checked."""
    return sign_record(
        who,
        group_id=after.group_id,
        version=after.version + 1 if version is None else version,
        prev_hash=after.hash if prev_hash is None else prev_hash,
        name=name,
        members=members,
        admins=[who.peer_id] if admins is None else admins,
    )


def test_a_group_id_comes_from_its_creator_and_randomness() -> None:
    chain, first = start()
    assert first.group_id == derive_group_id(ALICE.public.identity_key, first.origin or b"")
    assert is_group_id(first.group_id) and len(first.group_id) == 28
    assert first.admins == (ALICE.peer_id,) and ALICE.peer_id in first.member_ids
    again = genesis(ALICE, "class", [member(BOB)])  # fresh randomness: another id
    assert again.group_id != first.group_id
    assert chain.version == 1 and chain.path() == [first]


def test_nobody_can_squat_a_group_id() -> None:
    _, first = start()
    # Mallory signs a first record under Alice's id (with Alice's origin): not derived from his key.
    squat = sign_record(
        MALLORY,
        group_id=first.group_id,
        version=1,
        prev_hash=bytes(32),
        name="mine now",
        members=everyone(MALLORY, BOB),
        admins=[MALLORY.peer_id],
        origin=first.origin,
    )
    with pytest.raises(SquattedGroupId):
        GroupChain(squat)


def test_a_forged_signature_is_refused() -> None:
    chain, first = start()
    change = chain.propose(ALICE, members=everyone(ALICE, BOB), admins=[ALICE.peer_id])
    forged = decode_record(encode_record(change)[:-64] + bytes(64))
    with pytest.raises(ForgedGroupRecord):
        chain.apply(forged)
    tampered = bytearray(change.raw)
    tampered[20] ^= 1  # inside the version/prev_hash area: still parses
    with pytest.raises((ForgedGroupRecord, BrokenGroupChain, MalformedGroupRecord)):
        chain.apply(decode_record(bytes(tampered)))
    renamed = decode_record(change.raw.replace(b"class", b"clasz"))
    with pytest.raises(ForgedGroupRecord):
        chain.apply(renamed)
    with pytest.raises(ForgedGroupRecord):  # a first record whose signature does not verify
        GroupChain(decode_record(first.raw[:-1] + bytes([first.raw[-1] ^ 1])))
    assert chain.version == 1


def test_a_non_admin_cannot_change_membership() -> None:
    chain, first = start()
    sneaky = signed(BOB, first, everyone(ALICE, BOB, CAROL, MALLORY), name=first.name)
    with pytest.raises(NotGroupAdmin):
        chain.apply(sneaky)
    stranger = signed(MALLORY, first, everyone(ALICE, MALLORY), name=first.name)
    with pytest.raises(NotGroupAdmin):
        chain.apply(stranger)
    with pytest.raises(UsageError):  # the API refuses before signing anything
        chain.propose(BOB, members=everyone(ALICE, BOB), admins=[ALICE.peer_id])
    assert chain.version == 1


def test_a_member_may_sign_only_its_own_leaving() -> None:
    chain, _ = start()
    leave = chain.propose(CAROL, members=everyone(ALICE, BOB), admins=[ALICE.peer_id])
    assert chain.apply(leave).moved and CAROL.peer_id not in chain.tip.member_ids
    with pytest.raises(UsageError):  # leaving and renaming at once is a change
        chain.propose(BOB, members=everyone(ALICE), admins=[ALICE.peer_id], name="gone")


def test_the_chain_refuses_replays_lower_versions_gaps_and_breaks() -> None:
    chain, first = start()
    v2 = chain.propose(ALICE, members=everyone(ALICE, BOB, CAROL, DAVE), admins=[ALICE.peer_id])
    chain.apply(v2)
    v3 = chain.propose(ALICE, members=everyone(ALICE, BOB, DAVE), admins=[ALICE.peer_id])
    chain.apply(v3)
    with pytest.raises(ReplayedGroupRecord):  # the same record again
        chain.apply(v2)
    with pytest.raises(StaleGroupRecord) as lower:  # a competitor for a settled version
        chain.apply(signed(ALICE, first, everyone(ALICE, CAROL)))
    assert type(lower.value) is StaleGroupRecord  # not a replay: its own error
    with pytest.raises(GroupRecordsMissing):  # a version we do not hold the way to
        chain.apply(signed(ALICE, first, everyone(ALICE), version=7, prev_hash=bytes(range(32))))
    with pytest.raises(BrokenGroupChain):  # skips a version
        chain.apply(signed(ALICE, v3, everyone(ALICE), version=5))
    other, _ = start("other", seed=99)
    with pytest.raises(BrokenGroupChain):  # another group's record
        chain.apply(other.propose(ALICE, members=everyone(ALICE), admins=[ALICE.peer_id]))
    with pytest.raises(UnknownGroup):  # a chain must start at version 1
        GroupChain(v3)
    assert [r.version for r in chain.path()] == [1, 2, 3]


def concurrent(equals: bool = False) -> tuple[MembershipRecord, MembershipRecord, MembershipRecord]:
    """Version 2 makes Bob an admin; then, both from version 2, Alice removes Carol and
    Bob adds Dave.  With ``equals``, version 2 makes Bob and Carol admins, and they are
    the two who change it (equal seniority: the ticket decides)."""
    chain, _first = start()
    if equals:
        admins = [ALICE.peer_id, BOB.peer_id, CAROL.peer_id]
        v2 = chain.propose(ALICE, members=everyone(ALICE, BOB, CAROL), admins=admins)
        chain.apply(v2)
        by_one = chain.propose(CAROL, members=everyone(ALICE, BOB, CAROL), admins=admins[:2])
        by_other = chain.propose(BOB, members=everyone(ALICE, BOB, CAROL, DAVE), admins=admins)
        return v2, by_one, by_other
    v2 = chain.propose(
        ALICE, members=everyone(ALICE, BOB, CAROL), admins=[ALICE.peer_id, BOB.peer_id]
    )
    chain.apply(v2)
    by_alice = chain.propose(ALICE, members=everyone(ALICE, BOB), admins=v2.admins)
    by_bob = chain.propose(BOB, members=everyone(ALICE, BOB, CAROL, DAVE), admins=v2.admins)
    return v2, by_alice, by_bob


@pytest.mark.parametrize("equals", [False, True], ids=["senior-wins", "equals-by-ticket"])
def test_two_concurrent_changes_end_the_same_on_every_member(equals: bool) -> None:
    v2, one, other = concurrent(equals)
    chain, _ = start()
    chain.apply(v2)
    winner = min((one, other), key=chain.precedence)
    loser = other if winner is one else one
    if equals:
        assert winner is min((one, other), key=lambda r: rank(v2, r))
    else:
        assert winner is one  # Alice, an admin since version 1, over Bob, since version 2
    tips, losts = set(), set()
    for order in ((one, other), (other, one)):
        chain, _ = start()
        chain.apply(v2)
        first, second = (chain.apply(r) for r in order)
        tips.add(chain.tip.hash)
        losts.add(frozenset(chain.lost))
        assert first.moved  # the first to arrive is the tip until the second arrives
        assert (second.lost, second.moved) == ((loser,), second.record is winner)
    assert tips == {winner.hash} and losts == {frozenset({loser.hash})}
    chain, _ = start()
    chain.apply(v2)
    chain.apply(loser)
    chain.apply(winner)
    author = next(w for w in (ALICE, BOB, CAROL) if w.peer_id == loser.signer)
    with pytest.raises(BrokenGroupChain):  # built on the loser: refused
        chain.apply(signed(ALICE, loser, list(loser.members), admins=loser.admins))
    # The loser's author applies its change again, on top of the winner: it sticks.
    redo = chain.propose(author, members=loser.members, admins=loser.admins)
    assert chain.apply(redo).moved and chain.tip.member_ids == loser.member_ids


def removal(seed: int = 1) -> tuple[GroupChain, MembershipRecord, MembershipRecord]:
    """Alice makes Bob an admin (version 2), then removes him (version 3)."""
    chain, _ = start(seed=seed)
    v2 = chain.propose(
        ALICE, members=everyone(ALICE, BOB, CAROL), admins=[ALICE.peer_id, BOB.peer_id]
    )
    chain.apply(v2)
    v3 = chain.propose(ALICE, members=everyone(ALICE, CAROL), admins=[ALICE.peer_id])
    chain.apply(v3)
    return chain, v2, v3


def test_a_removed_admin_cannot_take_the_group_back() -> None:
    """Bob, removed at version 3, signs a competitor of it on version 2 (where he was an
    admin), later: whatever it says and whatever its ticket, it never wins."""
    favoured = 0
    for seed in range(1, 9):  # groups where the ticket alone would favour him, and not
        chain, v2, v3 = removal(seed)
        with pytest.raises(NotGroupAdmin):  # taking admin from Alice, his senior: never valid
            chain.apply(signed(BOB, v2, everyone(ALICE, BOB, CAROL), admins=[BOB.peer_id]))
        # contents that keep Alice: a competitor of version 3, decided by the rule
        evil = signed(BOB, v2, everyone(ALICE, BOB, CAROL, DAVE), admins=v2.admins)
        favoured += rank(v2, evil) < rank(v2, v3)
        with pytest.raises(RevokedGroupRecord):
            chain.apply(evil)
        assert chain.tip is v3 and evil.hash not in chain.records
        other, _ = start(seed=seed)  # arriving first, it is the tip only until the removal
        other.apply(v2)
        assert other.apply(evil).moved
        assert other.apply(v3).lost == (evil,) and other.tip is v3
    assert 0 < favoured < 8
    _, v2, _ = removal()
    demoted, _ = start()
    demoted.apply(v2)
    v3 = demoted.propose(ALICE, members=v2.members, admins=[ALICE.peer_id])
    demoted.apply(v3)
    with pytest.raises(RevokedGroupRecord):  # demoted, not removed: the same
        demoted.apply(signed(BOB, v2, list(v2.members), admins=v2.admins, name="mine"))


def test_losing_changes_do_not_pile_up() -> None:
    """Bob, junior to Alice, floods siblings of her version 3: one is kept as lost, the
    others are refused (a pile would grow every member's store for ever)."""
    chain, _ = start()
    v2 = chain.propose(
        ALICE, members=everyone(ALICE, BOB, CAROL), admins=[ALICE.peer_id, BOB.peer_id]
    )
    chain.apply(v2)
    v3 = chain.propose(ALICE, members=everyone(ALICE, BOB, CAROL, DAVE), admins=v2.admins)
    chain.apply(v3)
    siblings = [
        signed(BOB, v2, everyone(ALICE, BOB, CAROL), admins=v2.admins, name=f"mine {n}")
        for n in range(5)
    ]
    assert chain.apply(siblings[0]).lost == (siblings[0],)
    for sibling in siblings[1:]:
        with pytest.raises(StaleGroupRecord):
            chain.apply(sibling)
    assert chain.tip is v3 and len(chain.records) == 4 and len(chain.lost) == 1


def test_an_admin_removes_or_demotes_only_admins_promoted_after_it() -> None:
    chain, _ = start()
    admins = [ALICE.peer_id, BOB.peer_id, CAROL.peer_id]
    v2 = chain.propose(ALICE, members=everyone(ALICE, BOB, CAROL), admins=admins)
    chain.apply(v2)
    assert chain.seniority(v2) == {ALICE.peer_id: 1, BOB.peer_id: 2, CAROL.peer_id: 2}
    with pytest.raises(UsageError):  # Bob may not demote Alice (the API says so first)
        chain.propose(BOB, members=v2.members, admins=admins[1:])
    with pytest.raises(NotGroupAdmin):  # nor remove Carol, promoted with him: equals
        chain.apply(signed(BOB, v2, everyone(ALICE, BOB), admins=admins[:2]))
    v3 = chain.propose(BOB, members=v2.members, admins=[ALICE.peer_id, CAROL.peer_id])
    assert chain.apply(v3).moved  # stepping down himself is his to do
    v4 = chain.propose(ALICE, members=v2.members, admins=admins)
    chain.apply(v4)  # promoted again, Bob starts over: junior to Carol now
    assert chain.seniority(v4)[BOB.peer_id] == 4
    v5 = chain.propose(CAROL, members=everyone(ALICE, CAROL), admins=[ALICE.peer_id, CAROL.peer_id])
    assert chain.apply(v5).moved


def test_a_members_leaving_never_cancels_an_admins_change() -> None:
    chain, first = start()
    leave = chain.propose(CAROL, members=everyone(ALICE, BOB), admins=[ALICE.peer_id])
    add = chain.propose(ALICE, members=everyone(ALICE, BOB, CAROL, DAVE), admins=[ALICE.peer_id])
    for order in ((leave, add), (add, leave)):
        other, _ = start()
        for record in order:
            other.apply(record)
        assert other.tip is add and other.lost == {leave.hash}  # Carol leaves again on top
    remove = chain.propose(ALICE, members=everyone(ALICE, BOB), admins=[ALICE.peer_id])
    chain.apply(remove)
    with pytest.raises(RevokedGroupRecord):  # removed already: its leaving is moot
        chain.apply(leave)
    assert chain.tip is remove and first.hash in chain.records


def test_rank_is_fixed_by_the_parent_and_the_signer_not_the_contents() -> None:
    v2, by_alice, _ = concurrent()
    members = list(by_alice.members)
    tickets = {rank(v2, signed(ALICE, v2, members, name=f"try {i}"))[0] for i in range(20)}
    assert len(tickets) == 1  # grinding the contents does not move an admin's ticket


def test_a_stored_chain_loads_and_verifies_again() -> None:
    v2, by_alice, by_bob = concurrent()
    chain, first = start()
    for record in (v2, by_alice, by_bob):
        chain.apply(record)
    loaded = GroupChain.load(chain.records.values(), chain.tip.hash)
    assert loaded.tip == chain.tip and loaded.lost == chain.lost
    assert loaded.path_to(first.hash) == [first]
    with pytest.raises(BrokenGroupChain):  # the tip's way back is missing a record
        GroupChain.load([first, by_alice], by_alice.hash)


def test_records_round_trip_and_refuse_non_canonical_bytes() -> None:
    _, first = start()
    assert decode_record(first.raw) == first and encode_record(first) == first.raw
    with pytest.raises(MalformedGroupRecord):
        decode_record(first.raw + b"\0")
    with pytest.raises(MalformedGroupRecord):
        decode_record(b"\2" + first.raw[1:])
    with pytest.raises(UsageError):
        decode_record("text")  # type: ignore[arg-type]
    unsorted = replace(first, members=first.members[::-1], raw=b"")
    with pytest.raises(UsageError):
        encode_record(unsorted)


def test_addresses_bind_a_message_to_one_record() -> None:
    _, first = start()
    address = wire.message_address(first)
    parsed = wire.parse_address(address)
    assert (parsed.group_id, parsed.kind, parsed.version, parsed.record_hash) == (
        first.group_id, wire.MESSAGE, 1, first.hash,
    )  # fmt: skip
    assert wire.parse_address(wire.control_address(first.group_id, wire.FETCH)).kind == wire.FETCH
    for bad in (first.group_id, address + "x", address.replace(".v1.", ".v01."), "grp-x.records"):
        with pytest.raises(ConversationRefused):
            wire.parse_address(bad)
    chain = wire.encode_chain([first])
    assert wire.decode_chain(chain, first.group_id) == [first]
    with pytest.raises(MalformedGroupRecord):
        wire.decode_chain(chain, derive_group_id(bytes(32), bytes(16)))
    with pytest.raises(MalformedGroupRecord):
        wire.decode_fetch(b"short")
