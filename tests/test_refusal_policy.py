"""The sender's side of refusals, and storage as a state: a real profile, a virtual clock."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from volli_nb.app.refusals import RefusalPolicy
from volli_nb.app.storage_health import StorageHealth, StorageStatus
from volli_nb.base.clock import VirtualClock
from volli_nb.base.errors import StorageError, StorageFull
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.eventlog import EventLog
from volli_nb.core.protocol.refusal import RefusalCode
from volli_nb.core.store import outbox_holds
from volli_nb.core.store.database import KDF_MIN, Database
from volli_nb.core.store.message_queue import OutgoingMessage, PersistentMessageQueue, Status
from volli_nb.net.events import ClockSkew, DeliveryRefused
from volli_nb.net.network_store import NetworkStore

BOB = "bobpeerid"
PAUSE = 15.0


def mid(i: int) -> bytes:
    return i.to_bytes(16, "big")


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(1_700_000_000.0)


@pytest.fixture
def db(tmp_path: Path, clock: VirtualClock) -> Iterator[Database]:
    with Database.open(tmp_path / "alice.sqlite", "pass", kdf=KDF_MIN, clock=clock) as db:
        yield db


@pytest.fixture
def queue(db: Database, clock: VirtualClock) -> PersistentMessageQueue:
    queue = PersistentMessageQueue(db, clock=clock)
    for i in (1, 2, 3):
        queue.enqueue(OutgoingMessage(mid(i), "conv", BOB, b"text", i))
    return queue


@pytest.fixture
def log(clock: VirtualClock) -> EventLog:
    return EventLog(clock=clock)


@pytest.fixture
def policy(queue: PersistentMessageQueue, log: EventLog, clock: VirtualClock) -> RefusalPolicy:
    network = NetworkStore(Identity.generate(), lambda _peer: None, log=log, clock=clock)
    return RefusalPolicy(queue, network, log, lambda _peer: "bob", clock=clock, pause=PAUSE)


def refusal(code: RefusalCode, ids: list[int], their_clock: float) -> DeliveryRefused:
    return DeliveryRefused(BOB, tuple(mid(i) for i in ids), code, int(their_clock * 1000))


def rows(queue: PersistentMessageQueue) -> dict[bytes, tuple[str, int, str | None]]:
    return {r.message_id: (str(r.status), r.attempts, r.last_error) for r in queue.get_pending()}


def test_a_clock_refusal_holds_the_rows_until_a_reading_agrees(
    policy: RefusalPolicy, queue: PersistentMessageQueue, log: EventLog, clock: VirtualClock
) -> None:
    policy.refused(refusal(RefusalCode.CLOCK_SKEW, [1, 2], clock.now - 180))  # we are ahead
    held = "bob refused: your clock is 180 s ahead of theirs; held until the clocks agree"
    now = rows(queue)
    assert [now[mid(i)][:2] for i in (1, 2, 3)] == [("held", 0), ("held", 0), ("pending", 0)]
    assert (now[mid(1)][2] or "").startswith(held)
    assert [m for _, _, m in queue.due_keys(clock.now + 10**6)] == [mid(3)]  # nothing burned
    (entry,) = [e for e in log if e.data.get("kind") == "queue.refused"]
    assert entry.data["code"] == "clock_skew" and entry.data["count"] == 2
    assert entry.data["skew"] == pytest.approx(-180)

    assert policy.clock_reading(ClockSkew(BOB, -180.0, within=False, first=False)) == 0
    assert policy.clock_reading(ClockSkew(BOB, 0.2, within=True, first=False)) == 2
    assert {m for _, _, m in queue.due_keys(clock.now)} == {mid(1), mid(2), mid(3)}
    assert all(status == "pending" and n == 0 for status, n, _ in rows(queue).values())
    assert [e.data["count"] for e in log if e.data.get("kind") == "queue.released"] == [2]


def test_a_full_disk_pauses_without_ever_making_a_message_stuck(
    policy: RefusalPolicy, queue: PersistentMessageQueue, clock: VirtualClock
) -> None:
    for _ in range(20):  # far past the five failures that make a row stuck
        policy.refused(refusal(RefusalCode.STORAGE_FULL, [1], clock.now))
        row = queue.for_message(mid(1))[0]
        assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 0, clock.now + PAUSE)
        assert row.last_error == (
            "bob refused: their storage is full; trying again in 15 s (not counted toward stuck)"
        )
        assert mid(1) not in {m for _, _, m in queue.due_keys(clock.now + PAUSE - 0.1)}
        clock.advance(PAUSE)
    assert queue.mark_failed(queue.for_message(mid(1))[0].id, "no ACK").attempts == 1


def test_key_refusals_hold_until_the_next_connection_and_agreeing_clocks_only_pause(
    policy: RefusalPolicy, queue: PersistentMessageQueue, clock: VirtualClock
) -> None:
    policy.refused(refusal(RefusalCode.NOT_RECIPIENT, [1], clock.now))
    policy.refused(refusal(RefusalCode.CLOCK_SKEW, [2], clock.now + 0.4))
    now = rows(queue)
    assert now[mid(1)][0] == "held" and "until the next connection to bob" in (now[mid(1)][2] or "")
    assert now[mid(2)][0] == "pending" and "though your clocks agree" in (now[mid(2)][2] or "")
    assert outbox_holds.held_count(queue, BOB) == 1
    assert policy.clock_reading(ClockSkew(BOB, 0.1, within=True, first=True)) == 1  # reconnected
    assert outbox_holds.held_count(queue, BOB) == 0


def test_a_refusal_changes_nothing_once_the_row_was_delivered_and_retry_now_releases(
    policy: RefusalPolicy, queue: PersistentMessageQueue, clock: VirtualClock
) -> None:
    assert queue.acknowledge(mid(1), BOB)
    policy.refused(refusal(RefusalCode.CLOCK_SKEW, [1, 2], clock.now - 300))
    assert queue.for_message(mid(1))[0].status == Status.DELIVERED
    held = queue.for_message(mid(2))[0]
    assert held.status == Status.HELD
    assert queue.retry_now(held.id).status == Status.PENDING
    assert queue.counts() == {"pending": 2, "delivered": 1, "stuck": 0, "discarded": 0, "held": 0}


def test_storage_health_reports_each_change_once(
    db: Database, log: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    health = StorageHealth(db, log)
    changes: list[StorageStatus] = []
    health.on_change(changes.append)
    db.execute("CREATE TABLE filler (x)")  # something in the WAL to checkpoint
    with caplog.at_level(logging.INFO, logger="volli_nb"):
        for _ in range(30):  # thirty refused writes: one state
            health.failed(StorageFull("database or disk is full"))
        health.failed(StorageError("disk I/O error"))
        health.succeeded()
        health.succeeded()
    assert [(c.state, c.checkpointed) for c in changes] == [
        ("full", True),
        ("failing", False),
        ("ok", False),
    ]
    assert all(c.free_bytes is not None and c.free_bytes > 0 for c in changes)
    kinds = [e.data["kind"] for e in log if str(e.data.get("kind", "")).startswith("storage.")]
    assert kinds == ["storage.full", "storage.failing", "storage.ok"]
    lines = [r for r in caplog.records if r.name == "volli_nb.app.storage_health"]
    assert [r.levelname for r in lines] == ["WARNING", "WARNING", "INFO"]
    assert not any(r.exc_info for r in caplog.records)
    assert health.state == "ok"
