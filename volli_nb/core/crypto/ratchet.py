"""The Double Ratchet (Signal spec rev. 1, sections 3.2-3.5) as pure functions on frozen states.

Why functional: :func:`encrypt` and :func:`decrypt` return a NEW :class:`RatchetState`
and never change the one passed in.  The caller stores the new state (sealed, see
:mod:`volli_nb.core.crypto.ratchet_state`) in the same SQLite transaction as the message
it produced or consumed.  A crash before that commit leaves the old state on disk, which
still holds the key, so the redelivered message decrypts again: "wait for the message to
be stored before deleting its key".  A failed decrypt raises and leaves nothing to undo
(the spec's "state changes are discarded").

The algorithm is the spec's, step for step (``RatchetEncrypt``, ``RatchetDecrypt``,
``TrySkippedMessageKeys``, ``SkipMessageKeys``, ``DHRatchet``), on X25519 (libsodium)
and the KDFs of :mod:`volli_nb.core.crypto.kdf`.  ENCRYPT is XChaCha20-Poly1305 with
the message key as key and a fixed all-zero nonce (the spec's first option: each message
key encrypts exactly once).  Its associated data is ``CONCAT(AD, header)``: ``state.ad``
(the 32-byte session id from the handshake), the encoded header, then the caller's own
associated data (envelope v2 passes its header and ciphertext digest).

Choices the spec leaves open:

- **Bounds** (:class:`Limits`): at most ``max_skip`` keys skipped in one chain per
  message (more raises :class:`TooManySkipped`, the spec's MAX_SKIP), at most
  ``max_skipped`` held in all (oldest evicted first), each kept ``skipped_ttl_ms``
  after it was derived (expired lazily on the next decrypt, with the injected
  ``now_ms``).  A message whose key is gone raises :class:`MessageKeyUnavailable`.
- **Duplicates are named**: a header for an already-used key of the current chain, or
  for one of the last ``HISTORY`` receiving chains, raises ``MessageKeyUnavailable``
  instead of the spec's failed decryption after a bogus DH step.
- **Start from the handshake** (:mod:`volli_nb.core.crypto.handshake`): the initiator is
  ``RatchetInitAlice`` with its hello's ratchet key as first sending key; the responder
  is ``RatchetInitBob`` followed at once by the DH step the initiator's first message
  would cause.  So both sides can send before either has received anything.
- A DH ratchet step happens whenever a header carries a new ratchet key, so at least
  once per round trip.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from volli_nb.base.errors import (
    DecryptionFailed,
    MalformedRatchetHeader,
    MessageKeyUnavailable,
    TooManySkipped,
    UsageError,
)
from volli_nb.core.crypto.kdf import kdf_ck, kdf_rk
from volli_nb.core.crypto.primitives import (
    Random,
    aead_decrypt,
    aead_encrypt,
    random_bytes,
    x25519,
    x25519_public,
)
from volli_nb.core.crypto.wire import Reader, as_bytes, uvarint

SkippedKeys = Mapping[tuple[bytes, int], tuple[bytes, int]]  # (dh, n) -> (mk, stored_ms)

KEY_BYTES = 32
HISTORY = 4  # previous receiving ratchet keys remembered to name duplicates
MAX_CHAIN = 2**32 - 1  # n and pn in a header
MESSAGE_NONCE = bytes(24)  # each message key encrypts exactly once (spec section 5.2)
_EMPTY: SkippedKeys = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Header:
    """The spec's header: the sender's ratchet public key, previous chain length, index."""

    dh: bytes
    pn: int
    n: int

    def encode(self) -> bytes:
        return self.dh + uvarint(self.pn) + uvarint(self.n)

    def to_dict(self) -> dict[str, object]:
        return {"dh": self.dh.hex(), "pn": self.pn, "n": self.n}


def read_header(reader: Reader) -> Header:
    """Read a header embedded in a larger layout (envelope v2)."""
    dh = reader.take(KEY_BYTES, "ratchet key")
    pn = reader.uvarint("previous chain length", 0, MAX_CHAIN)
    return Header(dh, pn, reader.uvarint("message number", 0, MAX_CHAIN))


def decode_header(data: bytes) -> Header:
    """Strictly decode a standalone header: 32-byte key, varint pn, varint n, nothing more."""
    reader = Reader(as_bytes(data, "a ratchet header"), MalformedRatchetHeader, "ratchet header")
    header = read_header(reader)
    reader.end()
    return header


@dataclass(frozen=True, slots=True)
class Limits:
    """How many skipped message keys a state holds, and for how long."""

    max_skip: int = 1024
    max_skipped: int = 2048
    skipped_ttl_ms: int = 60 * 60 * 1000

    def __post_init__(self) -> None:
        if not 0 <= self.max_skip <= self.max_skipped or self.skipped_ttl_ms <= 0:
            raise UsageError("need 0 <= max_skip <= max_skipped and a positive skipped_ttl_ms")


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class RatchetState:
    """One side of one session, exactly the spec's state variables plus ``ad``.

    ``skipped`` is ordered oldest first; ``previous_dhr`` holds the last ``HISTORY``
    receiving ratchet keys, newest last.  Treat every field as read-only.
    """

    ad: bytes  # the session id both sides derived in the handshake
    root_key: bytes
    dhs_secret: bytes
    dhs_public: bytes
    dhr: bytes | None
    cks: bytes | None
    ckr: bytes | None
    ns: int
    nr: int
    pn: int
    skipped: SkippedKeys = field(default_factory=lambda: _EMPTY)
    previous_dhr: tuple[bytes, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """For notebooks: counters, public keys, and 4-byte fingerprints of the secret keys
        (a one-way hash: enough to watch a chain key advance, nothing to attack)."""
        return {
            "session": self.ad[:8].hex(),
            "root_key": _fingerprint(self.root_key),
            "ratchet_key": self.dhs_public.hex(),
            "peer_ratchet_key": None if self.dhr is None else self.dhr.hex(),
            "sending_chain": _fingerprint(self.cks),
            "ns": self.ns,
            "pn": self.pn,
            "receiving_chain": _fingerprint(self.ckr),
            "nr": self.nr,
            "skipped": [f"{dh[:4].hex()}#{n}" for dh, n in self.skipped],
        }

    def __repr__(self) -> str:  # never print keys
        return (
            f"RatchetState(session={self.ad[:8].hex()}, ns={self.ns}, nr={self.nr}, "
            f"pn={self.pn}, skipped={len(self.skipped)})"
        )


def _fingerprint(key: bytes | None) -> str | None:
    if key is None:
        return None
    return hashlib.blake2b(key, digest_size=4, person=b"volli-key-fp").hexdigest()


def generate_dh(random: Random) -> tuple[bytes, bytes]:
    """GENERATE_DH: a fresh X25519 key pair ``(secret, public)`` from injected randomness."""
    secret = random(KEY_BYTES)
    return secret, x25519_public(secret)


def init_initiator(
    shared_key: bytes, ad: bytes, own: tuple[bytes, bytes], peer_ratchet_key: bytes
) -> RatchetState:
    """RatchetInitAlice, with ``own`` (the hello's ratchet key pair) as first sending key."""
    root_key, cks = kdf_rk(shared_key, x25519(own[0], peer_ratchet_key))
    return RatchetState(ad, root_key, own[0], own[1], peer_ratchet_key, cks, None, 0, 0, 0)


def init_responder(
    shared_key: bytes,
    ad: bytes,
    own: tuple[bytes, bytes],
    peer_ratchet_key: bytes,
    random: Random = random_bytes,
) -> RatchetState:
    """RatchetInitBob with ``own``, then the DH step for the initiator's ratchet key."""
    start = RatchetState(ad, shared_key, own[0], own[1], None, None, None, 0, 0, 0)
    return _dh_ratchet(start, peer_ratchet_key, random)


def _dh_ratchet(state: RatchetState, dh: bytes, random: Random) -> RatchetState:
    root_key, ckr = kdf_rk(state.root_key, x25519(state.dhs_secret, dh))
    secret, public = generate_dh(random)
    root_key, cks = kdf_rk(root_key, x25519(secret, dh))
    history = state.previous_dhr if state.dhr is None else (*state.previous_dhr, state.dhr)
    return replace(
        state,
        root_key=root_key,
        dhs_secret=secret,
        dhs_public=public,
        dhr=dh,
        cks=cks,
        ckr=ckr,
        pn=state.ns,
        ns=0,
        nr=0,
        previous_dhr=history[-HISTORY:],
    )


def _seal(message_key: bytes, plaintext: bytes, ad: bytes) -> bytes:
    return aead_encrypt(message_key, MESSAGE_NONCE, plaintext, ad)


def _open(message_key: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    return aead_decrypt(message_key, MESSAGE_NONCE, ciphertext, ad)


def encrypt(
    state: RatchetState, plaintext: bytes, ad: bytes = b""
) -> tuple[RatchetState, Header, bytes]:
    """RatchetEncrypt: ``(new state, header, ciphertext)``; ``state`` is unchanged."""
    s = state
    if s.cks is None:
        raise UsageError("this ratchet state has no sending chain (not from init_*)")
    cks, message_key = kdf_ck(s.cks)
    header = Header(s.dhs_public, s.pn, s.ns)
    ciphertext = _seal(message_key, plaintext, s.ad + header.encode() + ad)
    # Positional construction: dataclasses.replace costs more than the AEAD here.
    new = RatchetState(
        s.ad,
        s.root_key,
        s.dhs_secret,
        s.dhs_public,
        s.dhr,
        cks,
        s.ckr,
        s.ns + 1,
        s.nr,
        s.pn,
        s.skipped,
        s.previous_dhr,
    )
    return new, header, ciphertext


def _expire(skipped: SkippedKeys, now_ms: int, ttl_ms: int) -> SkippedKeys:
    """Drop keys older than the TTL (oldest first, so stop at the first fresh one)."""
    drop = 0
    for _mk, stored_ms in skipped.values():
        if now_ms - stored_ms < ttl_ms:
            break
        drop += 1
    if not drop:
        return skipped
    return MappingProxyType(dict(list(skipped.items())[drop:]))


def _skip(
    dh: bytes | None,
    chain_key: bytes | None,
    nr: int,
    until: int,
    limits: Limits,
    found: list[tuple[tuple[bytes, int], bytes]],
) -> tuple[bytes | None, int]:
    """SkipMessageKeys: derive the keys ``nr .. until-1`` of one receiving chain."""
    if until - nr > limits.max_skip:
        raise TooManySkipped(
            f"the header skips {until - nr} message keys in one chain; the bound is "
            f"{limits.max_skip}"
        )
    if chain_key is None or dh is None:
        return chain_key, nr
    while nr < until:
        chain_key, message_key = kdf_ck(chain_key)
        found.append(((dh, nr), message_key))
        nr += 1
    return chain_key, nr


def _merge(
    skipped: SkippedKeys, found: list[tuple[tuple[bytes, int], bytes]], now_ms: int, limits: Limits
) -> SkippedKeys:
    if not found:
        return skipped
    merged = dict(skipped)
    merged.update((key, (mk, now_ms)) for key, mk in found)
    excess = len(merged) - limits.max_skipped
    if excess > 0:
        merged = dict(list(merged.items())[excess:])
    return MappingProxyType(merged)


def decrypt(
    state: RatchetState,
    header: Header,
    ciphertext: bytes,
    ad: bytes = b"",
    *,
    now_ms: int,
    limits: Limits = DEFAULT_LIMITS,
    random: Random = random_bytes,
) -> tuple[RatchetState, bytes]:
    """RatchetDecrypt: ``(new state, plaintext)``; ``state`` is unchanged, also on error.

    Raises ``DecryptionFailed`` (tag), ``TooManySkipped``, ``MessageKeyUnavailable``
    (duplicate, expired or evicted key) or ``LowOrderKey`` (a header key of low order).
    """
    full_ad = state.ad + header.encode() + ad
    skipped = _expire(state.skipped, now_ms, limits.skipped_ttl_ms)
    held = skipped.get((header.dh, header.n))
    if held is not None:
        plaintext = _open(held[0], ciphertext, full_ad)
        rest = dict(skipped)
        del rest[(header.dh, header.n)]
        return replace(state, skipped=MappingProxyType(rest)), plaintext
    found: list[tuple[tuple[bytes, int], bytes]] = []
    work = state
    if header.dh != state.dhr:
        if header.dh in state.previous_dhr:
            raise MessageKeyUnavailable(
                f"message {header.n} of an earlier receiving chain has no key left: "
                "a duplicate, or its skipped key expired"
            )
        ckr, nr = _skip(state.dhr, state.ckr, state.nr, header.pn, limits, found)
        work = _dh_ratchet(replace(state, ckr=ckr, nr=nr), header.dh, random)
    elif state.ckr is None:
        raise DecryptionFailed("no message was ever sent under this ratchet key")
    elif header.n < state.nr:
        raise MessageKeyUnavailable(
            f"message {header.n} of this chain was already decrypted (or its key expired)"
        )
    ckr, nr = _skip(work.dhr, work.ckr, work.nr, header.n, limits, found)
    assert ckr is not None  # a receiving chain exists after the checks above
    ckr, message_key = kdf_ck(ckr)
    plaintext = _open(message_key, ciphertext, full_ad)
    w = work
    new = RatchetState(
        w.ad,
        w.root_key,
        w.dhs_secret,
        w.dhs_public,
        w.dhr,
        w.cks,
        ckr,
        w.ns,
        nr + 1,
        w.pn,
        _merge(skipped, found, now_ms, limits),
        w.previous_dhr,
    )
    return new, plaintext


__all__ = [
    "DEFAULT_LIMITS",
    "HISTORY",
    "Header",
    "Limits",
    "RatchetState",
    "decode_header",
    "decrypt",
    "encrypt",
    "generate_dh",
    "init_initiator",
    "init_responder",
    "read_header",
]
