"""Signed refusals and clocks on the wire, in the sans-IO session (no network)."""

from __future__ import annotations

import dataclasses

import pytest
from protocol_pairs import EVE, A, B, Peer, mid, session
from protocol_pairs import pair as pair_of

from volli_nb.base.errors import (
    BadSignature,
    ChannelBindingFailed,
    DecryptionFailed,
    DuplicateMessageId,
    MalformedFrame,
    MessageKeyUnavailable,
    NotARecipient,
    StaleMessage,
    StorageError,
    StorageFull,
    UnknownPeer,
    VolliError,
)
from volli_nb.core.protocol import frames as f
from volli_nb.core.protocol import refusal as r
from volli_nb.core.protocol import session as p
from volli_nb.core.protocol.clock_skew import SkewMonitor, SkewReading, describe_skew
from volli_nb.core.protocol.events import Verdict

NOW_MS = 1_700_000_000_000


def pair() -> tuple[Peer, Peer]:
    return pair_of(retransmit=False, ack_timeout=5.0)


def offered(a: Peer, b: Peer, ids: list[int]) -> None:
    """A sends these; B's session hands them up (not answered yet)."""
    for i in ids:
        a.queue(i, 0.0)
    for frame in a.session.data_to_send(0.0):
        b.session.receive(frame, 0.0)


def refuse(b: Peer, ids: list[int], error: VolliError, clock_ms: int = NOW_MS) -> None:
    b.session.settle(Verdict((), tuple((mid(i), error) for i in ids)), clock_ms=clock_ms)


def session_id(a: Peer) -> bytes:
    return a.k.session_id


def test_a_stale_message_is_refused_in_a_signed_frame_and_leaves_flight() -> None:
    a, b = pair()
    offered(a, b, [1, 2])
    refuse(b, [1, 2], StaleMessage("180 s in the future"))
    (frame,) = b.session.data_to_send(0.1)
    decoded = f.decode_frame(frame)
    assert isinstance(decoded, r.RefuseFrame) and decoded.code == r.RefusalCode.CLOCK_SKEW
    assert a.handle(frame, 0.1) == [p.Refused((mid(1), mid(2)), r.RefusalCode.CLOCK_SKEW, NOW_MS)]
    assert a.session.in_flight == []
    assert a.session.handle_timer(60.0) == []  # no "no ACK before the timeout" later


def test_refusals_go_out_before_the_acks_of_later_messages() -> None:
    """Race found in the soak: a sender that saw the ACK of a later message went on and
    resent a refused id; the refusal, framed after that ACK, then cancelled the resend.
    Refusals precede ACKs, so an ACK means every earlier refusal has arrived."""
    a, b = pair()
    offered(a, b, [1, 2])
    b.session.settle(Verdict((mid(2),), ((mid(1), UnknownPeer("a relayed copy")),)), clock_ms=1)
    kinds = [type(f.decode_frame(frame)).__name__ for frame in b.session.data_to_send(0.1)]
    assert kinds == ["RefuseFrame", "AckFrame"]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (StorageFull("disk full"), r.RefusalCode.STORAGE_FULL),
        (StorageError("I/O error"), r.RefusalCode.STORAGE_ERROR),
        (StaleMessage("old"), r.RefusalCode.CLOCK_SKEW),
        (NotARecipient("not for me"), r.RefusalCode.NOT_RECIPIENT),
        (UnknownPeer("who?"), r.RefusalCode.UNKNOWN_SENDER),
        (DuplicateMessageId("someone else's"), r.RefusalCode.DUPLICATE_ID),
        (MessageKeyUnavailable("expired"), r.RefusalCode.KEY_UNAVAILABLE),
        (BadSignature("forged"), None),
        (DecryptionFailed("tampered"), None),
    ],
)
def test_only_errors_the_sender_can_act_on_are_answered(
    error: VolliError, code: r.RefusalCode | None
) -> None:
    assert r.refusal_code(error) == code
    a, b = pair()
    offered(a, b, [1])
    refuse(b, [1], error)
    frames = b.session.data_to_send(0.0)
    assert len(frames) == (0 if code is None else 1)
    assert r.refusal_code(None) is None


def test_refusals_batch_per_code_and_split_at_512_ids() -> None:
    a, b = pair_of(retransmit=False, ack_timeout=5.0, max_message_size=1 << 30)
    offered(a, b, list(range(600)))
    for i in range(600):
        error = StorageFull("full") if i < 550 else NotARecipient("rotated")
        refuse(b, [i], error, NOW_MS + i)
    events = [e for frame in b.session.data_to_send(0.0) for e in a.handle(frame, 0.0)]
    assert [(len(e.message_ids), e.code) for e in events if isinstance(e, p.Refused)] == [
        (512, r.RefusalCode.STORAGE_FULL),
        (38, r.RefusalCode.STORAGE_FULL),
        (50, r.RefusalCode.NOT_RECIPIENT),
    ]
    assert {e.clock_ms for e in events if isinstance(e, p.Refused)} == {NOW_MS + 549, NOW_MS + 599}
    assert a.session.in_flight == []


def test_a_forged_misaddressed_or_replayed_refusal_changes_nothing() -> None:
    a, b = pair()
    offered(a, b, [1])
    sid = session_id(a)
    by_eve = r.sign_refusal(EVE, A.peer_id, [mid(1)], r.RefusalCode.STORAGE_FULL, NOW_MS, sid)
    claimed = dataclasses.replace(by_eve, sender=B.peer_id)  # B's name, EVE's signature
    with pytest.raises(BadSignature):
        a.session.receive(f.encode_frame(claimed), 0.0)
    with pytest.raises(UnknownPeer, match="this session is"):
        a.session.receive(f.encode_frame(by_eve), 0.0)
    to_eve = r.sign_refusal(B, EVE.peer_id, [mid(1)], r.RefusalCode.STORAGE_FULL, NOW_MS, sid)
    with pytest.raises(UnknownPeer, match="addressed to"):
        a.session.receive(f.encode_frame(to_eve), 0.0)
    other = r.sign_refusal(B, A.peer_id, [mid(1)], r.RefusalCode.STORAGE_FULL, NOW_MS, bytes(32))
    with pytest.raises(BadSignature, match="another session"):  # B's, from another session
        a.session.receive(f.encode_frame(other), 0.0)
    assert a.session.in_flight == [mid(1)]


def test_a_refusal_before_the_handshake_is_a_protocol_violation() -> None:
    early = session(A, B)
    refusal = r.sign_refusal(B, A.peer_id, [mid(1)], r.RefusalCode.CLOCK_SKEW, NOW_MS, bytes(32))
    with pytest.raises(ChannelBindingFailed):
        early.receive(f.encode_frame(refusal), 0.0)


def _body(code: int = 3, clock: int = NOW_MS, ids: bytes = b"\x00\x01" + mid(1)) -> bytes:
    head = f.encode_frame(
        r.sign_refusal(B, A.peer_id, [mid(1)], r.RefusalCode.STORAGE_FULL, NOW_MS, bytes(32))
    )[:22]
    return head + bytes((code,)) + clock.to_bytes(8, "big") + ids + bytes(64)


@pytest.mark.parametrize(
    "change",
    [
        {"code": 0},
        {"code": 99},
        {"clock": 2**53},
        {"ids": b"\x00\x00"},
        {"ids": b"\x00\x02" + mid(1) + mid(1)},
        {"ids": b"\x00\x02" + mid(1)},
    ],
)
def test_a_malformed_refusal_is_a_malformed_frame(change: dict[str, object]) -> None:
    assert isinstance(f.decode_frame(_body()), r.RefuseFrame)
    with pytest.raises(MalformedFrame):
        f.decode_frame(_body(**change))  # type: ignore[arg-type]
    with pytest.raises(MalformedFrame):
        f.decode_frame(_body() + b"\x00")  # a trailing byte


def test_a_refusal_round_trips_byte_for_byte() -> None:
    refusal = r.sign_refusal(
        B, A.peer_id, [mid(1), mid(2)], r.RefusalCode.CLOCK_SKEW, NOW_MS, bytes(32)
    )
    data = f.encode_frame(refusal)
    assert f.decode_frame(data) == refusal and f.encode_frame(f.decode_frame(data)) == data


def test_pings_carry_the_clock_once_the_channel_is_bound() -> None:
    a, b = pair()
    ping = a.session.ping
    assert b.session.receive(ping(1.0, clock_ms=NOW_MS), 1.0) == [p.PeerClock(NOW_MS)]
    assert b.session.receive(ping(1.5), 1.5) == []  # a ping that does not say its clock
    early = session(B, A)
    assert early.receive(ping(2.0, clock_ms=NOW_MS), 2.0) == []  # not trusted before HELLO
    assert len(early.data_to_send(2.0)) == 1  # but answered
    frame = f.decode_frame(f.make_ping(b"12345678", NOW_MS))
    assert frame == f.PingFrame(b"12345678", NOW_MS)
    with pytest.raises(MalformedFrame, match="u64 clock"):
        f.decode_frame(bytes([f.PROTOCOL_VERSION, f.PING]) + b"12345678")  # the old 8-byte PING


def test_the_refusal_in_words() -> None:
    code = r.RefusalCode
    assert r.describe(code.CLOCK_SKEW, "bob", -180.2) == (
        "bob refused: your clock is 180 s ahead of theirs"
    )
    assert r.describe(code.CLOCK_SKEW, "bob", 700) == (
        "bob refused: your clock is 700 s behind theirs"
    )
    assert "though your clocks agree" in r.describe(code.CLOCK_SKEW, "bob", 0.2)
    assert r.describe(code.STORAGE_FULL, "bob", 0) == "bob refused: their storage is full"
    for each in code:
        assert r.describe(each, "bob", 0).startswith("bob refused")


def test_the_skew_monitor_reports_the_first_reading_and_each_crossing_once() -> None:
    monitor = SkewMonitor(threshold=30.0)
    now = NOW_MS / 1000
    first = monitor.observe(NOW_MS + 180_000, now)
    assert first == SkewReading(pytest.approx(180.0), within=False, first=True)  # type: ignore[arg-type]
    assert monitor.observe(NOW_MS + 179_000, now) is None  # still apart: said once
    assert monitor.observe(NOW_MS + 29_500, now) is None  # inside the hysteresis band
    back = monitor.observe(NOW_MS + 200, now)
    assert back is not None and back.within and not back.first
    assert monitor.observe(NOW_MS + 29_900, now) is None  # within the threshold
    assert monitor.observe(NOW_MS - 31_000, now) == SkewReading(-31.0, within=False, first=False)
    assert SkewMonitor().observe(NOW_MS, now) == SkewReading(0.0, within=True, first=True)


def test_the_skew_in_words_says_which_messages_fail() -> None:
    assert describe_skew(180) == (
        "their clock is 180 s ahead of ours: what they send us is refused until a clock is fixed"
    )
    assert describe_skew(-180).endswith(
        "behind ours: what we send them is refused until a clock is fixed"
    )
    assert describe_skew(-700).endswith("messages both ways are refused until a clock is fixed")
    assert describe_skew(45).endswith("(envelopes still pass: 120 s ahead or 600 s old)")
    assert describe_skew(0.25) == "their clock agrees with ours (within 0.2 s)"
