"""Outbox rows the recipient refused: held until the cause may have changed, or paused.

A signed refusal (:mod:`volli_nb.core.protocol.refusal`) is not a failed attempt: the
recipient answered, and said why.  Counting it toward the 1/5/15/60 s schedule would
only burn the retries into ``stuck`` while the cause stays.  So, beside the states of
:mod:`.message_queue`::

    pending|stuck --hold----> held     (not due; a clock reading that agrees, the first of
                                        a new connection, or retry_now makes it pending)
    pending ------pause-----> pending  (due after the pause; ``attempts`` unchanged, so a
                                        full disk never makes a message stuck)

``last_error`` says why in words either way.  Each function is one transaction.
"""

from __future__ import annotations

from volli_nb.core.store.message_queue import MAX_ERROR_CHARS, PersistentMessageQueue, Status


def hold(
    queue: PersistentMessageQueue, recipient: str, message_ids: tuple[bytes, ...], reason: str
) -> int:
    """Hold these rows (still awaiting delivery) until :func:`release`; returns how many."""
    sql = (
        "UPDATE outbox SET status = ?, next_attempt_at = NULL, updated_at = ?, last_error = ? "
        "WHERE message_id = ? AND recipient = ? AND status IN (?, ?)"
    )
    now, why = queue.clock(), reason[:MAX_ERROR_CHARS]
    held, open_ = (Status.HELD, now, why), (recipient, Status.PENDING, Status.STUCK)
    return _each(queue, sql, [(*held, m.hex(), *open_) for m in message_ids])


def pause(
    queue: PersistentMessageQueue,
    recipient: str,
    message_ids: tuple[bytes, ...],
    reason: str,
    seconds: float,
) -> int:
    """Due again after ``seconds``, without counting an attempt; returns how many."""
    now = queue.clock()
    sql = (
        "UPDATE outbox SET next_attempt_at = ?, updated_at = ?, last_error = ? "
        "WHERE message_id = ? AND recipient = ? AND status = ?"
    )
    paused, open_ = (now + seconds, now, reason[:MAX_ERROR_CHARS]), (recipient, Status.PENDING)
    changed = _each(queue, sql, [(*paused, m.hex(), *open_) for m in message_ids])
    queue.schedule_changed()
    return changed


def release(queue: PersistentMessageQueue, recipient: str) -> int:
    """Every row held for ``recipient`` becomes pending and due now; returns how many."""
    now = queue.clock()
    cursor = queue.db.execute(
        "UPDATE outbox SET status = ?, next_attempt_at = ?, updated_at = ? "
        "WHERE recipient = ? AND status = ?",
        (Status.PENDING, now, now, recipient, Status.HELD),
    )
    if cursor.rowcount:
        queue.schedule_changed()
    return cursor.rowcount


def held_count(queue: PersistentMessageQueue, recipient: str) -> int:
    rows = queue.db.fetch(
        "SELECT COUNT(*) AS n FROM outbox WHERE recipient = ? AND status = ?",
        (recipient, Status.HELD),
    )
    return int(rows[0]["n"])


def _each(queue: PersistentMessageQueue, sql: str, rows: list[tuple[object, ...]]) -> int:
    changed = 0
    with queue.db.transaction():
        for params in rows:
            changed += queue.db.execute(sql, params).rowcount
    return changed


__all__ = ["held_count", "hold", "pause", "release"]
