"""A profile's schema: identity, pinned contacts, conversations, messages, outbox, seen-set,
groups.

One SQLite file per profile (see :mod:`volli_nb.core.store.sealed_db` for opening, keys
and transactions).  :class:`Database` composes the tables' code (:mod:`.contacts`,
:mod:`.history`) and keeps our own identity and the schema with its migrations.
Metadata that queries need (ids, times, statuses) is stored in clear, so
``sqlite-utils tables profile.sqlite`` and ``sqlite-utils rows`` can inspect a profile
without the passphrase; secrets and message bodies are sealed with the database key,
bound to their table, column, row and schema version (and, from schema 2, padded to a
size bucket).  The clear columns that carry trust are covered by row MACs
(:mod:`volli_nb.core.store.row_macs`), so they are readable but not editable.  The
``outbox`` table belongs to :mod:`volli_nb.core.store.message_queue` but is created
here, so a profile has one schema and one migration history.
"""

from __future__ import annotations

from collections.abc import Callable

from volli_nb.base.errors import StorageError, UsageError
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.store.bound_ids import bind_message_ids
from volli_nb.core.store.contacts import (
    CONTACT_COLUMNS,
    MARKS_COLUMNS,
    MARKS_TABLE,
    Contact,
    Contacts,
)
from volli_nb.core.store.groups import (
    GROUP_COLUMNS,
    HELD_COLUMNS,
    RECORD_COLUMNS,
    GroupRows,
    create_group_tables,
)
from volli_nb.core.store.history import (
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    SEEN_COLUMNS,
    Conversation,
    History,
    StoredMessage,
)
from volli_nb.core.store.integrity import IntegrityReport, check_integrity
from volli_nb.core.store.keyring import KDF_MIN, KDF_MODERATE, KdfCost
from volli_nb.core.store.outbox_ledger import (
    MESSAGES_PART,
    OUTBOX_PART,
    PRUNED,
    PRUNED_MAC,
    STATUS_MAC,
    authenticate_statuses,
)
from volli_nb.core.store.row_macs import MAC_COLUMN

__all__ = [
    "KDF_MIN",
    "KDF_MODERATE",
    "SCHEMA_VERSION",
    "Contact",
    "Conversation",
    "Database",
    "KdfCost",
    "StoredMessage",
]

_V1 = [
    """CREATE TABLE identity (id INTEGER PRIMARY KEY CHECK (id = 1), peer_id TEXT NOT NULL,
       identity_key BLOB NOT NULL, device_key BLOB NOT NULL, secret BLOB NOT NULL,
       created_at REAL NOT NULL)""",
    """CREATE TABLE contacts (peer_id TEXT PRIMARY KEY, name TEXT, identity_key BLOB NOT NULL,
       device_key BLOB NOT NULL, device_signature BLOB NOT NULL,
       verified INTEGER NOT NULL DEFAULT 0, added_at REAL NOT NULL, last_seen REAL)""",
    """CREATE TABLE conversations (id TEXT PRIMARY KEY, title TEXT, members TEXT NOT NULL,
       created_at REAL NOT NULL)""",
    "CREATE TABLE counters (conversation_id TEXT PRIMARY KEY, next_counter INTEGER NOT NULL)",
    """CREATE TABLE messages (message_id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL,
       sender TEXT NOT NULL, direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
       counter INTEGER NOT NULL, timestamp_ms INTEGER NOT NULL, stored_at REAL NOT NULL,
       body BLOB NOT NULL)""",
    "CREATE INDEX messages_by_time ON messages (conversation_id, timestamp_ms, stored_at)",
    """CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL,
       conversation_id TEXT NOT NULL, recipient TEXT NOT NULL, status TEXT NOT NULL,
       attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL, last_error TEXT,
       created_at REAL NOT NULL, updated_at REAL NOT NULL, counter INTEGER NOT NULL,
       payload BLOB)""",
    "CREATE INDEX outbox_due ON outbox (status, next_attempt_at)",
    "CREATE UNIQUE INDEX outbox_message_recipient ON outbox (message_id, recipient)",
    "CREATE TABLE seen (message_id TEXT PRIMARY KEY, sender TEXT NOT NULL, seen_at REAL NOT NULL)",
    "CREATE INDEX seen_by_time ON seen (seen_at)",
]


OUTBOX_COLUMNS = ("id", "message_id", "conversation_id", "recipient", "counter")
AUTHENTICATED: dict[str, tuple[str, tuple[str, ...]]] = {
    "contacts": ("peer_id", CONTACT_COLUMNS),
    "conversations": ("id", CONVERSATION_COLUMNS),
    "messages": ("message_id", MESSAGE_COLUMNS),
    "outbox": ("id", OUTBOX_COLUMNS),
    MARKS_TABLE: ("id", MARKS_COLUMNS),  # from schema 3
    "groups": ("group_id", GROUP_COLUMNS),  # from schema 5
    "group_records": ("hash", RECORD_COLUMNS),
    "group_held": ("message_id", HELD_COLUMNS),
    "seen": ("message_id", SEEN_COLUMNS),  # from schema 6
}
"""Rows whose clear columns carry trust, and the columns their MAC covers."""
PART_MACS: dict[str, tuple[str, tuple[str, ...]]] = {
    "outbox": OUTBOX_PART,
    "messages": MESSAGES_PART,
}
"""From schema 3: an outbox row's status; a sent message's record of its pruned rows."""
_SCHEMA2_AUTHENTICATED = ("contacts", "conversations", "messages", "outbox")


def _create_v1_tables(db: Database) -> None:
    for sql in _V1:
        db.execute(sql)


def _authenticate_rows(db: Database) -> None:
    """Schema 2: device epochs, a MAC on every trust-bearing row (computed here, under
    the passphrase, for the rows a schema-1 file already holds), padded sealed values
    (re-sealed before this step runs).  Contacts whose device record does not verify
    are refused by name: the MAC must not bless an edit made before it existed."""
    db.execute("ALTER TABLE contacts ADD COLUMN device_epoch INTEGER NOT NULL DEFAULT 0")
    for table in _SCHEMA2_AUTHENTICATED:
        db.execute(f"ALTER TABLE {table} ADD COLUMN {MAC_COLUMN} BLOB")
    db.authenticate_all(_SCHEMA2_AUTHENTICATED)
    for row in db.fetch("SELECT peer_id FROM contacts"):
        try:
            db.get_contact(row["peer_id"])
        except StorageError as exc:
            raise StorageError(f"cannot migrate {db.path} to schema 2: {exc}") from None


def _authenticate_bookkeeping(db: Database) -> None:
    """Schema 3: an outbox row's status and existence (:mod:`.outbox_ledger`), and the
    index of the contacts (:mod:`.contacts`), computed for what the file holds now, each
    row's MAC (and each contact's device signature) checked first."""
    db.execute(f"ALTER TABLE outbox ADD COLUMN {STATUS_MAC} BLOB")
    db.execute(f"ALTER TABLE messages ADD COLUMN {PRUNED} TEXT")
    db.execute(f"ALTER TABLE messages ADD COLUMN {PRUNED_MAC} BLOB")
    db.execute(
        f"""CREATE TABLE {MARKS_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1),
        marks TEXT NOT NULL, {MAC_COLUMN} BLOB)"""
    )
    authenticate_statuses(db)
    db.index_contacts()


def _authenticate_seen(db: Database) -> None:
    """Schema 6: a MAC on each seen-set row.  A row planted without the passphrase made
    the receiver acknowledge, as a duplicate, a message it never stored (and the sender
    mark it delivered).  The rows the file holds now are MAC'd as they are: nothing tells
    a planted one from a real one before this step (as with schema 2's MACs)."""
    db.execute(f"ALTER TABLE seen ADD COLUMN {MAC_COLUMN} BLOB")
    db.authenticate_all(("seen",))


MIGRATIONS: tuple[Callable[[Database], None], ...] = (
    _create_v1_tables,
    _authenticate_rows,
    _authenticate_bookkeeping,
    bind_message_ids,  # schema 4: ids name their sender (:mod:`.bound_ids`)
    create_group_tables,  # schema 5: groups and their records (:mod:`.groups`)
    _authenticate_seen,  # schema 6: seen-set rows MAC'd
)
"""``MIGRATIONS[n]`` takes schema ``n`` to ``n + 1``.  Append; never edit a released step
(a step names its own tables, so a later table does not change what it does)."""

SCHEMA_VERSION = len(MIGRATIONS)
PADDED_FROM = 2  # sealed values are padded to a size bucket from this schema on

# Where sealed values live, so a migration can re-seal them under the new version.
SEALED_COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "identity": ("id", ("secret",)),
    "messages": ("message_id", ("body",)),
    "outbox": ("id", ("payload",)),
    "group_held": ("message_id", ("body",)),
}


class Database(Contacts, History, GroupRows):
    """A profile; ``Database.open(path, passphrase)`` unlocks or creates it.

    Contacts come from :class:`Contacts`, conversations and messages from :class:`History`,
    groups and their records from :class:`GroupRows`.
    Also inherited: ``change_passphrase``, ``rekey``, ``seal``/``unseal``, ``check_row``,
    ``transaction``,
    ``execute``/``fetch``, ``close``, ``path``, ``clock`` and ``db`` (sqlite_utils).
    """

    MIGRATIONS = MIGRATIONS
    SEALED_COLUMNS = SEALED_COLUMNS
    AUTHENTICATED = AUTHENTICATED
    PART_MACS = PART_MACS
    PADDED_FROM = PADDED_FROM
    MARKS_FROM = 3  # the contacts have their index from this schema on

    # --- identity -------------------------------------------------------------

    def save_identity(
        self, secret: bytes, peer_id: str, identity_key: bytes, device_key: bytes
    ) -> None:
        """Store our own identity (secret sealed).  One per profile: a different
        peer id is refused rather than silently replacing who we are."""
        with self.transaction():
            rows = self.fetch("SELECT peer_id FROM identity WHERE id = 1")
            if rows and rows[0]["peer_id"] != peer_id:
                raise UsageError(
                    f"this profile already belongs to {rows[0]['peer_id']}; "
                    "use a new profile file for another identity"
                )
            self.execute(
                """INSERT INTO identity VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET
                identity_key = excluded.identity_key, device_key = excluded.device_key,
                secret = excluded.secret""",
                (
                    peer_id,
                    identity_key,
                    device_key,
                    self.seal("identity", "secret", 1, secret),
                    self.clock(),
                ),
            )

    def verify(self) -> IntegrityReport:
        """SQLite's ``quick_check``, the schema, every sealed value opened and every MAC
        checked (see :mod:`.integrity`)."""
        return check_integrity(self)

    def own_identity(self) -> Identity:
        """The profile's identity; a new profile gets a fresh one, saved at once."""
        secret = self.load_identity_secret()
        if secret is not None:
            return Identity.from_secret_bytes(secret)
        identity = Identity.generate()
        public = identity.public
        self.save_identity(
            identity.to_secret_bytes(), identity.peer_id, public.identity_key, public.device_key
        )
        return identity

    def load_identity_secret(self) -> bytes | None:
        rows = self.fetch("SELECT secret FROM identity WHERE id = 1")
        return self.unseal("identity", "secret", 1, rows[0]["secret"]) if rows else None
