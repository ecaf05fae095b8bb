"""Groups over real data channels: a lazy mesh through a signaling room (in one process;
tests/test_groups_acceptance.py runs four OS processes)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from netutil import open_store
from test_network import arun
from test_signaling import until

from volli_nb.net.signaling.server import SignalingServer

pytestmark = pytest.mark.network


def test_members_connect_lazily_and_every_copy_is_acknowledged(tmp_path: Path) -> None:
    async def main() -> None:
        async with SignalingServer(port=0) as server:
            names = ("alice", "bob", "carol")
            alice, bob, carol = stores = [open_store(tmp_path, n) for n in names]
            try:
                for store in stores:
                    await store.join("class", server.url, auto_pair=False)
                await until(lambda: len(alice.room_session.online) == 2)  # type: ignore[union-attr]
                await until(lambda: len(carol.room_session.online) == 2)  # type: ignore[union-attr]
                assert not any(s.network_store.connected_peers() for s in stores)  # nobody paired
                group = await alice.create_group("lab", [bob.peer_id, carol.peer_id])
                gid = group.group_id
                await until(lambda: bob.groups() and carol.groups(), timeout=20)
                sent = await alice.send_message(gid, "first")
                assert set(await alice.wait_delivered(sent.message_id, 20)) == {
                    bob.peer_id,
                    carol.peer_id,
                }
                assert not bob.network_store.is_connected(carol.peer_id)  # not needed yet
                reply = await carol.send_message(gid, "reply")  # carol needs bob now
                await carol.wait_delivered(reply.message_id, 20)
                assert bob.network_store.is_connected(carol.peer_id)
                for store in stores:
                    assert [m.text for m in store.history(gid)] == ["first", "reply"]
            finally:
                await asyncio.gather(*(s.close() for s in stores))

    arun(main, timeout=90)
