"""Stores whose group traffic a test carries by hand: real sessions, sealing, receivers and
SQLite files, no data channels, so a test decides what arrives where, and in what order.

Each pair of stores gets a session (the handshake's results, as a channel would hand
them over); :meth:`Courier.deliver` seals a sender's queued rows for one recipient under
that session, hands the bundle to the recipient's receiver, and marks what it
acknowledged delivered, as a signed ACK would."""

from __future__ import annotations

import asyncio
import itertools
import random
from pathlib import Path

from session_pairs import make_pair

from volli_nb.app.messages_store import MessagesStore
from volli_nb.core.crypto.envelope import bundle
from volli_nb.core.crypto.envelope_wire import parse_bundle
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.groups.wire import payload_on_wire
from volli_nb.core.netconfig import NetworkConfig
from volli_nb.core.protocol.events import FrameReceived, Verdict
from volli_nb.core.store.database import KDF_MIN, Database
from volli_nb.core.store.message_queue import QueuedMessage, Status


class Courier:
    def __init__(self, stores: list[MessagesStore]) -> None:
        self.stores = {s.name: s for s in stores}
        for seed, (a, b) in enumerate(itertools.combinations(stores, 2), start=1):
            a.add_contact(b.identity.public, name=b.name)
            b.add_contact(a.identity.public, name=a.name)
            pair = make_pair(a.identity, b.identity, seed)
            a.sessions.started(b.peer_id, pair.result_a)
            b.sessions.started(a.peer_id, pair.result_b)

    @classmethod
    def scratch(cls, tmp: Path, *names: str) -> Courier:
        """Stores with fixed identities (alice, bob, … from seeds 1, 2, …) and fixed group
        randomness, so every id, hash and rank is the same on every run."""
        stores = []
        for seed, name in enumerate(names, start=1):
            db = Database.open(tmp / f"{name}.sqlite", "pw", kdf=KDF_MIN)
            me = Identity(bytes([seed]) * 32, bytes([seed + 100]) * 32)
            db.save_identity(
                me.to_secret_bytes(), me.peer_id, me.public.identity_key, me.public.device_key
            )
            store = MessagesStore(db, me, name=name, config=NetworkConfig(loopback_only=True))
            store.group_book.random = random.Random(seed).randbytes
            stores.append(store)
        return cls(stores)

    def __getitem__(self, name: str) -> MessagesStore:
        return self.stores[name]

    def waiting(self, sender: str, recipient: str) -> list[QueuedMessage]:
        to = self[recipient].peer_id
        return [
            r
            for r in self[sender].message_queue.get_pending()
            if r.recipient == to and r.status != Status.DELIVERED
        ]

    async def deliver(
        self,
        sender: str,
        recipient: str,
        rows: list[QueuedMessage] | None = None,
        *,
        raw: bool = False,
    ) -> Verdict:
        """Seal ``rows`` (default: everything waiting) from ``sender`` for ``recipient``,
        in one bundle, and hand it over; then let the tasks it started run.  ``raw``: the
        payloads as queued, as a hostile sender's code would seal them (not as ours)."""
        s, r = self[sender], self[recipient]
        rows = self.waiting(sender, recipient) if rows is None else rows
        if not rows:
            return Verdict()
        verdict = r.receiver.frame(s.peer_id, self.frame(sender, recipient, rows, raw=raw))
        with s.database.transaction():
            for message_id in verdict.stored:
                s.message_queue.acknowledge(message_id, r.peer_id)
        await settle()
        return verdict

    def frame(
        self,
        sender: str,
        recipient: str,
        rows: list[QueuedMessage] | None = None,
        *,
        raw: bool = False,
    ) -> FrameReceived:
        """``rows`` (default: everything waiting) sealed in one bundle, as the recipient
        would receive it (not handed over)."""
        s, r = self[sender], self[recipient]
        rows = self.waiting(sender, recipient) if rows is None else rows
        sealed = []
        for row in rows:
            item, sessions = s.sessions.seal(
                [r.peer_id],
                conversation_id=row.conversation_id,
                message_id=row.message_id,
                counter=row.counter,
                timestamp_ms=int(s.clock() * 1000),
                plaintext=row.payload
                if raw
                else payload_on_wire(row.conversation_id, row.payload),  # as the app
            )
            sealed.append(item)
        return FrameReceived(sessions[r.peer_id], parse_bundle(bundle(s.identity, sealed)))

    async def flood(self, rounds: int = 6) -> None:
        """Deliver everything waiting, everywhere, until nothing is left (or ``rounds``)."""
        for _ in range(rounds):
            moved = False
            for a, b in itertools.permutations(self.stores, 2):
                if self.waiting(a, b):
                    await self.deliver(a, b)
                    moved = True
            if not moved:
                return

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self.stores.values()))


async def settle() -> None:
    """Let the tasks the receivers started (fetches, answers) queue their rows."""
    for _ in range(5):
        await asyncio.sleep(0)
