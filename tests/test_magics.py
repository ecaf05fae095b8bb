"""%load_ext volli_nb and every %volli magic in a real ipykernel (jupyter_client).

Magics that wait (pair, sync) display a placeholder and update it from a task on the
kernel's running loop, so this client follows ``update_display_data`` messages by
display id, whichever cell they arrive during.
"""

from __future__ import annotations

import contextlib
import queue
import re
import time
from pathlib import Path
from typing import Any

import pytest
from IPython.display import HTML
from jupyter_client.blocking.client import BlockingKernelClient
from kernels import execute, kernel, text_of

CODE = r"(volli2\.[A-Za-z0-9_-]+\.[a-z2-7]{8})"
PEER_ID = r"[a-z2-7]{16}"


class Client:
    """Runs cells; remembers the latest content of every display id it has seen."""

    def __init__(self, kc: BlockingKernelClient) -> None:
        self.kc = kc
        self.displays: dict[str, str] = {}

    def _record(self, msg: dict[str, Any]) -> None:
        content = msg["content"]
        display_id = content.get("transient", {}).get("display_id")
        if display_id and msg["msg_type"] in ("display_data", "update_display_data"):
            self.displays[display_id] = text_of(content["data"])

    def run(self, code: str, timeout: float = 60.0) -> tuple[str, list[str]]:
        """Run ``code``; return what it printed/displayed and the display ids it made."""
        ids: list[str] = []
        out = execute(self.kc, code, timeout, on_message=self._record, display_ids=ids)
        return out, ids

    def text(self, code: str) -> str:
        return self.run(code)[0]

    def later(self, code: str, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Run a magic that answers later; wait until its display matches ``pattern``."""
        out, ids = self.run(code)
        assert len(ids) == 1 and "working…" in out, out
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = re.search(pattern, self.displays.get(ids[0], ""))
            if found:
                return found
            with contextlib.suppress(queue.Empty):
                self._record(self.kc.get_iopub_msg(timeout=0.2))
        raise AssertionError(f"{pattern!r} never shown by {code!r}: {self.displays.get(ids[0])}")


SETUP = """
import os
from volli_nb import MessagesStore
from volli_nb.core.netconfig import NetworkConfig
from volli_nb.core.store.database import KDF_MIN
from volli_nb.core.crypto.identity import Identity
def other(name):
    return MessagesStore.open(f"{name}.sqlite", "pw", name=name, kdf=KDF_MIN,
                              config=NetworkConfig(loopback_only=True))
bob, carol = other("bob"), other("carol")
ghost = Identity.generate()
messagesStore.add_contact(ghost.public, name="ghost")
await messagesStore.send_message(ghost.peer_id, "into the void")
"""


@pytest.mark.network
def test_every_magic_in_a_real_kernel(tmp_path: Path) -> None:
    with kernel(str(tmp_path)) as kc:
        k = Client(kc)
        k.run("%load_ext volli_nb")
        help_text = k.text("%volli help")
        commands = ("new", "open PATH", "dashboard", "peers", "queue", "events [N]", "diagram")
        for command in (*commands, "pair CODE", "send PEER TEXT", "history [PEER] [N]", "sync"):
            assert f"%volli {command}" in help_text
        assert k.text("%volli") == help_text
        assert "no messagesStore yet" in k.text("%volli peers")
        assert re.search(
            rf"messagesStore = <MessagesStore alice peer_id={PEER_ID}", k.text("%volli new alice")
        )
        alice = k.text("print(messagesStore.peer_id)").strip()
        k.run(SETUP)

        # The queue: a pending row for the offline contact (getPending as a table).
        queue_html = k.text("%volli queue")
        assert "Pending queue" in queue_html and "<td>pending</td>" in queue_html
        assert "peer offline" in queue_html

        # %volli pair: an offer code, shown when ready; bob accepts it; the answer
        # pasted into %volli pair completes the pairing.
        shown = k.later("%volli pair", rf"offer code.*?{CODE}")
        offer = shown.group(1)
        assert "<svg" in shown.string  # the code as a QR code, to scan on the other screen
        answer = k.text(f"print(await bob.accept_pairing_code({offer!r}))").strip()
        assert re.fullmatch(CODE, answer)
        bob_id = k.text("print(bob.peer_id)").strip()
        k.later(f"%volli pair {answer}", rf"connected to <b>bob</b> \({bob_id}\)")
        assert k.text("print(messagesStore.network_store.connected_peers())") == f"['{bob_id}']\n"

        # %volli send: the rest of the line, as typed (an apostrophe is no shell quote).
        k.later("%volli send bob it's me,  alice", r"sent \w+ \((pending|sent|delivered)\)")
        k.run("await messagesStore.wait_delivered(messagesStore.history('bob')[-1].message_id)")
        assert "it's me,  alice" in k.text("print(bob.history(messagesStore.peer_id)[-1].text)")
        assert re.search(r"\d\d:\d\d:\d\d me: it's me,  alice", k.text("%volli history bob 1"))
        assert "usage: %volli send PEER TEXT" in k.text("%volli send bob")

        # %volli pair OFFER: accepts carol's offer and shows the answer to paste back.
        carol_offer = k.text("print(await carol.create_pairing_code())").strip()
        carol_answer = k.later(f"%volli pair {carol_offer}", rf"answer code.*?{CODE}").group(1)
        k.run(f"await carol.wait_connected(await carol.complete_pairing({carol_answer!r}))")
        k.run("await messagesStore.wait_connected(carol.peer_id)")

        peers = k.text("%volli peers")
        assert peers.count(">connected<br>") == 2 and "host 127.0.0.1" in peers
        assert bob_id in peers

        # %volli sync: the SyncReport appears when the attempt is done.
        k.later("%volli sync", r"SyncReport\(sent=\d+, in_flight=\d+, waiting_offline=1,")

        # Readable times, and the sequence diagram (live widget plus its static copy).
        events = k.text("%volli events 4")
        assert len(re.findall(r"\d\d:\d\d:\d\d\.\d{3} +\+\d+\.\d{3} s ", events)) == 4, events
        diagram = k.text("%volli diagram")
        assert "SequencePanel(alice)" in diagram and 'class="volli-seq ' in diagram
        assert "HELLO: handshake + channel binding" in diagram and "retry in 1 s" in diagram

        dashboard = k.text("%volli dashboard")
        for title in ("Peers", "ICE candidates", "Pending queue", "Event log"):
            assert title in dashboard
        assert "unknown command 'frobnicate'" in k.text("%volli frobnicate")
        assert "BadPairingCode" in k.text("%volli pair volli2.damaged.abcdefgh")
        # The same answer pasted again (a cell run twice) changes nothing: still bob.
        k.later(f"%volli pair {answer}", rf"connected to <b>bob</b> \({bob_id}\)", timeout=5)

        # %volli open: a wrong passphrase is refused; the right one opens the same identity.
        k.run("await bob.close(); await carol.close()")
        k.run('os.environ["VOLLI_PASSPHRASE"] = "nope"')
        assert "WrongPassphrase" in k.text("%volli open bob.sqlite")
        k.run('os.environ["VOLLI_PASSPHRASE"] = "pw"')
        opened = k.text("%volli open bob.sqlite bob-again")
        assert f"<MessagesStore bob-again peer_id={bob_id}" in opened
        assert k.text("print(messagesStore.peer_id)").strip() == bob_id != alice
        k.later("%volli close", r"closed")
        assert "no messagesStore yet" in k.text("%volli queue")


class _Shell:
    """Just enough of an IPython shell for the magics: a user namespace."""

    def __init__(self) -> None:
        self.user_ns: dict[str, Any] = {}


def test_without_a_running_loop_or_widgets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A terminal IPython has no loop running between cells: the magics say what to
    await instead; without ``volli_nb.ui.widgets`` the tables are plain HTML."""
    import asyncio
    import warnings

    from volli_nb.ui import magics

    monkeypatch.setattr(magics, "_widgets", lambda: None)
    shell = _Shell()
    m = magics.VolliMagics(shell=shell)
    m.volli("new terminal")
    out = capsys.readouterr().out
    assert "no running event loop" in out and "messagesStore = <MessagesStore terminal" in out
    store = shell.user_ns["messagesStore"]
    try:
        peers, queue_table = m.volli("peers"), m.volli("queue")
        assert isinstance(peers, HTML) and isinstance(queue_table, HTML)
        assert "<h4>Peers</h4>" in peers.data and "<i>none</i>" in peers.data
        assert "<h4>Pending queue</h4>" in queue_table.data
        assert "Pending queue" in m.volli("dashboard").data
        from volli_nb.core.store.message_queue import OutgoingMessage

        row = store.message_queue.enqueue(OutgoingMessage(b"m" * 16, "c", "ghost", b"hi", 1))
        store.message_queue.mark_failed(row, "peer offline")
        assert "Queue-&gt;&gt;Queue: ghost: retry in 1 s" in m.volli("diagram").data  # escaped
        plain = m.volli("queue").data  # a clock time, not an epoch float
        assert re.search(r"<td>\d\d:\d\d:\d\d\.\d{3}</td>", plain) and "<td>—</td>" not in plain
        m.volli("events 2")
        assert re.search(r"\d\d:\d\d:\d\d\.\d{3} +\+\d\.\d{3} s queue ", capsys.readouterr().out)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "coroutine ... was never awaited" would fail
            m.volli("sync")
            m.volli("pair")
        out = capsys.readouterr().out
        assert "run `await messagesStore.sync_messages()` yourself" in out
        assert "run `await messagesStore.create_pairing_code()` yourself" in out
    finally:
        asyncio.run(store.close())


GROUP_SETUP = """
from volli_nb import MessagesStore
from volli_nb.core.netconfig import NetworkConfig
from volli_nb.core.store.database import KDF_MIN
async def paired(name):
    other = MessagesStore.open(f"{name}.sqlite", "pw", name=name, kdf=KDF_MIN,
                               config=NetworkConfig(loopback_only=True))
    answer = await other.accept_pairing_code(await messagesStore.create_pairing_code())
    await messagesStore.wait_connected(await messagesStore.complete_pairing(answer))
    return other
bob, carol = await paired("bob"), await paired("carol")
"""


@pytest.mark.network
def test_group_magics_in_a_real_kernel(tmp_path: Path) -> None:
    """``%volli group …``: create by contact names, send, show per-member delivery, remove,
    and the groups panel, in a real kernel over real channels."""
    with kernel(str(tmp_path)) as kc:
        k = Client(kc)
        k.run("%load_ext volli_nb")
        assert "%volli group …" in k.text("%volli help")
        assert "%volli group new NAME" in k.text("%volli group help")
        k.text("%volli new alice")
        k.run(GROUP_SETUP)
        k.later("%volli group new study bob carol", r"Group 'study' grp-[a-z2-7]{24} v1 ")
        # The text as typed, as %volli send takes it: an apostrophe is no shell quote.
        k.later("%volli group send study it's hello group", r"ChatMessage \w+ out .*it's hello gr")
        k.run("m = messagesStore.history(messagesStore.groups()[0].group_id)[-1]")
        k.run("await messagesStore.wait_delivered(m.message_id)")
        shown = k.text("%volli group show study")
        assert "version 1" in shown and "hello group" in shown and "✓" in shown, shown
        assert "Groups" in k.text("%volli group") and "study" in k.text("%volli group")
        k.later("%volli group remove study carol", r"Group 'study' grp-[a-z2-7]{24} v2 ")
        assert "NotFound" in k.text("%volli group show nosuch")
        assert "usage:" in k.text("%volli group frobnicate")
        k.run("await bob.close(); await carol.close()")
