"""Groups on the surfaces: the groups panel, the chat picker, the shell's helpers, the
sequence diagram's fan-out (real stores and receivers; the courier carries the frames)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from group_courier import Courier

from volli_nb.ui.group_commands import find_group, group_helpers, group_magic
from volli_nb.ui.shell_helpers import chat_helpers, resolve
from volli_nb.ui.widgets import models
from volli_nb.ui.widgets.groups_panel import GroupsPanel, delivery_table, groups_table
from volli_nb.ui.widgets.sequence_model import SequenceModel


def test_panel_picker_shell_and_diagram_show_a_group(tmp_path: Path) -> None:
    async def main() -> None:
        c = Courier.scratch(tmp_path, "alice", "bob", "carol")
        alice, bob, carol = c["alice"], c["bob"], c["carol"]
        try:
            shell = {**group_helpers(alice), **chat_helpers(alice)}
            info = await shell["new_group"]("study", "bob", "carol")  # names resolve to ids
            gid = info.group_id
            await c.flood()
            assert find_group(alice, "STUDY") == gid == resolve(alice, "study")
            sent = await shell["send"]("study", "hello study group")
            await c.deliver("alice", "bob")  # carol's copy still waits: offline
            await bob.send_message(gid, "bob here")
            await c.deliver("bob", "alice")

            listing = repr(shell["groups"]())
            assert "study" in listing and info.record_hash[:8] in listing and "admin" in listing
            shown = repr(shell["group"]("study"))
            assert "version 1" in shown and "bob" in shown and "carol" in shown
            delivery = delivery_table(alice, gid)
            mine = next(r for r in delivery.rows if r["message"] == "hello study group")
            assert (mine["bob"], mine["carol"]) == ("✓", "…")  # per member
            assert "me: hello study group" in repr(shell["history"]("study"))

            panel = GroupsPanel(alice)
            page = panel.render()
            for text in ("Groups", "study", info.record_hash[:8], "version 1", "✓", "…"):
                assert text in page, text
            panel.close()
            assert groups_table(carol).rows[0]["you"] == "member"
            labels = [models.conversation_label(alice, x) for x in alice.conversations()]
            assert "study (group)" in labels  # the chat panel's picker

            removed = await shell["remove"]("study", "carol")
            assert removed.version == 2
            await c.flood()
            assert groups_table(carol).rows[0]["you"] == "removed"

            what, work, _ = group_magic(alice, ["send", "study", "after", "carol"])
            assert work is not None and what.startswith("send_message")
            await work
            model = SequenceModel()
            model.extend(alice.log)
            labels = [a.label for a in model.arrows]
            assert any("1 body, 0 key wrap(s)" in label for label in labels)  # no channel here
            assert any("enqueue" in label and "×2" in label for label in labels)
            assert any(label.startswith("record v2") for label in labels)
            assert sent.conversation_id == gid
        finally:
            await c.close()

    asyncio.run(asyncio.wait_for(main(), 60))
