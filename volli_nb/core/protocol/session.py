"""The peer-to-peer session, sans-IO (in the style of h11).

A :class:`Session` turns received bytes into events and calls into bytes to send; it
never touches a socket, a clock, a task or a thread.  The app creates one per data
channel and

1. sends :meth:`Session.hello` as soon as the channel opens (the handshake);
2. feeds every data-channel message to ``receive(data, now)`` and handles the events:
   :class:`PeerVerified` carries the new session (the app keeps its ratchet in a
   :class:`~volli_nb.core.crypto.channel_keys.ChannelKeys`), and each
   :class:`FrameReceived` (one signed bundle) is answered exactly once with
   :meth:`settle` (what was stored, what was refused and why);
3. seals envelopes under the current session and queues them (:meth:`queue_sealed`);
4. sends whatever ``data_to_send(now)`` returns after each receive, each settle and each
   timer, and calls ``handle_timer(now)`` when ``next_deadline()`` passes.

So latency, loss, duplication and reordering are list edits in a test (see
:mod:`volli_nb.lab.simulator`).  This module runs the handshake and the receiving;
:mod:`.outgoing` decides what leaves next (bundling, signing, chunking, priority) and
:mod:`.reliability` tracks what is in flight (timers, RTT, liveness).

- **Handshake first** (:mod:`volli_nb.core.crypto.handshake`).  Until the peer's hello
  finished the handshake, BUNDLE, ACK, PONG and REFUSE raise
  :class:`ChannelBindingFailed` (the channel is ordered and each side sends its hello
  first, so an early frame is a protocol violation, not a race); PING, BYE and CHUNK are
  allowed.  A hello from another peer is :class:`UnknownPeer`, with another device key
  :class:`KeyMismatch`, over other DTLS certificates :class:`ChannelBindingFailed`.
- **Re-keying.**  Either side may start a fresh handshake on the open channel
  (:meth:`rekey`; the app does when a message key is missing for a message it never
  stored).  A hello after the first is answered with a fresh one of ours, and both
  sides switch once they hold both: :class:`Rekeyed` names what was in flight under
  the old session, to be sealed again; frames still arriving under the old session are
  dropped by their tag (their senders seal them again too).
- **One verdict per frame.**  Deduplication is the app's (a message id stored before is
  acknowledged again, see :class:`Verdict`); the session only routes: a frame whose tag
  names a replaced session is counted and dropped.
- **Reassembly** of CHUNK frames checks index continuity and caps a frame at
  ``max_frame_bytes`` (see :mod:`.chunks`).
"""

from __future__ import annotations

from volli_nb.base.errors import (
    ChannelBindingFailed,
    MalformedFrame,
    TransportClosed,
    UnknownPeer,
    UsageError,
)
from volli_nb.core.crypto import handshake
from volli_nb.core.crypto.channel_keys import TAG_BYTES
from volli_nb.core.crypto.envelope import Sealed
from volli_nb.core.crypto.identity import Identity, PublicIdentity, verify
from volli_nb.core.crypto.primitives import Random, random_bytes
from volli_nb.core.protocol.chunks import Reassembler
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
    SessionStats,
    Verdict,
)
from volli_nb.core.protocol.frames import (
    ACK_DOMAIN,
    CHUNK_OVERHEAD,
    DEFAULT_MAX_MESSAGE_SIZE,
    MAX_FRAME_BYTES,
    AckFrame,
    BundleFrame,
    ByeFrame,
    ChunkFrame,
    Frame,
    HelloFrame,
    PingFrame,
    PongFrame,
    ack_payload,
    decode_frame,
    make_bye,
    make_hello,
    make_ping,
    make_pong,
)
from volli_nb.core.protocol.link_quality import LinkQuality
from volli_nb.core.protocol.outgoing import Outgoing
from volli_nb.core.protocol.refusal import RefuseFrame, check_refusal, refusal_code
from volli_nb.core.protocol.reliability import Reliability


class StaleSession(TransportClosed):
    """An envelope sealed under a session that was replaced; it was not sent (seal it again)."""


class Session:
    """One data channel to one peer: handshake, reliable delivery, chunking, pings."""

    def __init__(
        self,
        me: Identity,
        peer: PublicIdentity,
        *,
        local_certificate: bytes,
        remote_certificate: bytes,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        rto_initial: float = 1.0,
        rto_min: float = 0.2,
        rto_max: float = 10.0,
        ack_timeout: float | None = 15.0,
        adaptive_ack: bool = False,
        ack_floor: float = 3.0,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        retransmit: bool = True,
        bundle: bool = True,
        random: Random = random_bytes,
    ) -> None:
        if max_message_size < CHUNK_OVERHEAD + 64:
            raise UsageError(f"max_message_size must be at least {CHUNK_OVERHEAD + 64} bytes")
        if not 0 < rto_min <= rto_max:
            raise UsageError("need 0 < rto_min <= rto_max")
        if ack_timeout is not None and ack_timeout <= 0:
            raise UsageError("ack_timeout must be positive, or None to retry forever")
        self.me, self.peer = me, peer
        self._certificates = (local_certificate, remote_certificate)
        self._random = random
        self.max_frame_bytes = max_frame_bytes
        self.stats = SessionStats()
        self.reliability = Reliability(
            self.stats,
            random=random,
            rto_initial=rto_initial,
            rto_min=rto_min,
            rto_max=rto_max,
            ack_timeout=ack_timeout,
            adaptive_ack=adaptive_ack,
            ack_floor=ack_floor,
            retransmit=retransmit,
        )
        self.outgoing = Outgoing(
            me,
            peer.peer_id,
            self.reliability,
            self.stats,
            max_message_size=max_message_size,
            bundle=bundle,
        )
        self.session_id: bytes | None = None  # the current session (None: no handshake yet)
        self._pending: handshake.PendingHandshake | None = None  # our hello, not finished
        self._peer_hello: bytes | None = None  # the hello the current session came from
        self._reassembler = Reassembler(max_frame_bytes)

    @property
    def verified(self) -> bool:
        """The handshake finished: the peer is who we pinned, on this very channel."""
        return self.session_id is not None

    @property
    def quality(self) -> LinkQuality:
        """Measured RTT, loss and goodput (see :mod:`.link_quality`)."""
        return self.reliability.quality

    @property
    def last_heard(self) -> float | None:
        """When the peer was last heard from (a frame, or a packet the transport saw)."""
        return self.reliability.last_heard

    # --- the handshake --------------------------------------------------------------

    def hello(self) -> list[bytes]:
        """Our first hello; send it before anything else."""
        if self._pending is not None or self.verified:
            raise UsageError("hello() starts a channel's first handshake, once")
        return self.outgoing.out(self.outgoing.split(make_hello(self._start().hello)))

    def rekey(self) -> None:
        """Start a fresh handshake on the open channel (its hello leaves with the next
        ``data_to_send``); nothing happens if one is under way already."""
        if self.verified and self._pending is None:
            self.outgoing.hello(make_hello(self._start().hello))

    def _start(self) -> handshake.PendingHandshake:
        local, remote = self._certificates
        self._pending = handshake.start(
            self.me,
            self.peer,
            local_certificate=local,
            remote_certificate=remote,
            random=self._random,
        )
        return self._pending

    def _on_hello(self, frame: HelloFrame) -> list[Event]:
        if frame.hello == self._peer_hello:
            return []  # a repeated hello: nothing new
        if self._pending is None:  # the peer re-keys: answer with a fresh hello of ours
            self.outgoing.hello(make_hello(self._start().hello))
        assert self._pending is not None
        result = handshake.finish(self._pending, frame.hello, random=self._random)
        first = not self.verified
        self._pending, self._peer_hello = None, frame.hello
        self.session_id = result.session_id
        self.outgoing.session_id = result.session_id
        self.outgoing.tag = result.session_id[:TAG_BYTES]
        if first:
            return [PeerVerified(self.peer, result)]
        self.stats.rekeys += 1
        self.outgoing.drop_unsent()
        return [Rekeyed(result, self.reliability.untrack_all())]

    # --- sending ------------------------------------------------------------------

    def _check_session(self, session_id: bytes) -> None:
        if session_id != self.session_id:
            raise StaleSession(
                "this envelope was sealed under a session the channel no longer runs; "
                "it was not sent (the outbox seals it again under the current one)"
            )

    def queue_sealed(self, session_id: bytes, item: Sealed, now: float) -> None:
        """Queue an envelope sealed under ``session_id``; its frame comes from the next
        ``data_to_send``, bundled (and signed once) with every other queued by then.  It
        stays in flight until acknowledged; queuing an id in flight replaces it."""
        self._check_session(session_id)
        self.outgoing.queue(self.reliability.track(item, now))
        self.stats.messages_out += 1

    def send_sealed(self, session_id: bytes, item: Sealed, now: float) -> list[bytes]:
        """Like :meth:`queue_sealed`, but the frames now, alone (unbundled)."""
        self._check_session(session_id)
        state = self.reliability.track(item, now)
        self.reliability.arm(item.message_id, state, now)
        self.stats.messages_out += 1
        return self.outgoing.out(self.outgoing.pack([item]))

    @property
    def queued_bytes(self) -> int:
        """Envelope bytes queued or framed but not yet returned by ``data_to_send``."""
        return self.outgoing.queued_bytes

    @property
    def has_output(self) -> bool:
        """True if ``data_to_send`` would return something now (ignoring timers)."""
        return self.outgoing.has_output

    def ping(self, now: float, clock_ms: int = 0) -> bytes:
        """A heartbeat carrying our wall clock (``clock_ms``, 0: unknown), so each side sees
        the other's clock skew; the matching PONG yields :class:`Pong` with the round trip."""
        return self.outgoing.out([make_ping(self.reliability.ping_nonce(now), clock_ms)])[0]

    def close(self, reason: str) -> bytes:
        """A BYE frame; the peer gets :class:`PeerClosed`."""
        return self.outgoing.out([make_bye(reason)])[0]

    def settle(self, verdict: Verdict, *, clock_ms: int) -> None:
        """The app's one answer to a :class:`FrameReceived`: ACK what was stored, and
        refuse in a signed REFUSE (our ``clock_ms``) what a sender can act on."""
        for message_id in verdict.stored:
            self.outgoing.ack(message_id)
        for message_id, error in verdict.refused:
            code = refusal_code(error)
            if code is not None:
                self.outgoing.refuse(message_id, code, clock_ms)

    def forget(self, message_id: bytes) -> None:
        """Stop tracking an in-flight message (the app gave up on it)."""
        self.reliability.untrack(message_id)

    @property
    def in_flight(self) -> list[bytes]:
        """Ids sent and not yet acknowledged, oldest first."""
        return self.reliability.ids

    def data_to_send(self, now: float, max_bytes: int | None = None) -> list[bytes]:
        """Control first (HELLOs, PONGs, refusals, then ACKs), then queued envelopes and due
        retransmissions, bundled; with ``max_bytes``, message frames stop once that many
        bytes are out."""
        return self.outgoing.data_to_send(now, max_bytes)

    # --- timers ---------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When ``data_to_send`` / ``handle_timer`` next have something to do."""
        return self.reliability.next_deadline()

    def handle_timer(self, now: float) -> list[Event]:
        """Messages whose ACK deadline passed leave as DeliveryTimeout (see
        :meth:`Reliability.handle_timer` for how deadlines move with progress)."""
        return self.reliability.handle_timer(now)

    def silence_limit(self, base: float) -> float:
        """The heartbeat silence after which the peer counts as dead (see LinkQuality)."""
        return self.quality.silence_limit(base)

    def heard_from_transport(self, when: float) -> None:
        """The transport saw a packet from the peer at ``when`` (e.g. an SCTP SACK): the peer
        is alive even if its frames are held back behind a lost packet."""
        self.reliability.heard_from_transport(when)

    def is_dead(self, now: float, timeout: float) -> bool:
        """True if we heard something once and then nothing for ``timeout`` seconds."""
        return self.reliability.is_dead(now, timeout)

    # --- receiving ------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[Event]:
        """One data-channel message → events.  Bad input raises a typed PeerError.

        A refused frame changes nothing but ``last_heard`` and the counters.
        """
        self.reliability.heard(now)
        self.stats.frames_in += 1
        self.stats.bytes_in += len(data)
        frame = decode_frame(data, self.max_frame_bytes)
        if isinstance(frame, BundleFrame | ChunkFrame):
            self.reliability.data_arrived(now)
        if isinstance(frame, ChunkFrame):
            whole = self._reassembler.add(frame)
            if whole is None:
                return []
            frame = decode_frame(whole, self.max_frame_bytes)
            if isinstance(frame, ChunkFrame):
                raise MalformedFrame("a chunked frame may not be another CHUNK")
        return self._handle(frame, now)

    def _handle(self, frame: Frame, now: float) -> list[Event]:
        if isinstance(frame, HelloFrame):
            return self._on_hello(frame)
        if isinstance(frame, PingFrame):
            self.outgoing.pong(make_pong(frame.nonce))
            return [PeerClock(frame.clock_ms)] if self.verified and frame.clock_ms else []
        if isinstance(frame, ByeFrame):
            return [PeerClosed(frame.reason)]
        if self.session_id is None:
            raise ChannelBindingFailed(
                f"{type(frame).__name__} arrived before the handshake finished"
            )
        if isinstance(frame, BundleFrame):
            return self._on_bundle(frame, self.session_id)
        if isinstance(frame, PongFrame):
            return self.reliability.pong(frame.nonce, now)
        if isinstance(frame, AckFrame):
            return self._on_ack(frame, now)
        if isinstance(frame, RefuseFrame):
            check_refusal(frame, self.peer, self.me.peer_id, self.session_id)
            for message_id in frame.message_ids:
                self.reliability.untrack(message_id)  # no DeliveryTimeout for these
            return [Refused(frame.message_ids, frame.code, frame.clock_ms)]
        raise MalformedFrame("a CHUNK cannot carry another CHUNK")

    def _on_bundle(self, frame: BundleFrame, session_id: bytes) -> list[Event]:
        if frame.tag != session_id[:TAG_BYTES]:
            self.stats.stale_frames_in += 1  # sealed under a replaced session: resent anew
            return []
        self.stats.bundles_in += 1
        self.stats.messages_in += len(frame.bundle.envelopes)
        return [FrameReceived(session_id, frame.bundle)]

    def _on_ack(self, frame: AckFrame, now: float) -> list[Event]:
        if frame.sender != self.peer.peer_id:
            raise UnknownPeer(f"ACK from {frame.sender}, but this session is {self.peer.peer_id}")
        payload = ack_payload(frame.sender, frame.recipient, frame.message_ids)
        verify(self.peer.identity_key, ACK_DOMAIN, payload, frame.signature)
        if frame.recipient != self.me.peer_id:
            raise UnknownPeer(f"ACK is addressed to {frame.recipient}, not to {self.me.peer_id}")
        self.stats.acks_in += 1
        return self.reliability.acked(frame.message_ids, now)


__all__ = [  # the events too: a session's callers handle what it returns
    "Acked",
    "DeliveryTimeout",
    "Event",
    "FrameReceived",
    "PeerClock",
    "PeerClosed",
    "PeerVerified",
    "Pong",
    "Refused",
    "Rekeyed",
    "Session",
    "SessionStats",
    "StaleSession",
    "Verdict",
]
