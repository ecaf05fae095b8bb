"""Every libsodium call volli_nb makes, behind thin typed wrappers (the only ``nacl`` import).

One place, so a reader sees the whole primitive set at a glance, the known-answer tests
exercise exactly the code paths the envelopes use, and a PyNaCl upgrade touches one file
(``tests/test_layering.py`` checks that no other module imports ``nacl``).

The AEAD calls go to libsodium through PyNaCl's own cffi handle (``nacl._sodium``)
rather than its Python wrappers, whose argument checks cost twice the encryption of a
chat message (7 µs against 2.5 µs per call); padding is plain Python (appending a
marker and zeros costs less than the call into C).

One error convention: libsodium's assorted exceptions never leak.

- Bad arguments from our own code (a key of the wrong length) -> :class:`UsageError`.
- Data that does not verify or decode -> the typed refusal the function names:
  :class:`DecryptionFailed` (an AEAD tag; also for bad sizes, since the data is at fault),
  :class:`BadSignature`, :class:`LowOrderKey`, or the ``error`` class a caller passes
  (as :mod:`volli_nb.core.encoding` does), e.g. padding that is not minimal.
"""

from __future__ import annotations

from collections.abc import Callable

import nacl.bindings
import nacl.exceptions
import nacl.pwhash.argon2id as _argon2id
import nacl.utils
from nacl._sodium import ffi as _ffi  # type: ignore[import-not-found]  # cffi's, untyped
from nacl._sodium import lib as _lib

from volli_nb.base.errors import BadSignature, DecryptionFailed, LowOrderKey, PeerError, UsageError

Random = Callable[[int], bytes]
"""Injected randomness: ``random(n)`` returns ``n`` bytes (tests pass a seeded one)."""

KEY_BYTES = 32  # X25519 keys, Ed25519 public keys and seeds, content and database keys
SIGNATURE_BYTES = 64
AEAD_KEY_BYTES = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_KEYBYTES
AEAD_NONCE_BYTES = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
AEAD_TAG_BYTES = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_ABYTES
ARGON2_SALT_BYTES = _argon2id.SALTBYTES
ARGON2_OPSLIMIT_MIN = _argon2id.OPSLIMIT_MIN
ARGON2_MEMLIMIT_MIN = _argon2id.MEMLIMIT_MIN
ARGON2_OPSLIMIT_MODERATE = _argon2id.OPSLIMIT_MODERATE
ARGON2_MEMLIMIT_MODERATE = _argon2id.MEMLIMIT_MODERATE


def random_bytes(size: int) -> bytes:
    """``size`` bytes from libsodium's CSPRNG: the default :data:`Random` everywhere."""
    return nacl.utils.random(size)


# --- XChaCha20-Poly1305 ----------------------------------------------------------


def aead_encrypt(key: bytes, nonce: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """XChaCha20-Poly1305 (IETF): the ciphertext followed by the 16-byte tag."""
    if len(key) != AEAD_KEY_BYTES or len(nonce) != AEAD_NONCE_BYTES:
        raise UsageError("XChaCha20-Poly1305 needs a 32-byte key and a 24-byte nonce")
    message, data = _bytes(plaintext), _bytes(ad)
    out = _ffi.new("unsigned char[]", len(message) + AEAD_TAG_BYTES)
    _lib.crypto_aead_xchacha20poly1305_ietf_encrypt(
        out, _ffi.NULL, message, len(message), data, len(data), _ffi.NULL,
        _bytes(nonce), _bytes(key),
    )  # fmt: skip
    sealed: bytes = _ffi.buffer(out)[:]
    return sealed


def aead_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    """Inverse of :func:`aead_encrypt`; any refusal (tag, sizes) is ``DecryptionFailed``."""
    if len(key) != AEAD_KEY_BYTES or len(nonce) != AEAD_NONCE_BYTES:
        raise DecryptionFailed("XChaCha20-Poly1305 needs a 32-byte key and a 24-byte nonce")
    if len(ciphertext) < AEAD_TAG_BYTES:
        raise DecryptionFailed("ciphertext is shorter than its 16-byte tag")
    sealed, data = _bytes(ciphertext), _bytes(ad)
    size = len(sealed) - AEAD_TAG_BYTES
    out = _ffi.new("unsigned char[]", max(size, 1))
    failed = _lib.crypto_aead_xchacha20poly1305_ietf_decrypt(
        out, _ffi.NULL, _ffi.NULL, sealed, len(sealed), data, len(data),
        _bytes(nonce), _bytes(key),
    )  # fmt: skip
    if failed:
        raise DecryptionFailed("authentication tag does not verify: data altered or wrong key")
    opened: bytes = _ffi.buffer(out, size)[:]
    return opened


def _bytes(data: bytes | bytearray | memoryview) -> bytes:
    """cffi takes ``bytes`` for a ``const unsigned char *``; anything else is copied."""
    return data if type(data) is bytes else bytes(data)


# --- X25519 ----------------------------------------------------------------------


def x25519_public(secret: bytes) -> bytes:
    """The X25519 public key of a 32-byte secret."""
    if len(secret) != KEY_BYTES:
        raise UsageError("an X25519 secret key is 32 bytes")
    return nacl.bindings.crypto_scalarmult_base(bytes(secret))


def x25519(private_key: bytes, public_key: bytes) -> bytes:
    """X25519 shared secret; a low-order public key raises :class:`LowOrderKey`."""
    if len(private_key) != KEY_BYTES or len(public_key) != KEY_BYTES:
        raise UsageError("X25519 keys are 32 bytes each")
    try:
        shared = nacl.bindings.crypto_scalarmult(bytes(private_key), bytes(public_key))
    except nacl.exceptions.RuntimeError:
        raise LowOrderKey(
            "X25519 public key has low order (all-zero shared secret); refuse this key"
        ) from None
    if shared == bytes(KEY_BYTES):  # defence in depth if libsodium ever returns it
        raise LowOrderKey("X25519 shared secret is all zeros; refuse this key")
    return shared


# --- Ed25519 ---------------------------------------------------------------------


def ed25519_keypair(seed: bytes) -> tuple[bytes, bytes]:
    """``(public key, 64-byte secret key)`` of a 32-byte seed; sign with the secret key."""
    if len(seed) != KEY_BYTES:
        raise UsageError("an Ed25519 seed is 32 bytes")
    public, secret = nacl.bindings.crypto_sign_seed_keypair(bytes(seed))
    return public, secret


def ed25519_sign_with(secret_key: bytes, message: bytes) -> bytes:
    """Raw Ed25519 with a secret key from :func:`ed25519_keypair`: the 64-byte signature."""
    if len(secret_key) != 2 * KEY_BYTES:
        raise UsageError("an Ed25519 secret key is 64 bytes (seed and public key)")
    signed: bytes = nacl.bindings.crypto_sign(bytes(message), bytes(secret_key))
    return signed[:SIGNATURE_BYTES]


def ed25519_sign(seed: bytes, message: bytes) -> bytes:
    """Raw Ed25519 (RFC 8032, no domain separation) from a seed: the 64-byte signature."""
    return ed25519_sign_with(ed25519_keypair(seed)[1], message)


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Raise ``BadSignature`` unless ``signature`` is valid (libsodium's strict rules)."""
    if len(public_key) != KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        raise BadSignature("Ed25519 keys are 32 bytes and signatures 64 bytes")
    try:
        nacl.bindings.crypto_sign_open(bytes(signature) + bytes(message), bytes(public_key))
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError, TypeError):
        raise BadSignature("Ed25519 signature does not verify") from None


# --- padding, password hashing ---------------------------------------------------


def pad(data: bytes, size: int) -> bytes:
    """ISO/IEC 7816-4 padding of ``data`` to exactly ``size`` bytes (what ``sodium_pad``
    makes with one block of ``size``): a 0x80 marker, then zeros."""
    if size <= len(data):
        raise UsageError(f"cannot pad {len(data)} bytes into {size}; choose a larger size")
    return bytes(data) + b"\x80" + bytes(size - len(data) - 1)


def unpad(padded: bytes, *, error: type[PeerError] = DecryptionFailed) -> bytes:
    """The data inside :func:`pad`'s output; ``error`` if the padding marker is missing.
    (Applied to authenticated plaintext only, so its timing tells nobody anything.)"""
    stripped = bytes(padded).rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80:
        raise error("the decrypted body's padding is invalid")
    return stripped[:-1]


def argon2id(size: int, password: bytes, salt: bytes, *, opslimit: int, memlimit: int) -> bytes:
    """An Argon2id key (libsodium's ``crypto_pwhash``); the caller bounds the cost."""
    if len(salt) != ARGON2_SALT_BYTES:
        raise UsageError(f"an Argon2id salt is {ARGON2_SALT_BYTES} bytes")
    key: bytes = _argon2id.kdf(size, password, salt, opslimit=opslimit, memlimit=memlimit)
    return key


__all__ = [
    "AEAD_KEY_BYTES",
    "AEAD_NONCE_BYTES",
    "AEAD_TAG_BYTES",
    "KEY_BYTES",
    "SIGNATURE_BYTES",
    "Random",
    "aead_decrypt",
    "aead_encrypt",
    "argon2id",
    "ed25519_keypair",
    "ed25519_sign",
    "ed25519_sign_with",
    "ed25519_verify",
    "pad",
    "random_bytes",
    "unpad",
    "x25519",
    "x25519_public",
]
