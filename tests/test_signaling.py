"""volli-signal: registration by signature, presence, limits, relay and queueing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from test_network import arun
from websockets.asyncio.client import ClientConnection, connect

from volli_nb.core.crypto.identity import Identity
from volli_nb.net.signaling.client import SignalingClient
from volli_nb.net.signaling.server import SignalingServer
from volli_nb.net.signaling.wire import sign_challenge

pytestmark = pytest.mark.network


async def raw_register(
    url: str, identity: Identity, *, signer: Identity | None = None
) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await connect(url)
    challenge = json.loads(await ws.recv())
    await ws.send(
        json.dumps(
            {
                "type": "register",
                "identity": identity.public.to_json(),
                "signature": sign_challenge(
                    signer or identity, bytes.fromhex(challenge["nonce"]), challenge["server"]
                ),
            }
        )
    )
    return ws, json.loads(await ws.recv())


class Recorder:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def __call__(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)

    def presence(self) -> list[tuple[str, str]]:
        return [
            (f["event"], f.get("peer", {}).get("peer_id") or f.get("peer_id"))
            for f in self.frames
            if f.get("type") == "presence"
        ]


async def until(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def test_impersonation_is_refused_and_reconnection_is_immediate() -> None:
    async def main() -> None:
        async with SignalingServer(port=0) as server:
            victim, mallory = Identity.generate(), Identity.generate()
            ws, reply = await raw_register(server.url, victim, signer=mallory)
            assert reply["type"] == "error" and reply["code"] == "not-yours"
            await ws.wait_closed()
            first, ok = await raw_register(server.url, victim)
            assert ok == {"type": "registered", "peer_id": victim.peer_id}
            second, again = await raw_register(server.url, victim)  # no "id taken" wait
            assert again["type"] == "registered"
            replaced = json.loads(await first.recv())
            assert replaced["code"] == "replaced"
            await first.wait_closed()
            assert server.online() == [victim.peer_id]
            await second.close()

    arun(main)


def test_presence_join_leave_and_discovery() -> None:
    async def main() -> None:
        async with SignalingServer(port=0) as server:
            ids = [Identity.generate() for _ in range(3)]
            recs = [Recorder() for _ in ids]
            clients = [
                await SignalingClient(i, server.url, r).connect()
                for i, r in zip(ids, recs, strict=True)
            ]
            assert await clients[0].join("lab") == []
            members = await clients[1].join("lab")
            assert [m["peer_id"] for m in members] == [ids[0].peer_id]
            await clients[2].join("lab")
            await until(lambda: len(recs[0].presence()) == 2)
            assert recs[0].presence() == [("join", ids[1].peer_id), ("join", ids[2].peer_id)]
            await clients[2].close()
            await until(lambda: ("leave", ids[2].peer_id) in recs[1].presence())
            await clients[1].leave("lab")
            await until(lambda: ("leave", ids[1].peer_id) in recs[0].presence())
            assert await server.backend.members("lab", ids[0].peer_id) == [ids[0].peer_id]
            for c in clients[:2]:
                await c.close()

    arun(main)


def test_malformed_oversized_and_flooding_frames_get_error_frames() -> None:
    async def main() -> None:
        async with SignalingServer(port=0, rate=20, burst=20) as server:
            ident = Identity.generate()
            ws, _ = await raw_register(server.url, ident)
            bad = [
                "not json",
                "[]",
                '{"type":"join"}',
                '{"type":"nope"}',
                '{"type":"join","room":"a","room":"b"}',
                json.dumps({"type": "join", "room": "x" * 100}),
                json.dumps({"type": "ping", "extra": 1}),
                "x" * 70_000,
            ]
            codes = []
            for frame in bad:
                await ws.send(frame)
                codes.append(json.loads(await ws.recv())["code"])
            assert codes == ["malformed"] * 3 + [
                "unknown-type",
                "malformed",
                "bad-room",
                "malformed",
                "too-large",
            ]
            for _ in range(40):
                await ws.send('{"type":"ping"}')
            replies = [json.loads(await ws.recv()) for _ in range(40)]
            assert any(r.get("code") == "rate-limited" for r in replies)
            await ws.send("y" * 2_000_000)  # over the hard cap: this connection closes…
            await ws.wait_closed()
            ws2, ok = await raw_register(server.url, Identity.generate())  # …the server lives
            assert ok["type"] == "registered"
            await ws2.close()
            await ws.close()

    arun(main)


def test_signals_are_relayed_and_queued_for_a_peer_briefly_away() -> None:
    async def main() -> None:
        async with SignalingServer(port=0) as server:
            a, b = Identity.generate(), Identity.generate()
            ra, rb = Recorder(), Recorder()
            ca = await SignalingClient(a, server.url, ra).connect()
            cb = await SignalingClient(b, server.url, rb).connect()
            await ca.join("r")
            await cb.join("r")
            await ca.signal(b.peer_id, {"kind": "offer", "sdp": "v=0"})
            await until(lambda: any(f["type"] == "signal" for f in rb.frames))
            signal = next(f for f in rb.frames if f["type"] == "signal")
            assert signal == {
                "type": "signal",
                "from": a.peer_id,
                "data": {"kind": "offer", "sdp": "v=0"},
            }
            await cb.close()
            await until(lambda: b.peer_id not in server.online())
            await ca.signal(b.peer_id, {"kind": "answer", "sdp": "later"})
            await until(lambda: any(f["type"] == "queued" for f in ra.frames))
            rb2 = Recorder()
            cb2 = await SignalingClient(b, server.url, rb2).connect()
            assert (await server.backend.counts()).queued == 1  # waits for a shared room
            await cb2.join("r")
            await until(lambda: any(f["type"] == "signal" for f in rb2.frames))
            assert (await server.backend.counts()).queued == 0
            await ca.close()
            await cb2.close()

    arun(main)
