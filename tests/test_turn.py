"""TURN through a real coturn: relay-only peers connect over a relay/relay pair."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from coturn import PASSWORD, USER, coturn
from netutil import open_store, pair
from test_network import arun

from volli_nb.base.errors import TurnAuthFailed
from volli_nb.core.netconfig import IceServer

pytestmark = pytest.mark.network


@pytest.mark.clean_link("relay-only through coturn: the impairment relay needs host candidates")
def test_relay_only_peers_connect_through_coturn(tmp_path: Path) -> None:
    with coturn(tmp_path) as turn:

        async def main() -> None:
            alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
            for store in (alice, bob):
                store.network_store.set_configuration(
                    [IceServer(turn.url, USER, PASSWORD)], relay_only=True
                )
            await pair(alice, bob)
            view = alice.network_store.candidates(bob.peer_id)
            assert {c.type for c in view.local} == {"relay"}
            assert view.selected is not None
            assert (view.selected[0].type, view.selected[1].type) == ("relay", "relay")
            sent = await alice.send_message(bob.peer_id, "relayed")
            back = await bob.send_message(alice.peer_id, "relayed back")
            await alice.wait_delivered(sent.message_id)
            await bob.wait_delivered(back.message_id)
            assert sorted(m.text for m in alice.history(bob.peer_id)) == ["relayed", "relayed back"]
            await asyncio.gather(alice.close(), bob.close())

        arun(main)


def test_wrong_turn_credentials_fail_with_a_clear_message(tmp_path: Path) -> None:
    with coturn(tmp_path) as turn:

        async def main() -> None:
            alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
            for store in (alice, bob):
                store.network_store.set_configuration(
                    [IceServer(turn.url, USER, "wrong")], relay_only=True
                )
            with pytest.raises(TurnAuthFailed, match="refused the credentials") as caught:
                await pair(alice, bob, timeout=15)
            assert turn.url in str(caught.value)  # the server it names
            await asyncio.gather(alice.close(), bob.close())

        arun(main)
