"""Issue 12, items 4 and 7: trust data at rest, and the smaller storage items.

Someone who can write the profile file but has no passphrase edits it with plain
``sqlite3``; every edit of trust data must be refused by name (``TamperedRow``) the next
time it is read, before anything is encrypted to anyone.  Also: a profile made before
row MACs opens and is migrated; an old device record cannot roll a pin back; Argon2
limits from the file are capped before use; sealed bodies show only their size bucket;
``rekey`` replaces the database key in one transaction; warnings reach the event log
and the peers panel.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from netutil import open_store

from volli_nb.app.chat import dm_conversation_id
from volli_nb.app.messages_store import MessagesStore
from volli_nb.base import errors
from volli_nb.base.errors import KeyMismatch, StorageError, VolliError
from volli_nb.core.claimed_name import claimed_name
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.store import keyring
from volli_nb.core.store.database import KDF_MIN, SCHEMA_VERSION, Database
from volli_nb.ui.widgets import peers_table

DATA = Path(__file__).parent / "data"
SCHEMA1 = DATA / "profile-schema1.sqlite"  # made by de6f7d7, before row MACs (see below)
SCHEMA1_PASSPHRASE = "schema one passphrase"


def run(coro_factory: Callable[[], Any]) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(30):
            return await coro_factory()

    return asyncio.run(bounded())


def edit(path: Path, sql: str, params: tuple[object, ...] = ()) -> None:
    """What a file writer without the passphrase can do."""
    conn = sqlite3.connect(path)
    with conn:
        assert conn.execute(sql, params).rowcount == 1
    conn.close()


def profile(tmp: Path) -> tuple[MessagesStore, Identity, Identity, str]:
    alice, bob, mallory = open_store(tmp, "alice"), Identity.generate(), Identity.generate()
    alice.add_contact(bob.public, name="bob")
    alice.add_contact(mallory.public, name="mallory")
    conversation = dm_conversation_id(alice.peer_id, bob.peer_id)
    alice.database.store_received(b"\x01" * 16, conversation, bob.peer_id, 1, 1, b"{}")
    return alice, bob, mallory, conversation


def tampered(exc: pytest.ExceptionInfo[BaseException], table: str, key: object) -> None:
    assert type(exc.value) is errors.TamperedRow, exc.value
    assert (exc.value.table, exc.value.key) == (table, key)
    assert table in str(exc.value) and repr(key) in str(exc.value)


def test_a_member_added_in_the_file_gets_no_message(tmp_path: Path) -> None:
    """Attack: add Mallory to Alice and Bob's conversation so the next message is
    encrypted to her too."""

    async def main() -> None:
        alice, bob, mallory, conversation = profile(tmp_path)
        members = sorted([alice.peer_id, bob.peer_id, mallory.peer_id])
        edit(
            alice.database.path,
            "UPDATE conversations SET members = ? WHERE id = ?",
            (str(members).replace("'", '"'), conversation),
        )
        try:
            with pytest.raises(StorageError) as exc:
                await alice.send_message(conversation, "for bob only")
            assert not alice.message_queue.get_pending()  # nothing queued, to anyone
            tampered(exc, "conversations", conversation)
        finally:
            await alice.close()

    run(main)


@pytest.mark.parametrize(
    ("table", "sql", "read"),
    [
        ("messages", "UPDATE messages SET sender = ?2", lambda s, b, m, c: s.history(c)),
        ("messages", "UPDATE messages SET direction = 'out'", lambda s, b, m, c: s.history(c)),
        (
            "contacts",
            "UPDATE contacts SET verified = 1 WHERE peer_id = ?1",
            lambda s, *_: s.contacts,
        ),
        (
            "contacts",
            "UPDATE contacts SET device_key = (SELECT device_key FROM contacts WHERE peer_id = ?2),"
            " device_signature = (SELECT device_signature FROM contacts WHERE peer_id = ?2),"
            " mac = (SELECT mac FROM contacts WHERE peer_id = ?2) WHERE peer_id = ?1",
            lambda s, b, m, c: s.contact(b.peer_id),
        ),
    ],
    ids=["re-attribute", "flip-direction", "flip-verified", "swap-device-key-and-mac"],
)
def test_an_edited_trust_column_is_refused_by_name(
    tmp_path: Path, table: str, sql: str, read: Callable[..., object]
) -> None:
    """Attack: re-attribute a received message, flip ``verified``, move a key (with its
    MAC) from another row."""

    async def main() -> None:
        alice, bob, mallory, conversation = profile(tmp_path)
        key = bob.peer_id if table == "contacts" else (b"\x01" * 16).hex()
        params = (bob.peer_id, mallory.peer_id)[: 2 if "?2" in sql else 1 if "?1" in sql else 0]
        edit(alice.database.path, sql, params)
        try:
            with pytest.raises(StorageError) as exc:
                read(alice, bob, mallory, conversation)
            tampered(exc, table, key)
        finally:
            await alice.close()

    run(main)


def test_an_outbox_recipient_edited_in_the_file_is_refused(tmp_path: Path) -> None:
    """Attack: point a queued message at another contact, who would get its plaintext."""

    async def main() -> None:
        alice, bob, mallory, _conversation = profile(tmp_path)
        await alice.send_message(bob.peer_id, "queued for bob")
        (row,) = alice.message_queue.get_pending()
        edit(alice.database.path, "UPDATE outbox SET recipient = ?", (mallory.peer_id,))
        try:
            with pytest.raises(StorageError) as exc:
                alice.message_queue.get_pending()
            tampered(exc, "outbox", row.id)
        finally:
            await alice.close()

    run(main)


def test_a_contact_inserted_in_the_file_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        alice, _bob, _mallory, _conversation = profile(tmp_path)
        eve = Identity.generate().public
        edit(
            alice.database.path,
            "INSERT INTO contacts (peer_id, name, identity_key, device_key, device_signature, "
            "verified, added_at) VALUES (?, 'eve', ?, ?, ?, 1, 0)",
            (eve.peer_id, eve.identity_key, eve.device_key, eve.device_signature),
        )
        try:
            with pytest.raises(StorageError) as exc:
                alice.contact(eve.peer_id)
            tampered(exc, "contacts", eve.peer_id)
        finally:
            await alice.close()

    run(main)


# --- a profile made before row MACs -----------------------------------------------------
# tests/data/profile-schema1.sqlite was written by the code as found (main at de6f7d7):
# identity seeds 01*32/02*32 (peer 66xglp2zhf2dwmpc), contacts Bob (03/04, verified) and
# Carol (05/06), their conversations, a received and a sent message, one pending outbox row.
ME, BOB, CAROL = "66xglp2zhf2dwmpc", "xdnhrbzupcdwzzhh", "74ricjeow2gxg72u"


def test_a_profile_made_before_row_macs_opens_migrated_and_protected(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    shutil.copy(SCHEMA1, path)
    with Database.open(path, SCHEMA1_PASSPHRASE, kdf=KDF_MIN) as db:
        assert db.schema_version == SCHEMA_VERSION  # through schema 2 (MACs) to the newest
        assert [(c.peer_id, c.name, c.verified) for c in db.list_contacts()] == [
            (BOB, "Bob", True),
            (CAROL, "Carol", False),
        ]
        conversation = dm_conversation_id(ME, BOB)
        assert [(m.direction, m.body) for m in db.history(conversation)] == [
            ("in", b'{"type": "text", "text": "hello from bob"}'),
            ("out", b'{"type": "text", "text": "hi bob"}'),
        ]
        secret = db.load_identity_secret()
        assert secret is not None and Identity.from_secret_bytes(secret).peer_id == ME
    conn = sqlite3.connect(path)
    macs = [r[0] for r in conn.execute("SELECT mac FROM contacts UNION ALL SELECT mac FROM outbox")]
    sealed = [len(r[0]) for r in conn.execute("SELECT body FROM messages")]
    conn.close()
    assert len(macs) == 3 and all(isinstance(m, bytes) and len(m) == 32 for m in macs)
    assert sealed == [24 + 256 + 16] * 2  # re-sealed, padded to the first bucket
    edit(path, "UPDATE contacts SET verified = 1 WHERE peer_id = ?", (CAROL,))
    with (
        Database.open(path, SCHEMA1_PASSPHRASE, kdf=KDF_MIN) as db,
        pytest.raises(StorageError) as exc,
    ):
        db.list_contacts()
    tampered(exc, "contacts", CAROL)


def test_a_schema1_contact_edited_before_the_migration_is_not_blessed(tmp_path: Path) -> None:
    """The migration re-verifies every device signature before it MACs a contact."""
    path = tmp_path / "old.sqlite"
    shutil.copy(SCHEMA1, path)
    mallory = Identity.generate().public
    edit(path, "UPDATE contacts SET device_key = ? WHERE peer_id = ?", (mallory.device_key, BOB))
    with pytest.raises(StorageError, match=rf"cannot migrate.*{BOB}"):
        Database.open(path, SCHEMA1_PASSPHRASE, kdf=KDF_MIN)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
    conn.close()


# --- item 7 ---------------------------------------------------------------------------


def test_an_old_validly_signed_device_record_cannot_roll_a_pin_back(tmp_path: Path) -> None:
    """Attack: replay Bob's old (still validly signed) device record, e.g. as a stale
    presence entry or an old pairing code, to move his pin back to a key Mallory holds."""

    async def main() -> None:
        alice = open_store(tmp_path, "alice")
        seed = bytes(range(32))
        old, current = Identity(seed, b"\x01" * 32), Identity(seed, b"\x02" * 32)
        try:
            alice.add_contact(current.public, name="bob")
            with pytest.raises(KeyMismatch) as exc:  # same identity key, older device record
                alice.add_contact(old.public)
            assert type(exc.value) is errors.StaleDeviceRecord
            assert alice.contact(current.peer_id) == current.public
            rotated = current.with_new_device()  # a real rotation: the next epoch, signed
            alice.add_contact(rotated.public)
            assert alice.contact(current.peer_id) == rotated.public
            for stale in (current, old):
                with pytest.raises(errors.StaleDeviceRecord):
                    alice.add_contact(stale.public)
            assert alice.contact(current.peer_id) == rotated.public
        finally:
            await alice.close()

    run(main)


def test_argon2_limits_from_a_tampered_file_are_capped_before_use(tmp_path: Path) -> None:
    """Attack: raise the keyring's Argon2 cost in the file so opening it computes (or
    allocates) as much as the writer likes, before the passphrase is even checked."""
    path = tmp_path / "p.sqlite"
    Database.open(path, "pw", kdf=KDF_MIN).close()
    too_many = 4 * keyring.ARGON2_OPSLIMIT_MODERATE + 1  # cheap with MIN memory, yet refused
    edit(path, "UPDATE keyring SET opslimit = ?", (too_many,))
    with pytest.raises(StorageError, match="out of range"):
        Database.open(path, "pw", kdf=KDF_MIN)
    row = {"salt": b"s" * 16, "opslimit": 1, "wrapped": b"w" * 72}
    with pytest.raises(StorageError):  # 1 GiB + 1 byte: refused without allocating it
        keyring.WrappedKey.from_row({**row, "memlimit": 4 * keyring.ARGON2_MEMLIMIT_MODERATE + 1})
    assert keyring.WrappedKey.from_row({**row, "memlimit": 4 * keyring.ARGON2_MEMLIMIT_MODERATE})


def test_sealed_bodies_at_rest_show_their_bucket_not_their_length(tmp_path: Path) -> None:
    with Database.open(tmp_path / "p.sqlite", "pw", kdf=KDF_MIN) as db:
        for n, text in enumerate([b"a", b"a" * 100, b"a" * 255]):
            db.store_received(bytes([n]) * 16, "c", "bob", n + 1, 1, text)
        lengths = {len(r["body"]) for r in db.fetch("SELECT body FROM messages")}
        assert lengths == {24 + 256 + 16}
        db.store_received(b"\x09" * 16, "c", "bob", 9, 1, b"a" * 256)
        assert db.get_message(b"\x09" * 16) is not None
        assert (
            len(db.fetch("SELECT body FROM messages WHERE counter = 9")[0]["body"]) == 24 + 512 + 16
        )


def database_key(path: Path, passphrase: str) -> bytes:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    row = dict(conn.execute("SELECT * FROM keyring").fetchone())
    conn.close()
    return keyring.WrappedKey.from_row(row).unwrap(passphrase)


def opens_with(key: bytes, path: Path) -> bool:
    """Whether ``key`` opens any sealed field of the file (what a thief with it can read)."""
    conn = sqlite3.connect(path)
    fields = [
        ("identity", "secret", r[0], r[1]) for r in conn.execute("SELECT id, secret FROM identity")
    ]
    fields += [
        ("messages", "body", r[0], r[1])
        for r in conn.execute("SELECT message_id, body FROM messages")
    ]
    fields += [
        ("outbox", "payload", r[0], r[1])
        for r in conn.execute("SELECT id, payload FROM outbox WHERE payload IS NOT NULL")
    ]
    conn.close()
    return any(
        keyring.aead_open(key, keyring.field_context(t, c, pk, SCHEMA_VERSION), v, True) is not None
        for t, c, pk, v in fields
    )


def test_rekey_replaces_the_database_key_that_change_passphrase_keeps(tmp_path: Path) -> None:
    """Limit of change_passphrase: whoever copied the file while knowing the old
    passphrase holds the database key and reads every later copy.  rekey() ends that."""

    async def main() -> None:
        alice, bob, _mallory, conversation = profile(tmp_path)
        path = alice.database.path
        await alice.send_message(bob.peer_id, "after the copy")
        old_key = database_key(path, "alice passphrase")
        alice.database.change_passphrase("alice passphrase", "new passphrase", kdf=KDF_MIN)
        assert database_key(path, "new passphrase") == old_key and opens_with(old_key, path)
        alice.database.rekey("new passphrase")
        assert database_key(path, "new passphrase") != old_key
        assert not opens_with(old_key, path)
        assert [m.text for m in alice.history(conversation)][-1] == "after the copy"
        assert alice.message_queue.get_pending()[0].payload  # re-sealed, readable
        await alice.close()
        reopened = MessagesStore.open(path, "new passphrase", kdf=KDF_MIN)
        assert [c.name for c in reopened.contacts] == ["bob", "mallory"]  # MACs follow the key
        await reopened.close()

    run(main)


def test_rekey_is_one_transaction(tmp_path: Path) -> None:
    """A row that fails its MAC half-way stops rekey, and nothing changed."""

    async def main() -> None:
        alice, bob, _mallory, _conversation = profile(tmp_path)
        path = alice.database.path
        before = database_key(path, "alice passphrase")
        edit(path, "UPDATE contacts SET verified = 1 WHERE peer_id = ?", (bob.peer_id,))
        try:
            with pytest.raises(StorageError):
                alice.database.rekey("alice passphrase")
            assert database_key(path, "alice passphrase") == before and opens_with(before, path)
            assert not opens_with(b"\x00" * 32, path)  # (the check can fail)
        finally:
            await alice.close()

    run(main)


def test_a_name_clash_and_a_key_change_are_visible_warnings(tmp_path: Path) -> None:
    async def main() -> None:
        alice = open_store(tmp_path, "alice")
        bob, impostor = Identity.generate(), Identity.generate()
        try:
            alice.add_contact(bob.public, name="Bob")
            alice.add_contact(impostor.public, name="bob ")  # looks the same
            alice.add_contact(bob.with_new_device().public)  # accepted, but worth a look
            with pytest.raises(VolliError):
                alice.add_contact(bob.public)  # the old record: refused
            logged = {e.data.get("kind"): e for e in alice.log.entries() if "warning" in e.message}
            assert logged["contact.name_clash"].peer_id == impostor.peer_id
            assert logged["contact.device_changed"].peer_id == bob.peer_id
            assert logged["contact.key_changed"].peer_id == bob.peer_id
            table = peers_table(alice, 0.0)
            rows = {row["peer"]: row for row in table.rows}
            assert "Bob" in rows[impostor.peer_id]["warning"]
            assert "refused" in rows[bob.peer_id]["warning"]
            assert table.highlight == frozenset(range(len(table.rows)))
            assert "warning" in table.columns
        finally:
            await alice.close()

    run(main)


@pytest.mark.parametrize(
    "claimed",
    [
        "Alice\u3164",  # a Hangul filler: printable, drawn as nothing
        "\u2800Alice",  # a blank Braille pattern
        "\u0410lice",  # a Cyrillic capital A
        "Αlicе",  # a Greek capital alpha and a Cyrillic e
    ],
)
def test_a_name_that_only_looks_like_a_contacts_is_a_warning_however_it_arrives(
    tmp_path: Path, claimed: str
) -> None:
    """A room member that another pairing or room pinned without a name, then names
    "Alice", or a new one whose name passes for Alice's: both are name clashes."""

    async def main() -> None:
        alice_store = open_store(tmp_path, "me")
        alice, mallory, eve = (Identity.generate() for _ in range(3))
        try:
            book = alice_store.contact_book
            book.add(alice.public, name="Alice")
            book.add_member(mallory.public, None)  # seen first without a name
            book.add_member(mallory.public, "alice")
            book.add_member(eve.public, claimed_name(claimed))
            assert set(book.warnings) == {mallory.peer_id, eve.peer_id}
            assert "Alice" in book.warnings[eve.peer_id]
            assert "\u3164" not in book.display_name(eve.peer_id)
        finally:
            await alice_store.close()

    run(main)


def test_a_rekey_whose_checkpoint_fails_still_seals_under_the_new_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rekey commits, then folds the WAL in; if that fails (a full disk), the open
    profile kept sealing under the old key, which the file no longer names: what it wrote
    next could not be read after a restart."""
    path = tmp_path / "p.sqlite"
    db = Database.open(path, "pw", kdf=KDF_MIN)
    db.store_sent(b"\x01" * 16, "c", "me", 1, 1, b"before")
    real = type(db).execute

    def failing_checkpoint(self: Database, sql: str, params: Any = ()) -> Any:
        if sql.startswith("PRAGMA wal_checkpoint"):
            raise errors.StorageFull("the disk is full (simulated)")
        return real(self, sql, params)

    monkeypatch.setattr(type(db), "execute", failing_checkpoint)
    with pytest.raises(errors.StorageFull):
        db.rekey("pw")
    monkeypatch.undo()
    db.store_sent(b"\x02" * 16, "c", "me", 2, 2, b"after")
    db.close()
    with Database.open(path, "pw", kdf=KDF_MIN) as again:
        bodies = [again.get_message(bytes([n]) * 16) for n in (1, 2)]
        assert [m.body for m in bodies if m is not None] == [b"before", b"after"]
        assert again.verify().ok
