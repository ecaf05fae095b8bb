"""A student runs a pairing cell twice (notebooks 03 and 03b): nothing breaks, and what
cannot be done again says what happened instead of sending them back to the start."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from netutil import open_store
from test_network import arun

from volli_nb.base.errors import BadPairingCode
from volli_nb.core import pairing_code as pairing

pytestmark = pytest.mark.network


def test_answering_the_same_code_twice_gives_the_same_answer_and_keeps_the_link(
    tmp_path: Path,
) -> None:
    """B's "accept" cell run twice answered anew and closed the first answer's link: A,
    who had pasted the first answer, waited 15 s and was told to configure a TURN server.
    Run again after the connection opened, it cut the live connection."""

    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
        try:
            code = await alice.create_pairing_code()
            answer = await bob.accept_pairing_code(code)
            pc = bob.network_store.peers[alice.peer_id]
            assert await bob.accept_pairing_code(code) == answer  # the cell, run again
            assert bob.network_store.peers[alice.peer_id] is pc
            await alice.complete_pairing(answer)  # A pasted the answer printed first
            await asyncio.gather(
                alice.wait_connected(bob.peer_id, 15), bob.wait_connected(alice.peer_id, 15)
            )
            assert await bob.accept_pairing_code(code) == answer  # and once connected
            assert bob.network_store.is_connected(alice.peer_id)
            sent = await alice.send_message(bob.peer_id, "still here")
            await alice.wait_delivered(sent.message_id, timeout=15)
        finally:
            await asyncio.gather(alice.close(), bob.close())

    arun(main)


def test_completing_twice_returns_the_same_peer_and_changes_nothing(tmp_path: Path) -> None:
    """A's "complete" cell run twice (or the notebook run again from the top) said the
    answer matched no open offer and to start again with a new code, though the pairing
    had worked, and stopped the run there."""

    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
        try:
            answer = await bob.accept_pairing_code(await alice.create_pairing_code())
            assert await alice.complete_pairing(answer) == bob.peer_id
            link = alice.network_store._links[bob.peer_id]
            assert await alice.complete_pairing(answer) == bob.peer_id
            assert alice.network_store._links[bob.peer_id] is link
            await alice.wait_connected("bob", 15)  # the second paste changed nothing
            # Another answer from bob to the offer already completed: refused, saying why.
            parsed = pairing.decode_code(answer)
            other_sdp = bob.network_store.peers[alice.peer_id].localDescription.sdp.replace(
                "a=ice-ufrag:", "a=ice-ufrag:x", 1
            )
            again = pairing.encode_code("answer", other_sdp, bob.identity.public, "bob", parsed.ref)
            with pytest.raises(BadPairingCode, match=r"answered and applied already .*'bob'"):
                await alice.complete_pairing(again)
            assert alice.network_store._links[bob.peer_id] is link
        finally:
            await asyncio.gather(alice.close(), bob.close())

    arun(main)
