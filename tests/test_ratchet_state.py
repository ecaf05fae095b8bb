"""A ratchet state at rest: one compact encoding, sealed, and refused when edited."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator, Mapping

import pytest
from session_pairs import NOW, identities, make_pair

from volli_nb.base.errors import SessionStateCorrupt, StorageError, UsageError
from volli_nb.core.crypto import ratchet
from volli_nb.core.crypto.ratchet_state import (
    decode_state,
    encode_state,
    open_state,
    seal_state,
)

ALICE, BOB = identities(21, 2)
PAIR = make_pair(ALICE, BOB)
KEY = bytes(range(32))
CONTEXT = b"sessions|state|peer-1|schema 3"


Message = tuple[ratchet.Header, bytes]


def busy_pair() -> tuple[ratchet.RatchetState, ratchet.RatchetState, list[Message]]:
    """Both sides after three round trips; Bob holds skipped keys and a history."""
    a, b = PAIR.initiator, PAIR.responder
    rng = random.Random(2)
    lost: list[Message] = []
    for i in range(3):
        a, h, c = ratchet.encrypt(a, b"late %d" % i)
        lost.append((h, c))
        a, h, c = ratchet.encrypt(a, b"kept")
        b, _ = ratchet.decrypt(b, h, c, now_ms=NOW + i, random=rng.randbytes)
        b, h, c = ratchet.encrypt(b, b"reply")
        a, _ = ratchet.decrypt(a, h, c, now_ms=NOW + i, random=rng.randbytes)
    return a, b, lost


def busy_state() -> ratchet.RatchetState:
    return busy_pair()[1]


@pytest.mark.parametrize(
    "state",
    [PAIR.initiator, PAIR.responder, busy_state()],
    ids=["initiator (no receiving chain)", "responder", "after three round trips"],
)
def test_round_trip(state: ratchet.RatchetState) -> None:
    data = encode_state(state)
    assert decode_state(data) == state
    assert encode_state(decode_state(data)) == data
    assert open_state(seal_state(state, KEY, CONTEXT), KEY, CONTEXT) == state


def test_sizes_are_compact() -> None:
    assert len(encode_state(PAIR.initiator)) == 1 + 4 * 32 + 1 + 2 * 32 + 3 + 1 + 1
    assert len(encode_state(PAIR.responder)) == 1 + 4 * 32 + 1 + 3 * 32 + 3 + 1 + 1
    busy = busy_state()
    assert busy.skipped and busy.previous_dhr
    assert len(seal_state(busy, KEY, CONTEXT)) == len(encode_state(busy)) + 1 + 24 + 16


def test_a_reloaded_pair_keeps_talking_and_opens_late_messages() -> None:
    a, b, lost = busy_pair()
    a, b = decode_state(encode_state(a)), decode_state(encode_state(b))
    rng = random.Random(3)
    for i, (header, ciphertext) in enumerate(lost):  # held as skipped keys across the reload
        b, plain = ratchet.decrypt(b, header, ciphertext, now_ms=NOW, random=rng.randbytes)
        assert plain == b"late %d" % i
    assert not b.skipped
    a, h, c = ratchet.encrypt(a, b"after reload")
    b, plain = ratchet.decrypt(b, h, c, now_ms=NOW, random=rng.randbytes)
    assert plain == b"after reload"


def test_sealing_is_deterministic_given_randomness_and_fresh_otherwise() -> None:
    state = PAIR.responder
    one = seal_state(state, KEY, CONTEXT, random=random.Random(1).randbytes)
    assert one == seal_state(state, KEY, CONTEXT, random=random.Random(1).randbytes)
    assert seal_state(state, KEY, CONTEXT) != seal_state(state, KEY, CONTEXT)
    assert encode_state(state)[33:65] not in one  # the root key is not readable at rest


SEALED = seal_state(busy_state(), KEY, CONTEXT)


@pytest.mark.parametrize(
    ("name", "data", "key", "context"),
    [
        ("wrong key", SEALED, bytes(32), CONTEXT),
        ("another row", SEALED, KEY, CONTEXT + b"x"),
        ("flipped byte", SEALED[:40] + bytes([SEALED[40] ^ 1]) + SEALED[41:], KEY, CONTEXT),
        ("truncated", SEALED[:-1], KEY, CONTEXT),
        ("too short", SEALED[:20], KEY, CONTEXT),
        ("unknown version", b"\x02" + SEALED[1:], KEY, CONTEXT),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_sealed_state_that_does_not_open(
    name: str, data: bytes, key: bytes, context: bytes
) -> None:
    with pytest.raises(SessionStateCorrupt) as caught:
        open_state(data, key, context)
    assert isinstance(caught.value, StorageError) and str(caught.value)


def _with_secret(state: ratchet.RatchetState, secret: bytes) -> bytes:
    return encode_state(dataclasses.replace(state, dhs_secret=secret))


class _Twice(Mapping[tuple[bytes, int], tuple[bytes, int]]):
    """A skipped-key mapping whose encoding lists its first key twice."""

    def __init__(self, inner: Mapping[tuple[bytes, int], tuple[bytes, int]]) -> None:
        self.inner = inner

    def __getitem__(self, key: tuple[bytes, int]) -> tuple[bytes, int]:
        return self.inner[key]

    def __iter__(self) -> Iterator[tuple[bytes, int]]:
        first = next(iter(self.inner))
        yield first
        yield from self.inner

    def __len__(self) -> int:
        return len(self.inner) + 1


BUSY = busy_state()
GOOD = encode_state(BUSY)
TOO_LONG_HISTORY = encode_state(
    dataclasses.replace(BUSY, previous_dhr=(bytes(32),) * (ratchet.HISTORY + 1))
)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty", b""),
        ("version 2", b"\x02" + GOOD[1:]),
        ("public key is not the secret's", _with_secret(BUSY, bytes(range(32)))),
        ("unknown flag bit", GOOD[:129] + bytes([GOOD[129] | 0x08]) + GOOD[130:]),
        ("truncated", GOOD[:-1]),
        ("trailing byte", GOOD + b"\x00"),
        ("history longer than kept", TOO_LONG_HISTORY),
        (
            "a skipped key listed twice",
            encode_state(dataclasses.replace(BUSY, skipped=_Twice(BUSY.skipped))),
        ),
    ],
)
def test_strict_decoding(name: str, data: bytes) -> None:
    with pytest.raises(SessionStateCorrupt):
        decode_state(data)


def test_misuse() -> None:
    with pytest.raises(UsageError):
        seal_state(PAIR.responder, b"short", CONTEXT)
    with pytest.raises(UsageError):
        open_state(SEALED, b"short", CONTEXT)
    with pytest.raises(UsageError):
        decode_state(GOOD.hex())  # type: ignore[arg-type]
