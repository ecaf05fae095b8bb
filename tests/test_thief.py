"""The thief's tools (lab/thief.py) on one in-process session: a copied live state reads
along for one round trip, in both directions, and nothing from before the copy."""

from __future__ import annotations

import random

import pytest

from volli_nb.core.crypto.envelope_wire import parse_bundle
from volli_nb.core.crypto.ratchet_state import decode_state, encode_state
from volli_nb.lab.channel_pair import ChannelPair, Letter
from volli_nb.lab.thief import read_along


def seeded(first_initiates: bool) -> ChannelPair:
    """A repeatable session in which the first side is the initiator, or the responder."""
    for seed in range(100):
        pair = ChannelPair(random=random.Random(seed).randbytes)
        if pair.keys[pair.names[0]].initiator == first_initiates:
            return pair
    raise AssertionError("no seed gives that role")


ROLES = pytest.mark.parametrize(
    "first_initiates", [True, False], ids=["a-initiates", "b-initiates"]
)


def run(pair: ChannelPair, turns: str) -> list[Letter]:
    """Each character a letter, delivered at once: 'a' from the first side, 'b' the other."""
    letters = []
    for turn in turns:
        letter = pair.send(pair.names["ab".index(turn)], f"{turn}{len(letters)}")
        assert pair.deliver(letter) == letter.text
        letters.append(letter)
    return letters


def readable(pair: ChannelPair, copy: bytes, letters: list[Letter]) -> list[bool]:
    victim, other = (pair.identities[n] for n in pair.names[::-1])
    frames = [(pair.identities[x.sender].peer_id, parse_bundle(x.bundle)) for x in letters]
    return read_along(decode_state(copy), frames, victim=victim, other=other, now_ms=pair.now_ms)


@ROLES
def test_a_copy_taken_after_the_victim_received_reads_one_round_trip_both_ways(
    first_initiates: bool,
) -> None:
    pair = seeded(first_initiates)
    before = run(pair, "abab" + "a")  # bob just received: his new sending chain is unused
    copy = encode_state(pair.keys[pair.names[1]].state)
    after = run(pair, "babab")
    assert readable(pair, copy, after) == [True, True, False, False, False]
    assert readable(pair, copy, before) == [False] * len(before)  # nothing before the copy


@ROLES
def test_a_copy_taken_after_the_victim_sent_reads_the_next_message_only(
    first_initiates: bool,
) -> None:
    pair = seeded(first_initiates)
    run(pair, "abab")
    copy = encode_state(pair.keys[pair.names[1]].state)
    after = run(pair, "aabb" + "ab")
    # alice's two on the chain her step to bob's copied key made; then bob steps
    assert readable(pair, copy, after) == [True, True, False, False, False, False]
