"""Fuzzing: whatever bytes arrive, only typed PeerErrors come out, and state stays sane.

The whole receive path is driven, not only the frame decoder: a frame that parses goes
through the session and, if it is a bundle, through the ratchet's open (what the app
does with it), so an untyped error anywhere on the way fails the test."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_pairs import NOW_MS, A, B, Peer, mid, pair

from volli_nb.base.errors import PeerError
from volli_nb.core.crypto import handshake as hs
from volli_nb.core.protocol import chunks as ch
from volli_nb.core.protocol import frames as f
from volli_nb.core.protocol import refusal as r
from volli_nb.core.protocol import session as p

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
A_SIDE, B_SIDE = pair(max_frame_bytes=64 * 1024)
SESSION_ID = A_SIDE.k.session_id
PENDING = hs.start(A, B.public, local_certificate=bytes(32), remote_certificate=bytes(32))
VALID = [
    f.make_hello(PENDING.hello),
    f.make_ack(A, B.peer_id, [mid(1), mid(2)]),
    *A_SIDE.send(3, 0.0),
    f.make_ping(b"pingping", 7),
    f.make_pong(b"pongpong"),
    f.make_bye("bye"),
    f.encode_frame(
        r.sign_refusal(A, B.peer_id, [mid(5)], r.RefusalCode.STORAGE_FULL, 1, SESSION_ID)
    ),
    *ch.make_chunks(f.make_bye("z" * 100), 1, 64),
]


def fresh(verified: bool) -> Peer:
    """B's side of a channel with A: after the handshake, or before it."""
    if verified:
        return pair(max_frame_bytes=64 * 1024)[1]
    from protocol_pairs import session

    return Peer(B, session(B, A, max_frame_bytes=64 * 1024))


def feed(side: Peer, data: bytes) -> list[p.Event]:
    """Receive (and, for a bundle, open and settle), allowing only PeerErrors."""
    try:
        return side.handle(data, 1.0)
    except PeerError:
        return []


def check_decode(data: bytes) -> None:
    try:
        frame = f.decode_frame(data, max_size=64 * 1024)
    except PeerError:
        return
    assert f.encode_frame(frame) == data  # whatever parses has exactly one spelling...
    assert f.decode_frame(f.encode_frame(frame)) == frame  # ...and means one thing


VERIFIED, UNVERIFIED = fresh(True), fresh(False)


@SETTINGS
@given(st.binary(max_size=700))
def test_arbitrary_bytes_only_raise_peer_errors(data: bytes) -> None:
    check_decode(data)
    right = bytes((f.PROTOCOL_VERSION,))
    check_decode(right + data)  # right version: reaches every type's parser
    for side in (VERIFIED, UNVERIFIED):
        feed(side, data)
        feed(side, right + data)


@SETTINGS
@given(st.lists(st.binary(max_size=200), max_size=12), st.sampled_from(range(1, 10)))
def test_frame_sequences_only_raise_peer_errors(bodies: list[bytes], kind: int) -> None:
    side = fresh(True)
    for body in bodies:
        feed(side, bytes([2, kind]) + body)
    assert side.session.in_flight == [] and side.stored == set()


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
    feed(fresh(False), data)
    side = fresh(True)
    events = feed(side, data)
    assert all(isinstance(e, p.Event.__args__) for e in events)  # type: ignore[attr-defined]
    assert side.stored <= {mid(3)}  # only A's genuine envelope could ever open


@SETTINGS
@given(
    st.binary(min_size=1, max_size=3000),
    st.integers(20, 600),
    st.integers(0, 2**32 - 1),
)
def test_chunking_round_trips(frame: bytes, max_size: int, stream: int) -> None:
    chunks = ch.make_chunks(frame, stream, max_size)
    assert all(len(c) <= max_size for c in chunks)
    rr = ch.Reassembler()
    out = [rr.add(c) for c in (f.decode_frame(x) for x in chunks) if isinstance(c, f.ChunkFrame)]
    assert out[-1] == frame and out[:-1] == [None] * (len(chunks) - 1)
    assert rr.partial == 0 and rr.buffered == 0


@SETTINGS
@given(
    st.binary(min_size=8, max_size=8),
    st.binary(min_size=1, max_size=300),
    st.text(max_size=300),
    st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=20, unique=True),
    st.sampled_from(list(r.RefusalCode)),
    st.integers(0, 2**53 - 1),
)
def test_typed_frames_round_trip(
    nonce: bytes, data: bytes, reason: str, ids: list[bytes], code: r.RefusalCode, clock: int
) -> None:
    frames: list[f.Frame] = [
        f.PingFrame(nonce),
        f.PingFrame(nonce, int.from_bytes(nonce, "big")),
        f.PongFrame(nonce),
        f.decode_frame(f.make_bye(reason)),  # type: ignore[list-item]
        f.decode_frame(f.make_ack(A, B.peer_id, ids)),  # type: ignore[list-item]
        r.sign_refusal(A, B.peer_id, ids, code, clock, SESSION_ID),
        f.ChunkFrame(7, 3, True, data),
    ]
    for frame in frames:
        assert f.decode_frame(f.encode_frame(frame)) == frame


def test_a_refusal_from_the_peer_verifies_only_in_its_own_session() -> None:
    refusal = r.sign_refusal(B, A.peer_id, [mid(1)], r.RefusalCode.CLOCK_SKEW, NOW_MS, SESSION_ID)
    r.check_refusal(refusal, B.public, A.peer_id, SESSION_ID)
    try:
        r.check_refusal(refusal, B.public, A.peer_id, bytes(32))
    except PeerError:
        return
    raise AssertionError("a refusal verified in another session")
