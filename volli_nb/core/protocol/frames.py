"""Data-channel frames: ``bytes([PROTOCOL_VERSION, type]) + body``, parsed strictly.

Each frame type has a typed dataclass; :func:`decode_frame` turns bytes into one
of them and :func:`encode_frame` back, byte for byte (``decode(encode(f)) == f``).
The ``make_*`` helpers build (and where needed sign) the frames a session sends.
Every defect in received bytes raises a typed :class:`~volli_nb.base.errors.PeerError`
(:class:`MalformedFrame`, :class:`OversizedInput`, or :class:`BadSignature` for an
identity whose device signature fails), never a bare ValueError.

Bodies:

==========  ==================================================================
HELLO       canonical JSON ``{"identity", "fingerprints": {"offer", "answer"},
            "signature"}``: the identity key signs both DTLS fingerprints
MESSAGE     16-byte message id + envelope (opaque here; at least one byte)
ACK         canonical JSON ``{"from", "to", "ids": [b64 ids], "signature"}``
PING        8-byte nonce + u64 sender's clock (ms since the epoch; 0: not given)
PONG        8-byte nonce
BYE         UTF-8 reason, at most 1024 bytes
CHUNK       stream id (u32) + index (u32) + final flag (u8) + at least one byte
BUNDLE      u16 count (2..MAX_BUNDLE) + per message: u32 length + 16-byte id + envelope
REFUSE      canonical JSON, signed: see :mod:`volli_nb.core.protocol.refusal`
==========  ==================================================================

A BUNDLE's messages are handled in order, exactly as consecutive MESSAGE frames would be
(why bundles exist: :mod:`volli_nb.core.protocol.outgoing`).  CHUNKs are joined back
by :mod:`volli_nb.core.protocol.chunks`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from volli_nb.base.errors import MalformedFrame, OversizedInput, UsageError
from volli_nb.core.crypto.identity import Identity, PublicIdentity
from volli_nb.core.crypto.primitives import SIGNATURE_BYTES
from volli_nb.core.encoding import (
    b64decode,
    b64encode,
    canonical_json,
    canonical_loads,
    require_fields,
)
from volli_nb.core.message_id import MESSAGE_ID_BYTES, check_message_id, decode_id_list
from volli_nb.core.protocol.refusal import RefuseFrame, decode_refuse_body, encode_refuse_body

PROTOCOL_VERSION = 1


class FrameType(IntEnum):
    HELLO = 1
    MESSAGE = 2
    ACK = 3
    PING = 4
    PONG = 5
    BYE = 6
    CHUNK = 7
    BUNDLE = 8
    REFUSE = 9


HELLO, MESSAGE, ACK, PING, PONG, BYE, CHUNK, BUNDLE, REFUSE = FrameType
TYPE_NAMES = {t.value: t.name for t in FrameType}

NONCE_BYTES = 8  # PING/PONG
CLOCK = struct.Struct(">Q")  # a PING's wall clock, ms since the epoch
MAX_FRAME_BYTES = 25 * 1024 * 1024  # a reassembled frame: a 24 MiB envelope + headroom
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024  # what an SCTP peer takes when it advertises no limit
MAX_CONTROL_BYTES = 64 * 1024  # JSON bodies (HELLO, ACK)
MAX_ACK_IDS = 512  # 512 ids is about 12.5 KiB of JSON: one unchunked 16 KiB frame
MAX_REASON_BYTES = 1024
MAX_FINGERPRINT_CHARS = 256
BIND_DOMAIN = b"volli-bind-v1"
ACK_DOMAIN = b"volli-ack-v1"
MAX_BUNDLE = MAX_ACK_IDS  # one ACK can cover a whole bundle
BUNDLE_COUNT = struct.Struct(">H")
BUNDLE_LENGTH = struct.Struct(">I")
CHUNK_HEADER = struct.Struct(">IIB")
CHUNK_OVERHEAD = 2 + CHUNK_HEADER.size


# --- typed frames -------------------------------------------------------------


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


@dataclass(frozen=True)
class BundleFrame:
    messages: tuple[MessageFrame, ...]


Frame = (
    BundleFrame
    | HelloFrame
    | MessageFrame
    | AckFrame
    | PingFrame
    | PongFrame
    | ByeFrame
    | ChunkFrame
    | RefuseFrame
)


# --- signed payloads ----------------------------------------------------------


def bind_payload(offer_fp: str, answer_fp: str, peer_id: str) -> bytes:
    """What a HELLO signs: both fingerprints and the signer's own peer id."""
    return canonical_json({"offer": offer_fp, "answer": answer_fp, "peer_id": peer_id})


def ack_payload(sender: str, recipient: str, message_ids: tuple[bytes, ...]) -> bytes:
    """What an ACK signs: who acknowledges, to whom, and exactly which ids."""
    ids = [b64encode(m) for m in message_ids]
    return canonical_json({"from": sender, "to": recipient, "ids": ids})


# --- encoding -----------------------------------------------------------------


def _frame(kind: FrameType, body: bytes) -> bytes:
    return bytes([PROTOCOL_VERSION, kind]) + body


def encode_frame(frame: Frame) -> bytes:
    """The wire bytes of a typed frame (signatures are carried, not made, here)."""
    if isinstance(frame, MessageFrame):
        return _frame(MESSAGE, frame.message_id + frame.envelope)
    if isinstance(frame, PingFrame):
        return _frame(PING, frame.nonce + CLOCK.pack(frame.clock_ms))
    if isinstance(frame, PongFrame):
        return _frame(PONG, frame.nonce)
    if isinstance(frame, ByeFrame):
        return _frame(BYE, frame.reason.encode("utf-8"))
    if isinstance(frame, ChunkFrame):
        header = CHUNK_HEADER.pack(frame.stream, frame.index, int(frame.final))
        return _frame(CHUNK, header + frame.data)
    if isinstance(frame, BundleFrame):
        return make_bundle([m.message_id + m.envelope for m in frame.messages])
    if isinstance(frame, RefuseFrame):
        return _frame(REFUSE, encode_refuse_body(frame))
    if isinstance(frame, AckFrame):
        body: dict[str, object] = {
            "from": frame.sender,
            "to": frame.recipient,
            "ids": [b64encode(m) for m in frame.message_ids],
            "signature": b64encode(frame.signature),
        }
        return _frame(ACK, canonical_json(body))
    body = {
        "identity": frame.identity.to_json(),
        "fingerprints": {"offer": frame.offer_fingerprint, "answer": frame.answer_fingerprint},
        "signature": b64encode(frame.signature),
    }
    return _frame(HELLO, canonical_json(body))


def make_hello(me: Identity, offer_fp: str, answer_fp: str) -> bytes:
    """Channel binding: our identity key signs both DTLS certificate digests in use."""
    signature = me.sign(BIND_DOMAIN, bind_payload(offer_fp, answer_fp, me.peer_id))
    return encode_frame(HelloFrame(me.public, offer_fp, answer_fp, signature))


def make_ack(me: Identity, recipient: str, message_ids: list[bytes] | tuple[bytes, ...]) -> bytes:
    """One ACK, signed by the recipient of the messages, covering up to MAX_ACK_IDS ids."""
    ids = tuple(dict.fromkeys(message_ids))
    if not 1 <= len(ids) <= MAX_ACK_IDS:
        raise UsageError(f"an ACK covers 1 to {MAX_ACK_IDS} distinct ids, not {len(ids)}")
    for message_id in ids:
        check_message_id(message_id)
    signature = me.sign(ACK_DOMAIN, ack_payload(me.peer_id, recipient, ids))
    return encode_frame(AckFrame(me.peer_id, recipient, ids, signature))


def make_message(message_id: bytes, envelope: bytes) -> bytes:
    check_message_id(message_id)
    if not envelope:
        raise UsageError("an envelope cannot be empty")
    return _frame(MESSAGE, message_id + envelope)


def make_bundle(messages: list[bytes]) -> bytes:
    """One BUNDLE of MESSAGE bodies (each ``id + envelope``, as ``make_message`` takes them)."""
    if not 2 <= len(messages) <= MAX_BUNDLE:
        raise UsageError(f"a bundle holds 2 to {MAX_BUNDLE} messages, not {len(messages)}")
    parts = [BUNDLE_COUNT.pack(len(messages))]
    for body in messages:
        if len(body) <= MESSAGE_ID_BYTES:
            raise UsageError("each bundled message needs a 16-byte id and an envelope")
        parts += [BUNDLE_LENGTH.pack(len(body)), body]
    return _frame(BUNDLE, b"".join(parts))


def bundle_size(body_lengths: int, count: int) -> int:
    """The wire size of a bundle of ``count`` bodies totalling ``body_lengths`` bytes."""
    return 2 + BUNDLE_COUNT.size + count * BUNDLE_LENGTH.size + body_lengths


def make_ping(nonce: bytes, clock_ms: int = 0) -> bytes:
    if len(nonce) != NONCE_BYTES or not 0 <= clock_ms < 2**64:
        raise UsageError(f"a ping nonce is {NONCE_BYTES} bytes, its clock a u64 of ms")
    return _frame(PING, nonce + CLOCK.pack(clock_ms))


def make_pong(nonce: bytes) -> bytes:
    if len(nonce) != NONCE_BYTES:
        raise UsageError(f"a pong nonce is {NONCE_BYTES} bytes")
    return _frame(PONG, nonce)


def make_bye(reason: str) -> bytes:
    """BYE with the reason cut to MAX_REASON_BYTES on a character boundary."""
    raw = reason.encode("utf-8")[:MAX_REASON_BYTES]
    return _frame(BYE, raw.decode("utf-8", errors="ignore").encode("utf-8"))


# --- decoding -----------------------------------------------------------------


def _json_body(body: bytes, what: str) -> dict[str, Any]:
    """Strict JSON in its one canonical spelling (sorted keys, no spaces)."""
    return canonical_loads(body, max_size=MAX_CONTROL_BYTES, what=what, error=MalformedFrame)


def _decode_bundle(body: bytes) -> BundleFrame:
    if len(body) < BUNDLE_COUNT.size:
        raise MalformedFrame("BUNDLE frame too short for its message count")
    (count,) = BUNDLE_COUNT.unpack_from(body)
    if not 2 <= count <= MAX_BUNDLE:
        raise MalformedFrame(f"a BUNDLE holds 2 to {MAX_BUNDLE} messages, not {count}")
    offset, items, ids = BUNDLE_COUNT.size, [], set()
    for index in range(count):
        if offset + BUNDLE_LENGTH.size > len(body):
            raise MalformedFrame(f"BUNDLE ends inside the length of message {index}")
        (length,) = BUNDLE_LENGTH.unpack_from(body, offset)
        offset += BUNDLE_LENGTH.size
        if length <= MESSAGE_ID_BYTES:
            raise MalformedFrame(f"bundled message {index} too short for an id and an envelope")
        if offset + length > len(body):
            raise MalformedFrame(f"bundled message {index} runs past the end of the BUNDLE")
        item = MessageFrame(
            body[offset : offset + MESSAGE_ID_BYTES],
            body[offset + MESSAGE_ID_BYTES : offset + length],
        )
        if item.message_id in ids:
            raise MalformedFrame("a BUNDLE carries the same message id twice")
        ids.add(item.message_id)
        items.append(item)
        offset += length
    if offset != len(body):
        raise MalformedFrame(f"{len(body) - offset} stray bytes after the last bundled message")
    return BundleFrame(tuple(items))


def _decode_ack(body: bytes) -> AckFrame:
    obj = _json_body(body, "ACK frame")
    require_fields(
        obj,
        {"from": str, "to": str, "ids": list, "signature": str},
        what="ACK frame",
        error=MalformedFrame,
    )
    ids = decode_id_list(obj["ids"], limit=MAX_ACK_IDS, what="an ACK")
    sig = b64decode(
        obj["signature"], length=SIGNATURE_BYTES, what="ACK signature", error=MalformedFrame
    )
    return AckFrame(obj["from"], obj["to"], ids, sig)


def _decode_hello(body: bytes) -> HelloFrame:
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
    for name in ("offer", "answer"):
        if not 1 <= len(fps[name]) <= MAX_FINGERPRINT_CHARS:
            raise MalformedFrame(f"HELLO {name} fingerprint must be 1 to 256 characters")
    identity = PublicIdentity.from_json(obj["identity"], error=MalformedFrame)
    sig = b64decode(
        obj["signature"], length=SIGNATURE_BYTES, what="HELLO signature", error=MalformedFrame
    )
    return HelloFrame(identity, fps["offer"], fps["answer"], sig)


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
            f"unsupported protocol version {data[0]} (this side speaks {PROTOCOL_VERSION})"
        )
    kind, body = data[1], bytes(data[2:])
    if kind == MESSAGE:
        if len(body) <= MESSAGE_ID_BYTES:
            raise MalformedFrame("MESSAGE frame too short for a 16-byte id and an envelope")
        return MessageFrame(body[:MESSAGE_ID_BYTES], body[MESSAGE_ID_BYTES:])
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
    if kind == CHUNK:
        if len(body) <= CHUNK_HEADER.size:
            raise MalformedFrame("CHUNK frame too short for its 9-byte header and data")
        stream, index, final = CHUNK_HEADER.unpack_from(body)
        if final > 1:
            raise MalformedFrame("CHUNK final flag must be 0 or 1")
        return ChunkFrame(stream, index, bool(final), body[CHUNK_HEADER.size :])
    if kind == ACK:
        return _decode_ack(body)
    if kind == HELLO:
        return _decode_hello(body)
    if kind == BUNDLE:
        return _decode_bundle(body)
    if kind == REFUSE:
        return decode_refuse_body(body)
    raise MalformedFrame(f"unknown frame type {kind}")


def frame_type_name(data: bytes) -> str:
    """The type name of raw frame bytes, for logs and traces ("?" if unknown)."""
    return TYPE_NAMES.get(data[1], "?") if len(data) > 1 else "?"
