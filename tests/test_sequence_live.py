"""The sequence diagram and progress over real stores: arrows appended as things happen,
pause and clear, the dashboard's tab; progress of a large message and of a backlog flush;
and notebook 02 exported by nbconvert keeps the static diagram."""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbconvert import HTMLExporter
from netutil import open_store, pair
from test_network import arun

from volli_nb.app.flush_progress import FLUSH_PROGRESS_MIN
from volli_nb.base.clock import VirtualClock
from volli_nb.core.progress import ProgressUpdate
from volli_nb.net.frame_trace import PROGRESS_MIN_BYTES
from volli_nb.ui.widgets import Dashboard, SequencePanel

pytestmark = pytest.mark.network
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


def labels(panel: SequencePanel) -> list[str]:
    return [a.label for a in panel.model.arrows]


def test_the_panel_appends_as_it_happens_pauses_and_clears(tmp_path: Path) -> None:
    async def main() -> None:
        clock = VirtualClock()
        alice = open_store(tmp_path, "alice", clock=clock)
        bob = open_store(tmp_path, "bob", clock=clock)  # envelopes carry its time
        panel = SequencePanel(alice, cap=400)
        assert "nothing yet" in panel.view.value
        await pair(alice, bob)
        sent = await alice.send_message(bob.peer_id, "hello")
        await alice.wait_delivered(sent.message_id)
        short = sent.message_id.hex()[:8]
        drawn = labels(panel)  # the store's own log, as it happened
        for wanted in (f"send_message(…) → {short}", f"send {short}", f"✓ delivered {short}"):
            assert wanted in drawn
        assert any(re.match(rf"MESSAGE {short} \(", x) for x in drawn)
        assert drawn.index(f"send {short}") < drawn.index(f"✓ delivered {short}")
        panel.refresh()
        assert f"MESSAGE {short}" in panel.view.value and "bob" in panel.view.value

        panel.pause.value = True
        frozen = panel.view.value
        second = await alice.send_message(bob.peer_id, "while paused")
        await alice.wait_delivered(second.message_id)
        panel.refresh()
        assert panel.view.value == frozen and second.message_id.hex()[:8] not in frozen
        assert re.search(r"paused</b>: \d+ new arrow", panel.status.value)
        panel.pause.value = False  # resuming draws what happened meanwhile
        assert f"✓ delivered {second.message_id.hex()[:8]}" in panel.view.value

        # Offline: the queue's timers on the virtual clock, stuck, a manual retry_now.
        await alice.network_store.disconnect(bob.peer_id)
        queued = await alice.send_message(bob.peer_id, "are you there?")
        for step in (1, 5, 15, 60):
            clock.advance(step)
            await alice.process_due()
        (row,) = alice.message_queue.get_pending()
        alice.message_queue.retry_now(row.id)
        drawn = labels(panel)
        waits = [x for x in drawn if x.startswith("{peer}: retry in ")]
        expected = [f"{{peer}}: retry in {s} s" for s in (1, 5, 15, 60)]
        assert [w.split(" (")[0] for w in waits] == expected
        assert f"stuck {queued.message_id.hex()[:8]} to {{peer}}: retry by hand" in drawn
        assert f"manual retry now: row {row.id} (was stuck)" in drawn
        snapshot = panel.snapshot("frozen")
        panel.clear.click()
        assert panel.model.total == 0 and "nothing yet" in panel.view.value
        assert "bob: retry in 60 s" in snapshot._repr_html_()
        assert "frozen" in snapshot._repr_html_()
        assert snapshot.save(tmp_path / "flow.svg").read_text().startswith("<svg")
        assert "sequenceDiagram" in snapshot.save(tmp_path / "flow.md").read_text()

        dashboard = Dashboard(alice)
        titles = [dashboard.widget.get_title(i) for i in range(len(dashboard.panels))]
        assert titles == ["Peers", "ICE", "Queue", "Chat", "Groups", "Events", "Sequence"]
        assert "volli-seq" in dashboard._repr_html_()
        dashboard.close()
        panel.close()
        await asyncio.gather(alice.close(), bob.close())

    arun(main, timeout=90)


def test_progress_of_a_large_message_and_of_a_backlog_flush(tmp_path: Path) -> None:
    async def main() -> None:
        clock = VirtualClock()
        alice = open_store(tmp_path, "alice", clock=clock)
        bob = open_store(tmp_path, "bob", clock=clock)  # envelopes carry its time
        sent_side: list[ProgressUpdate] = []
        received_side: list[ProgressUpdate] = []
        alice.progress.subscribe(sent_side.append)
        bob.progress.subscribe(received_side.append)
        await pair(alice, bob)
        text = secrets.token_urlsafe(PROGRESS_MIN_BYTES * 3)  # incompressible, ~1 MB
        big = await alice.send_message(bob.peer_id, text, compress=False)
        await alice.wait_delivered(big.message_id, timeout=60)
        stages = [u.stage for u in sent_side]
        assert stages[0] == "encrypting" and "queued" in stages and "sending" in stages
        assert stages[-1] == "waiting for the signed ACK"
        last = sent_side[-1]
        assert last.outcome == "acknowledged" and last.done == last.total > len(text)
        assert not alice.progress.active
        got = [u for u in received_side if u.key.startswith("receive:")]
        assert got[-1].outcome == "received" and got[-1].done >= len(text)

        # A backlog: queued while bob is away, flushed when he is back, counted by ACKs.
        sent_side.clear()
        await alice.network_store.disconnect(bob.peer_id)
        count = FLUSH_PROGRESS_MIN + 10
        for i in range(count):
            await alice.send_message(bob.peer_id, f"backlog {i}")
        await pair(alice, bob)
        async with asyncio.timeout(60):
            while not any(u.finished and u.key.startswith("flush:") for u in sent_side):
                await asyncio.sleep(0.05)
        flush = [u for u in sent_side if u.key.startswith("flush:")]
        assert flush[0].description == "flush to bob" and flush[0].total == count
        assert flush[-1].outcome == f"{count} acknowledged" and not flush[-1].failed
        assert [u.done for u in flush] == sorted(u.done for u in flush)
        assert any(re.fullmatch(rf"{count}/{count} sent, ACKs arriving", u.stage) for u in flush)
        assert len(bob.history(alice.peer_id)) == count + 1
        await asyncio.gather(alice.close(), bob.close())

    arun(main, timeout=120)


@pytest.mark.slow
def test_exported_notebook_02_contains_the_static_diagram(tmp_path: Path) -> None:
    """nbconvert's HTML prefers a widget view (which needs JavaScript and a CDN) over any
    other form of an output, so the diagram is a plain HTML display that stays."""
    nb = nbformat.read(ROOT / "notebooks" / "02-message-flow.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    body, _ = HTMLExporter().from_notebook_node(nb)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "02-message-flow.html").write_text(body)
    diagrams = re.findall(r'<div class="volli-seq [\w-]+" data-arrows="(\d+)"', body)
    assert len(diagrams) >= 3  # alice live, bob's receive path, alice's snapshot
    svg = body[body.index('<div class="volli-seq ') :]
    for label in (
        "send_message(…) →",
        "MESSAGE ",
        "signed ACK (",
        "✓ delivered",
        "on_message",
        "verify, decrypt, store",
        "bob: retry in 1 s (attempt 1 failed: peer offline)",
        "bob: retry in 5 s (attempt 2 failed: peer offline)",
        "bob: retry in 15 s (attempt 3 failed: peer offline)",
        "bob: retry in 60 s (attempt 4 failed: peer offline)",
        ": retry by hand",
        "is back: 1 stuck → due again",  # bob's return released it (no manual retry)
    ):
        assert label in svg, label
    assert "tabindex" in svg and "<title>" in svg  # hover and click survive the export
