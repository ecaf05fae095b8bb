"""ENCRYPT and DECRYPT under one ratchet message key, misuse-resistant (SIV-style).

Each message key should encrypt exactly once.  A bug, or a state rolled back by a
restore, could use one twice, and under a fixed nonce two plaintexts under one key give
away their XOR (with one of them known, the other).  So, as defence in depth, the message
key is split by BLAKE2b into an AEAD key and a nonce key; the 24-byte nonce is
``BLAKE2b(nonce key, u64 len(ad) | ad | plaintext)``, sent in front of the
XChaCha20-Poly1305 ciphertext, and recomputed after decryption (a nonce the sender chose
otherwise is refused).  A reused key then shows only whether two messages were equal:
different inputs get different nonces, equal inputs the same bytes.  This is the
synthetic-IV construction of RFC 5297 section 2 (the IV is a PRF of the key, the
associated data and the plaintext) over libsodium's XChaCha20-Poly1305; its cost is 24
bytes per key wrap and two BLAKE2b calls.
"""

from __future__ import annotations

import hashlib
import hmac

from volli_nb.base.errors import DecryptionFailed
from volli_nb.core.crypto.primitives import AEAD_NONCE_BYTES, aead_decrypt, aead_encrypt

_AEAD_PERSON = b"volli-mk-aead"
_NONCE_PERSON = b"volli-mk-nonce"


def split(message_key: bytes) -> tuple[bytes, bytes]:
    """The message key's AEAD key and nonce key (independent, by personalisation)."""
    aead_key = hashlib.blake2b(b"", digest_size=32, key=message_key, person=_AEAD_PERSON).digest()
    nonce_key = hashlib.blake2b(b"", digest_size=32, key=message_key, person=_NONCE_PERSON)
    return aead_key, nonce_key.digest()


def _nonce(nonce_key: bytes, plaintext: bytes, ad: bytes) -> bytes:
    data = len(ad).to_bytes(8, "big") + ad + plaintext
    return hashlib.blake2b(data, digest_size=AEAD_NONCE_BYTES, key=nonce_key).digest()


def seal_with_key(message_key: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """ENCRYPT: ``nonce | XChaCha20-Poly1305 ciphertext``."""
    aead_key, nonce_key = split(message_key)
    nonce = _nonce(nonce_key, plaintext, ad)
    return nonce + aead_encrypt(aead_key, nonce, plaintext, ad)


def open_with_key(message_key: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    """DECRYPT: the tag, then the nonce recomputed from what it opened (DecryptionFailed)."""
    if len(ciphertext) < AEAD_NONCE_BYTES:
        raise DecryptionFailed("a ratchet ciphertext starts with its 24-byte nonce")
    aead_key, nonce_key = split(message_key)
    nonce = ciphertext[:AEAD_NONCE_BYTES]
    plaintext = aead_decrypt(aead_key, nonce, ciphertext[AEAD_NONCE_BYTES:], ad)
    if not hmac.compare_digest(nonce, _nonce(nonce_key, plaintext, ad)):
        raise DecryptionFailed("the nonce is not the one its message key and content give")
    return plaintext


__all__ = ["open_with_key", "seal_with_key", "split"]
