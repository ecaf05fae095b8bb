"""Contacts and pairing: whose keys we pin, how two peers meet, and their conversations.

Pairing follows the seed's ``connectToPeer`` offer/answer, as pasted codes: the offer is
made under a random token before we know who will answer; the code carries the token,
the answer echoes it, and :meth:`ContactBook.complete_pairing` binds the connection to
the answering identity.  Keys seen in a code are pinned on first use; a later key
change for the same id is refused (:class:`~volli_nb.base.errors.KeyMismatch`).

Pairing completes only what it started: an answer must echo a token this book made and
has not completed, and everything in it is checked before anything is pinned or a link
renamed.  A pin and its conversation are written in one transaction.  Two things are
worth a person's attention and raise a visible warning (event log, peers panel): a new
contact whose name is a known contact's, and a known id offered another key.
"""

from __future__ import annotations

import difflib

from volli_nb.app.chat import dm_conversation_id
from volli_nb.base.clock import Clock
from volli_nb.base.errors import (
    BadPairingCode,
    KeyMismatch,
    NotFound,
    UnknownPeer,
    UsageError,
    VolliError,
)
from volli_nb.core import pairing_code as pairing
from volli_nb.core.claimed_name import looks_like
from volli_nb.core.crypto.identity import Identity, PublicIdentity, contact_safety_number
from volli_nb.core.crypto.primitives import random_bytes
from volli_nb.core.eventlog import EventLog
from volli_nb.core.store.database import Contact, Conversation, Database
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
        self.warnings: dict[str, str] = {}  # peer id → the latest warning about it
        self._offers: set[str] = set()  # pairing tokens we made and have not completed
        # pairing tokens we completed → who answered, and the answer's SDP
        self._completed: dict[str, tuple[str, str]] = {}
        # peer id → (the offer we answered, its connection, our answer): a cell run twice
        self._answered: dict[str, tuple[object, object, str]] = {}
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
        """Pin ``peer``'s keys and create its conversation, in one transaction
        (KeyMismatch if the id is pinned to another key, StaleDeviceRecord for an old one)."""
        peer.verify()
        if peer.peer_id == self.peer_id:
            raise UsageError("this is our own identity; pair with the other side's code")
        old = self.database.get_contact(peer.peer_id)
        try:
            with self.database.transaction():
                self.database.add_contact(
                    peer.peer_id,
                    peer.identity_key,
                    peer.device_key,
                    peer.device_signature,
                    device_epoch=peer.device_epoch,
                    name=name,
                )
                self.database.ensure_conversation(
                    dm_conversation_id(self.peer_id, peer.peer_id),
                    [self.peer_id, peer.peer_id],
                    name,
                )
        except KeyMismatch as exc:
            self.warn(peer.peer_id, f"key change refused: {exc}", kind="contact.key_changed")
            raise
        if name and (old is None or old.name != name):  # newly named: like someone known?
            self._check_name(peer.peer_id, name)
        if old is not None and old.device_key != peer.device_key:
            self.warn(
                peer.peer_id,
                f"{peer.peer_id} moved to a new device key (epoch {old.device_epoch} → "
                f"{peer.device_epoch}); if you did not expect that, ask them",
                kind="contact.device_changed",
            )
        return peer.peer_id

    def add_member(self, peer: PublicIdentity, name: str | None) -> str:
        """Pin a room member; the name it gives itself names it only until someone (us,
        or a pairing code) named it otherwise."""
        row = self.database.get_contact(peer.peer_id)
        return self.add(peer, name=name if row is None or not row.name else None)

    def warn(self, peer_id: str, message: str, *, kind: str) -> None:
        """A warning a person should see: in the event log and the peers panel."""
        self.warnings[peer_id] = message
        self.log.add("error", f"warning: {message}", peer_id=peer_id, kind=kind)

    def _called(self, name: str) -> list[Contact]:
        """The contacts whose name looks like ``name`` (:func:`looks_like`)."""
        wanted = looks_like(name)
        return [c for c in self.database.list_contacts() if c.name and looks_like(c.name) == wanted]

    def _check_name(self, peer_id: str, name: str) -> None:
        for contact in self._called(name):
            if contact.peer_id != peer_id:
                self.warn(
                    peer_id,
                    f"new contact {peer_id} calls itself {name!r}, like {contact.name!r} "
                    f"({contact.peer_id}); compare safety numbers before trusting either",
                    kind="contact.name_clash",
                )
                return

    def safety_number(self, peer_id: str) -> str:
        peer = self.contact(self.peer_of(peer_id))
        if peer is None:
            raise NotFound(f"no contact {peer_id!r}; the store's .contacts lists them")
        return contact_safety_number(self.identity.public, peer)

    def peer_of(self, who: str) -> str:
        """A peer id, or a contact's name (as :meth:`find_conversation` reads it) → the peer
        id; anything else as it is (a room member not yet a contact is named by its id)."""
        if not isinstance(who, str) or self.database.get_contact(who) or who in self.network.peers:
            return who
        return self._named(who) or who

    # --- conversations -----------------------------------------------------------

    def conversation_with(self, peer_id: str) -> str:
        if self.database.get_contact(peer_id) is None:
            raise UnknownPeer(f"{peer_id!r} is not a contact; pair with it first")
        conversation_id = dm_conversation_id(self.peer_id, peer_id)
        self.database.ensure_conversation(conversation_id, [self.peer_id, peer_id])
        return conversation_id

    def resolve(self, conversation: str) -> tuple[str, list[str]]:
        """A conversation id or a contact's peer id → (conversation id, other members)."""
        found = self.find_conversation(conversation)
        return found.id, self.others(found)

    def find_conversation(self, conversation: str) -> Conversation:
        """A conversation id, a contact's peer id or a contact's name (any case, if only
        one contact has it) → the conversation (a contact's direct conversation is created
        on first use); read once, not re-read after a check."""
        if not isinstance(conversation, str):
            raise UsageError(
                "name a conversation, a contact's peer id or a contact's name (a str), not "
                f"{type(conversation).__name__}"
            )
        found = self.database.get_conversation(conversation)
        if found is None:
            known = self.database.get_contact(conversation) is not None
            peer = conversation if known else self._named(conversation)
            if peer is not None:
                found = self.database.get_conversation(dm_conversation_id(self.peer_id, peer))
                if found is None:
                    found = self.database.get_conversation(self.conversation_with(peer))
        if found is None:
            raise NotFound(
                f"no conversation, contact or contact name {conversation!r}"
                f"{self._did_you_mean(conversation)}; the store's .contacts and "
                ".conversations() list them"
            )
        return found

    def _did_you_mean(self, typed: str) -> str:
        """A typo'd name: the contact names close to it, to say which was meant."""
        names = sorted({c.name for c in self.database.list_contacts() if c.name})
        close = difflib.get_close_matches(typed.lower(), [n.lower() for n in names], 3, 0.6)
        meant = [n for n in names if n.lower() in close]
        return f" (did you mean {' or '.join(repr(n) for n in meant)}?)" if meant else ""

    def _named(self, name: str) -> str | None:
        """The peer id of the one contact called ``name`` (None if none is)."""
        named = [c.peer_id for c in self._called(name)]
        if len(named) > 1:
            raise UsageError(f"{len(named)} contacts are called {name!r}; pass a peer id: {named}")
        return named[0] if named else None

    def others(self, conversation: Conversation) -> list[str]:
        """The members a message to ``conversation`` goes to (everyone but us)."""
        recipients = [m for m in conversation.members if m != self.peer_id]
        if not recipients:
            raise UsageError(f"conversation {conversation.id!r} has no other member")
        return recipients

    # --- pairing -------------------------------------------------------------------

    async def create_pairing_code(self) -> str:
        token = "pair-" + random_bytes(TOKEN_BYTES).hex()
        offer = await self.network.connect_to_peer(token)
        self._offers.add(token)
        self.log.add("signaling", f"pairing code created ({token})")
        return pairing.encode_code("offer", offer.sdp, self.identity.public, self.name, token)

    async def accept_pairing_code(self, code: str) -> str:
        """Answer an offer code.  The same code again, while the connection we made for it
        lives, gives the same answer: answering anew would close that connection, and the
        other side may already hold (or have applied) the first answer."""
        parsed = pairing.decode_code(code, expect="offer")
        offer = (parsed.ref, parsed.sdp)
        earlier = self._answered.get(parsed.peer_id)
        if earlier and earlier[0] == offer and self.network.peers.get(parsed.peer_id) is earlier[1]:
            self.log.add(
                "signaling", "offer answered already: the same answer", peer_id=parsed.peer_id
            )
            return earlier[2]
        self.add(parsed.identity, name=parsed.name)
        answer = await self.network.connect_to_peer(parsed.peer_id, parsed.sdp)
        self.log.add("signaling", f"accepted offer from {parsed.name}", peer_id=parsed.peer_id)
        reply = pairing.encode_code(
            "answer", answer.sdp, self.identity.public, self.name, parsed.ref
        )
        self._answered[parsed.peer_id] = (offer, self.network.peers.get(parsed.peer_id), reply)
        return reply

    async def complete_pairing(self, code: str) -> str:
        """Apply an answer to one of our open offers; all or nothing.

        Checked first: the token is one we made and have not completed, the identity is
        not ours and does not conflict with a pin.  Then the answer is applied (a bad one
        leaves the offer open and nothing pinned), and the contact pinned at once, before
        the connection can open.  The same answer again (a cell run twice) changes nothing
        and returns the same peer id; another answer to a completed offer is refused."""
        parsed = pairing.decode_code(code, expect="answer")
        token, peer = parsed.ref, parsed.identity
        if token is not None and token in self._completed:
            done_by, applied = self._completed[token]
            if done_by == peer.peer_id and applied == parsed.sdp:  # the cell, run again
                self.log.add("signaling", "answer applied already", peer_id=peer.peer_id)
                return peer.peer_id
            if done_by == peer.peer_id:
                raise BadPairingCode(
                    f"this offer was answered and applied already (paired with "
                    f"{self.display_name(peer.peer_id)!r}); to pair again, create a new code "
                    "with create_pairing_code()"
                )
        if token is None or token not in self._offers or token not in self.network.peers:
            raise BadPairingCode(
                "this answer does not match an open offer from this profile; "
                "create a new code with create_pairing_code() and start again"
            )
        if peer.peer_id == self.peer_id:
            raise BadPairingCode("this answer carries our own identity; it cannot pair")
        self.database.check_pin(self.database.get_contact(peer.peer_id), peer)
        self._offers.discard(token)  # taken: a second paste of it is refused
        try:
            await self.network.accept_answer(token, parsed.sdp, answered_by=peer.peer_id, peer=peer)
        except VolliError as exc:
            if token in self.network.peers:
                self._offers.add(token)  # the offer is still open
            if isinstance(exc, UsageError):
                raise BadPairingCode(f"{exc}; nothing was pinned, the offer stays open") from None
            raise
        try:
            self.add(peer, name=parsed.name)
        except BaseException:
            await self.network.disconnect(peer.peer_id)
            raise
        self._completed[token] = (peer.peer_id, parsed.sdp)
        return peer.peer_id

    def _on_network_event(self, event: NetworkEvent) -> None:
        if isinstance(event, PeerOnline):
            self.database.touch_contact(event.peer_id, self.clock())


__all__ = ["ContactBook"]
