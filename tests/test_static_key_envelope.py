"""Envelopes: round trips, and every hostile variant refused with its own typed error.

Forgeries that need a valid signature are re-signed with the real sender's key
(``edit(..., resign=True)``), so the check under test, not the signature, refuses them.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nacl.bindings
import pytest

from volli_nb.base.errors import (
    BadSignature,
    DecryptionFailed,
    KeyCommitmentMismatch,
    KeyMismatch,
    LowOrderKey,
    MalformedEnvelope,
    NotARecipient,
    OversizedInput,
    PeerError,
    ReplayError,
    StaleMessage,
    UnknownPeer,
    UsageError,
    VolliError,
)
from volli_nb.core.crypto import (
    MAX_ENVELOPE_BYTES,
    Identity,
    PublicIdentity,
    aead_encrypt,
    x25519,
    x25519_public,
)
from volli_nb.core.encoding import b64decode, b64encode, canonical_json
from volli_nb.lab import static_key_envelope as env
from volli_nb.lab.static_key_envelope import OpenedMessage, open_envelope, seal
from volli_nb.lab.static_key_envelope_format import envelope_message_id, parse_envelope

NOW = 1_800_000_000_000
rng = random.Random(2024)


def det(n: int) -> bytes:
    return rng.randbytes(n)


ALICE, BOB, CAROL, DAVE, EVE = (Identity.generate(det) for _ in range(5))
PINNED: dict[str, PublicIdentity] = {i.peer_id: i.public for i in (ALICE, BOB, CAROL, DAVE)}
# Alice's identity key with a second device key that Alice really signed.
ALICE_OTHER_DEVICE = Identity(ALICE.to_secret_bytes()[:32], det(32))
# Bob after rotating his device key: same identity, same peer id.
BOB_ROTATED = Identity(BOB.to_secret_bytes()[:32], det(32))


def contacts(peer_id: str) -> PublicIdentity | None:
    return PINNED.get(peer_id)


def sealed(
    recipients: tuple[Identity, ...] = (BOB, CAROL),
    text: bytes = b"meet at noon",
    *,
    sender: Identity = ALICE,
    timestamp_ms: int = NOW,
) -> bytes:
    return seal(
        sender,
        [r.public for r in recipients],
        conversation_id="conv-1",
        plaintext=text,
        counter=7,
        timestamp_ms=timestamp_ms,
        random=det,
    )


def open_as(me: Identity, data: bytes, **kw: Any) -> OpenedMessage:
    kw.setdefault("contacts", contacts)
    kw.setdefault("now_ms", NOW)
    return open_envelope(data, me, **kw)


def resign(obj: dict[str, Any], signer: Identity = ALICE) -> None:
    header = env.header_bytes(obj)
    ciphertext = b64decode(obj["ciphertext"])
    obj["signature"] = b64encode(signer.sign(env.SIGN_DOMAIN, env._to_sign(header, ciphertext)))


def edit(
    data: bytes,
    change: Callable[[dict[str, Any]], object],
    *,
    resign_with: Identity | None = None,
) -> bytes:
    obj = json.loads(data)
    change(obj)
    if resign_with is not None:
        resign(obj, resign_with)
    return canonical_json(obj)


def flip_b64(value: str, index: int = 0, bit: int = 1) -> str:
    raw = bytearray(b64decode(value))
    raw[index] ^= bit
    return b64encode(bytes(raw))


def stray_bits(value: str) -> str:
    """Set an unused low bit of the last character: same bytes, non-canonical text."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return value[:-1] + alphabet[alphabet.index(value[-1]) | 1]


def standard_alphabet(value: str) -> str:
    return base64.b64encode(b64decode(value)).decode().rstrip("=")


def wrap_field(peer: Identity, name: str, change: Callable[[str], str]) -> Callable[..., None]:
    def apply(obj: dict[str, Any]) -> None:
        entry = obj["recipients"][peer.peer_id]
        entry[name] = change(entry[name])

    return apply


DATA = sealed()


def _signature_with_url_chars() -> str:
    """A 64-byte value whose base64url text has '-' or '_' (so standard base64 differs)."""
    for i in range(1000):
        text = b64encode(bytes([i % 256]) * 63 + bytes([i // 256]))
        if "-" in text or "_" in text:
            return text
    raise AssertionError("unreachable")


FORCED_SIGNATURE_WITH_URL_CHARS = _signature_with_url_chars()


# --- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 10])
def test_round_trip_for_each_recipient(count: int) -> None:
    people = [Identity.generate(det) for _ in range(count)]
    data = seal(
        ALICE,
        [p.public for p in people],
        conversation_id="room",
        plaintext=b"x" * 300,
        counter=3,
        timestamp_ms=NOW,
    )
    ids = tuple(sorted(p.peer_id for p in people))
    for person in people:
        opened = open_as(person, data)
        assert opened.plaintext == b"x" * 300
        assert opened.sender == ALICE.public
        assert opened.recipients == ids
        assert (opened.conversation_id, opened.counter, opened.timestamp_ms) == ("room", 3, NOW)
        assert opened.message_id == envelope_message_id(data)
    for outsider in (DAVE, EVE):
        with pytest.raises(NotARecipient):
            open_as(outsider, data)


def test_empty_and_binary_plaintexts_round_trip() -> None:
    for text in (b"", bytes(range(256)), b"\x80" * 255, b"\x00" * 256):
        assert open_as(BOB, sealed(text=text)).plaintext == text


def test_ten_megabyte_message_fits_the_cap() -> None:
    text = det(10_000_000)
    data = sealed((BOB,), text)
    assert len(data) < MAX_ENVELOPE_BYTES
    assert open_as(BOB, data).plaintext == text


def test_parse_shows_the_anatomy_without_verifying() -> None:
    parsed = parse_envelope(DATA)
    assert parsed.version == 1 and parsed.conversation_id == "conv-1" and parsed.counter == 7
    assert parsed.timestamp_ms == NOW and parsed.sender == ALICE.public
    assert set(parsed.recipients) == {BOB.peer_id, CAROL.peer_id}
    wrap = parsed.recipients[BOB.peer_id]
    assert wrap.device_key == BOB.public.device_key
    assert (len(wrap.ephemeral_key), len(wrap.encrypted_key), len(wrap.nonce)) == (32, 48, 24)
    assert (len(parsed.message_id), len(parsed.nonce), len(parsed.commitment)) == (16, 24, 32)
    assert len(parsed.signature) == 64
    assert json.loads(parsed.header) == {
        k: v for k, v in json.loads(DATA).items() if k not in ("ciphertext", "signature")
    }
    # Parsing verifies nothing: a forged signature still parses.
    forged = edit(DATA, lambda o: o.update(signature=flip_b64(o["signature"])))
    assert parse_envelope(forged).message_id == parsed.message_id


def test_the_wire_shape() -> None:
    obj = json.loads(DATA)
    assert canonical_json(obj) == DATA
    assert set(obj) == {
        "v",
        "conversation_id",
        "message_id",
        "sender",
        "counter",
        "timestamp",
        "recipients",
        "nonce",
        "commitment",
        "ciphertext",
        "signature",
    }
    assert obj["sender"] == ALICE.public.to_json()
    assert set(obj["recipients"][BOB.peer_id]) == {
        "device_key",
        "ephemeral_key",
        "encrypted_key",
        "nonce",
    }
    # Fresh ephemeral keys per recipient; the content key is never wrapped twice alike.
    wraps = list(obj["recipients"].values())
    assert wraps[0]["ephemeral_key"] != wraps[1]["ephemeral_key"]


def test_open_accepts_bytes_like_and_refuses_text() -> None:
    assert open_as(BOB, bytearray(DATA)).plaintext == b"meet at noon"  # type: ignore[arg-type]
    assert open_as(BOB, memoryview(DATA)).plaintext == b"meet at noon"  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        open_as(BOB, DATA.decode())  # type: ignore[arg-type]


# --- padding and randomness ----------------------------------------------------------


def test_padding_hides_short_lengths() -> None:
    short = parse_envelope(sealed(text=b"a")).ciphertext
    longer = parse_envelope(sealed(text=b"a" * 200)).ciphertext
    assert len(short) == len(longer) == 256 + 16


@pytest.mark.parametrize(
    ("length", "bucket"),
    [
        (0, 256),
        (255, 256),
        (256, 512),
        (1000, 1024),
        (1024 * 1024 - 1, 1024 * 1024),
        (1024 * 1024, 2 * 1024 * 1024),
        (10_000_000, 10 * 1024 * 1024),
    ],
)
def test_bucket_sizes(length: int, bucket: int) -> None:
    assert env.bucket_size(length) == bucket
    assert env.is_bucket(bucket)
    assert not env.is_bucket(bucket + 1)


def test_deterministic_with_injected_randomness() -> None:
    def make(seed: int) -> bytes:
        r = random.Random(seed)
        return seal(
            ALICE,
            [BOB.public, CAROL.public],
            conversation_id="c",
            plaintext=b"p",
            counter=1,
            timestamp_ms=NOW,
            random=r.randbytes,
        )

    assert make(1) == make(1)
    assert make(1) != make(2)
    assert open_as(BOB, make(1)).plaintext == b"p"


def test_all_randomness_comes_from_the_injected_source() -> None:
    asked: list[int] = []

    def counting(n: int) -> bytes:
        asked.append(n)
        return det(n)

    seal(
        ALICE,
        [BOB.public, CAROL.public],
        conversation_id="c",
        plaintext=b"p",
        counter=1,
        timestamp_ms=NOW,
        random=counting,
    )
    # message id (its random half), content key, (ephemeral key, wrap nonce) per
    # recipient, body nonce
    assert asked == [8, 32, 32, 24, 32, 24, 24]


def test_a_given_message_id_is_used() -> None:
    mid = bytes(range(16))
    data = seal(
        ALICE,
        [BOB.public],
        conversation_id="c",
        plaintext=b"p",
        counter=1,
        timestamp_ms=NOW,
        message_id=mid,
    )
    assert envelope_message_id(data) == mid == open_as(BOB, data).message_id


# --- misuse --------------------------------------------------------------------------

MISUSE: list[tuple[str, dict[str, Any]]] = [
    ("no recipients", {"recipients": []}),
    ("duplicate recipient", {"recipients": [BOB.public, CAROL.public, BOB.public]}),
    ("counter zero", {"counter": 0}),
    ("bool counter", {"counter": True}),
    ("negative timestamp", {"timestamp_ms": -1}),
    ("empty conversation id", {"conversation_id": ""}),
    ("short message id", {"message_id": bytes(15)}),
    ("text plaintext", {"plaintext": "hello"}),
    ("too big to deliver", {"plaintext": bytes(MAX_ENVELOPE_BYTES)}),
]


@pytest.mark.parametrize(("name", "change"), MISUSE, ids=[m[0] for m in MISUSE])
def test_misuse_is_a_usage_error(name: str, change: dict[str, Any]) -> None:
    args: dict[str, Any] = {
        "recipients": [BOB.public],
        "conversation_id": "c",
        "plaintext": b"p",
        "counter": 1,
        "timestamp_ms": NOW,
    } | change
    with pytest.raises(UsageError):
        seal(ALICE, args.pop("recipients"), **args)


def test_a_low_order_recipient_device_key_is_refused_when_sealing() -> None:
    liar = PublicIdentity(EVE.public.identity_key, bytes(32), EVE.public.device_signature)
    with pytest.raises(LowOrderKey):
        seal(ALICE, [liar], conversation_id="c", plaintext=b"", counter=1, timestamp_ms=NOW)


# --- hostile envelopes: one specific error each --------------------------------------

HOSTILE: list[tuple[str, Callable[[bytes], bytes], type[VolliError]]] = [
    # The signature covers every header field and the ciphertext hash.
    (
        "flipped ciphertext bit",
        lambda d: edit(d, lambda o: o.update(ciphertext=flip_b64(o["ciphertext"], 3))),
        BadSignature,
    ),
    (
        "flipped tag bit",
        lambda d: edit(d, lambda o: o.update(ciphertext=flip_b64(o["ciphertext"], -1, 0x80))),
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
        "edited message id",
        lambda d: edit(d, lambda o: o.update(message_id=flip_b64(o["message_id"]))),
        BadSignature,
    ),
    (
        "edited body nonce",
        lambda d: edit(d, lambda o: o.update(nonce=flip_b64(o["nonce"]))),
        BadSignature,
    ),
    (
        "edited commitment",
        lambda d: edit(d, lambda o: o.update(commitment=flip_b64(o["commitment"]))),
        BadSignature,
    ),
    (
        "recipient removed",
        lambda d: edit(d, lambda o: o["recipients"].pop(CAROL.peer_id)),
        BadSignature,
    ),
    (
        "recipient added",
        lambda d: edit(
            d, lambda o: o["recipients"].update({DAVE.peer_id: o["recipients"][CAROL.peer_id]})
        ),
        BadSignature,
    ),
    (
        "wrapped-to device key edited",
        lambda d: edit(
            d, wrap_field(BOB, "device_key", lambda _: b64encode(BOB_ROTATED.public.device_key))
        ),
        BadSignature,
    ),
    (
        "wrap nonce edited",
        lambda d: edit(d, wrap_field(BOB, "nonce", flip_b64)),
        BadSignature,
    ),
    (
        "signature remade with another key",
        lambda d: edit(d, lambda o: None, resign_with=EVE),
        BadSignature,
    ),
    (
        "signature flipped",
        lambda d: edit(d, lambda o: o.update(signature=flip_b64(o["signature"], 10))),
        BadSignature,
    ),
    # The sender block must be exactly the pinned contact.
    (
        "sender device key swapped (really signed by Alice)",
        lambda d: edit(d, lambda o: o.update(sender=ALICE_OTHER_DEVICE.public.to_json())),
        KeyMismatch,
    ),
    (
        "sender device key swapped for Eve's",
        lambda d: edit(
            d,
            lambda o: o["sender"].update(
                device_key=b64encode(EVE.public.device_key),
                device_signature=b64encode(EVE.public.device_signature),
            ),
        ),
        KeyMismatch,
    ),
    (
        "sender device signature flipped",
        lambda d: edit(
            d,
            lambda o: o["sender"].update(
                device_signature=flip_b64(o["sender"]["device_signature"])
            ),
        ),
        KeyMismatch,
    ),
    (
        "sender replaced by an unknown peer",
        lambda d: edit(d, lambda o: o.update(sender=EVE.public.to_json()), resign_with=EVE),
        UnknownPeer,
    ),
    (
        "sender replaced by another contact",
        lambda d: edit(d, lambda o: o.update(sender=DAVE.public.to_json())),
        BadSignature,
    ),
    # Freshness (genuinely signed, so only the clock refuses them).
    (
        "stale timestamp",
        lambda d: edit(
            d, lambda o: o.update(timestamp=NOW - env.DEFAULT_MAX_AGE_MS - 1), resign_with=ALICE
        ),
        StaleMessage,
    ),
    (
        "future timestamp",
        lambda d: edit(
            d, lambda o: o.update(timestamp=NOW + env.DEFAULT_MAX_SKEW_MS + 1), resign_with=ALICE
        ),
        StaleMessage,
    ),
    # The AEAD layers themselves, under a valid signature.
    (
        "ciphertext bit, re-signed",
        lambda d: edit(
            d, lambda o: o.update(ciphertext=flip_b64(o["ciphertext"], 3)), resign_with=ALICE
        ),
        DecryptionFailed,
    ),
    (
        "tag bit, re-signed",
        lambda d: edit(
            d,
            lambda o: o.update(ciphertext=flip_b64(o["ciphertext"], -1, 0x80)),
            resign_with=ALICE,
        ),
        DecryptionFailed,
    ),
    (
        "encrypted key bit, re-signed",
        lambda d: edit(d, wrap_field(BOB, "encrypted_key", flip_b64), resign_with=ALICE),
        DecryptionFailed,
    ),
    (
        "ephemeral key swapped, re-signed",
        lambda d: edit(
            d,
            wrap_field(BOB, "ephemeral_key", lambda _: b64encode(CAROL.public.device_key)),
            resign_with=ALICE,
        ),
        DecryptionFailed,
    ),
    (
        "Carol's wrap given to Bob, re-signed",
        lambda d: edit(
            d,
            lambda o: o["recipients"][BOB.peer_id].update(
                {k: v for k, v in o["recipients"][CAROL.peer_id].items() if k != "device_key"}
            ),
            resign_with=ALICE,
        ),
        DecryptionFailed,
    ),
    (
        "low-order ephemeral key, re-signed",
        lambda d: edit(
            d, wrap_field(BOB, "ephemeral_key", lambda _: b64encode(bytes(32))), resign_with=ALICE
        ),
        LowOrderKey,
    ),
    (
        "commitment to another key, re-signed",
        lambda d: edit(
            d, lambda o: o.update(commitment=flip_b64(o["commitment"])), resign_with=ALICE
        ),
        KeyCommitmentMismatch,
    ),
    # Strict parsing.
    (
        "truncated encrypted key",
        lambda d: edit(d, wrap_field(BOB, "encrypted_key", lambda v: v[:-4])),
        MalformedEnvelope,
    ),
    (
        "truncated ephemeral key",
        lambda d: edit(d, wrap_field(BOB, "ephemeral_key", lambda v: v[:-4])),
        MalformedEnvelope,
    ),
    (
        "truncated wrap nonce",
        lambda d: edit(d, wrap_field(BOB, "nonce", lambda v: v[:-4])),
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
        "truncated message id",
        lambda d: edit(d, lambda o: o.update(message_id=o["message_id"][:-2])),
        MalformedEnvelope,
    ),
    (
        "truncated commitment",
        lambda d: edit(d, lambda o: o.update(commitment=o["commitment"][:-4])),
        MalformedEnvelope,
    ),
    (
        "truncated ciphertext",
        lambda d: edit(d, lambda o: o.update(ciphertext=o["ciphertext"][:-4])),
        MalformedEnvelope,
    ),
    (
        "empty ciphertext",
        lambda d: edit(d, lambda o: o.update(ciphertext="")),
        MalformedEnvelope,
    ),
    (
        "padded base64",
        lambda d: edit(d, lambda o: o.update(nonce=o["nonce"] + "=")),
        MalformedEnvelope,
    ),
    (
        "standard base64 alphabet (+ and /)",
        lambda d: edit(
            d, lambda o: o.update(signature=standard_alphabet(FORCED_SIGNATURE_WITH_URL_CHARS))
        ),
        MalformedEnvelope,
    ),
    (
        "non-canonical trailing bits",
        lambda d: edit(d, lambda o: o.update(signature=stray_bits(o["signature"]))),
        MalformedEnvelope,
    ),
    (
        "whitespace in base64",
        lambda d: edit(d, lambda o: o.update(nonce=o["nonce"][:8] + " " + o["nonce"][8:])),
        MalformedEnvelope,
    ),
    ("invalid JSON", lambda d: d[:-1], MalformedEnvelope),
    ("not UTF-8", lambda d: d[:-1] + b"\xff}", MalformedEnvelope),
    ("duplicate keys", lambda d: d[:-1] + b',"counter":7}', MalformedEnvelope),
    (
        "duplicate keys in a recipient entry",
        lambda d: d.replace(b'"encrypted_key":', b'"encrypted_key":"AAAA","encrypted_key":', 1),
        MalformedEnvelope,
    ),
    ("unknown field", lambda d: edit(d, lambda o: o.update(extra=1)), MalformedEnvelope),
    ("missing field", lambda d: edit(d, lambda o: o.pop("commitment")), MalformedEnvelope),
    (
        "unknown sender field",
        lambda d: edit(d, lambda o: o["sender"].update(name="alice")),
        MalformedEnvelope,
    ),
    (
        "missing wrap field",
        lambda d: edit(d, lambda o: o["recipients"][BOB.peer_id].pop("nonce")),
        MalformedEnvelope,
    ),
    (
        "sender peer id that is not the key's",
        lambda d: edit(d, lambda o: o["sender"].update(peer_id=BOB.peer_id)),
        MalformedEnvelope,
    ),
    ("bool as counter", lambda d: edit(d, lambda o: o.update(counter=True)), MalformedEnvelope),
    ("float counter", lambda d: edit(d, lambda o: o.update(counter=7.0)), MalformedEnvelope),
    ("string counter", lambda d: edit(d, lambda o: o.update(counter="7")), MalformedEnvelope),
    ("counter zero", lambda d: edit(d, lambda o: o.update(counter=0)), MalformedEnvelope),
    ("huge counter", lambda d: edit(d, lambda o: o.update(counter=2**53)), MalformedEnvelope),
    ("negative timestamp", lambda d: edit(d, lambda o: o.update(timestamp=-1)), MalformedEnvelope),
    ("version 2", lambda d: edit(d, lambda o: o.update(v=2)), MalformedEnvelope),
    ("bool version", lambda d: edit(d, lambda o: o.update(v=True)), MalformedEnvelope),
    (
        "sender is a list",
        lambda d: edit(d, lambda o: o.update(sender=[o["sender"]])),
        MalformedEnvelope,
    ),
    (
        "recipients is a list",
        lambda d: edit(d, lambda o: o.update(recipients=[])),
        MalformedEnvelope,
    ),
    ("no recipients", lambda d: edit(d, lambda o: o.update(recipients={})), MalformedEnvelope),
    (
        "recipient entry is a string",
        lambda d: edit(d, lambda o: o["recipients"].update({BOB.peer_id: "x"})),
        MalformedEnvelope,
    ),
    (
        "recipient key is not a peer id",
        lambda d: edit(
            d, lambda o: o["recipients"].update({"Bob": o["recipients"].pop(BOB.peer_id)})
        ),
        MalformedEnvelope,
    ),
    (
        "empty conversation id",
        lambda d: edit(d, lambda o: o.update(conversation_id="")),
        MalformedEnvelope,
    ),
    (
        "lone surrogate in the conversation id",
        lambda d: d.replace(b'"conv-1"', b'"conv-\\ud800"'),
        MalformedEnvelope,
    ),
    ("not canonical: spaces", lambda d: d.replace(b",", b", ", 1), MalformedEnvelope),
    (
        "not canonical: key order",
        lambda d: json.dumps(dict(reversed(json.loads(d).items())), separators=(",", ":")).encode(),
        MalformedEnvelope,
    ),
    (
        "not canonical: escaped character",
        lambda d: d.replace(b'"conv-1"', b'"conv\\u002d1"'),
        MalformedEnvelope,
    ),
    ("NaN", lambda d: d.replace(b'"counter":7', b'"counter":NaN'), MalformedEnvelope),
    ("not an object", lambda d: b"[]", MalformedEnvelope),
    ("empty input", lambda d: b"", MalformedEnvelope),
    ("oversized", lambda d: b"{" + b" " * MAX_ENVELOPE_BYTES + b"}", OversizedInput),
]


@pytest.mark.parametrize(("name", "mutate", "error"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_envelope_is_refused_with_its_typed_error(
    name: str, mutate: Callable[[bytes], bytes], error: type[VolliError]
) -> None:
    asked: list[bytes] = []

    def seen(message_id: bytes) -> bool:
        asked.append(message_id)
        return False

    data = mutate(DATA)
    with pytest.raises(error) as caught:
        open_as(BOB, data, seen=seen)
    assert type(caught.value) is error, f"{name}: got {type(caught.value).__name__}"
    assert isinstance(caught.value, PeerError)  # the peer's fault: drop it, keep running
    assert str(caught.value)  # every refusal says what was wrong
    # Only envelopes that reached the unwrap step asked the seen-set.
    later = (DecryptionFailed, LowOrderKey, KeyCommitmentMismatch)
    assert bool(asked) == (error in later)


def test_a_genuine_open_asks_the_seen_set_once() -> None:
    asked: list[bytes] = []

    def seen(message_id: bytes) -> bool:
        asked.append(message_id)
        return False

    opened = open_as(BOB, DATA, seen=seen)
    assert asked == [opened.message_id]


def test_oversized_input_is_refused_before_parsing() -> None:
    garbage = b"\xff" * (MAX_ENVELOPE_BYTES + 1)  # would be MalformedEnvelope if parsed
    for call in (
        lambda: open_as(BOB, garbage),
        lambda: parse_envelope(garbage),
        lambda: envelope_message_id(garbage),
    ):
        with pytest.raises(OversizedInput):
            call()
    with pytest.raises(OversizedInput):
        open_as(BOB, DATA, max_size=len(DATA) - 1)
    assert open_as(BOB, DATA, max_size=len(DATA)).plaintext == b"meet at noon"


# --- who may open it ----------------------------------------------------------------


def test_unknown_sender() -> None:
    with pytest.raises(UnknownPeer):
        open_as(BOB, sealed(sender=EVE))


def test_pinned_keys_differ_from_the_senders() -> None:
    # Alice's other device seals; Bob pinned Alice's first device.
    data = sealed(sender=ALICE_OTHER_DEVICE)
    with pytest.raises(KeyMismatch):
        open_as(BOB, data)
    # After Bob re-pins the new device key, the same bytes open.
    repinned = PINNED | {ALICE.peer_id: ALICE_OTHER_DEVICE.public}
    assert open_as(BOB, data, contacts=repinned.get).plaintext == b"meet at noon"


def test_a_contact_pinned_under_another_identity_is_a_key_mismatch() -> None:
    pinned = {EVE.peer_id: ALICE.public}  # Bob's record for this peer id holds other keys
    with pytest.raises(KeyMismatch):
        open_as(BOB, sealed(sender=EVE), contacts=pinned.get)


def test_non_recipients_and_rotated_device_keys() -> None:
    with pytest.raises(NotARecipient):
        open_as(DAVE, DATA)
    with pytest.raises(NotARecipient):
        open_as(EVE, DATA)
    with pytest.raises(NotARecipient):  # wrapped to Bob's old device key
        open_as(BOB_ROTATED, DATA)


# --- freshness and replay ------------------------------------------------------------


def test_freshness_window_edges() -> None:
    age, skew = env.DEFAULT_MAX_AGE_MS, env.DEFAULT_MAX_SKEW_MS
    assert age == 10 * 60 * 1000 and skew == 2 * 60 * 1000
    open_as(BOB, DATA, now_ms=NOW + age)
    open_as(BOB, DATA, now_ms=NOW - skew)
    with pytest.raises(StaleMessage):
        open_as(BOB, DATA, now_ms=NOW + age + 1)
    with pytest.raises(StaleMessage):
        open_as(BOB, DATA, now_ms=NOW - skew - 1)
    with pytest.raises(StaleMessage):
        open_as(BOB, DATA, now_ms=NOW + 2_000, max_age_ms=1_000)
    open_as(BOB, DATA, now_ms=NOW - 10_000, max_skew_ms=10_000)


def test_replay_is_refused() -> None:
    with pytest.raises(ReplayError):
        open_as(BOB, DATA, seen=lambda _: True)


def test_replay_after_restart_with_a_persisted_seen_set(tmp_path: Path) -> None:
    store = tmp_path / "seen.json"

    def load() -> dict[str, int]:
        return json.loads(store.read_text()) if store.exists() else {}

    seen = load()
    first = open_as(BOB, DATA, seen=lambda m: m.hex() in seen)
    seen[first.message_id.hex()] = first.timestamp_ms
    store.write_text(json.dumps(seen))
    with pytest.raises(ReplayError):
        open_as(BOB, DATA, seen=lambda m: m.hex() in seen)

    reloaded = load()  # a new process: only the file survived
    assert reloaded == seen
    with pytest.raises(ReplayError):
        open_as(BOB, DATA, seen=lambda m: m.hex() in reloaded)
    # The seen-set may forget ids older than max_age: the freshness check refuses those.
    forgotten: dict[str, int] = {}
    with pytest.raises(StaleMessage):
        open_as(
            BOB,
            DATA,
            now_ms=NOW + env.DEFAULT_MAX_AGE_MS + 1,
            seen=lambda m: m.hex() in forgotten,
        )


def test_a_replay_to_another_recipient_is_that_recipients_own_decision() -> None:
    # Seen-sets are per receiver: Carol opens what Bob already accepted.
    assert open_as(CAROL, DATA, seen=lambda _: False).plaintext == b"meet at noon"


# --- a malicious but genuine sender ----------------------------------------------------


def forge(
    keys: dict[Identity, bytes],
    *,
    body_key: bytes,
    committed_key: bytes,
    padded_body: bytes,
    sender: Identity = ALICE,
) -> bytes:
    """Build an envelope by hand, with per-recipient content keys, and sign it for real."""
    message_id = det(16)
    wraps: dict[str, dict[str, str]] = {}
    for person, key in keys.items():
        eph = det(32)
        eph_pub = x25519_public(eph)
        device = person.public.device_key
        wrap_key = env._wrap_key(x25519(eph, device), eph_pub, device)
        nonce = det(24)
        encrypted = aead_encrypt(wrap_key, nonce, key, message_id + person.peer_id.encode())
        wraps[person.peer_id] = {
            "device_key": b64encode(device),
            "ephemeral_key": b64encode(eph_pub),
            "encrypted_key": b64encode(encrypted),
            "nonce": b64encode(nonce),
        }
    obj: dict[str, Any] = {
        "v": 1,
        "conversation_id": "conv-1",
        "message_id": b64encode(message_id),
        "sender": sender.public.to_json(),
        "counter": 1,
        "timestamp": NOW,
        "recipients": wraps,
        "nonce": b64encode(det(24)),
        "commitment": b64encode(env._commitment(message_id, committed_key)),
    }
    header = env.header_bytes(obj)
    ciphertext = aead_encrypt(body_key, b64decode(obj["nonce"]), padded_body, header)
    obj["ciphertext"] = b64encode(ciphertext)
    resign(obj, sender)
    return canonical_json(obj)


def test_key_commitment_catches_different_keys_for_two_recipients() -> None:
    """Alice wraps K1 for Bob and K2 for Carol and signs it all: Carol must refuse."""
    k1, k2 = det(32), det(32)
    body = nacl.bindings.sodium_pad(b"pay me", 256)
    data = forge({BOB: k1, CAROL: k2}, body_key=k1, committed_key=k1, padded_body=body)
    assert open_as(BOB, data).plaintext == b"pay me"
    with pytest.raises(KeyCommitmentMismatch):
        open_as(CAROL, data)


def test_the_forge_helper_builds_what_seal_builds() -> None:
    k = det(32)
    body = nacl.bindings.sodium_pad(b"same", 256)
    data = forge({BOB: k, CAROL: k}, body_key=k, committed_key=k, padded_body=body)
    assert open_as(BOB, data).plaintext == open_as(CAROL, data).plaintext == b"same"


@pytest.mark.parametrize(
    "body",
    [
        nacl.bindings.sodium_pad(b"x" * 10, 512),  # padded past its bucket
        b"x" * 256,  # no 0x80 padding marker
        bytes(256),  # all zeros: no marker either
    ],
    ids=["non-minimal padding", "no padding marker", "all zeros"],
)
def test_bad_padding_from_a_genuine_sender_is_malformed(body: bytes) -> None:
    k = det(32)
    data = forge({BOB: k}, body_key=k, committed_key=k, padded_body=body)
    with pytest.raises(MalformedEnvelope):
        open_as(BOB, data)
