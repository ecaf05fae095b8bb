"""A pairing code or a room member's offer may name any ICE candidates, and aioice sends
checks to each: none we should not contact (multicast, broadcast, this host, a hostname to
look up over mDNS, port 0), and no more than a peer gathers, whatever hides them.  Nor
may it make us send in messages too small for a channel."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from aiortc.sdp import SessionDescription
from netutil import open_store
from sample_sdp import SDP

from volli_nb.base.errors import BadPairingCode, RefusedDescription
from volli_nb.core import sdp
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.pairing_code import decode_code, encode_code

GOOD = "a=candidate:f957a2332b1715da3b0ef8ba684454eb 1 udp 2130706431 192.0.2.2 50347 typ host"
HOSTILE = [
    "224.0.0.251 5353",  # mDNS multicast
    "ff02::fb 5353",
    "255.255.255.255 9",  # broadcast
    "0.0.0.0 6379",  # this host (Linux delivers it locally)
    "0.1.2.3 6379",
    "::ffff:239.1.2.3 9",  # multicast behind an IPv4-mapped address
    "192.0.2.2 0",
    "mallory.local 9",  # looked up by multicast DNS
]


def with_candidate(endpoint: str, sep: str = "\r\n") -> str:
    line = f"a=candidate:1 1 udp 2130706431 {endpoint} typ host"
    return SDP.replace(GOOD + "\r\n", GOOD + sep + line + "\r\n")


@pytest.mark.parametrize("endpoint", HOSTILE)
def test_a_remote_description_naming_an_address_we_must_not_contact_is_refused(
    endpoint: str,
) -> None:
    with pytest.raises(RefusedDescription, match="candidate"):
        sdp.check_remote(with_candidate(endpoint))


@pytest.mark.parametrize("endpoint", ["127.0.0.1 9", "::1 9", "10.0.0.2 9", "fd00::9 9"])
def test_loopback_and_private_candidates_are_kept(endpoint: str) -> None:
    sdp.check_remote(with_candidate(endpoint))


def test_more_candidates_than_a_peer_gathers_are_refused() -> None:
    many = "".join(
        f"a=candidate:{i} 1 udp 1 10.0.{i // 250}.{i % 250 + 1} 9 typ host\r\n" for i in range(600)
    )
    with pytest.raises(RefusedDescription, match="602 ICE candidates"):
        sdp.check_remote(SDP.replace(GOOD + "\r\n", many))
    kept = many.splitlines(True)[: sdp.MAX_REMOTE_CANDIDATES - 2]  # SDP has two more
    sdp.check_remote(SDP.replace(GOOD + "\r\n", "".join(kept)))


@pytest.mark.parametrize("sep", ["\u2028", "\x85", "\x1c", "\r"])
def test_a_candidate_after_a_line_break_only_aiortc_splits_at_is_seen(sep: str) -> None:
    hidden = with_candidate("224.0.0.251 5353", sep=f"\r\na=x{sep}")
    media = SessionDescription.parse(hidden).media[0]
    assert "224.0.0.251" in [c.ip for c in media.ice_candidates]  # aiortc would check it
    with pytest.raises(RefusedDescription, match=r"224\.0\.0\.251"):
        sdp.check_remote(hidden)


@pytest.mark.parametrize("endpoint", HOSTILE[:-1])  # a code carries IP addresses only
def test_a_pairing_code_naming_an_address_we_must_not_contact_is_refused(endpoint: str) -> None:
    code = encode_code("offer", with_candidate(endpoint), Identity.generate().public)
    with pytest.raises(BadPairingCode, match="refused: candidate 2: "):
        decode_code(code)


@pytest.mark.network
def test_a_room_members_offer_with_a_multicast_candidate_is_refused_and_leaves_no_link(
    tmp_path: Path,
) -> None:
    """``rooms`` answers any member's offer: the offer must not make us send checks."""
    mallory = Identity.generate()

    async def main() -> None:
        bob, alice = open_store(tmp_path, "bob"), open_store(tmp_path, "alice")
        alice.add_contact(mallory.public, name="mallory")
        offer = (await bob.network_store.connect_to_peer(alice.peer_id)).sdp
        hostile = re.sub(r"127\.0\.0\.1 \d+ typ", "224.0.0.251 5353 typ", offer)
        assert hostile != offer
        with pytest.raises(RefusedDescription, match=r"224\.0\.0\.251"):
            await alice.network_store.connect_to_peer(mallory.peer_id, hostile)
        assert mallory.peer_id not in alice.network_store.peers
        await bob.close()
        await alice.close()

    asyncio.run(asyncio.wait_for(main(), 60))


@pytest.mark.parametrize("size", ["50", "-1", "1_0", "16383"])
def test_a_remote_description_taking_tiny_messages_is_refused(size: str) -> None:
    small = SDP.replace("a=max-message-size:262144", f"a=max-message-size:{size}")
    with pytest.raises(RefusedDescription, match="messages of at most"):
        sdp.check_remote(small)
    with pytest.raises(RefusedDescription, match="bad"):
        sdp.check_remote(SDP.replace("a=max-message-size:262144", "a=max-message-size:x"))
    for fine in ("0", "16384"):  # 0: any size
        sdp.check_remote(SDP.replace("a=max-message-size:262144", f"a=max-message-size:{fine}"))


def test_a_pairing_code_taking_tiny_messages_is_refused() -> None:
    small = SDP.replace("a=max-message-size:262144", "a=max-message-size:100")
    code = encode_code("answer", small, Identity.generate().public)
    with pytest.raises(BadPairingCode, match="refused: it takes messages of at most 100 bytes"):
        decode_code(code)


@pytest.mark.network
def test_an_answer_taking_tiny_messages_is_refused_and_the_offer_kept(tmp_path: Path) -> None:
    """Below a chunk header, the session could not be made when the channel opened: the
    error rose inside aiortc's callback, and the link died as "data channel closed",
    its cause untold.  A little above it, every frame left in chunks of a few bytes."""

    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
        alice.add_contact(bob.identity.public, name="bob")
        bob.add_contact(alice.identity.public, name="alice")
        offer = await alice.network_store.connect_to_peer(bob.peer_id)
        answer = (await bob.network_store.connect_to_peer(alice.peer_id, offer.sdp)).sdp
        tiny = re.sub(r"a=max-message-size:\d+", "a=max-message-size:64", answer)
        assert tiny != answer
        with pytest.raises(RefusedDescription, match="at most 64 bytes"):
            await alice.network_store.accept_answer(bob.peer_id, tiny)
        await alice.network_store.accept_answer(bob.peer_id, answer)  # the offer still holds
        await asyncio.gather(
            alice.wait_connected(bob.peer_id, 20), bob.wait_connected(alice.peer_id, 20)
        )
        await bob.close()
        await alice.close()

    asyncio.run(asyncio.wait_for(main(), 60))
