"""Bundling, priority and adaptive ACK timeouts in the sans-IO session."""

from __future__ import annotations

import struct

import pytest
from test_protocol import FPS, A, B, mid, pair

from volli_nb.base.errors import ChannelBindingFailed, MalformedFrame, UsageError
from volli_nb.core.protocol import frames as f
from volli_nb.core.protocol import session as p
from volli_nb.core.protocol.link_quality import LinkQuality

ENVELOPE = b"e" * 700  # about what a 100-byte text becomes once sealed


def flow(sender: p.Session, receiver: p.Session, now: float = 0.0) -> list[p.Event]:
    """Send what ``sender`` has, let ``receiver``'s app accept every message, return its ACKs'
    events on the sender side (and the receiver's events, first)."""
    got: list[p.Event] = []
    for frame in sender.data_to_send(now):
        for event in receiver.receive(frame, now):
            got.append(event)
            if isinstance(event, p.MessageReceived):
                receiver.accept(event.message_id)
    for frame in receiver.data_to_send(now):
        got.extend(sender.receive(frame, now))
    return got


def test_eighty_queued_messages_travel_in_one_frame_and_are_acked_by_one_signed_ack() -> None:
    a, b = pair(retransmit=False)
    for i in range(80):
        a.queue_message(mid(i), ENVELOPE, 0.0)
    assert a.in_flight == [mid(i) for i in range(80)]
    out = a.data_to_send(0.0)
    assert len(out) == 1 and out[0][1] == f.BUNDLE
    events = b.receive(out[0], 0.0)
    assert events == [p.MessageReceived(mid(i), ENVELOPE) for i in range(80)]
    for event in events:
        assert isinstance(event, p.MessageReceived)
        b.accept(event.message_id)
    acks = b.data_to_send(0.01)
    assert len(acks) == 1 and acks[0][1] == f.ACK
    assert a.receive(acks[0], 0.01) == [p.Acked(tuple(mid(i) for i in range(80)), 0.01)]
    assert a.in_flight == []
    assert (a.stats.bundles_out, b.stats.bundles_in, b.stats.acks_out) == (1, 1, 1)


def test_bundles_respect_the_frame_size_and_keep_order() -> None:
    a, b = pair(retransmit=False, max_message_size=16 * 1024)
    for i in range(60):
        a.queue_message(mid(i), ENVELOPE, 0.0)
    out = a.data_to_send(0.0)
    assert all(len(frame) <= 16 * 1024 for frame in out)
    assert len(out) == 3  # 60 × 724 bytes in 16 KiB frames
    got = [e.message_id for frame in out for e in b.receive(frame, 0.0)]  # type: ignore[union-attr]
    assert got == [mid(i) for i in range(60)]


def test_a_large_message_goes_alone_between_bundles_in_order() -> None:
    a, b = pair(retransmit=False, max_message_size=16 * 1024)
    big = b"B" * 40_000
    a.queue_message(mid(1), ENVELOPE, 0.0)
    a.queue_message(mid(2), ENVELOPE, 0.0)
    a.queue_message(mid(3), big, 0.0)
    a.queue_message(mid(4), ENVELOPE, 0.0)
    out = a.data_to_send(0.0)
    kinds = [frame[1] for frame in out]
    assert kinds == [f.BUNDLE, f.CHUNK, f.CHUNK, f.CHUNK, f.MESSAGE]
    events = [e for frame in out for e in b.receive(frame, 0.0)]
    assert [e.message_id for e in events] == [mid(1), mid(2), mid(3), mid(4)]  # type: ignore[union-attr]
    assert events[2] == p.MessageReceived(mid(3), big)


def test_bundling_can_be_turned_off() -> None:
    a, _ = pair(retransmit=False, bundle=False)
    for i in range(5):
        a.queue_message(mid(i), ENVELOPE, 0.0)
    assert [frame[1] for frame in a.data_to_send(0.0)] == [f.MESSAGE] * 5


def test_requeueing_an_id_before_it_leaves_sends_only_the_newest_bytes() -> None:
    a, b = pair(retransmit=False)
    a.queue_message(mid(1), b"old", 0.0)
    a.queue_message(mid(1), b"new", 0.0)
    out = a.data_to_send(0.0)
    assert [e for frame in out for e in b.receive(frame, 0.0)] == [
        p.MessageReceived(mid(1), b"new")
    ]


def test_control_frames_overtake_bulk_data_when_the_budget_is_spent() -> None:
    a, b = pair(retransmit=False)
    a.queue_message(mid(1), b"x" * 1_000_000, 0.0)
    first = a.data_to_send(0.0, max_bytes=64 * 1024)
    assert [frame[1] for frame in first] == [f.CHUNK]
    assert a.queued_bytes > 900_000 and a.has_output
    # Meanwhile B sends A a message; A's ACK for it goes before the rest of the bulk.
    for frame in b.send_message(mid(9), ENVELOPE, 0.0):
        a.receive(frame, 0.0)
    a.accept(mid(9))
    second = a.data_to_send(0.0, max_bytes=64 * 1024)
    assert [frame[1] for frame in second] == [f.ACK, f.CHUNK]
    rest = a.data_to_send(0.0)
    events = [e for frame in first + second[1:] + rest for e in b.receive(frame, 0.0)]
    assert events == [p.MessageReceived(mid(1), b"x" * 1_000_000)]
    assert a.queued_bytes == 0 and not a.has_output


def test_lossy_bundles_are_retransmitted_as_bundles_until_acked() -> None:
    a, b = pair(retransmit=True, rto_initial=1.0)
    for i in range(10):
        a.queue_message(mid(i), ENVELOPE, 0.0)
    assert len(a.data_to_send(0.0)) == 1  # lost on the way
    assert a.data_to_send(0.5) == []
    again = a.data_to_send(1.0)
    assert len(again) == 1 and again[0][1] == f.BUNDLE
    for event in b.receive(again[0], 1.0):
        b.accept(event.message_id)  # type: ignore[union-attr]
    (ack,) = b.data_to_send(1.0)
    assert a.receive(ack, 1.1) == [p.Acked(tuple(mid(i) for i in range(10)), None)]
    assert a.stats.retransmissions == 10 and a.quality.loss > 0


def test_a_bundle_before_the_channel_binding_is_refused() -> None:
    b = p.Session(B, A.public, expected_fingerprints=FPS)
    with pytest.raises(ChannelBindingFailed):
        b.receive(f.make_bundle([mid(1) + b"e", mid(2) + b"e"]), 0.0)


def test_bundle_frames_round_trip() -> None:
    frame = f.make_bundle([mid(1) + b"one", mid(2) + b"two"])
    decoded = f.decode_frame(frame)
    assert decoded == f.BundleFrame(
        (f.MessageFrame(mid(1), b"one"), f.MessageFrame(mid(2), b"two"))
    )
    assert f.encode_frame(decoded) == frame


def _bundle(count: int, *items: bytes, tail: bytes = b"") -> bytes:
    body = struct.pack(">H", count) + b"".join(struct.pack(">I", len(i)) + i for i in items)
    return bytes([f.PROTOCOL_VERSION, f.BUNDLE]) + body + tail


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        (bytes([1, f.BUNDLE]), "too short"),
        (_bundle(1, mid(1) + b"e"), "2 to 512"),
        (_bundle(513, *(mid(i) + b"e" for i in range(513))), "2 to 512"),
        (_bundle(2, mid(1) + b"e"), "ends inside the length"),
        (_bundle(2, mid(1) + b"e", mid(2)), "too short for an id"),
        (_bundle(2, mid(1) + b"e", mid(1) + b"e"), "same message id twice"),
        (_bundle(2, mid(1) + b"e", mid(2) + b"e", tail=b"!"), "stray bytes"),
        (_bundle(2, mid(1) + b"e")[:-1] + struct.pack(">I", 99) + mid(2), "past the end"),
    ],
)
def test_malformed_bundles_get_typed_errors(frame: bytes, words: str) -> None:
    with pytest.raises(MalformedFrame, match=words):
        f.decode_frame(frame)


def test_make_bundle_refuses_bad_input() -> None:
    with pytest.raises(UsageError):
        f.make_bundle([mid(1) + b"e"])
    with pytest.raises(UsageError):
        f.make_bundle([mid(1) + b"e", mid(2)])


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
        for frame in [a.ping(0.0)]:
            b.receive(frame, 0.0)
        for frame in b.data_to_send(0.0):
            a.receive(frame, 0.8)
    a.queue_message(mid(1), ENVELOPE, 10.0)
    a.data_to_send(10.0)
    deadline = a.next_deadline()
    assert deadline is not None and 3.3 <= deadline - 10.0 < 4.5
    assert a.handle_timer(deadline - 0.01) == []
    assert a.handle_timer(deadline) == [p.DeliveryTimeout(mid(1))]


def test_over_a_reliable_channel_a_late_message_does_not_time_out_while_acks_flow() -> None:
    a, b = pair(retransmit=False, ack_timeout=5.0)
    a.queue_message(mid(1), ENVELOPE, 0.0)
    a.data_to_send(0.0)  # still on its way (behind a slow, lossy queue)
    for t in range(1, 10):  # meanwhile other messages are acknowledged every second
        a.queue_message(mid(100 + t), ENVELOPE, float(t))
        for frame in a.data_to_send(float(t)):
            for event in b.receive(frame, float(t)):
                b.accept(event.message_id)  # type: ignore[union-attr]
        for frame in b.data_to_send(float(t)):
            a.receive(frame, float(t))
        assert a.handle_timer(float(t)) == []
    assert a.in_flight == [mid(1)]
    assert a.handle_timer(13.9) == []
    assert a.handle_timer(14.0) == [p.DeliveryTimeout(mid(1))]  # 5 s after the last ACK


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
    b.receive(a.ping(0.0), 0.0)
    assert b.is_dead(3.0, 2.5)  # nothing for 3 s
    b.heard_from_transport(2.0)  # but an SCTP SACK arrived at 2 s
    assert not b.is_dead(3.0, 2.5) and b.is_dead(5.0, 2.5)
    b.heard_from_transport(1.0)  # older news changes nothing
    assert b.last_heard == 2.0
