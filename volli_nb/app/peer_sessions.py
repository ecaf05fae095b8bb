"""Each connected peer's session: the one owner of every channel's ratchet.

The network finishes a handshake when a data channel opens (or re-keys) and hands the
result here (:meth:`PeerSessions.started`); from then on the sender seals and the
receiver opens through the same :class:`~volli_nb.core.crypto.channel_keys.ChannelKeys`,
so a DH step taken on receive is what the next send uses.  When the channel closes the
session is forgotten (:meth:`ended`): sessions live in memory only, never in the profile
file (docs/sessions.md says why), and whatever they left unacknowledged is sealed again
from the outbox under the next one.  Skipped message keys expire on a timer too
(:meth:`expire`, called by the housekeeping loop), so an idle channel does not keep them.
Each DH ratchet step is written to the event log (``session.dh_step``: the sequence
diagram marks it), and :meth:`summary` is what the panels read: no key material.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from volli_nb.base.clock import Clock
from volli_nb.core.crypto import ratchet
from volli_nb.core.crypto.channel_keys import ChannelKeys, seal_for
from volli_nb.core.crypto.envelope import Sealed
from volli_nb.core.crypto.handshake import HandshakeResult
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.crypto.ratchet_limits import SkipAllowance
from volli_nb.core.crypto.session_view import KeyEvent, SessionSummary
from volli_nb.core.eventlog import EventLog
from volli_nb.core.protocol.events import FrameReceived, Verdict


class PeerSessions:
    """peer id → its channel's :class:`ChannelKeys` (implements net's ``SessionKeys``)."""

    def __init__(self, identity: Identity, log: EventLog, *, clock: Clock) -> None:
        self.identity, self.log = identity, log
        self._clock = clock
        self._live: dict[str, ChannelKeys] = {}
        # What each peer may still skip: kept across its sessions, as a hello re-keys at will.
        self._skips: dict[str, SkipAllowance] = {}
        self.limits = ratchet.DEFAULT_LIMITS  # for the sessions started from now on
        # The receiver answers frames; set by the app once both exist.
        self.on_frame: Callable[[str, FrameReceived], Verdict] = lambda _peer, _frame: Verdict()

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    # --- what the network tells us (SessionKeys) ----------------------------------------

    def started(self, peer_id: str, handshake: HandshakeResult) -> None:
        keys = ChannelKeys(
            handshake, self.identity.peer_id, started_ms=self.now_ms(), clock_ms=self.now_ms,
            limits=self.limits, skips=self._skips.setdefault(peer_id, SkipAllowance()),
        )  # fmt: skip
        keys.on_step = lambda event: self._stepped(peer_id, keys, event)
        self._live[peer_id] = keys

    def _stepped(self, peer_id: str, keys: ChannelKeys, event: KeyEvent) -> None:
        self.log.add(
            "dtls",
            f"DH ratchet step {event.step} (session {keys.session_id[:4].hex()}): the peer's "
            f"new ratchet key {event.chain}, our new sending chain {keys.sending_chain}",
            peer_id=peer_id,
            kind="session.dh_step",
            session=keys.session_id[:4].hex(),
            step=event.step,
            chain=event.chain,
        )

    def ended(self, peer_id: str, session_id: bytes) -> None:
        live = self._live.get(peer_id)
        if live is not None and live.session_id == session_id:
            del self._live[peer_id]

    def frame(self, peer_id: str, received: FrameReceived) -> Verdict:
        return self.on_frame(peer_id, received)

    # --- what the app asks --------------------------------------------------------------

    def get(self, peer_id: str, session_id: bytes | None = None) -> ChannelKeys | None:
        """The live session with ``peer_id`` (and that session only, if ``session_id``)."""
        live = self._live.get(peer_id)
        if live is None or (session_id is not None and live.session_id != session_id):
            return None
        return live

    def seal(
        self,
        peers: Sequence[str],
        *,
        conversation_id: str,
        message_id: bytes,
        counter: int,
        timestamp_ms: int,
        plaintext: bytes,
    ) -> tuple[Sealed, dict[str, bytes]]:
        """One envelope for those of ``peers`` with a live session (each advances its
        chain now); also returns the session id each was sealed under.  Peers without a
        session are left out: sealing for an offline peer would skip its keys for nothing."""
        channels = [c for p in peers if (c := self._live.get(p)) is not None]
        sealed = seal_for(
            channels,
            conversation_id=conversation_id,
            message_id=message_id,
            counter=counter,
            timestamp_ms=timestamp_ms,
            plaintext=plaintext,
        )
        return sealed, {c.peer.peer_id: c.session_id for c in channels}

    def expire(self) -> int:
        """Drop every session's skipped keys past their time; how many were dropped."""
        now_ms = self.now_ms()
        return sum(channel.expire(now_ms) for channel in self._live.values())

    def summary(self, peer_id: str) -> SessionSummary | None:
        """A panel's view of ``peer_id``'s live session (no key material), or None."""
        live = self._live.get(peer_id)
        return live.summary(self.now_ms()) if live is not None else None

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._live


__all__ = ["PeerSessions"]
