"""The sans-IO session: frames, channel binding, signed ACKs, chunking, dedup, timers."""

from __future__ import annotations

import json
import random

import pytest

from volli_nb.base.errors import (
    BadSignature,
    ChannelBindingFailed,
    KeyMismatch,
    MalformedFrame,
    OversizedInput,
    UnknownPeer,
    UsageError,
)
from volli_nb.core.crypto import identity
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.encoding import b64encode, canonical_json
from volli_nb.core.protocol import chunks as ch
from volli_nb.core.protocol import frames as f
from volli_nb.core.protocol import session as p

_r = random.Random(3)
A, B, EVE = (Identity.generate(_r.randbytes) for _ in range(3))
FPS = ("sha-256 AA:BB", "sha-256 CC:DD")


def mid(i: int) -> bytes:
    return i.to_bytes(16, "big")


def pair(**kw: object) -> tuple[p.Session, p.Session]:
    """Two sessions, A's and B's, that exchanged valid HELLOs."""
    a = p.Session(A, B.public, expected_fingerprints=FPS, **kw)  # type: ignore[arg-type]
    b = p.Session(B, A.public, expected_fingerprints=FPS, **kw)  # type: ignore[arg-type]
    for frame in a.hello(*FPS):
        assert b.receive(frame, 0.0) == [p.PeerVerified(A.public)]
    for frame in b.hello(*FPS):
        assert a.receive(frame, 0.0) == [p.PeerVerified(B.public)]
    return a, b


def deliver(sender: p.Session, receiver: p.Session, i: int, now: float) -> None:
    """One message from sender to receiver, accepted by the receiving app."""
    for frame in sender.send_message(mid(i), b"envelope", now):
        for event in receiver.receive(frame, now):
            assert event == p.MessageReceived(mid(i), b"envelope")
            receiver.accept(mid(i))


def json_frame(kind: int, body: dict[str, object]) -> bytes:
    return bytes([1, kind]) + canonical_json(body)


# --- frames -------------------------------------------------------------------


def test_every_frame_type_round_trips() -> None:
    hello = f.make_hello(A, *FPS)
    ack = f.make_ack(B, A.peer_id, [mid(1), mid(2), mid(3)])
    samples = [
        hello,
        f.make_message(mid(1), b"env"),
        ack,
        f.make_ping(b"12345678"),
        f.make_pong(b"87654321"),
        f.make_bye("done ✓"),
        *ch.make_chunks(b"\x01\x02" + bytes(100), 9, 40),
    ]
    assert [s[1] for s in samples[:6]] == [f.HELLO, f.MESSAGE, f.ACK, f.PING, f.PONG, f.BYE]
    for raw in samples:
        frame = f.decode_frame(raw)
        assert f.encode_frame(frame) == raw
    decoded = f.decode_frame(hello)
    assert isinstance(decoded, f.HelloFrame) and decoded.identity == A.public
    assert (decoded.offer_fingerprint, decoded.answer_fingerprint) == FPS
    decoded_ack = f.decode_frame(ack)
    assert isinstance(decoded_ack, f.AckFrame)
    assert decoded_ack.message_ids == (mid(1), mid(2), mid(3))
    assert (decoded_ack.sender, decoded_ack.recipient) == (B.peer_id, A.peer_id)
    assert f.decode_frame(samples[1]) == f.MessageFrame(mid(1), b"env")
    assert f.decode_frame(samples[5]) == f.ByeFrame("done ✓")
    assert f.decode_frame(samples[6]) == f.ChunkFrame(9, 0, False, samples[6][11:])
    assert p.decode_frame is f.decode_frame  # the session parses with the one frame decoder


def test_builders_refuse_bad_arguments() -> None:
    with pytest.raises(UsageError):
        f.make_message(b"short", b"x")
    with pytest.raises(UsageError):
        f.make_message(mid(1), b"")
    with pytest.raises(UsageError):
        f.make_ack(B, A.peer_id, [])
    with pytest.raises(UsageError):
        f.make_ack(B, A.peer_id, [mid(i) for i in range(f.MAX_ACK_IDS + 1)])
    with pytest.raises(UsageError):
        ch.make_chunks(b"abc", 1, 11)
    with pytest.raises(UsageError):
        p.Session(A, B.public, max_message_size=20)


def test_bye_reason_is_cut_on_a_character_boundary() -> None:
    frame = f.decode_frame(f.make_bye("é" * 1000))
    assert isinstance(frame, f.ByeFrame) and frame.reason == "é" * 512


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", MalformedFrame),
        (b"\x01", MalformedFrame),
        (b"\x02\x02" + bytes(20), MalformedFrame),  # unknown version
        (b"\x01\x63abc", MalformedFrame),  # unknown type
        (b"\x01\x08abc", MalformedFrame),  # BUNDLE: reserved
        (b"\x01\x02" + bytes(16), MalformedFrame),  # MESSAGE without an envelope
        (b"\x01\x02short", MalformedFrame),
        (b"\x01\x04", MalformedFrame),  # PING without a nonce
        (b"\x01\x05" + bytes(9), MalformedFrame),  # PONG with a 9-byte nonce
        (b"\x01\x06\xff\xfe", MalformedFrame),  # BYE not UTF-8
        (b"\x01\x06" + b"x" * 1025, MalformedFrame),
        (b"\x01\x07" + bytes(9), MalformedFrame),  # CHUNK without data
        (b"\x01\x07" + bytes(8) + b"\x02z", MalformedFrame),  # final flag 2
        (b"\x01\x01not json", MalformedFrame),
        (b"\x01\x03[]", MalformedFrame),
        (b"\x01\x03{}", MalformedFrame),
        (b"\x01\x03" + b" " * (70 * 1024), OversizedInput),
        ("\x01\x02text", MalformedFrame),
    ],
)
def test_malformed_frames_raise_typed_errors(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        f.decode_frame(data)
    _, b = pair()
    with pytest.raises(error):
        b.receive(data, 0.0)


def test_strict_json_fields_in_ack_and_hello() -> None:
    raw = f.make_ack(B, A.peer_id, [mid(1)])
    good = json.loads(raw[2:])
    assert json_frame(f.ACK, good) == raw
    with pytest.raises(MalformedFrame):  # one spelling only: no spaces, sorted keys
        f.decode_frame(raw[:2] + json.dumps(good).encode())
    for mutate in (
        lambda o: o.update(ids=[]),
        lambda o: o.update(ids=[o["ids"][0], o["ids"][0]]),  # the same id twice
        lambda o: o.update(ids=[o["ids"][0] + "="]),  # padded base64
        lambda o: o.update(ids=[b64encode(b"fifteen bytes..")]),
        lambda o: o.update(signature="!!"),
        lambda o: o.update(extra=1),
        lambda o: o.pop("to"),
        lambda o: o.update(to=7),
    ):
        body = dict(good)
        mutate(body)
        with pytest.raises(MalformedFrame):
            f.decode_frame(json_frame(f.ACK, body))
    hello = json.loads(f.make_hello(A, *FPS)[2:])
    for mutate in (
        lambda o: o["fingerprints"].update(offer=""),
        lambda o: o["fingerprints"].update(extra="x"),
        lambda o: o["identity"].update(peer_id=B.peer_id),  # claims an id its key does not give
        lambda o: o.update(signature=b64encode(bytes(63))),
    ):
        body = json.loads(json.dumps(hello))
        mutate(body)
        with pytest.raises(MalformedFrame):
            f.decode_frame(json_frame(f.HELLO, body))


# --- channel binding ------------------------------------------------------------


def test_hello_verifies_once_and_binding_comes_first() -> None:
    a = p.Session(A, B.public, expected_fingerprints=FPS)
    assert not a.verified
    with pytest.raises(ChannelBindingFailed):  # ordered channel: HELLO must come first
        a.receive(f.make_message(mid(1), b"x"), 0.0)
    with pytest.raises(ChannelBindingFailed):
        a.receive(f.make_ack(B, A.peer_id, [mid(1)]), 0.0)
    assert a.receive(f.make_ping(b"pingping"), 0.0) == []  # allowed, answered
    assert a.receive(f.make_hello(B, *FPS), 0.0) == [p.PeerVerified(B.public)]
    assert a.verified
    assert a.receive(f.make_hello(B, *FPS), 0.0) == []  # a repeat says nothing new
    assert a.receive(f.make_message(mid(1), b"x"), 0.0) == [p.MessageReceived(mid(1), b"x")]


def test_hello_from_another_peer_is_unknown_peer() -> None:
    a = p.Session(A, B.public, expected_fingerprints=FPS)
    with pytest.raises(UnknownPeer):
        a.receive(f.make_hello(EVE, *FPS), 0.0)
    assert not a.verified


def test_hello_with_the_same_id_and_another_key_is_key_mismatch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Same identity key (so the same peer id), another device key: not the pinned contact.
    b_seed = B.to_secret_bytes()[:32]
    b_other_device = Identity(b_seed, bytes(range(32)))
    assert b_other_device.peer_id == B.peer_id
    a = p.Session(A, B.public, expected_fingerprints=FPS)
    with pytest.raises(KeyMismatch):
        a.receive(f.make_hello(b_other_device, *FPS), 0.0)
    # Another identity key under the same id needs an 80-bit collision; fake one.
    monkeypatch.setattr(identity, "peer_id_for", lambda key: "collidingpeerid0")
    a = p.Session(A, B.public, expected_fingerprints=FPS)
    with pytest.raises(KeyMismatch):
        a.receive(f.make_hello(EVE, *FPS), 0.0)
    assert not a.verified


def test_hello_over_other_fingerprints_fails_binding() -> None:
    a = p.Session(A, B.public, expected_fingerprints=FPS)
    with pytest.raises(ChannelBindingFailed):
        a.receive(f.make_hello(B, FPS[0], "sha-256 EE:FF"), 0.0)
    with pytest.raises(ChannelBindingFailed):  # swapped roles
        a.receive(f.make_hello(B, FPS[1], FPS[0]), 0.0)
    assert not a.verified


def test_hello_with_a_bad_signature_fails_binding() -> None:
    a = p.Session(A, B.public, expected_fingerprints=FPS)
    body = json.loads(f.make_hello(B, *FPS)[2:])
    signed_elsewhere = f.bind_payload(FPS[0], "sha-256 EE:FF", B.peer_id)
    body["signature"] = b64encode(B.sign(f.BIND_DOMAIN, signed_elsewhere))
    with pytest.raises(ChannelBindingFailed):
        a.receive(json_frame(f.HELLO, body), 0.0)
    body["signature"] = b64encode(B.sign(b"volli-ack-v1", f.bind_payload(*FPS, B.peer_id)))
    with pytest.raises(ChannelBindingFailed):  # right bytes, wrong domain
        a.receive(json_frame(f.HELLO, body), 0.0)
    assert not a.verified


# --- signed ACKs -------------------------------------------------------------------


def test_one_signed_ack_covers_many_messages() -> None:
    a, b = pair(ack_timeout=None)
    for i in range(300):
        deliver(a, b, i, 0.0)
    (ack,) = b.data_to_send(0.05)
    frame = f.decode_frame(ack)
    assert isinstance(frame, f.AckFrame) and len(frame.message_ids) == 300
    ids_json = [b64encode(m) for m in frame.message_ids]
    payload = canonical_json({"from": B.peer_id, "to": A.peer_id, "ids": ids_json})
    identity.verify(B.public.identity_key, b"volli-ack-v1", payload, frame.signature)
    (acked,) = a.receive(ack, 0.1)
    assert isinstance(acked, p.Acked) and set(acked.message_ids) == {mid(i) for i in range(300)}
    assert acked.rtt == pytest.approx(0.1)
    assert a.in_flight == [] and a.next_deadline() is None
    for i in range(300, 1000):  # more than MAX_ACK_IDS: one frame per 512 ids
        deliver(a, b, i, 1.0)
    acks = b.data_to_send(1.0)
    assert len(acks) == 2 and b.data_to_send(1.0) == []
    assert sum(len(e.message_ids) for x in acks for e in a.receive(x, 1.1)) == 700  # type: ignore[union-attr]


def test_tampered_ack_is_bad_signature() -> None:
    a, _ = pair()
    a.send_message(mid(1), b"e", 0.0)
    a.send_message(mid(2), b"e", 0.0)
    body = json.loads(f.make_ack(B, A.peer_id, [mid(1)])[2:])
    body["ids"] = [b64encode(mid(1)), b64encode(mid(2))]  # claims more than B signed
    with pytest.raises(BadSignature):
        a.receive(json_frame(f.ACK, body), 0.1)
    assert a.in_flight == [mid(1), mid(2)]


def test_ack_from_the_wrong_key_or_to_the_wrong_peer_is_refused() -> None:
    a, _ = pair()
    a.send_message(mid(1), b"e", 0.0)
    forged = json.loads(f.make_ack(EVE, A.peer_id, [mid(1)])[2:])
    forged["from"] = B.peer_id  # EVE's signature, claiming to be B
    with pytest.raises(BadSignature):
        a.receive(json_frame(f.ACK, forged), 0.1)
    with pytest.raises(UnknownPeer):  # honestly from EVE, who is not this session's peer
        a.receive(f.make_ack(EVE, A.peer_id, [mid(1)]), 0.1)
    with pytest.raises(UnknownPeer):  # B's genuine ACK to someone else, replayed to us
        a.receive(f.make_ack(B, EVE.peer_id, [mid(1)]), 0.1)
    assert a.in_flight == [mid(1)]


# --- chunking -----------------------------------------------------------------------


def test_ten_megabyte_envelope_is_chunked_and_reassembled() -> None:
    a, b = pair(max_message_size=16 * 1024)
    envelope = bytes(range(256)) * 40_000  # 10.24 MB
    frames = a.send_message(mid(1), envelope, 0.0)
    assert len(frames) == -(-(len(envelope) + 18) // (16 * 1024 - 11))
    assert all(len(x) <= 16 * 1024 for x in frames)
    assert all(x[1] == f.CHUNK for x in frames)
    events = [e for x in frames for e in b.receive(x, 0.0)]
    assert events == [p.MessageReceived(mid(1), envelope)]
    b.accept(mid(1))
    (ack,) = b.data_to_send(0.0)  # small control frames are not chunked
    assert ack[1] == f.ACK and len(ack) <= 16 * 1024


def test_reassembly_caps_are_oversized_input() -> None:
    _, b = pair(max_frame_bytes=50_000)
    chunks = ch.make_chunks(f.make_message(mid(1), b"x" * 100_000), 5, 16 * 1024)
    with pytest.raises(OversizedInput):
        for chunk in chunks:
            b.receive(chunk, 0.0)
    with pytest.raises(OversizedInput):  # a whole frame over the cap
        b.receive(f.make_message(mid(2), b"x" * 50_000), 0.0)
    # Too many half-received frames at once.
    for stream in range(ch.MAX_STREAMS):
        b.receive(ch.make_chunks(b"\x01\x02" + bytes(100), 100 + stream, 64)[0], 0.0)
    with pytest.raises(OversizedInput):
        b.receive(ch.make_chunks(b"\x01\x02" + bytes(100), 99, 64)[0], 0.0)
    # The session still works afterwards; the partial streams can still complete.
    assert b.receive(f.make_message(mid(3), b"ok"), 0.0) == [p.MessageReceived(mid(3), b"ok")]
    rest = ch.make_chunks(b"\x01\x02" + bytes(100), 100, 64)[1:]
    assert [e for c in rest for e in b.receive(c, 0.0)] == [p.MessageReceived(bytes(16), bytes(84))]


def test_reassembly_budget_covers_all_partial_frames() -> None:
    r = ch.Reassembler(max_frame_bytes=100_000)
    assert r.budget == 100_000 + ch.MAX_STREAMS * f.MAX_CONTROL_BYTES
    assert r.add(f.ChunkFrame(1, 0, False, bytes(50_000))) is None
    for stream in range(2, 2 + ch.MAX_STREAMS - 1):
        assert r.add(f.ChunkFrame(stream, 0, False, bytes(80_000))) is None
    assert r.buffered == 610_000
    with pytest.raises(OversizedInput):  # stream 1 stays under 100 kB, the total does not
        r.add(f.ChunkFrame(1, 1, False, bytes(20_000)))
    assert r.partial == ch.MAX_STREAMS - 1 and r.buffered == 560_000
    assert r.add(f.ChunkFrame(2, 1, True, b"!")) == bytes(80_000) + b"!"
    assert r.buffered == 480_000


def test_out_of_order_chunk_is_malformed_and_drops_the_stream() -> None:
    _, b = pair()
    chunks = ch.make_chunks(f.make_message(mid(2), b"y" * 4_000), 6, 1024)
    b.receive(chunks[0], 0.0)
    with pytest.raises(MalformedFrame):
        b.receive(chunks[2], 0.0)  # chunk 1 skipped
    with pytest.raises(MalformedFrame):
        b.receive(chunks[1], 0.0)  # the stream was dropped
    with pytest.raises(MalformedFrame):  # a stream must start at index 0
        b.receive(f.encode_frame(f.ChunkFrame(77, 3, True, b"z")), 0.0)
    nested = ch.make_chunks(ch.make_chunks(b"\x01\x02" + bytes(30), 1, 20)[0], 2, 1000)
    with pytest.raises(MalformedFrame):
        b.receive(nested[0], 0.0)
    events = [
        e
        for c in ch.make_chunks(f.make_message(mid(2), b"y" * 4_000), 8, 1024)
        for e in b.receive(c, 0.0)
    ]
    assert events == [p.MessageReceived(mid(2), b"y" * 4_000)]


# --- exactly once ---------------------------------------------------------------------


def test_duplicate_message_gives_one_event_and_the_ack_again() -> None:
    a, b = pair()
    (frame,) = a.send_message(mid(1), b"e", 0.0)
    assert b.receive(frame, 0.0) == [p.MessageReceived(mid(1), b"e")]
    assert b.receive(frame, 0.0) == []  # handed to the app, not yet accepted: silence
    assert b.data_to_send(0.0) == []
    b.accept(mid(1))
    (ack1,) = b.data_to_send(0.0)
    assert b.receive(frame, 0.1) == []  # the ACK was lost; the sender resends
    (ack2,) = b.data_to_send(0.1)
    for ack in (ack1, ack2):
        frame_ = f.decode_frame(ack)
        assert isinstance(frame_, f.AckFrame) and frame_.message_ids == (mid(1),)
    assert b.stats.messages_in == 1 and b.stats.duplicates_in == 2


def test_rejected_message_is_not_acked_and_offered_again() -> None:
    a, b = pair()
    (frame,) = a.send_message(mid(1), b"bad", 0.0)
    assert len(b.receive(frame, 0.0)) == 1
    b.reject(mid(1), BadSignature("envelope signature"))
    assert b.data_to_send(0.0) == []
    assert b.receive(frame, 1.0) == [p.MessageReceived(mid(1), b"bad")]


def test_seen_callback_survives_a_restart() -> None:
    a, _ = pair()
    persisted = {mid(7)}  # stored before the crash; the ACK never left
    b = p.Session(B, A.public, seen=persisted.__contains__)
    (again,) = a.send_message(mid(7), b"e", 0.0)  # a's retransmission after b restarted
    assert b.receive(again, 0.0) == []
    (ack,) = b.data_to_send(0.0)
    assert a.receive(ack, 0.05) == [p.Acked((mid(7),), pytest.approx(0.05))]
    (fresh,) = a.send_message(mid(8), b"e", 0.0)
    assert b.receive(fresh, 0.0) == [p.MessageReceived(mid(8), b"e")]


# --- timers -----------------------------------------------------------------------------


def test_retransmission_backs_off_exponentially_with_the_same_bytes() -> None:
    a, _ = pair(rto_initial=1.0, rto_max=4.0, ack_timeout=None)
    (frame,) = a.send_message(mid(1), b"e", 0.0)
    times = []
    now = 0.0
    for _ in range(5):
        deadline = a.next_deadline()
        assert deadline is not None
        assert a.data_to_send(deadline - 0.001) == []
        assert a.data_to_send(deadline) == [frame]
        times.append(deadline)
        now = deadline
    assert times == [1.0, 3.0, 7.0, 11.0, 15.0]  # 1, 2, 4, then clamped to rto_max
    assert a.stats.retransmissions == 5 and now == 15.0


def test_rto_adapts_to_measured_rtt_and_follows_karn() -> None:
    a, b = pair(rto_initial=1.0, rto_min=0.2, rto_max=10.0, ack_timeout=None)
    assert a.stats.rto == 1.0
    deliver(a, b, 1, 10.0)
    assert a.receive(b.data_to_send(10.1)[0], 10.1) == [p.Acked((mid(1),), pytest.approx(0.1))]
    assert a.stats.srtt == pytest.approx(0.1) and a.stats.rttvar == pytest.approx(0.05)
    assert a.stats.rto == pytest.approx(0.3)  # srtt + 4 × rttvar
    deliver(a, b, 2, 20.0)
    a.receive(b.data_to_send(20.3)[0], 20.3)  # sample 0.3
    assert a.stats.rttvar == pytest.approx(0.75 * 0.05 + 0.25 * 0.2)
    assert a.stats.srtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.3)
    assert a.stats.rto == pytest.approx(0.125 + 4 * 0.0875)
    # The next message's first retransmission uses the adapted RTO.
    a.send_message(mid(3), b"e", 30.0)
    assert a.next_deadline() == pytest.approx(30.475)
    # Karn: an ACK for a retransmitted message gives no sample.
    assert len(a.data_to_send(30.475)) == 1
    rto = a.stats.rto
    b.receive(f.make_message(mid(3), b"e"), 30.5)
    b.accept(mid(3))
    assert a.receive(b.data_to_send(30.6)[0], 30.6) == [p.Acked((mid(3),), None)]
    assert a.stats.rto == rto


def test_one_rtt_sample_per_ack_from_the_newest_message() -> None:
    a, b = pair(ack_timeout=None)
    deliver(a, b, 1, 0.0)
    deliver(a, b, 2, 0.5)
    (acked,) = a.receive(b.data_to_send(0.6)[0], 0.6)
    assert acked == p.Acked((mid(1), mid(2)), pytest.approx(0.1))
    assert a.stats.srtt == pytest.approx(0.1)


def test_rto_is_clamped_to_its_bounds() -> None:
    a, b = pair(rto_min=0.2, rto_max=2.0, ack_timeout=None)
    deliver(a, b, 1, 0.0)
    a.receive(b.data_to_send(0.001)[0], 0.001)
    assert a.stats.rto == 0.2
    a2, b2 = pair(rto_min=0.2, rto_max=2.0, ack_timeout=None, rto_initial=50.0)
    assert a2.stats.rto == 2.0
    deliver(a2, b2, 1, 0.0)
    a2.receive(b2.data_to_send(5.0)[0], 5.0)
    assert a2.stats.rto == 2.0


def test_ack_timeout_gives_the_message_back() -> None:
    a, _ = pair(rto_initial=1.0, ack_timeout=15.0)
    a.send_message(mid(1), b"e", 0.0)
    a.send_message(mid(2), b"e", 5.5)
    resent = []
    while (deadline := a.next_deadline()) is not None and deadline < 15.0:
        resent += [(deadline, x[17]) for x in a.data_to_send(deadline)]
    # mid(1): 1, 3, 7 (its next, 15, is its ack timeout); mid(2): 6.5, 8.5, 12.5
    assert resent == [(1.0, 1), (3.0, 1), (6.5, 2), (7.0, 1), (8.5, 2), (12.5, 2)]
    assert a.next_deadline() == 15.0
    assert a.data_to_send(15.0) == []  # due, but past its ack timeout: not resent
    assert a.handle_timer(14.9) == []
    assert a.handle_timer(15.0) == [p.DeliveryTimeout(mid(1))]
    assert a.in_flight == [mid(2)]
    assert a.next_deadline() == 20.5
    assert a.handle_timer(20.5) == [p.DeliveryTimeout(mid(2))]
    assert a.in_flight == [] and a.next_deadline() is None and a.data_to_send(99.0) == []
    assert a.stats.timeouts == 2 and a.stats.retransmissions == 6


def test_without_retransmission_only_the_ack_timeout_remains() -> None:
    a, _ = pair(ack_timeout=15.0, retransmit=False)
    a.send_message(mid(1), b"e", 0.0)
    assert a.next_deadline() == 15.0
    assert a.data_to_send(14.0) == []
    assert a.handle_timer(15.0) == [p.DeliveryTimeout(mid(1))]


def test_sending_an_id_again_replaces_it() -> None:
    a, _ = pair(rto_initial=1.0, ack_timeout=15.0)
    a.send_message(mid(1), b"old", 0.0)
    (new,) = a.send_message(mid(1), b"new", 10.0)
    assert a.in_flight == [mid(1)]
    assert a.next_deadline() == 11.0
    assert a.data_to_send(11.0) == [new]
    assert a.handle_timer(15.0) == []
    assert a.handle_timer(25.0) == [p.DeliveryTimeout(mid(1))]


# --- priority, pings, bye ----------------------------------------------------------------


def test_control_frames_go_before_bulk_data() -> None:
    a, b = pair(rto_initial=0.5, ack_timeout=None)
    a.send_message(mid(1), b"e", 0.0)
    deliver(b, a, 2, 0.0)
    a.receive(b.ping(0.0), 0.0)
    out = a.data_to_send(1.0)
    assert [frame[1] for frame in out] == [f.PONG, f.ACK, f.MESSAGE]


def test_ping_pong_measures_rtt_and_liveness() -> None:
    a, b = pair()
    ping = a.ping(1.0)
    assert b.receive(ping, 1.02) == []
    (pong,) = b.data_to_send(1.02)
    assert a.receive(pong, 1.05) == [p.Pong(pytest.approx(0.05))]
    assert a.receive(pong, 1.06) == []  # an unknown or repeated nonce
    assert a.last_heard == 1.06
    assert not a.is_dead(4.0, 3.0) and a.is_dead(4.1, 3.0)
    fresh = p.Session(A, B.public)
    assert not fresh.is_dead(1e9, 3.0)  # never heard: the app's connect timeout applies


def test_bye_closes() -> None:
    a, b = pair()
    assert b.receive(a.close("shutting down"), 0.0) == [p.PeerClosed("shutting down")]


def test_stats_count_both_directions() -> None:
    a, b = pair()
    deliver(a, b, 1, 0.0)
    a.receive(b.data_to_send(0.1)[0], 0.1)
    assert a.stats.messages_out == 1 and b.stats.messages_in == 1
    assert a.stats.acks_in == 1 and b.stats.acks_out == 1
    assert a.stats.frames_out == 2 and a.stats.bytes_out > 0  # HELLO + MESSAGE
    assert b.stats.frames_in == 2 and b.stats.bytes_in == a.stats.bytes_out
