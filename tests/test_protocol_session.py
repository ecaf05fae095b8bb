"""The sans-IO protocol: frames, signed ACKs, channel binding, chunking, timers, dedup."""

from __future__ import annotations

import contextlib
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from volli_nb import protocol as p
from volli_nb.encoding import b64encode, canonical_json
from volli_nb.errors import (
    BadSignature,
    ChannelBindingFailed,
    KeyMismatch,
    MalformedFrame,
    OversizedInput,
    UnknownPeer,
    VolliError,
)
from volli_nb.identity import Identity

r = random.Random(3)
A, B, EVE = (Identity.generate(r.randbytes) for _ in range(3))
FPS = ("AA:BB", "CC:DD")


def pair(**kw: object) -> tuple[p.Session, p.Session]:
    a = p.Session(A, B.public, expected_fingerprints=FPS, **kw)  # type: ignore[arg-type]
    b = p.Session(B, A.public, expected_fingerprints=FPS, **kw)  # type: ignore[arg-type]
    for frame in a.hello(*FPS):
        assert isinstance(b.receive(frame, 0.0)[0], p.PeerVerified)
    for frame in b.hello(*FPS):
        assert isinstance(a.receive(frame, 0.0)[0], p.PeerVerified)
    return a, b


def mid(i: int) -> bytes:
    return i.to_bytes(16, "big")


def test_every_frame_type_round_trips() -> None:
    assert p.decode_frame(p.make_message(mid(1), b"env")) == p.MessageFrame(mid(1), b"env")
    assert p.decode_frame(p.make_ping(b"12345678")) == p.PingFrame(b"12345678")
    assert p.decode_frame(p.make_pong(b"12345678")) == p.PongFrame(b"12345678")
    assert p.decode_frame(p.make_bye("done")) == p.ByeFrame("done")
    ack = p.decode_frame(p.make_ack(B, A.peer_id, [mid(1), mid(2)]))
    assert isinstance(ack, p.AckFrame) and ack.message_ids == (mid(1), mid(2))
    hello = p.decode_frame(p.make_hello(A, *FPS))
    assert isinstance(hello, p.HelloFrame) and hello.identity == A.public
    (chunk,) = p.make_chunks(b"abc", 9, 1000)
    assert p.decode_frame(chunk) == p.ChunkFrame(9, 0, True, b"abc")


def test_one_signed_ack_covers_many_messages() -> None:
    a, b = pair()
    for i in range(50):
        for frame in a.send_message(mid(i), b"e", 0.0):
            (event,) = b.receive(frame, 0.01)
            assert isinstance(event, p.MessageReceived)
            b.accept(event.message_id)
    acks = b.data_to_send(0.02)
    assert len(acks) == 1 and acks[0][1] == p.ACK
    (acked,) = a.receive(acks[0], 0.03)
    assert isinstance(acked, p.Acked) and len(acked.message_ids) == 50
    assert a.in_flight == []


def test_tampered_or_foreign_ack_is_refused() -> None:
    a, _ = pair()
    a.send_message(mid(1), b"e", 0.0)
    good = p.make_ack(B, A.peer_id, [mid(1)])
    body = json.loads(good[2:])
    body["ids"] = [b64encode(mid(2))]
    with pytest.raises(BadSignature):
        a.receive(good[:2] + canonical_json(body), 0.1)
    with pytest.raises(BadSignature):  # signed by someone else, claiming to be B
        forged = json.loads(p.make_ack(EVE, A.peer_id, [mid(1)])[2:])
        forged["from"] = B.peer_id
        a.receive(good[:2] + canonical_json(forged), 0.1)
    with pytest.raises(UnknownPeer):
        a.receive(p.make_ack(EVE, A.peer_id, [mid(1)]), 0.1)
    assert a.in_flight == [mid(1)]


def test_channel_binding_failures() -> None:
    fresh = p.Session(A, B.public, expected_fingerprints=FPS)
    with pytest.raises(UnknownPeer):
        fresh.receive(p.make_hello(EVE, *FPS), 0.0)
    with pytest.raises(ChannelBindingFailed):
        fresh.receive(p.make_hello(B, "AA:BB", "EE:FF"), 0.0)
    hello = json.loads(p.make_hello(B, *FPS)[2:])
    hello["signature"] = b64encode(B.sign(p.BIND_DOMAIN, b"something else"))
    with pytest.raises(ChannelBindingFailed):
        fresh.receive(b"\x01\x01" + canonical_json(hello), 0.0)
    impostor = p.Session(A, EVE.public, expected_fingerprints=FPS)
    other = json.loads(p.make_hello(B, *FPS)[2:])
    other["identity"] = B.public.to_json()
    swapped = p.Session(A, B.public, expected_fingerprints=FPS)
    swapped.peer = type(B.public)(EVE.public.identity_key, B.public.device_key, b"")
    with pytest.raises((KeyMismatch, UnknownPeer)):
        swapped.receive(p.make_hello(B, *FPS), 0.0)
    with pytest.raises(ChannelBindingFailed):  # data before binding
        impostor.receive(p.make_message(mid(1), b"x"), 0.0)


def test_ten_megabyte_envelope_is_chunked_and_reassembled() -> None:
    a, b = pair(max_message_size=16 * 1024)
    envelope = bytes(range(256)) * 40_000  # 10.24 MB
    frames = a.send_message(mid(1), envelope, 0.0)
    assert len(frames) > 600 and all(len(f) <= 16 * 1024 for f in frames)
    events = [e for f in frames for e in b.receive(f, 0.0)]
    assert events == [p.MessageReceived(mid(1), envelope)]


def test_chunk_reassembly_limits() -> None:
    _, b = pair(max_frame_bytes=50_000)
    frames = p.make_chunks(p.make_message(mid(1), b"x" * 100_000), 5, 16 * 1024)
    with pytest.raises(OversizedInput):
        for frame in frames:
            b.receive(frame, 0.0)
    frames = p.make_chunks(p.make_message(mid(2), b"y" * 40_000), 6, 16 * 1024)
    b.receive(frames[0], 0.0)
    with pytest.raises(MalformedFrame):
        b.receive(frames[2], 0.0)  # out of order


def test_duplicates_and_persisted_seen_set() -> None:
    a, b = pair()
    (frame,) = a.send_message(mid(1), b"e", 0.0)
    assert len(b.receive(frame, 0.0)) == 1
    assert b.receive(frame, 0.0) == []  # not yet accepted: no second event
    b.accept(mid(1))
    assert b.receive(frame, 0.0) == []
    assert len(b.data_to_send(0.0)) == 1  # acked (again)
    persisted = {mid(7)}  # a restart: the message was stored before the crash
    _, c = pair()
    c._seen = persisted.__contains__
    (again,) = a.send_message(mid(7), b"e", 0.0)
    assert c.receive(again, 0.0) == []
    (ack,) = c.data_to_send(0.0)
    assert p.decode_frame(ack).message_ids == (mid(7),)  # type: ignore[union-attr]


def test_retransmission_backs_off_and_adapts_to_measured_rtt() -> None:
    a, b = pair(rto_initial=1.0, rto_min=0.2, ack_timeout=None)
    (frame,) = a.send_message(mid(1), b"e", 0.0)
    assert a.next_deadline() == 1.0
    assert a.data_to_send(0.5) == []
    assert a.data_to_send(1.0) == [frame]  # first retransmission
    assert a.next_deadline() == 3.0  # backoff doubled
    # A clean sample (no retransmission) sets SRTT and the RTO.
    (f2,) = a.send_message(mid(2), b"e", 10.0)
    b.receive(f2, 10.05)
    b.accept(mid(2))
    a.receive(b.data_to_send(10.1)[0], 10.1)
    assert a.stats.srtt == pytest.approx(0.1)
    assert a.stats.rto == pytest.approx(0.3)  # srtt + 4 × rttvar (0.05)


def test_ack_timeout_gives_the_message_back() -> None:
    a, _ = pair(ack_timeout=15.0, retransmit=False)
    a.send_message(mid(1), b"e", 0.0)
    assert a.next_deadline() == 15.0
    assert a.handle_timer(14.9) == []
    assert a.handle_timer(15.0) == [p.DeliveryTimeout(mid(1))]
    assert a.in_flight == []


def test_control_frames_go_before_bulk_data() -> None:
    a, b = pair(rto_initial=0.1, ack_timeout=None)
    a.send_message(mid(1), b"e", 0.0)
    (f,) = b.send_message(mid(2), b"e", 0.0)
    a.receive(f, 0.0)
    a.accept(mid(2))
    a.receive(p.make_ping(b"pingping"), 0.0)
    out = a.data_to_send(1.0)
    kinds = [frame[1] for frame in out]
    assert kinds == [p.PONG, p.ACK, p.MESSAGE]


def test_ping_pong_measures_rtt() -> None:
    a, b = pair()
    ping = a.ping(1.0)
    b.receive(ping, 1.02)
    (pong,) = b.data_to_send(1.02)
    assert a.receive(pong, 1.05) == [p.Pong(pytest.approx(0.05))]
    assert not a.is_dead(3.9, 3.0) and a.is_dead(4.1, 3.0)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01",
        b"\x02\x02abc",
        b"\x01\x63",
        b"\x01\x02short",
        b"\x01\x03{}",
        b"\x01\x04",
        b"\x01\x07\x00",
        b"\x01\x01not json",
    ],
)
def test_malformed_frames_raise_malformed_frame(data: bytes) -> None:
    _, b = pair()
    with pytest.raises((MalformedFrame, OversizedInput)):
        b.receive(data, 0.0)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_decoder_and_session_only_typed_errors(data: bytes) -> None:
    _, b = pair()
    with contextlib.suppress(VolliError):
        p.decode_frame(data)
    with contextlib.suppress(VolliError):
        b.receive(data, 0.0)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_valid_frames_only_typed_errors(data: st.DataObject) -> None:
    _, b = pair()
    frame = bytearray(
        data.draw(
            st.sampled_from(
                [
                    p.make_ack(A, B.peer_id, [mid(1), mid(2)]),
                    p.make_hello(A, *FPS),
                    p.make_message(mid(3), b"envelope"),
                    *p.make_chunks(b"\x01\x02" + mid(4) + b"z" * 100, 1, 64),
                ]
            )
        )
    )
    for _ in range(data.draw(st.integers(1, 4))):
        frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(VolliError):
        b.receive(bytes(frame), 0.0)
