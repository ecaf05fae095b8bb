"""The Double Ratchet: pure transitions, bounds, duplicates, forward secrecy and healing."""

from __future__ import annotations

import dataclasses
import random

import nacl.bindings
import pytest
from session_pairs import NOW, identities, make_pair

from volli_nb.base.errors import (
    DecryptionFailed,
    LowOrderKey,
    MalformedRatchetHeader,
    MessageKeyUnavailable,
    TooManySkipped,
    UsageError,
)
from volli_nb.core.crypto import kdf, message_key, ratchet
from volli_nb.core.crypto.primitives import AEAD_NONCE_BYTES
from volli_nb.core.crypto.ratchet import Header, Limits, RatchetState, decrypt, encrypt
from volli_nb.core.crypto.ratchet_state import encode_state

ALICE, BOB = identities(11, 2)
rng = random.Random(5)


def fresh() -> tuple[RatchetState, RatchetState]:
    pair = make_pair(ALICE, BOB, seed=rng.randrange(1 << 30))
    return pair.initiator, pair.responder


def send(state: RatchetState, text: bytes) -> tuple[RatchetState, tuple[Header, bytes]]:
    new, header, ciphertext = encrypt(state, text)
    return new, (header, ciphertext)


def recv(
    state: RatchetState, message: tuple[Header, bytes], now: int = NOW, **kw: object
) -> tuple[RatchetState, bytes]:
    return decrypt(state, *message, now_ms=now, random=rng.randbytes, **kw)  # type: ignore[arg-type]


def test_a_conversation_in_both_directions() -> None:
    a, b = fresh()
    for i in range(5):
        for _ in range(i):  # bursts of different lengths
            a, msg = send(a, b"a%d" % i)
            b, plain = recv(b, msg)
            assert plain == b"a%d" % i
        b, msg = send(b, b"b%d" % i)
        a, plain = recv(a, msg)
        assert plain == b"b%d" % i


def test_transitions_are_pure() -> None:
    a, b = fresh()
    before_a, before_b = encode_state(a), encode_state(b)
    a2, msg = send(a, b"x")
    b2, _ = recv(b, msg)
    assert encode_state(a) == before_a and encode_state(b) == before_b
    assert a2 != a and b2 != b
    with pytest.raises(AttributeError):
        b.ns = 5  # type: ignore[misc]


def test_a_crash_before_commit_lets_the_message_decrypt_again() -> None:
    """The receiver decrypted but never stored the new state: the old one still works."""
    a, b = fresh()
    a, msg = send(a, b"stored exactly once")
    _lost, first = recv(b, msg)
    b, again = recv(b, msg)  # redelivered after the restart, from the old (committed) state
    assert first == again == b"stored exactly once"
    with pytest.raises(MessageKeyUnavailable):
        recv(b, msg)  # after the commit the key is gone


def test_a_dh_step_every_round_trip() -> None:
    a, b = fresh()
    history_a, history_b = [a.dhs_public], [b.dhs_public]
    for _ in range(4):
        a, msg = send(a, b"ping")
        b, _ = recv(b, msg)
        b, msg = send(b, b"pong")
        a, _ = recv(a, msg)
        history_a.append(a.dhs_public)
        history_b.append(b.dhs_public)
    # Alice's key is new after every round trip; Bob's from the second one on (his first
    # step happened in the handshake, on Alice's hello ratchet key).
    assert len(set(history_a)) == 5
    assert history_b[0] == history_b[1] and len(set(history_b)) == 4
    assert not set(history_a) & set(history_b)


def test_out_of_order_within_the_bound() -> None:
    a, b = fresh()
    msgs = []
    for i in range(6):
        a, msg = send(a, b"%d" % i)
        msgs.append(msg)
    for i in (5, 0, 3, 1, 4, 2):
        b, plain = recv(b, msgs[i])
        assert plain == b"%d" % i
    assert not b.skipped


def test_skipping_more_than_the_bound_raises() -> None:
    limits = Limits(max_skip=3, max_skipped=10)
    a, b = fresh()
    msgs = []
    for _ in range(5):
        a, msg = send(a, b"m")
        msgs.append(msg)
    with pytest.raises(TooManySkipped):
        recv(b, msgs[4], limits=limits)  # would skip 4 > 3
    b, _ = recv(b, msgs[3], limits=limits)  # skips exactly 3
    assert len(b.skipped) == 3


def test_the_previous_chain_length_is_bounded_too() -> None:
    limits = Limits(max_skip=2, max_skipped=10)
    a, b = fresh()
    for _ in range(3):
        a, _unsent = send(a, b"never delivered")
    b, msg = send(b, b"b")
    a, _ = recv(a, msg)
    a, msg = send(a, b"new chain, pn=3")
    assert msg[0].pn == 3
    with pytest.raises(TooManySkipped):
        recv(b, msg, limits=limits)


def test_the_total_bound_evicts_the_oldest_keys() -> None:
    limits = Limits(max_skip=4, max_skipped=5)
    a, b = fresh()
    chain1 = []
    for _ in range(4):
        a, msg = send(a, b"one")
        chain1.append(msg)
    b, _ = recv(b, chain1[3], limits=limits)  # 3 skipped: n=0,1,2
    b, msg = send(b, b"turn")
    a, _ = recv(a, msg)
    chain2 = []
    for _ in range(4):
        a, msg = send(a, b"two")
        chain2.append(msg)
    b, _ = recv(b, chain2[3], limits=limits)  # 3 more: 6 > 5, the oldest goes
    assert len(b.skipped) == 5
    with pytest.raises(MessageKeyUnavailable):
        recv(b, chain1[0], limits=limits)
    for msg in (chain1[1], chain1[2], chain2[0], chain2[1], chain2[2]):
        b, plain = recv(b, msg, limits=limits)
        assert plain in (b"one", b"two")


def test_skipped_keys_expire() -> None:
    limits = Limits(skipped_ttl_ms=1000)
    a, b = fresh()
    a, early = send(a, b"late")
    a, later = send(a, b"on time")
    b, _ = recv(b, later, now=NOW, limits=limits)
    assert len(b.skipped) == 1
    assert recv(b, early, now=NOW + 999, limits=limits)[1] == b"late"
    with pytest.raises(MessageKeyUnavailable):
        recv(b, early, now=NOW + 1000, limits=limits)
    # Expiry is committed with the next successful decrypt.
    a, third = send(a, b"third")
    b, _ = recv(b, third, now=NOW + 1000, limits=limits)
    assert not b.skipped


def test_duplicates_of_earlier_chains_are_named() -> None:
    a, b = fresh()
    a, old = send(a, b"old chain")
    b, _ = recv(b, old)
    for round_trip in range(1, ratchet.HISTORY + 2):
        b, msg = send(b, b"b")
        a, _ = recv(a, msg)
        a, msg = send(a, b"a")
        b, _ = recv(b, msg)
        if round_trip <= ratchet.HISTORY:  # the old chain's key is still remembered
            with pytest.raises(MessageKeyUnavailable):
                recv(b, old)
        else:  # forgotten: the spec's bogus DH step, and its failed decryption
            with pytest.raises(DecryptionFailed):
                recv(b, old)


def test_tampering_is_a_decryption_failure_and_changes_nothing() -> None:
    a, b = fresh()
    a, (header, ciphertext) = send(a, b"x")
    bad = [
        (header, ciphertext[:-1] + bytes([ciphertext[-1] ^ 1])),
        (dataclasses.replace(header, pn=header.pn + 1), ciphertext),
        (dataclasses.replace(header, n=header.n + 1), ciphertext),
    ]
    for msg in bad:
        with pytest.raises(DecryptionFailed):
            recv(b, msg)
    with pytest.raises(DecryptionFailed):
        recv(b, (header, ciphertext), ad=b"other associated data")
    assert recv(b, (header, ciphertext))[1] == b"x"


def test_a_low_order_ratchet_key_is_refused() -> None:
    a, b = fresh()
    a, (header, ciphertext) = send(a, b"x")
    with pytest.raises(LowOrderKey):
        recv(b, (dataclasses.replace(header, dh=bytes(32)), ciphertext))


def test_post_compromise_a_copied_state_stops_decrypting_after_one_round_trip() -> None:
    a, b = fresh()
    for _ in range(2):
        a, msg = send(a, b"warm up")
        b, _ = recv(b, msg)
        b, msg = send(b, b"warm up")
        a, _ = recv(a, msg)
    stolen = b  # the attacker copies Bob's whole state (passively)
    a, msg = send(a, b"still readable")
    stolen_after, plain = recv(stolen, msg)
    assert plain == b"still readable"  # no healing before the next round trip
    b, _ = recv(b, msg)
    b, msg = send(b, b"bob's fresh ratchet key")
    a, _ = recv(a, msg)
    a, msg = send(a, b"healed")
    b, plain = recv(b, msg)
    assert plain == b"healed"
    for copy in (stolen, stolen_after):
        with pytest.raises(DecryptionFailed):
            recv(copy, msg)


def _derivable(state: RatchetState, steps: int) -> set[bytes]:
    """Every message key the state's chain keys could still produce."""
    keys = {mk for mk, _ in state.skipped.values()}
    for chain in (state.ckr, state.cks):
        while chain is not None and steps:
            chain, mk = kdf.kdf_ck(chain)
            keys.add(mk)
            steps -= 1
    return keys


def test_forward_secrecy_old_message_keys_cannot_be_rederived() -> None:
    a, b = fresh()
    used: list[bytes] = []
    for i in range(3):
        for _ in range(3):
            assert a.cks is not None
            used.append(kdf.kdf_ck(a.cks)[1])  # the key this message will use
            a, msg = send(a, b"%d" % i)
            b, _ = recv(b, msg)
        b, msg = send(b, b"reply")
        a, _ = recv(a, msg)
    snapshot = encode_state(b)
    derivable = _derivable(b, 500)
    for mk in used:
        assert mk not in snapshot and mk not in derivable
    # Even the current chain: after decrypting message n, its key is gone too.
    a, msg = send(a, b"last")
    b, _ = recv(b, msg)
    with pytest.raises(MessageKeyUnavailable):
        recv(b, msg)


def test_header_encoding_is_strict() -> None:
    header = Header(bytes(range(32)), 300, 5)
    assert ratchet.decode_header(header.encode()) == header
    assert header.encode() == bytes(range(32)) + b"\xac\x02\x05"
    for bad in (
        header.encode()[:-1],  # n missing
        header.encode() + b"\x00",  # trailing
        bytes(range(32)) + b"\xac\x82\x00\x05",  # non-minimal pn
        bytes(31),
        bytes(32) + b"\x80\x80\x80\x80\x80\x01\x00",  # pn beyond 2**32-1
    ):
        with pytest.raises(MalformedRatchetHeader):
            ratchet.decode_header(bad)
    with pytest.raises(UsageError):
        ratchet.decode_header(header.encode().hex())  # type: ignore[arg-type]


def test_limits_are_checked() -> None:
    for bad in ({"max_skip": 5, "max_skipped": 4}, {"max_skip": -1}, {"skipped_ttl_ms": 0}):
        with pytest.raises(UsageError):
            Limits(**bad)  # type: ignore[arg-type]


def test_repr_shows_no_keys() -> None:
    a, _ = fresh()
    text = repr(a)
    assert a.root_key.hex() not in text and a.dhs_secret.hex()[:8] not in text
    assert "ns=0" in text


def test_to_dict_shows_chains_advance_without_keys() -> None:
    a, b = fresh()
    before = a.to_dict()
    a, msg = send(a, b"x")
    after = a.to_dict()
    assert before["sending_chain"] != after["sending_chain"] and after["ns"] == 1
    assert before["root_key"] == after["root_key"]
    b, _ = recv(b, msg)
    shown = repr(b.to_dict()) + repr(a.to_dict())
    for secret in (a.root_key, a.dhs_secret, a.cks, b.ckr, b.root_key):
        assert secret is not None and secret.hex() not in shown


# --- a reused message key leaks only equality (defence in depth) ---------------------


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def test_a_reused_message_key_shows_only_whether_two_messages_were_equal() -> None:
    """A rolled-back state encrypts twice under one message key.  Under the old fixed
    nonce the two keystreams were equal, so one known plaintext gave the other; under
    the synthetic nonce they are not, and equal inputs give equal bytes (equality only)."""
    initiator, _ = fresh()
    k1, k2 = b"\x11" * 32, b"\x22" * 32  # what envelopes wrap: content keys
    _, h1, c1 = encrypt(initiator, k1, b"ad")
    _, h2, c2 = encrypt(initiator, k2, b"ad")  # the same state again: the same message key
    assert (h1.dh, h1.n) == (h2.dh, h2.n)
    n1, n2 = c1[:AEAD_NONCE_BYTES], c2[:AEAD_NONCE_BYTES]
    assert n1 != n2
    body1, body2 = c1[len(n1) : len(n1) + 32], c2[len(n2) : len(n2) + 32]
    assert _xor(_xor(body1, body2), k1) != k2  # the known-plaintext attack fails
    _, _, c3 = encrypt(initiator, k1, b"ad")
    assert c3 == c1  # the same input: the same bytes, nothing more learned
    # The control: with the fixed zero nonce the attack recovers k2 from k1.
    mk = kdf.kdf_ck(initiator.cks)[1]  # type: ignore[arg-type]
    old1 = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(k1, b"ad", bytes(24), mk)
    old2 = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(k2, b"ad", bytes(24), mk)
    assert _xor(_xor(old1[:32], old2[:32]), k1) == k2


def test_a_nonce_that_is_not_the_derived_one_is_refused() -> None:
    initiator, responder = fresh()
    _, header, ciphertext = encrypt(initiator, b"hello", b"")
    mk = kdf.kdf_ck(initiator.cks)[1]  # type: ignore[arg-type]
    aead_key, _ = message_key.split(mk)
    other = b"\x00" * 24  # a valid AEAD encryption, under a nonce of the sender's choosing
    full_ad = initiator.ad + header.encode()
    forged = other + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        b"hello", full_ad, other, aead_key
    )
    assert forged != ciphertext
    with pytest.raises(DecryptionFailed, match="nonce"):
        decrypt(responder, header, forged, now_ms=NOW)


def test_skipped_keys_expire_on_the_owners_timer_and_a_clock_that_went_back_keeps_none() -> None:
    alice, bob = fresh()
    alice, first = send(alice, b"one")
    alice, _lost = send(alice, b"two")
    alice, third = send(alice, b"three")
    bob, _ = recv(bob, first)
    bob, _ = recv(bob, third, now=NOW)  # holds the key for "two"
    assert len(bob.skipped) == 1
    ttl = ratchet.DEFAULT_LIMITS.skipped_ttl_ms
    assert ratchet.expire(bob, NOW + ttl - 1) is bob  # nothing expired: the same state
    assert ratchet.expire(bob, NOW + ttl).skipped == {}
    # The clock went back a day: the key is re-stamped now, and expires one TTL later.
    back = NOW - 24 * 3600 * 1000
    restamped = ratchet.expire(bob, back)
    assert len(restamped.skipped) == 1
    assert ratchet.expire(restamped, back + ttl).skipped == {}
