"""One aiortc peer connection and its data channel, in aiortc's terms.

A :class:`Connection` is the part of a :class:`~volli_nb.net.link.Link` that knows
WebRTC and nothing of sessions: it follows the ``RTCPeerConnection``'s states into the
event log, creates or adopts the one reliable, ordered channel, tells its link when the
channel opens, what arrives on it and when either ends, closes the connection within a
bound (``pc.close()`` can hang), and says in words why it is not up: everything that
reads the SDP, aioice's check list and the last TURN preflight.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from aiortc import RTCDataChannel, RTCPeerConnection

from volli_nb.core import sdp
from volli_nb.net import aiortc_compat
from volli_nb.net.events import CandidateView
from volli_nb.net.link_host import LinkSetup

CHANNEL_LABEL = "volli"


class ConnectionListener(Protocol):
    """What a connection tells its link."""

    def log(self, category: str, message: str, **data: Any) -> None: ...

    def channel_open(self) -> None:
        """The channel opened (or arrived open): the session can start."""

    def data(self, data: bytes | str) -> None:
        """A message arrived on the channel."""

    def drop(self, reason: str) -> None:
        """The connection or its channel ended."""


class Connection:
    """An ``RTCPeerConnection``, its one channel, and what they say."""

    def __init__(
        self, pc: RTCPeerConnection, role: str, setup: LinkSetup, listener: ConnectionListener
    ) -> None:
        self.pc, self.role, self.setup, self.listener = pc, role, setup, listener
        self.channel: RTCDataChannel | None = None
        self._watch()

    def _watch(self) -> None:
        """Follow the peer connection's states; a failed or closed one ends the link."""
        pc, log = self.pc, self.listener.log

        @pc.on("signalingstatechange")
        def _sig() -> None:
            log("signaling", f"signaling state {pc.signalingState}")

        @pc.on("icegatheringstatechange")
        def _gather() -> None:
            log("ice", f"gathering state {pc.iceGatheringState}")

        @pc.on("iceconnectionstatechange")
        def _ice() -> None:
            log("ice", f"ICE state {pc.iceConnectionState}")

        @pc.on("connectionstatechange")
        async def _conn() -> None:
            state = pc.connectionState
            log("connection", f"connection state {state}")
            pair = aiortc_compat.selected_pair(pc) if state == "connected" else None
            if pair:
                local, remote = pair
                ends = f"{local.type} {local.endpoint} ↔ {remote.type} {remote.endpoint}"
                log("ice", f"selected pair {ends}")
            if state in ("failed", "closed"):
                reason = self.failure_hint() if state == "failed" else "connection closed"
                self.listener.drop(reason)

        @pc.on("datachannel")
        def _dc(channel: RTCDataChannel) -> None:
            if channel.label == CHANNEL_LABEL:
                self.attach_channel(channel)

    def open_channel(self) -> None:
        """The offering side creates the one reliable, ordered channel."""
        self.attach_channel(self.pc.createDataChannel(CHANNEL_LABEL, ordered=True))

    def attach_channel(self, channel: RTCDataChannel) -> None:
        self.channel = channel
        channel.bufferedAmountLowThreshold = self.setup.config.buffer_low
        listener = self.listener

        @channel.on("open")
        def _open() -> None:
            listener.channel_open()

        if channel.readyState == "open":  # the answer side gets it already open
            listener.channel_open()

        @channel.on("close")
        def _close() -> None:
            listener.log("channel", "data channel closed")
            listener.drop("data channel closed")

        @channel.on("message")
        def _message(data: bytes | str) -> None:
            listener.data(data)

    async def close(self) -> None:
        """Close the peer connection, waiting at most ``close_timeout``."""
        try:
            await asyncio.wait_for(asyncio.shield(self.pc.close()), self.setup.config.close_timeout)
        except (TimeoutError, asyncio.CancelledError):
            self.listener.log("connection", "close timed out; abandoned")
        except Exception as exc:
            self.listener.log("error", f"close failed: {exc}")

    # --- why it is not up -------------------------------------------------------------

    def candidates(self) -> CandidateView:
        """Both sides' candidates (from the SDP: aiortc does not trickle), the chosen pair."""
        pc = self.pc
        local = pc.localDescription.sdp if pc.localDescription else None
        remote = pc.remoteDescription.sdp if pc.remoteDescription else None
        return CandidateView(
            sdp.candidates(local), sdp.candidates(remote), aiortc_compat.selected_pair(pc)
        )

    def diagnose(self, verified: bool) -> str:
        """Either "connected", or what is missing: ICE, or the channel binding."""
        ice = self.pc.iceConnectionState
        if ice in ("new", "checking", "failed"):
            return f"ICE state is {ice!r}. " + self.failure_hint()
        if not verified:
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
        config = self.setup.config
        turn = [u for s in config.ice_servers for u in s.url_list() if u.startswith("turn")]
        report = self.setup.turn.report
        if turn and report is not None and report.chosen is None:
            return f"ICE failed: {report.failure()}"
        if turn and not any(c.type == "relay" for c in local):
            return (
                f"ICE failed: no relay candidate from {turn[0]}; check the TURN server's "
                "address, username and credential"
            )
        if config.loopback_only:
            return self._unanswered_here()
        if not turn:
            return (
                "ICE failed: no candidate pair worked. If the peers are behind NATs "
                "(symmetric NAT especially), configure a TURN server: "
                "set_configuration([IceServer('turn:HOST:3478', USER, PASSWORD)])"
            )
        return "ICE failed: no candidate pair worked, not even through the TURN relay"

    def _unanswered_here(self) -> str:
        """Checks sent on 127.0.0.1 and none answered: NATs and TURN do not come into it
        (they read as the cause before); the other side is gone, or never took our
        answer (notebook 03b: B waiting on A, who has not pasted B's answer yet)."""
        ask = (
            "has the other side pasted our answer code into complete_pairing(), and is it "
            "still running?"
            if self.role == "answer"
            else "is the other side still running, and is the answer we applied its latest?"
        )
        return (
            "No candidate pair has answered, and both ends are on this machine (127.0.0.1 "
            f"only), so NATs and TURN do not come into it: {ask}"
        )

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


__all__ = ["CHANNEL_LABEL", "Connection", "ConnectionListener"]
