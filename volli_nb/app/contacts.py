"""Contacts and pairing: whose keys we pin, how two peers meet, and their conversations.

Pairing follows the seed's ``connectToPeer`` offer/answer, as pasted codes: the offer is
made under a random token before we know who will answer; the code carries the token,
the answer echoes it, and :meth:`ContactBook.complete_pairing` binds the connection to
the answering identity.  Keys seen in a code are pinned on first use; a later key
change for the same id is refused (:class:`~volli_nb.base.errors.KeyMismatch`).
"""

from __future__ import annotations

from volli_nb.app.chat import dm_conversation_id
from volli_nb.base.clock import Clock
from volli_nb.base.errors import BadPairingCode, NotFound, UnknownPeer, UsageError
from volli_nb.core import pairing_code as pairing
from volli_nb.core.crypto.identity import Identity, PublicIdentity, contact_safety_number
from volli_nb.core.crypto.primitives import random_bytes
from volli_nb.core.eventlog import EventLog
from volli_nb.core.store.database import Database
from volli_nb.net.events import NetworkEvent, PeerOnline
from volli_nb.net.network_store import NetworkStore

TOKEN_BYTES = 6  # a pairing token only has to be unique among our own open offers


class ContactBook:
    """One profile's contacts, their direct conversations, and pairing by codes."""

    def __init__(
        self,
        database: Database,
        identity: Identity,
        network: NetworkStore,
        log: EventLog,
        *,
        name: str,
        clock: Clock,
    ) -> None:
        self.database, self.identity, self.network, self.log = database, identity, network, log
        self.name, self.clock = name, clock
        network.on_event(self._on_network_event)

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    def contact(self, peer_id: str) -> PublicIdentity | None:
        row = self.database.get_contact(peer_id)
        return None if row is None else row.public

    def display_name(self, peer_id: str) -> str:
        """The contact's name, or the short peer id of a stranger (or an unnamed contact)."""
        row = self.database.get_contact(peer_id)
        return (row.name if row else None) or peer_id[:8]

    def add(self, peer: PublicIdentity, *, name: str | None = None) -> str:
        """Pin ``peer``'s keys (KeyMismatch if the id is pinned to another key)."""
        peer.verify()
        if peer.peer_id == self.peer_id:
            raise UsageError("this is our own identity; pair with the other side's code")
        self.database.add_contact(
            peer.peer_id, peer.identity_key, peer.device_key, peer.device_signature, name=name
        )
        self.database.ensure_conversation(
            dm_conversation_id(self.peer_id, peer.peer_id), [self.peer_id, peer.peer_id], name
        )
        return peer.peer_id

    def safety_number(self, peer_id: str) -> str:
        peer = self.contact(peer_id)
        if peer is None:
            raise NotFound(f"no contact {peer_id!r}")
        return contact_safety_number(self.identity.public, peer)

    # --- conversations -----------------------------------------------------------

    def conversation_with(self, peer_id: str) -> str:
        if self.database.get_contact(peer_id) is None:
            raise UnknownPeer(f"{peer_id!r} is not a contact; pair with it first")
        conversation_id = dm_conversation_id(self.peer_id, peer_id)
        self.database.ensure_conversation(conversation_id, [self.peer_id, peer_id])
        return conversation_id

    def resolve(self, conversation: str) -> tuple[str, list[str]]:
        """A conversation id or a contact's peer id → (conversation id, other members)."""
        found = self.database.get_conversation(conversation)
        if found is None and self.database.get_contact(conversation) is not None:
            found = self.database.get_conversation(self.conversation_with(conversation))
        if found is None:
            raise NotFound(
                f"no conversation or contact {conversation!r}; see conversations() or contacts"
            )
        recipients = [m for m in found.members if m != self.peer_id]
        if not recipients:
            raise UsageError(f"conversation {found.id!r} has no other member")
        return found.id, recipients

    # --- pairing -------------------------------------------------------------------

    async def create_pairing_code(self) -> str:
        token = "pair-" + random_bytes(TOKEN_BYTES).hex()
        offer = await self.network.connect_to_peer(token)
        self.log.add("signaling", f"pairing code created ({token})")
        return pairing.encode_code("offer", offer.sdp, self.identity.public, self.name, token)

    async def accept_pairing_code(self, code: str) -> str:
        parsed = pairing.decode_code(code, expect="offer")
        self.add(parsed.identity, name=parsed.name)
        answer = await self.network.connect_to_peer(parsed.peer_id, parsed.sdp)
        self.log.add("signaling", f"accepted offer from {parsed.name}", peer_id=parsed.peer_id)
        return pairing.encode_code(
            "answer", answer.sdp, self.identity.public, self.name, parsed.ref
        )

    async def complete_pairing(self, code: str) -> str:
        parsed = pairing.decode_code(code, expect="answer")
        if parsed.ref is None or parsed.ref not in self.network.peers:
            raise BadPairingCode(
                "this answer does not match an open offer from this profile; "
                "create a new code with create_pairing_code() and start again"
            )
        self.add(parsed.identity, name=parsed.name)
        await self.network.accept_answer(parsed.ref, parsed.sdp, answered_by=parsed.peer_id)
        return parsed.peer_id

    def _on_network_event(self, event: NetworkEvent) -> None:
        if isinstance(event, PeerOnline):
            self.database.touch_contact(event.peer_id, self.clock())


__all__ = ["ContactBook"]
