"""Profiles from before sessions, and profiles restored from an old copy.

``tests/data/profile-schema2-{alice,bob}.sqlite`` were written by main at 96531e5, the last
release that sealed every message to static keys (``tools/make_upgrade_fixtures.py``:
alice and bob paired, three messages delivered, then two more from alice left pending
while bob was away; passphrases "alice passphrase" / "bob passphrase", KDF_MIN).  Opened
by today's code they read their history, re-pair, and alice's pending messages reach
bob, under a session, exactly once; their ids, minted before ids named their sender,
are re-minted on the way (schema 4), the same way on both sides.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest
from netutil import open_store, pair
from test_network import arun

from volli_nb.app.messages_store import MessagesStore
from volli_nb.core.body import encode_body
from volli_nb.core.message_id import bound_to
from volli_nb.core.protocol.chunks import Reassembler
from volli_nb.lab.recording import Recording, key_reuse
from volli_nb.net.events import Delivered

pytestmark = pytest.mark.network
DATA = Path(__file__).parent / "data"


def _copy(name: str, tmp: Path) -> None:
    shutil.copy(DATA / f"profile-schema2-{name}.sqlite", tmp / f"{name}.sqlite")


def test_schema2_profiles_read_their_history_and_deliver_their_queue(tmp_path: Path) -> None:
    for name in ("alice", "bob"):
        _copy(name, tmp_path)

    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
        try:
            assert alice.contact(bob.peer_id) is not None  # the pairing survived
            before = [(m.text, m.status) for m in alice.history(bob.peer_id)]
            assert before == [
                ("hello bob", "delivered"),
                ("how are you?", "delivered"),
                ("fine, thanks", "received"),
                ("are you there?", "pending"),
                ("ping when back", "pending"),
            ]
            got: list[str] = []
            bob.on_message(lambda m: got.append(m.text))
            await pair(alice, bob)  # known contacts pair again; a session starts
            pending = [m for m in alice.history(bob.peer_id) if m.status == "pending"]
            for message in pending:
                await alice.wait_delivered(message.message_id)
            assert got == ["are you there?", "ping when back"]
            assert [m.text for m in bob.history(alice.peer_id)] == [t for t, _ in before]
            assert all(bound_to(m.message_id, alice.peer_id) for m in pending)
            await _resent_before_the_upgrade_is_a_duplicate(alice, bob)
            assert alice.verify().ok and bob.verify().ok
        finally:
            await asyncio.gather(alice.close(), bob.close())

    arun(main, timeout=90)


async def _resent_before_the_upgrade_is_a_duplicate(
    alice: MessagesStore, bob: MessagesStore
) -> None:
    """Both upgrades re-minted every id the same way, so had alice's ACK for "hello bob"
    been lost, the copy she sends again under her re-minted id is one bob holds: he
    acknowledges it without storing it twice."""
    ids = [m.message_id for m in alice.history(bob.peer_id)]
    assert ids == [m.message_id for m in bob.history(alice.peer_id)]
    (first, *_) = bob.history(alice.peer_id)
    assert first.text == "hello bob" and bound_to(first.message_id, alice.peer_id)
    keys = alice.sessions.get(bob.peer_id)
    assert keys is not None
    again = first.message_id
    acked = asyncio.get_running_loop().create_future()
    alice.network_store.on_event(
        lambda e: (
            acked.set_result(True)
            if isinstance(e, Delivered) and again in e.message_ids and not acked.done()
            else None
        )
    )
    sealed = keys.seal(
        conversation_id=first.conversation_id, message_id=again, counter=1,
        timestamp_ms=int(time.time() * 1000), plaintext=encode_body(first.text),
    )  # fmt: skip
    await alice.network_store.send_sealed(bob.peer_id, keys.session_id, sealed)
    await asyncio.wait_for(acked, 10)
    assert [m.text for m in bob.history(alice.peer_id)].count("hello bob") == 1


def test_a_sender_restored_from_an_old_copy_starts_a_fresh_session(tmp_path: Path) -> None:
    """Alice queues three messages while Bob is away, her file is backed up, they are
    delivered, then the backup comes back: her outbox holds them again.  The new channel
    gets a new session (nothing is resumed), she seals them again, Bob stores each once
    and acknowledges the copies, and no message key is used for two ciphertexts."""
    sent: list[bytes] = []

    def opened(name: str) -> MessagesStore:
        store = open_store(tmp_path, name)
        if name == "alice":  # what left Alice's channel, across all her runs
            store.network_store.trace.taps.append(
                lambda d, _p, f: sent.append(f) if d == "out" else None
            )
        return store

    async def main() -> None:
        alice, bob = opened("alice"), opened("bob")
        got: list[str] = []
        await pair(alice, bob)
        first = await alice.send_message(bob.peer_id, "before the backup")
        await alice.wait_delivered(first.message_id)
        await bob.close()
        queued = [await alice.send_message(bob.peer_id, f"queued {i}") for i in range(3)]
        await alice.close()
        shutil.copy(tmp_path / "alice.sqlite", tmp_path / "backup.sqlite")  # a clean backup
        alice, bob = opened("alice"), opened("bob")
        bob.on_message(lambda m: got.append(m.text))
        await pair(alice, bob)
        first_session = alice.sessions.get(bob.peer_id)
        for message in queued:
            await alice.wait_delivered(message.message_id)
        await alice.close()
        shutil.copy(tmp_path / "backup.sqlite", tmp_path / "alice.sqlite")  # the restore
        alice = opened("alice")
        try:
            assert {alice.delivery_status(m.message_id)[bob.peer_id] for m in queued} == {"pending"}
            await pair(alice, bob)
            second_session = alice.sessions.get(bob.peer_id)
            assert first_session is not None and second_session is not None
            assert second_session.session_id != first_session.session_id  # a fresh handshake
            for message in queued:
                await alice.wait_delivered(message.message_id)  # the copies were acknowledged
            assert got == ["queued 0", "queued 1", "queued 2"]  # each stored once
            assert [m.text for m in bob.history(alice.peer_id)] == [
                "before the backup", "queued 0", "queued 1", "queued 2"
            ]  # fmt: skip
            rec, joiner = Recording(), Reassembler()
            for frame in sent:
                rec.add("out", frame, joiner)
            bundles = rec.bundles()
            assert len(bundles) >= 3 and key_reuse(bundles) == []
        finally:
            await asyncio.gather(alice.close(), bob.close())

    arun(main, timeout=90)
