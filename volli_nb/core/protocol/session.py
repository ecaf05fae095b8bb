"""The peer-to-peer session, sans-IO (in the style of h11).

A :class:`Session` turns received bytes into events and calls into bytes to send;
it never touches a socket, a clock, a task or a thread.  The app creates one per
connected peer and

1. sends ``hello(offer_fp, answer_fp)`` as soon as the data channel opens;
2. feeds every data-channel message to ``receive(data, now)`` and handles the events
   (for :class:`MessageReceived`: open the envelope, store it, then ``accept(id)``, or
   ``reject(id, error)``);
3. sends whatever ``data_to_send(now)`` returns after each receive, each accept and
   each timer, and calls ``handle_timer(now)`` when ``next_deadline()`` passes.

So latency, loss, duplication and reordering are list edits in a test (see
:mod:`volli_nb.lab.simulator`).  This module does the binding, the receiving and the
deduplication; :mod:`.outgoing` decides what leaves next (bundling, chunking,
priority) and :mod:`.reliability` tracks what is in flight (timers, RTT, liveness).

- **Binding first.**  When built with ``expected_fingerprints``, the session refuses
  MESSAGE, ACK and PONG with :class:`ChannelBindingFailed` until the peer's HELLO
  verified; the channel is ordered and each side sends HELLO first, so an early frame
  is a protocol violation, not a race.  PING, BYE and CHUNK are allowed before it.
  Without ``expected_fingerprints`` (simulator, unit tests) the session starts verified.
  The HELLO must carry exactly the pinned identity: another peer id is
  :class:`UnknownPeer`; the same id with another identity *or device* key is
  :class:`KeyMismatch` (device-key rotation will need an explicit, verified flow).
- **Exactly once.**  A MESSAGE id already accepted in this session, or already in the
  app's persisted seen-set (the ``seen`` callback, so it survives a crash), yields no
  event but queues the ACK again (the first one may have been lost).  An id handed to
  the app and not yet accepted or rejected yields nothing at all.  A rejected id is
  forgotten, so a later (freshly sealed) attempt is offered again.
- **Reassembly** of CHUNK frames checks index continuity and caps a frame at
  ``max_frame_bytes`` (see :mod:`.chunks`).
"""

from __future__ import annotations

from collections.abc import Callable

from volli_nb.base.errors import (
    BadSignature,
    ChannelBindingFailed,
    KeyMismatch,
    MalformedFrame,
    UnknownPeer,
    UsageError,
    VolliError,
)
from volli_nb.core.crypto.identity import Identity, PublicIdentity, verify
from volli_nb.core.crypto.primitives import Random, random_bytes
from volli_nb.core.protocol.chunks import Reassembler
from volli_nb.core.protocol.events import (
    Acked,
    DeliveryTimeout,
    Event,
    MessageReceived,
    PeerClock,
    PeerClosed,
    PeerVerified,
    Pong,
    Refused,
    SessionStats,
)
from volli_nb.core.protocol.frames import (
    ACK_DOMAIN,
    BIND_DOMAIN,
    CHUNK_OVERHEAD,
    DEFAULT_MAX_MESSAGE_SIZE,
    MAX_FRAME_BYTES,
    AckFrame,
    BundleFrame,
    ByeFrame,
    ChunkFrame,
    Frame,
    HelloFrame,
    MessageFrame,
    PingFrame,
    PongFrame,
    ack_payload,
    bind_payload,
    decode_frame,
    make_bye,
    make_hello,
    make_message,
    make_ping,
    make_pong,
)
from volli_nb.core.protocol.link_quality import LinkQuality
from volli_nb.core.protocol.outgoing import Outgoing
from volli_nb.core.protocol.refusal import RefuseFrame, check_refusal, refusal_code
from volli_nb.core.protocol.reliability import InFlight, Reliability

MAX_REMEMBERED = 65_536  # accepted ids remembered in memory (the seen callback covers more)


class Session:
    """One connected peer: binding, reliable delivery, dedup, chunking, pings."""

    def __init__(
        self,
        me: Identity,
        peer: PublicIdentity,
        *,
        seen: Callable[[bytes], bool] | None = None,
        expected_fingerprints: tuple[str, str] | None = None,
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
        self._seen = seen or (lambda _mid: False)
        self._expected = expected_fingerprints
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
        self.verified = expected_fingerprints is None
        self._bound = False  # a valid HELLO arrived
        self._accepted: dict[bytes, None] = {}  # insertion-ordered set, capped
        self._delivered: set[bytes] = set()  # handed to the app, awaiting accept/reject
        self._reassembler = Reassembler(max_frame_bytes)

    @property
    def quality(self) -> LinkQuality:
        """Measured RTT, loss and goodput (see :mod:`.link_quality`)."""
        return self.reliability.quality

    @property
    def last_heard(self) -> float | None:
        """When the peer was last heard from (a frame, or a packet the transport saw)."""
        return self.reliability.last_heard

    # --- sending ------------------------------------------------------------------

    def hello(self, offer_fp: str, answer_fp: str) -> list[bytes]:
        """Our channel binding; send it before anything else."""
        return self.outgoing.out(self.outgoing.split(make_hello(self.me, offer_fp, answer_fp)))

    def send_message(self, message_id: bytes, envelope: bytes, now: float) -> list[bytes]:
        """Frames for one message at once (chunked if needed), unbundled; in flight until acked.

        Sending an id that is still in flight replaces it (new bytes, fresh timers).
        """
        state = self._track(message_id, envelope, now)
        self.reliability.arm(message_id, state, now)
        return self.outgoing.out(self.outgoing.pack([state.body]))

    def queue_message(self, message_id: bytes, envelope: bytes, now: float) -> None:
        """Like :meth:`send_message`, but the frames come from the next ``data_to_send``,
        bundled with every other message queued by then."""
        self.outgoing.queue(message_id, self._track(message_id, envelope, now))

    def _track(self, message_id: bytes, envelope: bytes, now: float) -> InFlight:
        body = make_message(message_id, envelope)[2:]  # validates id and envelope
        state = self.reliability.track(message_id, body, now)
        self.stats.messages_out += 1
        return state

    @property
    def queued_bytes(self) -> int:
        """Message bytes queued or framed but not yet returned by ``data_to_send``."""
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

    def accept(self, message_id: bytes) -> None:
        """The app stored the message: acknowledge it in the next ACK batch."""
        self._delivered.discard(message_id)
        self._remember(message_id)
        self.outgoing.ack(message_id)

    def reject(
        self, message_id: bytes, error: VolliError | None = None, *, clock_ms: int | None = None
    ) -> None:
        """The app did not store the message: no ACK, and a resend is offered again.

        If ``error`` is one a retry cannot fix (a stale timestamp, a full disk, …: see
        :func:`~.refusal.refusal_code`) and ``clock_ms`` (our wall clock) is given, the
        next ``data_to_send`` tells the peer so in a signed REFUSE."""
        self._delivered.discard(message_id)
        code = refusal_code(error)
        if code is not None and clock_ms is not None:
            self.outgoing.refuse(message_id, code, clock_ms)

    def forget(self, message_id: bytes) -> None:
        """Stop tracking an in-flight message (the app gave up on it)."""
        self.reliability.untrack(message_id)

    @property
    def in_flight(self) -> list[bytes]:
        """Ids sent and not yet acknowledged, oldest first."""
        return self.reliability.ids

    def data_to_send(self, now: float, max_bytes: int | None = None) -> list[bytes]:
        """Control first (PONGs, refusals, then ACKs), then queued messages and due retransmissions,
        bundled; with ``max_bytes``, message frames stop once that many bytes are out."""
        return self.outgoing.data_to_send(now, max_bytes)

    def _remember(self, message_id: bytes) -> None:
        self._accepted[message_id] = None
        if len(self._accepted) > MAX_REMEMBERED:
            del self._accepted[next(iter(self._accepted))]

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
        if isinstance(frame, MessageFrame | BundleFrame | ChunkFrame):
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
        if not self.verified:
            raise ChannelBindingFailed(
                f"{type(frame).__name__} arrived before a valid channel binding (HELLO)"
            )
        if isinstance(frame, PongFrame):
            return self.reliability.pong(frame.nonce, now)
        if isinstance(frame, AckFrame):
            return self._on_ack(frame, now)
        if isinstance(frame, MessageFrame):
            return self._on_message(frame)
        if isinstance(frame, BundleFrame):
            self.stats.bundles_in += 1
            return [e for item in frame.messages for e in self._on_message(item)]
        if isinstance(frame, RefuseFrame):
            check_refusal(frame, self.peer, self.me.peer_id)
            for message_id in frame.message_ids:
                self.reliability.untrack(message_id)  # no DeliveryTimeout for these
            return [Refused(frame.message_ids, frame.code, frame.clock_ms)]
        raise MalformedFrame("a CHUNK cannot carry another CHUNK")

    def _on_hello(self, frame: HelloFrame) -> list[Event]:
        if frame.identity.peer_id != self.peer.peer_id:
            raise UnknownPeer(
                f"channel binding from {frame.identity.peer_id}, expected {self.peer.peer_id}"
            )
        theirs, pinned = frame.identity, self.peer
        if (theirs.identity_key, theirs.device_key) != (pinned.identity_key, pinned.device_key):
            raise KeyMismatch(
                f"peer {self.peer.peer_id} presented an identity or device key other than the "
                "pinned one; re-verify the contact before trusting the new key"
            )
        if self._expected is not None and (
            (frame.offer_fingerprint, frame.answer_fingerprint) != self._expected
        ):
            raise ChannelBindingFailed(
                "the peer signed DTLS certificates other than the ones our handshake used: "
                "someone in the middle ended DTLS on both sides (a lying signaling path)"
            )
        payload = bind_payload(
            frame.offer_fingerprint, frame.answer_fingerprint, frame.identity.peer_id
        )
        try:
            verify(self.peer.identity_key, BIND_DOMAIN, payload, frame.signature)
        except BadSignature:
            raise ChannelBindingFailed("channel binding signature does not verify") from None
        if self._bound:
            return []  # a repeated HELLO: nothing new
        self._bound = self.verified = True
        return [PeerVerified(self.peer)]

    def _on_ack(self, frame: AckFrame, now: float) -> list[Event]:
        if frame.sender != self.peer.peer_id:
            raise UnknownPeer(f"ACK from {frame.sender}, but this session is {self.peer.peer_id}")
        payload = ack_payload(frame.sender, frame.recipient, frame.message_ids)
        verify(self.peer.identity_key, ACK_DOMAIN, payload, frame.signature)
        if frame.recipient != self.me.peer_id:
            raise UnknownPeer(f"ACK is addressed to {frame.recipient}, not to {self.me.peer_id}")
        self.stats.acks_in += 1
        return self.reliability.acked(frame.message_ids, now)

    def _on_message(self, frame: MessageFrame) -> list[Event]:
        mid = frame.message_id
        if mid in self._accepted or self._seen(mid):
            self.stats.duplicates_in += 1
            self.outgoing.ack(mid)  # the first ACK may have been lost
            return []
        if mid in self._delivered:
            self.stats.duplicates_in += 1
            return []
        self._delivered.add(mid)
        self.stats.messages_in += 1
        return [MessageReceived(mid, frame.envelope)]


__all__ = [  # the events too: a session's callers handle what it returns
    "MAX_REMEMBERED",
    "Acked",
    "DeliveryTimeout",
    "Event",
    "MessageReceived",
    "PeerClock",
    "PeerClosed",
    "PeerVerified",
    "Pong",
    "Refused",
    "Session",
    "SessionStats",
]
