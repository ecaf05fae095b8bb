"""MessagesStore: the seed's ``messagesStore``, one profile behind one object.

A facade with the seed's names.  The work is done by what it composes, each in its own
module: :class:`~volli_nb.app.contacts.ContactBook` (contacts, pairing codes,
conversations), :class:`~volli_nb.app.peer_sessions.PeerSessions` (each channel's
session keys), :class:`~volli_nb.app.sender.Sender` (outbox, sealing per attempt,
retries, sync, delivery) and :class:`~volli_nb.app.receiver.Receiver` (open, store,
commit-then-ACK, one verdict per frame), over a
:class:`~volli_nb.core.store.database.Database` and a
:class:`~volli_nb.net.network_store.NetworkStore`; :class:`~.storage_health.StorageHealth`
turns failed writes into one state, and :class:`~.housekeeping.Housekeeping` keeps the
tables bounded (docs/operations.md).  Rooms on a signaling server are a
:class:`~volli_nb.app.rooms.RoomSession`, created by :meth:`MessagesStore.join`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from volli_nb.app import scratch
from volli_nb.app.chat import ChatMessage, SyncReport, chat_message, dm_conversation_id
from volli_nb.app.contacts import ContactBook
from volli_nb.app.group_info import GroupInfo
from volli_nb.app.group_receiving import GroupReceiving
from volli_nb.app.groups import GroupBook
from volli_nb.app.housekeeping import Housekeeping
from volli_nb.app.peer_sessions import PeerSessions
from volli_nb.app.receiver import Receiver
from volli_nb.app.refusals import REFUSAL_PAUSE
from volli_nb.app.rooms import RoomSession
from volli_nb.app.sender import MAX_TEXT_BYTES, Sender
from volli_nb.app.storage_health import StorageHealth, StorageStatus
from volli_nb.base.clock import Clock, system_clock
from volli_nb.base.errors import UsageError
from volli_nb.core.crypto.identity import Identity, PublicIdentity
from volli_nb.core.eventlog import EventLog
from volli_nb.core.groups.record import is_group_id
from volli_nb.core.message_id import as_message_id
from volli_nb.core.netconfig import NetworkConfig
from volli_nb.core.store.database import (
    KDF_MIN,
    KDF_MODERATE,
    Contact,
    Conversation,
    Database,
    KdfCost,
)
from volli_nb.core.store.integrity import IntegrityReport
from volli_nb.core.store.message_queue import PersistentMessageQueue
from volli_nb.core.store.retention import Pruner, Retention
from volli_nb.net.network_store import NetworkStore


class MessagesStore:
    """One profile: its identity, its SQLite file, its outbox and its peer connections."""

    def __init__(
        self,
        database: Database,
        identity: Identity,
        *,
        name: str | None = None,
        config: NetworkConfig | None = None,
        clock: Clock = system_clock,
        retry_tick: float = 1.0,
        log: EventLog | None = None,
        retention: Retention | None = None,
        refusal_pause: float = REFUSAL_PAUSE,
    ) -> None:
        self.database = database
        self.identity = identity
        self.name = name or identity.peer_id[:8]
        self.clock = clock
        self.log = log if log is not None else EventLog()
        self.message_queue = PersistentMessageQueue(database, clock=clock, log=self.log)
        self.network_store = NetworkStore(
            identity, self.contact, config=config, log=self.log, clock=clock
        )
        self.sessions = PeerSessions(identity, self.log, clock=clock)
        self.network_store.attach(self.sessions)
        self.progress = self.network_store.progress  # long operations, for the surfaces
        self.contact_book = ContactBook(
            database, identity, self.network_store, self.log, name=self.name, clock=clock
        )
        self.storage = StorageHealth(database, self.log)
        self.receiver = Receiver(
            database, self.sessions, self.network_store, self.log, clock=clock, storage=self.storage
        )
        self.sender = Sender(
            database,
            identity,
            self.message_queue,
            self.network_store,
            self.sessions,
            self.contact_book,
            self.log,
            clock=clock,
            retry_tick=retry_tick,
            storage=self.storage,
            refusal_pause=refusal_pause,
        )
        self.group_book = GroupBook(
            database, identity, self.sender, self.network_store, self.contact_book, self.log,
            clock=clock,
        )  # fmt: skip
        self.receiver.groups = GroupReceiving(self.group_book)
        self.pruner = Pruner(database, retention)
        self.housekeeping = Housekeeping(
            self.pruner, self.storage, self.log, clock=clock, sessions=self.sessions
        )
        self.room_session: RoomSession | None = None  # once join() was called
        self.scratch_dir: Path | None = None  # a scratch() profile's folder, deleted on close

    @classmethod
    def open(
        cls,
        path: str | Path,
        passphrase: str,
        *,
        name: str | None = None,
        kdf: KdfCost = KDF_MODERATE,
        config: NetworkConfig | None = None,
        clock: Clock = system_clock,
        **kwargs: Any,
    ) -> MessagesStore:
        """Open (or create) a profile; a new profile gets a fresh identity."""
        database = Database.open(path, passphrase, kdf=kdf, clock=clock)
        try:  # a failed open gives back what it took: the lock, the file, the tasks
            identity = database.own_identity()
            return cls(database, identity, name=name, config=config, clock=clock, **kwargs)
        except BaseException:
            database.close()
            raise

    @classmethod
    def scratch(
        cls,
        name: str = "scratch",
        *,
        config: NetworkConfig | None = None,
        directory: str | Path | None = None,
        **kwargs: Any,
    ) -> MessagesStore:
        """A throwaway profile for demos, notebooks and tests, deleted by :meth:`close` (or
        at interpreter exit: :mod:`volli_nb.app.scratch`).

        Its file lives in a fresh temporary folder (inside ``directory`` if given); the
        key derivation is the weakest (``KDF_MIN``: no protection against guessing), and
        ICE offers only 127.0.0.1 unless ``config`` says otherwise, so nothing leaves
        this machine.  ``kwargs`` go to :meth:`open` (``clock``, ``retry_tick``, …)."""
        folder = scratch.new_folder(name, directory)  # deleted at exit if close() never runs
        try:
            store = cls.open(
                folder / scratch.SCRATCH_FILE,
                scratch.SCRATCH_PASSPHRASE,
                name=name,
                kdf=KDF_MIN,
                config=config if config is not None else NetworkConfig(loopback_only=True),
                **kwargs,
            )
        except BaseException:
            scratch.remove(folder)
            raise
        store.scratch_dir = folder
        return store

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    def __repr__(self) -> str:
        return (
            f"<MessagesStore {self.name} peer_id={self.peer_id} "
            f"online={self.network_store.connected_peers()} "
            f"pending={len(self.message_queue.get_pending())}>"
        )

    # --- lifecycle ----------------------------------------------------------

    closed = False  # after close(): no more sending, pairing or joining

    def start(self) -> None:
        """Start the retry loop and the pruning timer on the running loop (idempotent)."""
        if self.closed:
            raise UsageError(
                f"this MessagesStore ({self.name}) is closed; open the profile again with "
                "MessagesStore.open(path, passphrase), or make a new one"
            )
        self.sender.start()
        self.housekeeping.start()

    async def close(self) -> None:
        """Close every connection (bounded) and stop the retry loop; the file stays
        (unless this is a :meth:`scratch` profile, whose folder is deleted)."""
        self.closed = True
        try:
            await self.sender.stop()
            await self.housekeeping.stop()
            await self.group_book.close()
            if self.room_session is not None:
                await self.room_session.close()
                self.room_session = None
            await self.network_store.disconnect()
        finally:  # even when a caller's timeout cuts the network part short
            self.database.close()
            if self.scratch_dir is not None:
                scratch.remove(self.scratch_dir)

    async def __aenter__(self) -> MessagesStore:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- contacts and pairing -----------------------------------------------

    def contact(self, peer_id: str) -> PublicIdentity | None:
        return self.contact_book.contact(peer_id)

    def add_contact(self, peer: PublicIdentity, *, name: str | None = None) -> str:
        """Pin ``peer``'s keys (KeyMismatch if the id is pinned to another key)."""
        return self.contact_book.add(peer, name=name)

    def safety_number(self, peer_id: str) -> str:
        return self.contact_book.safety_number(peer_id)

    async def create_pairing_code(self) -> str:
        """Start pairing: an offer code to paste into the other side's
        :meth:`accept_pairing_code`.  Works for new and known contacts alike."""
        self.start()
        return await self.contact_book.create_pairing_code()

    async def accept_pairing_code(self, code: str) -> str:
        """Accept the other side's offer code; returns an answer code to paste back."""
        self.start()
        return await self.contact_book.accept_pairing_code(code)

    async def complete_pairing(self, code: str) -> str:
        """Apply the answer code; returns the new contact's peer id."""
        return await self.contact_book.complete_pairing(code)

    async def join(
        self, room: str, url: str, *, auto_pair: bool = True, ssl: Any = None
    ) -> list[str]:
        """Join a room on a ``volli-signal`` server: publish presence, and pair with
        the peers there (and those who come later) unless ``auto_pair`` is False.
        Returns the peer ids already present.  For ``wss://``, ``ssl`` is a CA file or
        an ``ssl.SSLContext`` (default: the system's CAs); TURN credentials the server
        hands out configure TURN by themselves."""
        self.start()
        if self.room_session is None or self.room_session.url != url:
            if self.room_session is not None:
                await self.room_session.close()
            session = RoomSession(
                self.identity,
                self.network_store,
                self.log,
                url,
                add_contact=self.contact_book.add_member,
                wait_connected=self.wait_connected,
                auto_pair=auto_pair,
                ssl=ssl,
                name=self.name,
            )
            self.room_session = await session.start()
            self.group_book.watch(self.room_session)
        return await self.room_session.join(room)

    async def wait_connected(self, peer_id: str, timeout: float = 15.0) -> None:
        """Wait until the channel to ``peer_id`` (or a contact's name) is open and verified."""
        await self.network_store.wait_connected(self.contact_book.peer_of(peer_id), timeout)

    # --- sending ------------------------------------------------------------

    def conversation_with(self, peer_id: str) -> str:
        return self.contact_book.conversation_with(peer_id)

    async def send_message(
        self, conversation: str, content: str, *, compress: bool = True
    ) -> ChatMessage:
        """Encrypt, persist, and send now if the peer is online (else it waits in the outbox).

        ``conversation`` is a conversation id, a contact's peer id or name, or a group id (one
        body ciphertext, a key wrap per member: :mod:`.groups`).  A large text that
        compresses well is deflated before encryption (see :mod:`volli_nb.core.body` for the
        length-leak trade-off); ``compress=False`` keeps it as is."""
        self.start()
        if is_group_id(conversation):
            return await self.group_book.send_message(conversation, content, compress=compress)
        return await self.sender.send_message(conversation, content, compress=compress)

    async def sync_messages(self) -> SyncReport:
        """Force a sync attempt now: every pending message to a connected peer goes out."""
        self.start()
        return await self.sender.sync_messages()

    async def process_due(self) -> int:
        """Attempt every message whose retry time has come (the retry loop's body)."""
        return await self.sender.process_due()

    # --- groups (docs/groups.md) -------------------------------------------------

    async def create_group(self, name: str, members: list[str]) -> GroupInfo:
        """A new group of us (its first admin) and these contacts; returns it (its id:
        ``.group_id``, derived from our key and fresh randomness)."""
        self.start()
        return await self.group_book.create_group(name, members)

    async def add_member(self, group_id: str, peer_id: str, *, admin: bool = False) -> GroupInfo:
        """Add a contact to a group we administer (``admin``: as an admin too)."""
        self.start()
        return await self.group_book.add_member(group_id, peer_id, admin=admin)

    async def remove_member(self, group_id: str, peer_id: str) -> GroupInfo:
        """Remove a member: it receives no key for any later message."""
        self.start()
        return await self.group_book.remove_member(group_id, peer_id)

    async def set_admin(self, group_id: str, peer_id: str, admin: bool = True) -> GroupInfo:
        self.start()
        return await self.group_book.set_admin(group_id, peer_id, admin)

    async def leave_group(self, group_id: str) -> GroupInfo:
        self.start()
        return await self.group_book.leave_group(group_id)

    def groups(self) -> list[GroupInfo]:
        """Every group this profile holds."""
        return self.group_book.groups()

    def group(self, group_id: str) -> GroupInfo:
        """A group's current version: members, admins, version and record hash."""
        return self.group_book.group(group_id)

    # --- receiving and delivery -----------------------------------------------

    def on_message(self, handler: Callable[[ChatMessage], None]) -> Callable[[], None]:
        """Call ``handler`` once per new incoming message; returns the remover."""
        return self.receiver.on_message(handler)

    def on_delivered(self, handler: Callable[[bytes, str], None]) -> Callable[[], None]:
        """Call ``handler(message_id, recipient)`` on each signed ACK; returns the remover."""
        return self.sender.on_delivered(handler)

    async def wait_delivered(
        self,
        message_id: bytes | str,
        timeout: float = 15.0,
        *,
        to: Collection[str] | None = None,
    ) -> dict[str, str]:
        """Wait until every recipient (or those in ``to``) acknowledged ``message_id`` (its
        bytes, or their 32 hex digits); returns the statuses."""
        return await self.sender.wait_delivered(as_message_id(message_id), timeout, to)

    # --- what the UI reads --------------------------------------------------

    def verify(self) -> IntegrityReport:
        """Check the whole profile file (SQLite ``quick_check``, every sealed value)."""
        return self.database.verify()

    def on_storage(self, handler: Callable[[StorageStatus], None]) -> Callable[[], None]:
        """Call ``handler`` when storage starts or stops failing (a full disk)."""
        return self.storage.on_change(handler)

    def delivery_status(self, message_id: bytes | str) -> dict[str, str]:
        """Recipient → status of ``message_id`` (its bytes, or their 32 hex digits)."""
        return self.sender.delivery_status(as_message_id(message_id))

    def history(self, conversation: str, *, limit: int | None = None) -> list[ChatMessage]:
        if is_group_id(conversation):  # (nothing yet, before its first record came)
            conversation_id = conversation
        else:
            conversation_id, _ = self.contact_book.resolve(conversation)
        rows = self.database.history(conversation_id, limit=limit)
        names = self.contact_book.display_name
        return [chat_message(row, self.delivery_status, names) for row in rows]

    def conversations(self) -> list[Conversation]:
        return self.database.list_conversations()

    @property
    def contacts(self) -> list[Contact]:
        return self.database.list_contacts()


__all__ = [
    "MAX_TEXT_BYTES",
    "ChatMessage",
    "MessagesStore",
    "SyncReport",
    "dm_conversation_id",
]
