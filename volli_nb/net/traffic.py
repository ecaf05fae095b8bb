"""Frames between one open data channel and its sans-IO session.

Created by a :class:`~volli_nb.net.link.Link` when its channel opens (that is when the
session exists), a :class:`Traffic` receives, sends with back-pressure, and runs the
link's task: the session's timers, the heartbeat and the send loop.

- **One frame up, one verdict down**: each received bundle goes to the app's
  :class:`~volli_nb.net.link_context.SessionKeys` as one :class:`FrameReceived`; the app opens it,
  stores what opens in one transaction and answers once (:class:`Verdict`), and the
  session acknowledges and refuses accordingly.  Frames that carry no message (PING,
  PONG, ACK) never reach the app's storage.  Bad input of any kind refuses its frame
  with a log line; it never ends the transport, except a HELLO that does not verify
  (then the channel is not who it claims to be, and closes).

- **Heartbeat**: a ping every ``heartbeat_interval``; dead after ``dead_after`` seconds of
  silence on a clean link, longer when stalls were measured, because aiortc alone
  notices a vanished peer only after ~30 s, and then says ``closed``.  Any SCTP packet
  from the peer counts as life (the pong itself may wait behind a lost packet).  Silence
  counts only while we listened: when our own event loop was blocked (a notebook cell
  computing for seconds), the peer gets the full limit again from when it unblocked.
- **Clocks**: every ping carries our wall clock, and the peer's pings carry theirs, so
  both sides see the skew from the first ping on (it follows the HELLO); a skew past
  ``clock_skew_warn`` is logged once when it appears and once when it goes.
- **Storage**: a frame whose messages could not be stored refuses them (signed, with a
  code the sender can act on); storage failures are the app's to report, once per change.
- **Sessions**: a finished handshake (the first, or a re-key) goes to the app before
  :class:`PeerOnline` is emitted, so whatever a listener sends is sealed under it.
- **Sending**: the loop lets the session bundle whatever was queued, control frames
  first, and holds the channel's buffer to about a second of measured goodput, through
  ``bufferedAmount`` and ``bufferedamountlow``: a deep buffer on a slow link delays
  every pong and ACK queued behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from aiortc import RTCDataChannel

from volli_nb.base.errors import (
    ChannelBindingFailed,
    PeerError,
    TransportClosed,
    UnknownPeer,
    VolliError,
)
from volli_nb.core.crypto.envelope import Sealed
from volli_nb.core.protocol.clock_skew import SkewMonitor, describe_skew
from volli_nb.core.protocol.events import (
    Acked,
    DeliveryTimeout,
    Event,
    FrameReceived,
    PeerClock,
    PeerClosed,
    PeerVerified,
    Pong,
    Refused,
    Rekeyed,
    Verdict,
)
from volli_nb.core.protocol.frames import HELLO
from volli_nb.core.protocol.session import Session
from volli_nb.net import aiortc_compat
from volli_nb.net.events import (
    ClockSkew,
    Delivered,
    DeliveryRefused,
    PeerOnline,
    Undelivered,
)

if TYPE_CHECKING:
    from volli_nb.net.link import Link

log = logging.getLogger(__name__)


class Traffic:
    """One open channel's data path and the task that keeps it moving."""

    def __init__(self, link: Link, session: Session, channel: RTCDataChannel) -> None:
        self.link, self.session, self.channel = link, session, channel
        self.ctx = link.ctx
        self.wake = asyncio.Event()  # something to send, or a timer to re-read
        self._listening_since = link.ctx.monotonic()  # since our own loop last stalled
        self.drained = asyncio.Event()  # the channel's buffer (or the session's queue) fell
        self.skew = SkewMonitor(link.ctx.config.clock_skew_warn)

        @channel.on("bufferedamountlow")
        def _low() -> None:
            self.drained.set()

    def stop(self) -> None:
        """The link closed: wake every waiter so it sees that."""
        self.wake.set()
        self.drained.set()

    # --- receiving ------------------------------------------------------------------

    def on_data(self, data: bytes | str) -> None:
        link, session = self.link, self.session
        raw = data.encode() if isinstance(data, str) else data
        link.stats.bytes_in += len(raw)
        link.stats.last_seen = self.ctx.clock()
        self.ctx.trace.received(link.peer_id, raw)
        try:
            events = session.receive(raw, self.ctx.monotonic())
        except (ChannelBindingFailed, UnknownPeer) as exc:
            link.fail(exc)
            return
        except PeerError as exc:
            if raw[1:2] == bytes((HELLO,)) or not session.verified:
                link.fail(exc)  # a hello that does not verify: not who it claims to be
                return
            # Malformed or forged frames are dropped and logged; nothing is stored.
            link.error = exc
            link.log("error", f"rejected frame: {type(exc).__name__}: {exc}")
            return
        except VolliError as exc:
            link.fail(exc)
            return
        except Exception as exc:  # a bug, never the transport's end: the frame is dropped
            log.exception("receiving a frame failed")
            link.log("error", f"rejected frame (internal error): {type(exc).__name__}: {exc}")
            return
        for event in events:
            self._dispatch(event)
        self.wake.set()

    def _frame(self, event: FrameReceived) -> None:
        """One frame up, one verdict down."""
        link = self.link
        link.stats.messages_in += len(event.bundle.envelopes)
        self.ctx.observe(link.peer_id, event)
        try:
            verdict = self.ctx.keys.frame(link.peer_id, event)
        except Exception as exc:  # the app answers every frame; a bug refuses it, unacked
            log.exception("the app failed on a received frame")
            link.log("error", f"received frame not stored: {type(exc).__name__}: {exc}")
            verdict = Verdict()
        self.session.settle(verdict, clock_ms=self.clock_ms())

    def clock_ms(self) -> int:
        return int(self.ctx.clock() * 1000)

    def _dispatch(self, event: Event) -> None:
        link, emit = self.link, self.ctx.emit
        if isinstance(event, FrameReceived):
            self._frame(event)
        elif isinstance(event, PeerVerified):
            self.ctx.keys.started(link.peer_id, event.handshake)
            link.verified = True
            link.stats.connected_at = self.ctx.clock()
            link.log(
                "dtls",
                "channel binding verified (both DTLS certificates signed in the handshake); "
                f"session {event.handshake.session_id[:4].hex()} started",
                kind="session.started",
                session=event.handshake.session_id[:4].hex(),
                initiator=event.handshake.initiator,
            )
            emit(PeerOnline(link.peer_id))
        elif isinstance(event, Rekeyed):
            self.ctx.keys.started(link.peer_id, event.handshake)
            link.log(
                "dtls",
                f"re-keyed: new session {event.handshake.session_id[:4].hex()}; "
                f"{len(event.resend)} message(s) to seal again",
                kind="session.rekeyed",
                session=event.handshake.session_id[:4].hex(),
            )
            for message_id in event.resend:
                emit(Undelivered(link.peer_id, message_id, "session re-keyed; sealed again"))
        elif isinstance(event, Acked):
            if event.rtt is not None:
                link.stats.rtt = event.rtt
            link.log(
                "message",
                f"signed ACK for {len(event.message_ids)} message(s)",
                kind="ack.verified",
                message_ids=[m.hex() for m in event.message_ids[:64]],
                count=len(event.message_ids),
                rtt=event.rtt,
            )
            self.ctx.trace.acked(link.peer_id, tuple(event.message_ids))
            emit(Delivered(link.peer_id, tuple(event.message_ids), event.rtt))
        elif isinstance(event, Pong):
            link.stats.rtt = event.rtt
        elif isinstance(event, DeliveryTimeout):
            self.ctx.trace.gave_up(link.peer_id, event.message_id, "no ACK before the timeout")
            emit(Undelivered(link.peer_id, event.message_id, "no ACK before the timeout"))
        elif isinstance(event, PeerClosed):
            link.log("channel", f"peer said bye: {event.reason}")
            link.spawn(link.close(f"peer closed: {event.reason}"))
        elif isinstance(event, Refused):
            text = f"peer refused {len(event.message_ids)} message(s): {event.code}"
            link.log("message", text, kind="message.refused", code=str(event.code))
            for message_id in event.message_ids:  # a large send's progress ends here too
                self.ctx.trace.gave_up(link.peer_id, message_id, f"refused: {event.code}")
            emit(DeliveryRefused(link.peer_id, event.message_ids, event.code, event.clock_ms))
        elif isinstance(event, PeerClock):
            self._clock_reading(event.clock_ms)

    def _clock_reading(self, clock_ms: int) -> None:
        """A PING's clock: warn (both logs, once) when the skew appears or goes."""
        link = self.link
        reading = self.skew.observe(clock_ms, self.ctx.clock())
        link.stats.clock_skew = self.skew.skew
        if reading is None:
            return
        text = describe_skew(reading.skew)
        kind = "clock.ok" if reading.within else "clock.skew"
        if not reading.within:
            log.warning("clock skew with %s: %s", link.peer_id, text)
            link.log("connection", f"clock skew: {text}", kind=kind, skew=reading.skew)
        elif not reading.first:
            link.log("connection", f"clocks agree again: {text}", kind=kind, skew=reading.skew)
        self.ctx.emit(ClockSkew(link.peer_id, reading.skew, reading.within, reading.first))

    # --- sending --------------------------------------------------------------------

    async def send_sealed(self, session_id: bytes, item: Sealed) -> None:
        """Queue an envelope sealed under ``session_id``; wait while more than
        ``buffer_high`` bytes are queued (back-pressure)."""
        session = self.session
        self.ctx.trace.expect(self.link.peer_id, item.message_id, len(item.envelope))
        session.queue_sealed(session_id, item, self.ctx.monotonic())
        self.link.stats.messages_out += 1
        self.wake.set()
        while session.queued_bytes > self.ctx.config.buffer_high:
            await self._wait_drained()
            if self.link.closed:
                raise TransportClosed("connection closed while the message waited to be sent")

    async def _wait_drained(self) -> None:
        self.drained.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drained.wait(), 1.0)

    def send_now(self, frame: bytes) -> None:
        if self.channel.readyState != "open":
            raise TransportClosed("data channel is not open")
        self.channel.send(frame)
        self.link.stats.bytes_out += len(frame)
        self.ctx.trace.sent(self.link.peer_id, frame)

    async def _send(self, frame: bytes) -> None:
        config = self.ctx.config
        # About a second of goodput in the buffer: pongs and ACKs wait less behind it.
        high = self.session.quality.send_buffer(config.buffer_low, config.buffer_high)
        while self.channel.bufferedAmount > high:
            await self._wait_drained()
            if self.link.closed:
                raise TransportClosed("connection closed while waiting to send")
        self.send_now(frame)

    # --- the link's task ----------------------------------------------------------------

    async def _run(self) -> None:
        """Timers of one link: retransmissions, ACK batching, heartbeat, liveness."""
        session, monotonic = self.session, self.ctx.monotonic
        next_ping = monotonic()
        try:
            while not self.link.closed:
                now = monotonic()
                deadline = session.next_deadline()
                wake_at = min(next_ping, deadline) if deadline is not None else next_ping
                if wake_at > now:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), wake_at - now)
                self.wake.clear()
                now = monotonic()
                for event in session.handle_timer(now):
                    self._dispatch(event)
                if now >= next_ping:
                    interval = self.ctx.config.heartbeat_interval
                    if now - next_ping > interval:  # this loop was blocked, not the peer silent
                        self._listening_since = now
                    next_ping = now + interval
                    if not await self._heartbeat(now):
                        return
                await self._flush()
        except TransportClosed:
            return

    async def _heartbeat(self, now: float) -> bool:
        """A ping, unless the peer was silent too long while we listened: then close the
        link (False)."""
        session = self.session
        limit = session.silence_limit(self.ctx.config.dead_after)
        age = aiortc_compat.seconds_since_received(self.link.pc.sctp)
        if age is not None:  # SCTP packets count even while frames wait
            session.heard_from_transport(now - age)
        if session.is_dead(now, limit) and now - self._listening_since > limit:
            await self.link.close(f"no heartbeat for {limit:.3g} s (peer presumed dead)")
            return False
        await self._send(session.ping(now, self.clock_ms()))
        return True

    async def _flush(self) -> None:
        """Send what the session has; control frames get a turn every ``burst_bytes``."""
        session = self.session
        while True:
            out = session.data_to_send(self.ctx.monotonic(), self.ctx.config.burst_bytes)
            for frame in out:
                await self._send(frame)
            self.drained.set()  # wakes senders waiting on the session's queue
            if not out or not session.has_output:
                break


__all__ = ["Traffic"]
