"""Envelopes: the seed's ``EncryptedMessage``, made sound.

Wire shape: canonical JSON (sorted keys, no spaces, UTF-8), binary fields as
unpadded base64url::

    {"v": 1, "conversation_id": str (1-256 chars), "message_id": b64(16),
     "sender": {"peer_id", "identity_key": b64(32), "device_key": b64(32),
                "device_signature": b64(64)},
     "counter": int 1..2**53-1, "timestamp": int ms 0..2**53-1,
     "recipients": {peer_id: {"device_key": b64(32), "ephemeral_key": b64(32),
                              "encrypted_key": b64(48), "nonce": b64(24)}},  # 1..1024 entries
     "nonce": b64(24), "commitment": b64(32), "ciphertext": b64, "signature": b64(64)}

Construction (DESIGN.md section 3):

- A random 32-byte content key K encrypts ``sodium_pad(plaintext, bucket)`` with
  XChaCha20-Poly1305; the associated data is the canonical header (the object
  without ``ciphertext`` and ``signature``).
- K is wrapped for each recipient's X25519 device key with a fresh ephemeral key:
  ``wrap_key = blake2b(x25519(eph, device) || eph_pub || device, person="volli-wrap-v1")``,
  ``encrypted_key = XChaCha20-Poly1305(wrap_key, nonce_i, K, ad=message_id || peer_id)``.
  Never ``Box(sender, recipient)``, with which either side could forge the other.
- ``commitment = blake2b(message_id, key=K, person="volli-commit-v1")`` is signed, so
  one ciphertext cannot open to two different bodies for two recipients.
- ``signature = Identity.sign("volli-envelope-v1", blake2b(header || blake2b(ciphertext,
  person="volli-ct-v1"), person="volli-sig-v1"))`` covers every header field, hence
  each recipient's id and the exact device key wrapped to, and the ciphertext hash.

Size buckets (padding hides the exact length): the padded body is the next power of
two holding ``len(plaintext) + 1`` bytes, at least 256, up to 1 MiB; above that the
next multiple of 1 MiB (so a 10 MB message costs at most 1 MiB of padding, not 6).
The receiver refuses ciphertexts whose length is not a bucket and bodies whose
padding is not minimal, so every message has exactly one encoding.
``MAX_ENVELOPE_BYTES`` is 24 MiB: messages.py allows 12 MiB of text, whose 13 MiB
bucket is about 18 MiB after base64, and frames.py sizes reassembly for it.

Receiving (:func:`open_envelope`), cheapest and least trusting first: size cap
(``OversizedInput``, before parsing) -> strict parse (``MalformedEnvelope``; the
input must be exactly the canonical bytes :func:`seal` produces) -> pinned sender
(``UnknownPeer``, ``KeyMismatch``) -> signature (``BadSignature``) -> recipient set
(``NotARecipient``, also if the key was wrapped to a device key we no longer have) ->
freshness (``StaleMessage``) -> replay (``ReplayError``) -> unwrap
(``DecryptionFailed``; a low-order ephemeral key gives ``LowOrderKey``) -> commitment
(``KeyCommitmentMismatch``) -> decrypt (``DecryptionFailed``) -> unpad
(``MalformedEnvelope``).  Only :class:`~volli_nb.base.errors.VolliError` subclasses come out.

Freshness: the outbox seals a fresh envelope (new timestamp) on every send attempt,
so a receiver can refuse timestamps older than ``max_age_ms`` (10 minutes) or more
than ``max_skew_ms`` (2 minutes) ahead of its clock.  A replay older than
``max_age_ms`` therefore fails the freshness check before the seen-set is asked, so
the seen-set only has to remember ids for ``max_age_ms + max_skew_ms`` after
acceptance (keeping them longer is harmless).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import nacl.bindings
import nacl.exceptions
import nacl.utils

from volli_nb.base.errors import (
    KeyCommitmentMismatch,
    KeyMismatch,
    MalformedEnvelope,
    NotARecipient,
    ReplayError,
    StaleMessage,
    UnknownPeer,
    UsageError,
)
from volli_nb.core.crypto.identity import Identity, PublicIdentity, peer_id_for, verify, x25519
from volli_nb.core.crypto.primitives import aead_decrypt, aead_encrypt, x25519_public
from volli_nb.core.encoding import (
    b64decode,
    b64encode,
    canonical_json,
    require_fields,
    strict_loads,
)

Random = Callable[[int], bytes]

VERSION = 1
MAX_ENVELOPE_BYTES = 24 * 1024 * 1024
MAX_RECIPIENTS = 1024
MAX_CONVERSATION_ID = 256
MAX_SAFE_INT = 2**53 - 1  # counters and timestamps stay exact in JavaScript and SQLite
DEFAULT_MAX_AGE_MS = 10 * 60 * 1000
DEFAULT_MAX_SKEW_MS = 2 * 60 * 1000
SIGN_DOMAIN = b"volli-envelope-v1"
WRAP_PERSON = b"volli-wrap-v1"
COMMIT_PERSON = b"volli-commit-v1"
CIPHERTEXT_PERSON = b"volli-ct-v1"
SIGNED_PERSON = b"volli-sig-v1"
MESSAGE_ID_BYTES = 16
TAG_BYTES = 16
MIN_BUCKET = 256
BIG_BUCKET = 1024 * 1024

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
_SENDER_FIELDS: dict[str, type | tuple[type, ...]] = {
    "peer_id": str,
    "identity_key": str,
    "device_key": str,
    "device_signature": str,
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


@dataclass(frozen=True)
class OpenedMessage:
    """A verified, decrypted message; ``sender`` is the pinned identity."""

    message_id: bytes
    conversation_id: str
    sender: PublicIdentity
    counter: int
    timestamp_ms: int
    recipients: tuple[str, ...]  # sorted peer ids
    plaintext: bytes


def bucket_size(length: int) -> int:
    """Padded body size for a ``length``-byte plaintext (see the module docstring)."""
    if length + 1 > BIG_BUCKET:
        return -(-(length + 1) // BIG_BUCKET) * BIG_BUCKET
    size = MIN_BUCKET
    while size < length + 1:
        size *= 2
    return size


def is_bucket(size: int) -> bool:
    if size > BIG_BUCKET:
        return size % BIG_BUCKET == 0
    return size >= MIN_BUCKET and size & (size - 1) == 0


def _blake(data: bytes, *, person: bytes, key: bytes = b"") -> bytes:
    return hashlib.blake2b(data, digest_size=32, person=person, key=key).digest()


def _wrap_key(shared: bytes, ephemeral: bytes, device_key: bytes) -> bytes:
    return _blake(shared + ephemeral + device_key, person=WRAP_PERSON)


def _commitment(message_id: bytes, key: bytes) -> bytes:
    return _blake(message_id, person=COMMIT_PERSON, key=key)


def _canonical(obj: dict[str, Any]) -> bytes:
    try:
        return canonical_json(obj)
    except (UnicodeEncodeError, ValueError, TypeError):  # e.g. a lone surrogate from \ud800
        raise MalformedEnvelope("envelope text is not valid Unicode") from None


def _header(obj: dict[str, Any]) -> bytes:
    return _canonical({k: v for k, v in obj.items() if k not in ("ciphertext", "signature")})


def _to_sign(header: bytes, ciphertext: bytes) -> bytes:
    return _blake(header + _blake(ciphertext, person=CIPHERTEXT_PERSON), person=SIGNED_PERSON)


def _is_int(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _valid_conversation_id(value: object) -> bool:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_CONVERSATION_ID:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _wrap_for(
    peer: PublicIdentity, key: bytes, message_id: bytes, random: Random
) -> dict[str, str]:
    eph_secret = random(32)
    eph_public = x25519_public(eph_secret)
    shared = x25519(eph_secret, peer.device_key)
    nonce = random(24)
    wrap_key = _wrap_key(shared, eph_public, peer.device_key)
    encrypted = aead_encrypt(wrap_key, nonce, key, message_id + peer.peer_id.encode())
    return {
        "device_key": b64encode(peer.device_key),
        "ephemeral_key": b64encode(eph_public),
        "encrypted_key": b64encode(encrypted),
        "nonce": b64encode(nonce),
    }


def _check_seal_args(
    recipients: Sequence[PublicIdentity],
    conversation_id: str,
    plaintext: bytes,
    counter: int,
    timestamp_ms: int,
) -> None:
    if not recipients:
        raise UsageError("an envelope needs at least one recipient")
    if len(recipients) > MAX_RECIPIENTS:
        raise UsageError(f"at most {MAX_RECIPIENTS} recipients per envelope")
    for peer in recipients:
        if not isinstance(peer, PublicIdentity) or len(peer.device_key) != 32:
            raise UsageError("recipients must be PublicIdentity values with 32-byte keys")
    ids = [r.peer_id for r in recipients]
    if len(set(ids)) != len(ids):
        raise UsageError("each recipient may appear only once")
    if not _valid_conversation_id(conversation_id):
        raise UsageError(f"conversation_id must be 1 to {MAX_CONVERSATION_ID} characters")
    if not _is_int(counter, 1, MAX_SAFE_INT):
        raise UsageError("counter must be an int from 1 to 2**53-1 (counters start at 1)")
    if not _is_int(timestamp_ms, 0, MAX_SAFE_INT):
        raise UsageError("timestamp_ms must be an int of milliseconds since the epoch")
    if not isinstance(plaintext, bytes | bytearray | memoryview):
        raise UsageError("plaintext must be bytes; encode text first")
    body_b64 = -(-(bucket_size(len(plaintext)) + TAG_BYTES) * 4 // 3)
    if body_b64 + 300 * len(recipients) + 1024 > MAX_ENVELOPE_BYTES:
        raise _too_big(len(plaintext))


def _too_big(length: int) -> UsageError:
    return UsageError(
        f"a {length}-byte message would exceed the {MAX_ENVELOPE_BYTES}-byte envelope cap "
        "that receivers enforce; send less"
    )


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
    """Encrypt ``plaintext`` for ``recipients`` and sign it; returns canonical JSON bytes.

    ``counter`` is per (sender, conversation) and assigned by the caller.  All
    randomness (message id, content key, ephemeral keys, nonces) comes from ``random``.
    """
    _check_seal_args(recipients, conversation_id, plaintext, counter, timestamp_ms)
    message_id = random(MESSAGE_ID_BYTES) if message_id is None else message_id
    if not isinstance(message_id, bytes) or len(message_id) != MESSAGE_ID_BYTES:
        raise UsageError(f"a message id is {MESSAGE_ID_BYTES} bytes")
    key = random(32)
    wraps = {peer.peer_id: _wrap_for(peer, key, message_id, random) for peer in recipients}
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
    padded = nacl.bindings.sodium_pad(bytes(plaintext), bucket_size(len(plaintext)))
    ciphertext = aead_encrypt(key, nonce, padded, header)
    obj["ciphertext"] = b64encode(ciphertext)
    obj["signature"] = b64encode(sender.sign(SIGN_DOMAIN, _to_sign(header, ciphertext)))
    data = canonical_json(obj)
    if len(data) > MAX_ENVELOPE_BYTES:
        raise _too_big(len(plaintext))
    return data


def _field(value: object, length: int | None, what: str) -> bytes:
    return b64decode(value, length=length, what=what, error=MalformedEnvelope)


def _parse_sender(obj: object) -> PublicIdentity:
    """Decode the sender block; the claimed peer id must be the key's.  The device
    signature is not checked here: open_envelope compares the block with the pin."""
    if not isinstance(obj, dict):
        raise MalformedEnvelope("sender must be a JSON object")
    require_fields(obj, _SENDER_FIELDS, what="sender", error=MalformedEnvelope)
    sender = PublicIdentity(
        identity_key=_field(obj["identity_key"], 32, "sender identity_key"),
        device_key=_field(obj["device_key"], 32, "sender device_key"),
        device_signature=_field(obj["device_signature"], 64, "sender device_signature"),
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
    if not _valid_conversation_id(obj["conversation_id"]):
        raise MalformedEnvelope(f"conversation_id must be 1 to {MAX_CONVERSATION_ID} characters")
    if not _is_int(obj["counter"], 1, MAX_SAFE_INT):
        raise MalformedEnvelope("counter must be from 1 to 2**53-1")
    if not _is_int(obj["timestamp"], 0, MAX_SAFE_INT):
        raise MalformedEnvelope("timestamp must be from 0 to 2**53-1 milliseconds")
    sender = _parse_sender(obj["sender"])
    wraps = _parse_wraps(obj["recipients"])
    ciphertext = _field(obj["ciphertext"], None, "ciphertext")
    if not is_bucket(len(ciphertext) - TAG_BYTES):
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
        header=_header(obj),
    )
    if _canonical(obj) != raw:
        raise MalformedEnvelope("envelope is not canonical JSON (sorted keys, no spaces)")
    return parsed


def envelope_message_id(data: bytes, *, max_size: int = MAX_ENVELOPE_BYTES) -> bytes:
    """The message id of a strictly parsed (unverified) envelope, e.g. to ACK or log it."""
    return parse_envelope(data, max_size=max_size).message_id


def _check_sender(env: ParsedEnvelope, contacts: Callable[[str], PublicIdentity | None]) -> None:
    sender_id = env.sender.peer_id
    pinned = contacts(sender_id)
    if pinned is None:
        raise UnknownPeer(f"envelope from {sender_id}, who is not a contact; pair first")
    if pinned != env.sender:
        raise KeyMismatch(
            f"envelope from {sender_id} carries keys other than the pinned ones; "
            "compare safety numbers and re-pair before trusting new keys"
        )
    verify(pinned.identity_key, SIGN_DOMAIN, _to_sign(env.header, env.ciphertext), env.signature)


def _check_fresh(timestamp_ms: int, now_ms: int, max_age_ms: int, max_skew_ms: int) -> None:
    if timestamp_ms < now_ms - max_age_ms:
        raise StaleMessage(
            f"envelope is {(now_ms - timestamp_ms) / 1000:.0f} s old "
            f"(limit {max_age_ms / 1000:.0f} s); the sender re-seals on retry"
        )
    if timestamp_ms > now_ms + max_skew_ms:
        raise StaleMessage(
            f"envelope is {(timestamp_ms - now_ms) / 1000:.0f} s in the future; "
            "check the sender's or this machine's clock"
        )


def _unpad(padded: bytes) -> bytes:
    try:
        plaintext = nacl.bindings.sodium_unpad(padded, len(padded))
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise MalformedEnvelope("the decrypted body's padding is invalid") from None
    if bucket_size(len(plaintext)) != len(padded):
        raise MalformedEnvelope("the decrypted body is not padded to its size bucket")
    return plaintext


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
    """Verify and decrypt in DESIGN.md's order (see the module docstring).

    ``contacts(peer_id)`` returns the pinned (already verified) identity or None;
    ``seen(message_id)`` says whether that id was already accepted (persist it to
    survive restarts).  Pure: stores nothing, raises only VolliError subclasses.
    """
    env = parse_envelope(data, max_size=max_size)
    _check_sender(env, contacts)
    wrap = env.recipients.get(me.peer_id)
    if wrap is None:
        raise NotARecipient(f"this envelope is not addressed to {me.peer_id}")
    if wrap.device_key != me.public.device_key:
        raise NotARecipient("the key was wrapped to a device key this identity no longer has")
    _check_fresh(env.timestamp_ms, now_ms, max_age_ms, max_skew_ms)
    if seen(env.message_id):
        raise ReplayError(f"message {env.message_id.hex()} was already accepted")
    shared = me.shared_secret(wrap.ephemeral_key)
    key = aead_decrypt(
        _wrap_key(shared, wrap.ephemeral_key, wrap.device_key),
        wrap.nonce,
        wrap.encrypted_key,
        env.message_id + me.peer_id.encode(),
    )
    if not hmac.compare_digest(_commitment(env.message_id, key), env.commitment):
        raise KeyCommitmentMismatch(
            "the content key wrapped for us is not the one the sender committed to"
        )
    plaintext = _unpad(aead_decrypt(key, env.nonce, env.ciphertext, env.header))
    return OpenedMessage(
        message_id=env.message_id,
        conversation_id=env.conversation_id,
        sender=env.sender,
        counter=env.counter,
        timestamp_ms=env.timestamp_ms,
        recipients=tuple(sorted(env.recipients)),
        plaintext=plaintext,
    )
