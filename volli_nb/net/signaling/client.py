"""The client side of ``volli-signal``: register, join rooms, relay, and reconnect.

Frames other than replies go to ``on_frame``.  When the socket drops, the client
reconnects for as long as it lives, whatever the failure (:mod:`.reconnect`: capped,
jittered waits; one log line per kind of failure and outage; ``status`` and
``on_status`` say where it stands), registers again (the server gives the id back at
once) and re-joins its rooms.  The answer to each re-join is the room's whole member
list, handed to ``on_frame`` as a ``presence`` ``sync`` frame, like the server's own
after a restart of its engine: a join or leave missed while away is never lost.  Only a
newer connection for the same id (close code 4000) ends it.  A refused request raises
:class:`SignalingError` with the server's code at once; callers of :meth:`join` get
only typed errors (subclasses of :class:`~volli_nb.base.errors.VolliError`).

Over ``wss://`` the server's certificate is checked against the system's CAs, or against
``ssl`` (a CA file or an :class:`ssl.SSLContext`); one that does not verify is
:class:`UntrustedServer`, never a silent retry.  A server started with ``--turn-secret``
sends TURN credentials after registration and renews them before they expire: they are in
:attr:`SignalingClient.turn`, and ``on_turn`` is called with each, once their URLs were
checked against ``turn_hosts`` (:func:`~volli_nb.net.signaling.turn.vet_turn_urls`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random as random_module
import ssl as ssl_module
import time
from collections.abc import Callable, Collection
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from volli_nb.base.errors import MalformedFrame, TransportClosed, UsageError, VolliError
from volli_nb.core.claimed_name import claimed_name
from volli_nb.core.crypto.identity import Identity
from volli_nb.net.signaling import reconnect as rc
from volli_nb.net.signaling.turn import TurnCredentials, vet_turn_urls
from volli_nb.net.signaling.wire import (
    SignalingError,
    parse_challenge,
    parse_server_frame,
    sign_challenge,
)
from volli_nb.net.tls import TlsTrust, client_tls

log = logging.getLogger(__name__)

FrameHandler = Callable[[dict[str, Any]], None]
TurnHandler = Callable[[TurnCredentials], None]
StatusHandler = Callable[[rc.SignalingStatus], None]
REPLY_TO = {"join": "joined", "leave": "left", "list": "members"}
OPEN_TIMEOUT = 10.0  # seconds for one try: TCP, TLS, WebSocket handshake, registration
REQUEST_TIMEOUT = 10.0
RETRY_CODES = ("unavailable", "rate-limited")  # a refused re-join worth trying again


class UntrustedServer(TransportClosed):
    """The ``wss://`` server's certificate does not verify against the trusted CAs."""


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
        max_backoff: float = rc.MAX_BACKOFF,
        ssl: TlsTrust = None,
        on_turn: TurnHandler | None = None,
        turn_hosts: Collection[str] | None = None,
        on_status: StatusHandler | None = None,
        random: Callable[[], float] = random_module.random,
        monotonic: Callable[[], float] = time.monotonic,
        name: str | None = None,
    ) -> None:
        self.identity, self.url, self.on_frame = identity, url, on_frame
        self.name = claimed_name(name)  # what others in our rooms see us called
        self.reconnect, self.max_backoff = reconnect, max_backoff
        self.tls = client_tls(url, ssl)
        self.on_turn, self.on_status = on_turn, on_status
        self.turn_hosts = turn_hosts  # the TURN hosts the user allows (see turn.vet_turn_urls)
        self._random, self._monotonic = random, monotonic
        self.turn: TurnCredentials | None = None  # the newest TURN credentials, with expiry
        self.rooms: set[str] = set()
        self.connected = asyncio.Event()
        self.status = rc.SignalingStatus(rc.CONNECTING, url, since=monotonic())
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._rejoin_task: asyncio.Task[None] | None = None
        self._rejoining: set[str] = set()  # rooms whose join reply becomes a sync
        self._replies: dict[tuple[str, str], asyncio.Future[dict[str, Any]]] = {}
        self._closing = False
        self._logged: set[str] = set()  # failure classes logged in this outage
        self.reconnects = 0

    async def connect(self, timeout: float = OPEN_TIMEOUT) -> SignalingClient:
        """Connect and register once (a typed error if that fails), then stay connected."""
        try:
            await asyncio.wait_for(rc.until_admitted(self._open, self._random), timeout)
        except asyncio.CancelledError:
            raise
        except ssl_module.SSLCertVerificationError as exc:
            raise _untrusted(self.url, exc) from None
        except Exception as exc:  # every failure of the path, typed for the caller
            raise TransportClosed(
                f"cannot reach the signaling server at {self.url}: {rc.classify(exc)[1]}"
            ) from None
        self._set_status(rc.SignalingStatus(rc.CONNECTED, self.url, since=self._monotonic()))
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
            open_timeout=None,  # the caller bounds the whole try
        )
        try:
            nonce, server = parse_challenge(parse_server_frame(await ws.recv()))
            signature = sign_challenge(self.identity, nonce, server)
            identity = self.identity.public.to_json()
            register = {"type": "register", "identity": identity, "signature": signature}
            if self.name is not None:
                register["name"] = self.name
            await ws.send(json.dumps(register))
            reply = parse_server_frame(await ws.recv())
            if reply["type"] != "registered":  # (a server from before names refuses ours)
                old = " (a volli-signal older than this client? upgrade it)" * bool(self.name)
                raise TransportClosed(f"registration refused: {reply.get('message', reply)}{old}")
        except MalformedFrame as exc:
            await rc.abandon(ws)
            raise TransportClosed(f"the signaling server at {self.url} misbehaved: {exc}") from None
        except BaseException:
            await rc.abandon(ws)
            raise
        self._ws = ws
        self.connected.set()

    # --- staying connected --------------------------------------------------------

    async def _run(self) -> None:
        while not self._closing:
            ws = self._ws
            if ws is not None:
                await self._read(ws)
                self.connected.clear()
                self._ws = None
                self._fail_requests()
                if ws.close_code == rc.CLOSE_REPLACED:  # another connection has our id now
                    self._set_status(rc.SignalingStatus(rc.REPLACED, self.url))
                    log.warning("signaling: %s", self.status.describe(self._monotonic()))
                    return
                if not self._closing and self.reconnect:
                    self._outage("dropped", f"the connection was lost ({rc.close_words(ws)})")
            if self._closing or not self.reconnect:
                self._set_status(rc.SignalingStatus(rc.CLOSED, self.url))
                return
            await self._reconnect()

    async def _read(self, ws: ClientConnection) -> None:
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
        except Exception:  # whatever it was, the client carries on with a new connection
            log.exception("signaling connection failed; reconnecting")
            await rc.abandon(ws)

    async def _reconnect(self) -> None:
        """Try until a connection registers (or the client is closed), then re-join."""
        tries = 0
        while not self._closing:
            wait = rc.backoff(tries, self._random, self.max_backoff)
            self._set_status(
                rc.SignalingStatus(
                    rc.RECONNECTING,
                    self.url,
                    self.status.failure,
                    tries,
                    self._monotonic() + wait,
                    self.status.since,
                )
            )
            await asyncio.sleep(wait)
            try:
                await asyncio.wait_for(self._open(), OPEN_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                tries += 1
                self._outage(*rc.classify(exc), tries=tries, exc=exc)
                continue
            down = self._monotonic() - self.status.since
            log.info("signaling: back at %s after %d failed tries (%.1f s)", self.url, tries, down)
            self._logged.clear()
            self.reconnects += 1
            self._set_status(rc.SignalingStatus(rc.CONNECTED, self.url, since=self._monotonic()))
            self._deliver({"type": "reconnected"})
            if self._rejoin_task is not None:
                self._rejoin_task.cancel()  # a previous connection's, if still waiting
            self._rejoin_task = asyncio.get_running_loop().create_task(self._rejoin())
            return

    def _outage(
        self, kind: str, words: str, *, tries: int = 0, exc: BaseException | None = None
    ) -> None:
        """A failure of the path: logged once per class per outage, with what comes next."""
        since = self.status.since if self.status.state == rc.RECONNECTING else self._monotonic()
        self._set_status(rc.SignalingStatus(rc.RECONNECTING, self.url, words, tries, None, since))
        if kind in self._logged:
            return
        self._logged.add(kind)
        log.warning(
            "signaling: %s: %s; retrying (every %g s at most) until it works",
            self.url,
            words,
            self.max_backoff,
        )
        if isinstance(exc, ssl_module.SSLCertVerificationError):  # the certificate changed
            self._deliver({"type": "error", "code": "untrusted", "message": str(exc)})

    def _set_status(self, status: rc.SignalingStatus) -> None:
        self.status = status
        if self.on_status is not None:
            try:
                self.on_status(status)
            except Exception:
                log.exception("signaling status handler failed")

    async def _rejoin(self) -> None:
        """Join every room again; each reply is the room's whole member list (a sync)."""
        for room in list(self.rooms):
            tries = 0
            while room in self.rooms and self._ws is not None:
                self._rejoining.add(room)
                try:
                    await self._request({"type": "join", "room": room}, "joined", room)
                    break
                except SignalingError as exc:
                    if exc.code not in RETRY_CODES:
                        self.rooms.discard(room)
                        log.warning("signaling: lost room %r on reconnect: %s", room, exc)
                        break
                except TransportClosed:
                    return  # this connection is gone; the next one re-joins
                finally:
                    self._rejoining.discard(room)
                await asyncio.sleep(rc.backoff(tries, self._random, self.max_backoff))
                tries += 1

    def _fail_requests(self) -> None:
        for future in self._replies.values():
            if not future.done():
                future.set_exception(TransportClosed("signaling lost; rooms re-joined on return"))
        self._replies.clear()

    # --- frames -------------------------------------------------------------------

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
        if kind == "joined" and about in self._rejoining:  # in order, before what follows
            self._rejoining.discard(about)
            members = frame.get("members")
            frame = {
                "type": "presence",
                "room": about,
                "event": "sync",
                "members": members if isinstance(members, list) else [],
                "reason": "rejoined",
            }
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
            failure = f" ({self.status.failure})" if self.status.failure else ""
            raise TransportClosed(
                f"not connected to the signaling server{failure}; reconnecting by itself"
            )
        try:
            await self._ws.send(json.dumps(frame))
        except ConnectionClosed:
            raise TransportClosed("signaling connection closed; reconnecting by itself") from None

    async def _request(self, frame: dict[str, Any], reply: str, key: str) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[(reply, key)] = future
        try:
            await self._send(frame)
            return await asyncio.wait_for(future, REQUEST_TIMEOUT)
        except TimeoutError:
            raise TransportClosed(
                f"no {reply!r} reply from {self.url} within {REQUEST_TIMEOUT:g} s"
            ) from None
        finally:
            if self._replies.get((reply, key)) is future:
                del self._replies[(reply, key)]

    async def join(self, room: str, timeout: float = OPEN_TIMEOUT) -> list[dict[str, Any]]:
        """Join ``room``; returns the identities already there.  While reconnecting it
        waits up to ``timeout`` seconds for the connection; every failure is a
        :class:`~volli_nb.base.errors.VolliError`."""
        if not room:
            raise UsageError("a room name is needed")
        if not self.connected.is_set():
            try:
                await asyncio.wait_for(self.connected.wait(), timeout)
            except TimeoutError:
                raise TransportClosed(
                    f"cannot join {room!r}: {self.status.describe(self._monotonic())}"
                ) from None
        new = room not in self.rooms
        self.rooms.add(room)
        try:
            reply = await self._request({"type": "join", "room": room}, "joined", room)
        except SignalingError:
            if new:
                self.rooms.discard(room)
            raise
        members = reply.get("members")
        return members if isinstance(members, list) else []

    async def members(self, room: str) -> list[str]:
        """The peer ids in ``room`` (ours too) as the server has them now."""
        reply = await self._request({"type": "list", "room": room}, "members", room)
        found = reply.get("members")
        return [str(m) for m in found] if isinstance(found, list) else []

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
        for task in (self._task, self._rejoin_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._set_status(rc.SignalingStatus(rc.CLOSED, self.url))
