"""The acceptance run for network conditions: 1,000 messages over a lossy, slow link.

By default 200 ms round trip and 5 % loss each way (the seed's
``--latency=200 --packet-loss=5``); pytest's ``--latency``/``--packet-loss`` override it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import netutil
import pytest
from netutil import open_store

from volli_nb.lab.relay import Conditions, impaired_pair

pytestmark = [pytest.mark.network, pytest.mark.slow, pytest.mark.timeout(400)]

ACCEPTANCE = Conditions(latency_ms=100, loss=0.05, seed=7)


def test_a_thousand_messages_arrive_exactly_once_and_in_order(tmp_path: Path) -> None:
    conditions = netutil.CONDITIONS if netutil.CONDITIONS.active else ACCEPTANCE

    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
        relay = await impaired_pair(alice, bob, conditions, timeout=60)
        try:
            to_bob = [f"a→b {i:04d} " + "x" * 90 for i in range(700)]
            to_alice = [f"b→a {i:04d} " + "y" * 90 for i in range(300)]
            at_bob: list[str] = []
            at_alice: list[str] = []
            bob.on_message(lambda m: at_bob.append(m.text))
            alice.on_message(lambda m: at_alice.append(m.text))
            started = time.monotonic()
            sent_a, sent_b = await asyncio.gather(
                asyncio.gather(*[alice.send_message(bob.peer_id, t) for t in to_bob]),
                asyncio.gather(*[bob.send_message(alice.peer_id, t) for t in to_alice]),
            )
            for store, sent in ((alice, sent_a), (bob, sent_b)):
                for message in sent:
                    await store.wait_delivered(message.message_id, timeout=300)
            seconds = time.monotonic() - started
            # Exactly once and in order, as the handlers saw them and as stored.
            assert at_bob == to_bob and at_alice == to_alice
            assert [
                m.text for m in bob.history(alice.peer_id) if m.sender == alice.peer_id
            ] == to_bob
            assert [
                m.text for m in alice.history(bob.peer_id) if m.sender == bob.peer_id
            ] == to_alice
            assert alice.message_queue.get_pending() == [] == bob.message_queue.get_pending()
            # The link really was lossy, and the session saw no false timeouts.
            dropped = sum(s.dropped for s in relay.stats.values())
            datagrams = sum(s.sent for s in relay.stats.values())
            assert conditions.loss == 0 or dropped > 0
            for store, other in ((alice, bob), (bob, alice)):
                stats = store.network_store.session_stats(other.peer_id)
                assert stats is not None and stats.timeouts == 0
            print(
                f"\n1,000 messages in {seconds:.1f} s under {2 * conditions.latency_ms:g} ms RTT, "
                f"{100 * conditions.loss:g} % loss: {dropped}/{datagrams} datagrams dropped"
            )
        finally:
            await asyncio.gather(alice.close(), bob.close())
            relay.close()

    asyncio.run(asyncio.wait_for(main(), 380))
