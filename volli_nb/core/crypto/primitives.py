"""Thin typed wrappers over libsodium: one code path for envelopes and known-answer tests.

Each wrapper turns libsodium's assorted exceptions into this package's typed errors:
bad lengths passed by the caller -> ``UsageError`` (or, when opening data, the
refusal the caller handles anyway), a tag or signature that fails -> ``DecryptionFailed``
or ``BadSignature``.
"""

from __future__ import annotations

import nacl.bindings
import nacl.exceptions
import nacl.signing

from volli_nb.base.errors import BadSignature, DecryptionFailed, UsageError
from volli_nb.core.crypto.identity import x25519

AEAD_KEY_BYTES = 32
AEAD_NONCE_BYTES = 24
AEAD_TAG_BYTES = 16


def aead_encrypt(key: bytes, nonce: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """XChaCha20-Poly1305 (IETF): the ciphertext followed by the 16-byte tag."""
    if len(key) != AEAD_KEY_BYTES or len(nonce) != AEAD_NONCE_BYTES:
        raise UsageError("XChaCha20-Poly1305 needs a 32-byte key and a 24-byte nonce")
    return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        bytes(plaintext), bytes(ad), bytes(nonce), bytes(key)
    )


def aead_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    """Inverse of :func:`aead_encrypt`; any refusal (tag, sizes) is ``DecryptionFailed``."""
    if len(key) != AEAD_KEY_BYTES or len(nonce) != AEAD_NONCE_BYTES:
        raise DecryptionFailed("XChaCha20-Poly1305 needs a 32-byte key and a 24-byte nonce")
    if len(ciphertext) < AEAD_TAG_BYTES:
        raise DecryptionFailed("ciphertext is shorter than its 16-byte tag")
    try:
        return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            bytes(ciphertext), bytes(ad), bytes(nonce), bytes(key)
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise DecryptionFailed(
            "authentication tag does not verify: data altered or wrong key"
        ) from None


def x25519_public(secret: bytes) -> bytes:
    """The X25519 public key of a 32-byte secret."""
    if len(secret) != 32:
        raise UsageError("an X25519 secret key is 32 bytes")
    return nacl.bindings.crypto_scalarmult_base(bytes(secret))


def ed25519_sign(seed: bytes, message: bytes) -> bytes:
    """Raw Ed25519 (RFC 8032, no domain separation): the 64-byte signature."""
    if len(seed) != 32:
        raise UsageError("an Ed25519 seed is 32 bytes")
    return nacl.signing.SigningKey(bytes(seed)).sign(bytes(message)).signature


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Raise ``BadSignature`` unless ``signature`` is valid (libsodium's strict rules)."""
    if len(public_key) != 32 or len(signature) != 64:
        raise BadSignature("Ed25519 keys are 32 bytes and signatures 64 bytes")
    try:
        nacl.signing.VerifyKey(bytes(public_key)).verify(bytes(message), bytes(signature))
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError, TypeError):
        raise BadSignature("Ed25519 signature does not verify") from None


__all__ = [
    "aead_decrypt",
    "aead_encrypt",
    "ed25519_sign",
    "ed25519_verify",
    "x25519",
    "x25519_public",
]
