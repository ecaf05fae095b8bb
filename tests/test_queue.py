"""The outbox: retry schedule, manual intervention, persistence, crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from volli_nb.base.clock import VirtualClock
from volli_nb.base.errors import NotFound, UsageError, WrongPassphrase
from volli_nb.core.store.database import KDF_MIN, Database
from volli_nb.core.store.message_queue import (
    RETRY_DELAYS,
    OutgoingMessage,
    PersistentMessageQueue,
    Status,
    next_attempt_after,
)

PASS = "queue test passphrase"
HELPER = Path(__file__).with_name("helpers_enqueue.py")


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(1_700_000_000.0)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "profile.sqlite"


@pytest.fixture
def db(path: Path, clock: VirtualClock) -> Iterator[Database]:
    database = Database.open(path, PASS, kdf=KDF_MIN, clock=clock)
    yield database
    database.close()


@pytest.fixture
def queue(db: Database) -> PersistentMessageQueue:
    return PersistentMessageQueue(db)


def message(n: int, recipient: str = "bob", payload: bytes = b"hello") -> OutgoingMessage:
    return OutgoingMessage(n.to_bytes(16, "big"), "conv", recipient, payload, counter=n)


def test_policy_function() -> None:
    now = 100.0
    assert [next_attempt_after(n, now) for n in range(1, 6)] == [101.0, 105.0, 115.0, 160.0, None]
    assert next_attempt_after(6, now) is None
    assert next_attempt_after(2, now, delays=(0.5, 0.25)) == 100.25
    with pytest.raises(UsageError):
        next_attempt_after(0, now)


def test_exact_schedule_then_stuck(queue: PersistentMessageQueue, clock: VirtualClock) -> None:
    row_id = queue.enqueue(message(1))
    row = queue.get(row_id)
    assert (row.status, row.attempts, row.next_attempt_at) == (Status.PENDING, 0, clock.now)
    for failures, delay in enumerate(RETRY_DELAYS, start=1):
        assert [r.id for r in queue.due()] == [row_id]
        row = queue.mark_failed(row_id, f"failure {failures}")
        assert row.status == Status.PENDING and row.attempts == failures
        assert row.next_attempt_at == clock.now + delay
        assert row.last_error == f"failure {failures}"
        clock.advance(delay)
    row = queue.mark_failed(row_id, "the fourth retry failed")
    assert (row.status, row.attempts, row.next_attempt_at) == (Status.STUCK, 5, None)
    assert queue.due(clock.now + 10_000) == []
    assert [r.id for r in queue.get_pending()] == [row_id]  # stuck still awaits delivery
    assert queue.counts() == {"pending": 0, "delivered": 0, "stuck": 1, "discarded": 0, "held": 0}


def test_due_respects_times(queue: PersistentMessageQueue, clock: VirtualClock) -> None:
    t0 = clock.now
    first, second = queue.enqueue(message(1)), queue.enqueue(message(2))
    queue.mark_failed(first, "offline")  # due at t0 + 1
    clock.advance(0.5)
    queue.mark_failed(second, "offline")  # due at t0 + 1.5
    assert queue.due(t0 + 0.9) == []
    assert [r.id for r in queue.due(t0 + 1.0)] == [first]
    assert [r.id for r in queue.due(t0 + 2.0)] == [first, second]
    assert queue.next_due_at() == t0 + 1.0
    clock.advance(10)
    assert [r.id for r in queue.due()] == [first, second]  # now defaults to the clock


def test_manual_retry_of_a_stuck_message(
    queue: PersistentMessageQueue, clock: VirtualClock
) -> None:
    row_id = queue.enqueue(message(1))
    for _ in range(len(RETRY_DELAYS) + 1):
        queue.mark_failed(row_id, "offline")
    clock.advance(3600)
    row = queue.retry_now(row_id)
    assert (row.status, row.next_attempt_at, row.attempts) == (Status.PENDING, clock.now, 5)
    assert [r.id for r in queue.due()] == [row_id]
    row = queue.mark_failed(row_id, "still offline")  # one more try, not the whole schedule
    assert row.status == Status.STUCK

    other = queue.enqueue(message(2))
    for _ in range(len(RETRY_DELAYS) + 1):
        queue.mark_failed(other, "offline")
    assert queue.retry_all_stuck() == 2
    assert [r.id for r in queue.due()] == [row_id, other]
    assert queue.retry_all_stuck() == 0


def test_retry_now_on_a_pending_row_makes_it_due_at_once(
    queue: PersistentMessageQueue, clock: VirtualClock
) -> None:
    row_id = queue.enqueue(message(1))
    queue.mark_failed(row_id, "offline")
    queue.mark_failed(row_id, "offline")
    assert queue.retry_now(row_id).next_attempt_at == clock.now
    assert queue.mark_failed(row_id, "offline").next_attempt_at == clock.now + 15.0


def test_discard_erases_the_payload(queue: PersistentMessageQueue, db: Database) -> None:
    row_id = queue.enqueue(message(1))
    queue.discard(row_id)
    queue.discard(row_id)  # idempotent
    row = queue.get(row_id)
    assert (row.status, row.payload, row.next_attempt_at) == (Status.DISCARDED, b"", None)
    assert db.fetch("SELECT payload FROM outbox WHERE id = ?", (row_id,))[0]["payload"] is None
    assert queue.get_pending() == []
    with pytest.raises(UsageError, match="discarded, not pending"):
        queue.mark_failed(row_id, "late failure")
    with pytest.raises(UsageError, match="only pending or stuck"):
        queue.retry_now(row_id)


def test_delivery(queue: PersistentMessageQueue) -> None:
    first, second = queue.enqueue(message(1)), queue.enqueue(message(1, "carol"))
    queue.mark_delivered(first)
    queue.mark_delivered(first)  # a repeated ACK is harmless
    assert queue.get(first).status == Status.DELIVERED and queue.get(first).payload == b""
    assert queue.mark_delivered_message(message(1).message_id, "carol") == second
    assert queue.mark_delivered_message(message(9).message_id, "carol") is None
    assert [r.status for r in queue.for_message(message(1).message_id)] == [Status.DELIVERED] * 2
    with pytest.raises(UsageError, match="delivered, not pending"):
        queue.mark_failed(first, "late")
    with pytest.raises(UsageError, match="already delivered"):
        queue.discard(first)
    assert queue.counts()["delivered"] == 2


def test_unknown_ids_raise_not_found(queue: PersistentMessageQueue) -> None:
    for call in [
        lambda: queue.get(42),
        lambda: queue.mark_failed(42, "x"),
        lambda: queue.mark_delivered(42),
        lambda: queue.retry_now(42),
        lambda: queue.discard(42),
    ]:
        with pytest.raises(NotFound, match="no outbox row 42"):
            call()


def test_enqueue_is_idempotent_and_validates(queue: PersistentMessageQueue) -> None:
    row_id = queue.enqueue(message(1))
    assert queue.enqueue(message(1)) == row_id
    assert queue.enqueue(message(1, "carol")) != row_id
    assert len(queue.get_pending()) == 2
    assert [r.recipient for r in queue.for_recipient("carol")] == ["carol"]
    with pytest.raises(UsageError, match="16 bytes"):
        OutgoingMessage(b"short", "conv", "bob", b"x", 1)


def test_enqueue_joins_an_enclosing_transaction(
    queue: PersistentMessageQueue, db: Database
) -> None:
    with pytest.raises(RuntimeError), db.transaction():
        db.store_sent(message(1).message_id, "conv", "me", 1, 0, b"hello")
        queue.enqueue(message(1))
        raise RuntimeError("the send was abandoned")
    assert queue.get_pending() == [] and db.get_message(message(1).message_id) is None


def test_state_survives_reopening(path: Path, clock: VirtualClock) -> None:
    with Database.open(path, PASS, kdf=KDF_MIN, clock=clock) as db:
        queue = PersistentMessageQueue(db)
        kept, failed = queue.enqueue(message(1)), queue.enqueue(message(2))
        queue.mark_failed(failed, "offline")
        queue.mark_delivered(queue.enqueue(message(3)))
        before = [queue.get(i) for i in (kept, failed)]
    with Database.open(path, PASS, kdf=KDF_MIN, clock=clock) as db:
        queue = PersistentMessageQueue(db)
        assert queue.get_pending() == before
        assert queue.counts() == {
            "pending": 2,
            "delivered": 1,
            "stuck": 0,
            "discarded": 0,
            "held": 0,
        }
        assert queue.mark_failed(failed, "offline").next_attempt_at == clock.now + 5.0


def test_payload_is_not_in_clear_in_the_file(path: Path, clock: VirtualClock) -> None:
    secret = b"the launch code is 0000, tell nobody"
    with Database.open(path, PASS, kdf=KDF_MIN, clock=clock) as db:
        row_id = PersistentMessageQueue(db).enqueue(message(1, payload=secret))
        moved = db.fetch("SELECT payload FROM outbox WHERE id = ?", (row_id,))[0]["payload"]
        assert secret not in moved
    assert secret not in path.read_bytes()
    assert message(1).message_id.hex().encode() in path.read_bytes()  # metadata in clear


def test_an_enqueued_message_survives_sigkill(path: Path) -> None:
    Database.open(path, PASS, kdf=KDF_MIN).close()
    payload = b"written just before the crash"
    child = subprocess.Popen(
        [sys.executable, str(HELPER), str(path), PASS, payload.hex()],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    row_id = int(line)
    wal = path.with_name(path.name + "-wal")
    assert wal.stat().st_size > 0  # the commit sits in the WAL the dead process left behind
    before = (path.read_bytes(), wal.read_bytes())
    with pytest.raises(WrongPassphrase):
        Database.open(path, "wrong", kdf=KDF_MIN)
    assert (path.read_bytes(), wal.read_bytes()) == before
    with Database.open(path, PASS, kdf=KDF_MIN) as db:
        row = PersistentMessageQueue(db).get(row_id)
        assert (row.status, row.payload, row.recipient) == (Status.PENDING, payload, "bob")


def test_due_keys_and_acknowledge_touch_no_payload(tmp_path: Path) -> None:
    """The cheap paths a busy retry loop and an ACK use: ids only, one UPDATE."""
    db = Database.open(tmp_path / "q.sqlite", "pw", kdf=KDF_MIN, clock=VirtualClock(100.0))
    queue = PersistentMessageQueue(db)
    first = queue.enqueue(OutgoingMessage(b"\x01" * 16, "c", "bob", b"one", 1))
    queue.enqueue(OutgoingMessage(b"\x02" * 16, "c", "carol", b"two", 2))
    assert queue.due_keys() == [(first, "bob", b"\x01" * 16), (first + 1, "carol", b"\x02" * 16)]
    assert queue.acknowledge(b"\x01" * 16, "bob") is True
    assert queue.acknowledge(b"\x01" * 16, "bob") is False  # a repeated ACK
    assert queue.acknowledge(b"\x01" * 16, "carol") is False  # not hers
    assert queue.get(first).status == Status.DELIVERED and queue.get(first).payload == b""
    assert [k[0] for k in queue.due_keys()] == [first + 1]


def test_due_now_brings_pending_rows_forward_in_one_batch_attempts_kept(
    queue: PersistentMessageQueue, clock: VirtualClock
) -> None:
    """What a re-key hands back: due at once, no failure counted; a row that is no longer
    pending (ACKed, stuck) is left as it is, and the count says what moved."""
    woken: list[None] = []
    queue.on_schedule = lambda: woken.append(None)
    ids = [queue.enqueue(message(n)) for n in range(1, 1202)]  # more than one statement
    for row_id in ids:
        queue.mark_failed(row_id, "no ACK before the timeout")
    delivered, stuck = ids[0], ids[1]
    queue.mark_delivered(delivered)
    for _ in RETRY_DELAYS:
        queue.mark_failed(stuck, "no ACK before the timeout")
    clock.advance(0.5)
    woken.clear()
    assert queue.due_now(ids) == len(ids) - 2
    assert woken and len(queue.due()) == len(ids) - 2
    moved = queue.get(ids[2])
    assert (moved.status, moved.attempts, moved.next_attempt_at) == (Status.PENDING, 1, clock())
    assert queue.get(stuck).status == Status.STUCK
    assert queue.due_now(ids) == 0  # due already: nothing moves
