"""A fresh handshake on an open channel, between real aiortc peers.

A message key missing for a message never stored means the two states went out of step
(here: the skipped key expired): the receiver refuses it (``key_unavailable``) and
re-keys the channel; both sides switch to a new session, the sender seals the message
again, and it arrives once.  The event log says so."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from netutil import open_store, pair
from test_network import arun

from volli_nb.app.chat import dm_conversation_id
from volli_nb.core.body import encode_body
from volli_nb.core.message_id import new_message_id

pytestmark = pytest.mark.network


def test_a_missing_key_for_an_unseen_message_rekeys_the_channel(tmp_path: Path) -> None:
    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
        try:
            await pair(alice, bob)
            mine, theirs = alice.sessions.get(bob.peer_id), bob.sessions.get(alice.peer_id)
            assert mine is not None and theirs is not None
            first_session = mine.session_id
            conversation = dm_conversation_id(alice.peer_id, bob.peer_id)
            now = int(time.time() * 1000)

            def sealed(text: str):  # type: ignore[no-untyped-def]
                return mine.seal(
                    conversation_id=conversation, message_id=new_message_id(alice.peer_id),
                    counter=1, timestamp_ms=now, plaintext=encode_body(text),
                )  # fmt: skip

            late, on_time = sealed("held back"), sealed("on time")
            await alice.network_store.send_sealed(bob.peer_id, mine.session_id, on_time)
            for _ in range(200):  # bob stored "on time" and holds the key for "held back"
                if theirs.state.skipped:
                    break
                await asyncio.sleep(0.02)
            assert theirs.expire(now + 2 * 3600 * 1000) == 1  # its key expires
            await alice.network_store.send_sealed(bob.peer_id, mine.session_id, late)
            for _ in range(300):  # the refusal, then the new handshake on the open channel
                new_a, new_b = alice.sessions.get(bob.peer_id), bob.sessions.get(alice.peer_id)
                if new_a and new_b and new_a.session_id == new_b.session_id != first_session:
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("no fresh handshake after the missing key")
            log = " ".join(e.message for e in bob.log.entries())
            assert "re-keying" in log and "re-keyed: new session" in log
            assert any(e.data.get("kind") == "session.rekeyed" for e in alice.log.entries())
            after = await alice.send_message(bob.peer_id, "after the re-key")
            await alice.wait_delivered(after.message_id)
            texts = [m.text for m in bob.history(alice.peer_id)]
            assert texts == ["on time", "after the re-key"]  # "held back" was never stored
            assert alice.network_store.is_connected(bob.peer_id)  # the same channel
        finally:
            await asyncio.gather(alice.close(), bob.close())

    arun(main, timeout=60)
