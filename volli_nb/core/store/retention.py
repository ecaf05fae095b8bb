"""Bounded tables: the seen-set and the delivered outbox rows are pruned on a timer.

Run for days at 50 messages a second, a profile must not keep a row per message it ever
saw or delivered.  :class:`Pruner` deletes, every ``every`` seconds of the injected
clock:

- **seen-set** entries older than ``seen_for``.  An id must be remembered as long as a
  replay of its envelope would still pass the freshness check: ``max_age`` after the
  envelope's time, which is at most ``max_skew`` past its acceptance, so
  ``SEEN_WINDOW = max_age + max_skew`` (12 minutes) plus a margin.  A stored message
  still counts as seen through the ``messages`` table, however old.
- **delivered outbox rows** older than ``delivered_for`` (default an hour).  Their
  payload was erased at the ACK; what is left is delivery metadata for the queue panel
  and :meth:`~volli_nb.app.messages_store.MessagesStore.delivery_status`.  Only
  delivered rows expire, and each is recorded on its sent message first
  (:func:`~volli_nb.core.store.outbox_ledger.record_pruned`): a row that is gone
  without that record was deleted by someone else, and its status is unknown.

Pure: the caller says what time it is (``tick(now)``); the app runs it from a task.
"""

from __future__ import annotations

from dataclasses import dataclass

from volli_nb.base.errors import UsageError
from volli_nb.core.crypto.envelope import DEFAULT_MAX_AGE_MS, DEFAULT_MAX_SKEW_MS
from volli_nb.core.store.database import Database
from volli_nb.core.store.message_queue import Status
from volli_nb.core.store.outbox_ledger import ROW_COLUMNS, record_pruned

SEEN_WINDOW = (DEFAULT_MAX_AGE_MS + DEFAULT_MAX_SKEW_MS) / 1000
SEEN_MARGIN = 60.0  # seconds kept past the window: clocks and commits are not instant


@dataclass(frozen=True)
class Retention:
    """How long rows are kept, and how often the pruner looks (seconds)."""

    seen_for: float = SEEN_WINDOW + SEEN_MARGIN
    delivered_for: float = 3600.0
    every: float = 60.0

    def __post_init__(self) -> None:
        if self.seen_for < SEEN_WINDOW:
            raise UsageError(
                f"seen_for={self.seen_for:g} s would let a replay in: ids must be kept at "
                f"least {SEEN_WINDOW:g} s (the envelope freshness window)"
            )
        if self.delivered_for < 0 or self.every <= 0:
            raise UsageError("delivered_for must be >= 0 and every > 0 seconds")


@dataclass(frozen=True)
class Pruned:
    seen: int  # seen-set entries deleted
    delivered: int  # delivered outbox rows deleted
    at: float


class Pruner:
    """The pruning timer: :meth:`tick` prunes when ``every`` seconds have passed."""

    def __init__(self, db: Database, retention: Retention | None = None) -> None:
        self.db = db
        self.retention = retention or Retention()
        self.next_at: float | None = None  # the first tick prunes at once

    def tick(self, now: float) -> Pruned | None:
        """Prune if ``every`` seconds passed since the last time (or the wall clock
        stepped back past it: then at once, not after the jump)."""
        if self.next_at is not None and self.next_at - self.retention.every <= now < self.next_at:
            return None
        self.next_at = now + self.retention.every
        return self.prune(now)

    def prune(self, now: float) -> Pruned:
        """Delete what is past its retention, in one transaction."""
        keep = self.retention
        with self.db.transaction():
            seen = self.db.prune_seen(now - keep.seen_for)
            rows = self.db.fetch(
                f"SELECT {ROW_COLUMNS} FROM outbox WHERE status = ? AND updated_at < ?",
                (Status.DELIVERED, now - keep.delivered_for),
            )
            ids = record_pruned(self.db, rows)
            self.db.execute_many("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
        return Pruned(seen, len(ids), now)


__all__ = ["SEEN_WINDOW", "Pruned", "Pruner", "Retention"]
