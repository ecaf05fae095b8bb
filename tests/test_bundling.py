"""Bundling, priority and adaptive ACK timeouts in the sans-IO session."""

from __future__ import annotations

import pytest
from protocol_pairs import A, B, mid, pair, session

from volli_nb.base.errors import ChannelBindingFailed, MalformedEnvelope, UsageError
from volli_nb.core.crypto import envelope
from volli_nb.core.crypto.envelope_wire import parse_bundle
from volli_nb.core.protocol import frames as f
from volli_nb.core.protocol import session as p
from volli_nb.core.protocol.link_quality import LinkQuality

TEXT = b'{"type":"text","text":"' + b"t" * 100 + b'"}'  # a 100-byte chat line


def test_eighty_queued_messages_travel_in_one_frame_and_are_acked_by_one_signed_ack() -> None:
    a, b = pair(retransmit=False)
    for i in range(80):
        a.queue(i, 0.0, TEXT)
    assert a.session.in_flight == [mid(i) for i in range(80)]
    out = a.session.data_to_send(0.0)
    assert len(out) == 1 and out[0][1] == f.BUNDLE
    (event,) = b.handle(out[0], 0.0)
    assert isinstance(event, p.FrameReceived)
    assert event.message_ids == tuple(mid(i) for i in range(80))
    assert b.delivered == [TEXT] * 80
    acks = b.session.data_to_send(0.01)
    assert len(acks) == 1 and acks[0][1] == f.ACK
    assert a.handle(acks[0], 0.01) == [p.Acked(tuple(mid(i) for i in range(80)), 0.01)]
    assert a.session.in_flight == []
    sa, sb = a.session.stats, b.session.stats
    assert (sa.bundles_out, sb.bundles_in, sb.acks_out) == (1, 1, 1)


def test_bundles_respect_the_frame_size_and_keep_order() -> None:
    a, b = pair(retransmit=False, max_message_size=16 * 1024)
    for i in range(100):
        a.queue(i, 0.0, TEXT)
    out = a.session.data_to_send(0.0)
    assert all(len(frame) <= 16 * 1024 for frame in out)
    assert len(out) == 3  # 100 envelopes of about 400 bytes in 16 KiB frames
    got = [m for frame in out for e in b.handle(frame, 0.0) for m in e.message_ids]  # type: ignore[union-attr]
    assert got == [mid(i) for i in range(100)]


def test_a_large_message_goes_alone_between_bundles_in_order() -> None:
    a, b = pair(retransmit=False, max_message_size=16 * 1024)
    big = b'{"type":"text","text":"' + b"B" * 40_000 + b'"}'
    a.queue(1, 0.0, TEXT)
    a.queue(2, 0.0, TEXT)
    a.queue(3, 0.0, big)
    a.queue(4, 0.0, TEXT)
    out = a.session.data_to_send(0.0)
    kinds = [frame[1] for frame in out]
    assert kinds == [f.BUNDLE, *[f.CHUNK] * 5, f.BUNDLE]  # 40 kB pads to its 64 KiB bucket
    for frame in out:
        b.handle(frame, 0.0)
    assert b.delivered == [TEXT, TEXT, big, TEXT]


def test_bundling_can_be_turned_off() -> None:
    a, _ = pair(retransmit=False, bundle=False)
    for i in range(5):
        a.queue(i, 0.0, TEXT)
    out = a.session.data_to_send(0.0)
    assert [frame[1] for frame in out] == [f.BUNDLE] * 5
    assert all(len(parse_bundle(x[10:]).envelopes) == 1 for x in out)


def test_requeueing_an_id_before_it_leaves_sends_only_the_newest_envelope() -> None:
    a, b = pair(retransmit=False)
    a.queue(1, 0.0, b'{"type":"text","text":"old"}')
    a.queue(1, 0.0, b'{"type":"text","text":"new"}')
    for frame in a.session.data_to_send(0.0):
        b.handle(frame, 0.0)
    assert b.delivered == [b'{"type":"text","text":"new"}']


def test_control_frames_overtake_bulk_data_when_the_budget_is_spent() -> None:
    a, b = pair(retransmit=False)
    big = b'{"type":"text","text":"' + b"x" * 1_000_000 + b'"}'
    a.queue(1, 0.0, big)
    first = a.session.data_to_send(0.0, max_bytes=64 * 1024)
    assert [frame[1] for frame in first] == [f.CHUNK]
    assert a.session.queued_bytes > 900_000 and a.session.has_output
    # Meanwhile B sends A a message; A's ACK for it goes before the rest of the bulk.
    for frame in b.send(9, 0.0, TEXT):
        a.handle(frame, 0.0)
    second = a.session.data_to_send(0.0, max_bytes=64 * 1024)
    assert [frame[1] for frame in second] == [f.ACK, f.CHUNK]
    rest = a.session.data_to_send(0.0)
    for frame in first + second[1:] + rest:
        b.handle(frame, 0.0)
    assert b.delivered == [big]
    assert a.session.queued_bytes == 0 and not a.session.has_output


def test_lossy_bundles_are_retransmitted_as_bundles_until_acked() -> None:
    a, b = pair(retransmit=True, rto_initial=1.0)
    for i in range(10):
        a.queue(i, 0.0, TEXT)
    assert len(a.session.data_to_send(0.0)) == 1  # lost on the way
    assert a.session.data_to_send(0.5) == []
    again = a.session.data_to_send(1.0)
    assert len(again) == 1 and again[0][1] == f.BUNDLE
    b.handle(again[0], 1.0)
    (ack,) = b.session.data_to_send(1.0)
    assert a.handle(ack, 1.1) == [p.Acked(tuple(mid(i) for i in range(10)), None)]
    assert a.session.stats.retransmissions == 10 and a.session.quality.loss > 0


def test_a_bundle_before_the_handshake_is_refused() -> None:
    a, _ = pair()
    frame = a.send(1, 0.0)[0]
    fresh = session(B, A)
    with pytest.raises(ChannelBindingFailed):
        fresh.receive(frame, 0.0)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "too short"),
        (b"\x02\x00", "envelope count"),
        (b"\x02\x81\x04", "envelope count"),  # 513
        (b"\x02\x01\x05abcde" + bytes(64), "version"),
        (b"\x01\x01", "version"),
    ],
)
def test_malformed_bundles_get_typed_errors(body: bytes, words: str) -> None:
    frame = bytes([f.PROTOCOL_VERSION, f.BUNDLE]) + bytes(8) + body
    with pytest.raises((MalformedEnvelope, f.MalformedFrame), match=words):
        f.decode_frame(frame)


def test_bundling_refuses_bad_input() -> None:
    a, _ = pair()
    with pytest.raises(UsageError):
        envelope.bundle(A, [])
    with pytest.raises(UsageError):  # another sender's envelope in our bundle
        envelope.bundle(B, [a.seal(1)])


# --- adaptive ACK timeouts ---------------------------------------------------------


def test_ack_timeout_follows_rtt_loss_and_backlog() -> None:
    lan = LinkQuality()
    for _ in range(20):
        lan.rtt_sample(0.002)
    assert lan.ack_timeout() == 3.0  # the floor
    wan = LinkQuality()
    for _ in range(20):
        wan.rtt_sample(0.4)
    calm = wan.ack_timeout()
    assert 3.0 <= calm < 4.0
    for _ in range(20):
        wan.loss_sample(True)
    lossy = wan.ack_timeout()
    assert lossy > calm * 1.5
    assert wan.ack_timeout(64 * 1024) == pytest.approx(lossy + 1.0)  # a cautious guess
    wan.acked(0, 0.0)
    wan.acked(100_000, 1.0)
    assert wan.ack_timeout(1_000_000) == pytest.approx(lossy + 10.0)
    assert wan.ack_timeout(100_000_000) == 60.0  # the ceiling


def test_a_round_trip_far_above_the_smoothed_one_counts_as_loss() -> None:
    q = LinkQuality()
    for _ in range(10):
        q.rtt_sample(0.05)
    assert q.loss == 0.0
    q.rtt_sample(1.3)  # what an SCTP retransmission looks like from above
    assert q.loss == pytest.approx(1 / 16)


def test_an_adaptive_session_sets_ack_deadlines_from_the_link() -> None:
    a, b = pair(retransmit=False, adaptive_ack=True, ack_timeout=60.0)
    for _ in range(10):  # an 800 ms round trip, measured by pings
        b.handle(a.session.ping(0.0), 0.0)
        for frame in b.session.data_to_send(0.0):
            a.handle(frame, 0.8)
    a.queue(1, 10.0, TEXT)
    a.session.data_to_send(10.0)
    deadline = a.session.next_deadline()
    assert deadline is not None and 3.3 <= deadline - 10.0 < 4.5
    assert a.session.handle_timer(deadline - 0.01) == []
    assert a.session.handle_timer(deadline) == [p.DeliveryTimeout(mid(1))]


def test_over_a_reliable_channel_a_late_message_does_not_time_out_while_acks_flow() -> None:
    a, b = pair(retransmit=False, ack_timeout=5.0)
    a.queue(1, 0.0, TEXT)
    a.session.data_to_send(0.0)  # still on its way (behind a slow, lossy queue)
    for t in range(1, 10):  # meanwhile other messages are acknowledged every second
        a.queue(100 + t, float(t), TEXT)
        a.flush(b, float(t))
        b.flush(a, float(t))
        assert a.session.handle_timer(float(t)) == []
    assert a.session.in_flight == [mid(1)]
    assert a.session.handle_timer(13.9) == []
    assert a.session.handle_timer(14.0) == [p.DeliveryTimeout(mid(1))]  # 5 s after the last ACK


def test_goodput_is_measured_over_windows_and_sizes_the_send_buffer() -> None:
    q = LinkQuality()
    assert q.send_buffer(64_000, 1_000_000) == 250_000  # before any measurement
    q.acked(10_000, 0.0)  # opens the window
    for i in range(1, 11):
        q.acked(5_000, i * 0.1)  # 50 kB/s
    assert q.goodput == pytest.approx(50_000)
    assert q.send_buffer(64_000, 1_000_000) == 64_000
    q.idle()
    q.acked(1, 100.0)  # after an idle minute: a fresh window, not a slow link
    assert q.goodput == pytest.approx(50_000)


def test_the_silence_limit_grows_only_on_a_lossy_link() -> None:
    q = LinkQuality()
    for _ in range(5):
        q.rtt_sample(0.2)
    assert q.silence_limit(2.5) == 2.5
    q.stalled(2.0)  # one stray stall (a busy CPU) barely moves it
    assert q.silence_limit(2.5) < 3.2
    for _ in range(5):
        q.stalled(2.0)
    assert 5.0 < q.silence_limit(2.5) <= 10.0
    for _ in range(100):
        q.stalled(9.0)
    assert q.silence_limit(2.5) == 10.0  # never more than four times the base


def test_transport_packets_keep_a_peer_alive_while_its_frames_are_held_back() -> None:
    a, b = pair(retransmit=False)
    b.handle(a.session.ping(0.0), 0.0)
    s = b.session
    assert s.is_dead(3.0, 2.5)  # nothing for 3 s
    s.heard_from_transport(2.0)  # but an SCTP SACK arrived at 2 s
    assert not s.is_dead(3.0, 2.5) and s.is_dead(5.0, 2.5)
    s.heard_from_transport(1.0)  # older news changes nothing
    assert s.last_heard == 2.0
