"""The session handshake when a data channel opens: X3DH-style, channel-bound, sans-IO.

Both sides call :func:`start` as soon as the channel opens and send ``pending.hello``
(they need not wait for each other); when the peer's hello arrives, :func:`finish`
checks it and returns the session's first :class:`~volli_nb.core.crypto.ratchet.RatchetState`.
Nothing here touches a socket or a clock; all randomness is injected.

Hello, version 2 (289 bytes, fixed layout)::

    u8 version=2 | identity key 32 (Ed25519) | device key 32 (X25519)
    | the peer's identity key 32 | ephemeral key 32 | ratchet key 32 (X25519)
    | own DTLS certificate digest 32 | the peer's DTLS certificate digest 32
    | signature 64

The signature is the identity key's over every preceding byte (domain
``volli-handshake-v1``).  The digests are SHA-256 of the DER certificates the DTLS
handshake actually used (our own, and the one the peer presented), never the
fingerprints read from SDP text, which the signaling path could have rewritten.

Key agreement (Signal's X3DH with both sides online, so the ephemerals play the
prekeys' part).  The side whose ``(identity key, device key)`` sorts lower is the
initiator I, the other the responder R; ``e`` are ephemeral keys, ``D`` device keys::

    DH1 = DH(e_I, D_R)   DH2 = DH(D_I, e_R)   DH3 = DH(e_I, e_R)
    th  = SHA-256("volli-handshake-transcript-v1" | hello_I | hello_R)
    SK  = HKDF-SHA256(salt=0^32, ikm=0xFF^32 | DH1 | DH2 | DH3, info="volli-x3dh-v1" | th)

``th`` is the session id and the ratchet's associated data; it covers both identities,
both device keys and all four certificate digests.  What this buys:

- a lying signaling path (a man in the middle with its own DTLS certificates): the
  signed digests differ from the ones seen -> :class:`ChannelBindingFailed`;
- a replayed hello: it names old certificates (``ChannelBindingFailed``), and even
  with the same certificates the responder's fresh ephemeral makes SK unknown to the
  replayer, who lacks e_I;
- a stolen long-term key alone: a recorded session needs DH3, i.e. an ephemeral secret
  that was never stored, so recorded traffic stays closed (forward secrecy).  An active
  attacker holding the identity and device keys can impersonate that identity, as in
  every authenticated key exchange.

Refusals, in order: ``MalformedHandshake`` (layout) -> ``UnknownPeer`` (another
identity) -> ``KeyMismatch`` (the pinned identity with another device key) ->
``BadSignature`` -> ``ChannelBindingFailed`` (addressed to someone else, or digests that
are not the certificates in use) -> ``LowOrderKey`` (an ephemeral or ratchet key).

No resuming: a session lives exactly as long as its data channel, in memory only.
Version 1 let a side name a stored session to resume; a restored file or row could then
resume from a stale state and reuse message keys.  Every channel now starts a fresh
session, and the outbox re-seals whatever the last one left unacknowledged
(docs/sessions.md says why this is the better design here).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from volli_nb.base.errors import (
    BadSignature,
    ChannelBindingFailed,
    KeyMismatch,
    MalformedHandshake,
    UnknownPeer,
    UsageError,
)
from volli_nb.core.crypto.identity import Identity, PublicIdentity, peer_id_for, verify
from volli_nb.core.crypto.kdf import hkdf
from volli_nb.core.crypto.primitives import (
    KEY_BYTES,
    SIGNATURE_BYTES,
    Random,
    random_bytes,
    x25519,
)
from volli_nb.core.crypto.ratchet import (
    RatchetState,
    generate_dh,
    init_initiator,
    init_responder,
)
from volli_nb.core.crypto.wire import Reader, as_bytes

VERSION = 2
SIGN_DOMAIN = b"volli-handshake-v1"
TRANSCRIPT_PREFIX = b"volli-handshake-transcript-v1"
ROOT_INFO = b"volli-x3dh-v1"
DIGEST_BYTES = 32  # SHA-256 of a DER certificate
HELLO_BYTES = 1 + 7 * KEY_BYTES + SIGNATURE_BYTES
_FIELDS = (
    "identity_key",
    "device_key",
    "peer_identity_key",
    "ephemeral_key",
    "ratchet_key",
    "own_certificate",
    "peer_certificate",
)


@dataclass(frozen=True, slots=True)
class Hello:
    """One side's hello, every field decoded; nothing about it is verified yet."""

    identity_key: bytes
    device_key: bytes
    peer_identity_key: bytes
    ephemeral_key: bytes
    ratchet_key: bytes
    own_certificate: bytes
    peer_certificate: bytes
    signature: bytes

    def signed_part(self) -> bytes:
        return bytes((VERSION,)) + b"".join(getattr(self, name) for name in _FIELDS)

    def encode(self) -> bytes:
        return self.signed_part() + self.signature

    def to_dict(self) -> dict[str, object]:
        """Readable in a notebook: peer ids and hex, field by field."""
        out: dict[str, object] = {"version": VERSION, "peer_id": peer_id_for(self.identity_key)}
        out |= {name: getattr(self, name).hex() for name in _FIELDS}
        out["to_peer_id"] = peer_id_for(self.peer_identity_key)
        out["signature"] = self.signature.hex()
        return out


def decode_hello(data: bytes) -> Hello:
    """Strictly decode a hello: exact size, this version; verifies nothing."""
    raw = as_bytes(data, "a handshake hello")
    if len(raw) != HELLO_BYTES:
        raise MalformedHandshake(f"a hello is {HELLO_BYTES} bytes, not {len(raw)}")
    reader = Reader(raw, MalformedHandshake, "handshake hello")
    version = reader.byte("version")
    if version != VERSION:
        raise MalformedHandshake(
            f"handshake version {version} is not supported (expected {VERSION}): "
            "the peer runs another volli_nb release; upgrade both sides"
        )
    fields = {name: reader.take(KEY_BYTES, name) for name in _FIELDS}
    hello = Hello(**fields, signature=reader.take(SIGNATURE_BYTES, "signature"))
    reader.end()
    return hello


@dataclass(frozen=True, slots=True)
class PendingHandshake:
    """Our half: the hello to send and the secrets ``finish`` needs (dropped with it)."""

    me: Identity
    peer: PublicIdentity
    local_certificate: bytes
    remote_certificate: bytes
    ephemeral_secret: bytes
    ratchet_keys: tuple[bytes, bytes]
    hello: bytes

    @property
    def initiator(self) -> bool:
        mine = (self.me.public.identity_key, self.me.public.device_key)
        return mine < (self.peer.identity_key, self.peer.device_key)

    def __repr__(self) -> str:
        role = "initiator" if self.initiator else "responder"
        return f"PendingHandshake({self.me.peer_id} -> {self.peer.peer_id}, {role})"


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """A verified peer and the first ratchet state of a new session."""

    state: RatchetState
    session_id: bytes
    initiator: bool
    peer: PublicIdentity


def _check_digest(value: bytes, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != DIGEST_BYTES:
        raise UsageError(f"{what} must be the 32-byte SHA-256 digest of a DER certificate")
    return value


def start(
    me: Identity,
    peer: PublicIdentity,
    *,
    local_certificate: bytes,
    remote_certificate: bytes,
    random: Random = random_bytes,
) -> PendingHandshake:
    """Our hello for ``peer`` over the DTLS channel whose certificates have these digests."""
    if (me.public.identity_key, me.public.device_key) == (peer.identity_key, peer.device_key):
        raise UsageError("a device cannot open a session with itself")
    local = _check_digest(local_certificate, "local_certificate")
    remote = _check_digest(remote_certificate, "remote_certificate")
    ephemeral_secret, ephemeral_public = generate_dh(random)
    ratchet_keys = generate_dh(random)
    unsigned = Hello(
        me.public.identity_key,
        me.public.device_key,
        peer.identity_key,
        ephemeral_public,
        ratchet_keys[1],
        local,
        remote,
        b"",
    )
    signature = me.sign(SIGN_DOMAIN, unsigned.signed_part())
    hello = unsigned.signed_part() + signature
    return PendingHandshake(me, peer, local, remote, ephemeral_secret, ratchet_keys, hello)


def _check_hello(pending: PendingHandshake, hello: Hello) -> None:
    peer = pending.peer
    if hello.identity_key != peer.identity_key:
        raise UnknownPeer(
            f"handshake from {peer_id_for(hello.identity_key)}, but this channel is for "
            f"{peer.peer_id}"
        )
    if hello.device_key != peer.device_key:
        raise KeyMismatch(
            f"peer {peer.peer_id} offered a device key other than the pinned one; "
            "re-verify the contact before trusting the new key"
        )
    try:
        verify(peer.identity_key, SIGN_DOMAIN, hello.signed_part(), hello.signature)
    except BadSignature:
        raise BadSignature(f"handshake signature of {peer.peer_id} does not verify") from None
    if hello.peer_identity_key != pending.me.public.identity_key:
        raise ChannelBindingFailed(
            f"{peer.peer_id}'s handshake is addressed to {peer_id_for(hello.peer_identity_key)}"
        )
    if (hello.own_certificate, hello.peer_certificate) != (
        pending.remote_certificate,
        pending.local_certificate,
    ):
        raise ChannelBindingFailed(
            f"{peer.peer_id} signed DTLS certificate digests other than the ones in use on "
            "this channel: the signaling path may have been tampered with, or the hello replayed"
        )


def _root_key(pending: PendingHandshake, hello: Hello, transcript: bytes) -> bytes:
    eph, me = pending.ephemeral_secret, pending.me
    if pending.initiator:
        dh = (x25519(eph, hello.device_key), me.shared_secret(hello.ephemeral_key))
    else:
        dh = (me.shared_secret(hello.ephemeral_key), x25519(eph, hello.device_key))
    dh3 = x25519(eph, hello.ephemeral_key)
    ikm = b"\xff" * 32 + dh[0] + dh[1] + dh3
    return hkdf(ikm, salt=bytes(32), info=ROOT_INFO + transcript, length=32)


def finish(
    pending: PendingHandshake, peer_hello: bytes, *, random: Random = random_bytes
) -> HandshakeResult:
    """Verify the peer's hello and derive the session (see the module docstring)."""
    hello = decode_hello(peer_hello)
    _check_hello(pending, hello)
    raw = hello.encode()
    first, second = (pending.hello, raw) if pending.initiator else (raw, pending.hello)
    transcript = hashlib.sha256(TRANSCRIPT_PREFIX + first + second).digest()
    shared = _root_key(pending, hello, transcript)
    if pending.initiator:
        state = init_initiator(shared, transcript, pending.ratchet_keys, hello.ratchet_key)
    else:
        state = init_responder(shared, transcript, pending.ratchet_keys, hello.ratchet_key, random)
    return HandshakeResult(state, transcript, pending.initiator, pending.peer)


__all__ = [
    "HELLO_BYTES",
    "HandshakeResult",
    "Hello",
    "PendingHandshake",
    "decode_hello",
    "finish",
    "start",
]
