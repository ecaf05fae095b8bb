"""Panel models and widgets over real stores: rows and states, and how they change."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from netutil import open_store, pair
from test_network import arun

from volli_nb.base.clock import VirtualClock
from volli_nb.core.crypto.identity import Identity
from volli_nb.ui.widgets import (
    ChatPanel,
    Dashboard,
    EventLogPanel,
    QueuePanel,
    candidates_table,
    chat_lines,
    events_table,
    peers_table,
    queue_table,
)


def test_queue_model_counts_down_and_changes_with_the_store(tmp_path: Path) -> None:
    async def main() -> None:
        clock = VirtualClock(1_800_000_000.0)
        store = open_store(tmp_path, "alice", clock=clock)
        ghost = Identity.generate()
        store.add_contact(ghost.public, name="ghost")
        assert queue_table(store, clock()).rows == []
        assert "nothing waits" in queue_table(store, clock()).to_html()  # not a bare "none"
        await store.send_message(ghost.peer_id, "anyone?")
        (row,) = queue_table(store, clock()).rows
        assert (row["status"], row["attempts"], row["next retry"]) == ("pending", 1, "in 1.0 s")
        assert row["last error"] == "peer offline"
        assert row["to"].lines == ("ghost", ghost.peer_id[:8]) and row["to name"].startswith(
            "ghost"
        )
        assert row["message"].lines[0] == "'anyone?'"
        clock.advance(0.4)
        assert queue_table(store, clock()).rows[0]["next retry"] == "in 0.6 s"
        for step in (1, 5, 15, 60):
            clock.advance(step)
            await store.process_due()
        (row,) = queue_table(store, clock()).rows
        assert row["status"] == "stuck" and row["next retry"] == "stuck: retry by hand"
        panel = QueuePanel(store)
        assert "stuck" in panel._repr_html_()
        panel.row_id.value = row["id"]
        panel.discard.click()  # not confirmed: nothing happens
        assert "tick" in panel.status.value and queue_table(store, clock()).rows
        panel.retry_stuck.click()
        assert queue_table(store, clock()).rows[0]["status"] == "pending"
        panel.confirm.value = True
        panel.discard.click()
        assert queue_table(store, clock()).rows == []
        assert "nothing waits" in panel.view.value
        panel.close()
        await store.close()

    arun(main)


@pytest.mark.network
def test_peer_ice_chat_and_event_models_for_paired_stores(tmp_path: Path) -> None:
    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
        empty = peers_table(alice, 0.0)
        assert empty.rows == []
        await pair(alice, bob)
        sent = await alice.send_message(bob.peer_id, "hello")
        await alice.wait_delivered(sent.message_id)
        await asyncio.sleep(1.2)  # a heartbeat round trip for the RTT column
        table = peers_table(alice, alice.clock())
        (row,) = table.rows
        assert row["peer"] == bob.peer_id and row["name"] == "bob"
        assert row["peer"].lines == ("bob", bob.peer_id[:8])  # the name over the short id
        assert (row["verified"], row["connection"]) == ("yes", "connected")
        assert row["connection"].lines == ("connected", "ICE completed")
        assert row["selected pair"].startswith("host 127.0.0.1:")
        assert row["selected pair"].lines[1].startswith("↔ host 127.0.0.1:")  # two short lines
        assert row["rtt"].endswith("ms")
        # bytes as B under 1,000, else KB (one sealed "hello" and the handshake: about 800)
        assert re.fullmatch(r"in 0 msgs, \d+ B; out 1 msg, (\d+ B|[\d.]+ KB)", row["traffic"])
        assert row["link"].lines == ("ACK wait 3 s", "stalls 0%", "1 bundle, 1 ACK")
        assert row["link"] == "ACK wait 3 s · stalls 0% · 1 msg in 1 bundle, 1 ACK"
        assert "warning" not in table.columns and "presence" not in table.columns  # none
        assert f'title="{bob.peer_id}"' in table.to_html()
        ice = candidates_table(alice)
        assert ice.rows and 0 in ice.highlight and ice.rows[0]["selected"] == "✔"
        assert ice.rows[0]["peer"].lines == ("bob", bob.peer_id[:8])
        assert {r["side"] for r in ice.rows} == {"local", "remote"}
        assert "volli-selected" in ice.to_html()
        assert ice.title == "ICE candidates · no relay candidate (no TURN server configured)"
        conversation = alice.conversation_with(bob.peer_id)
        assert chat_lines(alice, conversation) == ["me: hello ✓"]
        assert chat_lines(bob, conversation) == ["alice: hello"]  # the name, not the id
        assert any("channel binding verified" in r["message"] for r in events_table(alice.log).rows)
        assert all(r["category"] == "ice" for r in events_table(alice.log, category="ice").rows)
        chat = ChatPanel(alice)
        assert chat.conversation.options == ((f"bob ({bob.peer_id[:8]})", conversation),)
        assert "dm-" not in chat.view.value.replace(f"title='{conversation}'", "")
        chat.text.value = "typed in the panel"
        await chat._send()
        assert "typed in the panel" in chat.view.value
        dashboard = Dashboard(alice).start()
        dashboard.refresh()
        assert [dashboard.widget.get_title(i) for i in range(7)] == [
            "Peers",
            "ICE",
            "Queue",
            "Chat",
            "Groups",
            "Events",
            "Sequence",
        ]
        await asyncio.sleep(0.1)
        log_panel = EventLogPanel(alice)
        log_panel.filter.value = "binding"
        assert "binding" in log_panel.view.value and "download JSON" in log_panel.download.value
        await alice.network_store.disconnect(bob.peer_id)
        assert peers_table(alice, 0.0).rows[0]["connection"] == "offline"  # a contact, offline
        dashboard.close()
        await asyncio.gather(alice.close(), bob.close())

    arun(main)


def test_a_refused_send_or_sync_in_a_panel_says_why(tmp_path: Path) -> None:
    """The chat's send and the queue's sync now buttons run as tasks: a refusal (here: the
    store was closed by the notebook's last cell) was lost, and nothing seemed to happen."""

    async def main() -> None:
        alice = open_store(tmp_path, "alice")
        alice.add_contact(Identity.generate().public, name="bob")
        chat, queue = ChatPanel(alice), QueuePanel(alice)
        await alice.close()
        await queue._sync()
        assert "<b>UsageError</b>: this MessagesStore (alice) is closed" in queue.status.value
        chat.text.value = "anyone there?"
        await chat._send()
        assert "not sent: UsageError: this MessagesStore (alice) is closed" in chat.status.value
        assert chat.text.value == "anyone there?"  # to send again once it can go

    arun(main)


def test_the_chat_panel_opens_on_the_newest_conversation(tmp_path: Path) -> None:
    """Notebook 03b after a kernel restart on the other side: a new pairing makes a new
    contact of the same name, and the chat panel opened on the oldest conversation (the
    identity left behind, offline for good), so what a student typed never arrived."""

    async def main() -> None:
        alice = open_store(tmp_path, "alice")
        try:
            for _ in range(2):  # the same student, before and after a restart
                alice.add_contact(Identity.generate().public, name="ana")
            newest = alice.conversations()[-1]
            chat = ChatPanel(alice)
            assert chat.conversation.value == newest.id
            assert f"title='{newest.id}'" in chat.view.value
        finally:
            await alice.close()

    arun(main)
