"""A ratchet state at rest: a compact, versioned layout, and sealing it under a storage key.

The integration stores :func:`seal_state`'s bytes (or :func:`encode_state`'s, inside a
field sealed by :class:`~volli_nb.core.store.sealed_db.SealedDatabase`) in the same
transaction as the message the state produced or consumed.

Layout, version 1 (integers are minimal varints, see :mod:`volli_nb.core.crypto.wire`)::

    u8 version=1 | ad 32 | root key 32 | DHs secret 32 | DHs public 32
    | u8 flags (bit 0 DHr, bit 1 CKs, bit 2 CKr present; no other bit)
    | [DHr 32] [CKs 32] [CKr 32] | ns | nr | pn
    | count (0..HISTORY) + previous DHr 32 each
    | count (0..MAX_STORED_SKIPPED) + (dh 32, n, mk 32, stored_ms) each, oldest first

An initiator's first state is 199 bytes, a responder's 231; each skipped key adds
about 72.  Decoding is strict: the public key must be the secret's,
no skipped key may appear twice, nothing may follow.  Sealed: ``u8 version=1 | nonce
24 | XChaCha20-Poly1305(key, nonce, layout, ad="volli-ratchet-state-v1" | context)``;
``context`` names where the bytes live (table, row, schema version), so a state
copied to another row does not open.  Every refusal is :class:`SessionStateCorrupt`.
"""

from __future__ import annotations

import hmac
from types import MappingProxyType

from volli_nb.base.errors import DecryptionFailed, SessionStateCorrupt, UsageError
from volli_nb.core.crypto.primitives import (
    KEY_BYTES,
    Random,
    aead_decrypt,
    aead_encrypt,
    random_bytes,
    x25519_public,
)
from volli_nb.core.crypto.ratchet import HISTORY, MAX_CHAIN, RatchetState
from volli_nb.core.crypto.wire import Reader, as_bytes, uvarint

STATE_VERSION = 1
SEAL_VERSION = 1
SEAL_AD = b"volli-ratchet-state-v1"
MAX_STORED_SKIPPED = 1 << 16  # a hard cap independent of the Limits in force
_K = KEY_BYTES


def encode_state(state: RatchetState) -> bytes:
    """The state's one encoding (see the module docstring)."""
    optional = (state.dhr, state.cks, state.ckr)
    flags = sum(1 << i for i, value in enumerate(optional) if value is not None)
    parts = [
        bytes((STATE_VERSION,)),
        state.ad,
        state.root_key,
        state.dhs_secret,
        state.dhs_public,
        bytes((flags,)),
        *(value for value in optional if value is not None),
        uvarint(state.ns),
        uvarint(state.nr),
        uvarint(state.pn),
        uvarint(len(state.previous_dhr)),
        *state.previous_dhr,
        uvarint(len(state.skipped)),
    ]
    for (dh, n), (mk, stored_ms) in state.skipped.items():
        parts += [dh, uvarint(n), mk, uvarint(stored_ms)]
    return b"".join(parts)


def _read_skipped(reader: Reader) -> MappingProxyType[tuple[bytes, int], tuple[bytes, int]]:
    skipped: dict[tuple[bytes, int], tuple[bytes, int]] = {}
    for _ in range(reader.uvarint("skipped key count", 0, MAX_STORED_SKIPPED)):
        dh = reader.take(_K, "skipped key's ratchet key")
        n = reader.uvarint("skipped key's number", 0, MAX_CHAIN)
        entry = (reader.take(_K, "skipped message key"), reader.uvarint("skipped key's time"))
        if (dh, n) in skipped:
            raise reader.fail("a skipped message key appears twice")
        skipped[(dh, n)] = entry
    return MappingProxyType(skipped)


def decode_state(data: bytes) -> RatchetState:
    """Strictly decode :func:`encode_state`'s bytes; anything else is SessionStateCorrupt."""
    reader = Reader(as_bytes(data, "a ratchet state"), SessionStateCorrupt, "ratchet state")
    version = reader.byte("version")
    if version != STATE_VERSION:
        raise reader.fail(f"version {version} is not supported (expected {STATE_VERSION})")
    ad, root_key, secret, public = (reader.take(_K, name) for name in ("ad", "RK", "DHs", "DHs'"))
    if not hmac.compare_digest(x25519_public(secret), public):
        raise reader.fail("the stored public ratchet key is not the secret key's")
    flags = reader.byte("flags")
    if flags & ~0b111:
        raise reader.fail(f"unknown flag bits {flags:#04x}")
    dhr, cks, ckr = (
        reader.take(_K, name) if flags & (1 << i) else None
        for i, name in enumerate(("DHr", "CKs", "CKr"))
    )
    ns, nr, pn = (reader.uvarint(name, 0, MAX_CHAIN) for name in ("Ns", "Nr", "PN"))
    history = tuple(
        reader.take(_K, "previous DHr")
        for _ in range(reader.uvarint("previous DHr count", 0, HISTORY))
    )
    skipped = _read_skipped(reader)
    reader.end()
    return RatchetState(ad, root_key, secret, public, dhr, cks, ckr, ns, nr, pn, skipped, history)


def seal_state(
    state: RatchetState, key: bytes, context: bytes, *, random: Random = random_bytes
) -> bytes:
    """The state sealed under a 32-byte storage key, bound to ``context``."""
    if len(key) != _K:
        raise UsageError("a storage key is 32 bytes")
    nonce = random(24)
    sealed = aead_encrypt(key, nonce, encode_state(state), SEAL_AD + context)
    return bytes((SEAL_VERSION,)) + nonce + sealed


def open_state(data: bytes, key: bytes, context: bytes) -> RatchetState:
    """Inverse of :func:`seal_state`; a wrong key, context or edited byte is SessionStateCorrupt."""
    raw = as_bytes(data, "a sealed ratchet state")
    if len(raw) < 1 + 24 + 16 or raw[0] != SEAL_VERSION:
        raise SessionStateCorrupt("sealed ratchet state: too short or of an unknown version")
    if len(key) != _K:
        raise UsageError("a storage key is 32 bytes")
    try:
        plain = aead_decrypt(key, raw[1:25], raw[25:], SEAL_AD + context)
    except DecryptionFailed:
        raise SessionStateCorrupt(
            "sealed ratchet state does not open: wrong key, another row's state, or edited bytes"
        ) from None
    return decode_state(plain)


__all__ = ["decode_state", "encode_state", "open_state", "seal_state"]
