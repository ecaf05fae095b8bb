"""Delivery status to trust: each row's status MAC'd, and a missing row is not "delivered".

The outbox's row MAC covers who a message goes to, not how far it got: whoever could
write the file could flip ``pending`` to ``delivered`` (the message is never sent and
shows as delivered) or delete the row (the same, since delivered rows are pruned).  So,
from schema 3:

- each row's ``status`` has a part MAC (``status_mac``) over (message id, recipient,
  status).  Every statement that sets a status writes it from the values it writes; one
  that moves a row *from* a status checks the old one's MAC in its ``WHERE``, so an
  edited status is never blessed.  An ACK needs nothing read: its one ``UPDATE`` knows
  the message, the recipient and the new status.
- a sent message in the history expects a row for each member of its conversation but
  its sender.  The pruner, when it deletes delivered rows, records them on the message
  (``messages.pruned``, with its own part MAC ``pruned_mac``).  A recipient with neither a
  row nor a record is ``unknown``, and ``verify()`` names the row as missing.

What stays possible: a row's status put back from an older copy of the file (a
delivered or discarded message attempted again; the receiver deduplicates by id), and
a row's next attempt time moved (bookkeeping: it shows as pending, not delivered).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from volli_nb.base.errors import StorageError, TamperedRow
from volli_nb.core.store.outbox_rows import Status
from volli_nb.core.store.row_macs import AnyRow

if TYPE_CHECKING:
    from volli_nb.core.store.database import Database

STATUS_MAC = "status_mac"
PRUNED = "pruned"
PRUNED_MAC = "pruned_mac"
UNKNOWN: Literal["unknown"] = "unknown"
Delivery = Status | Literal["unknown"]

OUTBOX_PART = (STATUS_MAC, ("message_id", "recipient", "status"))
MESSAGES_PART = (PRUNED_MAC, ("message_id", PRUNED))
ROW_COLUMNS = "id, message_id, conversation_id, recipient, counter, status, mac, status_mac"
"""What checking an outbox row reads: its row MAC's columns and its status part."""


def status_mac(db: Database, message_hex: str, recipient: str, status: Status) -> bytes:
    """The part MAC a row of this message and recipient carries in ``status``."""
    values = {"message_id": message_hex, "recipient": recipient, "status": str(status)}
    return db.part_mac("outbox", values)


def check_outbox_row(db: Database, row: AnyRow) -> None:
    """The row MAC (recipient, message, conversation) and the status part, or
    :class:`TamperedRow` naming the row."""
    db.check_row("outbox", row)
    db.check_part("outbox", row)


OPEN = (Status.PENDING, Status.STUCK, Status.HELD)
"""The statuses a statement moves rows out of without reading them first."""
VOUCHED = "status_mac = CASE status " + " ".join(f"WHEN '{s}' THEN ?" for s in OPEN) + " END"
"""A ``WHERE`` term: the row's current (open) status is one its MAC vouches for; its
parameters are :func:`vouched`'s."""


def vouched(db: Database, message_hex: str, recipient: str) -> list[bytes]:
    """The MACs :data:`VOUCHED` compares with, in its order."""
    return [status_mac(db, message_hex, recipient, s) for s in OPEN]


def statuses(db: Database, message_id: bytes) -> dict[str, Delivery]:
    """Recipient → status of one message, every MAC checked, no payload opened.

    A sent message's expected recipients (its conversation's members but its sender)
    that have no row are ``delivered`` if the pruner recorded it, else ``unknown``.  One
    statement for a sent message: its row, its conversation and its outbox rows, joined."""
    mid = message_id.hex()
    joined = db.fetch(
        _SENT_READ + " LEFT JOIN outbox o ON o.message_id = m.message_id "
        "WHERE m.message_id = ? AND m.direction = 'out' ORDER BY o.id",
        (mid,),
    )
    expected: list[str] = []
    pruned: dict[str, str] = {}
    if joined:
        rows: list[AnyRow] = [_part(r, "o_", _OUTBOX) for r in joined if r["o_id"] is not None]
        expected, pruned = _expected_from(db, joined[0])
    else:  # not a sent message of the history (queued directly): its rows say it all
        rows = list(db.fetch(f"SELECT {ROW_COLUMNS} FROM outbox WHERE message_id = ? "
                             "ORDER BY id", (mid,)))  # fmt: skip
    result: dict[str, Delivery] = {}
    for row in rows:
        check_outbox_row(db, row)
        result[row["recipient"]] = Status(row["status"])
    for recipient in expected:
        if recipient not in result:
            result[recipient] = Status(pruned[recipient]) if recipient in pruned else UNKNOWN
    for recipient in pruned.keys() - result.keys():  # a group's message: members vary by version
        result[recipient] = Status(pruned[recipient])
    return result


_OUTBOX = ("id", "message_id", "conversation_id", "recipient", "counter", "status", "mac",
           STATUS_MAC)  # fmt: skip
_SENT = ("message_id", "conversation_id", "sender", "direction", "counter", "timestamp_ms",
         "mac", PRUNED, PRUNED_MAC)  # fmt: skip
_CONVERSATION = ("id", "title", "members", "mac")
_SENT_READ = (
    "SELECT "
    + ", ".join(
        [f"m.{c} AS m_{c}" for c in _SENT]
        + [f"c.{c} AS c_{c}" for c in _CONVERSATION]
        + [f"o.{c} AS o_{c}" for c in _OUTBOX]
    )
    + " FROM messages m LEFT JOIN conversations c ON c.id = m.conversation_id"
)
"""A sent message's row and its conversation's (what its MACs cover, not its body), and
its outbox rows once joined; columns prefixed ``m_``, ``c_`` and ``o_``."""


def _part(row: AnyRow, prefix: str, names: tuple[str, ...]) -> dict[str, object]:
    return {name: row[prefix + name] for name in names}


def _expected(db: Database, mid: str) -> tuple[list[str], dict[str, str]]:
    """The recipients a sent message ``mid`` expects, and what the pruner recorded."""
    found = db.fetch(_SENT_READ + " LEFT JOIN outbox o ON 0 WHERE m.message_id = ? "
                     "AND m.direction = 'out'", (mid,))  # fmt: skip
    return _expected_from(db, found[0]) if found else ([], {})


def _expected_from(db: Database, row: AnyRow) -> tuple[list[str], dict[str, str]]:
    message = _part(row, "m_", _SENT)
    db.check_row("messages", message)
    db.check_part("messages", message)
    members: list[str] = []
    if row["c_id"] is not None:
        conversation = _part(row, "c_", _CONVERSATION)
        db.check_row("conversations", conversation)
        members = json.loads(str(conversation["members"]))
    record = message[PRUNED]
    pruned: dict[str, str] = json.loads(str(record)) if record is not None else {}
    return [m for m in members if m != message["sender"]], pruned


def record_pruned(db: Database, rows: Iterable[AnyRow]) -> list[int]:
    """Record these delivered rows on their sent messages (in the caller's transaction)
    before the pruner deletes them; returns the ids that may go.  A row whose MACs fail,
    or whose message's record does, stays for ``verify()`` to name."""
    by_message: dict[str, dict[int, str]] = {}
    for row in rows:
        try:
            check_outbox_row(db, row)
        except TamperedRow:
            continue
        by_message.setdefault(row["message_id"], {})[row["id"]] = row["recipient"]
    deletable: list[int] = []
    for mid, pruned_rows in by_message.items():
        found = db.fetch(f"SELECT message_id, {PRUNED}, {PRUNED_MAC} FROM messages "
                         "WHERE message_id = ? AND direction = 'out'", (mid,))  # fmt: skip
        if found:
            try:
                db.check_part("messages", found[0])
            except TamperedRow:
                continue
            old = found[0][PRUNED]
            record = {**(json.loads(old) if old else {}),
                      **dict.fromkeys(pruned_rows.values(), str(Status.DELIVERED))}  # fmt: skip
            _write_record(db, mid, record)
        deletable += pruned_rows
    return deletable


def _write_record(db: Database, mid: str, record: dict[str, str]) -> None:
    text = json.dumps(record, sort_keys=True)
    mac = db.part_mac("messages", {"message_id": mid, PRUNED: text})
    db.execute(
        f"UPDATE messages SET {PRUNED} = ?, {PRUNED_MAC} = ? WHERE message_id = ?",
        (text, mac, mid),
    )


def missing_rows(db: Database) -> list[str]:
    """For ``verify()``: each expected outbox row that is neither there nor recorded."""
    problems = []
    present: dict[str, set[str]] = {}
    for row in db.fetch("SELECT message_id, recipient FROM outbox"):
        present.setdefault(row["message_id"], set()).add(row["recipient"])
    for row in db.fetch("SELECT message_id FROM messages WHERE direction = 'out'"):
        mid = row["message_id"]
        try:
            expected, pruned = _expected(db, mid)
        except StorageError:
            continue  # named by the row checks
        for recipient in expected:
            if recipient not in present.get(mid, set()) and recipient not in pruned:
                problems.append(
                    f"outbox row of message {mid} for {recipient} is missing: deleted "
                    "without the passphrase (its status is unknown; send it again)"
                )
    return problems


def authenticate_statuses(db: Database) -> None:
    """Schema 3: a status MAC for every row as found, and a record on each sent message
    of the rows missing already, which the pruner deleted as delivered (before schema
    3, only delivered rows were pruned)."""
    for row in db.fetch(f"SELECT {ROW_COLUMNS} FROM outbox"):
        db.check_row("outbox", row)
        mac = status_mac(db, row["message_id"], row["recipient"], Status(row["status"]))
        db.execute(f"UPDATE outbox SET {STATUS_MAC} = ? WHERE id = ?", (mac, row["id"]))
    present: dict[str, set[str]] = {}
    for row in db.fetch("SELECT message_id, recipient FROM outbox"):
        present.setdefault(row["message_id"], set()).add(row["recipient"])
    for row in db.fetch("SELECT message_id FROM messages WHERE direction = 'out'"):
        expected, _ = _expected(db, row["message_id"])
        gone = [r for r in expected if r not in present.get(row["message_id"], set())]
        if gone:
            _write_record(db, row["message_id"], dict.fromkeys(gone, str(Status.DELIVERED)))


__all__ = [
    "OUTBOX_PART",
    "UNKNOWN",
    "VOUCHED",
    "Delivery",
    "authenticate_statuses",
    "check_outbox_row",
    "missing_rows",
    "record_pruned",
    "status_mac",
    "statuses",
    "vouched",
]
