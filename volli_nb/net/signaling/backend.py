"""The one interface behind ``volli-signal``: ids, rooms, presence, routing, short queues.

Two implementations: :class:`~volli_nb.net.signaling.memory.MemoryBackend`
(one process, the default) and
:class:`~volli_nb.net.signaling.redis_backend.RedisBackend` (several processes
on one Redis or Valkey).  The server keeps only its own sockets; everything a
second process must agree on lives behind this interface, so each limit is
checked in one place for every process.

The backend tells the server about its local peers through a *sink*
``sink(peer_id, message)`` with one of these messages:

* ``{"k": "sig", "frame": {...}}`` — a signal frame to hand to the peer;
* ``{"k": "join", "room", "seq", "peer": identity}`` and
  ``{"k": "leave", "room", "seq", "peer_id"}`` — presence in a room the peer is in;
* ``{"k": "replaced", "conn": conn_id}`` — a newer connection took the id; close ``conn_id``.

``seq`` grows with every membership change anywhere, and ``join()`` returns
the ``seq`` of its snapshot, so the server can drop events its snapshot
already contains however the two reach it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from volli_nb.base.errors import UsageError
from volli_nb.net.signaling.wire import SignalingError

Sink = Callable[[str, dict[str, Any]], None]
Restored = Callable[[], Coroutine[Any, Any, None]]


RECENT_KEEP = 600.0  # seconds the engine keeps a peer's recent rooms at most


@dataclass(frozen=True)
class Limits:
    """Bounds every backend enforces (for all processes together with Redis).

    A signal waits for a peer that is away only if its sender shares a room with it, or
    is in a room the peer left less than ``recent_ttl`` ago: a stranger queues nothing.
    Each (sender, receiver) pair holds at most ``max_queue_per_pair`` frames (its own
    oldest goes first); a receiver's queue, when full, loses the oldest frame of the
    sender holding most of it; the server, when full, the oldest frame of the sender
    holding most bytes.  So a flood evicts the flooder's own frames, never a room-mate's
    offer (issue 26, item 5)."""

    max_room_size: int = 64
    max_rooms_per_peer: int = 16
    queue_ttl: float = 30.0  # seconds a signal waits for a peer that is away
    max_queue: int = 64  # frames waiting per receiver
    max_queue_per_pair: int = 8  # frames waiting from one sender for one receiver
    max_queued_bytes_per_sender: int = 256 * 1024  # over it: queue-full for that sender
    max_queued_bytes: int = 16 * 1024 * 1024  # all receivers together
    recent_ttl: float = 30.0  # a room the receiver left this recently still counts
    presence_ttl: float = 6.0  # Redis: a process silent this long loses its clients

    def __post_init__(self) -> None:
        if not 0 <= self.recent_ttl <= RECENT_KEEP:
            raise UsageError(f"recent_ttl is 0 to {RECENT_KEEP:g} seconds")
        if min(self.max_queue, self.max_queue_per_pair) < 1:
            raise UsageError("max_queue and max_queue_per_pair must be at least 1")


@dataclass(frozen=True)
class Joined:
    seq: int  # the membership change this snapshot includes, and every one before it
    members: list[dict[str, Any]]  # identities of the others in the room
    queued: list[dict[str, Any]]  # signals that waited for us from senders in this room


@dataclass(frozen=True)
class Counts:
    peers: int
    rooms: int
    queued: int
    queued_bytes: int


class BackplaneUnavailable(SignalingError):
    """The shared engine cannot be reached; the request may be retried in a moment."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            "unavailable", f"the signaling backplane is unreachable ({detail}); retry shortly"
        )


def queue_full(who: str, cap: int) -> SignalingError:
    return SignalingError(
        "queue-full", f"{who} {cap} bytes of queued signals; wait for the peer to come back"
    )


def not_in_room(room: str) -> SignalingError:
    return SignalingError("not-in-room", f"you are not in room {room!r}; join it first")


def stranger(to: str, limits: Limits) -> SignalingError:
    return SignalingError(
        "not-in-room",
        f"{to} shares no room with you (and, if away, left none of yours in the last "
        f"{limits.recent_ttl:g} s): signals wait only for room-mates; join one of its rooms",
    )


class SignalingBackend(ABC):
    limits: Limits

    @abstractmethod
    async def start(self, sink: Sink, on_restored: Restored) -> None:
        """Begin delivering to ``sink``; ``on_restored`` runs after the engine came back."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def claim(
        self, peer_id: str, conn: str, identity: dict[str, Any], *, reclaim: bool = False
    ) -> bool:
        """Give the id to connection ``conn`` (the newest wins; the previous owner, on any
        process, is sent ``replaced``).  With ``reclaim`` (re-registering after an
        outage) a newer owner is kept and False returned."""

    @abstractmethod
    async def release(self, peer_id: str, conn: str) -> None:
        """If ``conn`` still owns the id: leave every room (members are told)."""

    @abstractmethod
    async def subscribe(self, peer_id: str) -> None:
        """Route the peer's frames to this process (done before anything is drained)."""

    @abstractmethod
    async def unsubscribe(self, peer_id: str) -> None: ...

    @abstractmethod
    async def join(self, room: str, peer_id: str) -> Joined:
        """Limits are checked before the room exists; the others are told."""

    @abstractmethod
    async def leave(self, room: str, peer_id: str) -> bool: ...

    @abstractmethod
    async def members(self, room: str, peer_id: str) -> list[str]:
        """The room's peer ids, for a member of it only."""

    @abstractmethod
    async def relay(self, sender: str, to: str, frame: dict[str, Any]) -> bool:
        """True if delivered to a connected peer that shares a room with ``sender``;
        False if queued for a peer that is away (see :class:`Limits`).  A peer in no
        shared room (nor, if away, a room it left recently) and the sender's full byte
        budget are refusals (:class:`SignalingError`)."""

    @abstractmethod
    async def drain(self, peer_id: str) -> list[dict[str, Any]]:
        """Queued signals for the peer from senders it shares a room with (others wait)."""

    @abstractmethod
    async def heartbeat(self, owned: dict[str, str]) -> tuple[list[str], list[str]]:
        """Refresh the deadlines of this process's ``{peer_id: conn}``; returns the ids the
        engine no longer knows (re-register them) and those another connection owns."""

    @abstractmethod
    async def sweep(self) -> None:
        """Expire queued signals and the presence of peers whose deadline passed."""

    @abstractmethod
    async def counts(self) -> Counts: ...
