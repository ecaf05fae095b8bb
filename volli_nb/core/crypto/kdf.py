"""HKDF (RFC 5869) on the standard library, and the Double Ratchet's three KDFs.

Signal's Double Ratchet spec (rev. 1, section 5.2, "recommended cryptographic
algorithms") names them; each one here uses exactly that construction, with our
own info strings so no output can be confused with another protocol's:

- ``kdf_rk(rk, dh_out)``: HKDF-SHA256 with ``rk`` as salt, the DH output as input
  key material and info ``volli-ratchet-root-v1``; 64 bytes = new root key, chain key.
- ``kdf_ck(ck)``: HMAC-SHA256 keyed by ``ck`` over the single byte 0x01 (message
  key) and 0x02 (next chain key).

Each message key is the XChaCha20-Poly1305 key of exactly one message, with a fixed
zero nonce (the spec's first option for ENCRYPT's nonce), so no nonce travels and no
further derivation is spent per message.

``hmac.digest`` is the one-shot C path: a ratchet step costs a few microseconds.
"""

from __future__ import annotations

import hashlib
import hmac

from volli_nb.base.errors import UsageError
from volli_nb.core.crypto.primitives import KEY_BYTES

ROOT_INFO = b"volli-ratchet-root-v1"
MESSAGE_KEY_INPUT = b"\x01"
CHAIN_KEY_INPUT = b"\x02"


def hkdf_extract(salt: bytes, ikm: bytes, hash_name: str = "sha256") -> bytes:
    """RFC 5869 section 2.2; an empty salt means HashLen zero bytes."""
    size = hashlib.new(hash_name).digest_size
    return hmac.digest(salt or bytes(size), ikm, hash_name)


def hkdf_expand(prk: bytes, info: bytes, length: int, hash_name: str = "sha256") -> bytes:
    """RFC 5869 section 2.3: T(1) | T(2) | ... truncated to ``length`` bytes."""
    size = hashlib.new(hash_name).digest_size
    if not 0 < length <= 255 * size:
        raise UsageError(f"HKDF can expand to 1..{255 * size} bytes, not {length}")
    blocks: list[bytes] = []
    previous = b""
    for counter in range(1, -(-length // size) + 1):
        previous = hmac.digest(prk, previous + info + bytes((counter,)), hash_name)
        blocks.append(previous)
    return b"".join(blocks)[:length]


def hkdf(ikm: bytes, *, salt: bytes, info: bytes, length: int, hash_name: str = "sha256") -> bytes:
    """Extract then expand (RFC 5869 section 2)."""
    return hkdf_expand(hkdf_extract(salt, ikm, hash_name), info, length, hash_name)


def kdf_rk(root_key: bytes, dh_out: bytes) -> tuple[bytes, bytes]:
    """The root chain step: ``(new root key, new chain key)``."""
    out = hkdf(dh_out, salt=root_key, info=ROOT_INFO, length=2 * KEY_BYTES)
    return out[:KEY_BYTES], out[KEY_BYTES:]


def kdf_ck(chain_key: bytes) -> tuple[bytes, bytes]:
    """The symmetric chain step: ``(next chain key, message key)``."""
    return (
        hmac.digest(chain_key, CHAIN_KEY_INPUT, "sha256"),
        hmac.digest(chain_key, MESSAGE_KEY_INPUT, "sha256"),
    )


__all__ = [
    "hkdf",
    "hkdf_expand",
    "hkdf_extract",
    "kdf_ck",
    "kdf_rk",
]
