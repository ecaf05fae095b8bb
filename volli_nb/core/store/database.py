"""A profile's tables: identity, pinned contacts, conversations, messages, outbox, seen-set.

One SQLite file per profile (see :mod:`volli_nb.core.store.sealed_db` for opening, keys and
transactions).  Metadata that queries need (ids, times, statuses) is stored in
clear, so ``sqlite-utils tables profile.sqlite`` and ``sqlite-utils rows`` can
inspect a profile without the passphrase; secrets and message bodies are sealed
with the database key, bound to their table, column, row and schema version.
The ``outbox`` table belongs to :mod:`volli_nb.core.store.message_queue` but is created here, so a
profile has one schema and one migration history.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

from volli_nb.base.errors import KeyMismatch, NotFound, UsageError
from volli_nb.core.crypto.identity import PublicIdentity
from volli_nb.core.store.keyring import KDF_MIN, KDF_MODERATE, KdfCost
from volli_nb.core.store.sealed_db import Migration, Row, SealedDatabase

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

MESSAGE_ID_BYTES = 16

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


def _create_v1_tables(db: SealedDatabase) -> None:
    for sql in _V1:
        db.execute(sql)


MIGRATIONS: tuple[Migration, ...] = (_create_v1_tables,)
"""``MIGRATIONS[n]`` takes schema ``n`` to ``n + 1``.  Append; never edit a released step."""

SCHEMA_VERSION = len(MIGRATIONS)

# Where sealed values live, so a migration can re-seal them under the new version.
SEALED_COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "identity": ("id", ("secret",)),
    "messages": ("message_id", ("body",)),
    "outbox": ("id", ("payload",)),
}


@dataclass(frozen=True)
class Contact:
    """A pinned contact: the keys we accept for this peer id until it is removed."""

    peer_id: str
    identity_key: bytes
    device_key: bytes
    device_signature: bytes
    name: str | None
    verified: bool
    added_at: float
    last_seen: float | None

    @property
    def public(self) -> PublicIdentity:
        return PublicIdentity(self.identity_key, self.device_key, self.device_signature)


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str | None
    members: tuple[str, ...]  # sorted peer ids, ourselves included
    created_at: float


@dataclass(frozen=True)
class StoredMessage:
    message_id: bytes
    conversation_id: str
    sender: str
    direction: str  # "in" or "out"
    counter: int
    timestamp_ms: int  # the sender's signed time
    stored_at: float  # our clock when stored
    body: bytes


def _message_hex(message_id: bytes) -> str:
    if not isinstance(message_id, bytes) or len(message_id) != MESSAGE_ID_BYTES:
        raise UsageError(f"a message id is {MESSAGE_ID_BYTES} bytes, got {message_id!r}")
    return message_id.hex()


class Database(SealedDatabase):
    """A profile; ``Database.open(path, passphrase)`` unlocks or creates it.

    Also inherited: ``change_passphrase``, ``seal``/``unseal``, ``transaction``,
    ``execute``/``fetch``, ``close``, ``path``, ``clock`` and ``db`` (sqlite_utils).
    """

    MIGRATIONS = MIGRATIONS
    SEALED_COLUMNS = SEALED_COLUMNS

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

    def load_identity_secret(self) -> bytes | None:
        rows = self.fetch("SELECT secret FROM identity WHERE id = 1")
        return self.unseal("identity", "secret", 1, rows[0]["secret"]) if rows else None

    # --- contacts (pinned keys) -----------------------------------------------

    def add_contact(
        self,
        peer_id: str,
        identity_key: bytes,
        device_key: bytes,
        device_signature: bytes,
        *,
        name: str | None = None,
        verified: bool = False,
    ) -> None:
        """Pin a contact's keys (trust on first use).

        The caller verifies the keys first (``PublicIdentity.verify()``).  The same
        identity key may bring a new device key; a different identity key raises
        :class:`KeyMismatch`, and only an explicit :meth:`remove_contact` unpins it.
        """
        if len(identity_key) != 32 or len(device_key) != 32 or len(device_signature) != 64:
            raise UsageError("contact keys are 32 bytes each and the device signature 64 bytes")
        with self.transaction():
            old = self.get_contact(peer_id)
            if old is None:
                self.execute(
                    "INSERT INTO contacts VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                    (
                        peer_id,
                        name,
                        identity_key,
                        device_key,
                        device_signature,
                        verified,
                        self.clock(),
                    ),
                )
            elif not hmac.compare_digest(old.identity_key, identity_key):
                raise KeyMismatch(
                    f"contact {peer_id} is pinned to identity key {old.identity_key.hex()[:16]}… "
                    f"but was offered {identity_key.hex()[:16]}…: someone may be impersonating "
                    "them, or they reset their identity.  Compare safety numbers out of band; "
                    f"only if they match, remove_contact({peer_id!r}) and add them again"
                )
            else:
                self.execute(
                    """UPDATE contacts SET device_key = ?, device_signature = ?,
                    name = COALESCE(?, name), verified = MAX(verified, ?) WHERE peer_id = ?""",
                    (device_key, device_signature, name, verified, peer_id),
                )

    def get_contact(self, peer_id: str) -> Contact | None:
        rows = self.fetch("SELECT * FROM contacts WHERE peer_id = ?", (peer_id,))
        return _contact(rows[0]) if rows else None

    def list_contacts(self) -> list[Contact]:
        return [_contact(r) for r in self.fetch("SELECT * FROM contacts ORDER BY added_at, rowid")]

    def set_verified(self, peer_id: str, verified: bool = True) -> None:
        """Record that the safety number was compared (or withdraw that)."""
        self._update_contact(peer_id, "verified = ?", verified)

    def remove_contact(self, peer_id: str) -> None:
        """Unpin a contact, e.g. after a :class:`KeyMismatch` was checked out of band."""
        if self.execute("DELETE FROM contacts WHERE peer_id = ?", (peer_id,)).rowcount == 0:
            raise NotFound(f"no contact {peer_id!r}; see list_contacts()")

    def touch_contact(self, peer_id: str, now: float) -> bool:
        """Record ``last_seen``; False (not an error) for an unknown peer."""
        cursor = self.execute("UPDATE contacts SET last_seen = ? WHERE peer_id = ?", (now, peer_id))
        return cursor.rowcount > 0

    def _update_contact(self, peer_id: str, assignment: str, value: object) -> None:
        sql = f"UPDATE contacts SET {assignment} WHERE peer_id = ?"
        if self.execute(sql, (value, peer_id)).rowcount == 0:
            raise NotFound(f"no contact {peer_id!r}; see list_contacts()")

    # --- conversations and counters -------------------------------------------

    def ensure_conversation(
        self, conversation_id: str, members: Sequence[str], title: str | None = None
    ) -> Conversation:
        """Create the conversation, or return it (a given title replaces the old one).

        A member set that differs from the stored one raises :class:`UsageError`:
        membership changes are not supported yet, and silently accepting them
        would let a peer add itself to someone else's conversation.
        """
        wanted = tuple(sorted(set(members)))
        if not wanted or not all(isinstance(m, str) and m for m in wanted):
            raise UsageError(f"a conversation needs non-empty peer ids as members, got {members!r}")
        with self.transaction():
            found = self.get_conversation(conversation_id)
            if found is None:
                found = Conversation(conversation_id, title, wanted, self.clock())
                self.execute(
                    "INSERT INTO conversations VALUES (?, ?, ?, ?)",
                    (found.id, title, json.dumps(list(wanted)), found.created_at),
                )
            elif found.members != wanted:
                raise UsageError(
                    f"conversation {conversation_id!r} has members {list(found.members)}, not "
                    f"{list(wanted)}; membership changes are not supported (refuse the message)"
                )
            elif title is not None and title != found.title:
                self.execute(
                    "UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id)
                )
                found = replace(found, title=title)
            return found

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        rows = self.fetch("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        return _conversation(rows[0]) if rows else None

    def list_conversations(self) -> list[Conversation]:
        rows = self.fetch("SELECT * FROM conversations ORDER BY created_at, rowid")
        return [_conversation(r) for r in rows]

    def next_counter(self, conversation_id: str) -> int:
        """Our next message counter in this conversation: 1, 2, 3, … across restarts."""
        with self.transaction():
            row = self.execute(
                """INSERT INTO counters VALUES (?, 2) ON CONFLICT (conversation_id)
                DO UPDATE SET next_counter = next_counter + 1 RETURNING next_counter - 1""",
                (conversation_id,),
            ).fetchall()[0]
        return int(row[0])

    # --- messages and the seen-set ----------------------------------------------

    def store_received(
        self,
        message_id: bytes,
        conversation_id: str,
        sender: str,
        counter: int,
        timestamp_ms: int,
        body: bytes,
    ) -> bool:
        """Store an incoming message and mark its id seen, atomically.

        Returns False, changing nothing, if the id was seen before (a retransmission
        or a replay): the caller still ACKs it, but does not show it twice.
        """
        mid = _message_hex(message_id)
        with self.transaction():
            if self.is_seen(message_id):
                return False
            self._insert_message(mid, conversation_id, sender, "in", counter, timestamp_ms, body)
            self.execute("INSERT INTO seen VALUES (?, ?, ?)", (mid, sender, self.clock()))
        return True

    def store_sent(
        self,
        message_id: bytes,
        conversation_id: str,
        sender: str,
        counter: int,
        timestamp_ms: int,
        body: bytes,
    ) -> None:
        """Store a message we send (the outbox holds its delivery state)."""
        mid = _message_hex(message_id)
        with self.transaction():
            if self.fetch("SELECT 1 FROM messages WHERE message_id = ?", (mid,)):
                raise UsageError(f"message {mid} is already stored; a new message needs a new id")
            self._insert_message(mid, conversation_id, sender, "out", counter, timestamp_ms, body)

    def _insert_message(
        self,
        mid: str,
        conversation_id: str,
        sender: str,
        direction: str,
        counter: int,
        timestamp_ms: int,
        body: bytes,
    ) -> None:
        self.execute(
            "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                mid,
                conversation_id,
                sender,
                direction,
                counter,
                timestamp_ms,
                self.clock(),
                self.seal("messages", "body", mid, body),
            ),
        )

    def is_seen(self, message_id: bytes) -> bool:
        """True if this id is in the seen-set or stored as a message (both survive restarts)."""
        mid = _message_hex(message_id)
        return bool(
            self.fetch(
                "SELECT 1 FROM seen WHERE message_id = ?1 "
                "UNION ALL SELECT 1 FROM messages WHERE message_id = ?1",
                (mid,),
            )
        )

    def prune_seen(self, before: float) -> int:
        """Forget seen-set entries older than ``before``; only safe past the freshness window."""
        return self.execute("DELETE FROM seen WHERE seen_at < ?", (before,)).rowcount

    def history(self, conversation_id: str, *, limit: int | None = None) -> list[StoredMessage]:
        """Messages oldest first, by sender time then arrival; ``limit`` keeps the newest."""
        order = "timestamp_ms {0}, stored_at {0}, rowid {0}"
        sql = f"SELECT rowid, * FROM messages WHERE conversation_id = ? ORDER BY {order}"
        if limit is None:
            rows = self.fetch(sql.format("ASC"), (conversation_id,))
        else:
            newest = sql.format("DESC") + " LIMIT ?"
            rows = self.fetch(
                f"SELECT * FROM ({newest}) ORDER BY {order.format('ASC')}",
                (conversation_id, max(limit, 0)),
            )
        return [self._message(r) for r in rows]

    def get_message(self, message_id: bytes) -> StoredMessage | None:
        rows = self.fetch(
            "SELECT * FROM messages WHERE message_id = ?", (_message_hex(message_id),)
        )
        return self._message(rows[0]) if rows else None

    def _message(self, row: Row) -> StoredMessage:
        return StoredMessage(
            bytes.fromhex(row["message_id"]),
            row["conversation_id"],
            row["sender"],
            row["direction"],
            row["counter"],
            row["timestamp_ms"],
            row["stored_at"],
            self.unseal("messages", "body", row["message_id"], row["body"]),
        )


def _contact(row: Row) -> Contact:
    return Contact(
        row["peer_id"],
        row["identity_key"],
        row["device_key"],
        row["device_signature"],
        row["name"],
        bool(row["verified"]),
        row["added_at"],
        row["last_seen"],
    )


def _conversation(row: Row) -> Conversation:
    return Conversation(
        row["id"], row["title"], tuple(json.loads(row["members"])), row["created_at"]
    )
