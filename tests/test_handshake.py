"""The session handshake: both sides agree, and every lie is refused with its own error."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Callable

import pytest
from session_pairs import NOW, cert, identities, make_pair, start_pair

from volli_nb.base.errors import (
    BadSignature,
    ChannelBindingFailed,
    DecryptionFailed,
    KeyMismatch,
    LowOrderKey,
    MalformedHandshake,
    PeerError,
    UnknownPeer,
    UsageError,
    VolliError,
)
from volli_nb.core.crypto import Identity, ratchet, x25519
from volli_nb.core.crypto import handshake as hs
from volli_nb.core.crypto.kdf import hkdf

ALICE, BOB, CAROL = identities(5, 3)
# Bob's identity key with another device key that Bob really signed.
BOB_OTHER_DEVICE = Identity(BOB.to_secret_bytes()[:32], bytes(range(32)))


def test_both_sides_derive_one_session() -> None:
    pair = make_pair(ALICE, BOB)
    ra, rb = pair.result_a, pair.result_b
    assert ra.session_id == rb.session_id == ra.state.ad == rb.state.ad
    assert ra.initiator != rb.initiator
    assert (ra.peer, rb.peer) == (BOB.public, ALICE.public)
    assert len(pair.pending_a.hello) == hs.HELLO_BYTES == 289
    # Each side can send first, and each message opens on the other side.
    for sender, receiver in ((ra.state, rb.state), (rb.state, ra.state)):
        _, header, ciphertext = ratchet.encrypt(sender, b"first")
        _, plain = ratchet.decrypt(receiver, header, ciphertext, now_ms=NOW)
        assert plain == b"first"


def test_the_initiator_is_the_lower_key_on_both_sides() -> None:
    for a, b in ((ALICE, BOB), (BOB, ALICE), (CAROL, ALICE)):
        pair = make_pair(a, b)
        lower = min((a, b), key=lambda i: (i.public.identity_key, i.public.device_key))
        assert pair.result_a.initiator == (lower is a)


def test_deterministic_given_injected_randomness() -> None:
    first, again, other = (
        make_pair(ALICE, BOB, 3),
        make_pair(ALICE, BOB, 3),
        make_pair(ALICE, BOB, 4),
    )
    assert first.pending_a.hello == again.pending_a.hello
    assert first.result_a.session_id == again.result_a.session_id
    assert first.result_a.state == again.result_a.state
    assert other.result_a.session_id != first.result_a.session_id


def test_all_randomness_comes_from_the_injected_source() -> None:
    asked: list[int] = []
    rng = random.Random(1)

    def counting(n: int) -> bytes:
        asked.append(n)
        return rng.randbytes(n)

    pa = hs.start(
        ALICE,
        BOB.public,
        local_certificate=cert("a"),
        remote_certificate=cert("b"),
        random=counting,
    )
    assert asked == [32, 32]  # ephemeral, ratchet key
    _, pb = start_pair(ALICE, BOB)
    asked.clear()
    result = hs.finish(pa, pb.hello, random=counting)
    assert asked == ([] if result.initiator else [32])  # the responder's first DH step


def test_hello_anatomy() -> None:
    pa, _ = start_pair(ALICE, BOB)
    hello = hs.decode_hello(pa.hello)
    assert hello.encode() == pa.hello
    assert (hello.identity_key, hello.device_key) == (
        ALICE.public.identity_key,
        ALICE.public.device_key,
    )
    assert hello.peer_identity_key == BOB.public.identity_key
    assert (hello.own_certificate, hello.peer_certificate) == (cert("a"), cert("b"))
    shown = hello.to_dict()
    assert shown["peer_id"] == ALICE.peer_id and shown["to_peer_id"] == BOB.peer_id
    assert "secret" not in repr(pa) and ALICE.peer_id in repr(pa)


# --- every lie, refused with its own error -------------------------------------------


def resigned(hello: bytes, signer: Identity = BOB, **changes: bytes) -> bytes:
    """Bob's hello with fields changed and signed again by ``signer``."""
    edited = dataclasses.replace(hs.decode_hello(hello), **changes)
    signature = signer.sign(hs.SIGN_DOMAIN, edited.signed_part())
    return dataclasses.replace(edited, signature=signature).encode()


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


PA, PB = start_pair(ALICE, BOB)
HOSTILE: list[tuple[str, Callable[[bytes], bytes], type[VolliError]]] = [
    ("truncated", lambda h: h[:-1], MalformedHandshake),
    ("trailing byte", lambda h: h + b"\x00", MalformedHandshake),
    ("empty", lambda h: b"", MalformedHandshake),
    ("version 3", lambda h: b"\x03" + h[1:], MalformedHandshake),
    (
        "another identity (Carol, self-signed)",
        lambda h: resigned(
            h, CAROL, identity_key=CAROL.public.identity_key, device_key=CAROL.public.device_key
        ),
        UnknownPeer,
    ),
    (
        "Bob's other device key, really signed by Bob",
        lambda h: resigned(h, device_key=BOB_OTHER_DEVICE.public.device_key),
        KeyMismatch,
    ),
    ("flipped signature", lambda h: flip(h, len(h) - 5), BadSignature),
    ("flipped ephemeral key", lambda h: flip(h, 1 + 3 * 32), BadSignature),
    ("flipped certificate digest", lambda h: flip(h, 1 + 5 * 32), BadSignature),
    ("signed by Carol", lambda h: resigned(h, CAROL), BadSignature),
    (
        "addressed to Carol",
        lambda h: resigned(h, peer_identity_key=CAROL.public.identity_key),
        ChannelBindingFailed,
    ),
    (
        "lying signaling path: the hello names the attacker's certificate for Bob",
        lambda h: resigned(h, own_certificate=cert("mallory")),
        ChannelBindingFailed,
    ),
    (
        "lying signaling path: Bob saw another certificate than Alice's",
        lambda h: resigned(h, peer_certificate=cert("mallory")),
        ChannelBindingFailed,
    ),
    (
        "certificates swapped",
        lambda h: resigned(h, own_certificate=cert("a"), peer_certificate=cert("b")),
        ChannelBindingFailed,
    ),
    ("low-order ephemeral key", lambda h: resigned(h, ephemeral_key=bytes(32)), LowOrderKey),
    ("low-order ratchet key", lambda h: resigned(h, ratchet_key=bytes(32)), LowOrderKey),
]


@pytest.mark.parametrize(("name", "mutate", "error"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_hello_is_refused_with_its_typed_error(
    name: str, mutate: Callable[[bytes], bytes], error: type[VolliError]
) -> None:
    with pytest.raises(error) as caught:
        hs.finish(PA, mutate(PB.hello), random=random.Random(0).randbytes)
    assert type(caught.value) is error, f"{name}: got {type(caught.value).__name__}"
    assert isinstance(caught.value, PeerError) and str(caught.value)


def test_the_genuine_hello_passes_the_same_checks() -> None:
    assert hs.finish(PA, PB.hello).peer == BOB.public
    assert hs.finish(PA, resigned(PB.hello)).peer == BOB.public  # resigned() changes nothing


def test_a_replayed_hello_on_a_new_channel_fails_the_binding() -> None:
    _, old_b = start_pair(ALICE, BOB, seed=1, cert_a=cert("a-old"), cert_b=cert("b-old"))
    new_a, _ = start_pair(ALICE, BOB, seed=2, cert_a=cert("a-new"), cert_b=cert("b-new"))
    with pytest.raises(ChannelBindingFailed):
        hs.finish(new_a, old_b.hello)


def test_a_replayed_hello_with_the_same_certificates_yields_a_session_nobody_shares() -> None:
    """Mallory replays Bob's old hello to Alice's fresh handshake: Alice's new ephemeral
    makes a root key that Bob's old secrets never derived, so nothing decrypts."""
    first = make_pair(ALICE, BOB, seed=1)
    fresh_a, _ = start_pair(ALICE, BOB, seed=9)
    replayed = hs.finish(fresh_a, first.pending_b.hello)
    assert replayed.session_id != first.result_b.session_id
    _, header, ciphertext = ratchet.encrypt(replayed.state, b"to whoever replays")
    with pytest.raises(DecryptionFailed):
        ratchet.decrypt(first.result_b.state, header, ciphertext, now_ms=NOW)


def test_stolen_long_term_keys_do_not_give_the_root_key() -> None:
    """An attacker with both identities' secrets and both recorded hellos can compute
    DH1 and DH2, but DH3 needs an ephemeral secret that was never stored."""
    pair = make_pair(ALICE, BOB)
    init, resp = (
        (pair.pending_a, pair.pending_b)
        if pair.result_a.initiator
        else (pair.pending_b, pair.pending_a)
    )
    hi, hr = hs.decode_hello(init.hello), hs.decode_hello(resp.hello)
    me_i, me_r = init.me, resp.me
    transcript = hashlib.sha256(hs.TRANSCRIPT_PREFIX + init.hello + resp.hello).digest()
    assert transcript == pair.result_a.session_id
    dh1, dh2 = me_r.shared_secret(hi.ephemeral_key), me_i.shared_secret(hr.ephemeral_key)
    real_dh3 = x25519(init.ephemeral_secret, hr.ephemeral_key)  # only the live sides had this
    info = hs.ROOT_INFO + transcript

    def root(dh3: bytes) -> bytes:
        return hkdf(b"\xff" * 32 + dh1 + dh2 + dh3, salt=bytes(32), info=info, length=32)

    shared = root(real_dh3)
    assert ratchet.init_initiator(shared, transcript, init.ratchet_keys, hr.ratchet_key) == (
        pair.initiator
    )
    # Without DH3 (the best guesses an attacker has: static-static, or nothing)
    for guess in (me_i.shared_secret(me_r.public.device_key), bytes(32), dh1, dh2):
        assert root(guess) != shared


def test_a_hello_has_no_resume_field_and_every_channel_gets_a_fresh_session() -> None:
    """Version 1 let a side name a stored session to resume; a restored file could then
    resume a stale state and reuse message keys.  A session now lives with its channel:
    two handshakes between the same devices never share a session or a first key."""
    first, second = make_pair(ALICE, BOB, seed=3), make_pair(ALICE, BOB, seed=4)
    assert first.result_a.session_id != second.result_a.session_id
    assert first.result_a.state.root_key != second.result_a.state.root_key
    assert not hasattr(hs.decode_hello(first.pending_a.hello), "resume")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"local_certificate": b"short"},
        {"remote_certificate": "ab" * 32},
    ],
    ids=["short digest", "hex digest"],
)
def test_misuse_is_a_usage_error(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"local_certificate": cert("a"), "remote_certificate": cert("b")}
    with pytest.raises(UsageError):
        hs.start(ALICE, BOB.public, **(args | kwargs))  # type: ignore[arg-type]


def test_a_device_cannot_handshake_with_itself() -> None:
    with pytest.raises(UsageError):
        hs.start(ALICE, ALICE.public, local_certificate=cert("a"), remote_certificate=cert("b"))


def test_text_instead_of_bytes_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        hs.decode_hello(PB.hello.hex())  # type: ignore[arg-type]
