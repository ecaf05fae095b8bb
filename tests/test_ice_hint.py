"""``diagnose()`` and ``failure_hint()``: ICE that never tried a candidate pair is a
signaling or pairing problem; ICE that tried pairs and got no answer is one of NATs and
TURN.  Before (issue 22), an offer left unanswered by a signaling race read "ICE state is
'new'. ICE failed: no candidate pair worked … configure a TURN server".

Real aiortc peers on loopback; the answering side closes before the checks, so nothing
answers them."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable

import pytest
from test_signaling import until

from volli_nb.core.crypto.identity import Identity
from volli_nb.core.netconfig import NetworkConfig
from volli_nb.net import aiortc_compat
from volli_nb.net.network_store import NetworkStore

pytestmark = pytest.mark.network

TURN_ADVICE = "configure a TURN server"


def two_stores() -> tuple[NetworkStore, NetworkStore]:
    alice, bob = Identity.generate(), Identity.generate()
    book = {alice.peer_id: alice.public, bob.peer_id: bob.public}
    a, b = (
        NetworkStore(me, book.get, config=NetworkConfig(loopback_only=True)) for me in (alice, bob)
    )
    return a, b


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def candidates_at(port: int, sdp: str) -> str:
    return re.sub(r"^(a=candidate:(?:\S+ ){5})\d+ ", rf"\g<1>{port} ", sdp, flags=re.M)


async def answered_then_gone(
    a: NetworkStore, b: NetworkStore, edit: Callable[[str], str] = lambda sdp: sdp
) -> str:
    """A real offer and answer, after which the answering side closes.  Its own checks go
    to a closed port, so none reaches us first (that would be a pair we tried)."""
    bob = b.identity.peer_id
    offer = await a.connect_to_peer(bob)
    answer = await b.connect_to_peer(a.identity.peer_id, candidates_at(closed_port(), offer.sdp))
    await b.disconnect()
    await a.accept_answer(bob, edit(answer.sdp))
    return bob


def test_an_unanswered_offer_is_a_signaling_problem_not_a_turn_one() -> None:
    async def main() -> None:
        a, b = two_stores()
        await a.connect_to_peer(b.identity.peer_id)
        hint = a.diagnose(b.identity.peer_id)
        assert hint.startswith("ICE state is 'new'. ICE never started: our offer was not answered")
        assert "signaling" in hint and TURN_ADVICE not in hint
        await a.disconnect()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_checks_sent_and_unanswered_get_the_nat_and_turn_advice() -> None:
    async def main() -> None:
        a, b = two_stores()
        bob = await answered_then_gone(a, b)
        pc = a.peers[bob]

        def tried() -> bool:
            checks = aiortc_compat.ice_checks(pc)
            return checks is not None and checks.tried > 0

        await until(tried)
        hint = a.diagnose(bob)
        assert hint.startswith("ICE state is 'checking'. ICE failed: no candidate pair worked")
        assert TURN_ADVICE in hint and "never started" not in hint
        await a.disconnect()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_a_peer_whose_candidates_pair_with_none_of_ours_never_starts_ice() -> None:
    """The answer's only candidate is IPv6 and ours IPv4: the check list is empty, aioice
    fails at once, and the link is dropped with the reason."""

    def ipv6_only(sdp: str) -> str:
        return re.sub(r"^(a=candidate:(?:\S+ ){4})127\.0\.0\.1 ", r"\1::1 ", sdp, flags=re.M)

    async def main() -> None:
        a, b = two_stores()
        bob = await answered_then_gone(a, b, ipv6_only)
        await until(lambda: bob in a.failures)
        checks = aiortc_compat.ice_checks(a.peers[bob]) if bob in a.peers else None
        assert checks is None or checks.tried == 0
        hint = a.diagnose(bob)
        assert hint.startswith("ICE never started: none of the peer's 1 candidate(s) pairs")
        assert TURN_ADVICE not in hint
        await a.disconnect()

    asyncio.run(asyncio.wait_for(main(), 30))
