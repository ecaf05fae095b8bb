"""Bundling between real aiortc peers: a burst shares frames and signed ACKs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from netutil import open_store, pair

from volli_nb.core.crypto.channel_keys import ChannelKeys
from volli_nb.core.crypto.envelope import Sealed
from volli_nb.core.store.history import ReceivedRow

pytestmark = pytest.mark.network


@pytest.mark.clean_link("counts the frames and ACKs of one burst")
def test_a_burst_of_small_messages_shares_frames_and_acks(tmp_path: Path) -> None:
    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
        try:
            await pair(alice, bob)
            got: list[str] = []
            bob.on_message(lambda m: got.append(m.text))
            texts = [f"message {i:03d} " + "x" * 90 for i in range(60)]
            sends = [alice.send_message(bob.peer_id, t) for t in texts]
            sent = await asyncio.gather(*sends)  # a burst: concurrent calls
            async with asyncio.timeout(20):
                for message in sent:
                    await alice.wait_delivered(message.message_id)
            assert got == texts  # each once, in order
            a = alice.network_store.session_stats(bob.peer_id)
            b = bob.network_store.session_stats(alice.peer_id)
            assert a is not None and b is not None
            assert a.messages_out == 60 and b.messages_in == 60
            assert a.bundles_out >= 1 and b.bundles_in == a.bundles_out
            # 60 messages, but far fewer message-carrying frames and signed ACKs.
            assert a.acks_in <= 5 and b.acks_out == a.acks_in
            assert [m.status for m in alice.history(bob.peer_id)] == ["delivered"] * 60
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_without_bundling_each_message_is_its_own_frame(tmp_path: Path) -> None:
    async def main() -> None:
        alice = open_store(tmp_path, "alice", bundle=False)
        bob = open_store(tmp_path, "bob", bundle=False)
        try:
            await pair(alice, bob)
            sent = [await alice.send_message(bob.peer_id, f"m{i}") for i in range(20)]
            for message in sent:
                await alice.wait_delivered(message.message_id, timeout=20)
            a = alice.network_store.session_stats(bob.peer_id)
            assert a is not None and a.bundles_out == a.messages_out == 20  # a bundle each
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_group_message_is_sealed_once_for_all_members(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from volli_nb.app import peer_sessions

    seals: list[int] = []
    real_seal = peer_sessions.seal_for

    def counting_seal(channels: Sequence[ChannelKeys], **kw: Any) -> Sealed:
        seals.append(len(channels))
        return real_seal(channels, **kw)

    monkeypatch.setattr(peer_sessions, "seal_for", counting_seal)

    async def main() -> None:
        alice = open_store(tmp_path, "alice")
        bob, carol = open_store(tmp_path, "bob"), open_store(tmp_path, "carol")
        try:
            await pair(alice, bob)
            await pair(alice, carol)
            for one, other in ((bob, carol), (carol, bob)):  # members know each other
                one.add_contact(other.identity.public)
            members = [alice.peer_id, bob.peer_id, carol.peer_id]
            for store in (alice, bob, carol):  # until groups exist, members set them up
                store.database.ensure_conversation("group-1", members)
            got: list[str] = []
            for store in (bob, carol):
                store.on_message(lambda m: got.append(m.text))
            sent = await alice.send_message("group-1", "to both of you")
            await alice.wait_delivered(sent.message_id, timeout=20)
            assert sorted(got) == ["to both of you"] * 2
            assert seals == [2]  # one envelope for two recipients, not one seal each
        finally:
            await asyncio.gather(alice.close(), bob.close(), carol.close())

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_bundle_that_fails_to_commit_is_offered_again_and_never_acked(tmp_path: Path) -> None:
    """The commit of the frame that holds the message fails (a locked database): nothing
    is acknowledged, the ratchet state is not adopted, and the resend (sealed again after
    the ACK timeout, under the next key) is stored, not dropped as a duplicate.

    The failure is injected into exactly that frame's write (a bundle's messages are
    written together just before its commit; a heartbeat frame writes nothing, so it
    cannot use the failure up)."""

    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice", ack_timeout=1.0), open_store(tmp_path, "bob")
        try:
            await pair(alice, bob)
            real_store = bob.database.insert_received_many
            failures = [1]

            def insert_received_many(rows: Sequence[ReceivedRow]) -> None:
                if failures:  # the write of the message's frame, just before its commit
                    failures.pop()
                    raise OSError("database is locked")  # unexpected: not even a StorageError
                real_store(rows)

            bob.database.insert_received_many = insert_received_many  # type: ignore[method-assign]
            got: list[str] = []
            bob.on_message(lambda m: got.append(m.text))
            first = await alice.send_message(bob.peer_id, "lost to a locked database")
            for _ in range(200):  # wait for the failed commit (the condition, not a sleep)
                if not failures:
                    break
                await asyncio.sleep(0.05)
            assert not failures, "the message's frame never reached bob's store"
            assert got == [] and alice.delivery_status(first.message_id)[bob.peer_id] == "pending"
            await alice.wait_delivered(first.message_id, timeout=10)  # the retry after 1 s
            assert got == ["lost to a locked database"]
        finally:
            await asyncio.gather(alice.close(), bob.close())

    asyncio.run(asyncio.wait_for(main(), 60))
