"""``volli-signal``: the WebSocket signaling server (rooms, presence, relay, queues).

Every connection starts with a challenge; the client proves its peer id by
signing it with the identity key the id is a fingerprint of.  The newest
authenticated connection for an id replaces the old one, so a client that
reconnects gets its id back at once.  Frames are size-, rate- and
room-limited, and every refusal is an error frame; a malformed frame never
takes the server down.

Run it with ``volli-signal`` (127.0.0.1:8765 by default) or in-process::

    server = await SignalingServer(port=0).start()
    url = server.url
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from volli_nb.base.errors import VolliError
from volli_nb.net.signaling.state import SignalingState
from volli_nb.net.signaling.wire import (
    SignalingError,
    error_frame,
    parse_client_frame,
    verify_registration,
)

log = logging.getLogger(__name__)

HARD_MAX_BYTES = 1024 * 1024  # websockets closes above this; we answer errors below it


@dataclass
class _Client:
    ws: ServerConnection
    peer_id: str = ""
    identity: dict[str, Any] = field(default_factory=dict)
    tokens: float = 0.0
    refilled: float = 0.0
    strikes: int = 0


@dataclass
class ServerStats:
    connections: int = 0
    registered: int = 0
    frames: int = 0
    errors: int = 0
    replaced: int = 0


class SignalingServer:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        state: SignalingState | None = None,
        register_timeout: float = 10.0,
        rate: float = 50.0,
        burst: float = 100.0,
        ping_interval: float = 5.0,
        ping_timeout: float = 10.0,
    ) -> None:
        self.host, self.port = host, port
        self.state = state or SignalingState()
        self.server_id = os.urandom(8).hex()
        self.register_timeout = register_timeout
        self.rate, self.burst = rate, burst
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        self.stats = ServerStats()
        self._clients: dict[str, _Client] = {}
        self._server: Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> SignalingServer:
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            max_size=HARD_MAX_BYTES,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        return self

    async def close(self) -> None:
        if self._sweeper:
            self._sweeper.cancel()
        if self._server:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def __aenter__(self) -> SignalingServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(5)
            self.state.sweep(time.monotonic())

    def online(self) -> list[str]:
        return list(self._clients)

    # --- one connection -----------------------------------------------------------

    async def _send(self, client: _Client, frame: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionClosed):
            await client.ws.send(json.dumps(frame))

    async def _handle(self, ws: ServerConnection) -> None:
        self.stats.connections += 1
        client = _Client(ws, tokens=self.burst, refilled=time.monotonic())
        try:
            if not await self._register(client):
                return
            async for message in ws:
                await self._on_frame(client, message)
        except ConnectionClosed:
            pass
        except Exception:  # the server must survive anything one client does
            log.exception("signaling connection failed")
        finally:
            await self._disconnect(client)

    async def _register(self, client: _Client) -> bool:
        nonce = os.urandom(32)
        await self._send(
            client, {"type": "challenge", "nonce": nonce.hex(), "server": self.server_id}
        )
        try:
            raw = await asyncio.wait_for(client.ws.recv(), self.register_timeout)
            frame = parse_client_frame(raw)
            if frame["type"] != "register":
                raise SignalingError("not-registered", "answer the challenge with 'register' first")
            identity = verify_registration(frame, nonce, self.server_id)
        except TimeoutError:
            await self._refuse(client, "timeout", "no registration within the time limit")
            return False
        except VolliError as exc:
            code = exc.code if isinstance(exc, SignalingError) else "not-yours"
            await self._refuse(client, code, f"registration refused: {exc}")
            return False
        client.peer_id, client.identity = identity.peer_id, identity.to_json()
        previous = self.state.claim(client.peer_id, client)
        self._clients[client.peer_id] = client
        self.stats.registered += 1
        if isinstance(previous, _Client):
            self.stats.replaced += 1
            await self._send(previous, error_frame("replaced", "a newer connection took this id"))
            with contextlib.suppress(Exception):
                await previous.ws.close(4000, "replaced by a newer connection")
        await self._send(client, {"type": "registered", "peer_id": client.peer_id})
        for frame in self.state.drain(client.peer_id, time.monotonic()):
            await self._send(client, frame)
        return True

    async def _refuse(self, client: _Client, code: str, message: str) -> None:
        self.stats.errors += 1
        await self._send(client, error_frame(code, message))
        with contextlib.suppress(Exception):
            await client.ws.close(4001, code)

    def _allow(self, client: _Client) -> bool:
        now = time.monotonic()
        client.tokens = min(self.burst, client.tokens + (now - client.refilled) * self.rate)
        client.refilled = now
        if client.tokens < 1:
            return False
        client.tokens -= 1
        return True

    async def _on_frame(self, client: _Client, message: str | bytes) -> None:
        self.stats.frames += 1
        try:
            if not self._allow(client):
                client.strikes += 1
                if client.strikes > 100:
                    await self._refuse(client, "rate-limited", "far too many frames; closing")
                    return
                raise SignalingError("rate-limited", f"more than {self.rate:g} frames/s; slow down")
            frame = parse_client_frame(message)
            await self._dispatch(client, frame)
        except SignalingError as exc:
            self.stats.errors += 1
            await self._send(client, error_frame(exc.code, str(exc)))

    async def _dispatch(self, client: _Client, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "ping":
            await self._send(client, {"type": "pong"})
        elif kind == "register":
            raise SignalingError("already-registered", "this connection is registered already")
        elif kind == "join":
            room = frame["room"]
            others = self.state.join(room, client.peer_id, client.identity)
            await self._send(client, {"type": "joined", "room": room, "members": others})
            await self._broadcast(
                room,
                client.peer_id,
                {"type": "presence", "room": room, "event": "join", "peer": client.identity},
            )
        elif kind == "leave":
            if self.state.leave(frame["room"], client.peer_id):
                await self._left(frame["room"], client.peer_id)
            await self._send(client, {"type": "left", "room": frame["room"]})
        elif kind == "list":
            room = frame["room"]
            await self._send(
                client, {"type": "members", "room": room, "members": self.state.members(room)}
            )
        elif kind == "signal":
            await self._relay(client, frame["to"], frame["data"])

    async def _relay(self, client: _Client, to: str, data: dict[str, Any]) -> None:
        """Route to a connected peer that shares a room; queue briefly for one that is away."""
        frame = {"type": "signal", "from": client.peer_id, "data": data}
        target = self._clients.get(to)
        if target is None:
            self.state.enqueue(to, frame, time.monotonic())
            await self._send(client, {"type": "queued", "to": to})
            return
        if not set(self.state.rooms_of(client.peer_id)) & set(self.state.rooms_of(to)):
            raise SignalingError("not-in-room", f"{to} shares no room with you; join one first")
        await self._send(target, frame)

    async def _broadcast(self, room: str, sender: str, frame: dict[str, Any]) -> None:
        targets = [
            self._clients[p] for p in self.state.members(room) if p != sender and p in self._clients
        ]
        await asyncio.gather(*(self._send(t, frame) for t in targets))

    async def _left(self, room: str, peer_id: str) -> None:
        await self._broadcast(
            room, peer_id, {"type": "presence", "room": room, "event": "leave", "peer_id": peer_id}
        )

    async def _disconnect(self, client: _Client) -> None:
        if not client.peer_id or not self.state.release(client.peer_id, client):
            return  # never registered, or replaced by a newer connection
        self._clients.pop(client.peer_id, None)
        for room in self.state.rooms_of(client.peer_id):
            self.state.leave(room, client.peer_id)
            await self._left(room, client.peer_id)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="volli-signal", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)

    async def run() -> None:
        server = await SignalingServer(host=args.host, port=args.port).start()
        print(f"volli-signal listening on {server.url}", flush=True)
        await asyncio.Future()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
