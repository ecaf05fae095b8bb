"""Whom an attempt seals for: a conversation's members as pinned identities.

Resolved once per burst of attempts (a send, a flush, a retry pass), not once per
attempt: a 10,000-message flush reads its conversation and contacts once.
"""

from __future__ import annotations

from typing import Protocol

from volli_nb.app.contacts import ContactBook
from volli_nb.base.errors import UnknownPeer
from volli_nb.core.crypto.identity import PublicIdentity
from volli_nb.core.store.database import Conversation, Database


class SenderLike(Protocol):
    """What resolving needs of the sender."""

    database: Database
    contacts: ContactBook

    @property
    def peer_id(self) -> str: ...


class Recipients:
    """Conversation → the public identities to seal for, resolved once per burst (a send,
    a flush, a retry pass) instead of once per attempt; a member who is not a contact is
    :class:`UnknownPeer` when an attempt needs them."""

    def __init__(self, sender: SenderLike, known: Conversation | None = None) -> None:
        self._sender = sender
        self._known = known  # the send's conversation, read already
        self._found: dict[str, list[PublicIdentity]] = {}

    def of(self, conversation_id: str, recipient: str) -> list[PublicIdentity]:
        found = self._found.get(conversation_id)
        if found is None:
            sender = self._sender
            known = self._known
            conversation = (
                known
                if known is not None and known.id == conversation_id
                else sender.database.get_conversation(conversation_id)
            )
            members = conversation.members if conversation else [recipient]
            found = []
            for member in members:
                if member == sender.peer_id:
                    continue
                peer = sender.contacts.contact(member)
                if peer is None:
                    raise UnknownPeer(f"conversation member {member} is not a contact")
                found.append(peer)
            self._found[conversation_id] = found
        return found


__all__ = ["Recipients"]
