"""Data-channel frames: ``bytes([PROTOCOL_VERSION, type]) + body``, binary and parsed strictly.

Each frame type has a typed dataclass; :func:`decode_frame` turns bytes into one of them
and :func:`encode_frame` back, byte for byte (``decode(encode(f)) == f``).  Every body is
a fixed binary layout (no JSON, no base64): the same discipline as the envelope
(:mod:`volli_nb.core.crypto.wire`), so each frame has exactly one accepted encoding.
Every defect in received bytes raises a typed :class:`~volli_nb.base.errors.PeerError`
(:class:`MalformedFrame`, :class:`OversizedInput`, :class:`MalformedHandshake`,
:class:`MalformedEnvelope`), never a bare ValueError.

Bodies (``id`` = a 10-byte device id, the raw form of a 16-character peer id):

==========  ==================================================================
HELLO       the session handshake's hello (:mod:`volli_nb.core.crypto.handshake`),
            which also binds the channel: it signs both DTLS certificate digests
BUNDLE      8-byte session tag + a signed bundle of 1..512 envelopes
            (:mod:`volli_nb.core.crypto.envelope_wire`)
ACK         from id + to id + u16 count (1..512) + 16-byte ids + Ed25519 signature
PING        8-byte nonce + u64 sender's clock (ms since the epoch; 0: not given)
PONG        8-byte nonce
BYE         UTF-8 reason, at most 1024 bytes
CHUNK       stream id (u32) + index (u32) + final flag (u8) + at least one byte
REFUSE      from id + to id + code (u8) + u64 clock + u16 count + ids + signature:
            see :mod:`volli_nb.core.protocol.refusal`
==========  ==================================================================

The session tag is the first 8 bytes of the session id (the handshake transcript
hash): a frame sealed under a session that has since been replaced is recognised and
dropped before any key is tried.  The envelopes are bound to their session anyway (the
session id is every key wrap's associated data).  CHUNKs are joined back by
:mod:`volli_nb.core.protocol.chunks`.  Protocol version 2 was the first with sessions;
version 3 carries binary message bodies (:mod:`volli_nb.core.body`, version 2).  A peer
speaking an older version gets a clear "upgrade" error, not a misparse.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from volli_nb.base.errors import MalformedFrame, OversizedInput, UsageError
from volli_nb.core.crypto import handshake
from volli_nb.core.crypto.channel_keys import TAG_BYTES
from volli_nb.core.crypto.envelope_wire import (
    MAX_BUNDLE,
    MAX_BUNDLE_BYTES,
    ParsedBundle,
    parse_bundle,
)
from volli_nb.core.crypto.identity import Identity, device_id_bytes
from volli_nb.core.crypto.primitives import SIGNATURE_BYTES
from volli_nb.core.crypto.wire import Reader
from volli_nb.core.message_id import id_list, read_device_id, read_id_list
from volli_nb.core.protocol.refusal import RefuseFrame, decode_refuse_body, encode_refuse_body

PROTOCOL_VERSION = 3


class FrameType(IntEnum):
    HELLO = 1
    BUNDLE = 2
    ACK = 3
    PING = 4
    PONG = 5
    BYE = 6
    CHUNK = 7
    REFUSE = 8


HELLO, BUNDLE, ACK, PING, PONG, BYE, CHUNK, REFUSE = FrameType
TYPE_NAMES = {t.value: t.name for t in FrameType}

NONCE_BYTES = 8  # PING/PONG
CLOCK = struct.Struct(">Q")  # a PING's wall clock, ms since the epoch
MAX_FRAME_BYTES = MAX_BUNDLE_BYTES + 2 + TAG_BYTES  # a reassembled frame: the largest bundle
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024  # what an SCTP peer takes when it advertises no limit
MAX_CONTROL_BYTES = 64 * 1024  # any frame but BUNDLE and CHUNK
MAX_ACK_IDS = MAX_BUNDLE  # one ACK covers a whole bundle
MAX_REASON_BYTES = 1024
ACK_DOMAIN = b"volli-ack-v2"
BUNDLE_OVERHEAD = 2 + TAG_BYTES  # frame header + session tag, before the bundle itself
CHUNK_HEADER = struct.Struct(">IIB")
CHUNK_OVERHEAD = 2 + CHUNK_HEADER.size


# --- typed frames -------------------------------------------------------------


@dataclass(frozen=True)
class HelloFrame:
    hello: bytes  # the handshake hello, exactly as signed (decoded on receipt)


@dataclass(frozen=True)
class BundleFrame:
    tag: bytes  # the first TAG_BYTES of the session id it was sealed under
    bundle: ParsedBundle

    @property
    def message_ids(self) -> tuple[bytes, ...]:
        return tuple(e.envelope.message_id for e in self.bundle.envelopes)


@dataclass(frozen=True)
class AckFrame:
    sender: str
    recipient: str
    message_ids: tuple[bytes, ...]
    signature: bytes


@dataclass(frozen=True)
class PingFrame:
    nonce: bytes
    clock_ms: int = 0  # the sender's wall clock, so skew shows at connect time (0: unknown)


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


Frame = (
    BundleFrame
    | HelloFrame
    | AckFrame
    | PingFrame
    | PongFrame
    | ByeFrame
    | ChunkFrame
    | RefuseFrame
)


# --- signed payloads ----------------------------------------------------------


def ack_payload(sender: str, recipient: str, message_ids: tuple[bytes, ...]) -> bytes:
    """What an ACK signs: who acknowledges, to whom, and exactly which ids (its wire body
    without the signature)."""
    return (
        device_id_bytes(sender)
        + device_id_bytes(recipient)
        + id_list(message_ids, MAX_ACK_IDS, "an ACK")
    )


# --- encoding -----------------------------------------------------------------


def frame(kind: FrameType, body: bytes) -> bytes:
    return bytes((PROTOCOL_VERSION, kind)) + body


def encode_frame(f: Frame) -> bytes:
    """The wire bytes of a typed frame (signatures are carried, not made, here)."""
    if isinstance(f, BundleFrame):
        return make_bundle_frame(f.tag, f.bundle.raw)
    if isinstance(f, PingFrame):
        return frame(PING, f.nonce + CLOCK.pack(f.clock_ms))
    if isinstance(f, PongFrame):
        return frame(PONG, f.nonce)
    if isinstance(f, ByeFrame):
        return frame(BYE, f.reason.encode("utf-8"))
    if isinstance(f, ChunkFrame):
        return frame(CHUNK, CHUNK_HEADER.pack(f.stream, f.index, int(f.final)) + f.data)
    if isinstance(f, AckFrame):
        return frame(ACK, ack_payload(f.sender, f.recipient, f.message_ids) + f.signature)
    if isinstance(f, RefuseFrame):
        return frame(REFUSE, encode_refuse_body(f))
    return frame(HELLO, f.hello)


def make_hello(hello: bytes) -> bytes:
    """The HELLO frame for a handshake hello (:func:`volli_nb.core.crypto.handshake.start`)."""
    if len(hello) != handshake.HELLO_BYTES:
        raise UsageError(f"a handshake hello is {handshake.HELLO_BYTES} bytes")
    return frame(HELLO, hello)


def make_bundle_frame(tag: bytes, bundle: bytes) -> bytes:
    """A BUNDLE frame: the session tag, then a signed bundle (``envelope.bundle``)."""
    if len(tag) != TAG_BYTES:
        raise UsageError(f"a session tag is {TAG_BYTES} bytes")
    return frame(BUNDLE, tag + bundle)


def make_ack(me: Identity, recipient: str, message_ids: list[bytes] | tuple[bytes, ...]) -> bytes:
    """One ACK, signed by the recipient of the messages, covering up to MAX_ACK_IDS ids."""
    payload = ack_payload(me.peer_id, recipient, tuple(dict.fromkeys(message_ids)))
    return frame(ACK, payload + me.sign(ACK_DOMAIN, payload))


def make_ping(nonce: bytes, clock_ms: int = 0) -> bytes:
    if len(nonce) != NONCE_BYTES or not 0 <= clock_ms < 2**64:
        raise UsageError(f"a ping nonce is {NONCE_BYTES} bytes, its clock a u64 of ms")
    return frame(PING, nonce + CLOCK.pack(clock_ms))


def make_pong(nonce: bytes) -> bytes:
    if len(nonce) != NONCE_BYTES:
        raise UsageError(f"a pong nonce is {NONCE_BYTES} bytes")
    return frame(PONG, nonce)


def make_bye(reason: str) -> bytes:
    """BYE with the reason cut to MAX_REASON_BYTES on a character boundary."""
    raw = reason.encode("utf-8")[:MAX_REASON_BYTES]
    return frame(BYE, raw.decode("utf-8", errors="ignore").encode("utf-8"))


# --- decoding -----------------------------------------------------------------


def _decode_ack(body: bytes) -> AckFrame:
    reader = Reader(body, MalformedFrame, "ACK frame")
    sender = read_device_id(reader, "sender id")
    recipient = read_device_id(reader, "recipient id")
    ids = read_id_list(reader, MAX_ACK_IDS, "an ACK")
    signature = reader.take(SIGNATURE_BYTES, "signature")
    reader.end()
    return AckFrame(sender, recipient, ids, signature)


def _decode_bundle(body: bytes) -> BundleFrame:
    if len(body) <= TAG_BYTES:
        raise MalformedFrame("BUNDLE frame too short for its session tag and a bundle")
    return BundleFrame(body[:TAG_BYTES], parse_bundle(body[TAG_BYTES:]))


def _decode_small(kind: int, body: bytes) -> Frame:
    if kind == PING:
        if len(body) != NONCE_BYTES + CLOCK.size:
            raise MalformedFrame(f"PING body must be an {NONCE_BYTES}-byte nonce and a u64 clock")
        return PingFrame(body[:NONCE_BYTES], CLOCK.unpack_from(body, NONCE_BYTES)[0])
    if kind == PONG:
        if len(body) != NONCE_BYTES:
            raise MalformedFrame(f"PONG body must be an {NONCE_BYTES}-byte nonce")
        return PongFrame(body)
    if kind == BYE:
        if len(body) > MAX_REASON_BYTES:
            raise MalformedFrame(f"BYE reason longer than {MAX_REASON_BYTES} bytes")
        try:
            return ByeFrame(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise MalformedFrame("BYE reason is not UTF-8") from None
    if kind == HELLO:
        if len(body) != handshake.HELLO_BYTES:
            raise MalformedFrame(f"HELLO body must be a {handshake.HELLO_BYTES}-byte hello")
        return HelloFrame(body)
    if kind == ACK:
        return _decode_ack(body)
    if kind == REFUSE:
        return decode_refuse_body(body)
    raise MalformedFrame(f"unknown frame type {kind}")


def decode_frame(data: bytes, max_size: int = MAX_FRAME_BYTES) -> Frame:
    """Parse one frame strictly; any defect raises a typed :class:`PeerError`."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedFrame(f"frames are binary, got {type(data).__name__}")
    if len(data) > max_size:
        raise OversizedInput(f"frame of {len(data)} bytes exceeds the {max_size}-byte cap")
    if len(data) < 2:
        raise MalformedFrame("frame shorter than its 2-byte header")
    if data[0] != PROTOCOL_VERSION:
        raise MalformedFrame(
            f"unsupported protocol version {data[0]} (this side speaks {PROTOCOL_VERSION}): "
            "the peer runs another volli_nb release; upgrade both sides"
        )
    kind, body = data[1], bytes(data[2:])
    if kind == BUNDLE:
        return _decode_bundle(body)
    if kind == CHUNK:
        if len(body) <= CHUNK_HEADER.size:
            raise MalformedFrame("CHUNK frame too short for its 9-byte header and data")
        stream, index, final = CHUNK_HEADER.unpack_from(body)
        if final > 1:
            raise MalformedFrame("CHUNK final flag must be 0 or 1")
        return ChunkFrame(stream, index, bool(final), body[CHUNK_HEADER.size :])
    if len(body) > MAX_CONTROL_BYTES:
        raise OversizedInput(f"a {TYPE_NAMES.get(kind, '?')} frame is at most 64 KiB")
    return _decode_small(kind, body)


def frame_type_name(data: bytes) -> str:
    """The type name of raw frame bytes, for logs and traces ("?" if unknown)."""
    return TYPE_NAMES.get(data[1], "?") if len(data) > 1 else "?"


def bundle_frame_size(envelope_bytes: int, count: int) -> int:
    """The wire size of a BUNDLE frame of ``count`` envelopes totalling that many bytes
    (varint lengths counted at their largest, 4 bytes)."""
    return BUNDLE_OVERHEAD + 1 + 2 + count * 4 + envelope_bytes + SIGNATURE_BYTES


__all__ = [
    "ACK",
    "BUNDLE",
    "BYE",
    "CHUNK",
    "HELLO",
    "PING",
    "PONG",
    "PROTOCOL_VERSION",
    "REFUSE",
    "AckFrame",
    "BundleFrame",
    "ByeFrame",
    "ChunkFrame",
    "Frame",
    "FrameType",
    "HelloFrame",
    "PingFrame",
    "PongFrame",
    "RefuseFrame",
    "decode_frame",
    "encode_frame",
    "frame_type_name",
    "make_ack",
    "make_bundle_frame",
    "make_bye",
    "make_hello",
    "make_ping",
    "make_pong",
]
