"""NetworkStore: WebRTC data channels to peers, on aiortc.

The seed's NetworkStore, in Python and snake_case: the registry of peer connections,
keyed by peer id.  One ``RTCPeerConnection`` and one reliable, ordered data channel
("volli") per peer, each held by a :class:`~volli_nb.net.link.Link` that runs a sans-IO
:class:`~volli_nb.core.protocol.session.Session` (framing, chunking, signed ACKs, pings)
and owns the connection's callbacks, its task, sending and closing.  This module makes
offers and answers (without trickle: aiortc puts every candidate in the SDP), says who
is connected, and passes what links report to the handlers the app registered.  The app
attaches its session keys (:meth:`NetworkStore.attach`): it owns every channel's
ratchet, seals what :meth:`send_sealed` carries, and answers each received frame.

Time comes from injected clocks: ``clock`` (wall time, for the counters people read) and
``monotonic`` (timers and deadlines).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from volli_nb.base.clock import Clock, monotonic_clock, system_clock
from volli_nb.base.errors import TransportClosed, UnknownPeer, UsageError, VolliError
from volli_nb.base.listeners import Listeners
from volli_nb.core import sdp
from volli_nb.core.crypto.envelope import Sealed
from volli_nb.core.crypto.handshake import HandshakeResult
from volli_nb.core.crypto.identity import Identity, PublicIdentity
from volli_nb.core.eventlog import EventLog
from volli_nb.core.netconfig import IceServer, NetworkConfig, server_notes
from volli_nb.core.progress import ProgressFeed
from volli_nb.core.protocol.events import FrameReceived, SessionStats, Verdict
from volli_nb.core.protocol.link_quality import LinkQuality
from volli_nb.net import aiortc_compat
from volli_nb.net.events import CandidateView, IncomingEnvelope, NetworkEvent, PeerOnline, PeerStats
from volli_nb.net.frame_trace import FrameTrace
from volli_nb.net.link import Link
from volli_nb.net.link_host import LinkSetup, NoKeys, SessionKeys
from volli_nb.net.turn_preflight import PreflightReport, TurnPlanner

logger = logging.getLogger(__name__)

WAIT_POLL = 0.02  # seconds between checks in wait_connected


class NetworkStore:
    """Peer connections and their data channels, keyed by peer id."""

    link_class: type[Link] = Link  # what each connection is held in (a test makes one lie)

    def __init__(
        self,
        identity: Identity,
        contacts: Callable[[str], PublicIdentity | None],
        *,
        config: NetworkConfig | None = None,
        log: EventLog | None = None,
        clock: Clock = system_clock,
        monotonic: Clock = monotonic_clock,
    ) -> None:
        self.identity = identity
        self._contacts = contacts
        self.config = config or NetworkConfig()
        self.log = log if log is not None else EventLog()
        self._monotonic = monotonic
        self.progress = ProgressFeed()  # large sends and receives, chunk by chunk
        # frames → event log and progress
        self.trace = FrameTrace(self.log, self.progress, clock=monotonic)
        self._links: dict[str, Link] = {}
        self.failures: dict[str, str] = {}  # peer id → why its last connection ended
        # peer id → why its latest pairing step failed, typed (here or there), until it connects
        self.pairing_errors: dict[str, VolliError] = {}
        self._messages = Listeners[[IncomingEnvelope]]("message handler", logger)
        self._events = Listeners[[NetworkEvent]]("network event handler", logger)
        self._keys: SessionKeys = NoKeys()
        self.turn = TurnPlanner(self.config, self.log, clock=clock, monotonic=monotonic)
        self._setup = LinkSetup(
            identity, self.config, clock, monotonic, self.log, self.trace, self.turn
        )
        self._events.add(self._forget_pairing_error)
        self._warn_about_servers()

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
        return any(link.connected for link in self._links.values())

    def is_connected(self, peer_id: str) -> bool:
        link = self._links.get(peer_id)
        return link is not None and link.connected

    def connected_peers(self) -> list[str]:
        return [pid for pid, link in self._links.items() if link.connected]

    def stats(self, peer_id: str) -> PeerStats:
        return self._link(peer_id).stats

    def session_stats(self, peer_id: str) -> SessionStats | None:
        """The session's counters (frames, bundles, ACKs, RTT): None before the channel opens."""
        session = self._link(peer_id).session
        return session.stats if session else None

    def link_quality(self, peer_id: str) -> LinkQuality | None:
        """Measured RTT, loss and goodput, and the ACK timeout they give (None before open)."""
        session = self._link(peer_id).session
        return session.quality if session else None

    def clock_skew(self, peer_id: str) -> float | None:
        """Their clock minus ours in seconds, from their latest PING (None: not connected
        or not read yet)."""
        link = self._links.get(peer_id)
        return link.stats.clock_skew if link is not None else None

    def candidates(self, peer_id: str) -> CandidateView:
        return self._link(peer_id).candidates()

    def get_sync_endpoint(self) -> dict[str, dict[str, Any]]:
        """Which peers synchronisation can reach now, and over which channel."""
        return {pid: link.endpoint() for pid, link in self._links.items()}

    def diagnose(self, peer_id: str) -> str:
        """Why ``peer_id`` is not connected (yet), with what to try next."""
        link = self._links.get(peer_id)
        error = self.pairing_errors.get(peer_id)
        if link is None and error is not None:
            return f"pairing failed: {type(error).__name__}: {error}"
        if link is None:
            return self.failures.get(peer_id, "no connection; pair first")
        return link.diagnose()

    def pairing_failed(self, peer_id: str, error: VolliError) -> None:
        """A pairing step for ``peer_id`` failed in the background (here, or on the peer's
        side as it told us): whoever waits on that peer gets ``error`` itself."""
        self.pairing_errors[peer_id] = error

    def _forget_pairing_error(self, event: NetworkEvent) -> None:
        if isinstance(event, PeerOnline):
            self.pairing_errors.pop(event.peer_id, None)

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
            self.config.ice_servers = servers
        if relay_only is not None:
            self.config.relay_only = relay_only
        if loopback_only is not None:
            self.config.loopback_only = loopback_only
        self._warn_about_servers()
        return self.config

    async def preflight(self) -> PreflightReport | None:
        """Ask every configured TURN URL for an allocation now (bounded by
        ``config.preflight_timeout``): which works, how fast, and why the others do not.
        None when no TURN server is configured.  Connections run it by themselves."""
        return await self.turn.check()

    @property
    def turn_report(self) -> PreflightReport | None:
        """The last TURN preflight: which URL aiortc got, and why each other did not."""
        return self.turn.report

    def _warn_about_servers(self) -> None:
        for line, warning in server_notes(self.config):
            if warning is not None:
                logger.warning("%s", warning)
            self.log.add("ice", line)

    # --- handlers -----------------------------------------------------------

    def attach(self, keys: SessionKeys) -> None:
        """The app that owns the sessions: it keeps each channel's ratchet and answers
        every received frame (until then frames are refused unopened)."""
        self._keys = keys

    # --- what links tell (LinkOwner) -----------------------------------------

    def started(self, peer_id: str, handshake: HandshakeResult) -> None:
        self._keys.started(peer_id, handshake)

    def ended(self, peer_id: str, session_id: bytes) -> None:
        self._keys.ended(peer_id, session_id)

    def report(self, event: NetworkEvent) -> None:
        self._events.emit(event)

    def on_message(self, handler: Callable[[IncomingEnvelope], None]) -> Callable[[], None]:
        """Call ``handler`` for each envelope as it arrives, still sealed (a debug hook:
        the app opens and stores it next); returns the remover."""
        return self._messages.add(handler)

    def frame(self, peer_id: str, received: FrameReceived) -> Verdict:
        """``on_message`` handlers see it first (still sealed), then the app opens it."""
        for item in received.bundle.envelopes if self._messages else ():
            self._messages.emit(IncomingEnvelope(peer_id, item.envelope.message_id, item.raw))
        return self._keys.frame(peer_id, received)

    def on_event(self, handler: Callable[[NetworkEvent], None]) -> Callable[[], None]:
        """Call ``handler`` for each peer event (online, offline, delivered…); returns the
        remover.  A handler that raises is logged; the transport carries on."""
        return self._events.add(handler)

    # --- connecting ---------------------------------------------------------

    def _pinned(self, peer_id: str) -> PublicIdentity:
        peer = self._contacts(peer_id)
        if peer is None:
            raise UnknownPeer(
                f"peer {peer_id!r} is not a contact; pair with it first (its pairing code "
                "carries its identity) or add it as a contact"
            )
        return peer

    def _link(self, peer_id: str) -> Link:
        link = self._links.get(peer_id)
        if link is None:
            raise UsageError(f"no connection to peer {peer_id!r}; call connect_to_peer() first")
        return link

    def dropped(self, link: Link, reason: str) -> None:
        if self._links.get(link.peer_id) is link:
            del self._links[link.peer_id]
        self.failures[link.peer_id] = reason

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
        servers = await self.turn.servers()  # the preflight's choice (relay-only: or raise)
        while peer_id in self._links:  # also one that a call for this peer made meanwhile
            await self.disconnect(peer_id)
        pc = RTCPeerConnection(aiortc_compat.rtc_configuration(self.config, servers))
        role = "answer" if offer is not None else "offer"
        link = self.link_class(self._setup, self, peer_id, peer, pc, role)
        self._links[peer_id] = link
        trust = self.turn.tls_contexts(self.config.ice_servers if servers is None else servers)
        with aiortc_compat.loopback_only(self.config.loopback_only), aiortc_compat.turn_tls(trust):
            if offer is None:
                link.connection.open_channel()
                await pc.setLocalDescription(await pc.createOffer())
            else:
                try:
                    await pc.setRemoteDescription(aiortc_compat.as_description(offer, "offer"))
                    await pc.setLocalDescription(await pc.createAnswer())
                except Exception as exc:  # aiortc on a bad SDP: ValueError, AssertionError…
                    await link.close("the offer was refused")  # no half-built link kept
                    if isinstance(exc, VolliError):
                        raise
                    raise UsageError(f"the offer cannot be answered: {exc!r}") from None
        gathered = sdp.candidates(pc.localDescription.sdp)
        self.log.add("signaling", f"created {role}", peer_id=peer_id, candidates=len(gathered))
        self.turn.gathered(gathered)
        if not gathered:
            hint = link.connection.failure_hint()
            await link.close(hint)
            raise TransportClosed(f"gathered no ICE candidate: {hint}")
        description: RTCSessionDescription = pc.localDescription
        return description

    async def accept_answer(
        self,
        peer_id: str,
        answer: aiortc_compat.SDP,
        *,
        answered_by: str | None = None,
        peer: PublicIdentity | None = None,
    ) -> None:
        """The step the seed leaves implicit: apply the remote's answer to our offer.

        ``answered_by`` names the peer when the offer was made under a pairing token
        (with ``peer``, its identity, when the caller pins it only once this succeeded).
        Only a token not yet answered can be named, and the answer is applied before the
        link is renamed: a refused answer leaves the offer as it was."""
        link = self._link(peer_id)
        if link.role != "offer":
            raise UsageError(f"we answered {peer_id!r}; only the offering side accepts an answer")
        description = aiortc_compat.as_description(answer, "answer")
        renamed = answered_by is not None and answered_by != peer_id
        if renamed and link.peer is not None:
            raise UsageError(f"{peer_id!r} was answered already; only an open offer can be named")
        if renamed and answered_by is not None:
            named = peer is not None and peer.peer_id == answered_by
            link.peer = peer if named else self._pinned(answered_by)
        elif link.peer is None:
            link.peer = self._pinned(peer_id)
        try:
            await link.pc.setRemoteDescription(description)
        except Exception as exc:  # aiortc: ValueError, InvalidStateError, …
            if renamed:
                link.peer = None
            raise UsageError(f"the answer does not apply to our offer: {exc}") from None
        replaced = None
        if renamed and answered_by is not None:  # renamed at once, before the channel opens
            replaced = self._links.pop(answered_by, None)
            del self._links[peer_id]
            link.peer_id = answered_by
            self._links[answered_by] = link
        self.log.add("signaling", "applied remote answer", peer_id=link.peer_id)
        if replaced is not None:  # an older connection to the same peer
            await replaced.close("replaced by a new pairing")
            await replaced.cancel_tasks()

    async def wait_connected(self, peer_id: str, timeout: float = 15.0) -> None:
        """Wait until the channel to ``peer_id`` is open and its binding verified.

        Raises at once the typed cause of a failed pairing step (:meth:`pairing_failed`:
        ``TurnAuthFailed``, ``TurnTimeout``, … on either side) recorded meanwhile, or
        recorded before while no attempt is under way; :class:`TransportClosed` at once if
        a connection to it ends meanwhile, or after ``timeout`` seconds, saying why (see
        :meth:`diagnose`)."""
        end = self._monotonic() + timeout
        before = self.failures.get(peer_id)
        known = self.pairing_errors.get(peer_id)
        while not self.is_connected(peer_id):
            error = self.pairing_errors.get(peer_id)
            if error is not None and (error is not known or peer_id not in self._links):
                raise error.with_traceback(None)
            if self.failures.get(peer_id) is not before:
                raise TransportClosed(f"connection to {peer_id} ended: {self.failures[peer_id]}")
            if self._monotonic() > end:
                raise TransportClosed(
                    f"no verified connection to {peer_id} within {timeout:g} s: "
                    + self.diagnose(peer_id)
                )
            await asyncio.sleep(WAIT_POLL)

    # --- the data path ------------------------------------------------------

    async def send_sealed(self, peer_id: str, session_id: bytes, item: Sealed) -> None:
        """Queue an envelope sealed under ``session_id`` on the peer's channel; it is
        bundled (and signed once) with whatever else is queued when the link's task next
        sends, and tracked until a signed ACK.  :class:`StaleSession` if the channel runs
        another session now (nothing sent: seal it again).

        Waits while more than ``config.buffer_high`` bytes are queued (back-pressure)."""
        link = self._links.get(peer_id)
        if link is None or not link.connected:
            raise TransportClosed(
                f"peer {peer_id!r} is not connected; the message stays queued and is "
                "sent when it comes back (or call sync_messages() after re-pairing)"
            )
        await link.send_sealed(session_id, item)

    def rekey(self, peer_id: str) -> None:
        """Start a fresh session handshake on the open channel to ``peer_id``."""
        link = self._links.get(peer_id)
        if link is not None and link.session is not None:
            link.session.rekey()
            link.wake.set()

    # --- closing ------------------------------------------------------------

    async def disconnect(self, peer_id: str | None = None) -> None:
        """Close one connection, or all; bounded by ``config.close_timeout`` seconds."""
        ids = [peer_id] if peer_id is not None else list(self._links)
        links = [self._links[pid] for pid in ids if pid in self._links]
        if not links:
            return
        closing = [link.close("disconnected locally") for link in links]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*closing, return_exceptions=True),
                self.config.close_timeout + 0.2,
            )
        for link in links:
            await link.cancel_tasks()


__all__ = ["NetworkStore"]
