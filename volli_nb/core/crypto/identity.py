"""Identities: an Ed25519 identity key that signs a separate X25519 device key.

The identity key never encrypts; the device key never signs.  Keeping them
apart lets a device key rotate (or, later, several devices exist) under one
identity, and avoids reusing one key for two algorithms.  A peer id is a short
fingerprint of the identity key, so whoever can sign for the key owns the id.

A device record (device key + signature) carries a signed *epoch*, so an old record,
still validly signed, cannot roll a pinned device key back: a pin moves only to a
strictly newer epoch.  Epoch 0 is every identity made before epochs existed; its
signature covers the device key alone (``volli-device-v1``, so those records and every
envelope carrying them stay valid).  From epoch 1 the signature covers the key and the
epoch (``volli-device-v2``), and the JSON form carries ``device_epoch``.
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

DEVICE_DOMAIN = b"volli-device-v1"  # epoch 0: the device key alone
DEVICE_EPOCH_DOMAIN = b"volli-device-v2"  # epoch >= 1: device key || u64 epoch
MAX_DEVICE_EPOCH = 2**53 - 1  # exact in JavaScript and SQLite alike
PEER_ID_PERSON = b"volli-peer-id"
SAFETY_ITERATIONS = 5200

DEVICE_ID_BYTES = 10  # a peer id's raw bytes, as binary formats carry it


@functools.lru_cache(maxsize=4096)
def peer_id_for(identity_key: bytes) -> str:
    """16 lowercase base32 characters (80 bits) of a keyed BLAKE2b of the identity key.

    Cached: every envelope and contact lookup asks for the same few ids."""
    digest = hashlib.blake2b(identity_key, digest_size=10, person=PEER_ID_PERSON).digest()
    return base64.b32encode(digest).decode("ascii").lower()


@functools.lru_cache(maxsize=4096)
def device_id_bytes(device_id: str) -> bytes:
    """The 10 raw bytes of a 16-character peer id; anything else is a UsageError."""
    if not isinstance(device_id, str) or len(device_id) != 16 or device_id != device_id.lower():
        raise UsageError(f"a device id is a 16-character peer id, not {device_id!r}")
    try:
        return base64.b32decode(device_id.upper())
    except ValueError:
        raise UsageError(f"a device id is a 16-character peer id, not {device_id!r}") from None


@functools.lru_cache(maxsize=4096)
def device_id_text(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").lower()


def device_record(device_key: bytes, epoch: int) -> tuple[bytes, bytes]:
    """(domain, message) the identity key signs to vouch for ``device_key`` at ``epoch``."""
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch <= MAX_DEVICE_EPOCH:
        raise UsageError(f"a device epoch is an int from 0 to 2**53-1, not {epoch!r}")
    if epoch == 0:
        return DEVICE_DOMAIN, device_key
    return DEVICE_EPOCH_DOMAIN, device_key + epoch.to_bytes(8, "big")


def identity_fields(obj: dict[str, Any]) -> dict[str, type | tuple[type, ...]]:
    """The exact fields of an identity's JSON: ``device_epoch`` only from epoch 1."""
    fields: dict[str, type | tuple[type, ...]] = {
        "peer_id": str,
        "identity_key": str,
        "device_key": str,
        "device_signature": str,
    }
    if "device_epoch" in obj:
        fields["device_epoch"] = int
    return fields


def parse_epoch(obj: dict[str, Any], *, error: type[PeerError]) -> int:
    """``device_epoch`` of an identity's JSON (absent: 0; present: 1 to 2**53-1)."""
    epoch = obj.get("device_epoch", 0)
    if "device_epoch" in obj and not (isinstance(epoch, int) and 1 <= epoch <= MAX_DEVICE_EPOCH):
        raise error("device_epoch must be an int from 1 to 2**53-1 (absent for epoch 0)")
    return int(epoch)


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
    device_epoch: int = 0  # signed with the device key; a pin only moves to a newer one

    @property
    def peer_id(self) -> str:
        return peer_id_for(self.identity_key)

    def __repr__(self) -> str:
        """The id and the keys' first hex digits (the whole keys are the fields)."""
        return (
            f"PublicIdentity({self.peer_id}: identity key {self.identity_key.hex()[:12]}…, "
            f"device key {self.device_key.hex()[:12]}…, epoch {self.device_epoch})"
        )

    def verify(self) -> None:
        """Raise :class:`BadSignature` unless the identity key signed this device key at
        this epoch."""
        if len(self.identity_key) != KEY_BYTES or len(self.device_key) != KEY_BYTES:
            raise MalformedEnvelope("identity and device keys must be 32 bytes each")
        try:
            domain, message = device_record(self.device_key, self.device_epoch)
        except UsageError as exc:
            raise MalformedEnvelope(str(exc)) from None
        verify(self.identity_key, domain, message, self.device_signature)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "peer_id": self.peer_id,
            "identity_key": b64encode(self.identity_key),
            "device_key": b64encode(self.device_key),
            "device_signature": b64encode(self.device_signature),
        }
        if self.device_epoch:
            out["device_epoch"] = self.device_epoch
        return out

    @classmethod
    def from_json(cls, obj: Any, *, error: type[PeerError] = MalformedEnvelope) -> PublicIdentity:
        """Strictly parse and verify; the claimed peer id must match the key."""
        if not isinstance(obj, dict):
            raise error("identity must be a JSON object")
        require_fields(obj, identity_fields(obj), what="identity", error=error)
        ident = cls(
            identity_key=b64decode(
                obj["identity_key"], length=32, what="identity_key", error=error
            ),
            device_key=b64decode(obj["device_key"], length=32, what="device_key", error=error),
            device_signature=b64decode(
                obj["device_signature"], length=64, what="device_signature", error=error
            ),
            device_epoch=parse_epoch(obj, error=error),
        )
        if ident.peer_id != obj["peer_id"]:
            raise error(
                f"identity claims peer id {obj['peer_id']!r} but its key gives {ident.peer_id!r}"
            )
        ident.verify()
        return ident


class Identity:
    """A private identity: the Ed25519 signing key and the X25519 device key it vouches for."""

    SECRET_BYTES = 64  # epoch 0; from epoch 1, 8 more bytes hold the epoch

    def __init__(self, signing_seed: bytes, device_secret: bytes, device_epoch: int = 0) -> None:
        if len(signing_seed) != KEY_BYTES or len(device_secret) != KEY_BYTES:
            raise UsageError("an identity needs a 32-byte signing seed and a 32-byte device key")
        self._seed = bytes(signing_seed)
        identity_key, self._signing_key = ed25519_keypair(self._seed)
        self._device_secret = bytes(device_secret)
        device_key = x25519_public(self._device_secret)
        self.public = PublicIdentity(
            identity_key=identity_key,
            device_key=device_key,
            device_signature=self.sign(*device_record(device_key, device_epoch)),
            device_epoch=device_epoch,
        )

    @classmethod
    def generate(cls, random: Random = random_bytes) -> Identity:
        return cls(random(KEY_BYTES), random(KEY_BYTES))

    def with_new_device(self, random: Random = random_bytes) -> Identity:
        """The same identity with a fresh device key at the next epoch (a key rotation
        that contacts accept, and after which the old record is refused)."""
        return Identity(self._seed, random(KEY_BYTES), self.public.device_epoch + 1)

    @classmethod
    def from_secret_bytes(cls, secret: bytes) -> Identity:
        if len(secret) not in (cls.SECRET_BYTES, cls.SECRET_BYTES + 8):
            raise UsageError(f"identity secret must be {cls.SECRET_BYTES} (or 72) bytes")
        epoch = int.from_bytes(secret[64:], "big") if len(secret) > cls.SECRET_BYTES else 0
        return cls(secret[:32], secret[32:64], epoch)

    def to_secret_bytes(self) -> bytes:
        """Both private keys (and the epoch, from 1); store only sealed (see
        :mod:`volli_nb.core.store.database`)."""
        epoch = self.public.device_epoch
        return self._seed + self._device_secret + (epoch.to_bytes(8, "big") if epoch else b"")

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
