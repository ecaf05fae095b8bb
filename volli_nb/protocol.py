"""The wire protocol between two peers, sans-IO (in the style of h11).

A :class:`Session` turns bytes into events and calls into bytes; it never
touches a socket, a clock or a task.  The caller feeds it every data-channel
message with ``receive(data, now)``, sends what ``data_to_send(now)`` returns,
and calls ``handle_timer(now)`` when ``next_deadline()`` passes.  So latency,
loss, duplication and reordering are list edits in a test (see :mod:`sim`).

Frames are ``bytes([VERSION, type]) + body``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .encoding import b64decode, b64encode, canonical_json, require_fields, strict_loads
from .errors import (
    BadSignature,
    ChannelBindingFailed,
    KeyMismatch,
    MalformedFrame,
    OversizedInput,
    UnknownPeer,
    UsageError,
    VolliError,
)
from .identity import Identity, PublicIdentity, verify

PROTOCOL_VERSION = 1
HELLO, MESSAGE, ACK, PING, PONG, BYE, CHUNK, BUNDLE = range(1, 9)
TYPE_NAMES = {
    HELLO: "HELLO",
    MESSAGE: "MESSAGE",
    ACK: "ACK",
    PING: "PING",
    PONG: "PONG",
    BYE: "BYE",
    CHUNK: "CHUNK",
    BUNDLE: "BUNDLE",
}
MESSAGE_ID_BYTES = 16
MAX_FRAME_BYTES = 25 * 1024 * 1024
MAX_CONTROL_BYTES = 64 * 1024
MAX_ACK_IDS = 512
MAX_STREAMS = 8
BIND_DOMAIN = b"volli-bind-v1"
ACK_DOMAIN = b"volli-ack-v1"
_CHUNK_HEADER = struct.Struct(">IIB")


# --- frames -------------------------------------------------------------------


@dataclass(frozen=True)
class HelloFrame:
    identity: PublicIdentity
    offer_fingerprint: str
    answer_fingerprint: str
    signature: bytes


@dataclass(frozen=True)
class MessageFrame:
    message_id: bytes
    envelope: bytes


@dataclass(frozen=True)
class AckFrame:
    sender: str
    recipient: str
    message_ids: tuple[bytes, ...]
    signature: bytes


@dataclass(frozen=True)
class PingFrame:
    nonce: bytes


@dataclass(frozen=True)
class PongFrame:
    nonce: bytes


@dataclass(frozen=True)
class ByeFrame:
    reason: str


@dataclass(frozen=True)
class ChunkFrame:
    stream: int
    index: int
    final: bool
    data: bytes


Frame = HelloFrame | MessageFrame | AckFrame | PingFrame | PongFrame | ByeFrame | ChunkFrame


def _frame(kind: int, body: bytes) -> bytes:
    return bytes([PROTOCOL_VERSION, kind]) + body


def _bind_payload(offer_fp: str, answer_fp: str, peer_id: str) -> bytes:
    return canonical_json({"offer": offer_fp, "answer": answer_fp, "peer_id": peer_id})


def make_hello(me: Identity, offer_fp: str, answer_fp: str) -> bytes:
    """Channel binding: our identity key signs both DTLS fingerprints."""
    signature = me.sign(BIND_DOMAIN, _bind_payload(offer_fp, answer_fp, me.peer_id))
    body = {
        "identity": me.public.to_json(),
        "fingerprints": {"offer": offer_fp, "answer": answer_fp},
        "signature": b64encode(signature),
    }
    return _frame(HELLO, canonical_json(body))


def _ack_payload(sender: str, recipient: str, ids: list[str]) -> bytes:
    return canonical_json({"from": sender, "to": recipient, "ids": ids})


def make_ack(me: Identity, recipient: str, message_ids: list[bytes]) -> bytes:
    """One ACK, signed by the recipient of the messages, covering many ids."""
    ids = [b64encode(m) for m in message_ids]
    signature = me.sign(ACK_DOMAIN, _ack_payload(me.peer_id, recipient, ids))
    body = {"from": me.peer_id, "to": recipient, "ids": ids, "signature": b64encode(signature)}
    return _frame(ACK, canonical_json(body))


def make_message(message_id: bytes, envelope: bytes) -> bytes:
    if len(message_id) != MESSAGE_ID_BYTES:
        raise UsageError("a message id is 16 bytes")
    return _frame(MESSAGE, message_id + envelope)


def make_ping(nonce: bytes) -> bytes:
    return _frame(PING, nonce)


def make_pong(nonce: bytes) -> bytes:
    return _frame(PONG, nonce)


def make_bye(reason: str) -> bytes:
    return _frame(BYE, reason.encode("utf-8")[:1024])


def make_chunks(frame: bytes, stream: int, max_size: int) -> list[bytes]:
    """Split ``frame`` into CHUNK frames no larger than ``max_size`` bytes each."""
    room = max_size - 2 - _CHUNK_HEADER.size
    if room <= 0:
        raise UsageError(f"max_size {max_size} leaves no room for chunk data")
    pieces = [frame[i : i + room] for i in range(0, len(frame), room)] or [b""]
    return [
        _frame(CHUNK, _CHUNK_HEADER.pack(stream, i, i == len(pieces) - 1) + piece)
        for i, piece in enumerate(pieces)
    ]


def _json_body(body: bytes, what: str) -> dict[str, Any]:
    return strict_loads(body, max_size=MAX_CONTROL_BYTES, what=what, error=MalformedFrame)


def decode_frame(data: bytes, max_size: int = MAX_FRAME_BYTES) -> Frame:
    """Parse one frame strictly; any defect raises a typed :class:`PeerError`."""
    if not isinstance(data, (bytes, bytearray)):
        raise MalformedFrame("frames are binary; got text")
    if len(data) > max_size:
        raise OversizedInput(f"frame of {len(data)} bytes exceeds the {max_size}-byte cap")
    if len(data) < 2:
        raise MalformedFrame("frame shorter than its 2-byte header")
    if data[0] != PROTOCOL_VERSION:
        raise MalformedFrame(f"unsupported protocol version {data[0]} (this side speaks 1)")
    kind, body = data[1], bytes(data[2:])
    if kind == MESSAGE:
        if len(body) <= MESSAGE_ID_BYTES:
            raise MalformedFrame("MESSAGE frame too short for an id and an envelope")
        return MessageFrame(body[:MESSAGE_ID_BYTES], body[MESSAGE_ID_BYTES:])
    if kind in (PING, PONG):
        if not 1 <= len(body) <= 64:
            raise MalformedFrame("PING/PONG nonce must be 1 to 64 bytes")
        return PingFrame(body) if kind == PING else PongFrame(body)
    if kind == BYE:
        return ByeFrame(body[:1024].decode("utf-8", errors="replace"))
    if kind == CHUNK:
        if len(body) < _CHUNK_HEADER.size:
            raise MalformedFrame("CHUNK frame shorter than its header")
        stream, index, final = _CHUNK_HEADER.unpack_from(body)
        if final > 1:
            raise MalformedFrame("CHUNK final flag must be 0 or 1")
        return ChunkFrame(stream, index, bool(final), body[_CHUNK_HEADER.size :])
    if kind == ACK:
        obj = _json_body(body, "ACK frame")
        require_fields(
            obj,
            {"from": str, "to": str, "ids": list, "signature": str},
            what="ACK frame",
            error=MalformedFrame,
        )
        if not 1 <= len(obj["ids"]) <= MAX_ACK_IDS:
            raise MalformedFrame(f"ACK must cover 1 to {MAX_ACK_IDS} ids")
        ids = tuple(
            b64decode(i, length=MESSAGE_ID_BYTES, what="ACK id", error=MalformedFrame)
            for i in obj["ids"]
        )
        sig = b64decode(obj["signature"], length=64, what="ACK signature", error=MalformedFrame)
        return AckFrame(obj["from"], obj["to"], ids, sig)
    if kind == HELLO:
        obj = _json_body(body, "HELLO frame")
        require_fields(
            obj,
            {"identity": dict, "fingerprints": dict, "signature": str},
            what="HELLO frame",
            error=MalformedFrame,
        )
        fps = obj["fingerprints"]
        require_fields(
            fps, {"offer": str, "answer": str}, what="HELLO fingerprints", error=MalformedFrame
        )
        identity = PublicIdentity.from_json(obj["identity"], error=MalformedFrame)
        sig = b64decode(obj["signature"], length=64, what="HELLO signature", error=MalformedFrame)
        return HelloFrame(identity, fps["offer"], fps["answer"], sig)
    raise MalformedFrame(f"unknown frame type {kind}")


# --- events -------------------------------------------------------------------


@dataclass(frozen=True)
class PeerVerified:
    peer: PublicIdentity


@dataclass(frozen=True)
class MessageReceived:
    message_id: bytes
    envelope: bytes


@dataclass(frozen=True)
class Acked:
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
    message_id: bytes


Event = PeerVerified | MessageReceived | Acked | Pong | PeerClosed | DeliveryTimeout


# --- the session ----------------------------------------------------------------


@dataclass
class _InFlight:
    frames: list[bytes]
    first_sent: float
    next_send: float
    backoff: float
    retransmitted: bool = False


@dataclass
class SessionStats:
    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    messages_in: int = 0
    messages_out: int = 0
    retransmissions: int = 0
    srtt: float | None = None
    rttvar: float | None = None
    rto: float = 1.0


@dataclass
class _Stream:
    next_index: int = 0
    parts: list[bytes] = field(default_factory=list)
    size: int = 0


class Session:
    """One peer's protocol state: binding, reliable delivery, dedup, chunking, pings."""

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
        max_frame_bytes: int = MAX_FRAME_BYTES,
        retransmit: bool = True,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.me, self.peer = me, peer
        self._seen = seen or (lambda _mid: False)
        self._expected = expected_fingerprints
        self.max_message_size = max_message_size
        self.rto_min, self.rto_max = rto_min, rto_max
        self.ack_timeout = ack_timeout
        self.max_frame_bytes = max_frame_bytes
        # Over a reliable, ordered data channel SCTP already retransmits; resending
        # there only floods the channel.  The simulator's lossy link needs it.
        self.retransmit = retransmit
        self._random = random
        self.stats = SessionStats(rto=rto_initial)
        self.verified = expected_fingerprints is None
        self.last_heard: float | None = None
        self._in_flight: dict[bytes, _InFlight] = {}
        self._accepted: set[bytes] = set()  # ids handed to the app and accepted
        self._delivered: set[bytes] = set()  # ids handed to the app, awaiting accept/reject
        self._ack_queue: list[bytes] = []
        self._control: list[bytes] = []
        self._bulk: list[bytes] = []
        self._pings: dict[bytes, float] = {}
        self._streams: dict[int, _Stream] = {}
        self._next_stream = 1

    # --- sending ---------------------------------------------------------------

    def hello(self, offer_fp: str, answer_fp: str) -> list[bytes]:
        return self._split(make_hello(self.me, offer_fp, answer_fp))

    def _split(self, frame: bytes) -> list[bytes]:
        if len(frame) <= self.max_message_size:
            return [frame]
        stream = self._next_stream
        self._next_stream = (self._next_stream % 0xFFFFFFFF) + 1
        return make_chunks(frame, stream, self.max_message_size)

    def send_message(self, message_id: bytes, envelope: bytes, now: float) -> list[bytes]:
        """Frames for a new message; it stays in flight (retransmitted) until acked."""
        frames = self._split(make_message(message_id, envelope))
        self._in_flight[message_id] = _InFlight(
            frames, first_sent=now, next_send=now + self.stats.rto, backoff=self.stats.rto
        )
        self.stats.messages_out += 1
        self._count_out(frames)
        return frames

    def ping(self, now: float) -> bytes:
        nonce = self._random(8)
        self._pings[nonce] = now
        if len(self._pings) > 16:
            self._pings.pop(next(iter(self._pings)))
        return make_ping(nonce)

    def close(self, reason: str) -> bytes:
        return make_bye(reason)

    def accept(self, message_id: bytes) -> None:
        """The app stored the message: acknowledge it (batched into the next ACK)."""
        self._delivered.discard(message_id)
        self._accepted.add(message_id)
        self._ack_queue.append(message_id)

    def reject(self, message_id: bytes, error: VolliError | None = None) -> None:
        """The app refused the message (bad envelope): no ACK; a retransmission is re-offered."""
        del error
        self._delivered.discard(message_id)

    @property
    def in_flight(self) -> list[bytes]:
        return list(self._in_flight)

    def forget(self, message_id: bytes) -> None:
        self._in_flight.pop(message_id, None)

    def data_to_send(self, now: float) -> list[bytes]:
        """Control frames first (ACKs, pongs), then due retransmissions."""
        out = list(self._control)
        self._control.clear()
        while self._ack_queue:
            batch = list(dict.fromkeys(self._ack_queue[:MAX_ACK_IDS]))
            del self._ack_queue[:MAX_ACK_IDS]
            out.extend(self._split(make_ack(self.me, self.peer.peer_id, batch)))
        for state in self._in_flight.values() if self.retransmit else ():
            if state.next_send <= now:
                state.retransmitted = True
                state.backoff = min(state.backoff * 2, self.rto_max)
                state.next_send = now + state.backoff
                self.stats.retransmissions += 1
                out.extend(state.frames)
        self._count_out(out)
        return out

    def _count_out(self, frames: list[bytes]) -> None:
        self.stats.frames_out += len(frames)
        self.stats.bytes_out += sum(len(f) for f in frames)

    # --- timers ----------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        times = [s.next_send for s in self._in_flight.values()] if self.retransmit else []
        if self.ack_timeout is not None:
            times += [s.first_sent + self.ack_timeout for s in self._in_flight.values()]
        return min(times) if times else None

    def handle_timer(self, now: float) -> list[Event]:
        if self.ack_timeout is None:
            return []
        expired = [
            mid for mid, s in self._in_flight.items() if now >= s.first_sent + self.ack_timeout
        ]
        for mid in expired:
            del self._in_flight[mid]
        return [DeliveryTimeout(mid) for mid in expired]

    def is_dead(self, now: float, timeout: float) -> bool:
        return self.last_heard is not None and now - self.last_heard > timeout

    # --- receiving ----------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[Event]:
        """Bytes from the data channel → events.  Bad input raises a typed PeerError."""
        self.last_heard = now
        self.stats.frames_in += 1
        self.stats.bytes_in += len(data)
        frame = decode_frame(data, self.max_frame_bytes)
        if isinstance(frame, ChunkFrame):
            whole = self._reassemble(frame)
            if whole is None:
                return []
            frame = decode_frame(whole, self.max_frame_bytes)
            if isinstance(frame, ChunkFrame):
                raise MalformedFrame("a chunk may not carry another chunk")
        return self._handle(frame, now)

    def _reassemble(self, chunk: ChunkFrame) -> bytes | None:
        stream = self._streams.get(chunk.stream)
        if stream is None:
            if chunk.index != 0:
                raise MalformedFrame(f"chunk {chunk.index} of unknown stream {chunk.stream}")
            if len(self._streams) >= MAX_STREAMS:
                raise OversizedInput(f"more than {MAX_STREAMS} chunked frames at once")
            stream = self._streams[chunk.stream] = _Stream()
        if chunk.index != stream.next_index:
            del self._streams[chunk.stream]
            raise MalformedFrame(
                f"chunk {chunk.index} arrived where {stream.next_index} was expected"
            )
        stream.size += len(chunk.data)
        if stream.size > self.max_frame_bytes:
            del self._streams[chunk.stream]
            raise OversizedInput(f"chunked frame exceeds {self.max_frame_bytes} bytes")
        stream.parts.append(chunk.data)
        stream.next_index += 1
        if not chunk.final:
            return None
        del self._streams[chunk.stream]
        return b"".join(stream.parts)

    def _handle(self, frame: Frame, now: float) -> list[Event]:
        if isinstance(frame, HelloFrame):
            return self._on_hello(frame)
        if isinstance(frame, PingFrame):
            self._control.append(make_pong(frame.nonce))
            return []
        if isinstance(frame, ByeFrame):
            return [PeerClosed(frame.reason)]
        if not self.verified:
            raise ChannelBindingFailed(
                f"{type(frame).__name__} arrived before a valid channel binding"
            )
        if isinstance(frame, PongFrame):
            sent = self._pings.pop(frame.nonce, None)
            return [] if sent is None else [Pong(now - sent)]
        if isinstance(frame, AckFrame):
            return self._on_ack(frame, now)
        if isinstance(frame, MessageFrame):
            return self._on_message(frame)
        raise MalformedFrame(f"unexpected frame {type(frame).__name__}")

    def _on_hello(self, frame: HelloFrame) -> list[Event]:
        if frame.identity.peer_id != self.peer.peer_id:
            raise UnknownPeer(
                f"channel binding from {frame.identity.peer_id}, expected {self.peer.peer_id}"
            )
        if frame.identity.identity_key != self.peer.identity_key:
            raise KeyMismatch(f"peer {self.peer.peer_id} presented a key other than the pinned one")
        if self._expected is not None and (
            (frame.offer_fingerprint, frame.answer_fingerprint) != self._expected
        ):
            raise ChannelBindingFailed(
                "the peer signed DTLS fingerprints other than the ones in our SDP: "
                "the signaling path may have been tampered with"
            )
        payload = _bind_payload(
            frame.offer_fingerprint, frame.answer_fingerprint, frame.identity.peer_id
        )
        try:
            verify(self.peer.identity_key, BIND_DOMAIN, payload, frame.signature)
        except BadSignature:
            raise ChannelBindingFailed("channel binding signature does not verify") from None
        self.verified = True
        return [PeerVerified(self.peer)]

    def _on_ack(self, frame: AckFrame, now: float) -> list[Event]:
        if frame.sender != self.peer.peer_id or frame.recipient != self.me.peer_id:
            raise UnknownPeer("ACK names other peers than this session's")
        payload = _ack_payload(
            frame.sender, frame.recipient, [b64encode(m) for m in frame.message_ids]
        )
        verify(self.peer.identity_key, ACK_DOMAIN, payload, frame.signature)
        acked, rtt = [], None
        for mid in frame.message_ids:
            state = self._in_flight.pop(mid, None)
            if state is None:
                continue
            acked.append(mid)
            if not state.retransmitted:  # Karn: only unambiguous samples
                rtt = now - state.first_sent
                self._sample_rtt(rtt)
        return [Acked(tuple(acked), rtt)] if acked else []

    def _sample_rtt(self, rtt: float) -> None:
        s = self.stats
        if s.srtt is None or s.rttvar is None:
            s.srtt, s.rttvar = rtt, rtt / 2
        else:
            s.rttvar = 0.75 * s.rttvar + 0.25 * abs(s.srtt - rtt)
            s.srtt = 0.875 * s.srtt + 0.125 * rtt
        s.rto = min(max(s.srtt + 4 * s.rttvar, self.rto_min), self.rto_max)

    def _on_message(self, frame: MessageFrame) -> list[Event]:
        mid = frame.message_id
        if mid in self._accepted or self._seen(mid):
            self._ack_queue.append(mid)  # the first ACK may have been lost
            return []
        if mid in self._delivered:
            return []
        self._delivered.add(mid)
        self.stats.messages_in += 1
        return [MessageReceived(mid, frame.envelope)]
