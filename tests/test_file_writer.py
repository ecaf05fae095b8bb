"""Issue 26, items 1 and 2: someone who can write the profile file but has no passphrase.

Each test is an attack, made with plain ``sqlite3`` on the file, then the app used as
usual.  Item 1: SQLite objects planted in the file (a trigger acts when the app writes,
and the app used to compute row MACs from the row read back, blessing the change).
Item 2: bookkeeping that was not authenticated (an outbox status flipped, a row
deleted, a contact row put back from an older copy).  docs/security.md states what such
a writer can and cannot do.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from netutil import open_store, pair

from volli_nb.app.chat import dm_conversation_id
from volli_nb.app.messages_store import MessagesStore
from volli_nb.base.clock import VirtualClock
from volli_nb.base.errors import StorageError, TamperedRow, TamperedSchema, VolliError
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.message_id import rebound
from volli_nb.core.netconfig import NetworkConfig
from volli_nb.core.store.database import KDF_MIN, SCHEMA_VERSION, Database
from volli_nb.core.store.message_queue import OutgoingMessage, PersistentMessageQueue, Status
from volli_nb.core.store.retention import Pruner

DATA = Path(__file__).parent / "data"


def run(coro_factory: Callable[[], Any]) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(30):
            return await coro_factory()

    return asyncio.run(bounded())


def write(path: Path, *statements: str, params: tuple[object, ...] = ()) -> None:
    """What a file writer without the passphrase can do (the profile open or not)."""
    conn = sqlite3.connect(path, timeout=5)
    with conn:
        for sql in statements:
            conn.execute(sql, params if "?" in sql else ())
    conn.close()


async def refusal(call: Awaitable[object]) -> VolliError | None:
    """The typed error ``call`` raised, or None (then its effect is what the test checks)."""
    try:
        await call
    except VolliError as exc:
        return exc
    return None


def reopen(path: Path) -> MessagesStore:
    name = path.stem
    return MessagesStore.open(path, f"{name} passphrase", name=name, kdf=KDF_MIN)


ADD_MEMBER = """CREATE TRIGGER volli_sync AFTER INSERT ON conversations BEGIN
  UPDATE conversations SET members = replace(NEW.members, ']', ', "{mallory}"]')
  WHERE id = NEW.id; END"""
MARK_VERIFIED = """CREATE TRIGGER volli_trust AFTER INSERT ON contacts BEGIN
  UPDATE contacts SET verified = 1 WHERE peer_id = NEW.peer_id; END"""


# --- item 1: a profile file can carry behaviour ------------------------------------------


def test_a_trigger_that_adds_a_member_to_new_conversations_is_refused_on_open(
    tmp_path: Path,
) -> None:
    """Attack: while the profile is closed, plant a trigger that adds Mallory to every new
    conversation; the next contact's messages would be sealed for her too."""

    async def main() -> None:
        alice, mallory = open_store(tmp_path, "alice"), Identity.generate()
        alice.add_contact(mallory.public, name="mallory")
        path = alice.database.path
        await alice.close()
        write(path, ADD_MEMBER.format(mallory=mallory.peer_id))
        before = path.read_bytes()
        with pytest.raises(TamperedSchema) as exc:
            reopen(path)
        assert exc.value.objects == (
            "trigger 'volli_sync' on 'conversations' is not part of a volli profile: it was "
            "planted",
        )
        assert "volli_sync" in str(exc.value) and "restore it from a backup" in str(exc.value)
        assert path.read_bytes() == before  # refused before anything was written

    run(main)


def test_a_trigger_that_adds_a_member_planted_while_open_is_not_blessed(tmp_path: Path) -> None:
    """The same trigger, added while the profile is open (the check on open cannot see
    it): the app writes a conversation's MAC from what it writes, so the trigger's member
    is refused and nothing is sealed for Mallory."""

    async def main() -> None:
        alice, bob, mallory = (
            open_store(tmp_path, "alice"),
            Identity.generate(),
            Identity.generate(),
        )
        try:
            alice.add_contact(mallory.public, name="mallory")
            write(alice.database.path, ADD_MEMBER.format(mallory=mallory.peer_id))
            alice.add_contact(bob.public, name="bob")  # a new contact: its conversation
            refused = await refusal(alice.send_message(bob.peer_id, "for bob only"))
            queued = {row.recipient for row in alice.message_queue.get_pending()}
            assert mallory.peer_id not in queued, "the message was sealed for Mallory"
            assert isinstance(refused, TamperedRow)
            assert (refused.table, refused.key) == (
                "conversations",
                dm_conversation_id(alice.peer_id, bob.peer_id),
            )
            problems = alice.verify().problems
            assert any("trigger 'volli_sync'" in p and "planted" in p for p in problems)
        finally:
            await alice.close()

    run(main)


def test_a_trigger_that_marks_new_contacts_verified_is_refused(tmp_path: Path) -> None:
    """Attack: a trigger that marks every new contact verified (as if its safety number
    had been compared): not blessed if planted while open, refused on open."""

    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice"), Identity.generate()
        path = alice.database.path
        try:
            write(path, MARK_VERIFIED)
            with pytest.raises(TamperedRow) as exc:
                alice.add_contact(bob.public, name="bob")
                shown = {c.peer_id: c.verified for c in alice.contacts}
                assert not shown[bob.peer_id], "bob shows as verified"
            assert (exc.value.table, exc.value.key) == ("contacts", bob.peer_id)
        finally:
            await alice.close()
        with pytest.raises(TamperedSchema, match="trigger 'volli_trust' on 'contacts'"):
            reopen(path)

    run(main)


PLANTED = {
    "view": ("CREATE VIEW v_contacts AS SELECT * FROM contacts", "view 'v_contacts'"),
    "expression-index": (
        "CREATE INDEX outbox_odd ON outbox (length(recipient) + 1)",
        "index 'outbox_odd' on 'outbox'",
    ),
    "table": ("CREATE TABLE notes (x)", "table 'notes'"),
    "stat-table": ("ANALYZE", "table 'sqlite_stat1'"),
    "delete-trigger": (
        "CREATE TRIGGER keep BEFORE DELETE ON outbox BEGIN SELECT RAISE(IGNORE); END",
        "trigger 'keep' on 'outbox'",
    ),
}


@pytest.mark.parametrize("kind", sorted(PLANTED))
def test_any_object_outside_the_known_schema_is_refused_on_open(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "p.sqlite"
    Database.open(path, "pw", kdf=KDF_MIN).close()
    sql, named = PLANTED[kind]
    write(path, sql)
    with pytest.raises(TamperedSchema) as exc:
        Database.open(path, "pw", kdf=KDF_MIN)
    assert any(o.startswith(named) and o.endswith("planted") for o in exc.value.objects)


def test_a_table_altered_with_writable_schema_is_refused_on_open(tmp_path: Path) -> None:
    """Attack: give ``contacts.verified`` a DEFAULT of 1 by rewriting its CREATE statement
    (``PRAGMA writable_schema``): no new object, an altered one."""
    path = tmp_path / "p.sqlite"
    Database.open(path, "pw", kdf=KDF_MIN).close()
    write(
        path,
        "PRAGMA writable_schema=ON",
        "UPDATE sqlite_master SET sql = replace(sql, 'verified INTEGER NOT NULL DEFAULT 0', "
        "'verified INTEGER NOT NULL DEFAULT 1') WHERE name = 'contacts'",
    )
    with pytest.raises(TamperedSchema) as exc:
        Database.open(path, "pw", kdf=KDF_MIN)
    assert exc.value.objects == (
        f"table 'contacts' is not as schema {SCHEMA_VERSION} defines it: it was altered",
    )


# --- item 2: bookkeeping that is not authenticated ------------------------------------


def test_a_pending_message_flipped_to_delivered_in_the_file_is_refused(tmp_path: Path) -> None:
    """Attack: mark a queued message delivered; it would never be sent, and show as
    delivered."""

    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice"), Identity.generate()
        try:
            alice.add_contact(bob.public, name="bob")
            sent = await alice.send_message(bob.peer_id, "queued: bob is offline")
            (row,) = alice.message_queue.get_pending()
            write(alice.database.path, "UPDATE outbox SET status = 'delivered'")
            with pytest.raises(TamperedRow) as exc:
                status = alice.delivery_status(sent.message_id)
                assert status != {bob.peer_id: "delivered"}, "shown as delivered"
            assert (exc.value.table, exc.value.key) == ("outbox", row.id)
            with pytest.raises(TamperedRow):
                alice.message_queue.get(row.id)
            assert any(f"outbox row {row.id!r} was edited" in p for p in alice.verify().problems)
        finally:
            await alice.close()

    run(main)


def test_a_deleted_outbox_row_shows_unknown_not_delivered(tmp_path: Path) -> None:
    """Attack: delete a queued message's row; it would never be sent, and (since delivered
    rows are pruned) show as delivered.  Only the pruner's own record makes a missing row
    delivered."""

    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice"), Identity.generate()
        try:
            alice.add_contact(bob.public, name="bob")
            sent = await alice.send_message(bob.peer_id, "never sent")
            write(alice.database.path, "DELETE FROM outbox")
            shown = alice.history(bob.peer_id)[-1]
            assert shown.status == "unknown", f"shown as {shown.status}"
            assert alice.delivery_status(sent.message_id) == {bob.peer_id: "unknown"}
            (problem,) = alice.verify().problems
            assert f"message {sent.message_id.hex()} for {bob.peer_id} is missing" in problem
        finally:
            await alice.close()

    run(main)


def test_the_pruners_record_of_a_delivered_row_cannot_be_made_up(tmp_path: Path) -> None:
    """The record the pruner leaves on a sent message is MAC'd too: copying it to a
    message whose row was deleted is refused."""
    clock = VirtualClock(1_800_000_000.0)
    with Database.open(tmp_path / "p.sqlite", "pw", kdf=KDF_MIN, clock=clock) as db:
        queue = PersistentMessageQueue(db, clock=clock)
        db.ensure_conversation("c", ["me", "bob"])
        for mid in (b"\x01" * 16, b"\x02" * 16):
            with db.transaction():
                db.store_sent(mid, "c", "me", 1, 1, b"{}")
                queue.add(OutgoingMessage(mid, "c", "bob", b"{}", 1), in_history=True)
        queue.acknowledge(b"\x01" * 16, "bob")
        clock.advance(7200)
        Pruner(db).prune(clock.now)
        assert queue.statuses(b"\x01" * 16) == {"bob": Status.DELIVERED}
        write(
            db.path,
            "DELETE FROM outbox",
            "UPDATE messages SET pruned = (SELECT pruned FROM messages WHERE pruned NOT NULL), "
            "pruned_mac = (SELECT pruned_mac FROM messages WHERE pruned NOT NULL)",
        )
        with pytest.raises(TamperedRow) as exc:
            queue.statuses(b"\x02" * 16)
        assert exc.value.key == (b"\x02" * 16).hex()


def test_a_contact_row_put_back_from_an_older_copy_is_refused(tmp_path: Path) -> None:
    """Attack: copy the profile, wait for Bob to rotate his device key (say, the old one
    leaked), then put his old row back: its MAC still matches, and the retired key would
    be pinned again."""

    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice"), Identity.generate()
        path, copy = alice.database.path, tmp_path / "copy.sqlite"
        try:
            alice.add_contact(bob.public, name="bob")
            alice.database.set_verified(bob.peer_id)
            alice.database.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all in the main file
            shutil.copy(path, copy)
            rotated = bob.with_new_device()
            alice.add_contact(rotated.public)
            alice.database.set_verified(bob.peer_id, False)
            write(
                path,
                f"ATTACH '{copy}' AS old",
                "UPDATE contacts SET (device_key, device_signature, device_epoch, verified, "
                "mac) = (SELECT device_key, device_signature, device_epoch, verified, mac "
                "FROM old.contacts WHERE old.contacts.peer_id = contacts.peer_id)",
            )
            with pytest.raises(TamperedRow) as exc:
                pinned = alice.contact(bob.peer_id)
                assert pinned == rotated.public, "the retired device key is pinned again"
            assert (exc.value.table, exc.value.key) == ("contacts", bob.peer_id)
            assert "older copy" in str(exc.value)
            (problem,) = alice.verify().problems
            assert f"contacts row {bob.peer_id!r} is not the one last pinned" in problem
        finally:
            await alice.close()

    run(main)


def test_a_removed_contact_put_back_from_an_older_copy_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice"), Identity.generate()
        path, copy = alice.database.path, tmp_path / "copy.sqlite"
        try:
            alice.add_contact(bob.public, name="bob")
            alice.database.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            shutil.copy(path, copy)
            alice.database.remove_contact(bob.peer_id)
            write(
                path, f"ATTACH '{copy}' AS old", "INSERT INTO contacts SELECT * FROM old.contacts"
            )
            try:
                assert alice.contact(bob.peer_id) is None, "the removed contact is back"
            except TamperedRow as exc:
                assert "not in the index" in str(exc)
            else:
                raise AssertionError("no TamperedRow")
        finally:
            await alice.close()

    run(main)


# --- migration 3, from a profile made before it ------------------------------------------
# tests/data/profile-schema2.sqlite was written by the code as found (main at 96531e5);
# its commit message holds the script.  Identity 01*32/02*32; Bob (verified), Carol
# (rotated to epoch 1); sent messages 20*16 (its delivered row pruned), 21*16 delivered,
# 22*16 pending, 23*16 stuck, 24*16 held, 25*16 discarded.
SCHEMA2 = DATA / "profile-schema2.sqlite"
SCHEMA2_PASSPHRASE = "schema two passphrase"
ME, BOB, CAROL = "66xglp2zhf2dwmpc", "xdnhrbzupcdwzzhh", "74ricjeow2gxg72u"


def test_a_schema2_profile_is_migrated_with_statuses_records_and_an_index(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    shutil.copy(SCHEMA2, path)
    with Database.open(path, SCHEMA2_PASSPHRASE, kdf=KDF_MIN) as db:
        assert db.schema_version == SCHEMA_VERSION  # 2 to the newest
        queue = PersistentMessageQueue(db)
        statuses = {m: queue.statuses(sent_id(m)) for m in range(0x20, 0x26)}
        assert queue.statuses(b"\x22" * 16) == {}  # every id took its bound form
        assert statuses == {
            0x20: {BOB: "delivered"},  # pruned under schema 2: recorded by the migration
            0x21: {BOB: "delivered"},
            0x22: {CAROL: "pending"},
            0x23: {CAROL: "stuck"},
            0x24: {CAROL: "held"},
            0x25: {BOB: "discarded"},
        }
        assert [(c.peer_id, c.verified, c.device_epoch) for c in db.list_contacts()] == [
            (BOB, True, 0),
            (CAROL, False, 1),
        ]
        assert db.contact_marks() is not None and set(db.contact_marks() or ()) == {BOB, CAROL}
        assert db.verify().ok, db.verify()
    write(path, "UPDATE outbox SET status = 'delivered' WHERE status = 'stuck'")
    with Database.open(path, SCHEMA2_PASSPHRASE, kdf=KDF_MIN) as db, pytest.raises(TamperedRow):
        PersistentMessageQueue(db).statuses(sent_id(0x23))


def sent_id(fill: int) -> bytes:
    """The id of the fixture's message ``fill * 16`` after schema 4 bound it to its sender."""
    return rebound(bytes([fill]) * 16, ME)


def test_a_schema2_profile_with_a_planted_trigger_is_not_migrated(tmp_path: Path) -> None:
    """The check comes before the migration, whose writes would fire the trigger."""
    path = tmp_path / "old.sqlite"
    shutil.copy(SCHEMA2, path)
    write(path, MARK_VERIFIED)
    with pytest.raises(TamperedSchema, match="volli_trust"):
        Database.open(path, SCHEMA2_PASSPHRASE, kdf=KDF_MIN)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
    conn.close()


def test_a_contact_deleted_in_the_file_is_not_pinned_again_from_an_old_record(
    tmp_path: Path,
) -> None:
    """Attack: delete Bob's row (after he rotated away from a leaked device key), then
    replay his old, validly signed device record (a stale presence entry, an old pairing
    code): trust on first use would pin the retired key again."""

    async def main() -> None:
        alice, old_bob = open_store(tmp_path, "alice"), Identity.generate()
        bob = old_bob.with_new_device()
        try:
            alice.add_contact(bob.public, name="bob")
            write(alice.database.path, "DELETE FROM contacts")
            with pytest.raises(TamperedRow, match="deleted") as exc:
                alice.add_contact(old_bob.public, name="bob")
                assert alice.contact(bob.peer_id) != old_bob.public, "the retired key is pinned"
            assert exc.value.key == bob.peer_id
            assert alice.contact(bob.peer_id) is None
            assert any("is missing" in p for p in alice.verify().problems)
            alice.database.remove_contact(bob.peer_id)  # unpinned on purpose: pairing anew
            alice.add_contact(bob.public, name="bob")
            assert alice.contact(bob.peer_id) == bob.public
        finally:
            await alice.close()

    run(main)


# --- the seen-set: an id taken for a duplicate is acknowledged without being stored -----


def plant_seen(path: Path, message_id: bytes, sender: str) -> None:
    write(
        path,
        "INSERT INTO seen (message_id, sender, seen_at) VALUES (?, ?, ?)",
        params=(message_id.hex(), sender, time.time()),  # fresh: old entries are pruned
    )


def test_a_seen_row_planted_in_the_file_is_refused_and_named(tmp_path: Path) -> None:
    """Attack: plant the id of a message bob will send (ids are in clear in its outbox)
    as seen; it would be acknowledged as a duplicate and never stored.  A planted
    message row (no MAC) would do the same through the other half of the seen-set."""
    db = Database.open(tmp_path / "p.sqlite", "pw", kdf=KDF_MIN, clock=VirtualClock(100.0))
    bob = Identity.generate().peer_id
    future, other = rebound(b"\x01" * 16, bob), rebound(b"\x02" * 16, bob)
    with db.transaction():
        db.mark_seen(rebound(b"\x03" * 16, bob), bob)  # a real entry still reads
    assert db.seen_among([rebound(b"\x03" * 16, bob)]) == {rebound(b"\x03" * 16, bob): bob}
    plant_seen(db.path, future, bob)
    with pytest.raises(TamperedRow) as exc:
        db.seen_among([future, other])
    assert (exc.value.table, exc.value.key) == ("seen", future.hex())
    with pytest.raises(TamperedRow):
        db.seen_by(future)
    assert any(future.hex() in p for p in db.verify().problems)
    write(db.path, "DELETE FROM seen WHERE message_id = ?", params=(future.hex(),))
    write(
        db.path,
        "INSERT INTO messages (message_id, conversation_id, sender, direction, counter, "
        "timestamp_ms, stored_at, body) VALUES (?, 'c', ?, 'in', 1, 0, 0, X'00')",
        params=(other.hex(), bob),
    )
    with pytest.raises(TamperedRow) as exc:
        db.seen_among([other])
    assert (exc.value.table, exc.value.key) == ("messages", other.hex())
    db.close()


@pytest.mark.network
def test_a_message_whose_id_was_planted_as_seen_is_not_acknowledged(tmp_path: Path) -> None:
    """End to end: alice's message, queued while bob is away, has its id planted in bob's
    seen-set.  Bob refuses the frame (storage failing, typed) rather than acknowledging a
    message it does not store; alice keeps it, and it is delivered once the row is gone."""

    async def main() -> None:
        # A refusal for storage pauses the row (15 s by default): 0.5 s here.
        alice = MessagesStore.open(
            tmp_path / "alice.sqlite", "pw", name="alice", kdf=KDF_MIN, refusal_pause=0.5,
            config=NetworkConfig(loopback_only=True),
        )  # fmt: skip
        bob = open_store(tmp_path, "bob")
        try:
            await pair(alice, bob)
            await bob.close()
            sent = await alice.send_message(bob.peer_id, "planted as seen at bob's")
            plant_seen(tmp_path / "bob.sqlite", sent.message_id, alice.peer_id)
            bob = open_store(tmp_path, "bob")
            states: list[str] = []
            bob.storage.on_change(lambda status: states.append(status.state))
            await pair(alice, bob)
            async with asyncio.timeout(20):
                while "failing" not in states:
                    await asyncio.sleep(0.02)
            assert f"seen row {sent.message_id.hex()!r}" in bob.storage.reason, bob.storage.reason
            assert alice.delivery_status(sent.message_id) != {bob.peer_id: "delivered"}
            assert bob.history(alice.peer_id) == []
            async with asyncio.timeout(10):  # the refusal reaches alice: told why
                while "storage" not in (alice.message_queue.get_pending()[0].last_error or ""):
                    await asyncio.sleep(0.02)
            write(tmp_path / "bob.sqlite", "DELETE FROM seen WHERE mac IS NULL")
            await alice.wait_delivered(sent.message_id, timeout=20)
            assert [m.text for m in bob.history(alice.peer_id)] == ["planted as seen at bob's"]
        finally:
            await asyncio.gather(alice.close(), bob.close())

    run(main)


def test_a_schema_name_that_is_not_utf8_is_refused_typed(tmp_path: Path) -> None:
    """SQLite quotes the bad name in its error, which Python cannot decode: that was a
    bare UnicodeDecodeError out of ``Database.open``."""
    db = Database.open(tmp_path / "p.sqlite", "pw", kdf=KDF_MIN)
    db.close()
    conn = sqlite3.connect(tmp_path / "p.sqlite")
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("INSERT INTO sqlite_master VALUES ('table', CAST(X'87' AS TEXT), 'x', 0, 'x')")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="not a readable volli profile"):
        Database.open(tmp_path / "p.sqlite", "pw", kdf=KDF_MIN)
