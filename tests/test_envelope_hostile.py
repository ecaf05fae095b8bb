"""Envelopes: round trips, and every hostile variant refused with its own typed error."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import random
from collections.abc import Callable
from typing import Any

import nacl.bindings
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from volli_nb import envelope as env
from volli_nb.encoding import b64decode, b64encode, canonical_json
from volli_nb.errors import (
    BadSignature,
    DecryptionFailed,
    KeyCommitmentMismatch,
    KeyMismatch,
    MalformedEnvelope,
    NotARecipient,
    OversizedInput,
    ReplayError,
    StaleMessage,
    UnknownPeer,
    UsageError,
    VolliError,
)
from volli_nb.identity import Identity, PublicIdentity
from volli_nb.primitives import aead_encrypt

NOW = 1_800_000_000_000
rng = random.Random(42)


def det(n: int) -> bytes:
    return rng.randbytes(n)


ALICE, BOB, CAROL, EVE = (Identity.generate(det) for _ in range(4))
PINNED = {i.peer_id: i.public for i in (ALICE, BOB, CAROL)}


def contacts(peer_id: str) -> PublicIdentity | None:
    return PINNED.get(peer_id)


def sealed(recipients: tuple[Identity, ...] = (BOB, CAROL), text: bytes = b"hi") -> bytes:
    return env.seal(
        ALICE,
        [r.public for r in recipients],
        conversation_id="conv-1",
        plaintext=text,
        counter=7,
        timestamp_ms=NOW,
    )


def open_as(me: Identity, data: bytes, **kw: Any) -> env.OpenedMessage:
    return env.open_envelope(data, me, contacts=contacts, now_ms=NOW, **kw)


def edit(data: bytes, change: Callable[[dict[str, Any]], None], *, resign: bool = False) -> bytes:
    obj = json.loads(data)
    change(obj)
    if resign:
        header = env._header(obj)
        ciphertext = b64decode(obj["ciphertext"])
        signature = ALICE.sign(env.SIGN_DOMAIN, env._to_sign(header, ciphertext))
        obj["signature"] = b64encode(signature)
    return canonical_json(obj)


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def stray_bits(value: str) -> str:
    """Set an unused low bit in the last character: same bytes, non-canonical text."""
    return value[:-1] + ALPHABET[ALPHABET.index(value[-1]) | 1]


def flip_b64(value: str, index: int = 0) -> str:
    raw = bytearray(b64decode(value))
    raw[index] ^= 1
    return b64encode(bytes(raw))


@pytest.mark.parametrize("count", [1, 2, 10])
def test_round_trip_for_each_recipient(count: int) -> None:
    people = [Identity.generate(det) for _ in range(count)]
    PINNED.update({p.peer_id: p.public for p in people})
    data = env.seal(
        ALICE,
        [p.public for p in people],
        conversation_id="c",
        plaintext=b"x" * 300,
        counter=1,
        timestamp_ms=NOW,
    )
    for person in people:
        opened = env.open_envelope(data, person, contacts=contacts, now_ms=NOW)
        assert opened.plaintext == b"x" * 300 and opened.sender == ALICE.public
        assert set(opened.recipients) == {p.peer_id for p in people}
    with pytest.raises(NotARecipient):
        open_as(EVE, data)


def test_parse_shows_the_anatomy_without_verifying() -> None:
    parsed = env.parse_envelope(sealed())
    assert parsed.conversation_id == "conv-1" and parsed.counter == 7
    assert set(parsed.recipients) == {BOB.peer_id, CAROL.peer_id}
    assert parsed.recipients[BOB.peer_id].device_key == BOB.public.device_key
    assert len(parsed.message_id) == 16 and len(parsed.signature) == 64


def test_padding_hides_short_lengths() -> None:
    short = env.parse_envelope(sealed(text=b"a")).ciphertext
    longer = env.parse_envelope(sealed(text=b"a" * 200)).ciphertext
    assert len(short) == len(longer)
    assert env.bucket_size(10_000_000) % (1024 * 1024) == 0


def test_deterministic_with_injected_randomness() -> None:
    def make() -> bytes:
        r = random.Random(1)
        return env.seal(
            ALICE,
            [BOB.public],
            conversation_id="c",
            plaintext=b"p",
            counter=1,
            timestamp_ms=NOW,
            random=r.randbytes,
        )

    assert make() == make()


HOSTILE: list[tuple[str, Callable[[bytes], bytes], type[VolliError]]] = [
    (
        "flipped ciphertext bit",
        lambda d: edit(d, lambda o: o.update(ciphertext=flip_b64(o["ciphertext"], 3))),
        BadSignature,
    ),
    (
        "flipped tag bit",
        lambda d: edit(d, lambda o: o.update(ciphertext=flip_b64(o["ciphertext"], -1))),
        BadSignature,
    ),
    (
        "edited conversation id",
        lambda d: edit(d, lambda o: o.update(conversation_id="other")),
        BadSignature,
    ),
    ("edited timestamp", lambda d: edit(d, lambda o: o.update(timestamp=NOW - 1)), BadSignature),
    ("edited counter", lambda d: edit(d, lambda o: o.update(counter=8)), BadSignature),
    (
        "recipient removed",
        lambda d: edit(d, lambda o: o["recipients"].pop(CAROL.peer_id)),
        BadSignature,
    ),
    (
        "recipient added",
        lambda d: edit(
            d, lambda o: o["recipients"].update({EVE.peer_id: o["recipients"][CAROL.peer_id]})
        ),
        BadSignature,
    ),
    (
        "signature remade with another key",
        lambda d: edit(
            d, lambda o: o.update(signature=b64encode(EVE.sign(env.SIGN_DOMAIN, b"x" * 32)))
        ),
        BadSignature,
    ),
    (
        "sender keys swapped",
        lambda d: edit(
            d, lambda o: o.update(sender=EVE.public.to_json() | {"peer_id": EVE.peer_id})
        ),
        UnknownPeer,
    ),
    (
        "stale timestamp",
        lambda d: edit(
            d, lambda o: o.update(timestamp=NOW - env.DEFAULT_MAX_AGE_MS - 1), resign=True
        ),
        StaleMessage,
    ),
    (
        "future timestamp",
        lambda d: edit(
            d, lambda o: o.update(timestamp=NOW + env.DEFAULT_MAX_SKEW_MS + 1), resign=True
        ),
        StaleMessage,
    ),
    (
        "truncated encrypted key",
        lambda d: edit(
            d,
            lambda o: o["recipients"][BOB.peer_id].update(
                encrypted_key=o["recipients"][BOB.peer_id]["encrypted_key"][:-4]
            ),
        ),
        MalformedEnvelope,
    ),
    (
        "truncated nonce",
        lambda d: edit(d, lambda o: o.update(nonce=o["nonce"][:-4])),
        MalformedEnvelope,
    ),
    (
        "truncated signature",
        lambda d: edit(d, lambda o: o.update(signature=o["signature"][:-4])),
        MalformedEnvelope,
    ),
    (
        "padded base64",
        lambda d: edit(d, lambda o: o.update(nonce=o["nonce"] + "=")),
        MalformedEnvelope,
    ),
    (
        "standard base64 alphabet",
        lambda d: edit(
            d,
            lambda o: o.update(
                signature=base64.b64encode(b64decode(o["signature"]) + b"\xfb").decode()[:86]
            ),
        ),
        MalformedEnvelope,
    ),
    (
        "non-canonical trailing bits",
        lambda d: edit(d, lambda o: o.update(signature=stray_bits(o["signature"]))),
        MalformedEnvelope,
    ),
    ("invalid JSON", lambda d: d[:-1], MalformedEnvelope),
    ("duplicate keys", lambda d: d[:-1] + b',"counter":7}', MalformedEnvelope),
    ("unknown field", lambda d: edit(d, lambda o: o.update(extra=1)), MalformedEnvelope),
    ("missing field", lambda d: edit(d, lambda o: o.pop("commitment")), MalformedEnvelope),
    ("bool as counter", lambda d: edit(d, lambda o: o.update(counter=True)), MalformedEnvelope),
    ("not an object", lambda d: b"[]", MalformedEnvelope),
    ("oversized", lambda d: b"{" + b" " * (env.MAX_ENVELOPE_BYTES + 1), OversizedInput),
]


@pytest.mark.parametrize(("name", "mutate", "error"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_envelope_is_refused_with_its_typed_error(
    name: str, mutate: Callable[[bytes], bytes], error: type[VolliError]
) -> None:
    seen: list[bytes] = []
    with pytest.raises(error):
        open_as(BOB, mutate(sealed()), seen=lambda m: seen.append(m) or False)
    assert seen == [] or error is ReplayError  # refused before the replay check stored anything


def test_the_aead_tag_itself_is_checked() -> None:
    # A genuine sender re-signs a ciphertext with a flipped tag: the signature holds, the tag not.
    data = edit(sealed(), lambda o: o.update(ciphertext=flip_b64(o["ciphertext"], -1)), resign=True)
    with pytest.raises(DecryptionFailed):
        open_as(BOB, data)


def test_pinned_key_mismatch() -> None:
    impostor = Identity.generate(det)
    data = env.seal(
        impostor, [BOB.public], conversation_id="c", plaintext=b"x", counter=1, timestamp_ms=NOW
    )
    pinned_other = {impostor.peer_id: ALICE.public}
    with pytest.raises(KeyMismatch):
        env.open_envelope(data, BOB, contacts=pinned_other.get, now_ms=NOW)


def test_replay_in_session_and_after_restart() -> None:
    data = sealed()
    persisted: set[bytes] = set()
    first = open_as(BOB, data, seen=persisted.__contains__)
    persisted.add(first.message_id)
    with pytest.raises(ReplayError):
        open_as(BOB, data, seen=persisted.__contains__)
    reloaded = set(json.loads(json.dumps([m.hex() for m in persisted])))  # "restart"
    with pytest.raises(ReplayError):
        open_as(BOB, data, seen=lambda m: m.hex() in reloaded)


def test_key_commitment_catches_different_keys_for_two_recipients() -> None:
    """A malicious but genuine sender wraps K1 for Bob and K2 for Carol and signs it all."""
    message_id, k1, k2 = det(16), det(32), det(32)
    wraps = {}
    for person, key in ((BOB, k1), (CAROL, k2)):
        eph = det(32)
        eph_pub = nacl.bindings.crypto_scalarmult_base(eph)
        shared = nacl.bindings.crypto_scalarmult(eph, person.public.device_key)
        wrap_key = hashlib.blake2b(
            shared + eph_pub + person.public.device_key, digest_size=32, person=env.WRAP_PERSON
        ).digest()
        nonce = det(24)
        wraps[person.peer_id] = {
            "device_key": b64encode(person.public.device_key),
            "ephemeral_key": b64encode(eph_pub),
            "encrypted_key": b64encode(
                aead_encrypt(wrap_key, nonce, key, message_id + person.peer_id.encode())
            ),
            "nonce": b64encode(nonce),
        }
    obj: dict[str, Any] = {
        "v": 1,
        "conversation_id": "c",
        "message_id": b64encode(message_id),
        "sender": ALICE.public.to_json(),
        "counter": 1,
        "timestamp": NOW,
        "recipients": wraps,
        "nonce": b64encode(det(24)),
        "commitment": b64encode(env._commitment(message_id, k1)),
    }
    header = env._header(obj)
    body = nacl.bindings.sodium_pad(b"pay me", 256)
    ciphertext = aead_encrypt(k1, b64decode(obj["nonce"]), body, header)
    obj["ciphertext"] = b64encode(ciphertext)
    obj["signature"] = b64encode(ALICE.sign(env.SIGN_DOMAIN, env._to_sign(header, ciphertext)))
    data = canonical_json(obj)
    assert open_as(BOB, data).plaintext == b"pay me"
    with pytest.raises(KeyCommitmentMismatch):
        open_as(CAROL, data)


def test_misuse_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        env.seal(ALICE, [], conversation_id="c", plaintext=b"", counter=1, timestamp_ms=NOW)
    with pytest.raises(UsageError):
        env.seal(
            ALICE,
            [BOB.public, BOB.public],
            conversation_id="c",
            plaintext=b"",
            counter=1,
            timestamp_ms=NOW,
        )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_fuzz_arbitrary_bytes_only_typed_errors(data: bytes) -> None:
    with pytest.raises(VolliError):
        open_as(BOB, data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_envelopes_only_typed_errors(data: st.DataObject) -> None:
    raw = bytearray(sealed())
    for _ in range(data.draw(st.integers(1, 5))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    with contextlib.suppress(VolliError):
        open_as(BOB, bytes(raw))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_fuzz_json_field_mutations_only_typed_errors(data: st.DataObject) -> None:
    obj = json.loads(sealed())
    key = data.draw(st.sampled_from(sorted(obj)))
    value = data.draw(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.text(max_size=50),
            st.lists(st.integers(), max_size=3),
            st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
        )
    )
    if data.draw(st.booleans()):
        obj[key] = value
    else:
        del obj[key]
    with contextlib.suppress(VolliError):
        open_as(BOB, json.dumps(obj).encode())
