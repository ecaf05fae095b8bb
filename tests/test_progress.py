"""Progress without a network: the feed, the frame trace over real frames, the renderers,
and where a bar belongs (a kernel, a terminal, or nowhere)."""

from __future__ import annotations

import io
import os
import pty

import pytest
from protocol_pairs import A, pair

from volli_nb.base import console
from volli_nb.core.crypto.envelope import bundle
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.eventlog import EventLog
from volli_nb.core.progress import ProgressFeed, ProgressUpdate
from volli_nb.core.protocol import frames
from volli_nb.core.protocol.chunks import make_chunks
from volli_nb.net.frame_trace import PROGRESS_MIN_BYTES, FrameTrace
from volli_nb.ui.progress import ProgressBars, bar_line, described, outcome_line, show_progress

PEER = "b" * 16


def recorder(feed: ProgressFeed) -> list[ProgressUpdate]:
    seen: list[ProgressUpdate] = []
    feed.subscribe(seen.append)
    return seen


def test_feed_tracks_start_update_finish_and_survives_a_broken_listener() -> None:
    now = [10.0]
    feed = ProgressFeed(clock=lambda: now[0])
    assert not feed.watched
    seen = recorder(feed)
    feed.subscribe(lambda _u: 1 / 0)  # a broken bar must not break the sender
    feed.start("k", "job", total=4, unit="msg", stage="sending")
    feed.update("k", advance=1)
    feed.update("k", done=3, stage="ACKs arriving")
    assert feed.update("unknown", done=1) is None
    assert feed.active["k"].fraction == 0.75
    done = feed.finish("k", "4 acknowledged")
    assert done is not None and done.finished and done.done == 4 and not done.failed
    assert feed.finish("k", "again") is None and "k" not in feed.active
    assert [(u.done, u.stage, u.outcome) for u in seen] == [
        (0, "sending", ""),
        (1, "sending", ""),
        (3, "ACKs arriving", ""),
        (4, "ACKs arriving", "4 acknowledged"),
    ]
    feed.start("f", "job", total=10, unit="B")
    feed.update("f", done=2)
    failed = feed.finish("f", "peer went offline", failed=True)
    assert failed is not None and failed.done == 2 and failed.failed  # what was really done


def _large_message(size: int) -> tuple[bytes, list[bytes]]:
    """A BUNDLE frame holding one envelope of about ``size`` bytes, chunked."""
    sender, _ = pair()
    text = b'{"type":"text","text":"' + b"e" * size + b'"}'
    sealed = sender.seal(0, text)
    frame = frames.make_bundle_frame(sender.k.tag, bundle(A, [sealed]))
    return sealed.message_id, make_chunks(frame, 7, 16 * 1024)


def test_frame_trace_reports_a_chunked_send_then_its_ack() -> None:
    log, feed = EventLog(), ProgressFeed()
    seen = recorder(feed)
    trace = FrameTrace(log, feed)
    message_id, chunks = _large_message(PROGRESS_MIN_BYTES * 2)
    frame_bytes = sum(len(c) - 11 for c in chunks)  # each chunk: 11 bytes of header
    trace.sealing(PEER, message_id, PROGRESS_MIN_BYTES * 2)
    trace.expect(PEER, message_id, frame_bytes - frames.bundle_frame_size(0, 1))
    for chunk in chunks:
        trace.sent(PEER, chunk)
    trace.acked(PEER, (message_id,))
    stages = [u.stage for u in seen]
    assert stages[:2] == ["encrypting", "queued"]
    assert stages[2:-1] == ["sending"] * (len(chunks) - 1) + ["waiting for the signed ACK"]
    assert [u.done for u in seen[2:-1]] == sorted(u.done for u in seen[2:-1])
    assert seen[-2].done == frame_bytes and seen[-1].outcome == "acknowledged"
    assert abs(seen[-1].total - frame_bytes) <= 8  # type: ignore[operator]  # (varint sizes)
    (entry,) = log.entries(category="frame")  # one entry for the whole chunked frame
    size = f"{frame_bytes / 1e6:.1f} MB"
    assert entry.message == f"sent MESSAGE {message_id.hex()[:8]} ({size} in {len(chunks)} chunks)"
    assert entry.data["chunks"] == len(chunks) and entry.data["message_ids"] == [message_id.hex()]


def test_frame_trace_receiving_and_a_dropped_link() -> None:
    log, feed = EventLog(), ProgressFeed()
    seen = recorder(feed)
    trace = FrameTrace(log, feed)
    message_id, chunks = _large_message(100_000)
    for chunk in chunks:
        trace.received(PEER, chunk)
    assert seen[0].stage == "receiving" and seen[0].total is None
    assert seen[-1].outcome == "received"
    assert seen[-1].done == sum(len(c) - 11 for c in chunks)
    trace.expect(PEER, message_id, PROGRESS_MIN_BYTES)
    trace.sent(PEER, chunks[0])
    trace.received(PEER, chunks[0])  # half a frame, then the link goes
    trace.dropped(PEER, "no heartbeat")
    ended = {u.key.split(":")[0]: u for u in seen[-2:]}
    assert ended["send"].failed and ended["send"].outcome == "not acknowledged: no heartbeat"
    assert ended["receive"].failed and ended["receive"].outcome == "incomplete: no heartbeat"
    assert not feed.active and not trace._streams


def test_frame_trace_logs_bundles_and_acks_with_ids_and_ignores_pings_and_junk() -> None:
    log = EventLog()
    trace = FrameTrace(log, ProgressFeed())
    me, sender = Identity.generate(), pair()[0]
    items = [sender.seal(i) for i in range(1, 4)]
    ids = [s.message_id for s in items]
    sent = frames.make_bundle_frame(sender.k.tag, bundle(A, items))
    trace.sent(PEER, sent)
    trace.sent(PEER, frames.make_ack(me, PEER, ids))
    trace.received(PEER, frames.make_ping(b"n" * 8))
    trace.received(PEER, b"\x02")  # too short
    trace.received(PEER, bytes([2, frames.BUNDLE]) + b"\xff")  # malformed: the session's job
    bundled, ack = log.entries()
    assert bundled.message == f"sent BUNDLE of 3 ({len(sent) / 1000:.1f} KB)"
    assert bundled.data["count"] == 3 and bundled.data["bytes"] == len(sent)
    assert ack.message.startswith("sent ACK for 3 (") and ack.data["kind"] == "frame.ack"
    assert bundled.data["message_ids"] == ack.data["message_ids"] == [i.hex() for i in ids]


def test_a_bar_fits_where_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(console.PROGRESS_ENV, raising=False)
    assert console.progress_target(io.StringIO()) is None  # a pipe, a file, a test
    assert show_progress(ProgressFeed()) is None  # under pytest: no kernel, no terminal
    leader, follower = pty.openpty()
    try:
        with os.fdopen(os.dup(follower), "w") as tty:
            monkeypatch.setenv("TERM", "xterm")
            assert console.progress_target(tty) == "terminal"
            monkeypatch.setenv("TERM", "dumb")
            assert console.progress_target(tty) is None
            monkeypatch.setenv(console.PROGRESS_ENV, "off")
            assert console.progress_target(tty) is None
    finally:
        os.close(leader)
        os.close(follower)
    monkeypatch.setenv(console.PROGRESS_ENV, "terminal")
    assert console.progress_target(io.StringIO()) == "terminal"
    assert not console.in_jupyter_kernel()  # ipykernel may be imported; no kernel runs


def test_terminal_bars_and_the_shell_lines() -> None:
    feed, out = ProgressFeed(), io.StringIO()
    bars = show_progress(feed, target="terminal", file=out)
    assert isinstance(bars, ProgressBars)
    feed.start("send:x", "3f2a1b0c → bob", total=None, unit="B", stage="encrypting")
    feed.update("send:x", total=2_000_000, stage="sending")
    feed.update("send:x", done=1_000_000)
    running = feed.active["send:x"]
    assert "50%|" in bar_line(running, 100) and bar_line(running).endswith("sending")
    feed.finish("send:x", "acknowledged")
    text = out.getvalue()
    assert "3f2a1b0c → bob" in text and "100%" in text and "2.00M/2.00M" in text
    assert "acknowledged" in text and not bars.bars
    line = outcome_line(
        ProgressUpdate("k", "flush to bob", 60, 60, "msg", "", 0.0, "60 acknowledged")
    )
    assert line.startswith("✓ flush to bob: 60 acknowledged (60 msg, ")
    with pytest.raises(ValueError):
        show_progress(feed, target="printer")
    bars.close()


def test_bench_progress_on_stderr_only_where_it_fits(capsys: pytest.CaptureFixture[str]) -> None:
    from volli_nb.lab.bench.progress import BenchProgress

    quiet = BenchProgress(3)  # under pytest: no terminal, no kernel
    quiet.step("aiortc: setup")
    quiet.close()
    assert capsys.readouterr() == ("", "")
    bar, feed = BenchProgress(3, target="terminal"), ProgressFeed()
    bar.watch(feed)
    bar.step("aiortc: setup")
    bar.step("volli_nb: flush 200")
    feed.start("flush:x", "flush to bench-b", total=200, unit="msg", stage="sending")
    feed.update("flush:x", done=150, stage="200/200 sent, ACKs arriving")
    bar.bar.refresh()
    shown = capsys.readouterr()
    assert shown.out == ""  # stdout stays clean for --json
    assert "bench" in shown.err and "aiortc: setup" in shown.err
    assert "volli_nb: flush 200: 150/200 msg 200/200 sent, ACKs arriving" in shown.err
    bar.close()


def test_a_bar_names_the_peer_where_a_name_is_known() -> None:
    """The network describes a task by short ids; what is drawn says who."""
    names = {"qm7xk2pv4hfa5nbc": "bob"}.get
    update = ProgressUpdate(
        "send:3f2a1b0c99:qm7xk2pv4hfa5nbc", "3f2a1b0c → qm7xk2pv", 1, 2, "B", "", 0.0
    )
    assert described(update, lambda p: names(p) or p[:8]) == "3f2a1b0c → bob"
    assert described(update, None) == "3f2a1b0c → qm7xk2pv"
    assert "3f2a1b0c → bob" in bar_line(update, 80, lambda p: names(p) or p[:8])
    flush = ProgressUpdate("flush:qm7xk2pv4hfa5nbc", "flush to qm7xk2pv", 1, 2, "msg", "", 0.0)
    assert described(flush, lambda _p: "bob") == "flush to bob"
    feed, out = ProgressFeed(), io.StringIO()
    bars = ProgressBars(feed, "terminal", file=out, names=lambda _p: "bob")
    feed.start("send:ab:qm7xk2pv4hfa5nbc", "ab → qm7xk2pv", total=10, unit="B", stage="x")
    feed.finish("send:ab:qm7xk2pv4hfa5nbc", "acknowledged")
    assert "ab → bob" in out.getvalue()
    bars.close()
