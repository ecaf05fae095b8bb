"""What the app shows and returns: chat messages, sync reports, direct-message ids.

Plain data shared by the sender, the receiver and the facade, so none of them has to
import another to name what it hands out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from volli_nb.base.errors import ConversationRefused, VolliError
from volli_nb.core.body import decode_body
from volli_nb.core.eventlog import clip, wall_clock
from volli_nb.core.store.history import StoredMessage

RECEIVED = "received"  # the status of every readable incoming message
UNREADABLE = "unreadable"  # the status of a stored message whose body does not decode
_CONVERSATION_ID = re.compile(r"[\x21-\x7e]{1,256}\Z")  # printable ASCII, no spaces


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
    sender_name: str = field(default="", compare=False)  # the contact's name, if known

    @property
    def short_id(self) -> str:
        return self.message_id.hex()[:8]

    @property
    def time(self) -> str:
        """``13:14:02``: when it was sent, on the sender's clock, local time."""
        return wall_clock(self.timestamp_ms / 1000)[:8]

    def __str__(self) -> str:
        """``13:14:02 bob: hello``: how a chat line reads (``me`` for our own)."""
        who = "me" if self.direction == "out" else self.sender_name or self.sender[:8]
        return f"{self.time} {who}: {self.text}"

    def __repr__(self) -> str:
        """Names and short ids, a clock time, never a bytes literal or an epoch."""
        sender = self.sender[:8]
        if self.sender_name and self.sender_name != sender:
            sender = f"{self.sender_name} ({sender})"
        who = "out" if self.direction == "out" else f"in from {sender}"
        text = clip(self.text, 40)
        return f"<ChatMessage {self.short_id} {who} {self.time} {text!r} {self.status}>"


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


def received_members(
    conversation_id: str,
    sender: str,
    me: str,
    recipients: Sequence[str],
    existing: Sequence[str] | None,
) -> list[str]:
    """The members a received message's conversation has; :class:`ConversationRefused`
    for an id the sender may not use.

    The sender is authenticated, the conversation id is only what it wrote.  So ids are
    ASCII (no look-alike of another id), a ``dm-`` id is valid only as the sender's and
    our own direct conversation, and until groups exist (signed membership, bound to
    their creator) a message may post to a conversation we hold if its sender and every
    recipient are members (an envelope names only the members it was sealed for on
    that attempt), but create one only with sender and receiver: no one can squat a
    conversation with a third peer, or put itself among someone else's members."""
    addressed = sorted({*recipients, sender})
    if not _CONVERSATION_ID.match(conversation_id):
        raise ConversationRefused(
            f"conversation id {conversation_id!r} is not 1 to 256 printable ASCII characters"
        )
    if conversation_id.startswith("dm-") and conversation_id != dm_conversation_id(me, sender):
        raise ConversationRefused(
            f"{sender} may not use {conversation_id!r}: a direct conversation id names "
            f"exactly its two members ({dm_conversation_id(me, sender)!r} here)"
        )
    if existing is not None:
        if not set(addressed) <= set(existing) or me not in existing:
            raise ConversationRefused(
                f"conversation {conversation_id!r} has members {sorted(existing)}, but {sender}'s "
                f"message is addressed to {addressed}; membership changes are not supported"
            )
        return sorted(existing)
    if addressed != sorted({sender, me}):
        raise ConversationRefused(
            f"{sender} may not create conversation {conversation_id!r} with {addressed}: a "
            "received message creates only a conversation of its sender and receiver"
        )
    return addressed


def overall_status(statuses: set[str], *, none: str) -> str:
    """One word for a message's per-recipient statuses: the common one, or ``mixed``."""
    if len(statuses) == 1:
        return next(iter(statuses))
    return "mixed" if statuses else none


def chat_message(
    stored: StoredMessage,
    delivery_status: Callable[[bytes], dict[str, str]],
    names: Callable[[str], str] | None = None,
) -> ChatMessage:
    """A stored message as the UI shows it; an outgoing one with its delivery status,
    an incoming one with its sender's name (``names``: a contact's name by peer id).

    A body the decoder refuses (stored by an older version) shows as unreadable, with
    the reason, instead of breaking the whole conversation's history."""
    status = RECEIVED
    if stored.direction == "out":
        statuses = set(delivery_status(stored.message_id).values())
        status = overall_status(statuses, none="unknown")  # no row and no pruner's record
    try:
        text = decode_body(stored.body)
    except VolliError as exc:
        text, status = f"[unreadable message: {type(exc).__name__}: {exc}]", UNREADABLE
    return ChatMessage(
        stored.message_id,
        stored.conversation_id,
        stored.sender,
        stored.direction,
        text,
        stored.timestamp_ms,
        status,
        names(stored.sender) if names is not None and stored.direction == "in" else "",
    )


__all__ = [
    "RECEIVED",
    "UNREADABLE",
    "ChatMessage",
    "SyncReport",
    "chat_message",
    "dm_conversation_id",
    "overall_status",
    "received_members",
]
