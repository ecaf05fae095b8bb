"""Refusals: a receiver's signed answer "I did not store these, and this is why".

Some refusals cannot be fixed by a retry: a sender whose clock is minutes off has every
attempt refused as "from the future", a receiver whose disk is full refuses whatever
comes.  Without an answer the sender sees only "no ACK before the timeout" and burns its
retry schedule into ``stuck``.  So the receiver answers with a REFUSE frame naming the
messages, a stable :class:`RefusalCode` and its own clock, signed by its identity key
like an ACK (who refuses, to whom, exactly which ids, why, when), and the sender can
say what went wrong and wait for the cause to change (:mod:`volli_nb.app.refusals`).

Body (canonical JSON): ``{"from", "to", "ids": [b64 ids], "code", "clock", "signature"}``.
Only errors that say something useful to an authenticated peer are answered; a forged
or malformed envelope gets no answer (see :func:`refusal_code`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from volli_nb.base.errors import (
    BadSignature,
    MalformedFrame,
    NotARecipient,
    StaleMessage,
    StorageError,
    StorageFull,
    UnknownPeer,
    UsageError,
    VolliError,
)
from volli_nb.core.crypto.identity import Identity, PublicIdentity, verify
from volli_nb.core.crypto.primitives import SIGNATURE_BYTES
from volli_nb.core.encoding import (
    b64decode,
    b64encode,
    canonical_json,
    canonical_loads,
    require_fields,
)
from volli_nb.core.message_id import check_message_id, decode_id_list

REFUSE_DOMAIN = b"volli-refuse-v1"
MAX_REFUSE_IDS = 512  # as many as one ACK covers: one refusal per refused bundle
MAX_REFUSE_BYTES = 64 * 1024
MAX_CLOCK_MS = 2**53  # JSON integers stay exact below this


class RefusalCode(StrEnum):
    """Why a receiver did not store a message.  Stable: senders act on these strings."""

    CLOCK_SKEW = "clock_skew"  # its signed time is outside the receiver's window
    STORAGE_FULL = "storage_full"  # the receiver's disk is full
    STORAGE_ERROR = "storage_error"  # the receiver's database failed otherwise
    NOT_RECIPIENT = "not_recipient"  # not sealed to the receiver's current device key
    UNKNOWN_SENDER = "unknown_sender"  # the envelope's sender is not the receiver's contact


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
    return None


@dataclass(frozen=True)
class RefuseFrame:
    sender: str
    recipient: str
    message_ids: tuple[bytes, ...]
    code: RefusalCode
    clock_ms: int  # the refusing side's wall clock, ms since the epoch
    signature: bytes


def refuse_payload(
    sender: str, recipient: str, message_ids: tuple[bytes, ...], code: str, clock_ms: int
) -> bytes:
    """What a REFUSE signs: who refuses, to whom, exactly which ids, why, and when."""
    ids = [b64encode(m) for m in message_ids]
    body = {"from": sender, "to": recipient, "ids": ids, "code": code, "clock": clock_ms}
    return canonical_json(body)


def sign_refusal(
    me: Identity, recipient: str, message_ids: list[bytes], code: RefusalCode, clock_ms: int
) -> RefuseFrame:
    ids = tuple(dict.fromkeys(message_ids))
    if not 1 <= len(ids) <= MAX_REFUSE_IDS:
        raise UsageError(f"a refusal covers 1 to {MAX_REFUSE_IDS} distinct ids, not {len(ids)}")
    for message_id in ids:
        check_message_id(message_id)
    if not 0 <= clock_ms < MAX_CLOCK_MS:
        raise UsageError(f"clock_ms must be in [0, 2**53), not {clock_ms}")
    payload = refuse_payload(me.peer_id, recipient, ids, code, clock_ms)
    return RefuseFrame(me.peer_id, recipient, ids, code, clock_ms, me.sign(REFUSE_DOMAIN, payload))


def encode_refuse_body(frame: RefuseFrame) -> bytes:
    return canonical_json(
        {
            "from": frame.sender,
            "to": frame.recipient,
            "ids": [b64encode(m) for m in frame.message_ids],
            "code": str(frame.code),
            "clock": frame.clock_ms,
            "signature": b64encode(frame.signature),
        }
    )


def decode_refuse_body(body: bytes) -> RefuseFrame:
    what = "REFUSE frame"
    obj = canonical_loads(body, max_size=MAX_REFUSE_BYTES, what=what, error=MalformedFrame)
    fields: dict[str, type] = {"from": str, "to": str, "ids": list, "code": str, "clock": int}
    require_fields(obj, {**fields, "signature": str}, what=what, error=MalformedFrame)
    ids = decode_id_list(obj["ids"], limit=MAX_REFUSE_IDS, what="a REFUSE")
    if obj["code"] not in {str(c) for c in RefusalCode}:
        raise MalformedFrame(f"unknown refusal code {obj['code'][:40]!r}")
    if not 0 <= obj["clock"] < MAX_CLOCK_MS:
        raise MalformedFrame("REFUSE clock out of range")
    sig = b64decode(
        obj["signature"], length=SIGNATURE_BYTES, what="REFUSE signature", error=MalformedFrame
    )
    return RefuseFrame(obj["from"], obj["to"], ids, RefusalCode(obj["code"]), obj["clock"], sig)


def check_refusal(frame: RefuseFrame, peer: PublicIdentity, me: str) -> None:
    """The refusal comes from ``peer``, is signed by it, and is addressed to ``me``."""
    if frame.sender != peer.peer_id:
        raise UnknownPeer(f"REFUSE from {frame.sender}, but this session is {peer.peer_id}")
    payload = refuse_payload(
        frame.sender, frame.recipient, frame.message_ids, frame.code, frame.clock_ms
    )
    try:
        verify(peer.identity_key, REFUSE_DOMAIN, payload, frame.signature)
    except BadSignature:
        raise BadSignature("REFUSE signature does not verify") from None
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
