"""What one link tells about itself: log lines, the frame trace, counters and events.

A :class:`~volli_nb.net.link.Link` decides (it binds, sends, times out and closes); its
:class:`LinkReport` says so, in the three places people look: the event log (with the
``kind`` the sequence diagram reads), the frame trace behind it and the progress bars,
and the :class:`~volli_nb.net.events.NetworkEvent` stream the app and the panels hear
through the link's owner.  It keeps the link's counters
(:class:`~volli_nb.net.events.PeerStats`: ``getStats()`` is empty for data channels) and
its view of the peer's clock: a skew past ``clock_skew_warn`` is logged once when it
appears and once when it goes.
"""

from __future__ import annotations

import logging
from typing import Any

from volli_nb.base.errors import TransportClosed
from volli_nb.core.crypto.envelope import Sealed
from volli_nb.core.crypto.handshake import HandshakeResult
from volli_nb.core.protocol import events as ev
from volli_nb.core.protocol.clock_skew import SkewMonitor, describe_skew
from volli_nb.net.events import (
    ClockSkew,
    Delivered,
    DeliveryRefused,
    PeerOffline,
    PeerOnline,
    PeerStats,
    Undelivered,
)
from volli_nb.net.link_host import LinkOwner, LinkSetup

log = logging.getLogger(__name__)


class LinkReport:
    """One link's log lines, frame trace, counters and events, under its current peer id."""

    def __init__(self, setup: LinkSetup, owner: LinkOwner, peer_id: str) -> None:
        self.setup, self.owner = setup, owner
        self.peer_id = peer_id  # the link renames it when an answer names the peer
        self.stats = PeerStats()
        self.skew = SkewMonitor(setup.config.clock_skew_warn)

    def log(self, category: str, message: str, **data: Any) -> None:
        self.setup.log.add(category, message, peer_id=self.peer_id, **data)

    # --- frames ---------------------------------------------------------------------

    def sent(self, frame: bytes) -> None:
        self.stats.bytes_out += len(frame)
        self.setup.trace.sent(self.peer_id, frame)

    def received(self, raw: bytes) -> None:
        self.stats.bytes_in += len(raw)
        self.stats.last_seen = self.setup.clock()
        self.setup.trace.received(self.peer_id, raw)

    def queued(self, item: Sealed) -> None:
        """A sealed envelope waits in the session's queue (a large one shows progress)."""
        self.setup.trace.expect(self.peer_id, item.message_id, len(item.envelope))
        self.stats.messages_out += 1

    # --- what the session said ------------------------------------------------------

    def verified(self, handshake: HandshakeResult) -> None:
        self.stats.connected_at = self.setup.clock()
        self.log(
            "dtls",
            "channel binding verified (both DTLS certificates signed in the handshake); "
            f"session {handshake.session_id[:4].hex()} started",
            kind="session.started",
            session=handshake.session_id[:4].hex(),
            initiator=handshake.initiator,
        )
        self.owner.report(PeerOnline(self.peer_id))

    def rekeyed(self, event: ev.Rekeyed) -> None:
        self.log(
            "dtls",
            f"re-keyed: new session {event.handshake.session_id[:4].hex()}; "
            f"{len(event.resend)} message(s) to seal again",
            kind="session.rekeyed",
            session=event.handshake.session_id[:4].hex(),
        )
        for message_id in event.resend:
            self.owner.report(
                Undelivered(self.peer_id, message_id, "session re-keyed; sealed again", False)
            )

    def told(self, event: ev.Event) -> None:
        """An event that changes nothing but counters and what people see."""
        peer_id, trace, report = self.peer_id, self.setup.trace, self.owner.report
        if isinstance(event, ev.Acked):
            if event.rtt is not None:
                self.stats.rtt = event.rtt
            self.log(
                "message",
                f"signed ACK for {len(event.message_ids)} message(s)",
                kind="ack.verified",
                message_ids=[m.hex() for m in event.message_ids[:64]],
                count=len(event.message_ids),
                rtt=event.rtt,
            )
            trace.acked(peer_id, tuple(event.message_ids))
            report(Delivered(peer_id, tuple(event.message_ids), event.rtt))
        elif isinstance(event, ev.Pong):
            self.stats.rtt = event.rtt
        elif isinstance(event, ev.DeliveryTimeout):
            trace.gave_up(peer_id, event.message_id, "no ACK before the timeout")
            report(Undelivered(peer_id, event.message_id, "no ACK before the timeout"))
        elif isinstance(event, ev.Refused):
            text = f"peer refused {len(event.message_ids)} message(s): {event.code}"
            self.log("message", text, kind="message.refused", code=str(event.code))
            for message_id in event.message_ids:  # a large send's progress ends here too
                trace.gave_up(peer_id, message_id, f"refused: {event.code}")
            report(DeliveryRefused(peer_id, event.message_ids, event.code, event.clock_ms))
        elif isinstance(event, ev.PeerClock):
            self.clock_reading(event.clock_ms)

    def clock_reading(self, clock_ms: int) -> None:
        """A PING's clock: warn (both logs, once) when the skew appears or goes."""
        reading = self.skew.observe(clock_ms, self.setup.clock())
        self.stats.clock_skew = self.skew.skew
        if reading is None:
            return
        text = describe_skew(reading.skew)
        kind = "clock.ok" if reading.within else "clock.skew"
        if not reading.within:
            log.warning("clock skew with %s: %s", self.peer_id, text)
            self.log("connection", f"clock skew: {text}", kind=kind, skew=reading.skew)
        elif not reading.first:
            self.log("connection", f"clocks agree again: {text}", kind=kind, skew=reading.skew)
        self.owner.report(ClockSkew(self.peer_id, reading.skew, reading.within, reading.first))

    def offline(self, reason: str, in_flight: tuple[bytes, ...]) -> None:
        """The link dropped: every message in flight is undelivered, then the peer offline.
        Their failure is the channel closing under them (``TransportClosed``), as an attempt
        on a closed channel is: the outbox counts it as the peer away, so a row it made
        stuck is attempted again on the peer's return (:mod:`~volli_nb.core.store.outbox_away`)."""
        self.log("connection", f"peer offline: {reason}")
        self.setup.trace.dropped(self.peer_id, reason)
        closed = f"{TransportClosed.__name__}: {reason}"
        for message_id in in_flight:
            self.owner.report(Undelivered(self.peer_id, message_id, closed))
        self.owner.report(PeerOffline(self.peer_id, reason, in_flight))


__all__ = ["LinkReport"]
