"""Refusals between real peers: a sender with a wrong clock, a receiver with a full disk."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import require
from netutil import open_store, pair
from test_network import arun

from volli_nb.app.messages_store import MessagesStore
from volli_nb.core.crypto.ratchet_limits import Limits
from volli_nb.core.eventlog import EventLog
from volli_nb.core.netconfig import NetworkConfig
from volli_nb.core.store.database import KDF_MIN
from volli_nb.core.store.message_queue import Status
from volli_nb.ui.widgets import models

pytestmark = pytest.mark.network

AHEAD = 180.0  # seconds: past the 120 s an envelope may be ahead of its receiver


class ShiftedClock:
    """The injected wall clock of one store: real time plus an offset we can fix."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def kinds(log: EventLog, kind: str) -> list[str]:
    return [e.message for e in log if e.data.get("kind") == kind]


def test_a_sender_three_minutes_ahead_is_told_why_and_delivers_once_the_clock_is_fixed(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        clock = ShiftedClock(AHEAD)
        alice, bob = open_store(tmp_path, "alice", clock=clock), open_store(tmp_path, "bob")
        try:
            await pair(alice, bob)
            # Warned at connect time, on both sides, from the first PING after the HELLO.
            await until(
                lambda: bool(kinds(alice.log, "clock.skew") and kinds(bob.log, "clock.skew"))
            )
            assert (
                "their clock is 180 s behind ours: what we send them is refused"
                in (kinds(alice.log, "clock.skew")[0])
            )
            assert (
                "their clock is 180 s ahead of ours: what they send us is refused"
                in (kinds(bob.log, "clock.skew")[0])
            )
            (peer_row,) = models.peers_table(alice, clock()).rows
            assert peer_row["clock"].startswith("-180.") and peer_row["clock"].endswith("⚠")

            sent = [await alice.send_message(bob.peer_id, f"m{i}") for i in range(3)]
            queue = alice.message_queue
            await until(lambda: all(r.status == Status.HELD for r in queue.get_pending()))
            rows = queue.get_pending()
            assert len(rows) == 3 and all(r.attempts == 0 for r in rows)  # within one attempt
            for row in rows:
                assert row.last_error is not None
                assert row.last_error.startswith(
                    "bob refused: your clock is 180 s ahead of theirs; held until the clocks agree"
                )
            assert any("180 s ahead of theirs" in m for m in kinds(alice.log, "queue.refused"))
            assert queue.due_keys(clock() + 10_000) == []  # no retry burned while held
            report = await alice.sync_messages()
            assert (report.sent, report.waiting_offline, report.stuck) == (0, 3, 0)
            assert bob.history(alice.peer_id) == []

            clock.offset = 0.0  # the clock is fixed: bob's next PING shows it
            for message in sent:
                await alice.wait_delivered(message.message_id)
            assert kinds(alice.log, "queue.released")
            got = bob.history(alice.peer_id)
            assert [m.text for m in got] == ["m0", "m1", "m2"]  # each exactly once
            assert queue.counts()["delivered"] == 3 and queue.get_pending() == []
        finally:
            await asyncio.gather(alice.close(), bob.close())

    arun(main, timeout=90)


def test_a_backlog_refused_for_longer_than_the_skip_bound_still_arrives_once(
    tmp_path: Path,
) -> None:
    """Refused envelopes do not move the receiver's chain (the clock is checked first),
    while every retry seals them anew further up the sender's: past the skip bound every
    later envelope was TooManySkipped, and the backlog never arrived.  The bound is 20
    here (1,024 by default) so that 30 messages cross it: the receiver re-keys."""

    async def main() -> None:
        clock = ShiftedClock(AHEAD)
        alice, bob = open_store(tmp_path, "alice", clock=clock), open_store(tmp_path, "bob")
        bob.sessions.limits = Limits(max_skip=20, max_skipped=40)
        try:
            await pair(alice, bob)
            sent = await asyncio.gather(
                *(alice.send_message(bob.peer_id, f"m{i:02}") for i in range(30))
            )
            queue = alice.message_queue
            await until(lambda: len(queue.get_pending()) == 30 and all(
                r.status == Status.HELD for r in queue.get_pending()))  # fmt: skip
            clock.offset = 0.0
            for message in sent:
                await alice.wait_delivered(message.message_id, timeout=30)
            assert [m.text for m in bob.history(alice.peer_id)] == [f"m{i:02}" for i in range(30)]
            assert any(e.data.get("kind") == "session.rekey" for e in bob.log.entries())
        finally:
            await asyncio.gather(alice.close(), bob.close())

    arun(main, timeout=90)


@contextmanager
def tiny_tmpfs(where: Path, size: str = "1m") -> Iterator[Path]:
    require(os.geteuid() == 0 and shutil.which("mount") is not None, "needs root and mount")
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=True)


def fill(folder: Path) -> Path:
    """Write a file until the filesystem is full; returns it."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError as exc:
        assert exc.errno == 28  # ENOSPC
    finally:
        os.close(fd)
    return filler


def test_a_receiver_whose_disk_fills_refuses_once_and_everything_arrives_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main(disk: Path) -> None:
        config = NetworkConfig(loopback_only=True)
        alice = MessagesStore.open(
            tmp_path / "alice.sqlite",
            "a",
            name="alice",
            kdf=KDF_MIN,
            config=config,
            refusal_pause=1.0,
        )
        bob = MessagesStore.open(disk / "bob.sqlite", "b", name="bob", kdf=KDF_MIN, config=config)
        try:
            await pair(alice, bob)
            filler = fill(disk)
            caplog.clear()
            sends = [alice.send_message(bob.peer_id, f"n{i:02} " + "x" * 200) for i in range(30)]
            sent = await asyncio.gather(*sends)  # one burst: one frame the full disk refuses
            queue = alice.message_queue

            def all_refused() -> bool:
                rows = queue.get_pending()
                return len(rows) == 30 and all(
                    "bob refused: their storage is full" in (r.last_error or "") for r in rows
                )

            await until(all_refused)
            assert {(r.status, r.attempts) for r in queue.get_pending()} == {(Status.PENDING, 0)}
            assert bob.storage.state == "full" and bob.history(alice.peer_id) == []
            assert models.queue_table(bob, time.time()).title.endswith("storage is full)")
            await asyncio.sleep(2.5)  # a few refusals more (pause 1 s): still one line
            assert all_refused()
            ours = [r for r in caplog.records if r.name.startswith("volli_nb")]
            warnings = [r for r in ours if r.levelno >= logging.WARNING]
            assert len(warnings) == 1 and "storage full" in warnings[0].getMessage(), warnings
            assert not [r for r in caplog.records if r.exc_info], "no tracebacks"
            assert len(kinds(bob.log, "storage.full")) == 1

            filler.unlink()  # space is freed; the next attempt (after the pause) is stored
            for message in sent:
                await alice.wait_delivered(message.message_id, timeout=20)
            texts = [m.text for m in bob.history(alice.peer_id)]
            assert sorted(texts) == [f"n{i:02} " + "x" * 200 for i in range(30)]  # exactly once
            assert bob.storage.state == "ok" and len(kinds(bob.log, "storage.ok")) == 1
            assert models.queue_table(bob, time.time()).title == "Pending queue"
            assert queue.counts()["delivered"] == 30 and queue.counts()["stuck"] == 0
        finally:
            await asyncio.gather(alice.close(), bob.close())

    with tiny_tmpfs(tmp_path / "tiny") as disk:
        arun(lambda: main(disk), timeout=90)


def test_a_profile_opened_on_a_full_disk_is_storage_full_and_opens_once_there_is_room(
    tmp_path: Path,
) -> None:
    """It was a bare OSError (the lock's holder note could not be written), and the lock
    stayed held: every later open in that process said another process had it."""
    from volli_nb.base.errors import StorageFull
    from volli_nb.core.store.database import Database

    with tiny_tmpfs(tmp_path / "tiny", size="2m") as disk:
        path = disk / "p.sqlite"
        Database.open(path, "pw", kdf=KDF_MIN).close()
        filler = fill(disk)
        with pytest.raises(StorageFull, match="free some space"):
            Database.open(path, "pw", kdf=KDF_MIN)
        filler.unlink()
        with Database.open(path, "pw", kdf=KDF_MIN) as db:
            assert db.verify().ok


def test_an_ack_that_meets_a_full_disk_is_storage_full_not_a_bare_sqlite_error(
    tmp_path: Path,
) -> None:
    """An UPDATE … RETURNING outside a transaction commits as its rows are read: a full
    disk came out of ``fetchall`` as sqlite3.OperationalError, past the typed errors and
    the storage state."""
    from volli_nb.base.errors import StorageFull
    from volli_nb.core.store.database import Database
    from volli_nb.core.store.message_queue import OutgoingMessage, PersistentMessageQueue

    with tiny_tmpfs(tmp_path / "tiny", size="8m") as disk:
        db = Database.open(disk / "p.sqlite", "pw", kdf=KDF_MIN)
        queue = PersistentMessageQueue(db)
        ids = [bytes([i]) * 16 for i in range(1, 201)]
        for n, message_id in enumerate(ids):
            queue.enqueue(OutgoingMessage(message_id, "c", "bob", b"x" * 200, n + 1))
        filler = fill(disk)
        with pytest.raises(StorageFull):
            queue.acknowledge_many(ids, "bob")
        filler.unlink()
        assert len(queue.acknowledge_many(ids, "bob")) == 200  # room again: all of them
        db.close()


def test_a_receiver_whose_profile_another_program_locks_refuses_and_keeps_the_link(
    tmp_path: Path,
) -> None:
    """A ``sqlite3`` shell in a transaction on bob's profile: each write of bob's waited
    10 s with his event loop (long enough for alice to drop the link: no heartbeat).
    Now bob's write gives up at once as StorageBusy, his storage is ``busy`` (said
    once), alice's message is refused and retried, and it arrives once the shell ends
    its transaction; the link stays up throughout."""

    async def main() -> None:
        config = NetworkConfig(loopback_only=True)
        alice = MessagesStore.open(
            tmp_path / "alice.sqlite", "a", name="alice", kdf=KDF_MIN, config=config,
            refusal_pause=0.5,
        )  # fmt: skip
        bob = MessagesStore.open(
            tmp_path / "bob.sqlite", "b", name="bob", kdf=KDF_MIN, config=config
        )
        shell = sqlite3.connect(tmp_path / "bob.sqlite", isolation_level=None)
        try:
            await pair(alice, bob)

            def drops() -> int:
                logs = (alice.log, bob.log)
                return sum(len(g.entries(category="connection", text="peer offline")) for g in logs)

            before = drops()
            shell.execute("BEGIN IMMEDIATE")
            sent = await alice.send_message(bob.peer_id, "while the shell holds the lock")
            await until(lambda: bob.storage.state == "busy")
            queue = alice.message_queue
            await until(lambda: "storage failed" in (queue.get_pending()[0].last_error or ""))
            assert bob.history(alice.peer_id) == []
            shell.execute("ROLLBACK")
            await alice.wait_delivered(sent.message_id, timeout=20)
            assert [m.text for m in bob.history(alice.peer_id)] == [sent.text]
            assert len(kinds(bob.log, "storage.busy")) == 1 and bob.storage.state == "ok"
            assert "another program" in kinds(bob.log, "storage.busy")[0]
            assert alice.network_store.is_connected(bob.peer_id)
            assert drops() == before
        finally:
            shell.close()
            await asyncio.gather(alice.close(), bob.close())

    arun(main, timeout=60)
