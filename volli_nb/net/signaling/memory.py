"""The default backend: one process's memory, no engine to run.

Rooms are indexed both ways (room → members, peer → rooms), so a signal costs
two set lookups however many rooms exist; an empty room is dropped at once;
a peer's rooms are remembered for ``recent_ttl`` after it leaves them (who may
queue for it while it is away); queued signals are counted in bytes per sender
and in total, indexed per receiver and per sender (so the flooder's own frames
are the ones evicted, see :class:`~volli_nb.net.signaling.backend.Limits`), and
expire in one pass over a deque kept in expiry order (the TTL is constant).
Time comes from the injected ``clock``.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from volli_nb.net.signaling.backend import (
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


@dataclass
class _Queued:
    sender: str
    to: str
    size: int
    expires: float
    frame: dict[str, Any]
    live: bool = True


@dataclass
class MemoryBackend(SignalingBackend):
    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], float] = time.monotonic
    _sink: Sink = field(default=lambda peer_id, message: None, repr=False)
    _owners: dict[str, str] = field(default_factory=dict)
    _identities: dict[str, dict[str, Any]] = field(default_factory=dict)
    _rooms: dict[str, dict[str, None]] = field(default_factory=dict)  # ordered sets
    _peer_rooms: dict[str, set[str]] = field(default_factory=dict)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _last_seq: int = 0
    _queues: dict[str, deque[_Queued]] = field(default_factory=dict)  # per receiver
    _by_sender: dict[str, deque[_Queued]] = field(default_factory=dict)
    _by_expiry: deque[_Queued] = field(default_factory=deque)
    _recent: dict[str, dict[str, float]] = field(default_factory=dict)  # peer → room → left at
    _sender_bytes: dict[str, int] = field(default_factory=dict)
    _queued_bytes: int = 0

    async def start(self, sink: Sink, on_restored: Restored) -> None:
        del on_restored  # memory never goes away while the process lives
        self._sink = sink

    async def close(self) -> None:
        return None

    # --- ids ----------------------------------------------------------------------

    async def claim(
        self, peer_id: str, conn: str, identity: dict[str, Any], *, reclaim: bool = False
    ) -> bool:
        previous = self._owners.get(peer_id)
        if reclaim and previous not in (None, conn):
            return False
        self._owners[peer_id], self._identities[peer_id] = conn, identity
        if previous is not None and previous != conn:
            self._sink(peer_id, {"k": "replaced", "conn": previous})
        return True

    async def release(self, peer_id: str, conn: str) -> None:
        if self._owners.get(peer_id) != conn:
            return  # replaced by a newer connection, which keeps the rooms
        del self._owners[peer_id]
        for room in list(self._peer_rooms.get(peer_id, ())):
            self._leave(room, peer_id)
        self._identities.pop(peer_id, None)

    async def subscribe(self, peer_id: str) -> None:
        return None  # every peer is local

    async def unsubscribe(self, peer_id: str) -> None:
        return None

    # --- rooms and presence -------------------------------------------------------

    def _next_seq(self) -> int:
        self._last_seq = next(self._seq)
        return self._last_seq

    async def join(self, room: str, peer_id: str) -> Joined:
        members = self._rooms.get(room, {})
        mine = self._peer_rooms.get(peer_id, set())
        if peer_id not in members:
            if len(members) >= self.limits.max_room_size:
                raise SignalingError(
                    "room-full", f"room {room!r} has {self.limits.max_room_size} members"
                )
            if len(mine) >= self.limits.max_rooms_per_peer:
                raise SignalingError(
                    "too-many-rooms", f"at most {self.limits.max_rooms_per_peer} rooms"
                )
            seq = self._next_seq()
            event = {"k": "join", "room": room, "seq": seq, "peer": self._identities[peer_id]}
            for other in members:
                self._sink(other, event)
            self._rooms.setdefault(room, members)[peer_id] = None
            self._peer_rooms.setdefault(peer_id, mine).add(room)
        others = [self._identities[p] for p in members if p != peer_id]
        return Joined(self._last_seq, others, self._take(peer_id, set(members)))

    def _leave(self, room: str, peer_id: str) -> bool:
        members = self._rooms.get(room)
        if members is None or peer_id not in members:
            return False
        del members[peer_id]
        self._recent.setdefault(peer_id, {})[room] = self.clock()
        mine = self._peer_rooms[peer_id]
        mine.discard(room)
        if not mine:
            del self._peer_rooms[peer_id]
        if not members:
            del self._rooms[room]
        event = {"k": "leave", "room": room, "seq": self._next_seq(), "peer_id": peer_id}
        for other in members:
            self._sink(other, event)
        return True

    async def leave(self, room: str, peer_id: str) -> bool:
        return self._leave(room, peer_id)

    async def members(self, room: str, peer_id: str) -> list[str]:
        members = self._rooms.get(room, {})
        if peer_id not in members:
            raise not_in_room(room)
        return list(members)

    def _share_room(self, a: str, b: str) -> bool:
        return not self._peer_rooms.get(a, set()).isdisjoint(self._peer_rooms.get(b, set()))

    # --- routing and queues -------------------------------------------------------

    async def relay(self, sender: str, to: str, frame: dict[str, Any]) -> bool:
        self._expire()
        if to in self._owners:
            if not self._share_room(sender, to):
                raise SignalingError("not-in-room", f"{to} shares no room with you; join one")
            self._sink(to, {"k": "sig", "frame": frame})
            return True
        if not self._share_room(sender, to) and not self._left_recently(to, sender):
            raise stranger(to, self.limits)
        self._enqueue(sender, to, frame)
        return False

    def _left_recently(self, peer_id: str, sender: str) -> bool:
        """Whether ``peer_id`` left one of ``sender``'s rooms within ``recent_ttl``."""
        since = self.clock() - self.limits.recent_ttl
        rooms = self._peer_rooms.get(sender, set())
        return any(t > since and r in rooms for r, t in self._recent.get(peer_id, {}).items())

    def _enqueue(self, sender: str, to: str, frame: dict[str, Any]) -> None:
        limits, size = self.limits, len(encode(frame))
        if self._sender_bytes.get(sender, 0) + size > limits.max_queued_bytes_per_sender:
            raise queue_full("you have", limits.max_queued_bytes_per_sender)
        queue = self._queues.get(to, deque())
        counts = Counter(e.sender for e in queue)
        if counts[sender] >= limits.max_queue_per_pair:
            self._drop(next(e for e in queue if e.sender == sender))
        elif len(queue) >= limits.max_queue:  # the sender holding most of it pays
            most = max(counts.values())
            biggest = (
                sender
                if counts[sender] == most
                else next(e.sender for e in queue if counts[e.sender] == most)
            )
            self._drop(next(e for e in queue if e.sender == biggest))
        while self._queued_bytes + size > limits.max_queued_bytes:
            if not self._sender_bytes:
                raise queue_full("the server holds", limits.max_queued_bytes)
            biggest = max(self._sender_bytes, key=lambda s: (self._sender_bytes[s], s == sender))
            self._drop(self._by_sender[biggest][0])
        entry = _Queued(sender, to, size, self.clock() + limits.queue_ttl, frame)
        self._queues.setdefault(to, deque()).append(entry)
        self._by_sender.setdefault(sender, deque()).append(entry)
        self._by_expiry.append(entry)
        self._sender_bytes[sender] = self._sender_bytes.get(sender, 0) + size
        self._queued_bytes += size

    def _drop(self, entry: _Queued) -> None:
        if not entry.live:
            return
        entry.live = False
        for index, key in ((self._queues, entry.to), (self._by_sender, entry.sender)):
            queue = index[key]
            queue.remove(entry)
            if not queue:
                del index[key]
        left = self._sender_bytes[entry.sender] - entry.size
        if left:
            self._sender_bytes[entry.sender] = left
        else:
            del self._sender_bytes[entry.sender]
        self._queued_bytes -= entry.size

    def _expire(self) -> None:
        now = self.clock()
        while self._by_expiry and (
            not self._by_expiry[0].live or self._by_expiry[0].expires <= now
        ):
            self._drop(self._by_expiry.popleft())

    def _take(self, peer_id: str, senders: set[str] | None) -> list[dict[str, Any]]:
        """Remove and return what waits for ``peer_id`` from ``senders`` (None: from anyone
        it shares a room with)."""
        self._expire()
        out = []
        for entry in list(self._queues.get(peer_id, ())):
            shared = (
                entry.sender in senders
                if senders is not None
                else self._share_room(peer_id, entry.sender)
            )
            if shared:
                self._drop(entry)
                out.append(entry.frame)
        return out

    async def drain(self, peer_id: str) -> list[dict[str, Any]]:
        return self._take(peer_id, None)

    async def heartbeat(self, owned: dict[str, str]) -> tuple[list[str], list[str]]:
        replaced = [p for p, conn in owned.items() if self._owners.get(p, conn) != conn]
        return [], replaced

    async def sweep(self) -> None:
        self._expire()
        since = self.clock() - self.limits.recent_ttl
        for peer_id in list(self._recent):
            left = {r: t for r, t in self._recent[peer_id].items() if t > since}
            if left:
                self._recent[peer_id] = left
            else:
                del self._recent[peer_id]

    async def counts(self) -> Counts:
        self._expire()
        queued = sum(len(queue) for queue in self._queues.values())
        return Counts(len(self._owners), len(self._rooms), queued, self._queued_bytes)
