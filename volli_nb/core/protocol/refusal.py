"""Refusals: a receiver's signed answer "I did not store these, and this is why".

Some refusals cannot be fixed by a retry: a sender whose clock is minutes off has every
attempt refused as "from the future", a receiver whose disk is full refuses whatever
comes.  Without an answer the sender sees only "no ACK before the timeout" and burns its
retry schedule into ``stuck``.  So the receiver answers with a REFUSE frame naming the
messages, a stable :class:`RefusalCode` and its own clock, signed by its identity key
like an ACK (who refuses, to whom, exactly which ids, why, when), and the sender can
say what went wrong and wait for the cause to change (:mod:`volli_nb.app.refusals`).

Body (binary): ``from id 10 | to id 10 | code u8 | clock u64 | u16 count + ids 16 each |
signature 64``.  The signature also covers the session id of the channel it was sent
on (not repeated on the wire: both sides hold it), so a refusal cannot be replayed into
another session.  Only errors that say something useful to an authenticated peer are
answered; a forged or malformed envelope gets no answer (see :func:`refusal_code`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum

from volli_nb.base.errors import (
    BadSignature,
    DuplicateMessageId,
    MalformedFrame,
    MessageKeyUnavailable,
    NotARecipient,
    StaleMessage,
    StorageError,
    StorageFull,
    UnboundMessageId,
    UnknownPeer,
    UsageError,
    VolliError,
)
from volli_nb.core.crypto.identity import Identity, PublicIdentity, device_id_bytes, verify
from volli_nb.core.crypto.primitives import SIGNATURE_BYTES
from volli_nb.core.crypto.wire import Reader
from volli_nb.core.message_id import id_list, read_device_id, read_id_list

REFUSE_DOMAIN = b"volli-refuse-v2"
MAX_REFUSE_IDS = 512  # as many as one ACK covers: one refusal per refused bundle
SESSION_ID_BYTES = 32
CLOCK = struct.Struct(">Q")
MAX_CLOCK_MS = 2**53  # exact as a float and in SQLite


class RefusalCode(StrEnum):
    """Why a receiver did not store a message.  Stable: senders act on these names."""

    CLOCK_SKEW = "clock_skew"  # its signed time is outside the receiver's window
    STORAGE_FULL = "storage_full"  # the receiver's disk is full
    STORAGE_ERROR = "storage_error"  # the receiver's database failed otherwise
    NOT_RECIPIENT = "not_recipient"  # not sealed to the receiver's current device key
    UNKNOWN_SENDER = "unknown_sender"  # the envelope's sender is not the receiver's contact
    DUPLICATE_ID = "duplicate_id"  # the receiver holds this id from another sender
    KEY_UNAVAILABLE = "key_unavailable"  # no message key for it (expired): seal it again
    UNBOUND_ID = "unbound_id"  # the id does not name its sender (appended: numbers stay)

    @property
    def wire(self) -> int:
        return _WIRE[self]


_WIRE = {code: number for number, code in enumerate(RefusalCode, start=1)}
_FROM_WIRE = {number: code for code, number in _WIRE.items()}


def refusal_code(error: VolliError | None) -> RefusalCode | None:
    """The code to answer ``error`` with, or None: stay silent (forged, malformed, …)."""
    if isinstance(error, StorageFull):
        return RefusalCode.STORAGE_FULL
    if isinstance(error, StorageError):
        return RefusalCode.STORAGE_ERROR
    if isinstance(error, StaleMessage):
        return RefusalCode.CLOCK_SKEW
    if isinstance(error, NotARecipient):
        return RefusalCode.NOT_RECIPIENT
    if isinstance(error, UnknownPeer):
        return RefusalCode.UNKNOWN_SENDER
    if isinstance(error, DuplicateMessageId):
        return RefusalCode.DUPLICATE_ID
    if isinstance(error, MessageKeyUnavailable):
        return RefusalCode.KEY_UNAVAILABLE
    if isinstance(error, UnboundMessageId):
        return RefusalCode.UNBOUND_ID
    return None


@dataclass(frozen=True)
class RefuseFrame:
    sender: str
    recipient: str
    message_ids: tuple[bytes, ...]
    code: RefusalCode
    clock_ms: int  # the refusing side's wall clock, ms since the epoch
    signature: bytes


def _unsigned(
    sender: str, recipient: str, message_ids: tuple[bytes, ...], code: RefusalCode, clock_ms: int
) -> bytes:
    if not 0 <= clock_ms < MAX_CLOCK_MS:
        raise UsageError(f"clock_ms must be in [0, 2**53), not {clock_ms}")
    return (
        device_id_bytes(sender)
        + device_id_bytes(recipient)
        + bytes((code.wire,))
        + CLOCK.pack(clock_ms)
        + id_list(message_ids, MAX_REFUSE_IDS, "a refusal")
    )


def refuse_payload(session_id: bytes, frame: RefuseFrame) -> bytes:
    """What a REFUSE signs: the session it answers in, then its body without signature."""
    if len(session_id) != SESSION_ID_BYTES:
        raise UsageError("a session id is 32 bytes")
    unsigned = _unsigned(
        frame.sender, frame.recipient, frame.message_ids, frame.code, frame.clock_ms
    )
    return session_id + unsigned


def sign_refusal(
    me: Identity,
    recipient: str,
    message_ids: list[bytes],
    code: RefusalCode,
    clock_ms: int,
    session_id: bytes,
) -> RefuseFrame:
    ids = tuple(dict.fromkeys(message_ids))
    unsigned = RefuseFrame(me.peer_id, recipient, ids, code, clock_ms, b"")
    signature = me.sign(REFUSE_DOMAIN, refuse_payload(session_id, unsigned))
    return RefuseFrame(me.peer_id, recipient, ids, code, clock_ms, signature)


def encode_refuse_body(frame: RefuseFrame) -> bytes:
    unsigned = _unsigned(
        frame.sender, frame.recipient, frame.message_ids, frame.code, frame.clock_ms
    )
    return unsigned + frame.signature


def decode_refuse_body(body: bytes) -> RefuseFrame:
    reader = Reader(body, MalformedFrame, "REFUSE frame")
    sender = read_device_id(reader, "sender id")
    recipient = read_device_id(reader, "recipient id")
    number = reader.byte("code")
    code = _FROM_WIRE.get(number)
    if code is None:
        raise reader.fail(f"unknown refusal code {number}")
    (clock_ms,) = CLOCK.unpack(reader.take(CLOCK.size, "clock"))
    if clock_ms >= MAX_CLOCK_MS:
        raise reader.fail("clock out of range")
    ids = read_id_list(reader, MAX_REFUSE_IDS, "a REFUSE")
    signature = reader.take(SIGNATURE_BYTES, "signature")
    reader.end()
    return RefuseFrame(sender, recipient, ids, code, clock_ms, signature)


def check_refusal(frame: RefuseFrame, peer: PublicIdentity, me: str, session_id: bytes) -> None:
    """The refusal comes from ``peer``, is signed by it in this session, and is for ``me``."""
    if frame.sender != peer.peer_id:
        raise UnknownPeer(f"REFUSE from {frame.sender}, but this session is {peer.peer_id}")
    try:
        verify(peer.identity_key, REFUSE_DOMAIN, refuse_payload(session_id, frame), frame.signature)
    except BadSignature:
        raise BadSignature(
            "REFUSE signature does not verify (or was made in another session)"
        ) from None
    if frame.recipient != me:
        raise UnknownPeer(f"REFUSE is addressed to {frame.recipient}, not to {me}")


def describe(code: RefusalCode, name: str, skew: float) -> str:
    """The refusal in words; ``skew`` is the refuser's clock minus ours, in seconds."""
    if code == RefusalCode.CLOCK_SKEW:
        if abs(skew) >= 1:
            side = "ahead of" if skew < 0 else "behind"
            return f"{name} refused: your clock is {abs(skew):.0f} s {side} theirs"
        return f"{name} refused it as too old or too new, though your clocks agree"
    return {
        RefusalCode.STORAGE_FULL: f"{name} refused: their storage is full",
        RefusalCode.STORAGE_ERROR: f"{name} refused: their storage failed",
        RefusalCode.NOT_RECIPIENT: f"{name} refused: it was not sealed to their current key",
        RefusalCode.UNKNOWN_SENDER: f"{name} refused: they do not know you as this sender",
        RefusalCode.DUPLICATE_ID: f"{name} refused: they hold this message id from someone else",
        RefusalCode.KEY_UNAVAILABLE: f"{name} refused: its message key was gone (sent again)",
        RefusalCode.UNBOUND_ID: f"{name} refused: its message id does not name you as sender",
    }[code]


__all__ = [
    "MAX_REFUSE_IDS",
    "REFUSE_DOMAIN",
    "RefusalCode",
    "RefuseFrame",
    "check_refusal",
    "decode_refuse_body",
    "describe",
    "encode_refuse_body",
    "refusal_code",
    "refuse_payload",
    "sign_refusal",
]
