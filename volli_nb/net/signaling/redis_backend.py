"""Several ``volli-signal`` processes on one Redis or Valkey (``volli-signal --redis URL``).

Every operation is one atomic script (``redis_lua``), so the limits hold for
all processes together and two processes never both own an id.  Routing:
each process subscribes to ``ch:<peer>`` for the peers connected to it; a
signal is one PUBLISH whose subscriber count says at once whether the peer
is connected, and queues it when not, in the same script.  Presence: each
registered peer has a deadline that its process refreshes every heartbeat;
any process forgets the peers whose deadline passed (a process that died
without a word), and their rooms' members are told.

When the engine goes away, requests get ``unavailable`` error frames and
new connections are refused; the reader reconnects with backoff,
re-subscribes, and ``on_restored`` re-registers this process's clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import redis.asyncio as redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from volli_nb.net.signaling import redis_lua
from volli_nb.net.signaling.backend import (
    BackplaneUnavailable,
    Counts,
    Joined,
    Limits,
    Restored,
    SignalingBackend,
    Sink,
    not_in_room,
    queue_full,
    stranger,
)
from volli_nb.net.signaling.wire import SignalingError, encode

log = logging.getLogger(__name__)

_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
HEARTBEAT_BATCH = 500
SCRIPTS = ("CLAIM", "RELEASE", "JOIN", "LEAVE", "MEMBERS", "RELAY", "DRAIN", "HEARTBEAT", "SWEEP")


class RedisBackend(SignalingBackend):
    def __init__(
        self, url: str, *, limits: Limits | None = None, prefix: str = "volli:", name: str = ""
    ) -> None:
        self.limits = limits or Limits()
        self.url, self.prefix, self.name = url, prefix, name or "server"
        self.available = False
        self.restored = 0  # how many times the engine came back
        self._redis = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=5,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
            retry_on_error=[RedisConnectionError],
        )
        self._scripts = {
            name: self._redis.register_script(redis_lua.LIBRARY + getattr(redis_lua, name))
            for name in SCRIPTS
        }
        self._channels: set[str] = {f"{prefix}proc:{self.name}"}
        self._confirm: dict[str, list[asyncio.Future[None]]] = {}
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._sink: Sink = lambda peer_id, message: None
        self._on_restored: Restored | None = None
        self._first_up = asyncio.Event()
        self._backoff = 0.05
        self._restoring: asyncio.Task[None] | None = None

    # --- connection and the reader ------------------------------------------------

    async def start(self, sink: Sink, on_restored: Restored) -> None:
        self._sink, self._on_restored = sink, on_restored
        self._reader = asyncio.get_running_loop().create_task(self._read_forever())
        try:
            await asyncio.wait_for(self._first_up.wait(), 10)
        except TimeoutError:
            await self.close()
            raise BackplaneUnavailable(f"no answer from {self.url} within 10 s") from None

    async def close(self) -> None:
        for task in (self._reader, self._restoring):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    async def _read_forever(self) -> None:
        while True:
            try:
                await self._connect_pubsub()  # returns only when the connection drops
            except _DOWN as exc:
                if self.available:
                    log.warning("signaling backplane %s lost: %s", self.url, exc)
                self.available = False
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, 1.0)

    async def _connect_pubsub(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        self._pubsub = pubsub = self._redis.pubsub()
        await self._redis.ping()
        channels = sorted(self._channels)
        waits = [self._expect(ch) for ch in channels]
        await pubsub.subscribe(*channels)
        pump = asyncio.get_running_loop().create_task(self._pump())
        try:
            await asyncio.wait_for(asyncio.gather(*waits), 10)
        except BaseException:
            pump.cancel()
            raise
        was_up_before = self._first_up.is_set()
        self.available, self._backoff = True, 0.05
        self._first_up.set()
        if was_up_before and self._on_restored is not None:
            self.restored += 1
            log.warning("signaling backplane %s is back; re-registering clients", self.url)
            self._restoring = asyncio.get_running_loop().create_task(self._on_restored())
        await pump  # raises when the connection drops again

    def _expect(self, channel: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirm.setdefault(channel, []).append(future)
        return future

    async def _pump(self) -> None:
        pubsub = self._pubsub
        assert pubsub is not None
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            channel = str(message["channel"])
            if message["type"] == "subscribe":
                for future in self._confirm.pop(channel, []):
                    if not future.done():
                        future.set_result(None)
            elif message["type"] == "message":
                self._dispatch(channel, str(message["data"]))

    def _dispatch(self, channel: str, data: str) -> None:
        prefix = self.prefix + "ch:"
        if not channel.startswith(prefix):
            return
        try:
            message: dict[str, Any] = json.loads(data)
            kind = message["k"]
            if kind == "sig":
                message = {"k": "sig", "frame": json.loads(message["frame"])}
            elif kind == "join":
                message = {
                    "k": "join",
                    "room": message["room"],
                    "seq": int(message["seq"]),
                    "peer": json.loads(message["ident"]),
                }
            elif kind == "leave":
                message["seq"] = int(message["seq"])
            self._sink(channel[len(prefix) :], message)
        except (ValueError, KeyError, TypeError):
            log.exception("unreadable backplane message on %s", channel)

    async def _call(self, name: str, *args: str | int) -> Any:
        if not self.available:
            raise BackplaneUnavailable(f"reconnecting to {self.url}")
        try:
            return await self._scripts[name](keys=[], args=[self.prefix, *args])
        except _DOWN as exc:
            raise BackplaneUnavailable(str(exc)) from None
        except RedisError as exc:  # a script error is a bug here, not the client's fault
            log.exception("signaling backplane script %s failed", name)
            raise BackplaneUnavailable(f"script {name} failed: {exc}") from None

    # --- ids ----------------------------------------------------------------------

    async def claim(
        self, peer_id: str, conn: str, identity: dict[str, Any], *, reclaim: bool = False
    ) -> bool:
        ttl = int(self.limits.presence_ttl * 1000)
        done = await self._call("CLAIM", peer_id, conn, encode(identity), ttl, int(reclaim))
        return bool(done)

    async def release(self, peer_id: str, conn: str) -> None:
        await self._call("RELEASE", peer_id, conn)

    async def subscribe(self, peer_id: str) -> None:
        channel = f"{self.prefix}ch:{peer_id}"
        self._channels.add(channel)
        if not self.available or self._pubsub is None:
            raise BackplaneUnavailable(f"reconnecting to {self.url}")
        waiting = self._expect(channel)
        try:
            await self._pubsub.subscribe(channel)
            await asyncio.wait_for(waiting, 5)
        except (*_DOWN, TimeoutError) as exc:
            raise BackplaneUnavailable(f"subscribe failed: {exc!r}") from None

    async def unsubscribe(self, peer_id: str) -> None:
        channel = f"{self.prefix}ch:{peer_id}"
        self._channels.discard(channel)
        if self._pubsub is not None and self.available:
            with contextlib.suppress(*_DOWN):
                await self._pubsub.unsubscribe(channel)

    # --- rooms and presence -------------------------------------------------------

    async def join(self, room: str, peer_id: str) -> Joined:
        reply = await self._call(
            "JOIN", room, peer_id, self.limits.max_room_size, self.limits.max_rooms_per_peer
        )
        status = reply[0]
        if status == "room-full":
            raise SignalingError(
                "room-full", f"room {room!r} has {self.limits.max_room_size} members"
            )
        if status == "too-many-rooms":
            raise SignalingError(
                "too-many-rooms", f"at most {self.limits.max_rooms_per_peer} rooms"
            )
        if status != "ok":
            raise BackplaneUnavailable("this connection's registration was lost; it is renewed")
        members = [json.loads(ident) for ident in reply[2] if ident]
        return Joined(int(reply[1]), members, [json.loads(f) for f in reply[3]])

    async def leave(self, room: str, peer_id: str) -> bool:
        return bool(await self._call("LEAVE", room, peer_id))

    async def members(self, room: str, peer_id: str) -> list[str]:
        found, members = await self._call("MEMBERS", room, peer_id)
        if not found:
            raise not_in_room(room)
        return sorted(members)

    # --- routing and queues -------------------------------------------------------

    async def relay(self, sender: str, to: str, frame: dict[str, Any]) -> bool:
        limits = self.limits
        outcome = await self._call(
            "RELAY",
            sender,
            to,
            encode(frame),
            int(limits.queue_ttl * 1000),
            limits.max_queue,
            limits.max_queued_bytes_per_sender,
            limits.max_queued_bytes,
            limits.max_queue_per_pair,
            int(limits.recent_ttl * 1000),
        )
        if outcome == "not-in-room":
            raise SignalingError("not-in-room", f"{to} shares no room with you; join one")
        if outcome == "stranger":
            raise stranger(to, limits)
        if outcome == "sender-full":
            raise queue_full("you have", limits.max_queued_bytes_per_sender)
        if outcome == "full":
            raise queue_full("the server holds", limits.max_queued_bytes)
        return bool(outcome == "sent")

    async def drain(self, peer_id: str) -> list[dict[str, Any]]:
        return [json.loads(f) for f in await self._call("DRAIN", peer_id)]

    async def heartbeat(self, owned: dict[str, str]) -> tuple[list[str], list[str]]:
        missing: list[str] = []
        replaced: list[str] = []
        items = list(owned.items())
        ttl = int(self.limits.presence_ttl * 1000)
        for start in range(0, len(items), HEARTBEAT_BATCH):
            flat = [x for pair in items[start : start + HEARTBEAT_BATCH] for x in pair]
            gone, taken = await self._call("HEARTBEAT", ttl, *flat)
            missing += gone
            replaced += taken
        return missing, replaced

    async def sweep(self) -> None:
        while await self._call("SWEEP", 500) == 500:
            pass

    async def counts(self) -> Counts:
        if not self.available:
            raise BackplaneUnavailable(f"reconnecting to {self.url}")
        p = self.prefix
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zcard(p + "deadlines")
                pipe.scard(p + "roomset")
                pipe.get(p + "qn")
                pipe.get(p + "qbytes")
                peers, rooms, queued, queued_bytes = await pipe.execute()
        except _DOWN as exc:
            raise BackplaneUnavailable(str(exc)) from None
        return Counts(int(peers), int(rooms), int(queued or 0), int(queued_bytes or 0))
