"""``volli-signal``: the WebSocket signaling server (rooms, presence, relay, queues).

Every connection starts with a challenge; the client proves its peer id by signing it
with the identity key the id is a fingerprint of.  The newest authenticated connection
for an id replaces the old one, on this process or another, so a client that reconnects
gets its id back at once.  Frames are size-, rate- and room-limited, and every refusal is
an error frame naming the request; a malformed frame never takes the server down.
Connections waiting to register are bounded too (:mod:`~volli_nb.net.signaling.admission`).

State lives behind :class:`~volli_nb.net.signaling.backend.SignalingBackend`:
in this process's memory by default, or on Redis/Valkey (``--redis URL``) so
that several processes serve one set of rooms.  With ``--certfile`` and
``--keyfile`` it speaks ``wss://``; with ``--turn-secret`` and ``--turn-url``
it hands every authenticated client time-limited TURN credentials and
renews them at half their life.

Run it with ``volli-signal`` (127.0.0.1:8765 by default) or in-process::

    server = await SignalingServer(port=0).start()  # then server.url
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from volli_nb.base.errors import VolliError
from volli_nb.net.signaling.admission import BURST, RATE, Admission, Verdict
from volli_nb.net.signaling.backend import BackplaneUnavailable, Joined, SignalingBackend
from volli_nb.net.signaling.connection import (
    CLOSE_REFUSED,
    CLOSE_TOO_SLOW,
    MAX_OUTBOX,
    Connection,
)
from volli_nb.net.signaling.memory import MemoryBackend
from volli_nb.net.signaling.turn import TurnIssuer
from volli_nb.net.signaling.wire import (
    SignalingError,
    encode,
    error_frame,
    parse_client_frame,
    presence_frame,
    verify_registration,
)

log = logging.getLogger(__name__)

HARD_MAX_BYTES = 1024 * 1024  # websockets closes above this; we answer errors below it
# No permessage-deflate: signaling frames are a few KiB of JSON, and each connection's zlib
# state (~50 KiB) outlives it.  websockets' protocol object and its parser generator form a
# reference cycle, so a closed connection is freed only by a full garbage collection, which
# Python 3.13 runs far less often than 3.11: the zlib state of whole waves of closed
# connections piled up there (27 → 48 → 66 → 81 MB).  Without it, what waits for the
# collector is a few KiB per connection.
COMPRESSION = None


@dataclass
class ServerStats:
    connections: int = 0
    registered: int = 0
    frames: int = 0
    errors: int = 0
    replaced: int = 0
    reregistered: int = 0
    too_slow: int = 0  # closed because their outbox was full


class SignalingServer:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        backend: SignalingBackend | None = None,
        ssl_context: ssl.SSLContext | None = None,
        turn: TurnIssuer | None = None,
        register_timeout: float = 10.0,
        rate: float = RATE,
        burst: float = BURST,
        ping_interval: float | None = 5.0,
        ping_timeout: float | None = 10.0,
        heartbeat: float | None = None,
        wall_clock: Callable[[], float] = time.time,
        max_outbox: int = MAX_OUTBOX,
        admission: Admission | None = None,  # else: rate and burst, default connection caps
    ) -> None:
        self.host, self.port = host, port
        self.backend = backend or MemoryBackend()
        self.ssl_context, self.turn, self.wall_clock = ssl_context, turn, wall_clock
        self.server_id = os.urandom(8).hex()
        self.register_timeout = register_timeout
        self.max_outbox, self.admission = max_outbox, admission or Admission(rate=rate, burst=burst)
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        # Presence deadlines are refreshed three times per TTL: one late beat is no loss.
        self.heartbeat = heartbeat or self.backend.limits.presence_ttl / 3
        self.stats = ServerStats()
        self._clients: dict[str, Connection] = {}  # peer id → its newest local connection
        self._conns: dict[str, Connection] = {}  # connection id → connection
        self._server: Server | None = None
        self._beat: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{self.host}:{self.port}"

    async def start(self) -> SignalingServer:
        await self.backend.start(self._deliver, self._restore_all)
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            max_size=HARD_MAX_BYTES,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            ssl=self.ssl_context,
            compression=COMPRESSION,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        self._beat = asyncio.get_running_loop().create_task(self._heartbeat())
        return self

    async def close(self) -> None:
        if self._beat:
            self._beat.cancel()
        if self._server:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)
        await self.backend.close()

    async def __aenter__(self) -> SignalingServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def online(self) -> list[str]:
        return list(self._clients)

    # --- what the backend hands us ------------------------------------------------

    def _deliver(self, peer_id: str, message: dict[str, Any]) -> None:
        kind = message["k"]
        if kind == "replaced":
            old = self._conns.get(message["conn"])
            if old is not None:
                self._replaced(old)
            return
        client = self._clients.get(peer_id)
        if client is None:
            return  # it went away after the frame was routed here
        if kind == "sig":
            client.push_signal(message["frame"])  # never ahead of a pending join reply
            return
        room = message["room"]
        if room in client.joining:  # our snapshot is on its way; decide after it
            client.joining[room].append(message)
        elif message["seq"] > client.rooms.get(room, 1 << 62):
            client.push(presence_frame(message))

    def _replaced(self, old: Connection) -> None:
        self.stats.replaced += 1
        self._conns.pop(old.conn, None)
        if self._clients.get(old.peer_id) is old:
            del self._clients[old.peer_id]
        old.kick_replaced()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                owned = {peer: c.conn for peer, c in self._clients.items()}
                missing, replaced = await self.backend.heartbeat(owned)
                for peer in replaced:
                    if (client := self._clients.get(peer)) is not None:
                        self._replaced(client)
                for peer in missing:
                    if (client := self._clients.get(peer)) is not None:
                        await self._restore(client)
                await self.backend.sweep()
            except BackplaneUnavailable as exc:
                log.debug("heartbeat skipped: %s", exc)
            except Exception:
                log.exception("signaling heartbeat failed")

    async def _restore_all(self) -> None:
        """The engine came back (perhaps empty): register our clients and rooms again."""
        for client in list(self._clients.values()):
            try:
                await self._restore(client)
            except BackplaneUnavailable:
                return  # gone again; the next recovery starts over

    async def _restore(self, client: Connection) -> None:
        if client.restoring or client.closing:
            return
        client.restoring = True
        try:
            await self._register_again(client)
        finally:
            client.restoring = False

    async def _register_again(self, client: Connection) -> None:
        self.stats.reregistered += 1
        if not await self.backend.claim(client.peer_id, client.conn, client.identity, reclaim=True):
            self._replaced(client)  # a newer connection registered meanwhile
            return
        for room in list(client.rooms):
            del client.rooms[room]
            try:
                joined = await self._join(client, room)
            except BackplaneUnavailable:
                client.rooms[room] = 0  # try again at the next recovery
                raise
            except SignalingError as exc:
                client.push(error_frame(exc.code, f"lost room {room!r}: {exc}", room=room))
                continue
            members = joined.members
            client.push({"type": "presence", "room": room, "event": "sync", "members": members})
            self._after_join(client, room, joined)
        for frame in await self.backend.drain(client.peer_id):
            client.push(frame)

    # --- one connection -----------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        self.stats.connections += 1
        client = Connection(ws, self.admission.budget(), self.max_outbox)
        host = str(ws.remote_address[0]) if ws.remote_address else ""
        try:
            if (busy := self.admission.enter(host)) is not None:
                await self._refuse(client, "busy", busy)
                return
            try:
                if not await self._register(client):
                    return
            finally:
                self.admission.leave(host)
            async for message in ws:
                await self._on_frame(client, message)
        except ConnectionClosed:
            pass
        except Exception:  # the server must survive anything one client does
            log.exception("signaling connection failed")
        finally:
            await self._disconnect(client)

    async def _register(self, client: Connection) -> bool:
        nonce = os.urandom(32)
        challenge = {"type": "challenge", "nonce": nonce.hex(), "server": self.server_id}
        await _send_now(client, challenge)
        try:
            raw = await asyncio.wait_for(client.ws.recv(), self.register_timeout)
            frame = parse_client_frame(raw)
            if frame["type"] != "register":
                raise SignalingError("not-registered", "answer the challenge with 'register' first")
            identity = verify_registration(frame, nonce, self.server_id)
            client.registered(identity, frame)
            await self.backend.claim(client.peer_id, client.conn, client.identity)
        except TimeoutError:
            await self._refuse(client, "timeout", "no registration within the time limit")
            return False
        except VolliError as exc:
            code = exc.code if isinstance(exc, SignalingError) else "not-yours"
            await self._refuse(client, code, f"registration refused: {exc}")
            return False
        self._conns[client.conn] = client
        previous = self._clients.get(client.peer_id)
        self._clients[client.peer_id] = client
        client.start_writer()
        self.stats.registered += 1
        client.push({"type": "registered", "peer_id": client.peer_id})
        self._send_turn(client)
        try:
            if previous is None:  # a local predecessor already routes this id here
                await self.backend.subscribe(client.peer_id)
            for queued in await self.backend.drain(client.peer_id):
                client.push(queued)
        except BackplaneUnavailable as exc:
            client.push(error_frame(exc.code, str(exc)))
        return True

    async def _refuse(self, client: Connection, code: str, message: str) -> None:
        self.stats.errors += 1
        await _send_now(client, error_frame(code, message))
        with contextlib.suppress(Exception):
            await client.ws.close(CLOSE_REFUSED, code)

    def _send_turn(self, client: Connection) -> None:
        if self.turn is None or client.closing:
            return
        client.push(self.turn.issue(client.peer_id, self.wall_clock()).to_frame())
        loop = asyncio.get_running_loop()
        client.turn_timer = loop.call_later(self.turn.refresh_after(), self._send_turn, client)

    async def _on_frame(self, client: Connection, message: str | bytes) -> None:
        self.stats.frames += 1
        frame: dict[str, Any] = {}
        try:
            verdict = self.admission.frame(client.budget)
            if verdict is Verdict.CLOSE:
                closing = error_frame("rate-limited", "far too many frames; closing")
                client.close_after(CLOSE_REFUSED, "rate-limited", closing)
                return
            if verdict is Verdict.REFUSE:
                over = f"more than {self.admission.rate:g} frames/s; slow down"
                raise SignalingError("rate-limited", over)
            frame = parse_client_frame(message)
            await self._dispatch(client, frame)
        except Exception as exc:  # one frame refused, never the socket (issue 26, item 4)
            self.stats.errors += 1
            code, text = exc.code if isinstance(exc, SignalingError) else "refused", str(exc)
            if not isinstance(exc, VolliError):
                log.exception("signaling frame %r failed", frame.get("type"))
                code, text = "internal", "the server could not handle this frame (see its log)"
            about: dict[str, str] = {k: frame[k] for k in ("room", "to") if k in frame}
            if frame.get("type"):
                about["request"] = frame["type"]
            client.push(error_frame(code, text, **about))

    async def _dispatch(self, client: Connection, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "ping":
            client.push({"type": "pong"})
        elif kind == "register":
            raise SignalingError("already-registered", "this connection is registered already")
        elif kind == "join":
            room = frame["room"]
            joined = await self._join(client, room)
            client.push({"type": "joined", "room": room, "members": joined.members})
            self._after_join(client, room, joined)
        elif kind == "leave":
            room = frame["room"]
            client.rooms.pop(room, None)
            await self.backend.leave(room, client.peer_id)
            client.push({"type": "left", "room": room})
        elif kind == "list":
            members = await self.backend.members(frame["room"], client.peer_id)
            client.push({"type": "members", "room": frame["room"], "members": members})
        elif kind == "signal":
            signal = {"type": "signal", "from": client.peer_id, "data": frame["data"]}
            if not await self.backend.relay(client.peer_id, frame["to"], signal):
                client.push({"type": "queued", "to": frame["to"]})

    async def _join(self, client: Connection, room: str) -> Joined:
        """Join, holding back presence events for the room until our snapshot is sent."""
        client.joining.setdefault(room, [])
        try:
            return await self.backend.join(room, client.peer_id)
        except BaseException:
            client.joining.pop(room, None)
            client.release_held()
            raise

    def _after_join(self, client: Connection, room: str, joined: Joined) -> None:
        client.rooms[room] = joined.seq
        for event in client.joining.pop(room, []):
            if event["seq"] > joined.seq:
                client.push(presence_frame(event))
        for queued in joined.queued:
            client.push(queued)
        client.release_held()

    async def _disconnect(self, client: Connection) -> None:
        await client.stop()
        self.stats.too_slow += client.close_code == CLOSE_TOO_SLOW
        current = self._conns.pop(client.conn, None) is not None  # else: replaced
        if not client.peer_id or self._clients.get(client.peer_id, client) is not client:
            return  # never registered, or a newer connection here holds its id
        self._clients.pop(client.peer_id, None)
        with contextlib.suppress(BackplaneUnavailable):  # also when replaced from elsewhere:
            await self.backend.unsubscribe(client.peer_id)  # its signals go there, not here
            if current:  # (else, or with the engine away, its deadline runs out there)
                await self.backend.release(client.peer_id, client.conn)


async def _send_now(client: Connection, frame: dict[str, Any]) -> None:
    """Before registration, when no writer runs yet."""
    with contextlib.suppress(ConnectionClosed):
        await client.ws.send(encode(frame))


if __name__ == "__main__":  # `python -m volli_nb.net.signaling.server` still starts one
    import runpy

    runpy.run_module("volli_nb.net.signaling.cli", run_name="__main__")
