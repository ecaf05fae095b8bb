"""The outbox: a persistent queue with the seed's retry schedule, 1 s, 5 s, 15 s, 60 s, then stuck.

One row per (message, recipient).  A row keeps the message *plaintext* sealed at rest
with the storage key (or, from a send, points at the sent message's sealed body, one
copy for every recipient), not a ready envelope: each send attempt seals a fresh
envelope to the recipient's current keys (same message id, so the receiver still
deduplicates), which lets keys rotate without touching the queue.  Delivery
counts only on a signed ACK (:meth:`PersistentMessageQueue.mark_delivered_message`).
Each row's status carries a MAC, and a row missing from a sent message is not taken for
delivered (:mod:`.outbox_ledger`).

The queue decides *when*; it never sends.  The policy is the pure function
:func:`~.retry_policy.next_attempt_after`, and time comes from an injected clock.

States::

    pending --mark_failed (1st..4th)--> pending (due later)
    pending --mark_failed (5th)-------> stuck   (retry_now / retry_all_stuck -> pending)
    pending|stuck --discard-----------> discarded (payload erased)
    any --mark_delivered--------------> delivered (payload erased)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from volli_nb.base.clock import Clock
from volli_nb.base.errors import NotFound, StorageError, UsageError
from volli_nb.core.eventlog import EventLog
from volli_nb.core.store import outbox_batch, outbox_notes
from volli_nb.core.store.database import Database
from volli_nb.core.store.multirow import chunks, flat
from volli_nb.core.store.outbox_batch import MAX_ERROR_CHARS, Failure
from volli_nb.core.store.outbox_ledger import Delivery, check_outbox_row, status_mac
from volli_nb.core.store.outbox_ledger import statuses as ledger_statuses
from volli_nb.core.store.outbox_rows import OutgoingMessage, QueuedMessage, Status
from volli_nb.core.store.retry_policy import RETRY_DELAYS, next_attempt_after
from volli_nb.core.store.sealed_db import Row

_HISTORY_BODY = (  # what a row without its own copy points at (only read for such rows)
    "(SELECT body FROM messages WHERE messages.message_id = outbox.message_id "
    "AND outbox.payload IS NULL AND direction = 'out') AS history_body"
)


class PersistentMessageQueue:
    """The seed's ``PersistentMessageQueue`` over the profile's ``outbox`` table.

    ``clock`` defaults to the database's clock.  Every change is one transaction,
    committed before the method returns (or with the caller's enclosing
    ``db.transaction()``), so the queue survives a crash at any point.  With ``log``,
    retries (with their waits), stuck rows and manual retries are logged as ``queue``
    events, whoever calls the method: the sequence diagram draws them from there.
    """

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock | None = None,
        delays: Sequence[float] = RETRY_DELAYS,
        log: EventLog | None = None,
    ) -> None:
        if not delays or any(d < 0 for d in delays):
            raise UsageError(f"retry delays must be a non-empty list of seconds >= 0: {delays!r}")
        self.db = db
        self.clock: Clock = clock or db.clock
        self.delays = tuple(delays)
        self.horizon = max(2 * max(self.delays), 120.0)  # nothing is scheduled further: due()
        self.log = log
        self.on_schedule: Callable[[], None] = lambda: None
        """Called when a row's next attempt time may have moved earlier (added, retried,
        released): a scheduler sleeping until the next due time wakes up."""

    def schedule_changed(self) -> None:
        self.on_schedule()

    # --- adding and reading ---------------------------------------------------

    def enqueue(self, message: OutgoingMessage) -> int:
        """Queue ``message``, due at once; returns its row id.

        Idempotent: the same (message id, recipient) again returns the existing
        row's id, whatever its state, and keeps the first payload.
        """
        with self.db.transaction():
            added = self.add(message)
            if added is not None:
                return added.id
            found = self.db.fetch(
                "SELECT id FROM outbox WHERE message_id = ? AND recipient = ?",
                (message.message_id.hex(), message.recipient),
            )
            return int(found[0]["id"])

    def add(self, message: OutgoingMessage, *, in_history: bool = False) -> QueuedMessage | None:
        """:meth:`enqueue` inside the caller's transaction (no savepoint of its own), and the
        row as written, so the sender never reads back what it just wrote; None if that
        (message id, recipient) is queued already (nothing changed).

        ``in_history``: the caller stored this payload as the sent message's body in the
        same transaction; the row points at it instead of sealing a copy (one seal per
        message, however many recipients)."""
        now = self.clock()
        values = {
            "message_id": message.message_id.hex(),
            "conversation_id": message.conversation_id,
            "recipient": message.recipient,
            "status": Status.PENDING,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
            "counter": message.counter,
        }
        names, marks = ", ".join(values), ", ".join(f":{k}" for k in values)
        cursor = self.db.execute(
            f"INSERT INTO outbox ({names}) VALUES ({marks}) "
            "ON CONFLICT (message_id, recipient) DO NOTHING",
            values,
        )
        if cursor.rowcount == 0:
            return None
        row_id = int(cursor.lastrowid or 0)
        sealed = None if in_history else self.db.seal("outbox", "payload", row_id, message.payload)
        mac = self.db.row_mac("outbox", {**values, "id": row_id})  # recipient is covered
        status = status_mac(self.db, message.message_id.hex(), message.recipient, Status.PENDING)
        self.db.execute(
            "UPDATE outbox SET payload = ?, mac = ?, status_mac = ? WHERE id = ?",
            (sealed, mac, status, row_id),
        )
        self.schedule_changed()
        return QueuedMessage(
            row_id, message.message_id, message.conversation_id, message.recipient,
            Status.PENDING, 0, now, None, now, now, message.counter, message.payload,
        )  # fmt: skip

    def get(self, row_id: int) -> QueuedMessage:
        rows = self._select("id = ?", (row_id,))
        if not rows:
            raise NotFound(f"no outbox row {row_id}; see get_pending() or counts()")
        return rows[0]

    def get_many(self, row_ids: Sequence[int]) -> list[QueuedMessage]:
        """The rows with these ids that exist, by id, in one statement per 500."""
        found: list[QueuedMessage] = []
        for piece in chunks([(i,) for i in row_ids], 1):
            found += self._select(f"id IN ({','.join('?' * len(piece))})", flat(piece))
        return found

    def get_pending(self) -> list[QueuedMessage]:
        """Everything still awaiting delivery, pending, held and stuck, oldest first."""
        return self._select("status IN (?, ?, ?)", (Status.PENDING, Status.HELD, Status.STUCK))

    def due(self, now: float | None = None) -> list[QueuedMessage]:
        """Pending rows whose next attempt time has come, soonest first.  A row due later
        than ``now + horizon`` (further than any delay or refusal pause puts one) was
        scheduled before the wall clock stepped back: due now, not after the jump."""
        when = self.clock() if now is None else now
        return self._select(
            "status = ? AND (next_attempt_at <= ? OR next_attempt_at > ?)",
            (Status.PENDING, when, when + self.horizon),
            order="next_attempt_at, id",
        )

    def due_keys(self, now: float | None = None) -> list[tuple[int, str, bytes]]:
        """``(row id, recipient, message id)`` of the due rows, without decrypting payloads:
        a retry tick with thousands of rows in flight must stay cheap."""
        when = self.clock() if now is None else now
        rows = self.db.fetch(
            "SELECT id, recipient, message_id FROM outbox WHERE status = ? "
            "AND (next_attempt_at <= ? OR next_attempt_at > ?) ORDER BY next_attempt_at, id",
            (Status.PENDING, when, when + self.horizon),
        )
        return [(int(r["id"]), r["recipient"], bytes.fromhex(r["message_id"])) for r in rows]

    def next_due_at(self, after: float | None = None) -> float | None:
        """The earliest next attempt among pending rows (later than ``after``, if given:
        rows due already are being attempted): how long a scheduler may sleep."""
        rows = self.db.fetch(
            "SELECT MIN(next_attempt_at) AS t FROM outbox WHERE status = ? AND next_attempt_at > ?",
            (Status.PENDING, float("-inf") if after is None else after),
        )
        value = rows[0]["t"]  # (a row past the horizon is due: the loop's tick finds it)
        return None if value is None else float(value)

    def for_recipient(self, peer_id: str) -> list[QueuedMessage]:
        """Pending (not stuck) rows for one peer: what to flush when it comes online."""
        return self._select("status = ? AND recipient = ?", (Status.PENDING, peer_id))

    def pending_keys(self, peer_id: str) -> list[tuple[int, bytes]]:
        """``(row id, message id)`` of one peer's pending rows, oldest first, no payload
        opened: a flush reads them a chunk at a time (:meth:`get_many`)."""
        rows = self.db.fetch(
            "SELECT id, message_id FROM outbox WHERE status = ? AND recipient = ? ORDER BY id",
            (Status.PENDING, peer_id),
        )
        return [(int(r["id"]), bytes.fromhex(r["message_id"])) for r in rows]

    def for_message(self, message_id: bytes) -> list[QueuedMessage]:
        """Every row of one message, any state: its delivery status per recipient."""
        return self._select("message_id = ?", (message_id.hex(),))

    def statuses(self, message_id: bytes) -> dict[str, Delivery]:
        """Recipient → status of one message, every MAC checked, no payload opened; a
        missing row is ``unknown`` unless the pruner recorded it (:mod:`.outbox_ledger`)."""
        return ledger_statuses(self.db, message_id)

    def counts(self) -> dict[str, int]:
        """Rows per status, every status present (zeros included)."""
        result = {str(s): 0 for s in Status}
        for row in self.db.fetch("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status"):
            result[row["status"]] = int(row["n"])
        return result

    # --- outcomes -------------------------------------------------------------

    def mark_delivered(self, row_id: int) -> None:
        """The recipient ACKed: delivered, payload erased.  Repeated ACKs are harmless,
        and an ACK for a discarded row still records the truth: it arrived."""
        with self.db.transaction():
            row = self.get(row_id)
            if row.status != Status.DELIVERED:
                self._set(row, Status.DELIVERED, next_attempt_at=None, erase=True)

    def mark_delivered_message(self, message_id: bytes, recipient: str) -> int | None:
        """:meth:`mark_delivered` by (message id, recipient), as ACKs name them; the row
        id, or None if no such row (e.g. an ACK for a message we never queued)."""
        rows = self.db.fetch(
            "SELECT id FROM outbox WHERE message_id = ? AND recipient = ?",
            (message_id.hex(), recipient),
        )
        if not rows:
            return None
        self.mark_delivered(int(rows[0]["id"]))
        return int(rows[0]["id"])

    def acknowledge(self, message_id: bytes, recipient: str) -> bool:
        """A signed ACK from ``recipient``: delivered and payload erased, in one statement.
        True if this ACK delivered it (False: already delivered, or never queued)."""
        return bool(outbox_batch.acknowledge_many(self, [message_id], recipient))

    def acknowledge_many(self, message_ids: Sequence[bytes], recipient: str) -> list[bytes]:
        """:meth:`acknowledge` for every id of one ACK, in one statement; the ids it
        delivered (see :func:`.outbox_batch.acknowledge_many`)."""
        return outbox_batch.acknowledge_many(self, message_ids, recipient)

    def fail_many(self, failures: Sequence[Failure]) -> int:
        """:meth:`mark_failed` for a pass's failed attempts, in one statement; rows no
        longer pending are left (see :func:`.outbox_batch.fail_many`)."""
        return outbox_batch.fail_many(self, failures)

    def due_now(self, row_ids: Sequence[int]) -> int:
        """The pending rows of ``row_ids`` due at once, attempts kept (a re-key handed them
        back), in one statement per 500 rows (see :func:`.outbox_batch.due_now`)."""
        return outbox_batch.due_now(self, row_ids)

    def mark_failed(self, row_id: int, error: str) -> QueuedMessage:
        """One attempt failed: schedule the next per the policy, or mark the row stuck."""
        with self.db.transaction():
            row = self.get(row_id)
            if row.status != Status.PENDING:
                raise UsageError(
                    f"outbox row {row_id} is {row.status}, not pending; only a pending message "
                    "can fail an attempt (use retry_now() to send a stuck one again)"
                )
            failures = row.attempts + 1
            when = next_attempt_after(failures, self.clock(), self.delays)
            status = Status.PENDING if when is not None else Status.STUCK
            self._set(
                row,
                status,
                next_attempt_at=when,
                attempts=failures,
                error=str(error)[:MAX_ERROR_CHARS],
            )
            failed = self.get(row_id)
        if self.log is not None:
            outbox_notes.failure(self.log, failed, str(error), self.delays, self.clock())
        return failed

    def retry_now(self, row_id: int) -> QueuedMessage:
        """Make a pending, held or stuck row due at once (by hand, or a peer came online).

        ``attempts`` is kept: a stuck message retried by hand that fails again is
        stuck again after that one failure, instead of replaying the whole schedule.
        """
        with self.db.transaction():
            row = self.get(row_id)
            if row.status not in (Status.PENDING, Status.HELD, Status.STUCK):
                raise UsageError(
                    f"outbox row {row_id} is {row.status}; only pending or stuck rows can be "
                    "retried (send the text again as a new message instead)"
                )
            self._set(row, Status.PENDING, next_attempt_at=self.clock())
            retried = self.get(row_id)
        self._note("queue.manual", f"retry now: row {row_id} (was {row.status})", retried)
        return retried

    def retry_all_stuck(self) -> int:
        """:meth:`retry_now` for every stuck row; returns how many."""
        with self.db.transaction():
            stuck = self._select("status = ?", (Status.STUCK,))
            for row in stuck:
                self._set(row, Status.PENDING, next_attempt_at=self.clock())
        if stuck and self.log is not None:
            self.log.add(
                "queue",
                f"retry all stuck: {len(stuck)} row(s) due now",
                peer_id=stuck[0].recipient if len({r.recipient for r in stuck}) == 1 else None,
                kind="queue.manual",
                rows=[r.id for r in stuck[:20]],
                message_ids=[r.message_id.hex() for r in stuck[:20]],
                count=len(stuck),
                clock=self.clock(),
            )
        return len(stuck)

    def discard(self, row_id: int) -> None:
        """Give up on a pending or stuck row; its payload is erased.  Idempotent."""
        with self.db.transaction():
            row = self.get(row_id)
            if row.status == Status.DELIVERED:
                raise UsageError(f"outbox row {row_id} was already delivered; nothing to discard")
            if row.status != Status.DISCARDED:
                self._set(row, Status.DISCARDED, next_attempt_at=None, erase=True)

    def _note(self, kind: str, text: str, row: QueuedMessage) -> None:
        if self.log is not None:
            outbox_notes.note(self.log, kind, text, row, self.clock())

    # --- rows -----------------------------------------------------------------

    def _set(
        self,
        row: QueuedMessage,
        status: Status,
        *,
        next_attempt_at: float | None,
        attempts: int | None = None,
        error: str | None = None,
        erase: bool = False,
    ) -> None:
        """Move ``row`` (just read and checked, in this transaction) to ``status``."""
        mac = status_mac(self.db, row.message_id.hex(), row.recipient, status)
        self.db.execute(
            """UPDATE outbox SET status = ?, status_mac = ?, next_attempt_at = ?,
            updated_at = ?, attempts = COALESCE(?, attempts),
            last_error = COALESCE(?, last_error),
            payload = CASE WHEN ? THEN NULL ELSE payload END WHERE id = ?""",
            (status, mac, next_attempt_at, self.clock(), attempts, error, erase, row.id),
        )
        if next_attempt_at is not None:
            self.schedule_changed()

    def _select(
        self, where: str, params: Sequence[object], *, order: str = "id"
    ) -> list[QueuedMessage]:
        rows = self.db.fetch(
            f"SELECT *, {_HISTORY_BODY} FROM outbox WHERE {where} ORDER BY {order}", params
        )
        return [self._queued(r) for r in rows]

    def _queued(self, row: Row) -> QueuedMessage:
        check_outbox_row(self.db, row)  # a recipient or a status edited in the file: refused
        return QueuedMessage.from_row(row, self._payload(row))

    def _payload(self, row: Row) -> bytes:
        """The row's own sealed copy, or (pointing at it) the sent message's body; b"" once
        delivered or discarded."""
        if row["payload"] is not None:
            return self.db.unseal("outbox", "payload", row["id"], row["payload"])
        if row["status"] in (Status.DELIVERED, Status.DISCARDED):
            return b""
        if row["history_body"] is None:
            raise StorageError(
                f"outbox row {row['id']} points at message {row['message_id']}, which is "
                f"not stored; discard the row (restore {self.db.path} from a backup to keep it)"
            )
        return self.db.unseal("messages", "body", row["message_id"], row["history_body"])


__all__ = [  # the row types (outbox_rows) and the policy (retry_policy) live apart;
    # importing them from here keeps working
    "MAX_ERROR_CHARS",
    "RETRY_DELAYS",
    "OutgoingMessage",
    "PersistentMessageQueue",
    "QueuedMessage",
    "Status",
    "next_attempt_after",
]
