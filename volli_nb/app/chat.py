"""What the app shows and returns: chat messages, sync reports, direct-message ids.

Plain data shared by the sender, the receiver and the facade, so none of them has to
import another to name what it hands out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from volli_nb.core.body import decode_body
from volli_nb.core.store.history import StoredMessage


@dataclass(frozen=True)
class ChatMessage:
    """A message as the UI shows it."""

    message_id: bytes
    conversation_id: str
    sender: str
    direction: str  # "in" or "out"
    text: str
    timestamp_ms: int
    status: str  # "received", or for "out": delivered / pending / stuck / ...

    @property
    def short_id(self) -> str:
        return self.message_id.hex()[:8]


@dataclass(frozen=True)
class SyncReport:
    sent: int
    in_flight: int
    waiting_offline: int
    stuck: int


def dm_conversation_id(a: str, b: str) -> str:
    """The one conversation id two peers share for their direct messages."""
    first, second = sorted((a, b))
    return f"dm-{first}-{second}"


def overall_status(statuses: set[str], *, none: str) -> str:
    """One word for a message's per-recipient statuses: the common one, or ``mixed``."""
    if len(statuses) == 1:
        return next(iter(statuses))
    return "mixed" if statuses else none


def chat_message(
    stored: StoredMessage, delivery_status: Callable[[bytes], dict[str, str]]
) -> ChatMessage:
    """A stored message as the UI shows it; an outgoing one with its delivery status."""
    status = "received"
    if stored.direction == "out":
        statuses = set(delivery_status(stored.message_id).values())
        status = overall_status(statuses, none="delivered")  # only delivered rows expire
    return ChatMessage(
        stored.message_id,
        stored.conversation_id,
        stored.sender,
        stored.direction,
        decode_body(stored.body),
        stored.timestamp_ms,
        status,
    )


__all__ = ["ChatMessage", "SyncReport", "chat_message", "dm_conversation_id", "overall_status"]
