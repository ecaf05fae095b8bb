"""Thin typed wrappers over libsodium primitives: one code path for envelopes and vectors."""

from __future__ import annotations

import nacl.bindings
import nacl.exceptions
import nacl.signing

from .errors import BadSignature, DecryptionFailed
from .identity import x25519


def aead_encrypt(key: bytes, nonce: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """XChaCha20-Poly1305 (IETF) encryption; ciphertext followed by the 16-byte tag."""
    return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, nonce, key)


def aead_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    try:
        return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, ad, nonce, key)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise DecryptionFailed(
            "authentication tag does not verify: data altered or wrong key"
        ) from None


def x25519_public(secret: bytes) -> bytes:
    return nacl.bindings.crypto_scalarmult_base(secret)


def ed25519_sign(seed: bytes, message: bytes) -> bytes:
    return nacl.signing.SigningKey(seed).sign(message).signature


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> None:
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError, TypeError):
        raise BadSignature("Ed25519 signature does not verify") from None


__all__ = [
    "aead_decrypt",
    "aead_encrypt",
    "ed25519_sign",
    "ed25519_verify",
    "x25519",
    "x25519_public",
]
