"""MessagesStore.join: presence, automatic pairing, and re-pairing after a failure."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from netutil import open_store
from test_network import arun
from test_signaling import until

from volli_nb.net.signaling.server import SignalingServer

pytestmark = pytest.mark.network


def test_two_stores_pair_through_the_server_and_chat(tmp_path: Path) -> None:
    async def main() -> None:
        async with SignalingServer(port=0) as server:
            alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
            assert await alice.join("lab", server.url) == []
            assert await bob.join("lab", server.url) == [alice.peer_id]
            await asyncio.gather(
                alice.wait_connected(bob.peer_id), bob.wait_connected(alice.peer_id)
            )
            assert alice.room_session.presence["lab"] == {bob.peer_id}
            # Each knows the other by the name it gave (a student sees "bob", not an id),
            # and can send by it.
            assert alice.contact_book.display_name(bob.peer_id) == "bob"
            assert bob.contact_book.display_name(alice.peer_id) == "alice"
            one = await alice.send_message("bob", "via the room")
            two = await bob.send_message(alice.peer_id, "right back")
            await alice.wait_delivered(one.message_id)
            await bob.wait_delivered(two.message_id)
            assert sorted(m.text for m in bob.history(alice.peer_id)) == [
                "right back",
                "via the room",
            ]
            await asyncio.gather(alice.close(), bob.close())

    arun(main)


def test_pair_only_on_request(tmp_path: Path) -> None:
    async def main() -> None:
        async with SignalingServer(port=0) as server:
            alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
            await alice.join("lab", server.url, auto_pair=False)
            await bob.join("lab", server.url, auto_pair=False)
            await until(lambda: bob.peer_id in alice.room_session.online)
            await asyncio.sleep(0.3)
            assert not alice.network_store.is_connected(bob.peer_id)
            await alice.room_session.pair(bob.peer_id)
            await bob.wait_connected(alice.peer_id)
            await asyncio.gather(alice.close(), bob.close())

    arun(main)


def test_broken_connection_re_pairs_and_queued_messages_flow_once(tmp_path: Path) -> None:
    async def main() -> None:
        async with SignalingServer(port=0) as server:
            alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
            await alice.join("lab", server.url)
            await bob.join("lab", server.url)
            await asyncio.gather(
                alice.wait_connected(bob.peer_id), bob.wait_connected(alice.peer_id)
            )
            got: list[str] = []
            bob.on_message(lambda m: got.append(m.text))
            # Cut: each side drops the connection; nobody pastes anything afterwards.
            await asyncio.gather(alice.network_store.disconnect(), bob.network_store.disconnect())
            sent = [await alice.send_message(bob.peer_id, f"during the cut {i}") for i in range(3)]
            for message in sent:
                await alice.wait_delivered(message.message_id, timeout=30)
            assert sorted(got) == [f"during the cut {i}" for i in range(3)]
            assert len(bob.history(alice.peer_id)) == 3
            await asyncio.gather(alice.close(), bob.close())

    arun(main, timeout=90)


def test_a_members_name_is_shown_harmless_and_never_renames_a_contact(tmp_path: Path) -> None:
    """Names in presence are claims: a terminal escape or a bidi override is stripped, and
    a contact someone already named keeps its name."""
    from volli_nb.core.crypto.identity import Identity
    from volli_nb.net.signaling.client import SignalingClient

    async def main() -> None:
        async with SignalingServer(port=0) as server:
            alice = open_store(tmp_path, "alice")
            mallory, known = Identity.generate(), Identity.generate()
            alice.add_contact(known.public, name="Known")
            await alice.join("lab", server.url, auto_pair=False)
            clients = [
                SignalingClient(mallory, server.url, lambda _f: None, name="\x1b[2Jbob\u202e"),
                SignalingClient(known, server.url, lambda _f: None, name="someone else"),
            ]
            for client in clients:
                await client.connect()
                await client.join("lab")
            await until(lambda: len(alice.room_session.presence["lab"]) == 2)
            assert alice.contact_book.display_name(mallory.peer_id) == "[2Jbob"
            assert alice.contact_book.display_name(known.peer_id) == "Known"
            for client in clients:
                await client.close()
            await alice.close()

    arun(main)


def test_an_offer_read_before_or_during_close_makes_no_connection_after_it(
    tmp_path: Path,
) -> None:
    """The signal handler's tasks are the session's: close() cancels those not done and
    drops a signal read from then on, so no peer connection appears after close (the
    store disconnects its links once, right after closing the session)."""

    async def main() -> None:
        async with SignalingServer(port=0) as server:
            alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
            await alice.join("lab", server.url, auto_pair=False)
            await bob.join("lab", server.url, auto_pair=False)
            await until(lambda: alice.peer_id in bob.room_session.online)
            offer = await alice.network_store.connect_to_peer(bob.peer_id)
            session = bob.room_session
            assert session is not None
            frame = {"type": "signal", "from": alice.peer_id}
            frame["data"] = {"kind": "offer", "sdp": offer.sdp}
            session._on_frame(frame)  # read just before close
            await session.close()
            session._on_frame(frame)  # read as it closed (the reader's last frame)
            session.request_pair(alice.peer_id)  # a group's lazy mesh, as it closed
            assert not session._wants and all(t.done() for t in session._pairing.values())
            handlers = [
                t
                for t in asyncio.all_tasks()
                if t.get_coro().__qualname__ == "RoomSession._on_signal"  # type: ignore[union-attr]
            ]
            await asyncio.wait_for(asyncio.gather(*handlers, return_exceptions=True), 15)
            assert alice.peer_id not in bob.network_store.peers
            assert bob.log.entries(text="created answer") == []
            await asyncio.gather(alice.close(), bob.close())

    arun(main)
