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


def tried(store: NetworkStore, peer_id: str) -> Callable[[], bool]:
    """Whether ``store``'s ICE has sent a check to ``peer_id`` yet."""

    def sent() -> bool:
        checks = aiortc_compat.ice_checks(store.peers[peer_id])
        return checks is not None and checks.tried > 0

    return sent


def test_an_unanswered_offer_is_a_signaling_problem_not_a_turn_one() -> None:
    async def main() -> None:
        a, b = two_stores()
        await a.connect_to_peer(b.identity.peer_id)
        hint = a.diagnose(b.identity.peer_id)
        assert hint.startswith("ICE state is 'new'. ICE never started: our offer was not answered")
        assert "signaling" in hint and TURN_ADVICE not in hint
        await a.disconnect()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_checks_sent_and_unanswered_on_one_machine_ask_about_the_other_side() -> None:
    """Both ends on 127.0.0.1 (every notebook's scratch profile): the hint said to
    configure a TURN server, which cannot help there.  The NAT and TURN advice, where it
    applies, is tests/test_nat.py's (namespaces behind symmetric NATs)."""

    async def main() -> None:
        a, b = two_stores()
        bob = await answered_then_gone(a, b)
        await until(tried(a, bob))
        hint = a.diagnose(bob)
        assert hint.startswith("ICE state is 'checking'. No candidate pair has answered, and both")
        assert "is the other side still running" in hint
        assert TURN_ADVICE not in hint and "never started" not in hint
        await a.disconnect()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_an_answer_not_yet_applied_asks_whether_it_was_pasted() -> None:
    """Notebook 03b: B answered A's code and waits, and A has not pasted B's answer yet.
    B was told to configure a TURN server (on 127.0.0.1, where none can help)."""

    async def main() -> None:
        a, b = two_stores()
        alice = a.identity.peer_id
        offer = await a.connect_to_peer(b.identity.peer_id)
        await b.connect_to_peer(alice, offer.sdp)  # and a never takes the answer
        await until(tried(b, alice))
        hint = b.diagnose(alice)
        assert "has the other side pasted our answer code into complete_pairing()" in hint
        assert TURN_ADVICE not in hint
        await asyncio.gather(a.disconnect(), b.disconnect())

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
