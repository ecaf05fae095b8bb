"""Rows that went stuck while their peer was away get one more attempt when it returns.

The seed's schedule (1 s, 5 s, 15 s, 60 s, then ``stuck``) is for a peer that is there
and does not answer.  A peer that is away does not fail a message: after 81 s away a
backlog went ``stuck`` and stayed so on its return, until someone called
``retry_all_stuck()``.  A peer's return is new information, so::

    stuck (last failure: the peer was away) --peer returns--> pending, due now

``attempts`` is kept, as with ``retry_now``: one more failure makes the row stuck
again, so a peer that comes back but does not acknowledge costs one attempt per return,
never a new schedule.  A row stuck because its connected peer did not acknowledge it
("no ACK before the timeout") is not released: that one still waits for a person.

"Away" is read from the failure the sender recorded: ``"peer offline"`` (not connected
when the row was due) or a ``TransportClosed`` (the channel closed before the frame
could be handed to it, or with it in flight).  See docs/operations.md, "A peer's return".
"""

from __future__ import annotations

from volli_nb.core.store.message_queue import PersistentMessageQueue, Status
from volli_nb.core.store.outbox_ledger import VOUCHED, status_mac, vouched

PEER_AWAY = "peer offline"  # the sender's reason when the peer is not connected
CHANNEL_CLOSED = "TransportClosed:%"  # an attempt whose channel closed under it (LIKE)
_AWAY = "(last_error = ? OR last_error LIKE ?)"


def stuck_while_away(queue: PersistentMessageQueue, recipient: str) -> int:
    """How many of ``recipient``'s rows went stuck while it was away."""
    rows = queue.db.fetch(
        f"SELECT COUNT(*) AS n FROM outbox WHERE recipient = ? AND status = ? AND {_AWAY}",
        (recipient, Status.STUCK, PEER_AWAY, CHANNEL_CLOSED),
    )
    return int(rows[0]["n"])


def release_returned(queue: PersistentMessageQueue, recipient: str) -> int:
    """``recipient`` is back: each of its rows that went stuck while it was away is due
    now, for one more attempt (one transaction); returns how many, logged as
    ``kind="queue.returned"``."""
    now, db = queue.clock(), queue.db
    away = db.fetch(
        f"SELECT message_id FROM outbox WHERE recipient = ? AND status = ? AND {_AWAY}",
        (recipient, Status.STUCK, PEER_AWAY, CHANNEL_CLOSED),
    )
    sql = (  # each row moves only out of a status its MAC vouches for, with its new MAC
        "UPDATE outbox SET status = ?, status_mac = ?, next_attempt_at = ?, updated_at = ? "
        f"WHERE message_id = ? AND recipient = ? AND status = ? AND {VOUCHED}"
    )
    released = 0
    with db.transaction():
        for mid in (row["message_id"] for row in away):
            params = (Status.PENDING, status_mac(db, mid, recipient, Status.PENDING), now, now,
                      mid, recipient, Status.STUCK, *vouched(db, mid, recipient))  # fmt: skip
            released += db.execute(sql, params).rowcount
    if released:
        queue.schedule_changed()
        if queue.log is not None:
            queue.log.add(
                "queue",
                f"{recipient} is back: {released} message(s) that went stuck while it was "
                "away are due again (one more attempt each)",
                peer_id=recipient,
                kind="queue.returned",
                count=released,
                clock=now,
            )
    return released


__all__ = ["CHANNEL_CLOSED", "PEER_AWAY", "release_returned", "stuck_while_away"]
