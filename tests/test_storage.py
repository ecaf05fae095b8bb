"""Storage at rest: real SQLite files, KDF_MIN, a virtual clock."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlite_utils

from volli_nb.base.clock import VirtualClock
from volli_nb.base.errors import (
    KeyMismatch,
    NotFound,
    StaleDeviceRecord,
    StorageError,
    UsageError,
    WrongPassphrase,
)
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.store.database import KDF_MIN, MIGRATIONS, SCHEMA_VERSION, Database
from volli_nb.core.store.message_queue import OutgoingMessage, PersistentMessageQueue
from volli_nb.core.store.sealed_db import SealedDatabase

PASS = "correct horse battery staple"
SECRET_BODY = b"meet me at the old oak at midnight"


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(1_700_000_000.0)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "profile.sqlite"


def open_db(path: Path, clock: VirtualClock, passphrase: str = PASS) -> Database:
    return Database.open(path, passphrase, kdf=KDF_MIN, clock=clock)


def mid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def file_hashes(path: Path) -> dict[str, str]:
    """sha256 of the main file and of its -wal, if there is one."""
    files = [path, path.with_name(path.name + "-wal")]
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.exists()}


def profile_files(path: Path) -> list[Path]:
    """The folder's files but the lock file (a crashed owner's stale one is removed)."""
    return sorted(p for p in path.parent.iterdir() if not p.name.endswith(".lock"))


def populate(db: Database, me: Identity) -> None:
    db.save_identity(me.to_secret_bytes(), me.peer_id, me.public.identity_key, me.public.device_key)
    db.store_received(mid(1), "conv", "bob", 1, 1000, SECRET_BODY)
    PersistentMessageQueue(db).enqueue(OutgoingMessage(mid(2), "conv", "bob", SECRET_BODY, 1))


# --- opening, passphrases ----------------------------------------------------


def test_create_then_reopen_reads_everything_back(path: Path, clock: VirtualClock) -> None:
    me = Identity.generate()
    with open_db(path, clock) as db:
        assert db.schema_version == SCHEMA_VERSION == 6
        assert db.load_identity_secret() is None
        populate(db, me)
    with open_db(path, clock) as db:
        assert db.load_identity_secret() == me.to_secret_bytes()
        assert [m.body for m in db.history("conv")] == [SECRET_BODY]
        assert PersistentMessageQueue(db).get_pending()[0].payload == SECRET_BODY


def crashed_writer(path: Path) -> None:
    """Another process writes and is SIGKILLed: its commits sit in the -wal file."""
    script = (
        "import os, signal, sys\n"
        "from volli_nb.core.crypto.identity import Identity\n"
        "from volli_nb.core.store.database import KDF_MIN, Database\n"
        "from volli_nb.core.store.message_queue import OutgoingMessage, PersistentMessageQueue\n"
        "db = Database.open(sys.argv[1], sys.argv[2], kdf=KDF_MIN)\n"
        "me = Identity.generate()\n"
        "db.save_identity(me.to_secret_bytes(), me.peer_id, me.public.identity_key,"
        " me.public.device_key)\n"
        "db.store_received((1).to_bytes(16, 'big'), 'conv', 'bob', 1, 1000, b'secret')\n"
        "PersistentMessageQueue(db).enqueue("
        "OutgoingMessage((2).to_bytes(16, 'big'), 'conv', 'bob', b'secret', 1))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path), PASS], check=False)
    assert done.returncode == -9


@pytest.mark.parametrize("data_in_wal", [False, True])
def test_wrong_passphrase_raises_and_changes_no_byte(
    path: Path, clock: VirtualClock, data_in_wal: bool
) -> None:
    if data_in_wal:
        crashed_writer(path)  # the data sits in the -wal file, as after a crash
    else:
        db = open_db(path, clock)
        populate(db, Identity.generate())
        db.close()
    before, listing = file_hashes(path), profile_files(path)
    assert (path.name + "-wal" in before) == data_in_wal
    with pytest.raises(WrongPassphrase, match="does not unlock"):
        open_db(path, clock, "Correct horse battery staple")
    assert file_hashes(path) == before
    assert profile_files(path) == listing  # not even empty -wal/-shm files
    with open_db(path, clock) as again:
        assert again.get_message(mid(1)) is not None


def test_change_passphrase_rewraps_and_keeps_all_data(path: Path, clock: VirtualClock) -> None:
    me = Identity.generate()
    with open_db(path, clock) as db:
        populate(db, me)
        with pytest.raises(WrongPassphrase):
            db.change_passphrase("not it", "new passphrase")
        db.change_passphrase(PASS, "new passphrase")
    with pytest.raises(WrongPassphrase):
        open_db(path, clock, PASS)
    with open_db(path, clock, "new passphrase") as db:
        assert db.load_identity_secret() == me.to_secret_bytes()
        message = db.get_message(mid(1))
        assert message is not None and message.body == SECRET_BODY
        assert PersistentMessageQueue(db).get_pending()[0].payload == SECRET_BODY


def test_empty_passphrase_is_refused_for_a_new_profile(path: Path, clock: VirtualClock) -> None:
    with pytest.raises(UsageError, match="non-empty"):
        open_db(path, clock, "")
    assert not path.exists() or path.stat().st_size == 0


def test_a_file_that_is_not_a_profile_is_a_storage_error(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    sqlite_utils.Database(other)["notes"].insert({"text": "hi"})
    with pytest.raises(StorageError, match="not a volli profile"):
        Database.open(other, PASS, kdf=KDF_MIN)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StorageError):
        Database.open(garbage, PASS, kdf=KDF_MIN)


# --- sealing ------------------------------------------------------------------


def test_bodies_and_secrets_are_not_in_clear_in_the_files(path: Path, clock: VirtualClock) -> None:
    me = Identity.generate()
    db = open_db(path, clock)
    populate(db, me)
    files = [f for f in path.parent.iterdir() if f.name.startswith(path.name)]
    for f in files:  # while open: main file and WAL
        assert SECRET_BODY not in f.read_bytes(), f.name
        assert me.to_secret_bytes()[:32] not in f.read_bytes(), f.name
    db.close()
    raw = path.read_bytes()
    assert SECRET_BODY not in raw
    assert me.to_secret_bytes()[:32] not in raw
    assert b"bob" in raw  # metadata stays in clear, for queries


def test_a_sealed_value_moved_to_another_row_does_not_open(path: Path, clock: VirtualClock) -> None:
    with open_db(path, clock) as db:
        db.store_received(mid(1), "conv", "bob", 1, 1000, b"first")
        db.store_received(mid(2), "conv", "bob", 2, 2000, b"second")
        db.execute(
            "UPDATE messages SET body = (SELECT body FROM messages WHERE message_id = ?) "
            "WHERE message_id = ?",
            (mid(1).hex(), mid(2).hex()),
        )
        with pytest.raises(StorageError, match="tampered with or moved"):
            db.get_message(mid(2))
        first = db.get_message(mid(1))
        assert first is not None and first.body == b"first"


def test_a_sealed_value_under_another_column_or_version_does_not_open(
    path: Path, clock: VirtualClock
) -> None:
    with open_db(path, clock) as db:
        sealed = db.seal("outbox", "payload", 7, b"data")
        assert db.unseal("outbox", "payload", 7, sealed) == b"data"
        for table, column, row_id in [("outbox", "last_error", 7), ("messages", "payload", 7)]:
            with pytest.raises(StorageError, match="tampered with or moved"):
                db.unseal(table, column, row_id, sealed)
        flipped = sealed[:-1] + bytes([sealed[-1] ^ 1])
        with pytest.raises(StorageError):
            db.unseal("outbox", "payload", 7, flipped)
        db.schema_version += 1
        with pytest.raises(StorageError):
            db.unseal("outbox", "payload", 7, sealed)


# --- schema and migrations ------------------------------------------------------


def test_a_newer_schema_is_refused_and_left_unchanged(path: Path, clock: VirtualClock) -> None:
    open_db(path, clock).close()
    newer = SCHEMA_VERSION + 1
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(newer),))
    conn.close()
    before = file_hashes(path)
    with pytest.raises(StorageError, match=rf"schema version {newer}.*upgrade volli_nb"):
        open_db(path, clock)
    assert file_hashes(path) == before


def test_a_migration_step_runs_once_and_reseals_values(
    path: Path, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_db(path, clock) as db:
        populate(db, Identity.generate())

    def add_column(db: SealedDatabase) -> None:
        db.execute("ALTER TABLE contacts ADD COLUMN note TEXT")

    monkeypatch.setattr(Database, "MIGRATIONS", (*MIGRATIONS, add_column))
    with open_db(path, clock) as db:
        assert db.schema_version == SCHEMA_VERSION + 1
        message = db.get_message(mid(1))
        assert message is not None and message.body == SECRET_BODY
        assert PersistentMessageQueue(db).get_pending()[0].payload == SECRET_BODY
    with open_db(path, clock) as db:  # not applied twice
        assert db.schema_version == SCHEMA_VERSION + 1
    monkeypatch.undo()
    with pytest.raises(StorageError, match="upgrade"):
        open_db(path, clock)


def test_sqlite_utils_lists_the_tables_without_the_passphrase(
    path: Path, clock: VirtualClock
) -> None:
    bob = Identity.generate().public
    with open_db(path, clock) as db:
        db.add_contact(
            bob.peer_id, bob.identity_key, bob.device_key, bob.device_signature, name="Bob"
        )
    cli = Path(sys.executable).with_name("sqlite-utils")
    out = subprocess.run([cli, "tables", str(path)], capture_output=True, text=True, check=True)
    for table in ["meta", "keyring", "identity", "contacts", "messages", "outbox", "seen"]:
        assert f'"{table}"' in out.stdout
    rows = list(sqlite_utils.Database(path)["contacts"].rows)
    assert [(r["peer_id"], r["name"]) for r in rows] == [(bob.peer_id, "Bob")]


# --- transactions ---------------------------------------------------------------


def test_transactions_roll_back_and_nest(path: Path, clock: VirtualClock) -> None:
    with open_db(path, clock) as db:
        with pytest.raises(RuntimeError), db.transaction():
            db.store_sent(mid(1), "conv", "me", 1, 1, b"a")
            raise RuntimeError("boom")
        assert db.get_message(mid(1)) is None
        with db.transaction():
            db.store_sent(mid(2), "conv", "me", 1, 1, b"b")
            with pytest.raises(RuntimeError), db.transaction():
                db.store_sent(mid(3), "conv", "me", 2, 2, b"c")
                raise RuntimeError("inner only")
        assert db.get_message(mid(2)) is not None
        assert db.get_message(mid(3)) is None


# --- identity, contacts, conversations ----------------------------------------------


def test_one_identity_per_profile(path: Path, clock: VirtualClock) -> None:
    a, b = Identity.generate(), Identity.generate()
    with open_db(path, clock) as db:
        db.save_identity(a.to_secret_bytes(), a.peer_id, a.public.identity_key, b"d" * 32)
        db.save_identity(a.to_secret_bytes(), a.peer_id, a.public.identity_key, b"d" * 32)
        with pytest.raises(UsageError, match="already belongs to"):
            db.save_identity(b.to_secret_bytes(), b.peer_id, b.public.identity_key, b"d" * 32)


def test_contacts_are_pinned_to_their_identity_key(path: Path, clock: VirtualClock) -> None:
    bob_identity = Identity.generate()
    bob, mallory = bob_identity.public, Identity.generate().public
    with open_db(path, clock) as db:
        db.add_contact(
            bob.peer_id, bob.identity_key, bob.device_key, bob.device_signature, name="Bob"
        )
        contact = db.get_contact(bob.peer_id)
        assert contact is not None and contact.public == bob and not contact.verified
        assert contact.added_at == clock.now and contact.last_seen is None

        db.set_verified(bob.peer_id, True)
        rotated = bob_identity.with_new_device().public  # same identity key, next epoch
        db.add_contact(
            bob.peer_id,
            rotated.identity_key,
            rotated.device_key,
            rotated.device_signature,
            device_epoch=rotated.device_epoch,
        )
        contact = db.get_contact(bob.peer_id)
        assert contact is not None and contact.device_key == rotated.device_key
        assert contact.public == rotated
        assert contact.verified and contact.name == "Bob"  # not downgraded or erased
        with pytest.raises(StaleDeviceRecord):  # the old record cannot roll the key back
            db.add_contact(bob.peer_id, bob.identity_key, bob.device_key, bob.device_signature)
        assert db.get_contact(bob.peer_id) == contact

        with pytest.raises(KeyMismatch, match=r"impersonating.*remove_contact"):
            db.add_contact(
                bob.peer_id, mallory.identity_key, mallory.device_key, mallory.device_signature
            )
        assert db.get_contact(bob.peer_id) == contact

        assert db.touch_contact(bob.peer_id, clock.now + 5)
        assert not db.touch_contact("nobody", clock.now)
        db.remove_contact(bob.peer_id)
        with pytest.raises(NotFound):
            db.remove_contact(bob.peer_id)
        with pytest.raises(NotFound):
            db.set_verified(bob.peer_id)
        # Unpinned, the id starts over: even the old record (refused above) pins again.
        # (An id is its key's fingerprint: a record under another key's id is refused.)
        db.add_contact(bob.peer_id, bob.identity_key, bob.device_key, bob.device_signature)
        assert [c.public for c in db.list_contacts()] == [bob]
        with pytest.raises(UsageError, match="not the id of that identity key"):
            db.add_contact(
                Identity.generate().peer_id,
                mallory.identity_key,
                mallory.device_key,
                mallory.device_signature,
            )


def test_conversations(path: Path, clock: VirtualClock) -> None:
    with open_db(path, clock) as db:
        conv = db.ensure_conversation("c1", ["bob", "alice", "bob"])
        assert conv.members == ("alice", "bob") and conv.title is None
        assert db.ensure_conversation("c1", ["alice", "bob"], "Chat").title == "Chat"
        assert db.ensure_conversation("c1", ["bob", "alice"]).title == "Chat"
        with pytest.raises(UsageError, match="membership"):
            db.ensure_conversation("c1", ["alice", "mallory"])
        db.ensure_conversation("c2", ["alice", "carol"])
        assert [c.id for c in db.list_conversations()] == ["c1", "c2"]
        assert db.get_conversation("nope") is None


# --- counters, messages, seen-set ---------------------------------------------------


def test_counters_strictly_increase_across_reopen(path: Path, clock: VirtualClock) -> None:
    with open_db(path, clock) as db:
        assert [db.next_counter("c1") for _ in range(3)] == [1, 2, 3]
        assert db.next_counter("c2") == 1
    with open_db(path, clock) as db:
        assert db.next_counter("c1") == 4


def test_store_received_deduplicates_and_the_seen_set_survives(
    path: Path, clock: VirtualClock
) -> None:
    with open_db(path, clock) as db:
        assert not db.is_seen(mid(1))
        assert db.store_received(mid(1), "conv", "bob", 1, 1000, b"hi")
        assert not db.store_received(mid(1), "conv", "bob", 1, 1000, b"changed")
        assert len(db.history("conv")) == 1
    with open_db(path, clock) as db:
        assert db.is_seen(mid(1))
        assert not db.store_received(mid(1), "conv", "bob", 1, 1000, b"replayed")
        assert [m.body for m in db.history("conv")] == [b"hi"]
        assert db.prune_seen(clock.now + 1) == 1
        assert db.is_seen(mid(1))  # a stored message still counts as seen
        assert not db.store_received(mid(1), "conv", "bob", 1, 1000, b"replayed")


def test_history_is_ordered_by_sender_time_then_arrival(path: Path, clock: VirtualClock) -> None:
    with open_db(path, clock) as db:
        db.store_received(mid(1), "conv", "bob", 2, 2000, b"late")
        clock.advance(1)
        db.store_sent(mid(2), "conv", "me", 1, 1000, b"early")
        db.store_received(mid(3), "conv", "bob", 3, 2000, b"same time, later arrival")
        db.store_received(mid(4), "other", "carol", 1, 0, b"elsewhere")
        bodies = [m.body for m in db.history("conv")]
        assert bodies == [b"early", b"late", b"same time, later arrival"]
        assert [m.body for m in db.history("conv", limit=2)] == bodies[1:]
        out = db.get_message(mid(2))
        assert out is not None and (out.direction, out.sender, out.stored_at) == (
            "out",
            "me",
            clock.now,
        )
        assert db.get_message(mid(9)) is None
        with pytest.raises(UsageError, match="already stored"):
            db.store_sent(mid(2), "conv", "me", 1, 1000, b"again")
        with pytest.raises(UsageError, match="16 bytes"):
            db.is_seen(b"short")
