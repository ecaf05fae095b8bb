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
and the KDFs of :mod:`volli_nb.core.crypto.kdf`.  Its associated data is
``CONCAT(AD, header)``: ``state.ad`` (the 32-byte session id from the handshake), the
encoded header, then the caller's own associated data (the envelope passes its header and
ciphertext digest).

ENCRYPT is misuse-resistant (SIV-style), as defence in depth: each message key should
encrypt exactly once, but a bug or a rolled-back state could use one twice, and with a
fixed nonce two plaintexts under one key give away their XOR (with one known, the
other).  So the message key is split by BLAKE2b into an AEAD key and a nonce key, the
24-byte nonce is ``BLAKE2b(nonce key, len(ad) | ad | plaintext)``, sent in front of the
XChaCha20-Poly1305 ciphertext, and checked again after decryption.  A reused key then
shows only whether two messages were equal: different inputs get different nonces,
equal inputs the same bytes.  The cost is 24 bytes per key wrap.

Choices the spec leaves open:

- **Bounds** (:class:`Limits`): at most ``max_skip`` keys skipped in one chain per
  message (more raises :class:`TooManySkipped`, the spec's MAX_SKIP), at most
  ``max_skipped`` held in all (oldest evicted first), each kept ``skipped_ttl_ms``
  after it was derived (dropped by :func:`expire`, which the owner of a state calls on a
  timer, and by every decrypt; a clock that went back cannot keep a key longer).  A
  message whose key is gone raises :class:`MessageKeyUnavailable`.
- **Work per frame** (:class:`WorkBudget`): one received frame may hold hundreds of
  envelopes, each asking for up to ``max_skip`` derivations and a DH step.  A budget
  shared by the frame's decrypts caps what it can cost (counted in keys derived and DH
  steps, checked *before* deriving), so a hostile bundle is refused within the cap.
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
import hmac
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
    AEAD_NONCE_BYTES,
    KEY_BYTES,
    Random,
    aead_decrypt,
    aead_encrypt,
    random_bytes,
    x25519,
    x25519_public,
)
from volli_nb.core.crypto.wire import Reader, as_bytes, uvarint

SkippedKeys = Mapping[tuple[bytes, int], tuple[bytes, int]]  # (dh, n) -> (mk, stored_ms)

HISTORY = 4  # previous receiving ratchet keys remembered to name duplicates
MAX_CHAIN = 2**32 - 1  # n and pn in a header
_AEAD_PERSON = b"volli-mk-aead"
_NONCE_PERSON = b"volli-mk-nonce"
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


class WorkBudget:
    """What the decrypts of one received frame may still cost (see the module docstring).

    A genuine frame derives one key per envelope, plus the keys of messages it skipped
    (at most ``max_skip`` per chain), and takes one DH step per new ratchet key of the
    sender, a handful at most."""

    __slots__ = ("dh_steps", "keys")

    def __init__(self, keys: int, dh_steps: int) -> None:
        self.keys, self.dh_steps = keys, dh_steps

    @classmethod
    def for_frame(cls, envelopes: int, limits: Limits = DEFAULT_LIMITS) -> WorkBudget:
        return cls(keys=envelopes + limits.max_skip, dh_steps=MAX_DH_STEPS_PER_FRAME)

    def spend_keys(self, count: int) -> None:
        if count > self.keys:
            raise TooManySkipped(
                f"this frame would derive {count} more message keys, past its cap "
                f"({self.keys} left); refused before deriving"
            )
        self.keys -= count

    def spend_dh_step(self) -> None:
        if self.dh_steps <= 0:
            raise TooManySkipped("this frame asks for more DH ratchet steps than a frame may take")
        self.dh_steps -= 1


MAX_DH_STEPS_PER_FRAME = 32


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


def _split(message_key: bytes) -> tuple[bytes, bytes]:
    """The message key's AEAD key and nonce key (independent, by personalisation)."""
    aead_key = hashlib.blake2b(b"", digest_size=32, key=message_key, person=_AEAD_PERSON).digest()
    nonce_key = hashlib.blake2b(b"", digest_size=32, key=message_key, person=_NONCE_PERSON)
    return aead_key, nonce_key.digest()


def _nonce(nonce_key: bytes, plaintext: bytes, ad: bytes) -> bytes:
    data = len(ad).to_bytes(8, "big") + ad + plaintext
    return hashlib.blake2b(data, digest_size=AEAD_NONCE_BYTES, key=nonce_key).digest()


def seal_with_key(message_key: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """ENCRYPT (see the module docstring): ``nonce | XChaCha20-Poly1305 ciphertext``."""
    aead_key, nonce_key = _split(message_key)
    nonce = _nonce(nonce_key, plaintext, ad)
    return nonce + aead_encrypt(aead_key, nonce, plaintext, ad)


def open_with_key(message_key: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    """DECRYPT: the tag, then the nonce recomputed from what it opened (DecryptionFailed)."""
    if len(ciphertext) < AEAD_NONCE_BYTES:
        raise DecryptionFailed("a ratchet ciphertext starts with its 24-byte nonce")
    aead_key, nonce_key = _split(message_key)
    nonce = ciphertext[:AEAD_NONCE_BYTES]
    plaintext = aead_decrypt(aead_key, nonce, ciphertext[AEAD_NONCE_BYTES:], ad)
    if not hmac.compare_digest(nonce, _nonce(nonce_key, plaintext, ad)):
        raise DecryptionFailed("the nonce is not the one its message key and content give")
    return plaintext


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


def _expire(skipped: SkippedKeys, now_ms: int, ttl_ms: int) -> SkippedKeys:
    """Drop keys older than the TTL.  A key stamped in the future (the clock went back)
    is re-stamped ``now_ms``, so it expires one TTL from now, not one TTL after a time
    that may never come."""
    if not skipped:
        return skipped
    stamps = [stored_ms for _mk, stored_ms in skipped.values()]
    if now_ms - stamps[0] < ttl_ms and max(stamps) <= now_ms:
        return skipped  # nothing expired, nothing stamped in the future (the usual case)
    kept: dict[tuple[bytes, int], tuple[bytes, int]] = {}
    changed = False
    for key, (mk, stored_ms) in skipped.items():
        if stored_ms > now_ms:
            stored_ms, changed = now_ms, True
        if now_ms - stored_ms >= ttl_ms:
            changed = True
            continue
        kept[key] = (mk, stored_ms)
    return MappingProxyType(kept) if changed else skipped


def expire(state: RatchetState, now_ms: int, limits: Limits = DEFAULT_LIMITS) -> RatchetState:
    """The state without its skipped keys older than ``limits.skipped_ttl_ms`` (the owner
    calls this on a timer, so an idle side does not keep them for ever)."""
    skipped = _expire(state.skipped, now_ms, limits.skipped_ttl_ms)
    return state if skipped is state.skipped else replace(state, skipped=skipped)


def _skip(
    dh: bytes | None,
    chain_key: bytes | None,
    nr: int,
    until: int,
    limits: Limits,
    found: list[tuple[tuple[bytes, int], bytes]],
    budget: WorkBudget | None,
) -> tuple[bytes | None, int]:
    """SkipMessageKeys: derive the keys ``nr .. until-1`` of one receiving chain."""
    if until - nr > limits.max_skip:
        raise TooManySkipped(
            f"the header skips {until - nr} message keys in one chain; the bound is "
            f"{limits.max_skip}"
        )
    if chain_key is None or dh is None:
        return chain_key, nr
    if budget is not None and until > nr:
        budget.spend_keys(until - nr)
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
    budget: WorkBudget | None = None,
) -> tuple[RatchetState, bytes]:
    """RatchetDecrypt: ``(new state, plaintext)``; ``state`` is unchanged, also on error.

    Raises ``DecryptionFailed`` (tag), ``TooManySkipped`` (also when ``budget``, shared
    by one frame's decrypts, would be exceeded), ``MessageKeyUnavailable`` (duplicate,
    expired or evicted key) or ``LowOrderKey`` (a header key of low order).
    """
    full_ad = state.ad + header.encode() + ad
    skipped = _expire(state.skipped, now_ms, limits.skipped_ttl_ms)
    held = skipped.get((header.dh, header.n))
    if held is not None:
        plaintext = open_with_key(held[0], ciphertext, full_ad)
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
        ckr, nr = _skip(state.dhr, state.ckr, state.nr, header.pn, limits, found, budget)
        if budget is not None:
            budget.spend_dh_step()
        work = _dh_ratchet(replace(state, ckr=ckr, nr=nr), header.dh, random)
    elif state.ckr is None:
        raise DecryptionFailed("no message was ever sent under this ratchet key")
    elif header.n < state.nr:
        raise MessageKeyUnavailable(
            f"message {header.n} of this chain was already decrypted (or its key expired)"
        )
    ckr, nr = _skip(work.dhr, work.ckr, work.nr, header.n, limits, found, budget)
    assert ckr is not None  # a receiving chain exists after the checks above
    if budget is not None:
        budget.spend_keys(1)
    ckr, message_key = kdf_ck(ckr)
    plaintext = open_with_key(message_key, ciphertext, full_ad)
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
    "open_with_key",
    "read_header",
    "seal_with_key",
]
