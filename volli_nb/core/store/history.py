"""Conversations and their messages, with the seen-set that makes receiving exactly-once.

A mixin over :class:`~volli_nb.core.store.row_macs.RowMacs`, composed into
:class:`~volli_nb.core.store.database.Database`, which owns the schema.  Message bodies
are sealed (bound to their row); ids, senders and times stay in clear for queries, and
a row MAC covers a conversation's members and a message's conversation, sender and
direction, checked on every read.  Conversation ids are printable ASCII.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from volli_nb.base.errors import UsageError
from volli_nb.core.message_id import check_message_id
from volli_nb.core.store.multirow import insert_rows
from volli_nb.core.store.row_macs import RowMacs
from volli_nb.core.store.sealed_db import Row

CONVERSATION_COLUMNS = ("id", "title", "members")
MESSAGE_COLUMNS = (
    "message_id",
    "conversation_id",
    "sender",
    "direction",
    "counter",
    "timestamp_ms",
)
STORED_COLUMNS = (*MESSAGE_COLUMNS, "stored_at", "body", "mac")
"""What a message row is written with (:meth:`History.message_row`), in this order."""
SEEN_COLUMNS = ("message_id", "sender")
"""What a seen-set row's MAC covers: an id used, and by whom (its time is bookkeeping)."""
_SEEN_AS_MESSAGE = ", ".join(c if c in SEEN_COLUMNS else f"NULL AS {c}" for c in MESSAGE_COLUMNS)
_SEEN_AS_MESSAGE += ", mac"  # a seen row in the columns of a message row, for one query


def seen_mac(db: RowMacs, message_id: str, sender: str) -> bytes:
    """The MAC of a seen-set row: its id (hex) and who used it.  Every writer of the
    seen-set (a stored message, a group record or fetch, a held message) uses this."""
    return db.row_mac("seen", {"message_id": message_id, "sender": sender})


_INSERT_MESSAGE = (
    f"INSERT INTO messages ({', '.join(STORED_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in STORED_COLUMNS)})"
)
_CONVERSATION_ID = re.compile(r"[\x21-\x7e]{1,256}\Z")  # no look-alikes of another id


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str | None
    members: tuple[str, ...]  # sorted peer ids, ourselves included
    created_at: float

    def __repr__(self) -> str:
        members = ", ".join(m[:8] for m in self.members)
        title = f" {self.title!r}" if self.title else ""
        return f"<Conversation {self.id}{title}: {members}>"


@dataclass(frozen=True)
class ReceivedRow:
    """A received message to store: what its envelope said, opened."""

    message_id: bytes
    conversation_id: str
    sender: str
    counter: int
    timestamp_ms: int
    body: bytes


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
    return check_message_id(message_id).hex()


class History(RowMacs):
    """The ``conversations``, ``counters``, ``messages`` and ``seen`` tables."""

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
        if not isinstance(conversation_id, str) or not _CONVERSATION_ID.match(conversation_id):
            raise UsageError(
                f"a conversation id is 1 to 256 printable ASCII characters, not {conversation_id!r}"
            )
        with self.transaction():
            found = self.get_conversation(conversation_id)
            if found is None:
                found = Conversation(conversation_id, title, wanted, self.clock())
                row = {"id": found.id, "title": title, "members": json.dumps(list(wanted))}
                self.execute(
                    "INSERT INTO conversations (id, title, members, created_at, mac) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (found.id, title, row["members"], found.created_at,
                     self.row_mac("conversations", row)),
                )  # fmt: skip
            elif found.members != wanted:
                raise UsageError(
                    f"conversation {conversation_id!r} has members {list(found.members)}, not "
                    f"{list(wanted)}; membership changes are not supported (refuse the message)"
                )
            elif title is not None and title != found.title:
                row = {"id": found.id, "title": title, "members": json.dumps(list(found.members))}
                self.execute(  # members written too: the MAC covers exactly what is written
                    "UPDATE conversations SET title = ?, members = ?, mac = ? WHERE id = ?",
                    (title, row["members"], self.row_mac("conversations", row), found.id),
                )
                found = replace(found, title=title)
            return found

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        rows = self.fetch("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        return self._conversation(rows[0]) if rows else None

    def list_conversations(self) -> list[Conversation]:
        rows = self.fetch("SELECT * FROM conversations ORDER BY created_at, rowid")
        return [self._conversation(r) for r in rows]

    def next_counter(self, conversation_id: str) -> int:
        """Our next message counter in this conversation: 1, 2, 3, … across restarts."""
        row = self.fetch(  # one statement is atomic on its own: no savepoint needed
            """INSERT INTO counters VALUES (?, 2) ON CONFLICT (conversation_id)
            DO UPDATE SET next_counter = next_counter + 1 RETURNING next_counter - 1""",
            (conversation_id,),
        )[0]
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
        with self.transaction():
            if self.is_seen(message_id):
                return False
            row = ReceivedRow(message_id, conversation_id, sender, counter, timestamp_ms, body)
            self.insert_received_many([row])
        return True

    def insert_received_many(self, rows: Sequence[ReceivedRow]) -> None:
        """:meth:`store_received` for a caller that checked the seen-set itself and holds
        the transaction (a received bundle): two multi-row statements (one per 500
        rows), all or nothing, nothing read back."""
        values = [
            self.message_row(_message_hex(r.message_id), r.conversation_id, r.sender, "in",
                             r.counter, r.timestamp_ms, r.body)
            for r in rows
        ]  # fmt: skip
        stored = [[v[c] for c in STORED_COLUMNS] for v in values]
        insert_rows(self, "messages", STORED_COLUMNS, stored)
        seen = []
        for v in values:
            mid, sender = str(v["message_id"]), str(v["sender"])
            seen.append((mid, sender, v["stored_at"], seen_mac(self, mid, sender)))
        insert_rows(self, "seen", ("message_id", "sender", "seen_at", "mac"), seen)

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
        row = self.message_row(mid, conversation_id, sender, "out", counter, timestamp_ms, body)
        new = self.execute(_INSERT_MESSAGE + " ON CONFLICT (message_id) DO NOTHING", row)
        if not new.rowcount:  # one statement: SQLite checks the id, no read first
            raise UsageError(f"message {mid} is already stored; a new message needs a new id")

    def message_row(
        self,
        mid: str,
        conversation_id: str,
        sender: str,
        direction: str,
        counter: int,
        timestamp_ms: int,
        body: bytes,
    ) -> dict[str, object]:
        """A messages row as stored: the body sealed to it, the MAC over its clear columns."""
        row: dict[str, object] = {
            "message_id": mid,
            "conversation_id": conversation_id,
            "sender": sender,
            "direction": direction,
            "counter": counter,
            "timestamp_ms": timestamp_ms,
            "stored_at": self.clock(),
            "body": self.seal("messages", "body", mid, body),
        }
        row["mac"] = self.row_mac("messages", row)
        return row

    def is_seen(self, message_id: bytes) -> bool:
        """True if this id is in the seen-set or stored as a message (both survive restarts)."""
        return bool(self.seen_among([message_id]))

    def seen_among(self, message_ids: Sequence[bytes]) -> dict[bytes, str]:
        """:meth:`seen_by` for a received frame's ids: id → its sender, for the ids used
        before.  Each row found is checked against its MAC first (:class:`TamperedRow`): an
        id is acknowledged as a duplicate on the strength of it, so a row planted without
        the passphrase must never pass for one."""
        if not message_ids:
            return {}
        hexes = [_message_hex(m) for m in message_ids]
        marks = ",".join("?" * len(hexes))
        rows = self.fetch(
            f"SELECT 'seen' AS source, {_SEEN_AS_MESSAGE} FROM seen "
            f"WHERE message_id IN ({marks}) UNION ALL SELECT 'messages', "
            f"{', '.join(MESSAGE_COLUMNS)}, mac FROM messages WHERE message_id IN ({marks})",
            [*hexes, *hexes],
        )  # one statement a frame
        for row in rows:
            self.check_row(row["source"], row)
        return {bytes.fromhex(row["message_id"]): str(row["sender"]) for row in rows}

    def seen_by(self, message_id: bytes) -> str | None:
        """Who used this message id: the sender of the seen or stored message, or None.

        A replay is acknowledged again only on its own sender's channel; the same id
        from anyone else is refused, so nobody learns (or gets a signed ACK for) another
        peer's message ids."""
        return self.seen_among([message_id]).get(message_id)

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
        self.check_row("messages", row)
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

    def _conversation(self, row: Row) -> Conversation:
        self.check_row("conversations", row)
        return Conversation(
            row["id"], row["title"], tuple(json.loads(row["members"])), row["created_at"]
        )
