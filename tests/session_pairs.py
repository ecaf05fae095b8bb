"""Deterministic session pairs for the handshake, ratchet and envelope v2 tests."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from volli_nb.core.crypto import Identity
from volli_nb.core.crypto import handshake as hs
from volli_nb.core.crypto.ratchet import RatchetState

NOW = 1_800_000_000_000


def cert(name: str) -> bytes:
    """A stand-in DTLS certificate digest (SHA-256 of a name)."""
    return hashlib.sha256(name.encode()).digest()


@dataclass
class Pair:
    """Two identities, their channel's certificate digests, and the handshake's results."""

    a: Identity
    b: Identity
    cert_a: bytes
    cert_b: bytes
    pending_a: hs.PendingHandshake
    pending_b: hs.PendingHandshake
    result_a: hs.HandshakeResult
    result_b: hs.HandshakeResult

    @property
    def initiator(self) -> RatchetState:
        return (self.result_a if self.result_a.initiator else self.result_b).state

    @property
    def responder(self) -> RatchetState:
        return (self.result_b if self.result_a.initiator else self.result_a).state


def start_pair(
    a: Identity,
    b: Identity,
    seed: int = 1,
    cert_a: bytes = b"",
    cert_b: bytes = b"",
) -> tuple[hs.PendingHandshake, hs.PendingHandshake]:
    rng = random.Random(seed)
    cert_a, cert_b = cert_a or cert("a"), cert_b or cert("b")
    pa = hs.start(
        a,
        b.public,
        local_certificate=cert_a,
        remote_certificate=cert_b,
        random=rng.randbytes,
    )
    pb = hs.start(
        b,
        a.public,
        local_certificate=cert_b,
        remote_certificate=cert_a,
        random=rng.randbytes,
    )
    return pa, pb


def make_pair(a: Identity, b: Identity, seed: int = 1) -> Pair:
    rng = random.Random(seed * 7919)
    pa, pb = start_pair(a, b, seed)
    ra = hs.finish(pa, pb.hello, random=rng.randbytes)
    rb = hs.finish(pb, pa.hello, random=rng.randbytes)
    return Pair(a, b, pa.local_certificate, pb.local_certificate, pa, pb, ra, rb)


def stranger_frame(stranger: Identity, victim: Identity, tag: bytes, text: str) -> bytes:
    """A BUNDLE frame under a channel's session ``tag``, holding an envelope sealed and
    signed by ``stranger`` (over a session of its own with ``victim``): what a peer who
    is not the channel's would have to send to inject a message."""
    from volli_nb.core.crypto import envelope
    from volli_nb.core.message_id import new_message_id
    from volli_nb.core.protocol.frames import make_bundle_frame

    ours = make_pair(stranger, victim, seed=99)
    sealed = envelope.seal(
        {victim.peer_id: ours.result_a.state},
        sender=stranger.peer_id,
        conversation_id=f"dm-{stranger.peer_id}",
        message_id=new_message_id(stranger.peer_id, lambda n: bytes(range(n))),
        counter=1,
        timestamp_ms=NOW,
        plaintext=f'{{"type":"text","text":"{text}"}}'.encode(),
    )
    return make_bundle_frame(tag, envelope.bundle(stranger, [sealed]))


def identities(seed: int, count: int) -> list[Identity]:
    rng = random.Random(seed)
    return [Identity.generate(rng.randbytes) for _ in range(count)]
