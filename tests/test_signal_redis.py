"""Issue 16: several real ``volli-signal`` processes on one real Redis/Valkey engine.

Timing bounds come from the processes' configured presence TTL (``TTL``) and
heartbeat (a third of it), never from how fast this machine happens to be.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from engine import Engine, engine, signal_processes
from netutil import open_store
from test_network import arun
from test_signal_hardening import answers
from test_signaling import Recorder, raw_register, until
from websockets.exceptions import ConnectionClosed

from volli_nb.core.crypto.identity import Identity
from volli_nb.net.signaling.backend import Joined, Restored, Sink
from volli_nb.net.signaling.client import SignalingClient
from volli_nb.net.signaling.redis_backend import RedisBackend
from volli_nb.net.signaling.server import SignalingServer
from volli_nb.net.signaling.wire import SignalingError

pytestmark = pytest.mark.network

TTL = 1.5  # --presence-ttl of the processes under test
HEARTBEAT = TTL / 3  # what the server derives from it


@pytest.fixture
def real_engine(tmp_path: Path) -> Iterator[Engine]:
    with engine(tmp_path) as running:
        yield running


class View(Recorder):
    """A client's idea of each room: the join reply, then presence events and syncs."""

    def __init__(self) -> None:
        super().__init__()
        self.rooms: dict[str, set[str]] = {}

    def __call__(self, frame: dict[str, Any]) -> None:
        super().__call__(frame)
        if frame.get("type") != "presence":
            return
        room = self.rooms.setdefault(frame["room"], set())
        if frame["event"] == "join":
            room.add(frame["peer"]["peer_id"])
        elif frame["event"] == "leave":
            room.discard(frame["peer_id"])
        elif frame["event"] == "sync":
            room.clear()
            room.update(m["peer_id"] for m in frame["members"])


async def member(url: str, room: str, identity: Identity | None = None) -> tuple[Any, View]:
    view = View()
    client = await SignalingClient(identity or Identity.generate(), url, view).connect()
    present = await client.join(room)
    view.rooms.setdefault(room, set()).update(m["peer_id"] for m in present)
    return client, view


def test_three_processes_share_presence_and_two_stores_pair_across_them(
    real_engine: Engine, tmp_path: Path
) -> None:
    with signal_processes(real_engine.url, 3) as procs:

        async def main() -> None:
            clients = [await member(p.url, "lab") for p in procs]
            ids = {c.identity.peer_id for c, _ in clients}
            for client, view in clients:
                await until(lambda v=view, c=client: v.rooms["lab"] == ids - {c.identity.peer_id})
            alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
            await alice.join("pair", procs[0].url)
            await bob.join("pair", procs[2].url)
            await asyncio.gather(
                alice.wait_connected(bob.peer_id), bob.wait_connected(alice.peer_id)
            )
            one = await alice.send_message(bob.peer_id, "from process 1's side")
            two = await bob.send_message(alice.peer_id, "from process 3's side")
            await alice.wait_delivered(one.message_id)
            await bob.wait_delivered(two.message_id)
            assert sorted(m.text for m in bob.history(alice.peer_id)) == [
                "from process 1's side",
                "from process 3's side",
            ]
            await asyncio.gather(alice.close(), bob.close(), *(c.close() for c, _ in clients))

        arun(main, timeout=90)


class SlowJoinReply(RedisBackend):
    """A real backend whose JOIN returns only once a signal for the joiner has reached
    this process: the window a loaded machine opens at random (the join script has run,
    so the room's members see the joiner and may offer at once, but this process has not
    yet sent the reply that tells the joiner who they are)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.signalled = asyncio.Event()

    async def start(self, sink: Sink, on_restored: Restored) -> None:
        def watched(peer_id: str, message: dict[str, Any]) -> None:
            sink(peer_id, message)
            if message["k"] == "sig":
                self.signalled.set()

        await super().start(watched, on_restored)

    async def join(self, room: str, peer_id: str) -> Joined:
        joined = await super().join(room, peer_id)
        await asyncio.wait_for(self.signalled.wait(), 10)
        return joined


def test_a_signal_never_overtakes_the_join_reply(real_engine: Engine) -> None:
    """Before: a signal reaching the joiner's process while its JOIN reply was on the way
    was sent at once, so the joiner read a signal from someone it did not know yet."""

    async def main() -> None:
        held = SlowJoinReply(real_engine.url)
        async with (
            SignalingServer(port=0, backend=RedisBackend(real_engine.url)) as first,
            SignalingServer(port=0, backend=held) as second,
        ):
            alice, alice_view = await member(first.url, "lab")
            bob = Identity.generate()
            ws, _ = await raw_register(second.url, bob)
            await ws.send(json.dumps({"type": "join", "room": "lab"}))
            await until(lambda: alice_view.rooms["lab"] == {bob.peer_id})
            await alice.signal(bob.peer_id, {"kind": "offer", "sdp": "v=0"})
            kinds: list[str] = []
            while not {"joined", "signal"} <= set(kinds):
                kinds.append(json.loads(await asyncio.wait_for(ws.recv(), 10))["type"])
            assert [k for k in kinds if k in ("joined", "signal")] == ["joined", "signal"]
            await ws.close()
            await alice.close()

    arun(main)


def test_an_offer_sent_while_the_join_reply_is_on_its_way_is_answered(
    real_engine: Engine, tmp_path: Path
) -> None:
    """The race seen once under load in the three-process test above: the offering side
    (the smaller peer id) sees the other join and offers before the other has read its
    join reply.  Before: the answering side refused the offer from a peer it had not
    pinned yet ("signal from … refused"), the offer stayed unanswered, and the offering
    side's ICE stayed 'new' until its 20 s pairing timeout."""

    async def main() -> None:
        one, two = open_store(tmp_path, "one"), open_store(tmp_path, "two")
        offerer, answerer = sorted((one, two), key=lambda s: s.peer_id)
        held = SlowJoinReply(real_engine.url)
        async with (
            SignalingServer(port=0, backend=RedisBackend(real_engine.url)) as first,
            SignalingServer(port=0, backend=held) as second,
        ):
            await offerer.join("pair", first.url)
            await answerer.join("pair", second.url)
            assert held.signalled.is_set()  # the offer did reach it before the reply
            await asyncio.gather(
                offerer.wait_connected(answerer.peer_id, 10),
                answerer.wait_connected(offerer.peer_id, 10),
            )
            assert [e.message for e in answerer.log.entries(text="refused")] == []
            await asyncio.gather(offerer.close(), answerer.close())

    arun(main)


def test_routing_uses_one_channel_per_peer_and_queues_for_the_absent(real_engine: Engine) -> None:
    """A signal is one PUBLISH to the receiver's channel, which only its process
    subscribes to; a peer that is away is known at once ("queued") and gets the
    signal when it is back, on any process."""
    with signal_processes(real_engine.url, 3) as procs:

        async def main() -> None:
            alice, _ = await member(procs[0].url, "lab")
            bob_identity = Identity.generate()
            bob, bob_view = await member(procs[1].url, "lab", bob_identity)
            engine_client = redis.Redis.from_url(real_engine.url, decode_responses=True)
            channel = f"volli:ch:{bob_identity.peer_id}"
            assert await engine_client.pubsub_numsub(channel) == [(channel, 1)]
            await alice.signal(bob_identity.peer_id, {"kind": "offer", "sdp": "v=0"})
            await until(lambda: any(f["type"] == "signal" for f in bob_view.frames))
            await bob.close()
            sent: list[dict[str, Any]] = []
            alice.on_frame = sent.append
            await wait_numsub(engine_client, channel, 0)
            await alice.signal(bob_identity.peer_id, {"kind": "answer", "sdp": "later"})
            await until(lambda: any(f["type"] == "queued" for f in sent))
            back, back_view = await member(procs[2].url, "lab", bob_identity)
            await until(lambda: any(f["type"] == "signal" for f in back_view.frames))
            signal = next(f for f in back_view.frames if f["type"] == "signal")
            assert signal["data"] == {"kind": "answer", "sdp": "later"}
            await engine_client.aclose()
            await asyncio.gather(alice.close(), back.close())

        arun(main)


async def wait_numsub(client: redis.Redis, channel: str, count: int) -> None:
    async with asyncio.timeout(5):
        while await client.pubsub_numsub(channel) != [(channel, count)]:
            await asyncio.sleep(0.01)


def test_newest_connection_wins_across_processes(real_engine: Engine) -> None:
    with signal_processes(real_engine.url, 2) as procs:

        async def main() -> None:
            victim = Identity.generate()
            watcher, watched = await member(procs[0].url, "lab")
            first, ok = await raw_register(procs[0].url, victim)
            await first.send(json.dumps({"type": "join", "room": "lab"}))
            assert ok["type"] == "registered"
            await until(lambda: watched.rooms["lab"] == {victim.peer_id})
            second, again = await raw_register(procs[1].url, victim)
            assert again["type"] == "registered"
            frames = []
            with contextlib.suppress(ConnectionClosed):  # until process 1 closes it
                while True:
                    frames.append(json.loads(await first.recv()))
            assert frames[-1]["code"] == "replaced"
            assert first.close_code == 4000
            # Process 0 lets go of the id's channel: it kept one per replaced id, and a
            # signal published while process 1 was gone counted it as delivered (lost).
            engine_client = redis.Redis.from_url(real_engine.url, decode_responses=True)
            await wait_numsub(engine_client, f"volli:ch:{victim.peer_id}", 1)
            await engine_client.aclose()
            await second.send(json.dumps({"type": "ping"}))
            assert json.loads(await second.recv()) == {"type": "pong"}
            # the id kept its room membership: nobody saw it leave
            assert watched.rooms["lab"] == {victim.peer_id}
            await second.close()
            await until(lambda: watched.rooms["lab"] == set())
            await watcher.close()

        arun(main)


def test_sigkill_of_a_process_removes_its_clients_within_the_bound(real_engine: Engine) -> None:
    """Bound: a killed process's clients keep their presence until their deadline (the
    TTL after the last heartbeat) and leave at the next sweep of a live process (one
    heartbeat later); the assertion allows one more heartbeat for scheduling."""
    bound = TTL + 2 * HEARTBEAT
    with signal_processes(real_engine.url, 3, "--presence-ttl", str(TTL)) as procs:

        async def main() -> None:
            watchers = [await member(procs[i].url, "lab") for i in (0, 2)]
            doomed = [await member(procs[1].url, "lab") for _ in range(2)]
            doomed_ids = {c.identity.peer_id for c, _ in doomed}
            for _, view in watchers:
                await until(lambda v=view: doomed_ids <= v.rooms["lab"])
            killed = time.monotonic()
            procs[1].kill()
            for _, view in watchers:
                await until(lambda v=view: not doomed_ids & v.rooms["lab"], timeout=bound + 5)
            elapsed = time.monotonic() - killed
            assert elapsed < bound, f"presence outlived a killed process by {elapsed:.2f} s"
            for client, _ in doomed:
                client.reconnect = False
            await asyncio.gather(*(c.close() for c, _ in watchers + doomed))

        arun(main)


def test_engine_restart_recovers_without_restarting_any_process(real_engine: Engine) -> None:
    """While the engine is down clients stay connected, requests get ``unavailable``
    error frames and nothing changes in their views; once it is back (empty: no
    persistence) each process re-registers its clients by itself, every client gets a
    ``sync`` of its rooms, a client that left meanwhile is gone, and relay works again."""
    with signal_processes(real_engine.url, 2, "--presence-ttl", str(TTL)) as procs:

        async def main() -> None:
            alice, alice_view = await member(procs[0].url, "lab")
            bob, bob_view = await member(procs[1].url, "lab")
            carol, _ = await member(procs[1].url, "lab")
            carol_id = carol.identity.peer_id
            await until(lambda: alice_view.rooms["lab"] == {bob.identity.peer_id, carol_id})
            real_engine.stop()
            with pytest.raises(SignalingError, match="unavailable"):
                await alice.join("another")
            await carol.close()  # leaves while nobody can record it
            assert alice_view.rooms["lab"] == {bob.identity.peer_id, carol_id}
            real_engine.start()
            await until(lambda: alice_view.rooms["lab"] == {bob.identity.peer_id}, timeout=15)
            await until(lambda: bob_view.rooms["lab"] == {alice.identity.peer_id}, timeout=15)
            assert any(f.get("event") == "sync" for f in alice_view.frames)
            await alice.signal(bob.identity.peer_id, {"kind": "offer", "sdp": "after"})
            await until(lambda: any(f["type"] == "signal" for f in bob_view.frames))
            late, _ = await member(procs[0].url, "lab")  # new registrations work again
            await until(lambda: late.identity.peer_id in bob_view.rooms["lab"])
            await asyncio.gather(alice.close(), bob.close(), late.close())

        arun(main, timeout=90)


def test_limits_hold_across_processes(real_engine: Engine) -> None:
    """Room size and the per-sender queue cap count every process's clients together."""
    extra = ("--max-room-size", "2", "--max-queued-bytes-per-sender", "70000")
    with signal_processes(real_engine.url, 3, *extra) as procs:

        async def main() -> None:
            a, _ = await member(procs[0].url, "small")
            b, _ = await member(procs[1].url, "small")
            c = await SignalingClient(Identity.generate(), procs[2].url, Recorder()).connect()
            with pytest.raises(SignalingError, match="room-full"):
                await c.join("small")
            sender = Identity.generate()
            watch, view = await member(procs[0].url, "q", sender)
            away = []
            for _ in range(4):  # room-mates that went away: the sender may queue for them
                gone, _ = await member(procs[1].url, "q")
                peer_id = gone.identity.peer_id
                await until(lambda p=peer_id: p in view.rooms.get("q", set()), timeout=10)
                await gone.close()
                await until(lambda p=peer_id: p not in view.rooms["q"], timeout=10)
                away.append(peer_id)
            await watch.close()
            blob = {"kind": "offer", "sdp": "z" * 30_000}
            seen = [Recorder(), Recorder()]
            for url, rec, to in zip((procs[0].url, procs[2].url), seen, (away[:2], away[2:]),
                                    strict=True):  # fmt: skip
                client = await SignalingClient(sender, url, rec, reconnect=False).connect()
                await client.join("q")
                for peer_id in to:
                    await client.signal(peer_id, blob)
                await until(lambda r=rec: len(answers(r)) == 2)
                await client.close()
            codes = [f.get("code", f["type"]) for r in seen for f in answers(r)]
            assert codes == ["queued", "queued", "queue-full", "queue-full"]
            await asyncio.gather(a.close(), b.close(), c.close())

        arun(main)
