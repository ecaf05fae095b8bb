"""What the event log hears from the outbox: failed attempts with their waits, stuck rows,
manual retries.  The sequence diagram draws retries from these entries, whichever path
moved the row (one :meth:`mark_failed`, or a pass's :func:`~.outbox_batch.fail_many`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from volli_nb.core.eventlog import EventLog
from volli_nb.core.store.outbox_rows import Status


class RowState(Protocol):
    """What a note says about a row (a :class:`QueuedMessage` is one)."""

    @property
    def id(self) -> int: ...
    @property
    def message_id(self) -> bytes: ...
    @property
    def recipient(self) -> str: ...
    @property
    def status(self) -> Status: ...
    @property
    def attempts(self) -> int: ...
    @property
    def next_attempt_at(self) -> float | None: ...


@dataclass(frozen=True)
class Moved:
    """A row as a batched statement left it (its ``RETURNING`` columns)."""

    id: int
    message_id: bytes
    recipient: str
    status: Status
    attempts: int
    next_attempt_at: float | None


def failure(
    log: EventLog, row: RowState, error: str, delays: Sequence[float], clock: float
) -> None:
    """A failed attempt: retried after the policy's wait, or stuck."""
    if row.status == Status.STUCK:
        text = f"attempt {row.attempts} failed ({error}): stuck, retry by hand"
        note(log, "queue.stuck", text, row, clock, reason=error)
    else:
        wait = delays[row.attempts - 1]  # the policy's wait, not a clock difference
        text = f"attempt {row.attempts} failed ({error}): retry in {wait:g} s"
        note(log, "queue.retry", text, row, clock, reason=error, wait=wait)


def note(log: EventLog, kind: str, text: str, row: RowState, clock: float, **data: object) -> None:
    log.add(
        "queue",
        text,
        peer_id=row.recipient,
        kind=kind,
        row=row.id,
        message_id=row.message_id.hex(),
        attempts=row.attempts,
        due_at=row.next_attempt_at,
        clock=clock,
        **data,
    )


__all__ = ["Moved", "RowState", "failure", "note"]
