"""What every link of one NetworkStore shares, and what the app does with its sessions.

:class:`LinkContext` is one object per :class:`~volli_nb.net.network_store.NetworkStore`,
handed to each :class:`~volli_nb.net.link.Link`: who we are, the configuration, where to
report, the clocks, and the app's :class:`SessionKeys`, which owns every channel's ratchet
and answers each received frame.
"""

from __future__ import annotations

from collections.abc import Callable
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
from volli_nb.net.turn_preflight import PreflightReport

if TYPE_CHECKING:
    from volli_nb.net.link import Link


class SessionKeys(Protocol):
    """What the app does with a channel's sessions: it owns their ratchets (so it seals
    and opens every message) and answers each received frame once."""

    def started(self, peer_id: str, handshake: HandshakeResult) -> None:
        """A handshake finished on ``peer_id``'s channel (a first one, or a re-key)."""

    def ended(self, peer_id: str, session_id: bytes) -> None:
        """The channel that ran ``session_id`` closed: forget its ratchet."""

    def frame(self, peer_id: str, received: FrameReceived) -> Verdict:
        """Open, store, and say what was stored and what was refused (never raises)."""


class NoKeys:
    """Before an app attaches: no session is kept and every frame is refused, unopened."""

    def started(self, peer_id: str, handshake: HandshakeResult) -> None:
        pass

    def ended(self, peer_id: str, session_id: bytes) -> None:
        pass

    def frame(self, peer_id: str, received: FrameReceived) -> Verdict:
        return Verdict()


@dataclass
class LinkContext:
    """What every link of one NetworkStore shares: who we are, the configuration, where to
    report, the app's session keys, and the clocks (``clock`` for the times people read,
    ``monotonic`` for timers)."""

    identity: Identity
    config: NetworkConfig
    log: EventLog
    trace: FrameTrace  # what crosses the channel, for the sequence diagram and progress
    clock: Clock
    monotonic: Clock
    emit: Callable[[NetworkEvent], None]
    keys: SessionKeys  # the app's: sessions started and ended, frames answered
    observe: Callable[[str, FrameReceived], None]  # on_message handlers (a debug hook)
    dropped: Callable[[Link, str], None]  # the registry forgets the link and records why
    turn_report: Callable[[], PreflightReport | None] = lambda: None  # the last preflight


__all__ = ["LinkContext", "NoKeys", "SessionKeys"]
