"""Groups at rest: each group's current version, its records, and messages held for a record.

A mixin over :class:`~volli_nb.core.store.row_macs.RowMacs`, composed into
:class:`~volli_nb.core.store.database.Database` (schema 5 creates the tables):

- ``groups``: one row per group this profile holds, naming its current record (``tip``,
  ``version``); the row MAC covers both, so the file writer cannot point a group at an
  older record (a removed member back in) or a lost one;
- ``group_records``: every verified record (the current path and the ones that lost a
  concurrent change), MAC'd; on load the chain is verified again from version 1
  (:meth:`~volli_nb.core.groups.chain.GroupChain.load`), so a record that does not verify,
  or a tip whose way back is missing, is :class:`~volli_nb.base.errors.TamperedRow`;
- ``group_held``: a message that arrived under a record this member does not hold yet,
  its body sealed and its metadata MAC'd, until the record comes (or it is refused).

What a MAC cannot see, as everywhere (docs/security.md): a row deleted, or the whole
group put back from an older copy of the file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from volli_nb.base.errors import GroupError, TamperedRow
from volli_nb.core.groups.chain import GroupChain
from volli_nb.core.groups.record import MembershipRecord, decode_record
from volli_nb.core.message_id import check_message_id
from volli_nb.core.store.history import seen_mac
from volli_nb.core.store.row_macs import RowMacs
from volli_nb.core.store.sealed_db import Row

GROUP_COLUMNS = ("group_id", "tip", "version")
RECORD_COLUMNS = ("hash", "group_id", "version", "record")
HELD_COLUMNS = ("message_id", "group_id", "record_hash", "version", "sender", "counter",
                "timestamp_ms", "recipients")  # fmt: skip

SCHEMA5 = [
    """CREATE TABLE groups (group_id TEXT PRIMARY KEY, tip TEXT NOT NULL,
       version INTEGER NOT NULL, joined_at REAL NOT NULL, mac BLOB)""",
    """CREATE TABLE group_records (hash TEXT PRIMARY KEY, group_id TEXT NOT NULL,
       version INTEGER NOT NULL, record BLOB NOT NULL, stored_at REAL NOT NULL, mac BLOB)""",
    "CREATE INDEX group_records_by_group ON group_records (group_id, version)",
    """CREATE TABLE group_held (message_id TEXT PRIMARY KEY, group_id TEXT NOT NULL,
       record_hash TEXT NOT NULL, version INTEGER NOT NULL, sender TEXT NOT NULL,
       counter INTEGER NOT NULL,
       timestamp_ms INTEGER NOT NULL, recipients TEXT NOT NULL, held_at REAL NOT NULL,
       body BLOB NOT NULL, mac BLOB)""",
    "CREATE INDEX group_held_by_group ON group_held (group_id, record_hash)",
]


@dataclass(frozen=True)
class HeldMessage:
    """A group message waiting for the record it was sent under."""

    message_id: bytes
    group_id: str
    record_hash: bytes
    version: int  # as its address names it: checked against the record on release
    sender: str
    counter: int
    timestamp_ms: int
    recipients: tuple[str, ...]
    body: bytes


def create_group_tables(db: RowMacs) -> None:
    """Schema 5 (empty tables: nothing to authenticate yet)."""
    for sql in SCHEMA5:
        db.execute(sql)


class GroupRows(RowMacs):
    """The ``groups``, ``group_records`` and ``group_held`` tables."""

    def save_group(self, tip: MembershipRecord, records: Sequence[MembershipRecord]) -> None:
        """Store ``records`` (new ones; known ones are kept) and make ``tip`` the group's
        current version, in one transaction (the caller's, if any)."""
        with self.transaction():
            for record in records:
                row = {
                    "hash": record.hash.hex(),
                    "group_id": record.group_id,
                    "version": record.version,
                    "record": record.raw,
                }
                self.execute(
                    "INSERT INTO group_records (hash, group_id, version, record, stored_at, mac) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (hash) DO NOTHING",
                    (*row.values(), self.clock(), self.row_mac("group_records", row)),
                )
            row = {"group_id": tip.group_id, "tip": tip.hash.hex(), "version": tip.version}
            self.execute(
                "INSERT INTO groups (group_id, tip, version, joined_at, mac) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (group_id) DO UPDATE SET tip = excluded.tip, "
                "version = excluded.version, mac = excluded.mac",
                (*row.values(), self.clock(), self.row_mac("groups", row)),
            )

    def group_ids(self) -> list[str]:
        return [
            str(r["group_id"]) for r in self.fetch("SELECT group_id FROM groups ORDER BY rowid")
        ]

    def load_group(self, group_id: str) -> GroupChain | None:
        """The group's chain, every MAC and every signature checked (TamperedRow, naming
        the group, if they do not hold); None if this profile holds no such group."""
        found = self.fetch("SELECT * FROM groups WHERE group_id = ?", (group_id,))
        if not found:
            return None
        self.check_row("groups", found[0])
        rows = self.fetch("SELECT * FROM group_records WHERE group_id = ?", (group_id,))
        for row in rows:
            self.check_row("group_records", row)
        try:
            records = [decode_record(row["record"]) for row in rows]
            chain = GroupChain.load(records, bytes.fromhex(found[0]["tip"]))
        except GroupError as exc:
            raise TamperedRow(
                "groups",
                group_id,
                f"group {group_id}'s records do not verify ({exc}); restore {self.path} from "
                "a backup, or ask a member for the chain again",
            ) from None
        if chain.version != found[0]["version"]:
            raise TamperedRow("groups", group_id, f"group {group_id}'s version does not match")
        return chain

    # --- messages held for a record --------------------------------------------------

    def hold_group_message(self, held: HeldMessage) -> None:
        """Keep ``held`` until its record comes (in the caller's transaction); its id is
        also marked seen, so a resend is a duplicate."""
        mid = check_message_id(held.message_id).hex()
        row: dict[str, object] = {
            "message_id": mid,
            "group_id": held.group_id,
            "record_hash": held.record_hash.hex(),
            "version": held.version,
            "sender": held.sender,
            "counter": held.counter,
            "timestamp_ms": held.timestamp_ms,
            "recipients": json.dumps(list(held.recipients)),
        }
        self.execute(
            f"INSERT INTO group_held ({', '.join(row)}, held_at, body, mac) VALUES "
            f"({', '.join('?' * len(row))}, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING",
            (*row.values(), self.clock(), self.seal("group_held", "body", mid, held.body),
             self.row_mac("group_held", row)),
        )  # fmt: skip
        self.mark_seen(held.message_id, held.sender)

    def held_messages(
        self, group_id: str, *, under: Sequence[bytes] | None = None
    ) -> list[HeldMessage]:
        """A group's held messages (only those under the records ``under``, if given),
        in their senders' order."""
        if under is None:
            where, params = "", [group_id]
        else:
            where = f" AND record_hash IN ({','.join('?' * len(under))})"
            params = [group_id, *(h.hex() for h in under)]
        rows = self.fetch(
            f"SELECT * FROM group_held WHERE group_id = ?{where} "
            "ORDER BY timestamp_ms, counter, rowid",
            params,
        )
        return [self._held(r) for r in rows]

    def held_from(self, sender: str) -> tuple[int, int]:
        """How many messages from ``sender`` are held, and their stored bytes."""
        row = self.fetch(
            "SELECT count(*) AS n, coalesce(sum(length(body)), 0) AS size FROM group_held "
            "WHERE sender = ?",
            (sender,),
        )[0]
        return int(row["n"]), int(row["size"])

    def held_records(self, sender: str) -> list[tuple[str, bytes]]:
        """The (group id, record hash) pairs ``sender``'s held messages wait for (rows
        checked: a planted row must not make us ask anyone for anything)."""
        rows = self.fetch("SELECT * FROM group_held WHERE sender = ? ORDER BY rowid", (sender,))
        waiting: dict[tuple[str, bytes], None] = {}
        for row in rows:
            self.check_row("group_held", row)
            waiting[(row["group_id"], bytes.fromhex(row["record_hash"]))] = None
        return list(waiting)

    def drop_held(self, message_ids: Sequence[bytes], *, unsee: bool) -> None:
        """Forget held messages (released or refused); ``unsee`` also takes their ids out
        of the seen-set, as storing them as messages puts them back in."""
        for message_id in message_ids:
            mid = check_message_id(message_id).hex()
            self.execute("DELETE FROM group_held WHERE message_id = ?", (mid,))
            if unsee:
                self.execute("DELETE FROM seen WHERE message_id = ?", (mid,))

    def mark_seen(self, message_id: bytes, sender: str) -> None:
        """An id that was consumed without becoming a message (group records, a fetch, a
        held message): a resend is a duplicate, acknowledged again to its sender."""
        mid = check_message_id(message_id).hex()
        mac = seen_mac(self, mid, sender)
        self.execute(
            "INSERT INTO seen (message_id, sender, seen_at, mac) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (message_id) DO NOTHING",
            (mid, sender, self.clock(), mac),
        )

    def _held(self, row: Row) -> HeldMessage:
        self.check_row("group_held", row)
        mid = row["message_id"]
        return HeldMessage(
            bytes.fromhex(mid),
            row["group_id"],
            bytes.fromhex(row["record_hash"]),
            row["version"],
            row["sender"],
            row["counter"],
            row["timestamp_ms"],
            tuple(json.loads(row["recipients"])),
            self.unseal("group_held", "body", mid, row["body"]),
        )


__all__ = ["GROUP_COLUMNS", "HELD_COLUMNS", "RECORD_COLUMNS", "GroupRows", "HeldMessage",
           "create_group_tables"]  # fmt: skip
