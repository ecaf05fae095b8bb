"""The Double Ratchet (Signal spec rev. 1, sections 3.2-3.5) as pure functions on frozen states.

Why functional: :func:`encrypt` and :func:`decrypt` return a NEW :class:`RatchetState`
and never change the one passed in.  The owner of a channel's state
(:mod:`volli_nb.core.crypto.channel_keys`) adopts a decrypt's state only once the message
it opened is stored: "wait for the message to be stored before deleting its key".  A
failed decrypt raises and leaves nothing to undo (the spec's "state changes are
discarded").

The algorithm is the spec's, step for step (``RatchetEncrypt``, ``RatchetDecrypt``,
``TrySkippedMessageKeys``, ``SkipMessageKeys``, ``DHRatchet``), on X25519 (libsodium)
and the KDFs of :mod:`volli_nb.core.crypto.kdf`.  Its associated data is
``CONCAT(AD, header)``: ``state.ad`` (the 32-byte session id from the handshake), the
encoded header, then the caller's own associated data (the envelope passes its header and
ciphertext digest).

ENCRYPT is misuse-resistant (:mod:`volli_nb.core.crypto.message_key`): a message key
used twice shows only whether the two messages were equal.

Choices the spec leaves open:

- **Bounds and work** (:mod:`volli_nb.core.crypto.ratchet_limits`): skipped keys are
  bounded per chain, in all, and in time (:func:`expire`, which the owner of a state
  calls on a timer); one frame's decrypts share a :class:`WorkBudget`.  A message whose
  key is gone raises :class:`MessageKeyUnavailable`.
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
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from volli_nb.base.errors import (
    DecryptionFailed,
    MalformedRatchetHeader,
    MessageKeyUnavailable,
    UsageError,
)
from volli_nb.core.crypto.kdf import kdf_ck, kdf_rk
from volli_nb.core.crypto.message_key import open_with_key, seal_with_key
from volli_nb.core.crypto.primitives import KEY_BYTES, Random, random_bytes, x25519, x25519_public
from volli_nb.core.crypto.ratchet_limits import (
    DEFAULT_LIMITS,
    MAX_DH_STEPS_PER_FRAME,
    Found,
    Limits,
    SkippedKeys,
    WorkBudget,
    expire_skipped,
    merge_skipped,
    skip_keys,
)
from volli_nb.core.crypto.wire import Reader, as_bytes, uvarint

HISTORY = 4  # previous receiving ratchet keys remembered to name duplicates
MAX_CHAIN = 2**32 - 1  # n and pn in a header
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


def encrypt(
    state: RatchetState, plaintext: bytes, ad: bytes = b""
) -> tuple[RatchetState, Header, bytes]:
    """RatchetEncrypt: ``(new state, header, ciphertext)``; ``state`` is unchanged."""
    s = state
    if s.cks is None:
        raise UsageError("this ratchet state has no sending chain (not from init_*)")
    cks, message_key = kdf_ck(s.cks)
    header = Header(s.dhs_public, s.pn, s.ns)
    ciphertext = seal_with_key(message_key, plaintext, s.ad + header.encode() + ad)
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


def expire(state: RatchetState, now_ms: int, limits: Limits = DEFAULT_LIMITS) -> RatchetState:
    """The state without its skipped keys older than ``limits.skipped_ttl_ms`` (the owner
    calls this on a timer, so an idle side does not keep them for ever)."""
    skipped = expire_skipped(state.skipped, now_ms, limits.skipped_ttl_ms)
    return state if skipped is state.skipped else replace(state, skipped=skipped)


def decrypt(
    state: RatchetState,
    header: Header,
    ciphertext: bytes,
    ad: bytes = b"",
    *,
    now_ms: int,
    limits: Limits = DEFAULT_LIMITS,
    random: Random = random_bytes,
    budget: WorkBudget | None = None,
) -> tuple[RatchetState, bytes]:
    """RatchetDecrypt: ``(new state, plaintext)``; ``state`` is unchanged, also on error.

    Raises ``DecryptionFailed`` (tag), ``TooManySkipped`` (also when ``budget``, shared
    by one frame's decrypts, would be exceeded), ``MessageKeyUnavailable`` (duplicate,
    expired or evicted key) or ``LowOrderKey`` (a header key of low order).
    """
    full_ad = state.ad + header.encode() + ad
    skipped = expire_skipped(state.skipped, now_ms, limits.skipped_ttl_ms)
    if (header.dh, header.n) in skipped:
        return _from_skipped(state, skipped, header, ciphertext, full_ad)
    found: Found = []
    work = state
    if header.dh != state.dhr:
        if header.dh in state.previous_dhr:
            raise MessageKeyUnavailable(
                f"message {header.n} of an earlier receiving chain has no key left: "
                "a duplicate, or its skipped key expired"
            )
        ckr, nr = skip_keys(state.dhr, state.ckr, state.nr, header.pn, limits, found, budget)
        if budget is not None:
            budget.spend_dh_step()
        work = _dh_ratchet(replace(state, ckr=ckr, nr=nr), header.dh, random)
    elif state.ckr is None:
        raise DecryptionFailed("no message was ever sent under this ratchet key")
    elif header.n < state.nr:
        raise MessageKeyUnavailable(
            f"message {header.n} of this chain was already decrypted (or its key expired)"
        )
    ckr, nr = skip_keys(work.dhr, work.ckr, work.nr, header.n, limits, found, budget)
    assert ckr is not None  # a receiving chain exists after the checks above
    if budget is not None:
        budget.spend_keys(1)
    ckr, message_key = kdf_ck(ckr)
    plaintext = open_with_key(message_key, ciphertext, full_ad)
    w = work
    merged = merge_skipped(skipped, found, now_ms, limits)
    # Positional construction: dataclasses.replace costs more than the AEAD here.
    new = RatchetState(
        w.ad, w.root_key, w.dhs_secret, w.dhs_public, w.dhr, w.cks, ckr, w.ns, nr + 1, w.pn,
        merged, w.previous_dhr,
    )  # fmt: skip
    return new, plaintext


def _from_skipped(
    state: RatchetState, skipped: SkippedKeys, header: Header, ciphertext: bytes, full_ad: bytes
) -> tuple[RatchetState, bytes]:
    """TrySkippedMessageKeys: a held key opens its message and is deleted."""
    plaintext = open_with_key(skipped[(header.dh, header.n)][0], ciphertext, full_ad)
    rest = dict(skipped)
    del rest[(header.dh, header.n)]
    return replace(state, skipped=MappingProxyType(rest)), plaintext


__all__ = [
    "DEFAULT_LIMITS",
    "HISTORY",
    "MAX_DH_STEPS_PER_FRAME",
    "Header",
    "Limits",
    "RatchetState",
    "WorkBudget",
    "decode_header",
    "decrypt",
    "encrypt",
    "expire",
    "generate_dh",
    "init_initiator",
    "init_responder",
    "read_header",
]
