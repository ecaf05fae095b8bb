"""Issue 26, items 4 and 5 on ``volli-signal``: one test per attack.

Item 4: a frame the parser could not handle (a non-finite number, half a surrogate
pair, a field of the wrong type) closed a socket through an untyped error: the
server's, on a client's frame; the client's receive loop, on a server's frame.  Item 5:
the queues for peers that are away were shared by strangers, so fresh identities
filled them and a stranger's tiny signals evicted a room-mate's offer.  The queue tests
run against the memory backend and against two servers sharing one Redis engine.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from test_network import arun
from test_signal_hardening import answers, connected, errors, kind, two_servers, went_away
from test_signaling import Recorder, raw_register, until
from websockets.asyncio.server import ServerConnection, serve

from volli_nb.app.messages_store import MessagesStore
from volli_nb.base.errors import TransportClosed
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.netconfig import NetworkConfig
from volli_nb.net.signaling.backend import Limits
from volli_nb.net.signaling.client import SignalingClient
from volli_nb.net.signaling.server import SignalingServer
from volli_nb.net.signaling.turn import TurnIssuer
from volli_nb.net.signaling.wire import encode

pytestmark = pytest.mark.network
__all__ = ["kind"]  # the backend fixture, from test_signal_hardening


# --- item 4: a parser that lets an untyped exception out -----------------------------------

HOSTILE_CLIENT_FRAMES = [
    '{"type":"signal","to":"%s","data":{"x":1e999}}',  # Python reads it as infinity
    '{"type":"signal","to":"%s","data":{"x":NaN}}',
    '{"type":"signal","to":"%s","data":{"x":"\\ud800"}}',  # half a surrogate pair
    '{"type":"join","room":"\\udfff"}',
]


@pytest.mark.parametrize("raw", HOSTILE_CLIENT_FRAMES, ids=["1e999", "nan", "surrogate", "room"])
def test_attack_a_frame_the_parser_cannot_handle_closes_the_senders_socket(raw: str) -> None:
    """Before: ``1e999`` parsed as infinity, and writing it back (to measure the signal)
    raised a bare ValueError that ended the connection; half a surrogate pair did the
    same.  Now the frame is refused with an error frame and the socket stays open."""

    async def main() -> None:
        async with SignalingServer(port=0) as server:
            ws, _ = await raw_register(server.url, Identity.generate())
            frame = raw % Identity.generate().peer_id if "%s" in raw else raw
            await ws.send(frame)
            reply = json.loads(await ws.recv())
            assert reply["type"] == "error" and reply["code"] in ("malformed", "bad-room")
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await ws.recv()) == {"type": "pong"}  # still connected
            assert server.stats.errors == 1
            await ws.close()

    arun(main)


HOSTILE_SERVER_FRAMES = [
    "[1]",
    "not json",
    '{"type": 5}',
    '{"type": "error", "request": ["join"], "code": "x"}',
    '{"type": "joined", "room": {"a": 1}, "members": []}',
    '{"type": "signal", "from": "x", "data": {"n": 1e999}}',
    '{"type": "presence", "room": "lab", "event": "sync", "members": "all"}',
    '{"type": "turn", "urls": "turn:h", "username": "u"}',
]


@asynccontextmanager
async def hostile_server(frames: list[str], challenge: str | None = None) -> AsyncIterator[str]:
    """A signaling server that registers anyone, then sends ``frames`` and a pong."""

    async def handler(ws: ServerConnection) -> None:
        await ws.send(challenge or json.dumps({"type": "challenge", "nonce": "ab" * 32,
                                                "server": "s"}))  # fmt: skip
        json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "registered", "peer_id": "x"}))
        for frame in frames:
            await ws.send(frame)
        await ws.send(json.dumps({"type": "pong"}))
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


def test_attack_a_malformed_frame_from_the_server_stops_the_client() -> None:
    """Before: a frame that was not a JSON object (or had a list where a string goes)
    raised AttributeError or TypeError in the client's receive loop, which died: no
    frame was delivered again.  Now each bad frame is dropped and the next arrives."""

    async def main() -> None:
        async with hostile_server(HOSTILE_SERVER_FRAMES) as url:
            seen = Recorder()
            client = await SignalingClient(
                Identity.generate(), url, seen, reconnect=False
            ).connect()
            await until(lambda: any(f["type"] == "pong" for f in seen.frames))
            assert [f["type"] for f in seen.frames] == ["pong"]
            assert client.connected.is_set() and client.turn is None
            await client.close()

    arun(main)


@pytest.mark.parametrize(
    "challenge",
    ['{"type": "challenge", "nonce": "zz", "server": "s"}', "[]", '{"type": "challenge"}'],
    ids=["bad-nonce", "not-an-object", "no-fields"],
)
def test_attack_a_malformed_challenge_raises_an_untyped_error(challenge: str) -> None:
    """Before: ValueError, AttributeError or KeyError out of ``connect()``."""

    async def main() -> None:
        async with hostile_server([], challenge) as url:
            client = SignalingClient(Identity.generate(), url, Recorder(), reconnect=False)
            with pytest.raises(TransportClosed, match="misbehaved"):
                await client.connect()

    arun(main)


# --- item 5: signaling queues shared by strangers ---------------------------------------


def test_attack_fresh_identities_fill_the_queue_for_peers_that_are_away(kind: Any) -> None:
    """Before: any identity could queue for any id that was away, so a few fresh ones
    filled the server's total and every offer to a peer that was away got
    ``queue-full``.  Now a stranger queues nothing, and the room-mate's offer waits."""
    blob = {"kind": "offer", "sdp": "m" * 40_000}
    queued_size = len(encode({"type": "signal", "from": "x" * 16, "data": blob}))
    limits = Limits(max_queued_bytes=2 * queued_size + 10)  # two blobs fill it

    async def main() -> None:
        async with two_servers(kind, limits) as (server, other):
            alice, alice_seen = await connected(server.url, "lab")
            bob = await went_away(other.url, "lab", server.backend, alice.identity.peer_id)
            flood = [await connected(url) for url in (server.url, other.url) * 2]
            for mallory, _ in flood:
                for to in (bob, Identity.generate().peer_id):
                    await mallory.signal(to, blob)
            await until(lambda: sum(len(answers(r)) for _, r in flood) == 2 * len(flood))
            await alice.signal(bob, {"kind": "offer", "sdp": "v=0"})
            await until(lambda: bool(answers(alice_seen)))
            answer = answers(alice_seen)[0]
            assert answer["type"] == "queued", f"the room-mate's offer got {answer.get('code')}"
            assert {code for _, r in flood for code in errors(r)} == {"not-in-room"}
            assert (await server.backend.counts()).queued == 1
            for client, _ in [(alice, None), *flood]:
                await client.close()

    arun(main)


FLOOD = 60  # tiny signals from each of two senders: more than a receiver's 64 together


def test_attack_many_tiny_signals_evict_a_roommates_queued_offer(kind: Any) -> None:
    """Before: a receiver's queue held 64 frames, the oldest evicted first, whoever sent
    them: 64 tiny signals from anyone pushed a room-mate's offer out.  Now a stranger
    is refused, and a room-mate that floods evicts only its own frames."""

    async def main() -> None:
        async with two_servers(kind, Limits()) as (server, other):
            alice, _ = await connected(server.url, "lab")
            bob_identity = Identity.generate()
            mate_id = alice.identity.peer_id
            bob = await went_away(other.url, "lab", server.backend, mate_id, bob_identity)
            await alice.signal(bob, {"kind": "offer", "sdp": "the real one"})
            await until_queued(server, 1)
            stranger, stranger_seen = await connected(other.url, "elsewhere")
            mate, mate_seen = await connected(other.url, "lab")  # recently shared: allowed
            for n in range(FLOOD):  # (within each connection's burst of 100 frames)
                await stranger.signal(bob, {"n": n})
                await mate.signal(bob, {"n": n})
            await until(lambda: len(answers(stranger_seen)) == len(answers(mate_seen)) == FLOOD)
            seen = Recorder()
            back = await SignalingClient(bob_identity, server.url, seen).connect()
            await back.join("lab")  # what waited for bob follows the reply to this join…
            await back.join("after")  # … and comes before the reply to this one
            offers = [f["data"] for f in seen.frames if f["type"] == "signal"]
            assert {"kind": "offer", "sdp": "the real one"} in offers, "the offer was evicted"
            assert set(errors(stranger_seen)) == {"not-in-room"}
            assert errors(mate_seen) == []  # queued, each pushing out only its own
            assert [o["n"] for o in offers if "n" in o] == list(range(FLOOD - 8, FLOOD))
            for client in (alice, stranger, mate, back):
                await client.close()

    arun(main)


async def until_queued(server: SignalingServer, n: int) -> None:
    async with asyncio.timeout(5):
        while (await server.backend.counts()).queued != n:
            await asyncio.sleep(0.01)


def test_a_full_queue_evicts_from_the_sender_holding_most_of_it(kind: Any) -> None:
    """Two room-mates share a receiver's queue (4 frames, 3 per pair): the one holding
    most pays each time, and the third room-mate's single offer stays."""
    limits = Limits(max_queue=4, max_queue_per_pair=3)

    async def main() -> None:
        async with two_servers(kind, limits) as (server, other):
            alice, _ = await connected(server.url, "lab")
            bob_identity = Identity.generate()
            mate_id = alice.identity.peer_id
            bob = await went_away(other.url, "lab", server.backend, mate_id, bob_identity)
            await alice.signal(bob, {"kind": "offer", "sdp": "alice"})
            await until_queued(server, 1)
            first, first_seen = await connected(server.url, "lab")
            second, second_seen = await connected(other.url, "lab")
            for client, seen, name in ((first, first_seen, "m1"), (second, second_seen, "m2")):
                for n in range(3):
                    await client.signal(bob, {"who": name, "n": n})
                await until(lambda seen=seen: len(answers(seen)) == 3)
            seen = Recorder()
            back = await SignalingClient(bob_identity, server.url, seen).connect()
            await back.join("lab")
            await until(lambda: sum(f["type"] == "signal" for f in seen.frames) == 4)
            kept = [f["data"] for f in seen.frames if f["type"] == "signal"]
            assert {"kind": "offer", "sdp": "alice"} in kept
            assert sorted((d["who"], d["n"]) for d in kept if "who" in d) == [
                ("m1", 2),
                ("m2", 1),
                ("m2", 2),
            ]
            for client in (alice, first, second, back):
                await client.close()

    arun(main)


# --- item 6: TURN URLs from a signaling server, checked before use ------------------------


@asynccontextmanager
async def joined_with_turn(
    urls: tuple[str, ...], config: NetworkConfig
) -> AsyncIterator[MessagesStore]:
    """A store that joined a room on a server handing out TURN at ``urls``, once the
    server's credentials were handled (used, or refused)."""
    store = MessagesStore.scratch("turn", config=config)
    issuer = TurnIssuer("secret", urls, ttl=600)
    async with SignalingServer(port=0, turn=issuer) as server:
        try:
            await store.join("lab", server.url, auto_pair=False)
            session = store.room_session
            assert session is not None
            await until(lambda: session.client.turn is not None or bool(turn_refusals(store)))
            yield store
        finally:
            await store.close()


def turn_refusals(store: MessagesStore) -> list[str]:
    return [e.message for e in store.log if "turn-refused" in e.message]


def turn_in_use(store: MessagesStore) -> list[str]:
    return [u for s in store.network_store.config.ice_servers for u in s.url_list()]


def test_attack_a_signaling_server_points_turn_into_the_users_own_network() -> None:
    """Attack: a signaling server (on loopback here) hands out TURN at a private address
    and at the cloud metadata address; aiortc would allocate there from the user's
    machine.  Before: used as given.  Now refused (nothing configured to allow them)."""

    async def main() -> None:
        urls = ("turn:10.9.8.7:3478", "turn:169.254.169.254:80")
        async with joined_with_turn(urls, NetworkConfig(loopback_only=True)) as store:
            assert turn_in_use(store) == [], "the server's TURN URLs are in use"
            (refusal,) = turn_refusals(store)
            assert "10.9.8.7" in refusal and "169.254.169.254" in refusal

    arun(main)


def test_attack_a_signaling_server_hands_out_turn_the_user_did_not_configure() -> None:
    """The user allowed TURN at turn.example.org only; the server hands out another
    host.  Before: used.  Now refused, and the allowed one is kept."""

    async def main() -> None:
        def pinned() -> NetworkConfig:
            config = NetworkConfig(loopback_only=True)
            config.turn_hosts = ("turn.example.org",)  # (an attribute the old code ignores)
            return config

        urls = ("turns:relay.evil.example:443?transport=tcp", "turns:turn.example.org:443")
        async with joined_with_turn(urls, pinned()) as store:
            assert turn_in_use(store) == ["turns:turn.example.org:443?transport=tcp"]
        async with joined_with_turn(urls[:1], pinned()) as store:
            assert turn_in_use(store) == [], "a TURN host the user did not allow is in use"
            assert "NetworkConfig(turn_hosts=" in turn_refusals(store)[0]

    arun(main)


def test_a_turn_host_nobody_configured_is_shown_before_use() -> None:
    async def main() -> None:
        urls = ("turns:turn.example.org:443",)
        async with joined_with_turn(urls, NetworkConfig(loopback_only=True)) as store:
            assert turn_in_use(store) == ["turns:turn.example.org:443?transport=tcp"]
            shown = [e for e in store.log if e.data.get("kind") == "turn.unpinned"]
            assert shown and "turn.example.org" in shown[0].message
            used = next(e for e in store.log if "TURN credentials from the server" in e.message)
            assert list(store.log).index(shown[0]) < list(store.log).index(used)

    arun(main)
