"""Outbox rows the recipient refused: held until the cause may have changed, or paused.

A signed refusal (:mod:`volli_nb.core.protocol.refusal`) is not a failed attempt: the
recipient answered, and said why.  Counting it toward the 1/5/15/60 s schedule would
only burn the retries into ``stuck`` while the cause stays.  So, beside the states of
:mod:`.message_queue`::

    pending|stuck --hold----> held     (not due; a clock reading that agrees, the first of
                                        a new connection, or retry_now makes it pending)
    pending ------pause-----> pending  (due after the pause; ``attempts`` unchanged, so a
                                        full disk never makes a message stuck)

``last_error`` says why in words either way.  Each function is one transaction, and
moves a row only out of a status its MAC vouches for (:mod:`.outbox_ledger`).
"""

from __future__ import annotations

from volli_nb.core.store.message_queue import MAX_ERROR_CHARS, PersistentMessageQueue, Status
from volli_nb.core.store.outbox_ledger import VOUCHED, status_mac, vouched


def hold(
    queue: PersistentMessageQueue, recipient: str, message_ids: tuple[bytes, ...], reason: str
) -> int:
    """Hold these rows (still awaiting delivery) until :func:`release`; returns how many.
    A row whose status its MAC does not vouch for is left alone (``verify()`` names it)."""
    sql = (
        "UPDATE outbox SET status = ?, status_mac = ?, next_attempt_at = NULL, updated_at = ?, "
        f"last_error = ? WHERE message_id = ? AND recipient = ? AND status IN (?, ?) AND {VOUCHED}"
    )
    now, why, db = queue.clock(), reason[:MAX_ERROR_CHARS], queue.db
    rows = []
    for mid in (m.hex() for m in message_ids):
        held = (Status.HELD, status_mac(db, mid, recipient, Status.HELD), now, why)
        rows.append((*held, mid, recipient, Status.PENDING, Status.STUCK,
                     *vouched(db, mid, recipient)))  # fmt: skip
    return _each(queue, sql, rows)


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
    now, db = queue.clock(), queue.db
    held = db.fetch(
        "SELECT message_id FROM outbox WHERE recipient = ? AND status = ?",
        (recipient, Status.HELD),
    )
    sql = (
        "UPDATE outbox SET status = ?, status_mac = ?, next_attempt_at = ?, updated_at = ? "
        f"WHERE message_id = ? AND recipient = ? AND status = ? AND {VOUCHED}"
    )
    rows = [
        (Status.PENDING, status_mac(db, mid, recipient, Status.PENDING), now, now,
         mid, recipient, Status.HELD, *vouched(db, mid, recipient))
        for mid in (r["message_id"] for r in held)
    ]  # fmt: skip
    released = _each(queue, sql, rows)
    if released:
        queue.schedule_changed()
    return released


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
