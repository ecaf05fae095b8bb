"""The client side of ``volli-signal``: register, join rooms, relay, and reconnect.

Frames other than replies go to ``on_frame``.  When the socket drops, the
client reconnects with backoff, registers again (the server gives the id
back at once) and re-joins its rooms.  A refused request raises
:class:`SignalingError` with the server's code at once.

Over ``wss://`` the server's certificate is checked against the system's
CAs, or against ``ssl`` (a CA file or an :class:`ssl.SSLContext`); a
certificate that does not verify is :class:`UntrustedServer`, never a
silent retry.  A server started with ``--turn-secret`` sends TURN
credentials after registration and renews them before they expire: they are
in :attr:`SignalingClient.turn`, and ``on_turn`` is called with each, once their URLs
were checked against ``turn_hosts`` (:func:`~volli_nb.net.signaling.turn.vet_turn_urls`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl as ssl_module
from collections.abc import Callable, Collection
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidURI

from volli_nb.base.errors import MalformedFrame, TransportClosed, UsageError, VolliError
from volli_nb.core.crypto.identity import Identity
from volli_nb.net.signaling.turn import TurnCredentials, vet_turn_urls
from volli_nb.net.signaling.wire import (
    SignalingError,
    parse_challenge,
    parse_server_frame,
    sign_challenge,
)
from volli_nb.net.tls import TlsTrust, trust_context

log = logging.getLogger(__name__)

FrameHandler = Callable[[dict[str, Any]], None]
TurnHandler = Callable[[TurnCredentials], None]
REPLY_TO = {"join": "joined", "leave": "left", "list": "members"}


class UntrustedServer(TransportClosed):
    """The ``wss://`` server's certificate does not verify against the trusted CAs."""


def client_tls(url: str, trust: TlsTrust) -> ssl_module.SSLContext | None:
    """The TLS context for ``url``: None for ``ws://``; the system's CAs, a CA file, or the
    caller's context for ``wss://`` (never a process-wide setting)."""
    if not url.startswith("wss://"):
        if trust is not None:
            raise UsageError(f"a CA was given but {url} is not a wss:// URL; use wss://")
        return None
    return trust_context(trust, url)


def _untrusted(url: str, exc: ssl_module.SSLCertVerificationError) -> UntrustedServer:
    return UntrustedServer(
        f"the certificate of {url} is not trusted ({exc.verify_message or exc}): pass the CA "
        "that signed it, e.g. store.join(room, url, ssl='ca.pem') or "
        "SignalingClient(..., ssl=ssl_context), or fix the server's certificate and name"
    )


class SignalingClient:
    def __init__(
        self,
        identity: Identity,
        url: str,
        on_frame: FrameHandler,
        *,
        reconnect: bool = True,
        max_backoff: float = 5.0,
        ssl: TlsTrust = None,
        on_turn: TurnHandler | None = None,
        turn_hosts: Collection[str] | None = None,
    ) -> None:
        self.identity, self.url, self.on_frame = identity, url, on_frame
        self.reconnect, self.max_backoff = reconnect, max_backoff
        self.tls = client_tls(url, ssl)
        self.on_turn = on_turn
        self.turn_hosts = turn_hosts  # the TURN hosts the user allows (see turn.vet_turn_urls)
        self.turn: TurnCredentials | None = None  # the newest TURN credentials, with expiry
        self.rooms: set[str] = set()
        self.connected = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._replies: dict[tuple[str, str], asyncio.Future[dict[str, Any]]] = {}
        self._closing = False
        self.reconnects = 0

    async def connect(self, timeout: float = 10.0) -> SignalingClient:
        try:
            await asyncio.wait_for(self._open(), timeout)
        except ssl_module.SSLCertVerificationError as exc:
            raise _untrusted(self.url, exc) from None
        except (OSError, InvalidURI, TimeoutError, ConnectionClosed) as exc:
            raise TransportClosed(
                f"cannot reach the signaling server at {self.url} ({exc}); is volli-signal running?"
            ) from None
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def _open(self) -> None:
        ws = await connect(  # no compression: see server.COMPRESSION
            self.url,
            max_size=1024 * 1024,
            ping_interval=5,
            ping_timeout=10,
            ssl=self.tls,
            compression=None,
        )
        try:
            nonce, server = parse_challenge(parse_server_frame(await ws.recv()))
            signature = sign_challenge(self.identity, nonce, server)
            identity = self.identity.public.to_json()
            await ws.send(
                json.dumps({"type": "register", "identity": identity, "signature": signature})
            )
            reply = parse_server_frame(await ws.recv())
        except MalformedFrame as exc:
            await ws.close()
            raise TransportClosed(f"the signaling server at {self.url} misbehaved: {exc}") from None
        if reply["type"] != "registered":
            await ws.close()
            raise TransportClosed(f"registration refused: {reply.get('message', reply)}")
        self._ws = ws
        self.connected.set()

    async def _run(self) -> None:
        backoff = 0.2
        while not self._closing:
            ws = self._ws
            if ws is not None:
                try:
                    async for message in ws:
                        try:  # a bad frame is dropped, never the connection
                            frame = parse_server_frame(message)
                        except MalformedFrame as exc:
                            log.warning("%s", exc)
                            continue
                        self._deliver(frame)
                except ConnectionClosed:
                    pass
                self.connected.clear()
                self._ws = None
            if self._closing or not self.reconnect:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)
            try:
                await asyncio.wait_for(self._open(), 10)
            except ssl_module.SSLCertVerificationError as exc:
                log.error("%s", _untrusted(self.url, exc))  # the certificate changed under us
                self._deliver({"type": "error", "code": "untrusted", "message": str(exc)})
                continue
            except (OSError, TimeoutError, ConnectionClosed, TransportClosed):
                continue
            backoff = 0.2
            self.reconnects += 1
            self._deliver({"type": "reconnected"})
            for room in list(self.rooms):
                await self._send({"type": "join", "room": room})

    def _deliver(self, frame: dict[str, Any]) -> None:
        kind = str(frame.get("type"))
        about = str(frame.get("room", frame.get("to", "")))
        if kind == "error" and frame.get("request") in REPLY_TO:
            future = self._replies.pop((REPLY_TO[frame["request"]], about), None)
            if future is not None and not future.done():
                code, message = str(frame.get("code")), str(frame.get("message"))
                future.set_exception(SignalingError(code, f"{code}: {message}"))
        else:
            future = self._replies.pop((kind, about), None)
            if future is not None and not future.done():
                future.set_result(frame)
        if kind == "turn":
            self._take_turn(frame)
        try:
            self.on_frame(frame)
        except Exception:
            log.exception("signaling frame handler failed")

    def _take_turn(self, frame: dict[str, Any]) -> None:
        try:
            self.turn = vet_turn_urls(TurnCredentials.from_frame(frame), self.url, self.turn_hosts)
        except VolliError as exc:
            log.warning("%s", exc)
            self.on_frame({"type": "error", "code": "turn-refused", "message": str(exc)})
            return
        if self.on_turn is not None:
            try:
                self.on_turn(self.turn)
            except Exception:
                log.exception("TURN credentials handler failed")

    async def _send(self, frame: dict[str, Any]) -> None:
        if self._ws is None:
            raise TransportClosed("not connected to the signaling server (reconnecting)")
        try:
            await self._ws.send(json.dumps(frame))
        except ConnectionClosed:
            raise TransportClosed("signaling connection closed") from None

    async def _request(self, frame: dict[str, Any], reply: str, key: str) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[(reply, key)] = future
        await self._send(frame)
        return await asyncio.wait_for(future, 10)

    async def join(self, room: str) -> list[dict[str, Any]]:
        """Join ``room``; returns the identities already there."""
        if not room:
            raise UsageError("a room name is needed")
        self.rooms.add(room)
        reply = await self._request({"type": "join", "room": room}, "joined", room)
        members: list[dict[str, Any]] = reply["members"]
        return members

    async def leave(self, room: str) -> None:
        self.rooms.discard(room)
        await self._request({"type": "leave", "room": room}, "left", room)

    async def signal(self, to: str, data: dict[str, Any]) -> None:
        await self._send({"type": "signal", "to": to, "data": data})

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
