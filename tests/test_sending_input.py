"""What a person types into ``send_message`` and friends: each mistake is a typed error
that says what to pass, raised before anything is written (from a newcomer's review).

No network: bob is a contact who is offline, so a message that is accepted waits in the
outbox, and one that is refused leaves nothing there.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from netutil import open_store

from volli_nb.app.messages_store import MessagesStore
from volli_nb.base.errors import NotFound, TransportClosed, UsageError
from volli_nb.core.body import MAX_TEXT_BYTES
from volli_nb.core.crypto.identity import Identity


def with_bob(tmp_path: Path, check: object) -> None:
    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice"), Identity.generate()
        alice.add_contact(bob.public, name="Bob")
        try:
            await check(alice, bob.peer_id)  # type: ignore[operator]
        finally:
            await alice.close()

    asyncio.run(asyncio.wait_for(main(), 30))


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "not NoneType"),
        (b"hi", "not bytes"),
        ("", "empty"),
        (" \n\t", "empty"),
        ("y" * (MAX_TEXT_BYTES + 1), "at most 12 MiB"),  # compresses to a few KiB
    ],
)
def test_a_message_that_cannot_be_delivered_is_refused_before_it_is_queued(
    tmp_path: Path, content: object, says: str
) -> None:
    async def check(alice: MessagesStore, bob: str) -> None:
        with pytest.raises(UsageError, match=says):
            await alice.send_message(bob, content)  # type: ignore[arg-type]
        assert alice.message_queue.get_pending() == []

    with_bob(tmp_path, check)


def test_the_longest_text_that_is_delivered_is_accepted(tmp_path: Path) -> None:
    async def check(alice: MessagesStore, bob: str) -> None:
        sent = await alice.send_message(bob, "y" * MAX_TEXT_BYTES)
        assert alice.delivery_status(sent.message_id) == {bob: "pending"}

    with_bob(tmp_path, check)


def test_a_contact_is_named_by_its_name_in_any_case(tmp_path: Path) -> None:
    async def check(alice: MessagesStore, bob: str) -> None:
        sent = await alice.send_message("bob", "to bob, by name")
        assert alice.delivery_status(sent.message_id) == {bob: "pending"}
        assert [m.text for m in alice.history("BOB")] == ["to bob, by name"]
        with pytest.raises(NotFound, match="no conversation, contact or contact name 'carol';"):
            await alice.send_message("carol", "nobody is called carol")
        with pytest.raises(NotFound, match=r"name 'bbo' \(did you mean 'Bob'\?\); the store's"):
            await alice.send_message("bbo", "a typo")  # a student's typo: which was meant
        other = Identity.generate()
        alice.add_contact(other.public, name="bob")  # a second bob: the name is ambiguous
        with pytest.raises(UsageError, match="2 contacts are called 'bob'; pass a peer id"):
            await alice.send_message("bob", "which bob?")
        assert len(alice.message_queue.get_pending()) == 1

    with_bob(tmp_path, check)


def test_a_message_id_is_its_bytes_or_their_hex_never_the_short_id(tmp_path: Path) -> None:
    async def check(alice: MessagesStore, bob: str) -> None:
        sent = await alice.send_message(bob, "hello")
        assert alice.delivery_status(sent.message_id.hex()) == {bob: "pending"}
        assert alice.delivery_status(sent.message_id.hex().upper()) == {bob: "pending"}
        short = sent.message_id.hex()[:8]
        with pytest.raises(UsageError, match="only names it in lists and logs"):
            await alice.wait_delivered(short, timeout=0.1)
        with pytest.raises(UsageError, match="16 bytes"):
            alice.delivery_status(b"\x01" * 8)

    with_bob(tmp_path, check)


def test_a_closed_store_says_so_and_raises_no_storage_alarm(tmp_path: Path) -> None:
    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice"), Identity.generate()
        alice.add_contact(bob.public, name="bob")
        await alice.close()
        with pytest.raises(UsageError, match=r"this MessagesStore \(alice\) is closed"):
            await alice.send_message(bob.peer_id, "too late")
        with pytest.raises(UsageError, match="is closed"):
            await alice.create_pairing_code()
        assert not [e for e in alice.log.entries() if "storage" in e.message]

    asyncio.run(asyncio.wait_for(main(), 30))


def test_waiting_for_a_contact_and_its_safety_number_take_its_name(tmp_path: Path) -> None:
    """``send_message("bob", …)`` and ``history("bob")`` took a name, but
    ``wait_connected("bob")`` waited for a peer id "bob" (and, paired and online, said
    "no connection; pair first"), and ``safety_number("bob")`` said "no contact"."""

    async def check(alice: MessagesStore, bob: str) -> None:
        assert alice.safety_number("bob") == alice.safety_number(bob)
        with pytest.raises(TransportClosed, match=f"no verified connection to {bob} "):
            await alice.wait_connected("Bob", timeout=0.1)
        with pytest.raises(NotFound, match="no contact 'carol'"):
            alice.safety_number("carol")

    with_bob(tmp_path, check)
