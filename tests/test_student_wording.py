"""What a student reads (second review): hints name what exists where they read them,
counts agree with their nouns, the event log names a contact by its name.

No network: bob is an offline contact; the events are the network store's own.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from netutil import open_store

from volli_nb.base.errors import NotFound, ProfileInUse
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.store.integrity import IntegrityReport
from volli_nb.net.events import PeerOffline
from volli_nb.ui.group_commands import group_helpers, group_magic, magic_words

NO_GROUP = "grp-" + "a" * 24


def test_not_found_names_what_lists_them_in_every_prompt(tmp_path: Path) -> None:
    """The store is ``messagesStore`` in volli-shell and ``alice`` in a notebook: a hint
    naming ``store.contacts`` or ``groups()`` pointed at nothing there."""

    async def main() -> None:
        alice = open_store(tmp_path, "alice")
        bob = Identity.generate()
        alice.add_contact(bob.public, name="Bob")
        try:
            with pytest.raises(NotFound, match=r"the store's \.contacts and \.conversations\(\)"):
                alice.history("nobody")
            with pytest.raises(NotFound, match=r"no contact 'nobody'; the store's \.contacts"):
                alice.safety_number("nobody")
            with pytest.raises(NotFound, match=r"the store's \.groups\(\) lists them"):
                alice.group(NO_GROUP)
            with pytest.raises(NotFound, match=r"'nosuch'; %volli group lists them"):
                group_magic(alice, ["show", "nosuch"])
            with pytest.raises(NotFound, match=r"'nosuch'; groups\(\) lists them"):
                group_helpers(alice)["group"]("nosuch")  # volli-shell's own helper

            # notebook 04's event log: "Bob offline", not his peer id.
            alice.network_store._events.emit(PeerOffline(bob.peer_id, "no heartbeat"))
            (entry,) = [e for e in alice.log.entries(category="queue") if "offline" in e.message]
            assert entry.message == "Bob offline: messages wait in the outbox"
            assert entry.peer_id == bob.peer_id  # still filterable by id
        finally:
            await alice.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_verify_counts_one_sealed_value_in_the_singular() -> None:
    assert "; 1 sealed value opens and sits in its own row)" in str(
        IntegrityReport("p.sqlite", ("ok",), 1)
    )
    assert "; 3 sealed values open and sit in their own rows)" in str(
        IntegrityReport("p.sqlite", ("ok",), 3)
    )


def test_a_profile_opened_twice_in_one_process_suggests_a_cell_run_twice(tmp_path: Path) -> None:
    async def main() -> None:
        first = open_store(tmp_path, "bob")
        try:
            with pytest.raises(ProfileInUse, match=r"a cell run twice\? its first run's store"):
                open_store(tmp_path, "bob")
        finally:
            await first.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_group_send_keeps_the_text_as_typed() -> None:
    """``%volli group send G TEXT…``: an apostrophe in TEXT was an unclosed shell quote."""
    assert magic_words("send study it's me,  all") == ["send", "study", "it's me,  all"]
    assert magic_words('send "study hall" it\'s') == ["send", "study hall", "it's"]
    assert magic_words("send study") == ["send", "study"]
    assert magic_words("add study 'Bob B' admin") == ["add", "study", "Bob B", "admin"]
    assert magic_words("") == []
