"""Fuzzing: whatever bytes arrive, only typed PeerErrors come out, and state stays sane."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from volli_nb.base.errors import PeerError
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.encoding import b64encode, canonical_json
from volli_nb.core.protocol import chunks as ch
from volli_nb.core.protocol import frames as f
from volli_nb.core.protocol import refusal as r
from volli_nb.core.protocol import session as p

_r = random.Random(11)
A, B = (Identity.generate(_r.randbytes) for _ in range(2))
FPS = ("sha-256 AA:BB", "sha-256 CC:DD")
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def mid(i: int) -> bytes:
    return i.to_bytes(16, "big")


def session(verified: bool) -> p.Session:
    """B's session with A: bound (HELLO received) or not."""
    s = p.Session(B, A.public, expected_fingerprints=FPS, max_frame_bytes=64 * 1024)
    if verified:
        s.receive(f.make_hello(A, *FPS), 0.0)
    return s


REFUSAL = r.sign_refusal(A, B.peer_id, [mid(1)], r.RefusalCode.CLOCK_SKEW, 1_700_000_000_000)
VALID = [
    f.make_hello(A, *FPS),
    f.make_ack(A, B.peer_id, [mid(1), mid(2)]),
    f.make_message(mid(3), b"envelope"),
    f.make_ping(b"pingping"),
    f.make_pong(b"pongpong"),
    f.make_bye("bye"),
    f.encode_frame(r.sign_refusal(A, B.peer_id, [mid(5)], r.RefusalCode.STORAGE_FULL, 1)),
    *ch.make_chunks(f.make_message(mid(4), b"z" * 100), 1, 64),
]


def feed(s: p.Session, data: bytes) -> list[p.Event]:
    """Receive, allowing only PeerErrors; anything else fails the test."""
    try:
        return s.receive(data, 1.0)
    except PeerError:
        return []


def check_decode(data: bytes) -> None:
    try:
        frame = f.decode_frame(data, max_size=64 * 1024)
    except PeerError:
        return
    assert f.encode_frame(frame) == data  # whatever parses has exactly one spelling...
    assert f.decode_frame(f.encode_frame(frame)) == frame  # ...and means one thing


@SETTINGS
@given(st.binary(max_size=700))
def test_arbitrary_bytes_only_raise_peer_errors(data: bytes) -> None:
    check_decode(data)
    check_decode(b"\x01" + data)  # right version: reaches every type's parser
    for verified in (False, True):
        feed(session(verified), data)
        feed(session(verified), b"\x01" + data)


@SETTINGS
@given(st.lists(st.binary(max_size=200), max_size=12), st.sampled_from(range(1, 10)))
def test_frame_sequences_only_raise_peer_errors(bodies: list[bytes], kind: int) -> None:
    s = session(verified=True)
    for body in bodies:
        feed(s, bytes([1, kind]) + body)
    assert s.in_flight == []


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete", "splice"]))
        pos = draw(st.integers(0, max(len(frame) - 1, 0)))
        if op == "flip" and frame:
            frame[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and frame:
            frame[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del frame[pos:]
        elif op == "insert":
            frame[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del frame[pos : pos + draw(st.integers(1, 8))]
        else:
            other = draw(st.sampled_from(VALID))
            frame[pos:] = other[draw(st.integers(0, len(other))) :]
    return bytes(frame)


@settings(max_examples=600, deadline=None)
@given(mutated())
def test_mutated_valid_frames_only_raise_peer_errors(data: bytes) -> None:
    check_decode(data)
    feed(session(False), data)
    feed(session(True), data)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)


@st.composite
def mutated_json(draw: st.DrawFn) -> bytes:
    """HELLO/ACK bodies with one field replaced by any JSON value (or removed, or added)."""
    kind, body = draw(
        st.sampled_from(
            [
                (f.HELLO, json.loads(f.make_hello(A, *FPS)[2:])),
                (f.ACK, json.loads(f.make_ack(A, B.peer_id, [mid(1)])[2:])),
                (f.REFUSE, json.loads(f.encode_frame(REFUSAL)[2:])),
            ]
        )
    )
    target: dict[str, Any] = body
    if kind == f.HELLO and draw(st.booleans()):
        target = body[draw(st.sampled_from(["identity", "fingerprints"]))]
    key = draw(st.sampled_from([*target, "extra"]))
    if draw(st.booleans()):
        target.pop(key, None)
    else:
        target[key] = draw(json_values | st.just(b64encode(bytes(64))))
    return bytes([1, kind]) + canonical_json(body)


@settings(max_examples=400, deadline=None)
@given(mutated_json())
def test_mutated_json_fields_only_raise_peer_errors(data: bytes) -> None:
    check_decode(data)
    s = session(verified=True)
    s.send_message(mid(1), b"e", 0.0)
    events = feed(s, data)
    assert all(isinstance(e, p.PeerVerified | p.Acked | p.Refused) for e in events)


@SETTINGS
@given(
    st.binary(min_size=1, max_size=3000),
    st.integers(20, 600),
    st.integers(0, 2**32 - 1),
)
def test_chunking_round_trips(frame: bytes, max_size: int, stream: int) -> None:
    chunks = ch.make_chunks(frame, stream, max_size)
    assert all(len(c) <= max_size for c in chunks)
    r = ch.Reassembler()
    out = [r.add(c) for c in (f.decode_frame(x) for x in chunks) if isinstance(c, f.ChunkFrame)]
    assert out[-1] == frame and out[:-1] == [None] * (len(chunks) - 1)
    assert r.partial == 0 and r.buffered == 0


@SETTINGS
@given(
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=1, max_size=300),
    st.binary(min_size=8, max_size=8),
    st.text(max_size=300),
    st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=20, unique=True),
)
def test_typed_frames_round_trip(
    message_id: bytes, envelope: bytes, nonce: bytes, reason: str, ids: list[bytes]
) -> None:
    frames: list[f.Frame] = [
        f.MessageFrame(message_id, envelope),
        f.PingFrame(nonce),
        f.PingFrame(nonce, int.from_bytes(nonce, "big")),
        f.PongFrame(nonce),
        f.decode_frame(f.make_bye(reason)),  # type: ignore[list-item]
        f.decode_frame(f.make_ack(A, B.peer_id, ids)),  # type: ignore[list-item]
        f.ChunkFrame(7, 3, True, envelope),
    ]
    for frame in frames:
        assert f.decode_frame(f.encode_frame(frame)) == frame
