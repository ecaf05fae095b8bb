"""One way down, one way up: what a message costs in SQL, and when the retry loop wakes.

Counts are statements SQLite ran (``Database.trace_statements``), not times: they are
deterministic, and each bound below is derived from what the path must write.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nacl.bindings
import nacl.utils
import pytest
from netutil import open_store, pair

from volli_nb.app.messages_store import MessagesStore
from volli_nb.base.clock import VirtualClock
from volli_nb.base.errors import StorageError, TamperedRow
from volli_nb.core.crypto import primitives
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.store.database import KDF_MIN, Database
from volli_nb.core.store.history import ReceivedRow
from volli_nb.core.store.message_queue import OutgoingMessage, PersistentMessageQueue, Status


class Statements:
    def __init__(self, db: Database) -> None:
        self.db, self.seen = db, list[str]()

    def __enter__(self) -> list[str]:
        self.db.trace_statements(self.seen.append)
        return self.seen

    def __exit__(self, *exc: object) -> None:
        self.db.trace_statements(None)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database.open(tmp_path / "p.sqlite", "pw", kdf=KDF_MIN, clock=VirtualClock(100.0))


def test_add_returns_the_row_as_written_and_statuses_open_no_payload(db: Database) -> None:
    queue = PersistentMessageQueue(db)
    with Statements(db) as ran, db.transaction():
        row = queue.add(OutgoingMessage(b"\x01" * 16, "c", "bob", b"body", 7))
    assert row is not None and (row.payload, row.counter, row.status) == (b"body", 7, "pending")
    assert queue.get(row.id) == row  # what was written is what a read finds
    assert len(ran) == 4  # BEGIN, INSERT, UPDATE (payload and MAC), COMMIT: no read back
    with db.transaction():
        assert queue.add(OutgoingMessage(b"\x01" * 16, "c", "bob", b"other", 7)) is None
    db.execute("UPDATE outbox SET payload = X'00' WHERE id = ?", (row.id,))  # unopenable
    assert queue.statuses(b"\x01" * 16) == {"bob": Status.PENDING}  # never opened it
    db.execute("UPDATE outbox SET recipient = 'mallory' WHERE id = ?", (row.id,))
    with pytest.raises(TamperedRow):
        queue.statuses(b"\x01" * 16)  # the MAC is still checked


def test_a_sent_message_is_sealed_once_and_its_rows_point_at_it(tmp_path: Path) -> None:
    """The outbox rows of a send keep no copy: they read the sent message's sealed body
    (a crash before the ACK still finds it: both are in the send's one transaction)."""
    store = MessagesStore.open(tmp_path / "a.sqlite", "pw", kdf=KDF_MIN)
    group = [Identity.generate() for _ in range(3)]

    async def main() -> None:
        for member in group:
            store.add_contact(member.public)
        members = [store.peer_id, *(m.peer_id for m in group)]
        store.database.ensure_conversation("team", members)
        sent = await store.send_message("team", "one body, three recipients")
        rows = store.message_queue.for_message(sent.message_id)
        assert len(rows) == 3 and {r.payload for r in rows} == {rows[0].payload} != {b""}
        raw = store.database.fetch("SELECT payload FROM outbox")
        assert [r["payload"] for r in raw] == [None] * 3  # no second (or fourth) copy
        store.message_queue.discard(rows[0].id)
        assert store.message_queue.get(rows[0].id).payload == b""
        mid = sent.message_id.hex()
        store.database.execute("DELETE FROM messages WHERE message_id = ?", (mid,))
        with pytest.raises(StorageError, match="not stored"):
            store.message_queue.get(rows[1].id)  # what it points at is gone: said, typed

    try:
        asyncio.run(main())
    finally:
        asyncio.run(store.close())


def test_the_schedule_hook_fires_when_a_row_may_be_due_sooner(db: Database) -> None:
    queue = PersistentMessageQueue(db)
    calls: list[int] = []
    queue.on_schedule = lambda: calls.append(1)
    row_id = queue.enqueue(OutgoingMessage(b"\x02" * 16, "c", "bob", b"x", 1))
    assert len(calls) == 1
    queue.mark_failed(row_id, "offline")
    queue.retry_now(row_id)
    assert len(calls) == 3
    queue.acknowledge(b"\x02" * 16, "bob")  # delivered: nothing to schedule
    assert len(calls) == 3


def test_a_received_bundle_is_two_multi_row_statements(db: Database) -> None:
    rows = [ReceivedRow(bytes([i]) * 16, "c", "alice", i, 1000 + i, b"hi") for i in range(1, 4)]
    with Statements(db) as ran, db.transaction():
        db.insert_received_many(rows)
    assert [s.split()[0] for s in ran] == ["BEGIN", "INSERT", "INSERT", "COMMIT"]
    assert [m.counter for m in db.history("c")] == [1, 2, 3]
    assert all(db.seen_by(r.message_id) == "alice" for r in rows)


def test_the_seen_set_is_read_once_per_frame(db: Database) -> None:
    rows = [ReceivedRow(bytes([i]) * 16, "c", "alice", i, 1000 + i, b"hi") for i in range(1, 4)]
    with db.transaction():
        db.insert_received_many(rows)
    db.store_sent(b"\x09" * 16, "c", "me", 1, 1000, b"mine")
    asked = [r.message_id for r in rows] + [b"\x09" * 16, b"\x05" * 16]
    with Statements(db) as ran:
        found = db.seen_among(asked)
    assert len(ran) == 1  # one statement for the whole frame
    assert found == {**{r.message_id: "alice" for r in rows}, b"\x09" * 16: "me"}
    assert db.seen_among([]) == {}


def test_the_retry_loop_sleeps_until_the_next_due_row(tmp_path: Path) -> None:
    """By the injected clock: an offline message's first retry is 1 s after its attempt
    (RETRY_DELAYS[0]); with nothing pending the loop sleeps its longest, retry_tick."""
    clock = VirtualClock(1_700_000_000.0)
    store = MessagesStore.open(
        tmp_path / "a.sqlite", "pw", kdf=KDF_MIN, clock=clock, retry_tick=30.0
    )

    async def main() -> None:
        assert store.sender.next_wait() == 30.0  # nothing queued
        peer = Identity.generate()
        store.add_contact(peer.public)
        await store.send_message(peer.peer_id, "while you were away")  # attempt fails
        assert store.sender.next_wait() == pytest.approx(1.0)
        clock.advance(0.75)
        assert store.sender.next_wait() == pytest.approx(0.25)
        clock.advance(0.5)  # overdue since the last pass: go again at once
        assert store.sender.next_wait() == 0.0
        assert await store.process_due() == 1
        assert store.sender.next_wait() == pytest.approx(5.0)  # RETRY_DELAYS[1]

    try:
        asyncio.run(main())
    finally:
        asyncio.run(store.close())


def frames_in(store: MessagesStore, peer_id: str) -> int:
    stats = store.network_store.session_stats(peer_id)
    assert stats is not None
    return stats.frames_in


@pytest.mark.network
def test_a_received_message_costs_three_statements(tmp_path: Path) -> None:
    """Per message: the two batched inserts; per frame at most the seen-set read, its
    BEGIN and COMMIT; once, the conversation's check.  (It was ten per message plus the
    frames, then three; frames that carry no message, pings and ACKs, run none.)"""

    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
        try:
            await pair(alice, bob)
            await bob.sender.stop()  # its idle retry passes are not the receiving path
            n, frames = 50, frames_in(bob, alice.peer_id)
            with Statements(bob.database) as ran:
                sent = [await alice.send_message(bob.peer_id, f"m{i}") for i in range(n)]
                for message in sent:
                    await alice.wait_delivered(message.message_id, timeout=30)
            frames = frames_in(bob, alice.peer_id) - frames
            first = 4  # the conversation, checked once: read, then a savepoint around its read
            assert len(ran) <= 2 * n + 3 * frames + first, ran[:12]
            assert len(bob.history(alice.peer_id)) == n
        finally:
            await asyncio.gather(alice.close(), bob.close())

    asyncio.run(asyncio.wait_for(main(), 60))


class Sodium:
    """Counts every libsodium call volli_nb makes: all go through ``primitives``, by
    PyNaCl's cffi handle (``_lib``), its bindings, or its random generator."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: Counter[str] = Counter()
        monkeypatch.setattr(primitives, "_lib", self._counting(primitives._lib))
        monkeypatch.setattr(nacl, "bindings", self._counting(nacl.bindings))
        monkeypatch.setattr(nacl.utils, "random", self._wrap("random", nacl.utils.random))

    def _wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return function(*args, **kwargs)

        return counted

    def _counting(self, target: Any) -> Any:
        sodium = self

        class Proxy:
            def __getattr__(self, name: str) -> Any:
                value = getattr(target, name)
                return sodium._wrap(name, value) if callable(value) else value

        return Proxy()


@pytest.mark.network
@pytest.mark.clean_link("counts a burst's frames")
def test_a_burst_of_1000_costs_a_few_statements_and_ten_sodium_calls_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The regression bound of issue 24, in counts (never in time).  A burst of 1,000
    100-byte messages, both sides together.  SQL: per burst the sender's reads (the
    conversation and its contact, twice each), BEGIN, the counters, the largest outbox id,
    two multi-row INSERTs per 500 rows, COMMIT; per ACK one UPDATE; per received frame the
    seen-set read, BEGIN, two INSERTs, COMMIT; once the receiver's conversation check.
    libsodium: per message at the sender a random id, a random content key, the body's
    AEAD, the key wrap's AEAD, and the stored body's nonce and AEAD; at the receiver the
    wrap's and the body's AEAD and the stored body's nonce and AEAD; per frame one
    signature and one verification each way (the bundle, its ACK)."""

    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
        try:
            await pair(alice, bob)
            await asyncio.gather(alice.sender.stop(), bob.sender.stop())  # no retry passes
            warm = await alice.send_message(bob.peer_id, "conversations exist now")
            await alice.wait_delivered(warm.message_id)
            n, done, delivered = 1000, asyncio.Event(), set[bytes]()
            a0 = alice.network_store.session_stats(bob.peer_id)
            b0 = bob.network_store.session_stats(alice.peer_id)
            assert a0 is not None and b0 is not None
            acks, bundles = a0.acks_in, b0.bundles_in

            def on_delivered(message_id: bytes, _peer: str) -> None:
                delivered.add(message_id)
                if len(delivered) == n:
                    done.set()

            alice.on_delivered(on_delivered)
            sodium = Sodium(monkeypatch)
            with Statements(alice.database) as sent_sql, Statements(bob.database) as got_sql:
                texts = [f"{i:04d} " + "y" * 95 for i in range(n)]
                await asyncio.gather(*(alice.send_message(bob.peer_id, t) for t in texts))
                await asyncio.wait_for(done.wait(), 60)
            monkeypatch.undo()
            acks, frames = a0.acks_in - acks, b0.bundles_in - bundles
            assert frames <= n // 64 + 2  # bundles of 64 or more: the sender yields per 64
            assert len(sent_sql) <= 4 + 8 + acks, sent_sql[:14]
            assert len(got_sql) <= 5 * frames, got_sql[:12]
            per_message = (len(sent_sql) + len(got_sql)) / n
            assert per_message <= 0.15, per_message  # the aim was 3
            random = sodium.calls["random"]  # ids, content keys, both stored bodies' nonces,
            assert 4 * n <= random <= 4 * n + 10  # and now and then a heartbeat's nonce
            aead = "crypto_aead_xchacha20poly1305_ietf_"
            assert sodium.calls[aead + "encrypt"] == 3 * n + n, sodium.calls  # the body, the
            assert sodium.calls[aead + "decrypt"] == 2 * n  # wrap, both stored; opened: 2
            signed = sodium.calls["crypto_sign"] + sodium.calls["crypto_sign_open"]
            assert signed <= 2 * (frames + acks)
            assert sum(sodium.calls.values()) <= 10 * n + 10 + 2 * (frames + acks), sodium.calls
            assert len(bob.history(alice.peer_id)) == n + 1
        finally:
            await asyncio.gather(alice.close(), bob.close())

    asyncio.run(asyncio.wait_for(main(), 120))
