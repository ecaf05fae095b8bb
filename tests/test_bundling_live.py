"""Bundling between real aiortc peers: a burst shares frames and signed ACKs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from netutil import open_store, pair

pytestmark = pytest.mark.network


def test_a_burst_of_small_messages_shares_frames_and_acks(tmp_path: Path) -> None:
    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
        try:
            await pair(alice, bob)
            got: list[str] = []
            bob.on_message(lambda m: got.append(m.text))
            texts = [f"message {i:03d} " + "x" * 90 for i in range(60)]
            sent = [await alice.send_message(bob.peer_id, t) for t in texts]
            async with asyncio.timeout(20):
                for message in sent:
                    await alice.wait_delivered(message.message_id)
            assert got == texts  # each once, in order
            a = alice.network_store.session_stats(bob.peer_id)
            b = bob.network_store.session_stats(alice.peer_id)
            assert a is not None and b is not None
            assert a.messages_out == 60 and b.messages_in == 60
            assert a.bundles_out >= 1 and b.bundles_in == a.bundles_out
            # 60 messages, but far fewer message-carrying frames and signed ACKs.
            assert a.acks_in <= 5 and b.acks_out == a.acks_in
            assert [m.status for m in alice.history(bob.peer_id)] == ["delivered"] * 60
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_without_bundling_each_message_is_its_own_frame(tmp_path: Path) -> None:
    async def main() -> None:
        alice = open_store(tmp_path, "alice", bundle=False)
        bob = open_store(tmp_path, "bob", bundle=False)
        try:
            await pair(alice, bob)
            sent = [await alice.send_message(bob.peer_id, f"m{i}") for i in range(20)]
            for message in sent:
                await alice.wait_delivered(message.message_id, timeout=20)
            a = alice.network_store.session_stats(bob.peer_id)
            assert a is not None and a.bundles_out == 0 and a.messages_out == 20
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(asyncio.wait_for(main(), 60))
