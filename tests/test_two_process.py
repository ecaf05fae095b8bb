"""Peers in separate OS processes: pairing by codes, SIGKILL mid-burst, dead-peer detection."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from netutil import open_store
from test_network import arun

from volli_nb.app.messages_store import MessagesStore
from volli_nb.lab.peer_handle import PeerProcess, pair_with
from volli_nb.net.events import PeerOffline

pytestmark = pytest.mark.network


async def pair_processes(offer: PeerProcess, answer: PeerProcess) -> None:
    code = (await offer.request("create_code"))["code"]
    reply = (await answer.request("accept_code", code=code))["code"]
    await offer.request("complete", code=reply)
    await asyncio.gather(
        offer.request("wait_connected", peer_id=answer.peer_id),
        answer.request("wait_connected", peer_id=offer.peer_id),
    )


async def pair_with_process(store: MessagesStore, proc: PeerProcess) -> None:
    await pair_with(store, proc)


def test_two_processes_pair_by_codes_and_agree_on_history(tmp_path: Path) -> None:
    async def main() -> None:
        a = await PeerProcess(str(tmp_path / "a.sqlite"), "alice").start()
        b = await PeerProcess(str(tmp_path / "b.sqlite"), "bob").start()
        try:
            await pair_processes(a, b)
            for text in ("one", "two"):
                mid = (await a.request("send", to=b.peer_id, text=text))["message_id"]
                await a.wait_event("delivered", message_id=mid)
            mid = (await b.request("send", to=a.peer_id, text="three"))["message_id"]
            await b.wait_event("delivered", message_id=mid)
            a_hist = (await a.request("history", peer=b.peer_id))["messages"]
            b_hist = (await b.request("history", peer=a.peer_id))["messages"]
            assert [m["text"] for m in a_hist] == ["one", "two", "three"]
            assert [m["message_id"] for m in a_hist] == [m["message_id"] for m in b_hist]
            assert [m["status"] for m in a_hist] == ["delivered", "delivered", "received"]
            assert [m["status"] for m in b_hist] == ["received", "received", "delivered"]
        finally:
            await asyncio.gather(a.quit(), b.quit())

    arun(main, timeout=90)


def test_receiver_killed_mid_burst_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        alice = open_store(tmp_path, "alice")
        bob = await PeerProcess(str(tmp_path / "bob.sqlite"), "bob").start()
        try:
            await pair_with_process(alice, bob)
            received: list[str] = []

            async def burst() -> list[bytes]:
                ids = []
                for i in range(200):
                    ids.append((await alice.send_message(bob.peer_id, f"burst {i}")).message_id)
                    await asyncio.sleep(0.002)
                return ids

            sender = asyncio.ensure_future(burst())
            while len(received) < 40:
                event = await bob.wait_event("received")
                received.append(event["message_id"])
            await bob.kill()
            ids = await sender
            first_life = set(received)
            bob = await PeerProcess(str(tmp_path / "bob.sqlite"), "bob").start()
            await pair_with_process(alice, bob)
            for mid in ids:
                await alice.wait_delivered(mid, timeout=60)
            history = (await bob.request("history", peer=alice.peer_id))["messages"]
            got = [m["message_id"] for m in history]
            assert len(got) == 200 and set(got) == {m.hex() for m in ids}
            while not bob.events.empty():
                event = bob.events.get_nowait()
                if event["event"] == "received":
                    assert event["message_id"] not in first_life, "shown twice"
            assert alice.message_queue.get_pending() == []
        finally:
            await bob.quit()
            await alice.close()

    arun(main, timeout=150)


def test_peer_killed_with_sigkill_is_offline_within_heartbeat_bound(tmp_path: Path) -> None:
    """A SIGKILLed peer is noticed within the configured bound, not aiortc's ~30 s.

    The margin comes from the configuration: the link is declared dead once nothing
    arrived from the peer for its silence limit (``dead_after`` on a quiet link), and the
    check runs once per heartbeat interval, so detection takes at most limit + interval
    (3 s at the defaults: the documented bound).  One more interval covers the kill
    signal's delivery and event-loop scheduling on a loaded machine."""

    async def main() -> None:
        alice = open_store(tmp_path, "alice")
        bob = await PeerProcess(str(tmp_path / "bob.sqlite"), "bob").start()
        try:
            await pair_with_process(alice, bob)
            offline: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            alice.network_store.on_event(
                lambda e: (
                    isinstance(e, PeerOffline)
                    and not offline.done()
                    and offline.set_result(time.monotonic())
                )
            )
            config = alice.network_store.config
            assert config.dead_after + config.heartbeat_interval <= 3.0  # the documented bound
            quality = alice.network_store.link_quality(bob.peer_id)
            assert quality is not None
            limit = quality.silence_limit(config.dead_after)
            assert limit == config.dead_after  # a quiet loopback link: nothing stretched it
            killed = time.monotonic()
            await bob.kill()
            seen = await asyncio.wait_for(offline, 20) - killed
            bound = limit + 2 * config.heartbeat_interval
            assert seen <= bound, f"dead peer noticed after {seen:.2f} s (bound {bound:.2f} s)"
        finally:
            await alice.close()

    arun(main, timeout=60)
