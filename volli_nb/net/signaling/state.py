"""Signaling state behind one small interface: ids, rooms, presence, short-lived queues.

The embedded server keeps it in memory; several ``volli-signal`` processes
could share it through Redis later (DESIGN.md §6) without touching the
server's connection code.  Pure: time is passed in.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from volli_nb.net.signaling.wire import SignalingError


@dataclass
class _Queued:
    expires: float
    frame: dict[str, Any]


@dataclass
class SignalingState:
    """Who holds which id, who is in which room, and what waits for a peer briefly away."""

    max_room_size: int = 64
    max_rooms_per_peer: int = 16
    queue_ttl: float = 30.0
    max_queue: int = 64
    _owners: dict[str, object] = field(default_factory=dict)
    _rooms: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))
    _queues: dict[str, deque[_Queued]] = field(default_factory=lambda: defaultdict(deque))

    # ids
    def claim(self, peer_id: str, token: object) -> object | None:
        """Give ``peer_id`` to the connection ``token``; returns the one it replaces.

        Ids are proven by signature, so the newest authenticated connection wins:
        a client that reconnects gets its id back at once."""
        previous = self._owners.get(peer_id)
        self._owners[peer_id] = token
        return previous if previous is not token else None

    def release(self, peer_id: str, token: object) -> bool:
        if self._owners.get(peer_id) is not token:
            return False
        del self._owners[peer_id]
        return True

    def owner(self, peer_id: str) -> object | None:
        return self._owners.get(peer_id)

    # rooms and presence
    def join(self, room: str, peer_id: str, identity: dict[str, Any]) -> list[dict[str, Any]]:
        members = self._rooms[room]
        if peer_id not in members:
            if len(members) >= self.max_room_size:
                raise SignalingError("room-full", f"room {room!r} has {self.max_room_size} members")
            if len(self.rooms_of(peer_id)) >= self.max_rooms_per_peer:
                raise SignalingError("too-many-rooms", f"at most {self.max_rooms_per_peer} rooms")
        members[peer_id] = identity
        return [ident for pid, ident in members.items() if pid != peer_id]

    def leave(self, room: str, peer_id: str) -> bool:
        members = self._rooms.get(room)
        if not members or peer_id not in members:
            return False
        del members[peer_id]
        if not members:
            del self._rooms[room]
        return True

    def members(self, room: str) -> list[str]:
        return list(self._rooms.get(room, {}))

    def rooms_of(self, peer_id: str) -> list[str]:
        return [room for room, members in self._rooms.items() if peer_id in members]

    def room_count(self) -> int:
        return len(self._rooms)

    # short-lived queues for a peer that is briefly away
    def enqueue(self, peer_id: str, frame: dict[str, Any], now: float) -> None:
        queue = self._queues[peer_id]
        while len(queue) >= self.max_queue:
            queue.popleft()
        queue.append(_Queued(now + self.queue_ttl, frame))

    def drain(self, peer_id: str, now: float) -> list[dict[str, Any]]:
        queue = self._queues.pop(peer_id, None) or deque()
        return [q.frame for q in queue if q.expires > now]

    def sweep(self, now: float) -> int:
        """Drop expired queued frames; returns how many were dropped."""
        dropped = 0
        for peer_id in list(self._queues):
            queue = self._queues[peer_id]
            kept = deque(q for q in queue if q.expires > now)
            dropped += len(queue) - len(kept)
            if kept:
                self._queues[peer_id] = kept
            else:
                del self._queues[peer_id]
        return dropped

    def queued(self) -> int:
        return sum(len(q) for q in self._queues.values())
