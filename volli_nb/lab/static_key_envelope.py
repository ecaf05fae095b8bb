"""The retired v1 envelope, sealed to static device keys: no forward secrecy, kept to show why.

Until sessions carried every message this was the live envelope: the seed's
``EncryptedMessage``, made sound (:func:`seal` and :func:`open_envelope`).  Every wrap is
to a recipient's long-term device key, so whoever later steals that key opens every
envelope ever recorded.  Notebook 01 and the forward-secrecy tests seal with it to show
exactly that, beside :mod:`volli_nb.core.crypto.envelope` which replaced it.

The wire shape, its size buckets and the strict parser are in
:mod:`volli_nb.lab.static_key_envelope_format`; this module builds and checks the cryptography.

Construction (DESIGN.md section 3):

- A random 32-byte content key K encrypts ``pad(plaintext, bucket)`` with
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

Receiving (:func:`open_envelope`), cheapest and least trusting first: size cap
(``OversizedInput``, before parsing) -> strict parse (``MalformedEnvelope``; the
input must be exactly the canonical bytes :func:`seal` produces) -> pinned sender
(``UnknownPeer``, ``KeyMismatch``) -> signature (``BadSignature``) -> recipient set
(``NotARecipient``, also if the key was wrapped to a device key we no longer have) ->
freshness (``StaleMessage``) -> replay (``ReplayError``) -> unwrap
(``DecryptionFailed``; a low-order ephemeral key gives ``LowOrderKey``) -> commitment
(``KeyCommitmentMismatch``) -> decrypt (``DecryptionFailed``) -> unpad
(``MalformedEnvelope``, also for padding that is not minimal).  Only
:class:`~volli_nb.base.errors.VolliError` subclasses come out.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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
from volli_nb.core.crypto.envelope import DEFAULT_MAX_AGE_MS, DEFAULT_MAX_SKEW_MS
from volli_nb.core.crypto.identity import Identity, PublicIdentity, verify
from volli_nb.core.crypto.primitives import (
    AEAD_NONCE_BYTES,
    AEAD_TAG_BYTES,
    KEY_BYTES,
    Random,
    aead_decrypt,
    aead_encrypt,
    pad,
    random_bytes,
    unpad,
    x25519,
    x25519_public,
)
from volli_nb.core.encoding import b64encode, canonical_json
from volli_nb.core.message_id import check_message_id, new_message_id
from volli_nb.lab.static_key_envelope_format import (
    MAX_CONVERSATION_ID,
    MAX_ENVELOPE_BYTES,
    MAX_RECIPIENTS,
    MAX_SAFE_INT,
    VERSION,
    KeyWrap,
    ParsedEnvelope,
    bucket_size,
    envelope_message_id,
    header_bytes,
    is_bucket,
    is_safe_int,
    parse_envelope,
    valid_conversation_id,
)

SIGN_DOMAIN = b"volli-envelope-v1"
WRAP_PERSON = b"volli-wrap-v1"
COMMIT_PERSON = b"volli-commit-v1"
CIPHERTEXT_PERSON = b"volli-ct-v1"
SIGNED_PERSON = b"volli-sig-v1"


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


def _blake(data: bytes, *, person: bytes, key: bytes = b"") -> bytes:
    return hashlib.blake2b(data, digest_size=32, person=person, key=key).digest()


def _wrap_key(shared: bytes, ephemeral: bytes, device_key: bytes) -> bytes:
    return _blake(shared + ephemeral + device_key, person=WRAP_PERSON)


def _commitment(message_id: bytes, key: bytes) -> bytes:
    return _blake(message_id, person=COMMIT_PERSON, key=key)


def _to_sign(header: bytes, ciphertext: bytes) -> bytes:
    return _blake(header + _blake(ciphertext, person=CIPHERTEXT_PERSON), person=SIGNED_PERSON)


def _wrap_for(
    peer: PublicIdentity, key: bytes, message_id: bytes, random: Random
) -> dict[str, str]:
    eph_secret = random(KEY_BYTES)
    eph_public = x25519_public(eph_secret)
    shared = x25519(eph_secret, peer.device_key)
    nonce = random(AEAD_NONCE_BYTES)
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
    if not valid_conversation_id(conversation_id):
        raise UsageError(f"conversation_id must be 1 to {MAX_CONVERSATION_ID} characters")
    if not is_safe_int(counter, 1, MAX_SAFE_INT):
        raise UsageError("counter must be an int from 1 to 2**53-1 (counters start at 1)")
    if not is_safe_int(timestamp_ms, 0, MAX_SAFE_INT):
        raise UsageError("timestamp_ms must be an int of milliseconds since the epoch")
    if not isinstance(plaintext, bytes | bytearray | memoryview):
        raise UsageError("plaintext must be bytes; encode text first")
    body_b64 = -(-(bucket_size(len(plaintext)) + AEAD_TAG_BYTES) * 4 // 3)
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
    random: Random = random_bytes,
) -> bytes:
    """Encrypt ``plaintext`` for ``recipients`` and sign it; returns canonical JSON bytes.

    ``counter`` is per (sender, conversation) and assigned by the caller.  All
    randomness (message id, content key, ephemeral keys, nonces) comes from ``random``.
    """
    _check_seal_args(recipients, conversation_id, plaintext, counter, timestamp_ms)
    message_id = (
        new_message_id(sender.peer_id, random)
        if message_id is None
        else check_message_id(message_id)
    )
    key = random(KEY_BYTES)
    wraps = {peer.peer_id: _wrap_for(peer, key, message_id, random) for peer in recipients}
    nonce = random(AEAD_NONCE_BYTES)
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
    header = header_bytes(obj)
    padded = pad(bytes(plaintext), bucket_size(len(plaintext)))
    ciphertext = aead_encrypt(key, nonce, padded, header)
    obj["ciphertext"] = b64encode(ciphertext)
    obj["signature"] = b64encode(sender.sign(SIGN_DOMAIN, _to_sign(header, ciphertext)))
    data = canonical_json(obj)
    if len(data) > MAX_ENVELOPE_BYTES:
        raise _too_big(len(plaintext))
    return data


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
            f"(limit {max_age_ms / 1000:.0f} s): a replay, or the sender's clock is behind "
            "(each attempt is sealed afresh, so a retry does not help a wrong clock)"
        )
    if timestamp_ms > now_ms + max_skew_ms:
        raise StaleMessage(
            f"envelope is {(timestamp_ms - now_ms) / 1000:.0f} s in the future "
            f"(limit {max_skew_ms / 1000:.0f} s): the sender's clock is ahead, or this "
            "machine's is behind"
        )


def _unpad(padded: bytes) -> bytes:
    plaintext = unpad(padded, error=MalformedEnvelope)
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
    channel: tuple[str, bytes] | None = None,
    max_age_ms: int = DEFAULT_MAX_AGE_MS,
    max_skew_ms: int = DEFAULT_MAX_SKEW_MS,
    max_size: int = MAX_ENVELOPE_BYTES,
) -> OpenedMessage:
    """Verify and decrypt in DESIGN.md's order (see the module docstring).

    ``contacts(peer_id)`` returns the pinned (already verified) identity or None;
    ``seen(message_id)`` says whether that id was already accepted (persist it to
    survive restarts).  ``channel`` is the (peer id, message id) the frame carrying the
    envelope came with: checked first, so a copy relayed by someone else is refused as
    :class:`UnknownPeer` before the replay check could make it worth an ACK.
    Pure: stores nothing, raises only VolliError subclasses.
    """
    env = parse_envelope(data, max_size=max_size)
    if channel is not None and (env.sender.peer_id, env.message_id) != channel:
        raise UnknownPeer(
            f"envelope {env.message_id.hex()[:8]} from {env.sender.peer_id} came on "
            f"{channel[0]}'s channel as {channel[1].hex()[:8]}: a relayed copy, refused"
        )
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


__all__ = [  # the format's names too: callers seal, open and parse through this module
    "DEFAULT_MAX_AGE_MS",
    "DEFAULT_MAX_SKEW_MS",
    "MAX_CONVERSATION_ID",
    "MAX_ENVELOPE_BYTES",
    "MAX_RECIPIENTS",
    "SIGN_DOMAIN",
    "VERSION",
    "KeyWrap",
    "OpenedMessage",
    "ParsedEnvelope",
    "bucket_size",
    "envelope_message_id",
    "header_bytes",
    "is_bucket",
    "open_envelope",
    "parse_envelope",
    "seal",
]
