"""Identities: peer ids, the device-key signature, strict JSON, secrets and safety numbers."""

from __future__ import annotations

import base64
import random
import re
from typing import Any

import nacl.bindings
import pytest

from volli_nb.base.errors import (
    BadSignature,
    LowOrderKey,
    MalformedEnvelope,
    MalformedFrame,
    UsageError,
)
from volli_nb.core.crypto.identity import (
    DEVICE_DOMAIN,
    Identity,
    PublicIdentity,
    contact_safety_number,
    format_safety_number,
    peer_id_for,
    verify,
    x25519,
)
from volli_nb.core.encoding import b64decode, b64encode

rng = random.Random(7)
ALICE = Identity.generate(rng.randbytes)
BOB = Identity.generate(rng.randbytes)


def flip(data: bytes, index: int = 0) -> bytes:
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


# --- peer ids ---------------------------------------------------------------------


def test_peer_id_is_derived_from_the_identity_key_and_stable() -> None:
    assert ALICE.peer_id == peer_id_for(ALICE.public.identity_key)
    assert re.fullmatch(r"[a-z2-7]{16}", ALICE.peer_id)
    again = Identity.from_secret_bytes(ALICE.to_secret_bytes())
    assert again.peer_id == ALICE.peer_id
    assert peer_id_for(bytes(32)) == peer_id_for(bytes(32))  # a pure function of the key


def test_peer_id_depends_on_the_identity_key_only() -> None:
    seed = ALICE.to_secret_bytes()[:32]
    other_device = Identity(seed, rng.randbytes(32))
    assert other_device.peer_id == ALICE.peer_id
    assert other_device.public.device_key != ALICE.public.device_key
    assert BOB.peer_id != ALICE.peer_id
    assert peer_id_for(flip(ALICE.public.identity_key)) != ALICE.peer_id


def test_identity_and_device_keys_are_separate() -> None:
    pub = ALICE.public
    assert len(pub.identity_key) == len(pub.device_key) == 32
    assert pub.identity_key != pub.device_key
    secret = ALICE.to_secret_bytes()
    assert nacl.bindings.crypto_scalarmult_base(secret[32:]) == pub.device_key


# --- device signature -------------------------------------------------------------


def test_device_key_is_signed_by_the_identity_key() -> None:
    ALICE.public.verify()
    verify(
        ALICE.public.identity_key,
        DEVICE_DOMAIN,
        ALICE.public.device_key,
        ALICE.public.device_signature,
    )


@pytest.mark.parametrize(
    "change",
    [
        {"device_key": BOB.public.device_key},
        {"device_signature": BOB.public.device_signature},
        {"identity_key": BOB.public.identity_key},
    ],
    ids=["other device key", "other signature", "other identity key"],
)
def test_a_mismatched_device_signature_fails(change: dict[str, bytes]) -> None:
    fields = {
        "identity_key": ALICE.public.identity_key,
        "device_key": ALICE.public.device_key,
        "device_signature": ALICE.public.device_signature,
    }
    with pytest.raises(BadSignature):
        PublicIdentity(**(fields | change)).verify()


def test_signatures_are_domain_separated() -> None:
    sig = ALICE.sign(b"volli-a", b"message")
    verify(ALICE.public.identity_key, b"volli-a", b"message", sig)
    with pytest.raises(BadSignature):
        verify(ALICE.public.identity_key, b"volli-b", b"message", sig)
    # Moving bytes between domain and message does not keep the signature valid.
    with pytest.raises(BadSignature):
        verify(ALICE.public.identity_key, b"volli-", b"amessage", sig)
    with pytest.raises(BadSignature):
        verify(BOB.public.identity_key, b"volli-a", b"message", sig)


def test_verify_refuses_malformed_keys_and_signatures_with_bad_signature() -> None:
    sig = ALICE.sign(b"d", b"m")
    for key, signature in [(b"", sig), (ALICE.public.identity_key, sig[:63]), (bytes(32), sig)]:
        with pytest.raises(BadSignature):
            verify(key, b"d", b"m", signature)


# --- JSON ---------------------------------------------------------------------------


def test_json_round_trip() -> None:
    obj = ALICE.public.to_json()
    assert set(obj) == {"peer_id", "identity_key", "device_key", "device_signature"}
    assert obj["peer_id"] == ALICE.peer_id
    assert PublicIdentity.from_json(obj) == ALICE.public


def padded(value: str) -> str:
    return value + "=" * (-len(value) % 4)


def standard_alphabet(value: str) -> str:
    return base64.b64encode(b64decode(value)).decode().rstrip("=")


def stray_bits(value: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return value[:-1] + alphabet[alphabet.index(value[-1]) | 1]


def _with_plus_or_slash() -> Identity:
    # An identity whose key encodes with '-' or '_', so the standard alphabet differs.
    while True:
        ident = Identity.generate(rng.randbytes)
        if set(b64encode(ident.public.identity_key)) & {"-", "_"}:
            return ident


PLUS = _with_plus_or_slash()

HOSTILE_JSON: list[tuple[str, Any, type[Exception]]] = [
    ("wrong peer id", ALICE.public.to_json() | {"peer_id": BOB.peer_id}, MalformedEnvelope),
    (
        "device key signed by nobody",
        ALICE.public.to_json() | {"device_key": b64encode(BOB.public.device_key)},
        BadSignature,
    ),
    (
        "flipped signature",
        ALICE.public.to_json()
        | {"device_signature": b64encode(flip(ALICE.public.device_signature, 5))},
        BadSignature,
    ),
    (
        "padded base64",
        ALICE.public.to_json() | {"device_key": padded(b64encode(ALICE.public.device_key))},
        MalformedEnvelope,
    ),
    (
        "standard base64 alphabet",
        PLUS.public.to_json()
        | {"identity_key": standard_alphabet(b64encode(PLUS.public.identity_key))},
        MalformedEnvelope,
    ),
    (
        "non-canonical trailing bits",
        ALICE.public.to_json() | {"device_key": stray_bits(b64encode(ALICE.public.device_key))},
        MalformedEnvelope,
    ),
    (
        "truncated key",
        ALICE.public.to_json() | {"device_key": b64encode(ALICE.public.device_key[:31])},
        MalformedEnvelope,
    ),
    (
        "missing field",
        {k: v for k, v in ALICE.public.to_json().items() if k != "peer_id"},
        MalformedEnvelope,
    ),
    ("unknown field", ALICE.public.to_json() | {"name": "alice"}, MalformedEnvelope),
    ("wrong type", ALICE.public.to_json() | {"device_key": 5}, MalformedEnvelope),
    ("not an object", [ALICE.peer_id], MalformedEnvelope),
]


@pytest.mark.parametrize(("name", "obj", "error"), HOSTILE_JSON, ids=[h[0] for h in HOSTILE_JSON])
def test_from_json_is_strict(name: str, obj: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        PublicIdentity.from_json(obj)


def test_from_json_raises_the_callers_error_type() -> None:
    with pytest.raises(MalformedFrame):
        PublicIdentity.from_json(ALICE.public.to_json() | {"peer_id": "x"}, error=MalformedFrame)


# --- secrets ------------------------------------------------------------------------


def test_secret_bytes_round_trip() -> None:
    secret = ALICE.to_secret_bytes()
    assert len(secret) == Identity.SECRET_BYTES == 64
    again = Identity.from_secret_bytes(secret)
    assert again.public == ALICE.public
    assert again.to_secret_bytes() == secret
    assert again.sign(b"d", b"m") == ALICE.sign(b"d", b"m")  # Ed25519 is deterministic


def test_bad_secrets_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        Identity.from_secret_bytes(bytes(63))
    with pytest.raises(UsageError):
        Identity(bytes(31), bytes(32))


def test_repr_shows_no_secret() -> None:
    text = repr(ALICE)
    assert ALICE.peer_id in text
    assert ALICE.to_secret_bytes().hex()[:16] not in text


def test_generate_uses_the_injected_randomness() -> None:
    a = Identity.generate(random.Random(1).randbytes)
    b = Identity.generate(random.Random(1).randbytes)
    assert a.public == b.public


# --- key agreement and safety numbers -------------------------------------------------


def test_shared_secret_agrees_and_refuses_low_order_keys() -> None:
    assert ALICE.shared_secret(BOB.public.device_key) == BOB.shared_secret(ALICE.public.device_key)
    with pytest.raises(LowOrderKey):
        ALICE.shared_secret(bytes(32))
    with pytest.raises(UsageError):
        x25519(bytes(32), bytes(16))


def test_contact_safety_number_is_symmetric_and_key_bound() -> None:
    number = contact_safety_number(ALICE.public, BOB.public)
    assert number == contact_safety_number(BOB.public, ALICE.public)
    assert re.fullmatch(r"\d{60}", number)
    mallory = Identity.generate(rng.randbytes)
    assert contact_safety_number(ALICE.public, mallory.public) != number
    # A new device key under the same identity key keeps the safety number.
    rotated = Identity(BOB.to_secret_bytes()[:32], rng.randbytes(32))
    assert contact_safety_number(ALICE.public, rotated.public) == number


def test_format_safety_number() -> None:
    text = format_safety_number("0123456789" * 6)
    assert text == "01234 56789 " * 5 + "01234 56789"
    assert len(text.split()) == 12
