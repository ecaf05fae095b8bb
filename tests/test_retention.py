"""Bounded tables: the pruning timer driven by an injected clock over a long virtual run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from volli_nb.app.chat import chat_message
from volli_nb.app.housekeeping import Housekeeping
from volli_nb.app.peer_sessions import PeerSessions
from volli_nb.app.storage_health import StorageHealth
from volli_nb.base.clock import VirtualClock
from volli_nb.base.errors import UsageError
from volli_nb.core.body import encode_body
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.eventlog import EventLog
from volli_nb.core.store.database import KDF_MIN, Database
from volli_nb.core.store.message_queue import OutgoingMessage, PersistentMessageQueue, Status
from volli_nb.core.store.retention import SEEN_WINDOW, Pruner, Retention

RATE = 3  # messages per virtual second, each way
STEP = 2.0  # virtual seconds between ticks
MINUTES = 30


def count(db: Database, sql: str) -> int:
    return int(db.fetch(sql)[0][0])


def test_the_pruning_timer_keeps_seen_and_delivered_rows_bounded(tmp_path: Path) -> None:
    clock = VirtualClock(1_700_000_000.0)
    db = Database.open(tmp_path / "p.sqlite", "pass", kdf=KDF_MIN, clock=clock)
    queue = PersistentMessageQueue(db, clock=clock)
    log = EventLog(clock=clock)
    keep = Retention(delivered_for=600.0, every=60.0)
    chores = Housekeeping(Pruner(db, keep), StorageHealth(db, log), log, clock=clock)
    per_tick = int(RATE * STEP)
    seen_bound = RATE * (keep.seen_for + keep.every + STEP)
    delivered_bound = RATE * (keep.delivered_for + keep.every + STEP)
    n, peaks = 0, [0, 0]
    first_in = (0).to_bytes(16, "big")
    while clock.now < 1_700_000_000.0 + MINUTES * 60:
        with db.transaction():
            for _ in range(per_tick):
                n += 1
                inbound, outbound = (2 * n).to_bytes(16, "big"), (2 * n + 1).to_bytes(16, "big")
                db.store_received(inbound, "conv", "bob", n, int(clock.now * 1000), b"hi")
                queue.enqueue(OutgoingMessage(outbound, "conv", "bob", b"hello", n))
                assert queue.acknowledge(outbound, "bob")
        clock.advance(STEP)
        chores.run_once()
        seen = count(db, "SELECT COUNT(*) FROM seen")
        delivered = count(db, f"SELECT COUNT(*) FROM outbox WHERE status = '{Status.DELIVERED}'")
        assert seen <= seen_bound and delivered <= delivered_bound, (clock.now, seen, delivered)
        peaks = [max(peaks[0], seen), max(peaks[1], delivered)]
    total = n
    assert total == RATE * MINUTES * 60  # 5,400 each way: unpruned, the tables would hold that
    assert peaks[0] > RATE * SEEN_WINDOW  # the window itself is kept, not less
    assert peaks[1] > RATE * keep.delivered_for
    assert count(db, "SELECT COUNT(*) FROM messages") == total  # history is the user's: kept
    assert db.is_seen((2).to_bytes(16, "big"))  # a stored message still counts as seen
    assert not db.is_seen(first_in)
    pruned = [e for e in log if e.data.get("kind") == "store.pruned"]
    assert pruned and all(e.data["seen"] + e.data["delivered"] > 0 for e in pruned)
    assert chores.run_once() is None  # the timer is not due again yet
    db.close()


def test_a_seen_id_is_kept_as_long_as_a_replay_could_pass(tmp_path: Path) -> None:
    clock = VirtualClock(1_700_000_000.0)
    with Database.open(tmp_path / "p.sqlite", "pass", kdf=KDF_MIN, clock=clock) as db:
        db.mark_seen(bytes([0xAA]) * 16, "bob")
        pruner = Pruner(db)
        clock.advance(SEEN_WINDOW)
        assert pruner.tick(clock.now) is not None and db.is_seen(bytes([0xAA]) * 16)
        clock.advance(pruner.retention.seen_for - SEEN_WINDOW + pruner.retention.every)
        pruned = pruner.tick(clock.now)
        assert pruned is not None and pruned.seen == 1
        assert not db.is_seen(bytes([0xAA]) * 16)


def test_retention_refuses_a_window_shorter_than_freshness() -> None:
    with pytest.raises(UsageError, match="would let a replay in"):
        Retention(seen_for=SEEN_WINDOW - 1)
    with pytest.raises(UsageError):
        Retention(every=0)


def test_a_sent_message_whose_rows_expired_shows_as_delivered(tmp_path: Path) -> None:
    """The pruner records the rows it deletes on the sent message; a row deleted by
    anyone else leaves the status unknown, never delivered (issue 26, item 2)."""
    clock = VirtualClock(1_700_000_000.0)
    with Database.open(tmp_path / "p.sqlite", "pass", kdf=KDF_MIN, clock=clock) as db:
        queue = PersistentMessageQueue(db, clock=clock)
        db.ensure_conversation("conv", ["me", "bob", "carol"])
        for mid in (bytes(16), b"\x01" * 16):
            with db.transaction():
                db.store_sent(mid, "conv", "me", 1, 1, encode_body("hi"))
                for peer in ("bob", "carol"):
                    queue.add(OutgoingMessage(mid, "conv", peer, b"", 1), in_history=True)
            assert queue.acknowledge(mid, "bob")
        clock.advance(7200)
        assert Pruner(db).prune(clock.now).delivered == 2
        db.execute("DELETE FROM outbox WHERE message_id = ?", ((b"\x01" * 16).hex(),))

        def shown(mid: bytes) -> str:
            stored = db.get_message(mid)
            assert stored is not None
            return chat_message(stored, queue.statuses).status

        assert queue.statuses(bytes(16)) == {"carol": Status.PENDING, "bob": Status.DELIVERED}
        assert shown(bytes(16)) == "mixed"
        assert queue.statuses(b"\x01" * 16) == {"bob": "delivered", "carol": "unknown"}
        assert shown(b"\x01" * 16) == "mixed"
        assert chat_message(db.get_message(bytes(16)), lambda _mid: {}).status == "unknown"


def test_a_wall_clock_stepped_back_delays_neither_retries_nor_pruning(tmp_path: Path) -> None:
    """A row scheduled for 1 s later, then the clock set back an hour (NTP, a VM resumed):
    it was waiting for the hour to come round again; the pruner too."""
    clock = VirtualClock(1_700_000_000.0)
    db = Database.open(tmp_path / "p.sqlite", "pw", kdf=KDF_MIN, clock=clock)
    queue = PersistentMessageQueue(db, clock=clock)
    row = queue.enqueue(OutgoingMessage(b"\x01" * 16, "c", "bob", b"x", 1))
    queue.mark_failed(row, "no ACK before the timeout")  # due again in 1 s
    pruner = Pruner(db)
    assert pruner.tick(clock()) is not None and pruner.tick(clock() + 1) is None
    clock.now -= 3600  # the wall clock steps back
    clock.advance(2)
    assert [r.id for r in queue.due()] == [row]
    assert [key[0] for key in queue.due_keys()] == [row]
    assert pruner.tick(clock()) is not None  # at once, then every minute again
    assert pruner.tick(clock() + 1) is None
    queue.mark_failed(row, "no ACK before the timeout")  # rescheduled 5 s from the new now
    assert queue.due() == [] and queue.due(clock() + 5) != []
    db.close()


def test_a_failing_housekeeping_tick_is_logged_and_the_next_one_prunes(tmp_path: Path) -> None:
    """Anything a tick raises (here the sessions' expiry) is said once in the event log,
    and the task goes on: before, it ended silently and pruning stopped for good."""
    clock = VirtualClock(1_700_000_000.0)
    db = Database.open(tmp_path / "p.sqlite", "pass", kdf=KDF_MIN, clock=clock)
    log = EventLog(clock=clock)
    calls = 0

    def session_clock() -> float:  # the sessions' clock fails on its first two reads
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise RuntimeError("the session clock broke")
        return clock()

    sessions = PeerSessions(Identity.generate(), log, clock=session_clock)
    pruner = Pruner(db, Retention(every=0.01))
    chores = Housekeeping(pruner, StorageHealth(db, log), log, clock=clock, sessions=sessions)

    async def main() -> None:
        chores.start()
        async with asyncio.timeout(10):
            while pruner.next_at is None:  # the third tick expires, then prunes
                await asyncio.sleep(0.01)
        await chores.stop()

    asyncio.run(main())
    said = log.entries(category="error", text="session clock broke")
    assert len(said) == 1 and said[0].data.get("kind") == "housekeeping.failed"
    db.close()
