"""One peer connection, from offer to close: a :class:`Link`.

A link owns everything that lives and dies with one connection: the channel binding,
the sans-IO :class:`~volli_nb.core.protocol.session.Session` (from the moment the
channel opens), the frames in and out, the task that runs the session's timers and
heartbeat, and closing.  It is made with its store's
:class:`~volli_nb.net.link_host.LinkSetup`, talks upward only to its
:class:`~volli_nb.net.link_host.LinkOwner`, and leaves three things to parts that know
nothing of sessions or of it: aiortc's side (:class:`~volli_nb.net.connection.Connection`:
states, the channel, why it is not up), what it tells
(:class:`~volli_nb.net.link_report.LinkReport`: log, trace, counters, events), and
writing with back-pressure (:class:`~volli_nb.net.channel_writer.ChannelWriter`).

- **Binding**: once the channel opens, each side sends a hello signed by its identity
  key over the digests of both certificates its DTLS handshake used (read from the DTLS
  session, not from SDP text); nothing else is sent before that verifies (but PONGs,
  which answer the peer's PINGs and carry nothing of ours), and a mismatch
  (or no finished handshake within ``verify_timeout``) closes the connection.  A
  finished handshake (the first, or a re-key) goes to the owner before ``PeerOnline``.
- **One frame up, one verdict down**: each received bundle goes to the owner as one
  ``FrameReceived``; the app opens and stores it in one transaction and answers once
  (``Verdict``), and the session acknowledges and refuses accordingly.  Bad input refuses
  its frame with a log line, never ends the transport, except a HELLO that does not verify.
- **Sending**: the task lets the session bundle what was queued, control frames first,
  and holds the channel's buffer to about a second of measured goodput.
- **Heartbeat**: a ping every ``heartbeat_interval``; dead after the session's silence
  limit, counted only while our own loop listened (a notebook cell computing is not the
  peer's silence); any SCTP packet counts as life, because aiortc alone notices a
  vanished peer only after ~30 s, and then says ``closed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection

from volli_nb.base.errors import (
    ChannelBindingFailed,
    PeerError,
    TransportClosed,
    UnknownPeer,
    VolliError,
)
from volli_nb.core.crypto.envelope import Sealed
from volli_nb.core.crypto.identity import PublicIdentity
from volli_nb.core.protocol import events as ev
from volli_nb.core.protocol.frames import HELLO
from volli_nb.core.protocol.session import Session
from volli_nb.net import aiortc_compat, aiortc_sctp
from volli_nb.net.channel_writer import ChannelWriter
from volli_nb.net.connection import Connection
from volli_nb.net.events import CandidateView, PeerStats
from volli_nb.net.link_host import LinkOwner, LinkSetup
from volli_nb.net.link_report import LinkReport

log = logging.getLogger(__name__)


class Link:
    """Everything we hold for one peer; dropped as a whole when the connection ends."""

    def __init__(
        self,
        setup: LinkSetup,
        owner: LinkOwner,
        peer_id: str,
        peer: PublicIdentity | None,
        pc: RTCPeerConnection,
        role: str,
    ) -> None:
        self.setup, self.owner = setup, owner
        self.report = LinkReport(setup, owner, peer_id)
        self.peer = peer
        self.session: Session | None = None  # once the channel is open
        self.writer: ChannelWriter | None = None  # likewise
        self.wake = asyncio.Event()  # something to send, or a timer to re-read
        self.verified = False
        self.tasks: set[asyncio.Task[Any]] = set()
        self.error: VolliError | None = None
        self.closed = False
        self.connection = Connection(pc, role, setup, self)  # follows its states from now

    @property
    def connected(self) -> bool:
        """Open, verified, and not closing: messages may be sent."""
        return (
            self.verified
            and not self.closed
            and self.channel is not None
            and self.channel.readyState == "open"
        )

    @property
    def peer_id(self) -> str:
        """A provisional "pair-…" token until the answer names the peer."""
        return self.report.peer_id

    @peer_id.setter
    def peer_id(self, peer_id: str) -> None:
        self.report.peer_id = peer_id

    @property
    def stats(self) -> PeerStats:
        return self.report.stats

    def log(self, category: str, message: str, **data: Any) -> None:
        self.report.log(category, message, **data)

    # --- what the panels read -------------------------------------------------------

    @property
    def pc(self) -> RTCPeerConnection:
        return self.connection.pc

    @property
    def role(self) -> str:
        """Either "offer" or "answer"."""
        return self.connection.role

    @property
    def channel(self) -> RTCDataChannel | None:
        return self.connection.channel

    def candidates(self) -> CandidateView:
        return self.connection.candidates()

    def diagnose(self) -> str:
        return self.connection.diagnose(self.verified)

    def endpoint(self) -> dict[str, Any]:
        """Whether synchronisation can reach the peer now, and over which channel."""
        channel = self.channel
        return {
            "reachable": self.connected,
            "channel": channel.label if channel else None,
            "channel_state": channel.readyState if channel else None,
            "connection_state": self.pc.connectionState,
            "verified": self.verified,
            "in_flight": len(self.session.in_flight) if self.session else 0,
        }

    # --- the channel opens ----------------------------------------------------------

    def data(self, data: bytes | str) -> None:
        if self.session is not None and not self.closed:
            self.on_data(data)

    def channel_open(self) -> None:
        if self.session is not None or self.channel is None:
            return
        certificates = self.channel_certificates()
        if certificates is None:
            self.fail(ChannelBindingFailed("the DTLS handshake left no certificates to bind"))
            return
        if self.peer is None:
            self.fail(UnknownPeer("channel opened before the answer named the peer"))
            return
        config = self.setup.config
        local, remote = certificates
        self.session = session = Session(
            self.setup.identity,
            self.peer,
            local_certificate=local,
            remote_certificate=remote,
            max_message_size=min(config.max_chunk, aiortc_compat.remote_max_message_size(self.pc)),
            ack_timeout=config.ack_timeout,
            adaptive_ack=config.adaptive_ack,
            retransmit=False,  # the data channel is reliable and ordered
            bundle=config.bundle,
            max_frame_bytes=config.max_frame_bytes,
        )
        self.writer = ChannelWriter(self.channel)
        self.log("channel", "data channel open; sending the session handshake")
        self.stats.last_seen = self.setup.clock()
        for frame in session.hello():
            self.send_now(frame)
        self.spawn(self._run(session))  # the link's task; cancelled when it drops
        self.spawn(self._verify_deadline())

    def channel_certificates(self) -> tuple[bytes, bytes] | None:
        """SHA-256 of (our, the peer's) DTLS certificate, as the DTLS handshake saw them,
        never as the SDP claimed: a relay that ends DTLS on both sides shows each victim
        its own certificate, so the two sides' hellos name different pairs and neither
        verifies.  (A test overrides this to lie.)"""
        return aiortc_compat.certificate_digests(self.pc)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as one of the link's tasks (cancelled when the link drops)."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _verify_deadline(self) -> None:
        timeout = self.setup.config.verify_timeout
        await asyncio.sleep(timeout)
        if not self.verified and not self.closed:
            self.fail(
                ChannelBindingFailed(
                    f"no valid channel binding from {self.peer_id} within {timeout:g} s; closing"
                )
            )

    # --- receiving ------------------------------------------------------------------

    def on_data(self, data: bytes | str) -> None:
        session = self.session
        assert session is not None  # the channel's message handler checks
        raw = data.encode() if isinstance(data, str) else data
        self.report.received(raw)
        try:
            events = session.receive(raw, self.setup.monotonic())
        except (ChannelBindingFailed, UnknownPeer) as exc:
            self.fail(exc)
            return
        except PeerError as exc:
            if raw[1:2] == bytes((HELLO,)) or not session.verified:
                self.fail(exc)  # a hello that does not verify: not who it claims to be
                return
            # Malformed or forged frames are dropped and logged; nothing is stored.
            self.error = exc
            self.log("error", f"rejected frame: {type(exc).__name__}: {exc}")
            return
        except VolliError as exc:
            self.fail(exc)
            return
        except Exception as exc:  # a bug, never the transport's end: the frame is dropped
            log.exception("receiving a frame failed")
            self.log("error", f"rejected frame (internal error): {type(exc).__name__}: {exc}")
            return
        for event in events:
            self._dispatch(session, event)
        self.wake.set()

    def _dispatch(self, session: Session, event: ev.Event) -> None:
        if isinstance(event, ev.FrameReceived):
            self._frame(session, event)
        elif isinstance(event, ev.PeerVerified):
            self.owner.started(self.peer_id, event.handshake)  # before PeerOnline
            self.verified = True
            self.report.verified(event.handshake)
        elif isinstance(event, ev.Rekeyed):
            self.owner.started(self.peer_id, event.handshake)
            self.report.rekeyed(event)
        elif isinstance(event, ev.PeerClosed):
            self.log("channel", f"peer said bye: {event.reason}")
            self.spawn(self.close(f"peer closed: {event.reason}"))
        else:
            self.report.told(event)

    def _frame(self, session: Session, event: ev.FrameReceived) -> None:
        """One frame up, one verdict down."""
        self.stats.messages_in += len(event.bundle.envelopes)
        try:
            verdict = self.owner.frame(self.peer_id, event)
        except Exception as exc:  # the app answers every frame; a bug refuses it, unacked
            log.exception("the app failed on a received frame")
            self.log("error", f"received frame not stored: {type(exc).__name__}: {exc}")
            verdict = ev.Verdict()
        session.settle(verdict, clock_ms=self.clock_ms())

    def clock_ms(self) -> int:
        return int(self.setup.clock() * 1000)

    # --- sending --------------------------------------------------------------------

    async def send_sealed(self, session_id: bytes, item: Sealed) -> None:
        """Queue an envelope sealed under ``session_id``; wait while more than
        ``buffer_high`` bytes are queued (back-pressure).  :class:`StaleSession` if the
        channel runs another session now (nothing queued: seal it again)."""
        session, writer = self.session, self.writer
        if session is None or writer is None or not self.connected:
            raise TransportClosed("data channel is not open")
        self.report.queued(item)
        session.queue_sealed(session_id, item, self.setup.monotonic())
        self.wake.set()
        while session.queued_bytes > self.setup.config.buffer_high:
            await writer.wait_room()
            if self.closed:
                raise TransportClosed("connection closed while the message waited to be sent")

    def send_now(self, frame: bytes) -> None:
        """Write ``frame`` at once (a hello, a bye), whatever the channel's buffer holds."""
        if self.writer is None:
            raise TransportClosed("data channel is not open")
        self.writer.write(frame)
        self.report.sent(frame)

    async def _send(self, session: Session, writer: ChannelWriter, frame: bytes) -> None:
        config = self.setup.config
        # About a second of goodput in the buffer: pongs and ACKs wait less behind it.
        await writer.wait_below(session.quality.send_buffer(config.buffer_low, config.buffer_high))
        self.send_now(frame)

    # --- the link's task ----------------------------------------------------------------

    async def _run(self, session: Session) -> None:
        """Timers of one link: retransmissions, ACK batching, heartbeat, liveness."""
        monotonic, writer = self.setup.monotonic, self.writer
        assert writer is not None  # made with the session
        next_ping = listening_since = monotonic()  # since our own loop last stalled
        try:
            while not self.closed:
                now = monotonic()
                deadline = session.next_deadline()
                wake_at = min(next_ping, deadline) if deadline is not None else next_ping
                if wake_at > now:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), wake_at - now)
                self.wake.clear()
                now = monotonic()
                for event in session.handle_timer(now):
                    self._dispatch(session, event)
                if now >= next_ping:
                    interval = self.setup.config.heartbeat_interval
                    if now - next_ping > interval:  # this loop was blocked, not the peer silent
                        listening_since = now
                    next_ping = now + interval
                    if not await self._heartbeat(session, writer, now, listening_since):
                        return
                await self._flush(session, writer)
        except TransportClosed:
            return

    async def _heartbeat(
        self, session: Session, writer: ChannelWriter, now: float, listening_since: float
    ) -> bool:
        """A ping, unless the peer was silent too long while we listened: then close the
        link (False)."""
        limit = session.silence_limit(self.setup.config.dead_after)
        age = aiortc_sctp.seconds_since_received(self.pc.sctp)
        if age is not None:  # SCTP packets count even while frames wait
            session.heard_from_transport(now - age)
        if session.is_dead(now, limit) and now - listening_since > limit:
            await self.close(f"no heartbeat for {limit:.3g} s (peer presumed dead)")
            return False
        await self._send(session, writer, session.ping(now, self.clock_ms()))
        return True

    async def _flush(self, session: Session, writer: ChannelWriter) -> None:
        """Send what the session has; control frames get a turn every ``burst_bytes``."""
        while True:
            out = session.data_to_send(self.setup.monotonic(), self.setup.config.burst_bytes)
            for frame in out:
                await self._send(session, writer, frame)
            writer.made_room()  # wakes senders waiting on the session's queue
            if not out or not session.has_output:
                break

    # --- closing ------------------------------------------------------------------------

    def fail(self, error: VolliError) -> None:
        self.error = error
        self.log("error", f"{type(error).__name__}: {error}")
        self.spawn(self.close(f"{type(error).__name__}: {error}"))

    def drop(self, reason: str) -> None:
        """Forget the link at once; its tasks are cancelled and in-flight messages reported."""
        if self.closed:
            return
        self.closed = True
        self.wake.set()
        if self.writer is not None:
            self.writer.stop()
        self.owner.dropped(self, reason)
        session = self.session
        if session is not None and session.session_id is not None:
            self.owner.ended(self.peer_id, session.session_id)
        in_flight = tuple(session.in_flight) if session else ()
        current = asyncio.current_task()
        for task in list(self.tasks):
            if task is not current:
                task.cancel()
        self.report.offline(reason, in_flight)

    async def close(self, reason: str) -> None:
        """Say bye if we can, drop the link, and close the connection (bounded)."""
        if not self.closed and self.session is not None and self.channel is not None:
            with contextlib.suppress(Exception):
                if self.channel.readyState == "open":
                    self.channel.send(self.session.close(reason[:200]))
        self.drop(reason)
        await self.connection.close()

    async def cancel_tasks(self, timeout: float = 0.2) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)


__all__ = ["Link"]
