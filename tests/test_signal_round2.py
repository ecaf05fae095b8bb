"""Issue 26, items 4 and 5 on ``volli-signal``: one test per attack.

Item 4: a frame the parser could not handle (a non-finite number, half a surrogate
pair, a field of the wrong type) closed a socket through an untyped error: the
server's, on a client's frame; the client's receive loop, on a server's frame.  Item 5:
the queues for peers that are away were shared by strangers, so fresh identities
filled them and a stranger's tiny signals evicted a room-mate's offer.  The queue tests
run against the memory backend and against two servers sharing one Redis engine.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from test_network import arun
from test_signaling import Recorder, raw_register, until
from websockets.asyncio.server import ServerConnection, serve

from volli_nb.base.errors import TransportClosed
from volli_nb.core.crypto.identity import Identity
from volli_nb.net.signaling.client import SignalingClient
from volli_nb.net.signaling.server import SignalingServer

pytestmark = pytest.mark.network


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
