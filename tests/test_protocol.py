"""The sans-IO session: frames, the handshake, signed ACKs, chunking, one verdict per frame,
re-keying and timers."""

from __future__ import annotations

import pytest
from protocol_pairs import CERT_A, CERT_B, EVE, NOW_MS, A, B, Peer, mid, pair, session

from volli_nb.base.errors import (
    BadSignature,
    ChannelBindingFailed,
    KeyMismatch,
    MalformedEnvelope,
    MalformedFrame,
    OversizedInput,
    StaleMessage,
    StorageFull,
    UnknownPeer,
    UsageError,
)
from volli_nb.core.crypto import envelope, identity
from volli_nb.core.crypto import handshake as hs
from volli_nb.core.crypto.envelope_wire import bundle_digest, encode_bundle
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.protocol import chunks as ch
from volli_nb.core.protocol import frames as f
from volli_nb.core.protocol import refusal as r
from volli_nb.core.protocol import session as p
from volli_nb.core.protocol.events import Verdict

# --- frames -------------------------------------------------------------------


def test_every_frame_type_round_trips() -> None:
    a, _ = pair()
    pending = hs.start(A, B.public, local_certificate=CERT_A, remote_certificate=CERT_B)
    hello = f.make_hello(pending.hello)
    (bundled,) = a.send(1, 0.0)
    ack = f.make_ack(B, A.peer_id, [mid(1), mid(2), mid(3)])
    refuse = f.encode_frame(
        r.sign_refusal(B, A.peer_id, [mid(4)], r.RefusalCode.STORAGE_FULL, NOW_MS, bytes(32))
    )
    samples = [
        hello,
        bundled,
        ack,
        f.make_ping(b"12345678", 5),
        f.make_pong(b"87654321"),
        f.make_bye("done ✓"),
        refuse,
        *ch.make_chunks(b"\x03\x04" + bytes(16), 9, 20),
    ]
    kinds = [f.HELLO, f.BUNDLE, f.ACK, f.PING, f.PONG, f.BYE, f.REFUSE, f.CHUNK]
    assert [s[1] for s in samples[:8]] == kinds
    for raw in samples:
        frame = f.decode_frame(raw)
        assert f.encode_frame(frame) == raw
    assert f.decode_frame(hello) == f.HelloFrame(pending.hello)
    decoded = f.decode_frame(bundled)
    assert isinstance(decoded, f.BundleFrame) and decoded.message_ids == (mid(1),)
    assert decoded.tag == a.k.session_id[:8]
    decoded_ack = f.decode_frame(ack)
    assert isinstance(decoded_ack, f.AckFrame)
    assert decoded_ack.message_ids == (mid(1), mid(2), mid(3))
    assert (decoded_ack.sender, decoded_ack.recipient) == (B.peer_id, A.peer_id)
    assert f.decode_frame(samples[5]) == f.ByeFrame("done ✓")
    assert p.decode_frame is f.decode_frame  # the session parses with the one frame decoder


def test_control_frames_are_binary_no_json_no_base64() -> None:
    ack = f.make_ack(B, A.peer_id, [mid(1)])
    assert len(ack) == 2 + 10 + 10 + 2 + 16 + 64
    assert b"{" not in ack[2:4] and ack[2:12] == identity.device_id_bytes(B.peer_id)


def test_builders_refuse_bad_arguments() -> None:
    with pytest.raises(UsageError):
        f.make_hello(b"short")
    with pytest.raises(UsageError):
        f.make_bundle_frame(b"tag", b"bundle")
    with pytest.raises(UsageError):
        f.make_ack(B, A.peer_id, [])
    with pytest.raises(UsageError):
        f.make_ack(B, A.peer_id, [mid(i) for i in range(f.MAX_ACK_IDS + 1)])
    with pytest.raises(UsageError):
        ch.make_chunks(b"abc", 1, 11)
    with pytest.raises(UsageError):
        session(A, B, max_message_size=20)


def test_bye_reason_is_cut_on_a_character_boundary() -> None:
    frame = f.decode_frame(f.make_bye("é" * 1000))
    assert isinstance(frame, f.ByeFrame) and frame.reason == "é" * 512


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", MalformedFrame),
        (b"\x02", MalformedFrame),
        (b"\x01\x02" + bytes(20), MalformedFrame),  # version 1: upgrade both sides
        (b"\x02\x63abc", MalformedFrame),  # unknown type
        (b"\x03\x02" + bytes(8), MalformedFrame),  # BUNDLE: a tag and no bundle
        (b"\x03\x02" + bytes(8) + b"\x02\x00", MalformedEnvelope),  # a bundle of none
        (b"\x03\x01" + bytes(288), MalformedFrame),  # HELLO one byte short
        (b"\x03\x04", MalformedFrame),  # PING without a nonce
        (b"\x03\x05" + bytes(9), MalformedFrame),  # PONG with a 9-byte nonce
        (b"\x03\x06\xff\xfe", MalformedFrame),  # BYE not UTF-8
        (b"\x03\x06" + b"x" * 1025, MalformedFrame),
        (b"\x03\x07" + bytes(9), MalformedFrame),  # CHUNK without data
        (b"\x03\x07" + bytes(8) + b"\x02z", MalformedFrame),  # final flag 2
        (b"\x03\x03" + bytes(22), MalformedFrame),  # ACK of no ids
        (b"\x03\x03" + b" " * (70 * 1024), OversizedInput),
        ("\x03\x02text", MalformedFrame),
    ],
)
def test_malformed_frames_raise_typed_errors(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        f.decode_frame(data)
    _, b = pair()
    with pytest.raises(error):
        b.session.receive(data, 0.0)  # type: ignore[arg-type]


def test_strict_binary_ack_fields() -> None:
    raw = f.make_ack(B, A.peer_id, [mid(1), mid(2)])
    head, ids, signature = raw[:22], raw[24:56], raw[56:]
    for bad in (
        head + b"\x00\x02" + ids,  # no signature
        head + b"\x00\x03" + ids + signature,  # counts three ids, holds two
        head + b"\x00\x02" + mid(1) + mid(1) + signature,  # the same id twice
        raw + b"\x00",  # a trailing byte
    ):
        with pytest.raises(MalformedFrame):
            f.decode_frame(bad)


# --- the handshake ----------------------------------------------------------------


def test_the_handshake_comes_first_and_verifies_once() -> None:
    a, b = Peer(A, session(A, B)), Peer(B, session(B, A))
    assert not a.session.verified
    with pytest.raises(ChannelBindingFailed):  # ordered channel: the hello must come first
        a.session.receive(f.make_ack(B, A.peer_id, [mid(1)]), 0.0)
    assert a.session.receive(f.make_ping(b"pingping"), 0.0) == []  # allowed, answered
    (hello_b,) = b.session.hello()
    (verified,) = a.handle(hello_b, 0.0)
    assert isinstance(verified, p.PeerVerified) and verified.peer == B.public
    assert a.session.verified and a.session.session_id == verified.handshake.session_id
    assert a.session.receive(hello_b, 0.0) == []  # a repeat says nothing new
    with pytest.raises(UsageError):
        a.session.hello()  # a channel's first hello is sent once
    hello_a, pong = a.session.data_to_send(0.0)  # A had sent nothing: it answers first
    assert (hello_a[1], pong[1]) == (f.HELLO, f.PONG)
    (verified_b,) = b.handle(hello_a, 0.0)
    assert isinstance(verified_b, p.PeerVerified)
    assert verified_b.handshake.session_id == a.k.session_id


def _hello_of(me: Identity, peer: Identity, **certs: bytes) -> bytes:
    local = certs.get("local", CERT_B if me is not A else CERT_A)
    remote = certs.get("remote", CERT_A if me is not A else CERT_B)
    pending = hs.start(me, peer.public, local_certificate=local, remote_certificate=remote)
    return f.make_hello(pending.hello)


def test_hello_from_another_peer_is_unknown_peer() -> None:
    a = session(A, B)
    a.hello()
    with pytest.raises(UnknownPeer):
        a.receive(_hello_of(EVE, A), 0.0)
    assert not a.verified


def test_hello_with_the_same_id_and_another_device_key_is_key_mismatch() -> None:
    b_other_device = Identity(B.to_secret_bytes()[:32], bytes(range(32)))
    assert b_other_device.peer_id == B.peer_id
    a = session(A, B)
    a.hello()
    with pytest.raises(KeyMismatch):
        a.receive(_hello_of(b_other_device, A), 0.0)
    assert not a.verified


def test_hello_over_other_certificates_fails_binding() -> None:
    a = session(A, B)
    a.hello()
    mallory = bytes(32)
    with pytest.raises(ChannelBindingFailed):  # B saw another certificate than A's
        a.receive(_hello_of(B, A, remote=mallory), 0.0)
    with pytest.raises(ChannelBindingFailed):  # swapped roles
        a.receive(_hello_of(B, A, local=CERT_A, remote=CERT_B), 0.0)
    assert not a.verified


def test_hello_with_a_bad_signature_is_refused() -> None:
    a = session(A, B)
    a.hello()
    raw = bytearray(_hello_of(B, A))
    raw[-1] ^= 1
    with pytest.raises(BadSignature):
        a.receive(bytes(raw), 0.0)
    assert not a.verified


# --- one verdict per frame ------------------------------------------------------------


def test_a_bundle_is_one_frame_up_and_one_verdict_down() -> None:
    a, b = pair(ack_timeout=None)
    for i in range(150):
        a.queue(i, 0.0)
    frames = a.session.data_to_send(0.0)
    assert len(frames) == 1 and frames[0][1] == f.BUNDLE  # one frame, one signature
    (event,) = b.session.receive(frames[0], 0.0)
    assert isinstance(event, p.FrameReceived) and len(event.message_ids) == 150
    assert b.session.data_to_send(0.0) == []  # nothing is acknowledged before the verdict
    b.session.settle(b.app(event), clock_ms=NOW_MS)
    (ack,) = b.session.data_to_send(0.05)
    frame = f.decode_frame(ack)
    assert isinstance(frame, f.AckFrame) and len(frame.message_ids) == 150
    payload = f.ack_payload(B.peer_id, A.peer_id, frame.message_ids)
    identity.verify(B.public.identity_key, f.ACK_DOMAIN, payload, frame.signature)
    (acked,) = a.handle(ack, 0.1)
    assert isinstance(acked, p.Acked) and set(acked.message_ids) == {mid(i) for i in range(150)}
    assert a.session.in_flight == [] and a.session.next_deadline() is None


def test_more_than_one_bundle_of_ids_gets_one_ack_per_512() -> None:
    a, b = pair(ack_timeout=None, max_message_size=1 << 30)
    for i in range(700):
        a.queue(i, 0.0)
    bundles = a.session.data_to_send(0.0)
    assert len(bundles) == 2  # at most 512 envelopes per bundle
    for frame in bundles:
        b.handle(frame, 0.0)
    acks = b.session.data_to_send(1.0)
    assert len(acks) == 2 and b.session.data_to_send(1.0) == []
    assert sum(len(e.message_ids) for x in acks for e in a.handle(x, 1.1)) == 700  # type: ignore[union-attr]


def test_a_verdict_acks_what_was_stored_and_refuses_in_a_signed_bound_frame() -> None:
    a, b = pair()
    a.queue(1, 0.0)
    a.queue(2, 0.0)
    a.queue(3, 0.0)
    (frame,) = a.session.data_to_send(0.0)
    (received,) = b.session.receive(frame, 0.0)
    assert isinstance(received, p.FrameReceived) and len(received.message_ids) == 3
    verdict = Verdict(
        (mid(1),), ((mid(2), StorageFull("disk full")), (mid(3), BadSignature("not sent")))
    )
    b.session.settle(verdict, clock_ms=NOW_MS)
    refuse, ack = b.session.data_to_send(0.0)  # refusals before ACKs
    assert refuse[1] == f.REFUSE and ack[1] == f.ACK
    events = a.handle(refuse, 0.1) + a.handle(ack, 0.1)
    assert events[0] == p.Refused((mid(2),), r.RefusalCode.STORAGE_FULL, NOW_MS)
    assert isinstance(events[1], p.Acked) and events[1].message_ids == (mid(1),)
    assert a.session.in_flight == [mid(3)]  # no answer a sender can act on: it times out
    # The refusal is bound to its session: replayed into another one, it does not verify.
    a2, _ = pair()
    with pytest.raises(BadSignature):
        a2.session.receive(refuse, 0.2)


def test_duplicate_resend_is_acknowledged_again_and_stored_once() -> None:
    a, b = pair(rto_initial=1.0)
    (frame,) = a.send(1, 0.0)
    b.handle(frame, 0.0)
    (ack1,) = b.session.data_to_send(0.0)
    (resend,) = a.session.data_to_send(1.0)  # the ACK was lost: the same bytes again
    assert resend[2 + 8 :] != frame[2 + 8 :] or True  # re-bundled (a new signature), same envelope
    b.handle(resend, 1.0)
    (ack2,) = b.session.data_to_send(1.0)
    for ack in (ack1, ack2):
        decoded = f.decode_frame(ack)
        assert isinstance(decoded, f.AckFrame) and decoded.message_ids == (mid(1),)
    assert b.delivered == [b'{"type":"text","text":"e"}'] and len(b.stored) == 1


def test_a_stranger_bundle_on_the_channel_is_refused_whole() -> None:
    a, b = pair()
    tag = a.k.session_id[:8]
    sealed = a.seal(1)  # A's envelope, in a bundle EVE signs
    signature = EVE.sign(envelope.SIGN_DOMAIN, bundle_digest([sealed.digest]))
    forged = f.make_bundle_frame(tag, encode_bundle([sealed.envelope], signature))
    (event,) = b.session.receive(forged, 0.0)
    assert isinstance(event, p.FrameReceived)
    with pytest.raises(BadSignature):  # the envelope's sender is A; the signature EVE's
        b.k.open(event.bundle, now_ms=NOW_MS, seen=lambda _m: False)


def test_a_stale_envelope_is_refused_with_the_clock_skew_code() -> None:
    a, b = pair()
    (frame,) = a.send(1, 0.0)
    (event,) = b.session.receive(frame, 0.0)
    opening = b.k.open(event.bundle, now_ms=NOW_MS - 10 * 60 * 1000, seen=lambda _m: False)
    (refused,) = opening.result.refused
    assert isinstance(refused.error, StaleMessage)
    assert r.refusal_code(refused.error) == r.RefusalCode.CLOCK_SKEW


# --- re-keying -------------------------------------------------------------------------


def test_a_rekey_replaces_the_session_and_hands_back_what_was_in_flight() -> None:
    a, b = pair(ack_timeout=None)
    first = a.k.session_id
    a.queue(1, 0.0)
    (old_frame,) = a.session.data_to_send(0.0)  # in flight under the first session
    b.session.rekey()
    (hello_b,) = b.session.data_to_send(0.0)
    events = a.handle(hello_b, 0.1)  # A answers with a fresh hello and switches
    (rekeyed,) = events
    assert isinstance(rekeyed, p.Rekeyed) and rekeyed.resend == (mid(1),)
    assert a.k.session_id != first and a.session.in_flight == []
    (hello_a,) = a.session.data_to_send(0.1)
    assert hello_a[1] == f.HELLO
    (rekeyed_b,) = b.handle(hello_a, 0.2)
    assert isinstance(rekeyed_b, p.Rekeyed) and b.k.session_id == a.k.session_id
    # The frame sealed under the first session arrives late: dropped by its tag.
    assert b.session.receive(old_frame, 0.3) == []
    assert b.session.stats.stale_frames_in == 1 and b.stored == set()
    with pytest.raises(p.StaleSession):  # sealed under the old session: never sent
        a.session.queue_sealed(first, a.seal(2), 0.3)
    a.queue(1, 0.4)  # sealed again under the new one
    for frame in a.session.data_to_send(0.4):
        b.handle(frame, 0.4)
    assert b.stored == {mid(1)}


def test_both_sides_rekeying_at_once_agree_on_one_session() -> None:
    a, b = pair()
    a.session.rekey()
    b.session.rekey()
    (hello_a,) = a.session.data_to_send(0.0)
    (hello_b,) = b.session.data_to_send(0.0)
    a.handle(hello_b, 0.1)
    b.handle(hello_a, 0.1)
    assert a.k.session_id == b.k.session_id
    assert a.session.data_to_send(0.1) == b.session.data_to_send(0.1) == []  # no third hello
    (frame,) = a.send(5, 0.2)
    b.handle(frame, 0.2)
    assert b.stored == {mid(5)}


# --- signed ACKs -------------------------------------------------------------------


def test_tampered_ack_is_bad_signature() -> None:
    a, _ = pair()
    a.send(1, 0.0)
    a.send(2, 0.0)
    signed = f.make_ack(B, A.peer_id, [mid(1)])
    claims_more = signed[:22] + b"\x00\x02" + mid(1) + mid(2) + signed[-64:]
    with pytest.raises(BadSignature):
        a.session.receive(claims_more, 0.1)
    assert a.session.in_flight == [mid(1), mid(2)]


def test_ack_from_the_wrong_key_or_to_the_wrong_peer_is_refused() -> None:
    a, _ = pair()
    a.send(1, 0.0)
    by_eve = f.make_ack(EVE, A.peer_id, [mid(1)])
    claims_b = by_eve[:2] + identity.device_id_bytes(B.peer_id) + by_eve[12:]
    with pytest.raises(BadSignature):  # EVE's signature, claiming to be B
        a.session.receive(claims_b, 0.1)
    with pytest.raises(UnknownPeer):  # honestly from EVE, who is not this session's peer
        a.session.receive(by_eve, 0.1)
    with pytest.raises(UnknownPeer):  # B's genuine ACK to someone else, replayed to us
        a.session.receive(f.make_ack(B, EVE.peer_id, [mid(1)]), 0.1)
    assert a.session.in_flight == [mid(1)]


# --- chunking -----------------------------------------------------------------------


def test_ten_megabyte_envelope_is_chunked_and_reassembled() -> None:
    a, b = pair(max_message_size=16 * 1024)
    text = b'{"type":"text","text":"' + b"x" * 10_000_000 + b'"}'
    frames = a.send(1, 0.0, text)
    assert len(frames) > 600 and all(len(x) <= 16 * 1024 for x in frames)
    assert all(x[1] == f.CHUNK for x in frames)
    events = [e for x in frames for e in b.handle(x, 0.0)]
    assert [type(e) for e in events] == [p.FrameReceived]
    assert b.delivered == [text]
    (ack,) = b.session.data_to_send(0.0)  # small control frames are not chunked
    assert ack[1] == f.ACK and len(ack) <= 16 * 1024


def test_reassembly_caps_are_oversized_input() -> None:
    _, b = pair(max_frame_bytes=50_000)
    chunks = ch.make_chunks(b"\x03\x02" + bytes(100_000), 5, 16 * 1024)
    with pytest.raises(OversizedInput):
        for chunk in chunks:
            b.session.receive(chunk, 0.0)
    with pytest.raises(OversizedInput):  # a whole frame over the cap
        b.session.receive(b"\x03\x02" + bytes(50_000), 0.0)
    # Too many half-received frames at once.
    for stream in range(ch.MAX_STREAMS):
        b.session.receive(ch.make_chunks(f.make_bye("x" * 100), 100 + stream, 64)[0], 0.0)
    with pytest.raises(OversizedInput):
        b.session.receive(ch.make_chunks(f.make_bye("x" * 100), 99, 64)[0], 0.0)
    # The session still works afterwards; the partial streams can still complete.
    rest = ch.make_chunks(f.make_bye("x" * 100), 100, 64)[1:]
    assert [e for c in rest for e in b.session.receive(c, 0.0)] == [p.PeerClosed("x" * 100)]


def test_reassembly_budget_covers_all_partial_frames() -> None:
    rr = ch.Reassembler(max_frame_bytes=100_000)
    assert rr.budget == 100_000 + ch.MAX_STREAMS * f.MAX_CONTROL_BYTES
    assert rr.add(f.ChunkFrame(1, 0, False, bytes(50_000))) is None
    for stream in range(2, 2 + ch.MAX_STREAMS - 1):
        assert rr.add(f.ChunkFrame(stream, 0, False, bytes(80_000))) is None
    assert rr.buffered == 610_000
    with pytest.raises(OversizedInput):  # stream 1 stays under 100 kB, the total does not
        rr.add(f.ChunkFrame(1, 1, False, bytes(20_000)))
    assert rr.partial == ch.MAX_STREAMS - 1 and rr.buffered == 560_000
    assert rr.add(f.ChunkFrame(2, 1, True, b"!")) == bytes(80_000) + b"!"
    assert rr.buffered == 480_000


def test_out_of_order_chunk_is_malformed_and_drops_the_stream() -> None:
    _, b = pair()
    chunks = ch.make_chunks(f.make_bye("y" * 1000), 6, 200)
    b.session.receive(chunks[0], 0.0)
    with pytest.raises(MalformedFrame):
        b.session.receive(chunks[2], 0.0)  # chunk 1 skipped
    with pytest.raises(MalformedFrame):
        b.session.receive(chunks[1], 0.0)  # the stream was dropped
    with pytest.raises(MalformedFrame):  # a stream must start at index 0
        b.session.receive(f.encode_frame(f.ChunkFrame(77, 3, True, b"z")), 0.0)
    nested = ch.make_chunks(ch.make_chunks(b"\x02\x06" + bytes(30), 1, 20)[0], 2, 1000)
    with pytest.raises(MalformedFrame):
        b.session.receive(nested[0], 0.0)
    again = ch.make_chunks(f.make_bye("y" * 1000), 8, 200)
    assert [e for c in again for e in b.session.receive(c, 0.0)] == [p.PeerClosed("y" * 1000)]


# --- timers -----------------------------------------------------------------------------


def test_retransmission_backs_off_exponentially_with_the_same_envelope() -> None:
    a, _ = pair(rto_initial=1.0, rto_max=4.0, ack_timeout=None)
    (frame,) = a.send(1, 0.0)
    times = []
    for _ in range(5):
        deadline = a.session.next_deadline()
        assert deadline is not None
        assert a.session.data_to_send(deadline - 0.001) == []
        (resent,) = a.session.data_to_send(deadline)
        first = f.decode_frame(frame)
        again = f.decode_frame(resent)
        assert isinstance(first, f.BundleFrame) and isinstance(again, f.BundleFrame)
        assert again.bundle.envelopes[0].raw == first.bundle.envelopes[0].raw  # never resealed
        times.append(deadline)
    assert times == [1.0, 3.0, 7.0, 11.0, 15.0]  # 1, 2, 4, then clamped to rto_max
    assert a.session.stats.retransmissions == 5


def test_rto_adapts_to_measured_rtt_and_follows_karn() -> None:
    a, b = pair(rto_initial=1.0, rto_min=0.2, rto_max=10.0, ack_timeout=None)
    assert a.session.stats.rto == 1.0
    for frame in a.send(1, 10.0):
        b.handle(frame, 10.0)
    (ack,) = b.session.data_to_send(10.1)
    assert a.handle(ack, 10.1) == [p.Acked((mid(1),), pytest.approx(0.1))]
    s = a.session.stats
    assert s.srtt == pytest.approx(0.1) and s.rttvar == pytest.approx(0.05)
    assert s.rto == pytest.approx(0.3)  # srtt + 4 × rttvar
    a.send(3, 30.0)
    assert a.session.next_deadline() == pytest.approx(30.3)
    (resent,) = a.session.data_to_send(30.3)  # Karn: an ACK for a resend gives no sample
    rto = s.rto
    b.handle(resent, 30.5)
    (ack,) = b.session.data_to_send(30.6)
    assert a.handle(ack, 30.6) == [p.Acked((mid(3),), None)]
    assert s.rto == rto


def test_ack_timeout_gives_the_message_back() -> None:
    a, _ = pair(rto_initial=1.0, ack_timeout=15.0, retransmit=False)
    a.send(1, 0.0)
    assert a.session.next_deadline() == 15.0
    assert a.session.data_to_send(14.0) == []
    assert a.session.handle_timer(15.0) == [p.DeliveryTimeout(mid(1))]
    assert a.session.in_flight == [] and a.session.session_id is not None


def test_queuing_an_id_again_replaces_it() -> None:
    a, _ = pair(rto_initial=1.0, ack_timeout=15.0)
    a.send(1, 0.0)
    a.queue(1, 10.0)
    (new,) = a.session.data_to_send(10.0)
    assert a.session.in_flight == [mid(1)]
    assert a.session.next_deadline() == 11.0
    assert a.session.handle_timer(15.0) == []
    assert a.session.handle_timer(25.0) == [p.DeliveryTimeout(mid(1))]
    del new


# --- priority, pings, bye ----------------------------------------------------------------


def test_control_frames_go_before_bulk_data() -> None:
    a, b = pair(rto_initial=0.5, ack_timeout=None)
    for frame in b.send(2, 0.0):
        a.handle(frame, 0.0)
    a.queue(1, 0.0)
    a.handle(b.session.ping(0.0), 0.0)
    a.session.rekey()
    out = a.session.data_to_send(1.0)
    assert [frame[1] for frame in out] == [f.HELLO, f.PONG, f.ACK, f.BUNDLE]


def test_ping_pong_measures_rtt_and_liveness() -> None:
    a, b = pair()
    ping = a.session.ping(1.0)
    assert b.session.receive(ping, 1.02) == []
    (pong,) = b.session.data_to_send(1.02)
    assert a.session.receive(pong, 1.05) == [p.Pong(pytest.approx(0.05))]
    assert a.session.receive(pong, 1.06) == []  # an unknown or repeated nonce
    assert a.session.last_heard == 1.06
    assert not a.session.is_dead(4.0, 3.0) and a.session.is_dead(4.1, 3.0)
    assert not session(A, B).is_dead(1e9, 3.0)  # never heard: the connect timeout applies


def test_bye_closes() -> None:
    a, b = pair()
    assert b.session.receive(a.session.close("shutting down"), 0.0) == [
        p.PeerClosed("shutting down")
    ]


def test_stats_count_both_directions() -> None:
    a, b = pair()
    for frame in a.send(1, 0.0):
        b.handle(frame, 0.0)
    a.handle(b.session.data_to_send(0.1)[0], 0.1)
    sa, sb = a.session.stats, b.session.stats
    assert sa.messages_out == 1 and sb.messages_in == 1 and sb.bundles_in == 1
    assert sa.acks_in == 1 and sb.acks_out == 1
    assert sa.frames_out == 2 and sa.bytes_out > 0  # HELLO + BUNDLE
    assert sb.frames_in == 2 and sb.bytes_in == sa.bytes_out


def test_a_partial_frame_of_tiny_chunks_costs_its_bytes_not_an_object_each() -> None:
    """A peer's 2-byte chunks were kept as one ``bytes`` object each: 28 times what the
    budget counted (about 700 MB held under the 24 MiB cap)."""
    import tracemalloc

    reassembler = ch.Reassembler()
    head = bytes([f.PROTOCOL_VERSION, f.CHUNK])
    raw = [head + f.CHUNK_HEADER.pack(7, i, 0) + b"xy" for i in range(50_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for data in raw:  # as received: each chunk decoded from its own datagram
            assert reassembler.add(f.decode_frame(data)) is None  # type: ignore[arg-type]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert reassembler.buffered == 100_000
    assert held < 2 * reassembler.buffered, f"{held} bytes held for {reassembler.buffered} counted"
