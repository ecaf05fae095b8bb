"""Identities: an Ed25519 identity key that signs a separate X25519 device key.

The identity key never encrypts; the device key never signs.  Keeping them
apart lets a device key rotate (or, later, several devices exist) under one
identity, and avoids reusing one key for two algorithms.  A peer id is a short
fingerprint of the identity key, so whoever can sign for the key owns the id.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass
from typing import Any

from volli_nb.base.errors import BadSignature, MalformedEnvelope, PeerError, UsageError
from volli_nb.core.crypto.primitives import (
    KEY_BYTES,
    Random,
    ed25519_keypair,
    ed25519_sign_with,
    ed25519_verify,
    random_bytes,
    x25519,
    x25519_public,
)
from volli_nb.core.encoding import b64decode, b64encode, require_fields

DEVICE_DOMAIN = b"volli-device-v1"
PEER_ID_PERSON = b"volli-peer-id"
SAFETY_ITERATIONS = 5200


@functools.lru_cache(maxsize=4096)
def peer_id_for(identity_key: bytes) -> str:
    """16 lowercase base32 characters (80 bits) of a keyed BLAKE2b of the identity key.

    Cached: every envelope and contact lookup asks for the same few ids."""
    digest = hashlib.blake2b(identity_key, digest_size=10, person=PEER_ID_PERSON).digest()
    return base64.b32encode(digest).decode("ascii").lower()


def _domain_message(domain: bytes, message: bytes) -> bytes:
    # Length-prefixed domain, so no (domain, message) pair collides with another.
    return len(domain).to_bytes(2, "big") + domain + message


def verify(identity_key: bytes, domain: bytes, message: bytes, signature: bytes) -> None:
    """Check a domain-separated Ed25519 signature; raise :class:`BadSignature` if it fails."""
    try:
        ed25519_verify(identity_key, _domain_message(domain, message), signature)
    except BadSignature:
        raise BadSignature(
            f"{domain.decode(errors='replace')} signature does not verify for key "
            f"{peer_id_for(identity_key)}; the data was altered or signed by someone else"
        ) from None


@dataclass(frozen=True)
class PublicIdentity:
    """What a contact publishes and we pin: identity key, device key, and the link between them."""

    identity_key: bytes
    device_key: bytes
    device_signature: bytes

    @property
    def peer_id(self) -> str:
        return peer_id_for(self.identity_key)

    def verify(self) -> None:
        """Raise :class:`BadSignature` unless the identity key signed this device key."""
        if len(self.identity_key) != KEY_BYTES or len(self.device_key) != KEY_BYTES:
            raise MalformedEnvelope("identity and device keys must be 32 bytes each")
        verify(self.identity_key, DEVICE_DOMAIN, self.device_key, self.device_signature)

    def to_json(self) -> dict[str, str]:
        return {
            "peer_id": self.peer_id,
            "identity_key": b64encode(self.identity_key),
            "device_key": b64encode(self.device_key),
            "device_signature": b64encode(self.device_signature),
        }

    @classmethod
    def from_json(cls, obj: Any, *, error: type[PeerError] = MalformedEnvelope) -> PublicIdentity:
        """Strictly parse and verify; the claimed peer id must match the key."""
        if not isinstance(obj, dict):
            raise error("identity must be a JSON object")
        require_fields(
            obj,
            {"peer_id": str, "identity_key": str, "device_key": str, "device_signature": str},
            what="identity",
            error=error,
        )
        ident = cls(
            identity_key=b64decode(
                obj["identity_key"], length=32, what="identity_key", error=error
            ),
            device_key=b64decode(obj["device_key"], length=32, what="device_key", error=error),
            device_signature=b64decode(
                obj["device_signature"], length=64, what="device_signature", error=error
            ),
        )
        if ident.peer_id != obj["peer_id"]:
            raise error(
                f"identity claims peer id {obj['peer_id']!r} but its key gives {ident.peer_id!r}"
            )
        ident.verify()
        return ident


class Identity:
    """A private identity: the Ed25519 signing key and the X25519 device key it vouches for."""

    SECRET_BYTES = 64

    def __init__(self, signing_seed: bytes, device_secret: bytes) -> None:
        if len(signing_seed) != KEY_BYTES or len(device_secret) != KEY_BYTES:
            raise UsageError("an identity needs a 32-byte signing seed and a 32-byte device key")
        self._seed = bytes(signing_seed)
        identity_key, self._signing_key = ed25519_keypair(self._seed)
        self._device_secret = bytes(device_secret)
        device_key = x25519_public(self._device_secret)
        self.public = PublicIdentity(
            identity_key=identity_key,
            device_key=device_key,
            device_signature=self.sign(DEVICE_DOMAIN, device_key),
        )

    @classmethod
    def generate(cls, random: Random = random_bytes) -> Identity:
        return cls(random(KEY_BYTES), random(KEY_BYTES))

    @classmethod
    def from_secret_bytes(cls, secret: bytes) -> Identity:
        if len(secret) != cls.SECRET_BYTES:
            raise UsageError(f"identity secret must be {cls.SECRET_BYTES} bytes")
        return cls(secret[:32], secret[32:])

    def to_secret_bytes(self) -> bytes:
        """Both private keys; store only sealed (see :mod:`volli_nb.core.store.database`)."""
        return self._seed + self._device_secret

    @property
    def peer_id(self) -> str:
        return self.public.peer_id

    def sign(self, domain: bytes, message: bytes) -> bytes:
        return ed25519_sign_with(self._signing_key, _domain_message(domain, message))

    def shared_secret(self, public_key: bytes) -> bytes:
        """X25519 between our device key and ``public_key``."""
        return x25519(self._device_secret, public_key)

    def __repr__(self) -> str:
        return f"Identity(peer_id={self.peer_id!r})"


def _safety_half(key: bytes, stable_id: bytes, iterations: int) -> str:
    digest = b"\x00\x00" + key + stable_id
    for _ in range(iterations):
        digest = hashlib.sha512(digest + key).digest()
    chunks = (int.from_bytes(digest[i : i + 5], "big") % 100_000 for i in range(0, 30, 5))
    return "".join(f"{c:05d}" for c in chunks)


def safety_number(
    local_key: bytes,
    local_id: bytes,
    remote_key: bytes,
    remote_id: bytes,
    *,
    iterations: int = SAFETY_ITERATIONS,
) -> str:
    """libsignal's numeric fingerprint (version 0): 60 digits, the same on both sides."""
    halves = sorted(
        [
            _safety_half(local_key, local_id, iterations),
            _safety_half(remote_key, remote_id, iterations),
        ]
    )
    return "".join(halves)


def contact_safety_number(me: PublicIdentity, them: PublicIdentity) -> str:
    """Safety number of two Volli identities: raw identity keys, peer ids as stable ids."""
    return safety_number(
        me.identity_key, me.peer_id.encode(), them.identity_key, them.peer_id.encode()
    )


def format_safety_number(number: str) -> str:
    """Twelve groups of five digits, as people read them aloud."""
    return " ".join(number[i : i + 5] for i in range(0, len(number), 5))
