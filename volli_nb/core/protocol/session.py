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

So latency, loss, duplication and reordering are list edits in a test (see :mod:`sim`).

Choices:

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
- **Reliability.**  A message stays in flight until a signed ACK names it.  With
  ``retransmit=True`` (a lossy link, the simulator) the same frames are resent on an
  RFC 6298 timer: SRTT/RTTVAR from one sample per ACK frame (the newest message it
  acknowledges that was never retransmitted: Karn's rule), per-message exponential
  backoff, clamped to ``[rto_min, rto_max]``.  Over a real data channel SCTP is already
  reliable, so the app passes ``retransmit=False``.  After ``ack_timeout`` seconds without
  an ACK the message leaves the session with :class:`DeliveryTimeout` and goes back to the
  persistent queue's 1/5/15/60 s schedule; ``ack_timeout=None`` retries forever.
- **Chunking.**  Any outgoing frame longer than ``max_message_size`` is split into
  CHUNK frames; reassembly checks index continuity and caps a frame at
  ``max_frame_bytes``, all partial frames together at that plus 512 KiB, and the number of
  partial frames at ``MAX_STREAMS``.
- **Bundling.**  ``queue_message`` holds a message until the next ``data_to_send``,
  which packs every queued small message (a frame up to a quarter of
  ``max_message_size``) into BUNDLE frames of up to ``max_message_size`` bytes and 512
  messages, in order; larger ones go alone, chunked.  The receiver handles a bundle's
  messages in one go, so the app's next ``data_to_send`` there carries one ACK for all.
  ``send_message`` is the unbundled path: its frames are returned at once.
- **Priority.**  ``data_to_send`` returns PONGs, then ACKs (one signed frame per 512
  ids, normally one), then message frames; with ``max_bytes`` it stops after that many
  message bytes and keeps the rest, so control frames overtake bulk data (a chunked
  message's pieces may be interleaved with them; the reassembler allows that).
"""

from __future__ import annotations

import heapq
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

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
from volli_nb.core.protocol import frames
from volli_nb.core.protocol.frames import *  # noqa: F403  (the app imports frames through protocol)
from volli_nb.core.protocol.frames import (
    ACK_DOMAIN,
    BIND_DOMAIN,
    CHUNK_OVERHEAD,
    MAX_ACK_IDS,
    MAX_BUNDLE,
    MAX_FRAME_BYTES,
    NONCE_BYTES,
    AckFrame,
    BundleFrame,
    ByeFrame,
    ChunkFrame,
    Frame,
    HelloFrame,
    MessageFrame,
    PingFrame,
    PongFrame,
    Reassembler,
    ack_payload,
    bind_payload,
    bundle_size,
    decode_frame,
    make_ack,
    make_bundle,
    make_bye,
    make_chunks,
    make_hello,
    make_message,
    make_ping,
    make_pong,
)
from volli_nb.core.protocol.link_quality import LinkQuality

MAX_PINGS = 16  # outstanding pings remembered for RTT
MAX_REMEMBERED = 65_536  # accepted ids remembered in memory (the seen callback covers more)


# --- events ---------------------------------------------------------------------


@dataclass(frozen=True)
class PeerVerified:
    """The peer's HELLO proved its pinned key signed both DTLS fingerprints."""

    peer: PublicIdentity


@dataclass(frozen=True)
class MessageReceived:
    """A new message: open and store it, then call ``accept`` (or ``reject``)."""

    message_id: bytes
    envelope: bytes


@dataclass(frozen=True)
class Acked:
    """A signed ACK covered these in-flight messages; ``rtt`` is the sample it gave."""

    message_ids: tuple[bytes, ...]
    rtt: float | None


@dataclass(frozen=True)
class Pong:
    rtt: float


@dataclass(frozen=True)
class PeerClosed:
    reason: str


@dataclass(frozen=True)
class DeliveryTimeout:
    """No ACK within ``ack_timeout``: hand the message back to the persistent queue."""

    message_id: bytes


Event = PeerVerified | MessageReceived | Acked | Pong | PeerClosed | DeliveryTimeout


# --- state ------------------------------------------------------------------------


@dataclass
class SessionStats:
    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    messages_in: int = 0  # MessageReceived events
    messages_out: int = 0  # send_message calls
    duplicates_in: int = 0  # MESSAGE frames that produced no event
    acks_in: int = 0
    acks_out: int = 0
    retransmissions: int = 0
    timeouts: int = 0
    bundles_in: int = 0  # BUNDLE frames received
    bundles_out: int = 0
    srtt: float | None = None
    rttvar: float | None = None
    rto: float = 1.0


@dataclass
class _InFlight:
    serial: int  # tells this send's timers from those of an earlier send of the same id
    body: bytes  # the MESSAGE body: 16-byte id + envelope
    first_sent: float
    next_send: float
    backoff: float
    retransmissions: int = 0


class Session:
    """One connected peer: binding, reliable delivery, dedup, chunking, pings."""

    def __init__(
        self,
        me: Identity,
        peer: PublicIdentity,
        *,
        seen: Callable[[bytes], bool] | None = None,
        expected_fingerprints: tuple[str, str] | None = None,
        max_message_size: int = 65536,
        rto_initial: float = 1.0,
        rto_min: float = 0.2,
        rto_max: float = 10.0,
        ack_timeout: float | None = 15.0,
        adaptive_ack: bool = False,
        ack_floor: float = 3.0,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        retransmit: bool = True,
        bundle: bool = True,
        random: Callable[[int], bytes] = os.urandom,
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
        self.max_message_size = max_message_size
        self.rto_min, self.rto_max = rto_min, rto_max
        self.ack_timeout = ack_timeout
        self.adaptive_ack, self.ack_floor = adaptive_ack, ack_floor
        self.quality = LinkQuality()
        self.bundle = bundle
        self.bundle_item_max = max_message_size // 4
        self.max_frame_bytes = max_frame_bytes
        self.retransmit = retransmit
        self._random = random
        self.stats = SessionStats(rto=self._clamp(rto_initial))
        self.verified = expected_fingerprints is None
        self._bound = False  # a valid HELLO arrived
        self.last_heard: float | None = None
        self._serial = 0
        self._in_flight: dict[bytes, _InFlight] = {}
        self._retx_timers: list[tuple[float, int, bytes]] = []  # (due, serial, id), lazy
        self._ack_timers: list[tuple[float, int, bytes]] = []
        self._accepted: dict[bytes, None] = {}  # insertion-ordered set, capped
        self._delivered: set[bytes] = set()  # handed to the app, awaiting accept/reject
        self._pending_acks: dict[bytes, None] = {}
        self._pongs: list[bytes] = []
        self._unsent: list[tuple[bytes, int]] = []  # (id, serial) queued, not yet framed
        self._wire: deque[bytes] = deque()  # message frames made, not yet returned
        self._wire_bytes = 0
        self._unsent_bytes = 0  # counts replaced entries too, until the next data_to_send
        self._in_flight_bytes = 0
        self._last_ack_at = float("-inf")
        self._last_data_at = float("-inf")  # MESSAGE, BUNDLE or CHUNK frames from the peer
        self._pings: dict[bytes, float] = {}
        self._reassembler = Reassembler(max_frame_bytes)
        self._next_stream = 1

    # --- sending ------------------------------------------------------------------

    def hello(self, offer_fp: str, answer_fp: str) -> list[bytes]:
        """Our channel binding; send it before anything else."""
        return self._out(self._split(make_hello(self.me, offer_fp, answer_fp)))

    def send_message(self, message_id: bytes, envelope: bytes, now: float) -> list[bytes]:
        """Frames for one message at once (chunked if needed), unbundled; in flight until acked.

        Sending an id that is still in flight replaces it (new bytes, fresh timers).
        """
        state = self._track(message_id, envelope, now)
        self._arm(message_id, state, now)
        return self._out(self._pack([state.body]))

    def queue_message(self, message_id: bytes, envelope: bytes, now: float) -> None:
        """Like :meth:`send_message`, but the frames come from the next ``data_to_send``,
        bundled with every other message queued by then."""
        state = self._track(message_id, envelope, now)
        self._unsent.append((message_id, state.serial))
        self._unsent_bytes += len(state.body)

    def _track(self, message_id: bytes, envelope: bytes, now: float) -> _InFlight:
        body = make_message(message_id, envelope)[2:]  # validates id and envelope
        self._untrack(message_id)
        self._serial += 1
        rto = self.stats.rto
        state = _InFlight(self._serial, body, now, now + rto, rto)
        self._in_flight[message_id] = state
        self._in_flight_bytes += len(body)
        self.stats.messages_out += 1
        return state

    def _untrack(self, message_id: bytes) -> _InFlight | None:
        state = self._in_flight.pop(message_id, None)
        if state is not None:
            self._in_flight_bytes -= len(state.body)
        return state

    def _arm(self, message_id: bytes, state: _InFlight, now: float) -> None:
        """Start a message's timers when its frames actually leave."""
        state.first_sent, state.next_send = now, now + state.backoff
        if self.retransmit:
            heapq.heappush(self._retx_timers, (state.next_send, state.serial, message_id))
        timeout = self._ack_timeout()
        if timeout is not None:
            heapq.heappush(self._ack_timers, (now + timeout, state.serial, message_id))

    def _ack_timeout(self) -> float | None:
        if self.ack_timeout is None or not self.adaptive_ack:
            return self.ack_timeout
        return self.quality.ack_timeout(
            self._in_flight_bytes, floor=self.ack_floor, ceiling=self.ack_timeout
        )

    @property
    def queued_bytes(self) -> int:
        """Message bytes queued or framed but not yet returned by ``data_to_send``."""
        return self._unsent_bytes + self._wire_bytes

    @property
    def has_output(self) -> bool:
        """True if ``data_to_send`` would return something now (ignoring timers)."""
        return bool(self._pongs or self._pending_acks or self._unsent or self._wire)

    def ping(self, now: float) -> bytes:
        """A heartbeat; the matching PONG yields :class:`Pong` with the round trip."""
        nonce = self._random(NONCE_BYTES)
        self._pings[nonce] = now
        while len(self._pings) > MAX_PINGS:
            del self._pings[next(iter(self._pings))]
        return self._out([make_ping(nonce)])[0]

    def close(self, reason: str) -> bytes:
        """A BYE frame; the peer gets :class:`PeerClosed`."""
        return self._out([make_bye(reason)])[0]

    def accept(self, message_id: bytes) -> None:
        """The app stored the message: acknowledge it in the next ACK batch."""
        self._delivered.discard(message_id)
        self._remember(message_id)
        self._pending_acks[message_id] = None

    def reject(self, message_id: bytes, error: VolliError | None = None) -> None:
        """The app refused the message (e.g. bad envelope): no ACK; a resend is re-offered."""
        del error  # the app logs it; the session only forgets the id
        self._delivered.discard(message_id)

    def forget(self, message_id: bytes) -> None:
        """Stop tracking an in-flight message (the app gave up on it)."""
        self._untrack(message_id)

    @property
    def in_flight(self) -> list[bytes]:
        """Ids sent and not yet acknowledged, oldest first."""
        return list(self._in_flight)

    def data_to_send(self, now: float, max_bytes: int | None = None) -> list[bytes]:
        """Control first (PONGs, then ACKs), then queued messages and due retransmissions,
        bundled; with ``max_bytes``, message frames stop once that many bytes are out."""
        out, self._pongs = self._pongs, []
        ids = list(self._pending_acks)
        self._pending_acks.clear()
        for start in range(0, len(ids), MAX_ACK_IDS):
            batch = ids[start : start + MAX_ACK_IDS]
            out.extend(self._split(make_ack(self.me, self.peer.peer_id, batch)))
            self.stats.acks_out += 1
        bodies = self._take_unsent(now) + self._take_due(now)
        if bodies:
            for frame in self._pack(bodies):
                self._wire.append(frame)
                self._wire_bytes += len(frame)
        sent = 0
        while self._wire and (max_bytes is None or sent < max_bytes):
            frame = self._wire.popleft()
            self._wire_bytes -= len(frame)
            sent += len(frame)
            out.append(frame)
        return self._out(out)

    def _take_unsent(self, now: float) -> list[bytes]:
        bodies = []
        for mid, serial in self._unsent:
            state = self._in_flight.get(mid)
            if state is not None and state.serial == serial:
                self._arm(mid, state, now)
                bodies.append(state.body)
        self._unsent.clear()
        self._unsent_bytes = 0
        return bodies

    def _take_due(self, now: float) -> list[bytes]:
        bodies: list[bytes] = []
        while self.retransmit and (top := self._peek(self._retx_timers, retx=True)) is not None:
            due, _, mid = top
            if due > now:
                break
            heapq.heappop(self._retx_timers)
            state = self._in_flight[mid]
            if self.ack_timeout is not None and now >= state.first_sent + self.ack_timeout:
                continue  # handle_timer reports it; no point resending
            state.retransmissions += 1
            state.backoff = self._clamp(state.backoff * 2)
            state.next_send = now + state.backoff
            heapq.heappush(self._retx_timers, (state.next_send, state.serial, mid))
            self.stats.retransmissions += 1
            self.quality.loss_sample(True)
            bodies.append(state.body)
        return bodies

    def _pack(self, bodies: list[bytes]) -> list[bytes]:
        """MESSAGE bodies → frames, in order: small ones bundled, large ones alone."""
        out: list[bytes] = []
        batch: list[bytes] = []
        size = 0

        def flush() -> None:
            nonlocal size
            if len(batch) == 1:
                out.append(make_message(batch[0][:16], batch[0][16:]))
            elif batch:
                out.append(make_bundle(batch))
                self.stats.bundles_out += 1
            batch.clear()
            size = 0

        for body in bodies:
            if not self.bundle or len(body) + 2 > self.bundle_item_max:
                flush()
                out.extend(self._split(make_message(body[:16], body[16:])))
                continue
            fits = bundle_size(size + len(body), len(batch) + 1) <= self.max_message_size
            if batch and (not fits or len(batch) == MAX_BUNDLE):
                flush()
            batch.append(body)
            size += len(body)
        flush()
        return out

    def _split(self, frame: bytes) -> list[bytes]:
        if len(frame) <= self.max_message_size:
            return [frame]
        stream = self._next_stream
        self._next_stream = stream % 0xFFFFFFFF + 1
        return make_chunks(frame, stream, self.max_message_size)

    def _out(self, out: list[bytes]) -> list[bytes]:
        self.stats.frames_out += len(out)
        self.stats.bytes_out += sum(len(f) for f in out)
        return out

    def _remember(self, message_id: bytes) -> None:
        self._accepted[message_id] = None
        if len(self._accepted) > MAX_REMEMBERED:
            del self._accepted[next(iter(self._accepted))]

    # --- timers ---------------------------------------------------------------------

    def _peek(
        self, heap: list[tuple[float, int, bytes]], *, retx: bool
    ) -> tuple[float, int, bytes] | None:
        """The earliest live timer; stale entries (acked, resent, replaced) are dropped."""
        while heap:
            due, serial, mid = heap[0]
            state = self._in_flight.get(mid)
            if (
                state is not None
                and state.serial == serial
                and (not retx or state.next_send == due)
            ):
                return heap[0]
            heapq.heappop(heap)
        return None

    def next_deadline(self) -> float | None:
        """When ``data_to_send`` / ``handle_timer`` next have something to do."""
        times = []
        if self.retransmit and (top := self._peek(self._retx_timers, retx=True)):
            times.append(top[0])
        if self.ack_timeout is not None and (top := self._peek(self._ack_timers, retx=False)):
            times.append(top[0])
        return min(times) if times else None

    def handle_timer(self, now: float) -> list[Event]:
        """Messages whose ``ack_timeout`` passed leave the session as DeliveryTimeout.

        Over a reliable channel (``retransmit=False``) a message still travelling behind
        others is not lost, only late: while ACKs keep arriving, its deadline moves to
        one timeout after the latest ACK, or after the latest message data from the peer
        (our ACKs then queue behind its own bulk).  So a slow, lossy link makes no false
        timeouts (and no duplicate sends); a silent or refusing peer still times out."""
        events: list[Event] = []
        while (top := self._peek(self._ack_timers, retx=False)) is not None and top[0] <= now:
            heapq.heappop(self._ack_timers)
            _, serial, mid = top
            timeout = self._ack_timeout()
            progress = max(self._last_ack_at, self._last_data_at)
            if not self.retransmit and timeout is not None and progress + timeout > now:
                heapq.heappush(self._ack_timers, (progress + timeout, serial, mid))
                continue
            self._untrack(mid)
            self.stats.timeouts += 1
            events.append(DeliveryTimeout(mid))
        return events

    def silence_limit(self, base: float) -> float:
        """The heartbeat silence after which the peer counts as dead (see LinkQuality)."""
        return self.quality.silence_limit(base)

    def heard_from_transport(self, when: float) -> None:
        """The transport saw a packet from the peer at ``when`` (e.g. an SCTP SACK): the peer
        is alive even if its frames are held back behind a lost packet."""
        if self.last_heard is not None and when > self.last_heard:
            self.last_heard = when

    def is_dead(self, now: float, timeout: float) -> bool:
        """True if we heard something once and then nothing for ``timeout`` seconds."""
        return self.last_heard is not None and now - self.last_heard > timeout

    def _clamp(self, rto: float) -> float:
        return min(max(rto, self.rto_min), self.rto_max)

    def _sample_rtt(self, rtt: float) -> None:
        """RFC 6298 section 2, kept in :class:`LinkQuality` (which also watches loss)."""
        q, s = self.quality, self.stats
        q.rtt_sample(rtt)
        s.srtt, s.rttvar = q.srtt, q.rttvar
        s.rto = q.rto(self.rto_min, self.rto_max)

    # --- receiving ------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[Event]:
        """One data-channel message → events.  Bad input raises a typed PeerError.

        A refused frame changes nothing but ``last_heard`` and the counters.
        """
        if self.last_heard is not None:
            self.quality.stalled(now - self.last_heard)
        self.last_heard = now
        self.stats.frames_in += 1
        self.stats.bytes_in += len(data)
        frame = decode_frame(data, self.max_frame_bytes)
        if isinstance(frame, MessageFrame | BundleFrame | ChunkFrame):
            self._last_data_at = now
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
            self._pongs.append(make_pong(frame.nonce))
            return []
        if isinstance(frame, ByeFrame):
            return [PeerClosed(frame.reason)]
        if not self.verified:
            raise ChannelBindingFailed(
                f"{type(frame).__name__} arrived before a valid channel binding (HELLO)"
            )
        if isinstance(frame, PongFrame):
            sent = self._pings.pop(frame.nonce, None)
            if sent is None:
                return []
            if self.retransmit:
                self.quality.rtt_sample(now - sent)
            else:
                self._sample_rtt(now - sent)
            return [Pong(now - sent)]
        if isinstance(frame, AckFrame):
            return self._on_ack(frame, now)
        if isinstance(frame, MessageFrame):
            return self._on_message(frame)
        if isinstance(frame, BundleFrame):
            self.stats.bundles_in += 1
            return [e for item in frame.messages for e in self._on_message(item)]
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
                "the peer signed DTLS fingerprints other than the ones in our SDP: "
                "the signaling path may have been tampered with"
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
        acked: list[bytes] = []
        newest: float | None = None  # Karn: sample only messages sent exactly once
        acked_bytes = 0
        for mid in frame.message_ids:
            state = self._untrack(mid)
            if state is None:
                continue
            acked.append(mid)
            acked_bytes += len(state.body)
            if state.retransmissions == 0 and (newest is None or state.first_sent > newest):
                newest = state.first_sent
        rtt = None if newest is None else now - newest
        if rtt is not None and self.retransmit:
            # Over a reliable channel an ACK's delay includes the time the message queued
            # behind others; only pings measure the path there.
            self._sample_rtt(rtt)
            self.quality.loss_sample(False)
        self.quality.acked(acked_bytes, now)
        self._last_ack_at = now
        if not self._in_flight:
            self.quality.idle()
        return [Acked(tuple(acked), rtt)] if acked else []

    def _on_message(self, frame: MessageFrame) -> list[Event]:
        mid = frame.message_id
        if mid in self._accepted or self._seen(mid):
            self.stats.duplicates_in += 1
            self._pending_acks[mid] = None  # the first ACK may have been lost
            return []
        if mid in self._delivered:
            self.stats.duplicates_in += 1
            return []
        self._delivered.add(mid)
        self.stats.messages_in += 1
        return [MessageReceived(mid, frame.envelope)]


__all__ = [
    "MAX_PINGS",
    "MAX_REMEMBERED",
    "Acked",
    "DeliveryTimeout",
    "Event",
    "MessageReceived",
    "PeerClosed",
    "PeerVerified",
    "Pong",
    "Session",
    "SessionStats",
]
__all__ += frames.__all__
