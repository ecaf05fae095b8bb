"""The outbox's batched writes: a burst of sends, an ACK's ids, a pass's failed attempts.

Each is a few multi-row statements (:mod:`.multirow`) however many rows it touches, and
every MAC is computed from the values written, never from a row read back:

- :func:`write_sent` — a burst of messages we send: each conversation's counters
  reserved in one statement, the messages (bodies sealed, rows MAC'd) in one, their
  outbox rows in one.  Outbox rows get their ids here (the row MAC covers the id), from
  the largest id SQLite handed out so far, read once: the caller's transaction holds
  the write lock, so nobody takes one meanwhile.
- :func:`acknowledge_many` — a signed ACK: every id it covers delivered in one ``UPDATE
  … FROM (VALUES …)``, each row's status MAC from the values written.
- :func:`fail_many` — failed attempts (a retry pass, a flush chunk): one statement moves
  each row to its next time, or to stuck, computed in SQL from its current attempt count,
  and only rows whose status MAC vouches for ``pending`` move (an edited row stays, for
  ``verify()`` to name).
- :func:`due_now` — rows handed back by a re-key: due at once, in one statement per 500
  rows, no attempt counted and no status changed (so no MAC to write).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from volli_nb.base.errors import UsageError
from volli_nb.core.store import outbox_notes
from volli_nb.core.store.history import STORED_COLUMNS
from volli_nb.core.store.multirow import chunks, flat, insert_rows, values_list
from volli_nb.core.store.outbox_ledger import status_mac
from volli_nb.core.store.outbox_rows import QueuedMessage, Status

if TYPE_CHECKING:
    from volli_nb.core.store.database import Database
    from volli_nb.core.store.message_queue import PersistentMessageQueue

MAX_ERROR_CHARS = 1000
_OUTBOX = (
    "id", "message_id", "conversation_id", "recipient", "status", "next_attempt_at",
    "created_at", "updated_at", "counter", "payload", "mac", "status_mac",
)  # fmt: skip


@dataclass(frozen=True)
class NewMessage:
    """A message we send, before it has a counter: what ``send_message`` was given."""

    message_id: bytes
    conversation_id: str
    recipients: tuple[str, ...]
    body: bytes
    timestamp_ms: int


@dataclass(frozen=True)
class Failure:
    """One failed attempt of one outbox row, and why."""

    row_id: int
    message_id: bytes
    recipient: str
    reason: str


def reserve_counters(db: Database, wanted: dict[str, int]) -> dict[str, int]:
    """Conversation id → the first of ``wanted[id]`` counters reserved for us, one
    statement per conversation (the counters go on 1, 2, 3, … across restarts)."""
    first = {}
    for conversation_id, count in wanted.items():
        row = db.fetch(  # (fetch: a full disk at the RETURNING step is StorageFull too)
            "INSERT INTO counters VALUES (?, ?) ON CONFLICT (conversation_id) "
            "DO UPDATE SET next_counter = next_counter + ? RETURNING next_counter - ?",
            (conversation_id, 1 + count, count, count),
        )[0]
        first[conversation_id] = int(row[0])
    return first


def last_outbox_id(db: Database) -> int:
    """The largest outbox row id ever handed out (AUTOINCREMENT never reuses one)."""
    row = db.fetch(
        "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0), "
        "COALESCE((SELECT MAX(id) FROM outbox), 0))"
    )[0]
    return int(row[0])


def write_sent(
    queue: PersistentMessageQueue, sender: str, messages: Sequence[NewMessage]
) -> list[list[QueuedMessage]]:
    """Store ``messages`` as sent by ``sender`` and queue a row per recipient, in the
    caller's transaction; each message's rows as written (due now: the caller attempts
    them at once, so the retry loop is not woken).  The rows point at the stored body
    (one seal per message, however many recipients)."""
    db, now = queue.db, queue.clock()
    wanted: dict[str, int] = {}
    for message in messages:
        wanted[message.conversation_id] = wanted.get(message.conversation_id, 0) + 1
    counters = reserve_counters(db, wanted)
    stored, rows, written = [], [], []
    next_id = last_outbox_id(db) + 1
    for m in messages:
        counter = counters[m.conversation_id]
        counters[m.conversation_id] += 1
        mid = m.message_id.hex()
        row = db.message_row(mid, m.conversation_id, sender, "out", counter, m.timestamp_ms, m.body)
        stored.append(tuple(row[c] for c in STORED_COLUMNS))
        queued = []
        for recipient in m.recipients:
            covered = {"id": next_id, "message_id": mid, "conversation_id": m.conversation_id,
                       "recipient": recipient, "counter": counter}  # fmt: skip
            rows.append((
                next_id, mid, m.conversation_id, recipient, Status.PENDING, now, now, now,
                counter, None, db.row_mac("outbox", covered),
                status_mac(db, mid, recipient, Status.PENDING),
            ))  # fmt: skip
            queued.append(QueuedMessage(
                next_id, m.message_id, m.conversation_id, recipient, Status.PENDING, 0, now,
                None, now, now, counter, m.body,
            ))  # fmt: skip
            next_id += 1
        written.append(queued)
    if stored:
        inserted = insert_rows(
            db, "messages", STORED_COLUMNS, stored, suffix="ON CONFLICT DO NOTHING"
        )
        if inserted != len(stored):
            raise UsageError("a message id of this burst is stored already; each needs a new id")
        insert_rows(db, "outbox", _OUTBOX, rows)
    return written


def acknowledge_many(
    queue: PersistentMessageQueue, message_ids: Sequence[bytes], recipient: str
) -> list[bytes]:
    """A signed ACK from ``recipient``: each id delivered and its payload erased, one
    statement per 500 ids; the ids this ACK delivered (not those delivered before, or
    never queued), in the ACK's order."""
    db, now = queue.db, queue.clock()
    ids = list(dict.fromkeys(message_ids))
    values = [(m.hex(), status_mac(db, m.hex(), recipient, Status.DELIVERED)) for m in ids]
    done: set[str] = set()
    for piece in chunks(values, 2):  # fetch: outside a transaction, the commit of an
        rows = db.fetch(  # UPDATE … RETURNING (and a full disk) comes with its rows
            "UPDATE outbox SET status = ?, status_mac = v.column2, next_attempt_at = NULL, "
            f"updated_at = ?, payload = NULL FROM (VALUES {values_list(len(piece), 2)}) AS v "
            "WHERE outbox.message_id = v.column1 AND outbox.recipient = ? "
            "AND outbox.status != ? RETURNING outbox.message_id",
            [Status.DELIVERED, now, *flat(piece), recipient, Status.DELIVERED],
        )
        done.update(row[0] for row in rows)
    return [m for m in ids if m.hex() in done]


def fail_many(queue: PersistentMessageQueue, failures: Sequence[Failure]) -> int:
    """Count one failed attempt on each pending row of ``failures``: due again after the
    queue's next delay, or stuck after the last (as :meth:`mark_failed`, in one
    statement per 500 rows); rows no longer pending (an ACK came meanwhile) are left.
    Each move is logged; how many rows moved."""
    db, now, delays = queue.db, queue.clock(), queue.delays
    when = " ".join(f"WHEN {i} THEN ?" for i in range(len(delays)))
    moved = 0
    values = [
        (f.row_id, status_mac(db, f.message_id.hex(), f.recipient, Status.PENDING),
         status_mac(db, f.message_id.hex(), f.recipient, Status.STUCK),
         f.reason[:MAX_ERROR_CHARS])
        for f in failures
    ]  # fmt: skip
    reasons = {f.row_id: f.reason for f in failures}
    for piece in chunks(values, 4):
        rows = db.fetch(  # (as in acknowledge_many: errors come with the rows)
            f"UPDATE outbox SET attempts = attempts + 1, "
            f"status = CASE WHEN attempts < ? THEN ? ELSE ? END, "
            f"status_mac = CASE WHEN attempts < ? THEN v.column2 ELSE v.column3 END, "
            f"next_attempt_at = CASE attempts {when} ELSE NULL END, "
            f"updated_at = ?, last_error = v.column4 "
            f"FROM (VALUES {values_list(len(piece), 4)}) AS v "
            "WHERE outbox.id = v.column1 AND outbox.status = ? "
            "AND outbox.status_mac = v.column2 "
            "RETURNING outbox.id, outbox.message_id, outbox.recipient, outbox.status, "
            "outbox.attempts, outbox.next_attempt_at",
            [len(delays), Status.PENDING, Status.STUCK, len(delays),
             *(now + d for d in delays), now, *flat(piece), Status.PENDING],
        )  # fmt: skip
        for row in rows:
            moved += 1
            if queue.log is not None:
                row_id, mid, recipient, status, attempts, due_at = row
                outbox_notes.failure(
                    queue.log, outbox_notes.Moved(row_id, bytes.fromhex(mid), recipient,
                    Status(status), attempts, due_at), reasons[row_id], queue.delays, now,
                )  # fmt: skip
    if moved:
        queue.schedule_changed()
    return moved


def due_now(queue: PersistentMessageQueue, row_ids: Sequence[int]) -> int:
    """Each still-pending row of ``row_ids`` due at once, its attempts kept (a re-key
    handed them back to be sealed again: nothing failed, and a row flushed before its
    time must not wait out its old schedule); how many moved earlier."""
    db, now = queue.db, queue.clock()
    moved = 0
    for piece in chunks([(i,) for i in dict.fromkeys(row_ids)], 1):
        moved += db.execute(
            "UPDATE outbox SET next_attempt_at = ?, updated_at = ? WHERE status = ? "
            f"AND next_attempt_at > ? AND id IN ({','.join('?' * len(piece))})",
            (now, now, Status.PENDING, now, *flat(piece)),
        ).rowcount
    if moved:
        queue.schedule_changed()
    return moved


__all__ = [
    "Failure",
    "NewMessage",
    "acknowledge_many",
    "due_now",
    "fail_many",
    "last_outbox_id",
    "reserve_counters",
    "write_sent",
]
