"""One peer connection: its RTCPeerConnection, data channel and sans-IO session.

A :class:`Link` owns everything that lives and dies with one connection: the aiortc
callbacks, the channel binding, the task that runs the session (its
:class:`~volli_nb.net.traffic.Traffic`, from the moment the channel opens: receiving,
sending with back-pressure, timers and heartbeat), and closing.
:class:`~volli_nb.net.network_store.NetworkStore` keeps the links by peer id and hands
each the :class:`LinkContext` they share.

The session handshake binds the channel: once it opens, each side sends a hello
signed by its identity key over the digests of both certificates its DTLS handshake used
(its own and the peer's, read from the DTLS session, not from SDP text); nothing else is
sent before that verifies, and a mismatch (or no finished handshake within
``verify_timeout``) closes the connection.  The handshake's ratchet goes to the app
(:class:`SessionKeys`), which seals and opens every message; the link only moves frames.
Counters are our own (:class:`~volli_nb.net.events.PeerStats`): ``getStats()`` is empty
for data channels.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection

from volli_nb.base.errors import (
    ChannelBindingFailed,
    TransportClosed,
    UnknownPeer,
    VolliError,
)
from volli_nb.core import sdp
from volli_nb.core.crypto.envelope import Sealed
from volli_nb.core.crypto.identity import PublicIdentity
from volli_nb.core.protocol.session import Session
from volli_nb.net import aiortc_compat
from volli_nb.net.events import (
    CandidateView,
    PeerOffline,
    PeerStats,
    Undelivered,
)
from volli_nb.net.link_context import LinkContext
from volli_nb.net.traffic import Traffic

CHANNEL_LABEL = "volli"


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
        self.traffic: Traffic | None = None  # once the channel is open
        self.verified = False
        self.stats = PeerStats()
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

    @property
    def session(self) -> Session | None:
        """The sans-IO session, from the moment the channel opened."""
        return self.traffic.session if self.traffic is not None else None

    def log(self, category: str, message: str, **data: Any) -> None:
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
        """Why ICE has not connected, in words that say what to try next.

        ICE that never tried a candidate pair is a signaling or pairing problem, and TURN
        would not help; only ICE that tried pairs and got no answer is one of NATs,
        firewalls and TURN."""
        description = self.pc.localDescription
        local = sdp.candidates(description.sdp if description else None)
        never = self.never_started() if local else None  # no candidate: gathering failed
        if never is not None:
            return never
        config = self.ctx.config
        turn = [u for s in config.ice_servers for u in s.url_list() if u.startswith("turn")]
        report = self.ctx.turn_report()
        if turn and report is not None and report.chosen is None:
            return f"ICE failed: {report.failure()}"
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

    def never_started(self) -> str | None:
        """Why no candidate pair was tried, if none was (aioice's check list says)."""
        if self.pc.remoteDescription is None:
            waiting = "our offer was not answered" if self.role == "offer" else "no offer applied"
            return (
                f"ICE never started: {waiting}, so no candidate pair was tried and TURN would "
                "not help. The offer/answer exchange did not complete: check the signaling "
                "path (is the server reachable, are both in the room, does the peer's event "
                "log show its answer or a refused signal?) or, when pairing by codes, that "
                "the answer code was pasted back"
            )
        checks = aiortc_compat.ice_checks(self.pc)
        if checks is None or checks.tried:
            return None
        if checks.pairs == 0:
            return (
                f"ICE never started: none of the peer's {checks.remote} candidate(s) pairs "
                "with ours (address family or protocol), so no check was sent and TURN "
                "would not help by itself. Compare both sides' candidates (candidates()): "
                "are both on the same loopback_only setting and IP version?"
            )
        return (
            f"ICE has not tried any of its {checks.pairs} candidate pair(s) yet: the "
            "offer/answer completed but the checks have not begun; wait, or pair again"
        )

    # --- aiortc callbacks -----------------------------------------------------------

    def watch(self) -> None:
        """Follow the peer connection's states; a failed or closed one drops the link."""
        pc = self.pc

        @pc.on("signalingstatechange")
        def _sig() -> None:
            self.log("signaling", f"signaling state {pc.signalingState}")

        @pc.on("icegatheringstatechange")
        def _gather() -> None:
            self.log("ice", f"gathering state {pc.iceGatheringState}")

        @pc.on("iceconnectionstatechange")
        def _ice() -> None:
            self.log("ice", f"ICE state {pc.iceConnectionState}")

        @pc.on("connectionstatechange")
        async def _conn() -> None:
            state = pc.connectionState
            self.log("connection", f"connection state {state}")
            pair = aiortc_compat.selected_pair(pc) if state == "connected" else None
            if pair:
                local, remote = pair
                self.log(
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
            self.log("channel", "data channel closed")
            self.drop("data channel closed")

        @channel.on("message")
        def _message(data: bytes | str) -> None:
            if self.traffic is not None and not self.closed:
                self.traffic.on_data(data)

    def _on_open(self) -> None:
        if self.traffic is not None or self.channel is None:
            return
        certificates = self.channel_certificates()
        if certificates is None:
            self.fail(ChannelBindingFailed("the DTLS handshake left no certificates to bind"))
            return
        if self.peer is None:
            self.fail(UnknownPeer("channel opened before the answer named the peer"))
            return
        config = self.ctx.config
        local, remote = certificates
        session = Session(
            self.ctx.identity,
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
        self.traffic = traffic = Traffic(self, session, self.channel)
        self.log("channel", "data channel open; sending the session handshake")
        self.stats.last_seen = self.ctx.clock()
        for frame in session.hello():
            traffic.send_now(frame)
        self.spawn(traffic._run())  # the link's task; cancelled when it drops
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
        timeout = self.ctx.config.verify_timeout
        await asyncio.sleep(timeout)
        if not self.verified and not self.closed:
            self.fail(
                ChannelBindingFailed(
                    f"no valid channel binding from {self.peer_id} within {timeout:g} s; closing"
                )
            )

    # --- the data path (once open) -------------------------------------------------------

    async def send_sealed(self, session_id: bytes, item: Sealed) -> None:
        """Queue an envelope sealed under ``session_id`` (see :meth:`Traffic.send_sealed`)."""
        if self.traffic is None or not self.connected:
            raise TransportClosed("data channel is not open")
        await self.traffic.send_sealed(session_id, item)

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
        if self.traffic is not None:
            self.traffic.stop()
        self.ctx.dropped(self, reason)
        session = self.session
        if session is not None and session.session_id is not None:
            self.ctx.keys.ended(self.peer_id, session.session_id)
        in_flight = tuple(session.in_flight) if session else ()
        current = asyncio.current_task()
        for task in list(self.tasks):
            if task is not current:
                task.cancel()
        self.log("connection", f"peer offline: {reason}")
        self.ctx.trace.dropped(self.peer_id, reason)
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
            self.log("connection", "close timed out; abandoned")
        except Exception as exc:
            self.log("error", f"close failed: {exc}")

    async def cancel_tasks(self, timeout: float = 0.2) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)


__all__ = ["CHANNEL_LABEL", "Link"]
