"""NetworkStore: WebRTC data channels to peers, on aiortc.

The seed's NetworkStore, in Python and snake_case.  One ``RTCPeerConnection``
and one reliable, ordered data channel ("volli") per peer; on it, a sans-IO
:class:`~volli_nb.core.protocol.session.Session` does framing, chunking, signed ACKs,
retransmission and pings.  This module only moves bytes and time:

- offer/answer without trickle (aiortc puts every candidate in the SDP);
- channel binding: once the channel opens, each side signs both DTLS
  fingerprints with its identity key; nothing else is sent before that
  verifies, and a mismatch closes the connection;
- a heartbeat (a ping every 0.5 s; dead after 2.5 s of silence on a clean link, longer
  when stalls were measured) because aiortc alone notices a vanished peer only after
  ~30 s, and then says ``closed``;
- a send loop that lets the session bundle whatever was queued, control frames first;
- our own counters, since ``getStats()`` is empty for data channels;
- back-pressure through ``bufferedAmount`` and ``bufferedamountlow``, the buffer held to
  about a second of measured goodput.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from volli_nb.base.errors import (
    ChannelBindingFailed,
    PeerError,
    TransportClosed,
    UnknownPeer,
    UsageError,
    VolliError,
)
from volli_nb.core import sdp
from volli_nb.core.crypto.identity import Identity, PublicIdentity
from volli_nb.core.eventlog import EventLog
from volli_nb.core.netconfig import IceServer, NetworkConfig
from volli_nb.core.progress import ProgressFeed
from volli_nb.core.protocol import session as protocol
from volli_nb.core.protocol.link_quality import LinkQuality
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
from volli_nb.net.frame_trace import FrameTrace

log = logging.getLogger(__name__)


CHANNEL_LABEL = "volli"


@dataclass
class _Link:
    """Everything we hold for one peer; dropped as a whole when the connection ends."""

    peer_id: str  # a provisional "pair-…" token until the answer names the peer
    peer: PublicIdentity | None
    pc: RTCPeerConnection
    role: str  # "offer" or "answer"
    channel: RTCDataChannel | None = None
    session: protocol.Session | None = None
    verified: bool = False
    stats: PeerStats = field(default_factory=PeerStats)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    error: VolliError | None = None
    closed: bool = False


class NetworkStore:
    """Peer connections and their data channels, keyed by peer id."""

    def __init__(
        self,
        identity: Identity,
        contacts: Callable[[str], PublicIdentity | None],
        *,
        config: NetworkConfig | None = None,
        seen: Callable[[bytes], bool] | None = None,
        log: EventLog | None = None,
    ) -> None:
        self.identity = identity
        self._contacts = contacts
        self.config = config or NetworkConfig()
        self._seen = seen
        self.log = log if log is not None else EventLog()
        self.progress = ProgressFeed()  # large sends and receives, chunk by chunk
        self.trace = FrameTrace(self.log, self.progress)  # frames → event log and progress
        self._links: dict[str, _Link] = {}
        self.failures: dict[str, str] = {}  # peer id → why its last connection ended
        self._message_handlers: list[Callable[[IncomingEnvelope], None]] = []
        self._event_handlers: list[Callable[[NetworkEvent], None]] = []
        # Wraps the handling of one received frame's messages (a bundle); the app sets it
        # to a database transaction so a bundle costs one commit.
        self.batch: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext

    # --- the seed's debug surface -------------------------------------------

    @property
    def peers(self) -> dict[str, RTCPeerConnection]:
        """peer id → RTCPeerConnection, as ``messagesStore.networkStore.peers``."""
        return {pid: link.pc for pid, link in self._links.items()}

    @property
    def data_channels(self) -> dict[str, RTCDataChannel]:
        return {pid: link.channel for pid, link in self._links.items() if link.channel}

    @property
    def is_online(self) -> bool:
        """True while at least one peer is connected and verified."""
        return any(self.is_connected(pid) for pid in self._links)

    def is_connected(self, peer_id: str) -> bool:
        link = self._links.get(peer_id)
        return bool(
            link
            and link.verified
            and not link.closed
            and link.channel is not None
            and link.channel.readyState == "open"
        )

    def connected_peers(self) -> list[str]:
        return [pid for pid in self._links if self.is_connected(pid)]

    def stats(self, peer_id: str) -> PeerStats:
        return self._link(peer_id).stats

    def session_stats(self, peer_id: str) -> protocol.SessionStats | None:
        """The session's counters (frames, bundles, ACKs, RTT): None before the channel opens."""
        session = self._link(peer_id).session
        return session.stats if session else None

    def link_quality(self, peer_id: str) -> LinkQuality | None:
        """Measured RTT, loss and goodput, and the ACK timeout they give (None before open)."""
        session = self._link(peer_id).session
        return session.quality if session else None

    def candidates(self, peer_id: str) -> CandidateView:
        pc = self._link(peer_id).pc
        local = pc.localDescription.sdp if pc.localDescription else None
        remote = pc.remoteDescription.sdp if pc.remoteDescription else None
        return CandidateView(
            sdp.candidates(local), sdp.candidates(remote), aiortc_compat.selected_pair(pc)
        )

    def get_sync_endpoint(self) -> dict[str, dict[str, Any]]:
        """Which peers synchronisation can reach now, and over which channel."""
        out: dict[str, dict[str, Any]] = {}
        for pid, link in self._links.items():
            out[pid] = {
                "reachable": self.is_connected(pid),
                "channel": link.channel.label if link.channel else None,
                "channel_state": link.channel.readyState if link.channel else None,
                "connection_state": link.pc.connectionState,
                "verified": link.verified,
                "in_flight": len(link.session.in_flight) if link.session else 0,
            }
        return out

    # --- configuration ------------------------------------------------------

    def set_configuration(
        self,
        ice_servers: Iterable[IceServer | dict[str, Any]] | None = None,
        *,
        relay_only: bool | None = None,
        loopback_only: bool | None = None,
    ) -> NetworkConfig:
        """Set STUN/TURN servers and the relay-only policy for new connections."""
        if ice_servers is not None:
            servers = [s if isinstance(s, IceServer) else IceServer(**s) for s in ice_servers]
            urls = [u for s in servers for u in s.url_list()]
            for scheme in ("stun", "turn"):
                same = [u for u in urls if u.split(":", 1)[0] in (scheme, scheme + "s")]
                if len(same) > 1:
                    log.warning(
                        "aiortc uses only the first %s server (%s); ignoring %s",
                        scheme.upper(),
                        same[0],
                        ", ".join(same[1:]),
                    )
                    self.log.add(
                        "ice", f"only the first {scheme.upper()} server is used: {same[0]}"
                    )
            self.config.ice_servers = servers
        if relay_only is not None:
            self.config.relay_only = relay_only
        if loopback_only is not None:
            self.config.loopback_only = loopback_only
        return self.config

    # --- handlers -----------------------------------------------------------

    def on_message(self, handler: Callable[[IncomingEnvelope], None]) -> Callable[[], None]:
        """Call ``handler`` for each new incoming envelope; returns the remover."""
        self._message_handlers.append(handler)
        return lambda: self._remove(self._message_handlers, handler)

    def on_event(self, handler: Callable[[NetworkEvent], None]) -> Callable[[], None]:
        self._event_handlers.append(handler)
        return lambda: self._remove(self._event_handlers, handler)

    @staticmethod
    def _remove(items: list[Any], item: Any) -> None:
        if item in items:
            items.remove(item)

    def _emit(self, event: NetworkEvent) -> None:
        for handler in list(self._event_handlers):
            try:
                handler(event)
            except Exception:  # a broken handler must not break the transport
                log.exception("network event handler failed")

    # --- connecting ---------------------------------------------------------

    def _pinned(self, peer_id: str) -> PublicIdentity:
        peer = self._contacts(peer_id)
        if peer is None:
            raise UnknownPeer(
                f"peer {peer_id!r} is not a contact; pair with it first (its pairing code "
                "carries its identity) or add it as a contact"
            )
        return peer

    def _link(self, peer_id: str) -> _Link:
        link = self._links.get(peer_id)
        if link is None:
            raise UsageError(f"no connection to peer {peer_id!r}; call connect_to_peer() first")
        return link

    async def connect_to_peer(
        self, peer_id: str, offer: aiortc_compat.SDP | None = None
    ) -> RTCSessionDescription:
        """Without ``offer``: start a connection and return our offer.  With the
        remote's offer: answer it and return the answer.

        An offer may be made under a provisional id (a pairing token) before we
        know who will answer; :meth:`accept_answer` then names the peer."""
        peer = self._contacts(peer_id)
        if offer is not None and peer is None:
            peer = self._pinned(peer_id)
        if peer_id in self._links:
            await self.disconnect(peer_id)
        pc = RTCPeerConnection(aiortc_compat.rtc_configuration(self.config))
        link = _Link(
            peer_id=peer_id, peer=peer, pc=pc, role="answer" if offer is not None else "offer"
        )
        self._links[peer_id] = link
        self._watch(link)
        with aiortc_compat.loopback_only(self.config.loopback_only):
            if offer is None:
                channel = pc.createDataChannel(CHANNEL_LABEL, ordered=True)
                self._attach_channel(link, channel)
                await pc.setLocalDescription(await pc.createOffer())
            else:
                await pc.setRemoteDescription(aiortc_compat.as_description(offer, "offer"))
                await pc.setLocalDescription(await pc.createAnswer())
        gathered = sdp.candidates(pc.localDescription.sdp)
        self.log.add("signaling", f"created {link.role}", peer_id=peer_id, candidates=len(gathered))
        if not gathered:
            hint = self._failure_hint(link)
            await self._close_link(link, hint)
            raise TransportClosed(f"gathered no ICE candidate: {hint}")
        description: RTCSessionDescription = pc.localDescription
        return description

    async def accept_answer(
        self, peer_id: str, answer: aiortc_compat.SDP, *, answered_by: str | None = None
    ) -> None:
        """The step the seed leaves implicit: apply the remote's answer to our offer.

        ``answered_by`` names the peer when the offer was made under a pairing token."""
        link = self._link(peer_id)
        if link.role != "offer":
            raise UsageError(f"we answered {peer_id!r}; only the offering side accepts an answer")
        if answered_by is not None and answered_by != peer_id:
            peer = self._pinned(answered_by)
            old = self._links.get(answered_by)
            if old is not None:
                await self.disconnect(answered_by)
            del self._links[peer_id]
            link.peer_id, link.peer = answered_by, peer
            self._links[answered_by] = link
        elif link.peer is None:
            link.peer = self._pinned(peer_id)
        await link.pc.setRemoteDescription(aiortc_compat.as_description(answer, "answer"))
        self.log.add("signaling", "applied remote answer", peer_id=link.peer_id)

    def _watch(self, link: _Link) -> None:
        pc = link.pc

        @pc.on("signalingstatechange")
        def _sig() -> None:
            self.log.add("signaling", f"signaling state {pc.signalingState}", peer_id=link.peer_id)

        @pc.on("icegatheringstatechange")
        def _gather() -> None:
            self.log.add("ice", f"gathering state {pc.iceGatheringState}", peer_id=link.peer_id)

        @pc.on("iceconnectionstatechange")
        def _ice() -> None:
            self.log.add("ice", f"ICE state {pc.iceConnectionState}", peer_id=link.peer_id)

        @pc.on("connectionstatechange")
        async def _conn() -> None:
            state = pc.connectionState
            self.log.add("connection", f"connection state {state}", peer_id=link.peer_id)
            if state == "connected":
                pair = aiortc_compat.selected_pair(pc)
                if pair:
                    local, remote = pair
                    self.log.add(
                        "ice",
                        f"selected pair {local.type} {local.endpoint} ↔ "
                        f"{remote.type} {remote.endpoint}",
                        peer_id=link.peer_id,
                    )
            if state in ("failed", "closed") and self._links.get(link.peer_id) is link:
                reason = self._failure_hint(link) if state == "failed" else "connection closed"
                self._drop(link, reason)

        @pc.on("datachannel")
        def _dc(channel: RTCDataChannel) -> None:
            if channel.label == CHANNEL_LABEL:
                self._attach_channel(link, channel)

    def diagnose(self, peer_id: str) -> str:
        """Why ``peer_id`` is not connected (yet), with what to try next."""
        link = self._links.get(peer_id)
        if link is None:
            return self.failures.get(peer_id, "no connection; pair first")
        ice = link.pc.iceConnectionState
        if ice in ("new", "checking", "failed"):
            return f"ICE state is {ice!r}. " + self._failure_hint(link)
        if not link.verified:
            return f"ICE is {ice!r} but the channel binding has not verified yet"
        return "connected"

    def _failure_hint(self, link: _Link) -> str:
        """Why ICE failed, in words that say what to try next."""
        local = sdp.candidates(link.pc.localDescription.sdp if link.pc.localDescription else None)
        turn = [u for s in self.config.ice_servers for u in s.url_list() if u.startswith("turn")]
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

    def _attach_channel(self, link: _Link, channel: RTCDataChannel) -> None:
        link.channel = channel
        channel.bufferedAmountLowThreshold = self.config.buffer_low

        @channel.on("open")
        def _open() -> None:
            self._on_open(link)

        if channel.readyState == "open":  # the answer side gets it already open
            self._on_open(link)

        @channel.on("close")
        def _close() -> None:
            self.log.add("channel", "data channel closed", peer_id=link.peer_id)
            if self._links.get(link.peer_id) is link:
                self._drop(link, "data channel closed")

        @channel.on("bufferedamountlow")
        def _low() -> None:
            link.drained.set()

        @channel.on("message")
        def _message(data: bytes | str) -> None:
            self._on_data(link, data)

    def _on_open(self, link: _Link) -> None:
        peer_id = link.peer_id
        if link.session is not None:
            return
        pc = link.pc
        if link.role == "offer":
            offer_sdp, answer_sdp = pc.localDescription.sdp, pc.remoteDescription.sdp
        else:
            offer_sdp, answer_sdp = pc.remoteDescription.sdp, pc.localDescription.sdp
        offer_fp, answer_fp = sdp.fingerprint(offer_sdp), sdp.fingerprint(answer_sdp)
        if offer_fp is None or answer_fp is None:
            self._fail(link, ChannelBindingFailed("no sha-256 DTLS fingerprint in SDP"))
            return
        if link.peer is None:
            self._fail(link, UnknownPeer("channel opened before the answer named the peer"))
            return
        link.session = protocol.Session(
            self.identity,
            link.peer,
            seen=self._seen,
            expected_fingerprints=(offer_fp, answer_fp),
            max_message_size=min(self.config.max_chunk, aiortc_compat.remote_max_message_size(pc)),
            ack_timeout=self.config.ack_timeout,
            adaptive_ack=self.config.adaptive_ack,
            retransmit=False,  # the data channel is reliable and ordered
            bundle=self.config.bundle,
            max_frame_bytes=self.config.max_frame_bytes,
        )
        self.log.add("channel", "data channel open; sending channel binding", peer_id=peer_id)
        link.stats.last_seen = time.time()
        for frame in self._hello_frames(link, offer_fp, answer_fp):
            self._send_now(link, frame)
        self._spawn(link, self._run(link))
        self._spawn(link, self._verify_deadline(link))

    def _hello_frames(self, link: _Link, offer_fp: str, answer_fp: str) -> list[bytes]:
        """Our signature over both DTLS fingerprints (a test overrides this to lie)."""
        assert link.session is not None
        return link.session.hello(offer_fp, answer_fp)

    def _spawn(self, link: _Link, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        link.tasks.add(task)
        task.add_done_callback(link.tasks.discard)

    async def _verify_deadline(self, link: _Link) -> None:
        peer_id = link.peer_id
        await asyncio.sleep(self.config.verify_timeout)
        if not link.verified and not link.closed:
            self._fail(
                link,
                ChannelBindingFailed(
                    f"no valid channel binding from {peer_id} within "
                    f"{self.config.verify_timeout:g} s; closing"
                ),
            )

    # --- the data path ------------------------------------------------------

    def _on_data(self, link: _Link, data: bytes | str) -> None:
        peer_id = link.peer_id
        if link.session is None or link.closed:
            return
        raw = data.encode() if isinstance(data, str) else data
        now = time.monotonic()
        link.stats.bytes_in += len(raw)
        link.stats.last_seen = time.time()
        self.trace.received(peer_id, raw)
        try:
            events = link.session.receive(raw, now)
        except (ChannelBindingFailed, UnknownPeer) as exc:
            self._fail(link, exc)
            return
        except PeerError as exc:
            # Malformed or forged frames are dropped and logged; nothing is stored.
            link.error = exc
            self.log.add("error", f"rejected frame: {type(exc).__name__}: {exc}", peer_id=peer_id)
            return
        except VolliError as exc:
            self._fail(link, exc)
            return
        try:
            with self.batch():  # a bundle's messages: one commit, then one ACK
                for event in events:
                    self._dispatch(link, event)
        except Exception as exc:  # e.g. the database is locked: nothing was acknowledged
            for event in events:
                if isinstance(event, protocol.MessageReceived):
                    link.session.reject(event.message_id)  # a resend is offered again
            log.exception("storing received messages failed")
            self.log.add("error", f"storing received messages failed: {exc}", peer_id=peer_id)
        link.wake.set()

    def _dispatch(self, link: _Link, event: Any) -> None:
        peer_id = link.peer_id
        if isinstance(event, protocol.PeerVerified):
            link.verified = True
            link.stats.connected_at = time.time()
            self.log.add(
                "dtls", "channel binding verified (both DTLS fingerprints signed)", peer_id=peer_id
            )
            self._emit(PeerOnline(peer_id))
        elif isinstance(event, protocol.MessageReceived):
            link.stats.messages_in += 1
            incoming = IncomingEnvelope(peer_id, event.message_id, event.envelope)
            for handler in list(self._message_handlers):
                try:
                    handler(incoming)
                except Exception:
                    log.exception("message handler failed")
        elif isinstance(event, protocol.Acked):
            if event.rtt is not None:
                link.stats.rtt = event.rtt
            self.log.add(
                "message",
                f"signed ACK for {len(event.message_ids)} message(s)",
                peer_id=peer_id,
                kind="ack.verified",
                message_ids=[m.hex() for m in event.message_ids[:64]],
                count=len(event.message_ids),
                rtt=event.rtt,
            )
            self.trace.acked(peer_id, tuple(event.message_ids))
            self._emit(Delivered(peer_id, tuple(event.message_ids), event.rtt))
        elif isinstance(event, protocol.Pong):
            link.stats.rtt = event.rtt
        elif isinstance(event, protocol.DeliveryTimeout):
            self.trace.gave_up(peer_id, event.message_id, "no ACK before the timeout")
            self._emit(Undelivered(peer_id, event.message_id, "no ACK before the timeout"))
        elif isinstance(event, protocol.PeerClosed):
            self.log.add("channel", f"peer said bye: {event.reason}", peer_id=peer_id)
            self._spawn(link, self._close_link(link, f"peer closed: {event.reason}"))

    def accept(self, peer_id: str, message_id: bytes) -> None:
        """The application stored ``message_id``: acknowledge it (batched, signed)."""
        link = self._links.get(peer_id)
        if link and link.session:
            link.session.accept(message_id)
            link.wake.set()

    def reject(self, peer_id: str, message_id: bytes, error: VolliError) -> None:
        link = self._links.get(peer_id)
        self.log.add(
            "error",
            f"rejected message: {type(error).__name__}: {error}",
            peer_id=peer_id,
            message_id=message_id.hex(),
        )
        if link and link.session:
            link.session.reject(message_id, error)

    async def send_envelope(self, peer_id: str, message_id: bytes, envelope: bytes) -> None:
        """Queue an envelope on the peer's session; it is bundled with whatever else is
        queued when the link's task next sends, and tracked until a signed ACK.

        Waits while more than ``config.buffer_high`` bytes are queued (back-pressure)."""
        link = self._connected_link(peer_id)
        assert link.session is not None
        self.trace.expect(peer_id, message_id, len(envelope))
        link.session.queue_message(message_id, envelope, time.monotonic())
        link.stats.messages_out += 1
        link.wake.set()
        while link.session.queued_bytes > self.config.buffer_high:
            link.drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(link.drained.wait(), 1.0)
            if link.closed:
                raise TransportClosed("connection closed while the message waited to be sent")

    def _connected_link(self, peer_id: str) -> _Link:
        if not self.is_connected(peer_id):
            raise TransportClosed(
                f"peer {peer_id!r} is not connected; the message stays queued and is "
                "sent when it comes back (or call sync_messages() after re-pairing)"
            )
        return self._links[peer_id]

    def _send_now(self, link: _Link, frame: bytes) -> None:
        if link.channel is None or link.channel.readyState != "open":
            raise TransportClosed("data channel is not open")
        link.channel.send(frame)
        link.stats.bytes_out += len(frame)
        self.trace.sent(link.peer_id, frame)

    async def _send_frame(self, link: _Link, frame: bytes) -> None:
        channel = link.channel
        high = self.config.buffer_high
        if link.session is not None:  # about a second of goodput: pongs wait less behind it
            high = link.session.quality.send_buffer(self.config.buffer_low, high)
        while channel is not None and channel.bufferedAmount > high:
            link.drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(link.drained.wait(), 1.0)
            if link.closed:
                raise TransportClosed("connection closed while waiting to send")
        self._send_now(link, frame)

    async def _run(self, link: _Link) -> None:
        """Timers of one link: retransmissions, ACK batching, heartbeat, liveness."""
        assert link.session is not None
        session = link.session
        next_ping = time.monotonic()
        try:
            while not link.closed:
                now = time.monotonic()
                deadline = session.next_deadline()
                wake_at = min(next_ping, deadline) if deadline is not None else next_ping
                if wake_at > now:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(link.wake.wait(), wake_at - now)
                link.wake.clear()
                now = time.monotonic()
                for event in session.handle_timer(now):
                    self._dispatch(link, event)
                if now >= next_ping:
                    next_ping = now + self.config.heartbeat_interval
                    limit = session.silence_limit(self.config.dead_after)
                    alive_at = aiortc_compat.last_received(link.pc.sctp)
                    if alive_at is not None:  # SCTP packets count even while frames wait
                        session.heard_from_transport(alive_at)
                    if session.is_dead(now, limit):
                        await self._close_link(
                            link, f"no heartbeat for {limit:.3g} s (peer presumed dead)"
                        )
                        return
                    await self._send_frame(link, session.ping(now))
                while True:  # control frames get a turn every BURST bytes of messages
                    out = session.data_to_send(time.monotonic(), self.config.burst_bytes)
                    for frame in out:
                        await self._send_frame(link, frame)
                    link.drained.set()  # wakes senders waiting on the session's queue
                    if not out or not session.has_output:
                        break
        except TransportClosed:
            return

    # --- closing ------------------------------------------------------------

    def _fail(self, link: _Link, error: VolliError) -> None:
        peer_id = link.peer_id
        link.error = error
        self.log.add("error", f"{type(error).__name__}: {error}", peer_id=peer_id)
        self._spawn(link, self._close_link(link, f"{type(error).__name__}: {error}"))

    def _drop(self, link: _Link, reason: str) -> None:
        """Forget a link at once; its tasks are cancelled and in-flight messages reported."""
        peer_id = link.peer_id
        if link.closed:
            return
        link.closed = True
        link.wake.set()
        link.drained.set()
        if self._links.get(peer_id) is link:
            del self._links[peer_id]
        in_flight = tuple(link.session.in_flight) if link.session else ()
        current = asyncio.current_task()
        for task in list(link.tasks):
            if task is not current:
                task.cancel()
        self.log.add("connection", f"peer offline: {reason}", peer_id=peer_id)
        self.trace.dropped(peer_id, reason)
        self.failures[peer_id] = reason
        for message_id in in_flight:
            self._emit(Undelivered(peer_id, message_id, reason))
        self._emit(PeerOffline(peer_id, reason, in_flight))

    async def _close_link(self, link: _Link, reason: str) -> None:
        peer_id = link.peer_id
        if not link.closed and link.session is not None and link.channel is not None:
            with contextlib.suppress(Exception):
                if link.channel.readyState == "open":
                    link.channel.send(link.session.close(reason[:200]))
        self._drop(link, reason)
        try:
            await asyncio.wait_for(asyncio.shield(link.pc.close()), self.config.close_timeout)
        except (TimeoutError, asyncio.CancelledError):
            self.log.add("connection", "close timed out; abandoned", peer_id=peer_id)
        except Exception as exc:
            self.log.add("error", f"close failed: {exc}", peer_id=peer_id)

    async def disconnect(self, peer_id: str | None = None) -> None:
        """Close one connection, or all; bounded by ``config.close_timeout`` seconds."""
        ids = [peer_id] if peer_id is not None else list(self._links)
        links = [(pid, self._links[pid]) for pid in ids if pid in self._links]
        if not links:
            return
        closing = [self._close_link(link, "disconnected locally") for _, link in links]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*closing, return_exceptions=True),
                self.config.close_timeout + 0.2,
            )
        for _, link in links:
            for task in list(link.tasks):
                task.cancel()
            if link.tasks:
                await asyncio.wait(list(link.tasks), timeout=0.2)


__all__ = [
    "CandidateView",
    "Delivered",
    "IceServer",
    "IncomingEnvelope",
    "NetworkConfig",
    "NetworkEvent",
    "NetworkStore",
    "PeerOffline",
    "PeerOnline",
    "PeerStats",
    "Undelivered",
]
