"""The outbox's rows as values: a message to queue, a queued row, and its states.

Kept apart from :mod:`.message_queue` (which re-exports them) so the queue's module is
the policy and its SQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from volli_nb.base.errors import UsageError
from volli_nb.core.eventlog import clip, wall_clock
from volli_nb.core.message_id import check_message_id


class Status(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (or being attempted)
    DELIVERED = "delivered"  # the recipient's signed ACK arrived
    STUCK = "stuck"  # every retry failed; waits for retry_now or discard
    DISCARDED = "discarded"  # given up by the user
    HELD = "held"  # refused for a reason a retry cannot fix: waits for it to change (holds)


@dataclass(frozen=True)
class OutgoingMessage:
    """What to deliver to one recipient; ``payload`` is the plaintext to seal per attempt."""

    message_id: bytes
    conversation_id: str
    recipient: str
    payload: bytes
    counter: int

    def __post_init__(self) -> None:
        check_message_id(self.message_id)
        if not self.recipient or not self.conversation_id:
            raise UsageError("an outgoing message needs a recipient and a conversation id")
        if not isinstance(self.payload, bytes):
            raise UsageError(f"payload must be bytes, not {type(self.payload).__name__}")


@dataclass(frozen=True)
class QueuedMessage:
    """One outbox row.  ``attempts`` counts failures; ``payload`` is b"" once erased."""

    id: int
    message_id: bytes
    conversation_id: str
    recipient: str
    status: Status
    attempts: int
    next_attempt_at: float | None
    last_error: str | None
    created_at: float
    updated_at: float
    counter: int
    payload: bytes

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | sqlite3.Row, payload: bytes) -> QueuedMessage:
        """From an ``outbox`` row (its MAC checked by the caller) and its opened payload."""
        return cls(
            id=row["id"],
            message_id=bytes.fromhex(row["message_id"]),
            conversation_id=row["conversation_id"],
            recipient=row["recipient"],
            status=Status(row["status"]),
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            last_error=row["last_error"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            counter=row["counter"],
            payload=payload,
        )

    def __repr__(self) -> str:
        """One readable line: short ids, clock times, never bytes or epoch floats."""
        failed = f"{self.attempts} failed attempt{'' if self.attempts == 1 else 's'}"
        parts = [f"row {self.id}: {self.message_id.hex()[:8]} → {self.recipient[:8]}"]
        parts += [str(self.status), failed]
        if self.next_attempt_at is not None and self.status == Status.PENDING:
            parts.append(f"next attempt {wall_clock(self.next_attempt_at)}")
        if self.last_error:
            parts.append(f"last error: {clip(self.last_error, 60)}")
        return f"<QueuedMessage {', '.join(parts)}>"

    def to_row(self) -> dict[str, object]:
        """A flat dict for tables and widgets: the payload's size, never its content."""
        return {
            "id": self.id,
            "message_id": self.message_id.hex(),
            "conversation_id": self.conversation_id,
            "recipient": self.recipient,
            "status": str(self.status),
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "last_error": self.last_error,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "counter": self.counter,
            "payload_bytes": len(self.payload),
        }


__all__ = ["OutgoingMessage", "QueuedMessage", "Status"]
