"""What a link is made with, and who hears what it says.

A :class:`~volli_nb.net.link.Link` gets two things from the
:class:`~volli_nb.net.network_store.NetworkStore` that holds it: a :class:`LinkSetup`,
the same for every link of that store and never changed (who we are, the configuration,
the clocks, where it writes), and its :class:`LinkOwner`, the store itself, which hears
every session started and ended, every frame received, every network event and the
link's end.  Those are the only ways a link talks upward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from volli_nb.base.clock import Clock
from volli_nb.core.crypto.handshake import HandshakeResult
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.eventlog import EventLog
from volli_nb.core.netconfig import NetworkConfig
from volli_nb.core.protocol.events import FrameReceived, Verdict
from volli_nb.net.events import NetworkEvent
from volli_nb.net.frame_trace import FrameTrace
from volli_nb.net.turn_preflight import TurnPlanner

if TYPE_CHECKING:
    from volli_nb.net.link import Link


@dataclass(frozen=True)
class LinkSetup:
    """What every link of one NetworkStore is made with: who we are, the configuration,
    the clocks (``clock`` for the times people read, ``monotonic`` for timers), where it
    writes (the event log, and the frame trace behind the sequence diagram and progress),
    and the TURN planner whose last preflight explains a failed connection."""

    identity: Identity
    config: NetworkConfig
    clock: Clock
    monotonic: Clock
    log: EventLog
    trace: FrameTrace
    turn: TurnPlanner


class SessionKeys(Protocol):
    """What the app does with a channel's sessions: it owns their ratchets (so it seals
    and opens every message) and answers each received frame once."""

    def started(self, peer_id: str, handshake: HandshakeResult) -> None:
        """A handshake finished on ``peer_id``'s channel (a first one, or a re-key)."""

    def ended(self, peer_id: str, session_id: bytes) -> None:
        """The channel that ran ``session_id`` closed: forget its ratchet."""

    def frame(self, peer_id: str, received: FrameReceived) -> Verdict:
        """Open, store, and say what was stored and what was refused (never raises)."""


class LinkOwner(SessionKeys, Protocol):
    """The registry that holds a link: it passes sessions and frames on to the app's
    :class:`SessionKeys`, events to its listeners, and forgets the link when it ends."""

    def report(self, event: NetworkEvent) -> None:
        """Something the app and the panels hear about (online, delivered, …)."""

    def dropped(self, link: Link, reason: str) -> None:
        """``link`` ended (``reason`` says why): forget it, unless it was replaced."""


class NoKeys:
    """Before an app attaches: no session is kept and every frame is refused, unopened."""

    def started(self, peer_id: str, handshake: HandshakeResult) -> None:
        pass

    def ended(self, peer_id: str, session_id: bytes) -> None:
        pass

    def frame(self, peer_id: str, received: FrameReceived) -> Verdict:
        return Verdict()


__all__ = ["LinkOwner", "LinkSetup", "NoKeys", "SessionKeys"]
