"""Issue 12 item 6: what a hostile client could do to ``volli-signal``, one test per attack.

Each test runs against the in-memory backend and against the Redis backplane
with the attacker and the victim on two servers sharing one real engine, so
the bounds hold across processes too.  Every docstring says how the code
before this change failed the test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from engine import Engine, require_engine
from test_network import arun
from test_signaling import Recorder, raw_register, until
from websockets.asyncio.client import connect

from volli_nb.core.crypto.identity import Identity
from volli_nb.net.signaling.admission import Admission
from volli_nb.net.signaling.backend import Limits, SignalingBackend
from volli_nb.net.signaling.client import SignalingClient
from volli_nb.net.signaling.connection import CLOSE_REFUSED
from volli_nb.net.signaling.memory import MemoryBackend
from volli_nb.net.signaling.redis_backend import RedisBackend
from volli_nb.net.signaling.server import SignalingServer
from volli_nb.net.signaling.wire import SignalingError

pytestmark = pytest.mark.network


@pytest.fixture(params=["memory", "redis"])
def kind(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        yield None
        return
    require_engine()
    running = Engine(tmp_path).start()
    yield running
    running.stop()


@asynccontextmanager
async def two_servers(
    engine: Engine | None, limits: Limits
) -> AsyncIterator[tuple[SignalingServer, SignalingServer]]:
    """The attacker's server and the victim's: one server in memory, two on one engine."""
    if engine is None:
        async with SignalingServer(port=0, backend=MemoryBackend(limits=limits)) as one:
            yield one, one
        return
    backends: list[SignalingBackend] = [RedisBackend(engine.url, limits=limits) for _ in "ab"]
    async with (
        SignalingServer(port=0, backend=backends[0]) as first,
        SignalingServer(port=0, backend=backends[1]) as second,
    ):
        yield first, second


async def connected(url: str, room: str | None = None) -> tuple[SignalingClient, Recorder]:
    recorder = Recorder()
    client = await SignalingClient(Identity.generate(), url, recorder, reconnect=False).connect()
    if room is not None:
        await client.join(room)
    return client, recorder


def errors(recorder: Recorder) -> list[str]:
    return [f["code"] for f in recorder.frames if f.get("type") == "error"]


def answers(recorder: Recorder) -> list[dict[str, Any]]:
    """What a signal is answered with (presence frames aside)."""
    return [f for f in recorder.frames if f.get("type") in ("queued", "error")]


async def went_away(
    url: str, room: str, backend: SignalingBackend, member: str, identity: Identity | None = None
) -> str:
    """A peer that was in ``room`` with ``member`` and went away (disconnected): whom
    ``member`` may queue signals for, for ``recent_ttl`` (issue 26, item 5)."""
    identity = identity or Identity.generate()
    client = await SignalingClient(identity, url, Recorder(), reconnect=False).connect()
    await client.join(room)
    await client.close()
    async with asyncio.timeout(5):
        while identity.peer_id in await backend.members(room, member):
            await asyncio.sleep(0.01)
    return identity.peer_id


def test_attack_signal_to_a_made_up_id_is_refused_and_nothing_queued(kind: Engine | None) -> None:
    """Before: any ``to`` string was queued (64 frames per made-up id, for 30 s)."""

    async def main() -> None:
        async with two_servers(kind, Limits()) as (server, _):
            mallory, seen = await connected(server.url)
            for to in ("x", "../../etc", "A" * 16, "a" * 17, "é" * 16):
                await mallory.signal(to, {"kind": "offer", "sdp": "v=0"})
            await until(lambda: len(errors(seen)) == 5)
            assert set(errors(seen)) == {"bad-peer-id"}
            assert (await server.backend.counts()).queued == 0
            await mallory.close()

    arun(main)


def test_attack_queue_flood_is_capped_per_sender(kind: Engine | None) -> None:
    """Before: one cheap connection queued 64 frames of 48 KiB for each of any number of
    ids (~70 MiB held); now its queued bytes stop at the per-sender cap."""
    limits = Limits(max_queued_bytes_per_sender=100_000)

    async def main() -> None:
        async with two_servers(kind, limits) as (server, other):
            mallory, seen = await connected(server.url, "lab")
            mate = mallory.identity.peer_id
            away = [await went_away(other.url, "lab", server.backend, mate) for _ in range(6)]
            blob = {"kind": "offer", "sdp": "x" * 30_000}
            for peer_id in away:  # each to a different absent room-mate
                await mallory.signal(peer_id, blob)
            await until(lambda: len(answers(seen)) == 6)  # three "queued", three errors
            assert errors(seen) == ["queue-full"] * 3
            counts = await server.backend.counts()
            assert counts.queued == 3 and counts.queued_bytes <= limits.max_queued_bytes_per_sender
            await mallory.close()

    arun(main)


def test_attack_many_senders_cannot_exceed_the_total_queue_cap(kind: Engine | None) -> None:
    """Before: no total cap, so many identities (free to make) held unbounded memory.
    Since issue 26 a full server evicts the oldest frame of whoever holds most, so
    the total stays capped and a newcomer is not refused."""
    limits = Limits(max_queued_bytes=150_000)

    async def main() -> None:
        async with two_servers(kind, limits) as (server, other):
            clients = [await connected(url, "lab") for url in (server.url, other.url) * 3]
            mate = clients[0][0].identity.peer_id
            blob = {"kind": "offer", "sdp": "y" * 40_000}
            for client, _ in clients:
                away = await went_away(other.url, "lab", server.backend, mate)
                await client.signal(away, blob)
            await until(lambda: sum(len(answers(r)) for _, r in clients) == len(clients))
            refused = sum(len(errors(r)) for _, r in clients)
            counts = await server.backend.counts()
            assert counts.queued_bytes <= limits.max_queued_bytes
            assert (counts.queued, refused) == (3, 0)
            for client, _ in clients:
                await client.close()

    arun(main)


def test_attack_refused_join_creates_no_room_and_empty_rooms_go(kind: Engine | None) -> None:
    """Before: a join refused for too many rooms still created the room (a defaultdict
    entry), never removed; now limits are checked before a room exists."""
    limits = Limits(max_rooms_per_peer=2)

    async def main() -> None:
        async with two_servers(kind, limits) as (server, _):
            mallory, _seen = await connected(server.url)
            await mallory.join("one")
            await mallory.join("two")
            for n in range(5):
                with pytest.raises(SignalingError, match="too-many-rooms"):
                    await mallory.join(f"junk-{n}")
            assert (await server.backend.counts()).rooms == 2
            await mallory.leave("one")
            assert (await server.backend.counts()).rooms == 1
            await mallory.close()
            await until_counts(server, rooms=0)

    arun(main)


async def until_counts(server: SignalingServer, timeout: float = 5.0, **expected: int) -> None:
    async with asyncio.timeout(timeout):
        while True:
            counts = await server.backend.counts()
            if all(getattr(counts, k) == v for k, v in expected.items()):
                return
            await asyncio.sleep(0.01)


def test_attack_queued_signal_is_dropped_once_sender_and_receiver_share_no_room(
    kind: Engine | None,
) -> None:
    """Before: whatever waited for an id was handed over at registration, from anyone,
    including a sender who had left every room the two shared."""

    async def main() -> None:
        async with two_servers(kind, Limits()) as (server, other):
            alice, _ = await connected(server.url, "lab")
            bob_identity = Identity.generate()
            bob = await SignalingClient(bob_identity, other.url, Recorder()).connect()
            await bob.join("lab")
            await bob.close()
            await until(lambda: bob_identity.peer_id not in other.online())
            await alice.signal(bob_identity.peer_id, {"kind": "offer", "sdp": "stale"})
            await until_counts(server, queued=1)
            await alice.leave("lab")  # alice and bob share no room now
            seen = Recorder()
            bob = await SignalingClient(bob_identity, other.url, seen).connect()
            await bob.join("lab")
            await bob.join("elsewhere")
            await bob.signal(Identity.generate().peer_id, {"probe": 1})  # a round trip
            await until(lambda: errors(seen) == ["not-in-room"])  # (to a stranger)
            assert not any(f["type"] == "signal" for f in seen.frames)
            await alice.close()
            await bob.close()

    arun(main)


def test_attack_list_shows_only_rooms_the_caller_is_in(kind: Engine | None) -> None:
    """Before: ``list`` returned the members of any room to anyone."""

    async def main() -> None:
        async with two_servers(kind, Limits()) as (server, other):
            alice, _ = await connected(other.url, "secret-room")
            ws, _ = await raw_register(server.url, Identity.generate())
            await ws.send(json.dumps({"type": "list", "room": "secret-room"}))
            reply = json.loads(await ws.recv())
            assert reply["type"] == "error" and reply["code"] == "not-in-room"
            assert alice.identity.peer_id not in json.dumps(reply)
            await ws.close()
            await alice.close()

    arun(main)


class _NoScan(dict[str, Any]):
    """A room table that refuses to be walked: a signal must not look at every room."""

    def _refuse(self, *args: object) -> Any:
        raise AssertionError("a signal scanned every room")

    __iter__ = items = keys = values = _refuse  # type: ignore[assignment]


def test_attack_signals_do_not_scan_every_room() -> None:
    """Before: each signal called ``rooms_of`` twice, walking every room on the server,
    so many cheap rooms made every signal slow.  The Redis backend reads two per-peer
    sets (``SINTER rooms:<a> rooms:<b>``) by construction."""

    async def main() -> None:
        backend = MemoryBackend()
        async with SignalingServer(port=0, backend=backend) as server:
            alice, alice_seen = await connected(server.url, "lab")
            bob, seen = await connected(server.url, "lab")
            away = await went_away(server.url, "lab", backend, alice.identity.peer_id)
            rooms, backend._rooms = backend._rooms, _NoScan(backend._rooms)
            await alice.signal(bob.identity.peer_id, {"kind": "offer", "sdp": "v=0"})
            await until(lambda: any(f["type"] == "signal" for f in seen.frames))
            await alice.signal(away, {"kind": "offer", "sdp": "v=0"})
            await until(lambda: any(f["type"] == "queued" for f in alice_seen.frames))
            backend._rooms = rooms
            await alice.close()
            await bob.close()

    arun(main)


async def flood_one_that_never_reads(server: SignalingServer, rounds: int) -> None:
    """Three room-mates send 40 KB signals to a member that never reads, ``rounds`` each,
    until the server drops it as too slow (which the test then waits for)."""
    victim = Identity.generate()
    ws, _ = await raw_register(server.url, victim)  # and never reads again
    await ws.send(json.dumps({"type": "join", "room": "lab"}))
    senders = [await connected(server.url, "lab") for _ in range(3)]
    blob = {"kind": "offer", "sdp": "q" * 40_000}
    for _round in range(rounds):
        for client, _ in senders:
            await client.signal(victim.peer_id, blob)
        if server.stats.too_slow:
            break
    await until(lambda: server.stats.too_slow == 1)
    assert victim.peer_id not in server.online()
    for client, _ in senders:
        await client.close()
    ws.transport.abort()  # it never reads, so it would not finish a close handshake


def test_attack_a_client_that_never_reads_is_dropped_not_buffered() -> None:
    """Before: every frame for a client that stopped reading waited in the server's
    memory (one pending send per frame), without bound.  Now its outbox holds at most
    ``max_outbox`` frames and then the connection is dropped."""

    async def main() -> None:
        async with SignalingServer(
            port=0, max_outbox=16, rate=1000, burst=1000, ping_interval=None
        ) as server:  # no keepalive: the outbox bound, not the ping timeout, must act
            await flood_one_that_never_reads(server, 400)  # ~48 MiB: more than sockets hold

    arun(main)


def test_attack_a_client_that_never_reads_is_dropped_after_a_few_mib_not_50_mb() -> None:
    """Before: the outbox was bounded in frames only, and a frame may be a 48 KiB signal:
    a client that stopped reading held up to 1,024 of them (50 MB) in the server's memory
    (here 900 signals, 36 MB, were all kept).  Now also ``MAX_OUTBOX_BYTES`` (4 MiB):
    it is dropped once what the sockets hold is full and 4 MiB more wait."""

    async def main() -> None:
        async with SignalingServer(port=0, rate=1000, burst=1000, ping_interval=None) as server:
            await flood_one_that_never_reads(server, 300)  # 900 signals: under 1,024 frames

    arun(main)


def test_attack_connections_that_never_register_are_bounded_per_address() -> None:
    """Before: any number of connections could sit unregistered for ``register_timeout``
    each (10 s), one file descriptor apiece, until the server ran out.  Now at most
    ``max_pending_per_host`` wait from one address: one more is answered "busy" and closed
    at once (a client tries again shortly), and a slot frees as soon as one registers or
    goes."""

    async def main() -> None:
        admission = Admission(rate=50, burst=100, max_pending=8, max_pending_per_host=2)
        async with SignalingServer(port=0, admission=admission) as server:
            waiting = [await connect(server.url) for _ in range(2)]
            for ws in waiting:
                assert json.loads(await ws.recv())["type"] == "challenge"
            extra = await connect(server.url)
            refused = json.loads(await extra.recv())
            assert refused["code"] == "busy" and "your address" in refused["message"]
            await extra.wait_closed()
            assert extra.close_code == CLOSE_REFUSED and admission.pending() == 2
            student = SignalingClient(Identity.generate(), server.url, Recorder(), reconnect=False)
            joining = asyncio.ensure_future(student.connect())  # told "busy": tries again
            await until(lambda: server.stats.errors >= 3)
            assert not joining.done()
            await waiting[0].close()  # a slot frees: the student gets in
            assert (await joining).connected.is_set() and admission.pending() == 1
            await student.close()
            await waiting[1].close()
            await until(lambda: admission.pending() == 0)

    arun(main)
