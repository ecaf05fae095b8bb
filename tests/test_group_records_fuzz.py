"""Fuzzing the membership record decoder and the chain: any bytes give a record with
exactly one spelling, or a typed error; a chain offered anything stays as it was or
moves by the rules (never an untyped exception)."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_group_records import ALICE, BOB, CAROL, everyone, start

from volli_nb.base.errors import GroupError, PeerError
from volli_nb.core.groups import wire
from volli_nb.core.groups.record import decode_record, encode_record

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CHAIN, FIRST = start()
V2 = CHAIN.propose(ALICE, members=everyone(ALICE, BOB, CAROL), admins=[ALICE.peer_id, BOB.peer_id])
SEEDS = [FIRST.raw, V2.raw]


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int, extra: bytes) -> bytes:
    out = bytearray(data)
    for position, value in edits:
        if out:
            out[position % len(out)] = value
    return bytes(out[: max(0, len(out) - cut)]) + extra


def offer(data: bytes) -> None:
    """Decode, and if it decodes: one spelling, and the chain refuses or applies by type."""
    try:
        record = decode_record(data)
    except PeerError:
        return
    assert encode_record(record) == data
    chain = CHAIN.copy()
    before = (chain.tip, set(chain.records), set(chain.lost))
    try:
        chain.apply(record)
    except GroupError:
        assert (chain.tip, set(chain.records), set(chain.lost)) == before


@SETTINGS
@given(st.binary(max_size=600))
def test_random_bytes_decode_or_raise_typed(data: bytes) -> None:
    offer(data)


@SETTINGS
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
    st.integers(0, 8),
    st.binary(max_size=8),
)
def test_mutated_records_decode_or_raise_typed(
    seed: bytes, edits: list[tuple[int, int]], cut: int, extra: bytes
) -> None:
    offer(mutate(seed, edits, cut, extra))


@SETTINGS
@given(
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
    st.integers(0, 8),
    st.binary(max_size=8),
)
def test_records_messages_and_addresses_raise_typed(
    edits: list[tuple[int, int]], cut: int, extra: bytes
) -> None:
    body = mutate(wire.encode_chain([FIRST, V2]), edits, cut, extra)
    try:
        records = wire.decode_chain(body, FIRST.group_id)
    except PeerError:
        records = []
    assert all(r.group_id == FIRST.group_id for r in records)
    address = mutate(wire.message_address(V2).encode(), edits, cut, extra)
    with contextlib.suppress(PeerError):
        wire.parse_address(address.decode("ascii", errors="replace"))
