"""Envelopes: the seed's ``EncryptedMessage``, made sound.

Wire shape (canonical JSON, binary as unpadded base64url)::

    {"v": 1, "conversation_id": str, "message_id": b64(16),
     "sender": {"peer_id", "identity_key", "device_key", "device_signature"},
     "counter": int >= 1, "timestamp": int (ms),
     "recipients": {peer_id: {"device_key", "ephemeral_key", "encrypted_key", "nonce"}},
     "nonce": b64(24), "commitment": b64(32), "ciphertext": b64, "signature": b64(64)}

A random content key K encrypts the padded body (XChaCha20-Poly1305, the
canonical header as associated data).  K is wrapped for each recipient's
X25519 device key with a fresh ephemeral key.  The header commits to K
(``blake2b(message_id, key=K)``) so one ciphertext cannot open differently
for two recipients, and the sender's identity key signs the header plus a
hash of the ciphertext.  :func:`open_envelope` checks in the order DESIGN.md
gives, cheapest and least trusting first.

Freshness: every send attempt seals a new envelope, so the receiver refuses
timestamps older than ``max_age_ms`` (10 minutes) or further than
``max_skew_ms`` (2 minutes) ahead.  The seen-set therefore needs to remember
ids only for ``max_age_ms``; older replays fail the freshness check first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import nacl.bindings
import nacl.utils

from .encoding import b64decode, b64encode, canonical_json, require_fields, strict_loads
from .errors import (
    DecryptionFailed,
    KeyCommitmentMismatch,
    KeyMismatch,
    MalformedEnvelope,
    NotARecipient,
    ReplayError,
    StaleMessage,
    UnknownPeer,
    UsageError,
)
from .identity import Identity, PublicIdentity, verify
from .primitives import aead_decrypt, aead_encrypt, x25519_public

Random = Callable[[int], bytes]

VERSION = 1
MAX_ENVELOPE_BYTES = 24 * 1024 * 1024
MAX_RECIPIENTS = 1024
DEFAULT_MAX_AGE_MS = 10 * 60 * 1000
DEFAULT_MAX_SKEW_MS = 2 * 60 * 1000
SIGN_DOMAIN = b"volli-envelope-v1"
WRAP_PERSON = b"volli-wrap-v1"
COMMIT_PERSON = b"volli-commit-v1"
MIN_BUCKET = 256

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
    device_key: bytes
    ephemeral_key: bytes
    encrypted_key: bytes
    nonce: bytes


@dataclass(frozen=True)
class ParsedEnvelope:
    """Every field decoded and length-checked, nothing verified."""

    version: int
    conversation_id: str
    message_id: bytes
    sender: PublicIdentity
    counter: int
    timestamp_ms: int
    recipients: dict[str, KeyWrap]
    nonce: bytes
    commitment: bytes
    ciphertext: bytes
    signature: bytes
    header: bytes  # the canonical bytes that are signed and used as associated data


@dataclass(frozen=True)
class OpenedMessage:
    message_id: bytes
    conversation_id: str
    sender: PublicIdentity
    counter: int
    timestamp_ms: int
    recipients: tuple[str, ...]
    plaintext: bytes


BIG_BUCKET = 1024 * 1024


def bucket_size(length: int) -> int:
    """Padded size: the next power of two above ``length`` (at least 256 bytes) up to
    1 MiB, then the next multiple of 1 MiB, so large bodies cost at most 1 MiB extra."""
    if length + 1 > BIG_BUCKET:
        return -(-(length + 1) // BIG_BUCKET) * BIG_BUCKET
    size = MIN_BUCKET
    while size < length + 1:
        size *= 2
    return size


def _blake(data: bytes, *, person: bytes, key: bytes = b"") -> bytes:
    return hashlib.blake2b(data, digest_size=32, person=person, key=key).digest()


def _wrap_key(shared: bytes, ephemeral: bytes, device_key: bytes) -> bytes:
    return _blake(shared + ephemeral + device_key, person=WRAP_PERSON)


def _commitment(message_id: bytes, key: bytes) -> bytes:
    return _blake(message_id, person=COMMIT_PERSON, key=key)


def _header(obj: dict[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in obj.items() if k not in ("ciphertext", "signature")})


def _to_sign(header: bytes, ciphertext: bytes) -> bytes:
    return _blake(header + _blake(ciphertext, person=b"volli-ct-v1"), person=b"volli-sig-v1")


def seal(
    sender: Identity,
    recipients: Sequence[PublicIdentity],
    *,
    conversation_id: str,
    plaintext: bytes,
    counter: int,
    timestamp_ms: int,
    message_id: bytes | None = None,
    random: Random = nacl.utils.random,
) -> bytes:
    """Encrypt ``plaintext`` for ``recipients`` and sign it; returns envelope bytes."""
    if not recipients:
        raise UsageError("an envelope needs at least one recipient")
    ids = [r.peer_id for r in recipients]
    if len(set(ids)) != len(ids):
        raise UsageError("each recipient may appear only once")
    if len(recipients) > MAX_RECIPIENTS:
        raise UsageError(f"at most {MAX_RECIPIENTS} recipients per envelope")
    if counter < 1:
        raise UsageError("counters start at 1")
    message_id = message_id if message_id is not None else random(16)
    if len(message_id) != 16:
        raise UsageError("a message id is 16 bytes")
    key = random(32)
    wraps: dict[str, Any] = {}
    for peer in recipients:
        eph_secret = random(32)
        eph_public = x25519_public(eph_secret)
        shared = nacl.bindings.crypto_scalarmult(eph_secret, peer.device_key)
        wrap_nonce = random(24)
        encrypted = aead_encrypt(
            _wrap_key(shared, eph_public, peer.device_key),
            wrap_nonce,
            key,
            message_id + peer.peer_id.encode(),
        )
        wraps[peer.peer_id] = {
            "device_key": b64encode(peer.device_key),
            "ephemeral_key": b64encode(eph_public),
            "encrypted_key": b64encode(encrypted),
            "nonce": b64encode(wrap_nonce),
        }
    nonce = random(24)
    obj: dict[str, Any] = {
        "v": VERSION,
        "conversation_id": conversation_id,
        "message_id": b64encode(message_id),
        "sender": sender.public.to_json(),
        "counter": counter,
        "timestamp": timestamp_ms,
        "recipients": wraps,
        "nonce": b64encode(nonce),
        "commitment": b64encode(_commitment(message_id, key)),
    }
    header = _header(obj)
    padded = nacl.bindings.sodium_pad(plaintext, bucket_size(len(plaintext)))
    ciphertext = aead_encrypt(key, nonce, padded, header)
    obj["ciphertext"] = b64encode(ciphertext)
    obj["signature"] = b64encode(sender.sign(SIGN_DOMAIN, _to_sign(header, ciphertext)))
    return canonical_json(obj)


def parse_envelope(data: bytes, *, max_size: int = MAX_ENVELOPE_BYTES) -> ParsedEnvelope:
    """Strictly parse; raise OversizedInput or MalformedEnvelope.  Verifies nothing."""
    obj = strict_loads(data, max_size=max_size, what="envelope", error=MalformedEnvelope)
    require_fields(obj, _FIELDS, what="envelope", error=MalformedEnvelope)
    if obj["v"] != VERSION:
        raise MalformedEnvelope(f"envelope version {obj['v']} is not supported (expected 1)")
    if obj["counter"] < 1 or obj["timestamp"] < 0:
        raise MalformedEnvelope("counter must be >= 1 and timestamp >= 0")
    if not 1 <= len(obj["recipients"]) <= MAX_RECIPIENTS:
        raise MalformedEnvelope(f"envelope must name 1 to {MAX_RECIPIENTS} recipients")

    def field(value: object, length: int | None, what: str) -> bytes:
        return b64decode(value, length=length, what=what, error=MalformedEnvelope)

    wraps: dict[str, KeyWrap] = {}
    for peer_id, wrap in obj["recipients"].items():
        if not isinstance(wrap, dict):
            raise MalformedEnvelope(f"recipient {peer_id!r} entry must be an object")
        require_fields(wrap, _WRAP_FIELDS, what="recipient entry", error=MalformedEnvelope)
        wraps[peer_id] = KeyWrap(
            device_key=field(wrap["device_key"], 32, "device_key"),
            ephemeral_key=field(wrap["ephemeral_key"], 32, "ephemeral_key"),
            encrypted_key=field(wrap["encrypted_key"], 48, "encrypted_key"),
            nonce=field(wrap["nonce"], 24, "nonce"),
        )
    ciphertext = field(obj["ciphertext"], None, "ciphertext")
    if len(ciphertext) < 16 + MIN_BUCKET:
        raise MalformedEnvelope("ciphertext is shorter than the smallest padded body")
    return ParsedEnvelope(
        version=obj["v"],
        conversation_id=obj["conversation_id"],
        message_id=field(obj["message_id"], 16, "message_id"),
        sender=PublicIdentity.from_json(obj["sender"], error=MalformedEnvelope),
        counter=obj["counter"],
        timestamp_ms=obj["timestamp"],
        recipients=wraps,
        nonce=field(obj["nonce"], 24, "nonce"),
        commitment=field(obj["commitment"], 32, "commitment"),
        ciphertext=ciphertext,
        signature=field(obj["signature"], 64, "signature"),
        header=_header(obj),
    )


def envelope_message_id(data: bytes) -> bytes:
    return parse_envelope(data).message_id


def open_envelope(
    data: bytes,
    me: Identity,
    *,
    contacts: Callable[[str], PublicIdentity | None],
    now_ms: int,
    seen: Callable[[bytes], bool] = lambda _mid: False,
    max_age_ms: int = DEFAULT_MAX_AGE_MS,
    max_skew_ms: int = DEFAULT_MAX_SKEW_MS,
    max_size: int = MAX_ENVELOPE_BYTES,
) -> OpenedMessage:
    """Verify and decrypt, in DESIGN.md's order; stores nothing, raises typed errors."""
    env = parse_envelope(data, max_size=max_size)
    sender_id = env.sender.peer_id
    pinned = contacts(sender_id)
    if pinned is None:
        raise UnknownPeer(f"envelope from {sender_id}, who is not a contact; pair first")
    if (pinned.identity_key, pinned.device_key) != (
        env.sender.identity_key,
        env.sender.device_key,
    ):
        raise KeyMismatch(
            f"envelope from {sender_id} carries keys other than the pinned ones; "
            "compare safety numbers before trusting new keys"
        )
    verify(pinned.identity_key, SIGN_DOMAIN, _to_sign(env.header, env.ciphertext), env.signature)
    wrap = env.recipients.get(me.peer_id)
    if wrap is None:
        raise NotARecipient(f"this envelope is not addressed to {me.peer_id}")
    if wrap.device_key != me.public.device_key:
        raise NotARecipient("the key was wrapped to a device key this identity no longer has")
    if env.timestamp_ms < now_ms - max_age_ms:
        raise StaleMessage(f"envelope is {(now_ms - env.timestamp_ms) / 1000:.0f} s old")
    if env.timestamp_ms > now_ms + max_skew_ms:
        raise StaleMessage(
            f"envelope is {(env.timestamp_ms - now_ms) / 1000:.0f} s in the future; "
            "check the sender's clock"
        )
    if seen(env.message_id):
        raise ReplayError(f"message {env.message_id.hex()} was already accepted")
    shared = me.shared_secret(wrap.ephemeral_key)
    key = aead_decrypt(
        _wrap_key(shared, wrap.ephemeral_key, wrap.device_key),
        wrap.nonce,
        wrap.encrypted_key,
        env.message_id + me.peer_id.encode(),
    )
    if _commitment(env.message_id, key) != env.commitment:
        raise KeyCommitmentMismatch(
            "the content key wrapped for us is not the one the sender committed to"
        )
    padded = aead_decrypt(key, env.nonce, env.ciphertext, env.header)
    try:
        plaintext = nacl.bindings.sodium_unpad(padded, len(padded))
    except Exception:
        raise DecryptionFailed("body padding is invalid") from None
    return OpenedMessage(
        message_id=env.message_id,
        conversation_id=env.conversation_id,
        sender=pinned,
        counter=env.counter,
        timestamp_ms=env.timestamp_ms,
        recipients=tuple(env.recipients),
        plaintext=plaintext,
    )
