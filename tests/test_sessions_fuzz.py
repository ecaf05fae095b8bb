"""Fuzzing every session decoder: whatever bytes arrive, only VolliError subclasses come out.

Decoders: the handshake hello (and :func:`finish` on it), the ratchet header, the ratchet
state (plain and sealed), envelope v2 and bundles (and :func:`open_bundle`, on the bytes
as they are and re-signed by the genuine sender so they reach the deeper checks).  Inputs
are arbitrary bytes and byte-level mutations (flip, insert, delete, truncate, splice)
of valid samples.  Whatever a decoder accepts must re-encode to exactly the same bytes.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from session_pairs import NOW, identities, make_pair, start_pair

from volli_nb.base.errors import VolliError
from volli_nb.core.crypto import envelope as v2
from volli_nb.core.crypto import envelope_wire as wire
from volli_nb.core.crypto import handshake as hs
from volli_nb.core.crypto import ratchet
from volli_nb.core.crypto.ratchet_state import decode_state, encode_state, open_state, seal_state
from volli_nb.core.message_id import new_message_id

ALICE, BOB, CAROL = identities(61, 3)
AB, AC = make_pair(ALICE, BOB, 1), make_pair(ALICE, CAROL, 2)
PA, PB = start_pair(ALICE, BOB)
KEY, CONTEXT = bytes(range(32)), b"fuzz"
_rng = random.Random(5)


def _sealed(text: bytes, message_id: bytes, states: dict[str, ratchet.RatchetState]) -> v2.Sealed:
    return v2.seal(
        states,
        sender=ALICE.peer_id,
        conversation_id="fuzz",
        message_id=message_id,
        counter=3,
        timestamp_ms=NOW,
        plaintext=text,
        random=_rng.randbytes,
    )


_FIRST = _sealed(
    b"hello",
    new_message_id(ALICE.peer_id, _rng.randbytes),
    {BOB.peer_id: AB.result_a.state, CAROL.peer_id: AC.result_a.state},
)
ENVELOPES = [
    _FIRST,
    _sealed(b"x" * 300, new_message_id(ALICE.peer_id, _rng.randbytes), dict(_FIRST.states)),
]
BUNDLES = [v2.bundle(ALICE, ENVELOPES[:1]), v2.bundle(ALICE, ENVELOPES)]
HEADER = ratchet.Header(bytes(range(32)), 1000, 3).encode()
STATES = [encode_state(AB.result_a.state), encode_state(AB.result_b.state)]
SEALED_STATE = seal_state(AB.result_b.state, KEY, CONTEXT, random=_rng.randbytes)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    """A valid sample with a few byte-level edits."""
    data = bytearray(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[at:]
        elif op == "splice":
            other = draw(st.sampled_from(samples))
            data[at:] = other[draw(st.integers(0, len(other))) :]
    return bytes(data)


def hostile(samples: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=600) | mutated(samples)


def outcome(call: Callable[[], object]) -> str:
    """Run ``call``; any exception that is not a VolliError fails the test."""
    try:
        call()
    except VolliError as exc:
        event(type(exc).__name__)
        return type(exc).__name__
    event("accepted")
    return "accepted"


@FUZZ
@given(data=hostile([PB.hello]))
def test_handshake_hellos(data: bytes) -> None:
    if outcome(lambda: hs.decode_hello(data)) == "accepted":
        assert hs.decode_hello(data).encode() == data
    outcome(lambda: hs.finish(PA, data, random=_rng.randbytes))


@FUZZ
@given(data=hostile([HEADER]))
def test_ratchet_headers(data: bytes) -> None:
    if outcome(lambda: ratchet.decode_header(data)) == "accepted":
        assert ratchet.decode_header(data).encode() == data


@FUZZ
@given(data=hostile(STATES))
def test_ratchet_states(data: bytes) -> None:
    if outcome(lambda: decode_state(data)) == "accepted":
        assert encode_state(decode_state(data)) == data


@FUZZ
@given(data=hostile([SEALED_STATE]))
def test_sealed_ratchet_states(data: bytes) -> None:
    result = outcome(lambda: open_state(data, KEY, CONTEXT))
    assert result in ("SessionStateCorrupt", "accepted")
    if result == "accepted":
        assert data == SEALED_STATE  # nothing else opens


@FUZZ
@given(data=hostile([e.envelope for e in ENVELOPES]))
def test_envelopes(data: bytes) -> None:
    if outcome(lambda: wire.parse_envelope(data)) == "accepted":
        assert wire.parse_envelope(data).envelope.encode() == data


def _open(data: bytes) -> None:
    result = v2.open_bundle(
        data, me=BOB.peer_id, peer=ALICE.public, state=AB.result_b.state, now_ms=NOW
    )
    for refused in result.refused:
        event(f"refused: {type(refused.error).__name__}")
        assert isinstance(refused.error, VolliError)


@FUZZ
@given(data=hostile(BUNDLES), resign=st.booleans())
def test_bundles_and_opening_them(data: bytes, resign: bool) -> None:
    if outcome(lambda: wire.parse_bundle(data)) == "accepted":
        parsed = wire.parse_bundle(data)
        assert wire.encode_bundle([e.raw for e in parsed.envelopes], parsed.signature) == data
        if resign:  # the genuine sender signs whatever it is: the per-envelope checks run
            digest = parsed.signed_digest()
            data = data[:-64] + ALICE.sign(v2.SIGN_DOMAIN, digest)
    outcome(lambda: _open(data))


def test_the_samples_themselves_open() -> None:
    for data in BUNDLES:
        result = v2.open_bundle(
            data, me=BOB.peer_id, peer=ALICE.public, state=AB.result_b.state, now_ms=NOW
        )
        assert result.messages and not result.refused
    assert hs.finish(PA, PB.hello).peer == BOB.public
