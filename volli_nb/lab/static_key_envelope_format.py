"""The retired v1 envelope's wire shape, parsed strictly (see :mod:`.static_key_envelope`).

Canonical JSON (sorted keys, no spaces, UTF-8), binary fields as unpadded base64url::

    {"v": 1, "conversation_id": str (1-256 chars), "message_id": b64(16),
     "sender": {"peer_id", "identity_key": b64(32), "device_key": b64(32),
                "device_signature": b64(64), "device_epoch": int 1.. (only from 1)},
     "counter": int 1..2**53-1, "timestamp": int ms 0..2**53-1,
     "recipients": {peer_id: {"device_key": b64(32), "ephemeral_key": b64(32),
                              "encrypted_key": b64(48), "nonce": b64(24)}},  # 1..1024 entries
     "nonce": b64(24), "commitment": b64(32), "ciphertext": b64, "signature": b64(64)}

Size buckets (padding hides the exact length): the padded body is the next power of
two holding ``len(plaintext) + 1`` bytes, at least 256, up to 1 MiB; above that the
next multiple of 1 MiB (so a 10 MB message costs at most 1 MiB of padding, not 6).
A parser refuses ciphertexts whose length is not a bucket plus the tag, and input that
is not exactly the canonical bytes, so every message has exactly one encoding.
``MAX_ENVELOPE_BYTES`` is 24 MiB: the app allows 12 MiB of text, whose 13 MiB bucket is
about 18 MiB after base64, and the frame cap leaves room for it.

:mod:`volli_nb.lab.static_key_envelope` seals and opens; this module only reads and writes
the shape, so a notebook can show an envelope's anatomy without trusting it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from volli_nb.base.errors import MalformedEnvelope, UsageError
from volli_nb.core.crypto import padding
from volli_nb.core.crypto.envelope_wire import (
    MAX_CONVERSATION_ID,
    MAX_ENVELOPE_BYTES,
    MAX_RECIPIENTS,
)
from volli_nb.core.crypto.identity import (
    PublicIdentity,
    identity_fields,
    parse_epoch,
    peer_id_for,
)
from volli_nb.core.crypto.primitives import AEAD_TAG_BYTES
from volli_nb.core.crypto.wire import MAX_SAFE_INT
from volli_nb.core.encoding import b64decode, canonical_json, require_fields, strict_loads
from volli_nb.core.message_id import MESSAGE_ID_BYTES

VERSION = 1
MIN_BUCKET = 256  # v1 padded from 256 bytes; the live envelope from 128
BIG_BUCKET = padding.BIG_BUCKET

_PEER_ID = re.compile(r"[a-z2-7]{16}\Z")
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "v": int,
    "conversation_id": str,
    "message_id": str,
    "sender": dict,
    "counter": int,
    "timestamp": int,
    "recipients": dict,
    "nonce": str,
    "commitment": str,
    "ciphertext": str,
    "signature": str,
}
_WRAP_FIELDS: dict[str, type | tuple[type, ...]] = {
    "device_key": str,
    "ephemeral_key": str,
    "encrypted_key": str,
    "nonce": str,
}


@dataclass(frozen=True)
class KeyWrap:
    """The content key wrapped for one recipient."""

    device_key: bytes  # the recipient's X25519 device key it was wrapped to
    ephemeral_key: bytes
    encrypted_key: bytes  # 32-byte key + 16-byte tag
    nonce: bytes


@dataclass(frozen=True)
class ParsedEnvelope:
    """Every field decoded and length-checked, nothing verified (the sender's
    device signature neither): for showing an envelope's anatomy."""

    version: int
    conversation_id: str
    message_id: bytes
    sender: PublicIdentity
    counter: int
    timestamp_ms: int
    recipients: Mapping[str, KeyWrap]
    nonce: bytes
    commitment: bytes
    ciphertext: bytes
    signature: bytes
    header: bytes  # the canonical bytes that are signed and used as associated data


def bucket_size(length: int) -> int:
    """Padded body size for a ``length``-byte plaintext (see the module docstring)."""
    return padding.bucket_size(length, MIN_BUCKET)


def is_bucket(size: int) -> bool:
    return padding.is_bucket(size, MIN_BUCKET)


def _canonical(obj: dict[str, Any]) -> bytes:
    try:
        return canonical_json(obj)
    except (UnicodeEncodeError, ValueError, TypeError):  # e.g. a lone surrogate from \ud800
        raise MalformedEnvelope("envelope text is not valid Unicode") from None


def header_bytes(obj: dict[str, Any]) -> bytes:
    """The canonical header: the object without ``ciphertext`` and ``signature``; it is
    what the signature covers and the body's associated data."""
    return _canonical({k: v for k, v in obj.items() if k not in ("ciphertext", "signature")})


def is_safe_int(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def valid_conversation_id(value: object) -> bool:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_CONVERSATION_ID:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _field(value: object, length: int | None, what: str) -> bytes:
    return b64decode(value, length=length, what=what, error=MalformedEnvelope)


def _parse_sender(obj: object) -> PublicIdentity:
    """Decode the sender block; the claimed peer id must be the key's.  The device
    signature is not checked here: open_envelope compares the block with the pin."""
    if not isinstance(obj, dict):
        raise MalformedEnvelope("sender must be a JSON object")
    require_fields(obj, identity_fields(obj), what="sender", error=MalformedEnvelope)
    sender = PublicIdentity(
        identity_key=_field(obj["identity_key"], 32, "sender identity_key"),
        device_key=_field(obj["device_key"], 32, "sender device_key"),
        device_signature=_field(obj["device_signature"], 64, "sender device_signature"),
        device_epoch=parse_epoch(obj, error=MalformedEnvelope),
    )
    if obj["peer_id"] != peer_id_for(sender.identity_key):
        raise MalformedEnvelope("sender peer_id does not match the sender's identity key")
    return sender


def _parse_wraps(obj: dict[str, Any]) -> dict[str, KeyWrap]:
    if not 1 <= len(obj) <= MAX_RECIPIENTS:
        raise MalformedEnvelope(f"an envelope names 1 to {MAX_RECIPIENTS} recipients")
    wraps: dict[str, KeyWrap] = {}
    for peer_id, wrap in obj.items():
        if not _PEER_ID.match(peer_id):
            raise MalformedEnvelope("recipient keys must be peer ids (16 base32 characters)")
        if not isinstance(wrap, dict):
            raise MalformedEnvelope(f"recipient {peer_id} entry must be a JSON object")
        require_fields(wrap, _WRAP_FIELDS, what="recipient entry", error=MalformedEnvelope)
        wraps[peer_id] = KeyWrap(
            device_key=_field(wrap["device_key"], 32, "recipient device_key"),
            ephemeral_key=_field(wrap["ephemeral_key"], 32, "ephemeral_key"),
            encrypted_key=_field(wrap["encrypted_key"], 48, "encrypted_key"),
            nonce=_field(wrap["nonce"], 24, "recipient nonce"),
        )
    return wraps


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise UsageError(f"an envelope is bytes, not {type(data).__name__}")


def parse_envelope(data: bytes, *, max_size: int = MAX_ENVELOPE_BYTES) -> ParsedEnvelope:
    """Strictly parse and decode; raise OversizedInput or MalformedEnvelope.

    Verifies nothing (no signature, no pin, no decryption): use :func:`open_envelope`
    to trust anything in it.
    """
    raw = _as_bytes(data)
    obj = strict_loads(raw, max_size=max_size, what="envelope", error=MalformedEnvelope)
    require_fields(obj, _FIELDS, what="envelope", error=MalformedEnvelope)
    if obj["v"] != VERSION:
        raise MalformedEnvelope(f"envelope version {obj['v']} is not supported (expected 1)")
    if not valid_conversation_id(obj["conversation_id"]):
        raise MalformedEnvelope(f"conversation_id must be 1 to {MAX_CONVERSATION_ID} characters")
    if not is_safe_int(obj["counter"], 1, MAX_SAFE_INT):
        raise MalformedEnvelope("counter must be from 1 to 2**53-1")
    if not is_safe_int(obj["timestamp"], 0, MAX_SAFE_INT):
        raise MalformedEnvelope("timestamp must be from 0 to 2**53-1 milliseconds")
    sender = _parse_sender(obj["sender"])
    wraps = _parse_wraps(obj["recipients"])
    ciphertext = _field(obj["ciphertext"], None, "ciphertext")
    if not is_bucket(len(ciphertext) - AEAD_TAG_BYTES):
        raise MalformedEnvelope("ciphertext length is not a padded size bucket plus a tag")
    parsed = ParsedEnvelope(
        version=obj["v"],
        conversation_id=obj["conversation_id"],
        message_id=_field(obj["message_id"], MESSAGE_ID_BYTES, "message_id"),
        sender=sender,
        counter=obj["counter"],
        timestamp_ms=obj["timestamp"],
        recipients=MappingProxyType(wraps),
        nonce=_field(obj["nonce"], 24, "nonce"),
        commitment=_field(obj["commitment"], 32, "commitment"),
        ciphertext=ciphertext,
        signature=_field(obj["signature"], 64, "signature"),
        header=header_bytes(obj),
    )
    if _canonical(obj) != raw:
        raise MalformedEnvelope("envelope is not canonical JSON (sorted keys, no spaces)")
    return parsed


def envelope_message_id(data: bytes, *, max_size: int = MAX_ENVELOPE_BYTES) -> bytes:
    """The message id of a strictly parsed (unverified) envelope, e.g. to ACK or log it."""
    return parse_envelope(data, max_size=max_size).message_id


__all__ = [
    "MAX_CONVERSATION_ID",
    "MAX_ENVELOPE_BYTES",
    "MAX_RECIPIENTS",
    "MAX_SAFE_INT",
    "VERSION",
    "KeyWrap",
    "ParsedEnvelope",
    "bucket_size",
    "envelope_message_id",
    "header_bytes",
    "is_bucket",
    "is_safe_int",
    "parse_envelope",
    "valid_conversation_id",
]
