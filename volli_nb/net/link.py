"""One peer connection: its RTCPeerConnection, data channel and sans-IO session.

A :class:`Link` owns everything that lives and dies with one connection: the aiortc
callbacks, the task that runs the session's timers and heartbeat, sending with
back-pressure, and closing.  :class:`~volli_nb.net.network_store.NetworkStore` keeps
the links by peer id and hands each the :class:`LinkContext` they share.

- **Channel binding**: once the channel opens, each side signs both DTLS fingerprints
  with its identity key; nothing else is sent before that verifies, and a mismatch (or
  no valid binding within ``verify_timeout``) closes the connection.
- **Heartbeat**: a ping every 0.5 s; dead after 2.5 s of silence on a clean link, longer
  when stalls were measured, because aiortc alone notices a vanished peer only after
  ~30 s, and then says ``closed``.  Any SCTP packet from the peer counts as life.
- **Sending**: the run loop lets the session bundle whatever was queued, control frames
  first; the data channel's buffer is held to about a second of measured goodput (a deep
  buffer on a slow link delays every pong and ACK behind it), through ``bufferedAmount``
  and ``bufferedamountlow``.
- **Counters** of our own, since ``getStats()`` is empty for data channels.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection

from volli_nb.base.clock import Clock
from volli_nb.base.errors import (
    ChannelBindingFailed,
    PeerError,
    TransportClosed,
    UnknownPeer,
    VolliError,
)
from volli_nb.core import sdp
from volli_nb.core.crypto.identity import Identity, PublicIdentity
from volli_nb.core.eventlog import EventLog
from volli_nb.core.netconfig import NetworkConfig
from volli_nb.core.protocol.events import (
    Acked,
    DeliveryTimeout,
    Event,
    MessageReceived,
    PeerClosed,
    PeerVerified,
    Pong,
)
from volli_nb.core.protocol.session import Session
from volli_nb.net import aiortc_compat
from volli_nb.net.events import (
    CandidateView,
    Delivered,
    IncomingEnvelope,
    NetworkEvent,
    PeerOffline,
    PeerOnline,
    PeerStats,
    Undelivered,
)

log = logging.getLogger(__name__)

CHANNEL_LABEL = "volli"


@dataclass
class LinkContext:
    """What every link of one NetworkStore shares: who we are, the configuration, where to
    report, and the clocks (``clock`` for the times people read, ``monotonic`` for timers)."""

    identity: Identity
    config: NetworkConfig
    log: EventLog
    seen: Callable[[bytes], bool] | None
    clock: Clock
    monotonic: Clock
    emit: Callable[[NetworkEvent], None]
    deliver: Callable[[IncomingEnvelope], None]
    batch: Callable[[], contextlib.AbstractContextManager[Any]]
    dropped: Callable[[Link, str], None]  # the registry forgets the link and records why


class Link:
    """Everything we hold for one peer; dropped as a whole when the connection ends."""

    def __init__(
        self,
        ctx: LinkContext,
        peer_id: str,
        peer: PublicIdentity | None,
        pc: RTCPeerConnection,
        role: str,
    ) -> None:
        self.ctx = ctx
        self.peer_id = peer_id  # a provisional "pair-…" token until the answer names the peer
        self.peer = peer
        self.pc = pc
        self.role = role  # "offer" or "answer"
        self.channel: RTCDataChannel | None = None
        self.session: Session | None = None
        self.verified = False
        self.stats = PeerStats()
        self.wake = asyncio.Event()
        self.drained = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.error: VolliError | None = None
        self.closed = False

    @property
    def connected(self) -> bool:
        """Open, verified, and not closing: messages may be sent."""
        return (
            self.verified
            and not self.closed
            and self.channel is not None
            and self.channel.readyState == "open"
        )

    def _log(self, category: str, message: str, **data: Any) -> None:
        self.ctx.log.add(category, message, peer_id=self.peer_id, **data)

    # --- what the panels read -------------------------------------------------------

    def candidates(self) -> CandidateView:
        local = self.pc.localDescription.sdp if self.pc.localDescription else None
        remote = self.pc.remoteDescription.sdp if self.pc.remoteDescription else None
        return CandidateView(
            sdp.candidates(local), sdp.candidates(remote), aiortc_compat.selected_pair(self.pc)
        )

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

    def diagnose(self) -> str:
        ice = self.pc.iceConnectionState
        if ice in ("new", "checking", "failed"):
            return f"ICE state is {ice!r}. " + self.failure_hint()
        if not self.verified:
            return f"ICE is {ice!r} but the channel binding has not verified yet"
        return "connected"

    def failure_hint(self) -> str:
        """Why ICE failed, in words that say what to try next."""
        description = self.pc.localDescription
        local = sdp.candidates(description.sdp if description else None)
        config = self.ctx.config
        turn = [u for s in config.ice_servers for u in s.url_list() if u.startswith("turn")]
        if turn and not any(c.type == "relay" for c in local):
            return (
                f"ICE failed: no relay candidate from {turn[0]}; check the TURN server's "
                "address, username and credential"
            )
        if not turn:
            return (
                "ICE failed: no candidate pair worked. If the peers are behind NATs "
                "(symmetric NAT especially), configure a TURN server: "
                "set_configuration([IceServer('turn:HOST:3478', USER, PASSWORD)])"
            )
        return "ICE failed: no candidate pair worked, not even through the TURN relay"

    # --- aiortc callbacks -----------------------------------------------------------

    def watch(self) -> None:
        """Follow the peer connection's states; a failed or closed one drops the link."""
        pc = self.pc

        @pc.on("signalingstatechange")
        def _sig() -> None:
            self._log("signaling", f"signaling state {pc.signalingState}")

        @pc.on("icegatheringstatechange")
        def _gather() -> None:
            self._log("ice", f"gathering state {pc.iceGatheringState}")

        @pc.on("iceconnectionstatechange")
        def _ice() -> None:
            self._log("ice", f"ICE state {pc.iceConnectionState}")

        @pc.on("connectionstatechange")
        async def _conn() -> None:
            state = pc.connectionState
            self._log("connection", f"connection state {state}")
            pair = aiortc_compat.selected_pair(pc) if state == "connected" else None
            if pair:
                local, remote = pair
                self._log(
                    "ice",
                    f"selected pair {local.type} {local.endpoint} ↔ "
                    f"{remote.type} {remote.endpoint}",
                )
            if state in ("failed", "closed"):
                self.drop(self.failure_hint() if state == "failed" else "connection closed")

        @pc.on("datachannel")
        def _dc(channel: RTCDataChannel) -> None:
            if channel.label == CHANNEL_LABEL:
                self.attach_channel(channel)

    def open_channel(self) -> None:
        """The offering side creates the one reliable, ordered channel."""
        self.attach_channel(self.pc.createDataChannel(CHANNEL_LABEL, ordered=True))

    def attach_channel(self, channel: RTCDataChannel) -> None:
        self.channel = channel
        channel.bufferedAmountLowThreshold = self.ctx.config.buffer_low

        @channel.on("open")
        def _open() -> None:
            self._on_open()

        if channel.readyState == "open":  # the answer side gets it already open
            self._on_open()

        @channel.on("close")
        def _close() -> None:
            self._log("channel", "data channel closed")
            self.drop("data channel closed")

        @channel.on("bufferedamountlow")
        def _low() -> None:
            self.drained.set()

        @channel.on("message")
        def _message(data: bytes | str) -> None:
            self._on_data(data)

    def _on_open(self) -> None:
        if self.session is not None:
            return
        local, remote = self.pc.localDescription.sdp, self.pc.remoteDescription.sdp
        offer_sdp, answer_sdp = (local, remote) if self.role == "offer" else (remote, local)
        offer_fp, answer_fp = sdp.fingerprint(offer_sdp), sdp.fingerprint(answer_sdp)
        if offer_fp is None or answer_fp is None:
            self.fail(ChannelBindingFailed("no sha-256 DTLS fingerprint in SDP"))
            return
        if self.peer is None:
            self.fail(UnknownPeer("channel opened before the answer named the peer"))
            return
        config = self.ctx.config
        self.session = Session(
            self.ctx.identity,
            self.peer,
            seen=self.ctx.seen,
            expected_fingerprints=(offer_fp, answer_fp),
            max_message_size=min(config.max_chunk, aiortc_compat.remote_max_message_size(self.pc)),
            ack_timeout=config.ack_timeout,
            adaptive_ack=config.adaptive_ack,
            retransmit=False,  # the data channel is reliable and ordered
            bundle=config.bundle,
            max_frame_bytes=config.max_frame_bytes,
        )
        self._log("channel", "data channel open; sending channel binding")
        self.stats.last_seen = self.ctx.clock()
        for frame in self.hello_frames(offer_fp, answer_fp):
            self._send_now(frame)
        self._spawn(self._run())
        self._spawn(self._verify_deadline())

    def hello_frames(self, offer_fp: str, answer_fp: str) -> list[bytes]:
        """Our signature over both DTLS fingerprints (a test overrides this to lie)."""
        assert self.session is not None
        return self.session.hello(offer_fp, answer_fp)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _verify_deadline(self) -> None:
        timeout = self.ctx.config.verify_timeout
        await asyncio.sleep(timeout)
        if not self.verified and not self.closed:
            self.fail(
                ChannelBindingFailed(
                    f"no valid channel binding from {self.peer_id} within {timeout:g} s; closing"
                )
            )

    # --- the data path ----------------------------------------------------------------

    def _on_data(self, data: bytes | str) -> None:
        session = self.session
        if session is None or self.closed:
            return
        raw = data.encode() if isinstance(data, str) else data
        self.stats.bytes_in += len(raw)
        self.stats.last_seen = self.ctx.clock()
        try:
            events = session.receive(raw, self.ctx.monotonic())
        except (ChannelBindingFailed, UnknownPeer) as exc:
            self.fail(exc)
            return
        except PeerError as exc:
            # Malformed or forged frames are dropped and logged; nothing is stored.
            self.error = exc
            self._log("error", f"rejected frame: {type(exc).__name__}: {exc}")
            return
        except VolliError as exc:
            self.fail(exc)
            return
        try:
            with self.ctx.batch():  # a bundle's messages: one commit, then one ACK
                for event in events:
                    self._dispatch(event)
        except Exception as exc:  # e.g. the database is locked: nothing was acknowledged
            for event in events:
                if isinstance(event, MessageReceived):
                    session.reject(event.message_id)  # a resend is offered again
            log.exception("storing received messages failed")
            self._log("error", f"storing received messages failed: {exc}")
        self.wake.set()

    def _dispatch(self, event: Event) -> None:
        peer_id = self.peer_id
        if isinstance(event, PeerVerified):
            self.verified = True
            self.stats.connected_at = self.ctx.clock()
            self._log("dtls", "channel binding verified (both DTLS fingerprints signed)")
            self.ctx.emit(PeerOnline(peer_id))
        elif isinstance(event, MessageReceived):
            self.stats.messages_in += 1
            self.ctx.deliver(IncomingEnvelope(peer_id, event.message_id, event.envelope))
        elif isinstance(event, Acked):
            if event.rtt is not None:
                self.stats.rtt = event.rtt
            self._log("message", f"signed ACK for {len(event.message_ids)} message(s)")
            self.ctx.emit(Delivered(peer_id, tuple(event.message_ids), event.rtt))
        elif isinstance(event, Pong):
            self.stats.rtt = event.rtt
        elif isinstance(event, DeliveryTimeout):
            self.ctx.emit(Undelivered(peer_id, event.message_id, "no ACK before the timeout"))
        elif isinstance(event, PeerClosed):
            self._log("channel", f"peer said bye: {event.reason}")
            self._spawn(self.close(f"peer closed: {event.reason}"))

    def accept(self, message_id: bytes) -> None:
        """The application stored ``message_id``: acknowledge it (batched, signed)."""
        if self.session is not None:
            self.session.accept(message_id)
            self.wake.set()

    def reject(self, message_id: bytes, error: VolliError) -> None:
        if self.session is not None:
            self.session.reject(message_id, error)

    async def send_envelope(self, message_id: bytes, envelope: bytes) -> None:
        """Queue an envelope on the session; wait while more than ``buffer_high`` bytes
        are queued (back-pressure)."""
        session = self.session
        assert session is not None
        session.queue_message(message_id, envelope, self.ctx.monotonic())
        self.stats.messages_out += 1
        self.wake.set()
        while session.queued_bytes > self.ctx.config.buffer_high:
            await self._wait_drained()
            if self.closed:
                raise TransportClosed("connection closed while the message waited to be sent")

    async def _wait_drained(self) -> None:
        self.drained.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drained.wait(), 1.0)

    def _send_now(self, frame: bytes) -> None:
        if self.channel is None or self.channel.readyState != "open":
            raise TransportClosed("data channel is not open")
        self.channel.send(frame)
        self.stats.bytes_out += len(frame)

    async def _send_frame(self, frame: bytes) -> None:
        channel, config = self.channel, self.ctx.config
        high = config.buffer_high
        if self.session is not None:  # about a second of goodput: pongs wait less behind it
            high = self.session.quality.send_buffer(config.buffer_low, high)
        while channel is not None and channel.bufferedAmount > high:
            await self._wait_drained()
            if self.closed:
                raise TransportClosed("connection closed while waiting to send")
        self._send_now(frame)

    # --- the link's task ----------------------------------------------------------------

    async def _run(self) -> None:
        """Timers of one link: retransmissions, ACK batching, heartbeat, liveness."""
        session, monotonic = self.session, self.ctx.monotonic
        assert session is not None
        next_ping = monotonic()
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
                    self._dispatch(event)
                if now >= next_ping:
                    next_ping = now + self.ctx.config.heartbeat_interval
                    if not await self._heartbeat(session, now):
                        return
                await self._flush(session)
        except TransportClosed:
            return

    async def _heartbeat(self, session: Session, now: float) -> bool:
        """A ping, unless the peer was silent too long: then close the link (False)."""
        limit = session.silence_limit(self.ctx.config.dead_after)
        age = aiortc_compat.seconds_since_received(self.pc.sctp)
        if age is not None:  # SCTP packets count even while frames wait
            session.heard_from_transport(now - age)
        if session.is_dead(now, limit):
            await self.close(f"no heartbeat for {limit:.3g} s (peer presumed dead)")
            return False
        await self._send_frame(session.ping(now))
        return True

    async def _flush(self, session: Session) -> None:
        """Send what the session has; control frames get a turn every ``burst_bytes``."""
        while True:
            out = session.data_to_send(self.ctx.monotonic(), self.ctx.config.burst_bytes)
            for frame in out:
                await self._send_frame(frame)
            self.drained.set()  # wakes senders waiting on the session's queue
            if not out or not session.has_output:
                break

    # --- closing ------------------------------------------------------------------------

    def fail(self, error: VolliError) -> None:
        self.error = error
        self._log("error", f"{type(error).__name__}: {error}")
        self._spawn(self.close(f"{type(error).__name__}: {error}"))

    def drop(self, reason: str) -> None:
        """Forget the link at once; its tasks are cancelled and in-flight messages reported."""
        if self.closed:
            return
        self.closed = True
        self.wake.set()
        self.drained.set()
        self.ctx.dropped(self, reason)
        in_flight = tuple(self.session.in_flight) if self.session else ()
        current = asyncio.current_task()
        for task in list(self.tasks):
            if task is not current:
                task.cancel()
        self._log("connection", f"peer offline: {reason}")
        for message_id in in_flight:
            self.ctx.emit(Undelivered(self.peer_id, message_id, reason))
        self.ctx.emit(PeerOffline(self.peer_id, reason, in_flight))

    async def close(self, reason: str) -> None:
        """Say bye if we can, drop the link, and close the connection (bounded)."""
        if not self.closed and self.session is not None and self.channel is not None:
            with contextlib.suppress(Exception):
                if self.channel.readyState == "open":
                    self.channel.send(self.session.close(reason[:200]))
        self.drop(reason)
        try:
            await asyncio.wait_for(asyncio.shield(self.pc.close()), self.ctx.config.close_timeout)
        except (TimeoutError, asyncio.CancelledError):
            self._log("connection", "close timed out; abandoned")
        except Exception as exc:
            self._log("error", f"close failed: {exc}")

    async def cancel_tasks(self, timeout: float = 0.2) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)


__all__ = ["CHANNEL_LABEL", "Link", "LinkContext"]
